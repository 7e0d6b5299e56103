import {
  type Core,
  EAGAIN,
  folioFreeSwap,
  folioGet,
  folioIsDevicePrivate,
  folioIsZoneDevice,
  folioMapcount,
  folioPut,
  folioSplitUnmapped,
  folioTestAnon,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  isKGen,
  type KGen,
  MEMORY_DEVICE_COHERENT,
  MMU_NOTIFY_MIGRATE,
  type MmuNotifierRange,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  PAGE_SIZE,
  PG_anon,
  PG_dirty,
  PG_referenced,
  PG_swapbacked,
  PG_swapcache,
  PG_uptodate,
  PG_zone_device,
  PMD_SIZE,
  pageVmaMappedWalk,
  pmdTableOf,
  RESCHED,
  rmapLockRead,
  rmapUnlockRead,
  rmapVmas,
  splitHugePmd,
} from '@hmm-model/mm-core';
import { migrateVmaInsertPage } from './insert.js';
import { splitMthpForMigrate } from './mthp.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  type MigrateVma,
  migratePfn,
  migratePfnToPage,
  mpfnClear,
  mpfnFlags,
} from './types.js';

/**
 * Models folio_migrate_mapping() for folios without an address_space (anonymous, device):
 * the source must hold exactly its expected references (1 + extraCount); then index, mapping
 * (the anon_vma) and swapbacked move to the destination. 0 or -EAGAIN.
 */
export function folioMigrateMapping(core: Core, dst: number, src: number, extraCount: number): number {
  const m = core.map;
  // folio_expected_ref_count() of an anonymous folio outside the swap cache is its mapcount
  // (0 once unmapped); +1 for the migration's own reference.
  if (m.refcount[src] !== folioMapcount(core, src) + extraCount + 1) return -EAGAIN;
  const n = m.folioNrPages(src);
  for (let k = 0; k < n; k++) {
    m.index[dst + k] = m.index[src + k];
    m.mapping[dst + k] = m.mapping[src + k];
  }
  if (m.flags[src] & PG_anon) {
    m.flags[dst] |= PG_anon;
    core.vmstat.nr_anon_pages += m.folioNrPages(dst);
  }
  if (m.flags[src] & PG_swapbacked) m.flags[dst] |= PG_swapbacked;
  return 0;
}

/** Models folio_migrate_flags(): uptodate, dirty and referenced follow the data. */
export function folioMigrateFlags(core: Core, dst: number, src: number): void {
  const m = core.map;
  m.flags[dst] |= m.flags[src] & (PG_uptodate | PG_dirty | PG_referenced);
}

/**
 * Model deviation from v6.19 (a kernel bug): a THP that is PMD-mapped in other processes too
 * (shared after fork) got PMD migration entries there from try_to_migrate() in
 * migrate_device_unmap(), but migrate_vma_split_unmapped_folio() splits only the migrating
 * VMA's PMD (split_huge_pmd_address()). After folio_split_unmapped() those PMD migration
 * entries would point into a split folio and remove_migration_ptes() would hit
 * remove_migration_pte()'s VM_BUG_ON_FOLIO(!folio_test_pmd_mappable()). The model splits every
 * remaining PMD migration entry of the folio (freeze, as split_huge_pmd_address() does, taking
 * the reference the freeze drops) before splitting the folio, so each process ends up with PTE
 * migration entries and finalize maps the new small folios everywhere.
 */
function* splitOtherPmdMigrationEntries(core: Core, folio: number): KGen {
  const lock = yield* rmapLockRead(core, folio, 'split_other_pmd_migration_entries');
  try {
    for (const { vma, addr } of rmapVmas(core, folio)) {
      for (const h of pageVmaMappedWalk(core, vma, folio, HPAGE_PMD_NR, addr, true)) {
        if (h.level !== 'pmd') continue;
        folioGet(core, folio);
        yield* splitHugePmd(core, vma, h.pmdT, h.addr, true);
      }
    }
  } finally {
    rmapUnlockRead(core, lock, 'split_other_pmd_migration_entries');
  }
}

/**
 * Models migrate_vma_split_unmapped_folio(): split the PMD (already a migration entry) into
 * PTE migration entries, split the unmapped folio into small locked folios and spread the
 * head slot's flags over the 512 slots. 0 or -errno.
 */
function* splitUnmappedForMigrate(
  core: Core,
  mig: MigrateVma,
  idx: number,
  addr: number,
  folio: number,
  newOrder = 0,
): KGen<number> {
  const vma = mig.vma!;
  folioGet(core, folio);
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  const pmdT = pmdTableOf(core, vma.mm, haddr, false);
  const refs = core.map.refcount[folio];
  if (pmdT >= 0) yield* splitHugePmd(core, vma, pmdT, haddr, true);
  // K7: the freezing split drops the reference above only when it still finds the folio's PMD
  // migration entry; after a racing split of that PMD (partial MADV_DONTNEED, munmap, mprotect)
  // v6.19 keeps it, folio_split_unmapped() fails on it and the folio leaks.
  if (core.fixed('K7') && core.map.refcount[folio] === refs) folioPut(core, folio);
  // K18: a CPU fault's own folio carries the fault handler's reference, which v6.19's
  // folio_split_unmapped() (can_split_folio(folio, 1, ...)) does not allow for: -EAGAIN.
  const fault = core.fixed('K18') && mig.faultPage >= 0 && core.map.head[mig.faultPage] === folio ? 1 : 0;
  return yield* splitAndSpread(core, mig.src, idx, folio, newOrder, fault);
}

/**
 * The common end of migrate_vma_split_unmapped_folio() and of fix K19's split in
 * migrate_device_pages() (the pfn API has no VMA, so every PMD migration entry of the folio is
 * found through the rmap and split here): the other PMD migration entries of the folio (only
 * when the split can go ahead: its references are the ones it allows for and no more),
 * folio_split_unmapped(), and the head slot's flags spread over the unit's slots. 0 or -errno.
 */
function* splitAndSpread(
  core: Core,
  src: Float64Array,
  idx: number,
  folio: number,
  newOrder: number,
  extraRefs: number,
): KGen<number> {
  const nr = core.map.folioNrPages(folio);
  if (core.map.refcount[folio] === 1 + extraRefs) yield* splitOtherPmdMigrationEntries(core, folio);
  const ret = folioSplitUnmapped(core, folio, newOrder, extraRefs);
  if (ret) return ret;
  // Model extension (mthp.ts): a split to a declared order keeps COMPOUND on each new head.
  if (!newOrder) src[idx] = mpfnClear(src[idx], MIGRATE_PFN_COMPOUND);
  const flags = mpfnFlags(src[idx]);
  const pfn = migratePfnToPage(src[idx]);
  for (let k = 1 << newOrder; k < nr; k += 1 << newOrder) src[idx + k] = migratePfn(pfn + k) - 1 + flags;
  return 0;
}

/**
 * Models __migrate_device_pages() (mm/migrate_device.c): for each unit, insert destination
 * pages into holes, split a compound source whose destination is small (VMA API only), refuse
 * small-to-huge, refuse file / other ZONE_DEVICE combinations, and move struct-page metadata
 * (folio_migrate_mapping + flags). Slots that fail lose MIGRATE_PFN_MIGRATE.
 */
export function* migrateDevicePagesCore(
  core: Core,
  src: Float64Array,
  dst: Float64Array,
  npages: number,
  mig: MigrateVma | null,
  /** Model-only (fix K19): the pfn API splits a compound source for small destinations. */
  splitUnmapped = false,
): KGen {
  const m = core.map;
  let range: MmuNotifierRange | null = null;
  try {
    for (let i = 0; i < npages; ) {
      // An empty slot (the tail slots of a compound unit, a skipped page) has nothing to do:
      // clearing MIGRATE in a zero src leaves it zero.
      if (src[i] === 0 && dst[i] === 0) {
        i++;
        continue;
      }
      const newpage = migratePfnToPage(dst[i]);
      const page = migratePfnToPage(src[i]);
      let nr = 1;
      if (newpage < 0) {
        src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
        i += nr;
        continue;
      }
      if (page < 0) {
        if (!(mpfnFlags(src[i]) & MIGRATE_PFN_MIGRATE)) {
          i += nr;
          continue;
        }
        if (!mig?.vma) throw new Error('migrate_device_pages: a hole without a VMA (VM_BUG_ON)');
        const addr = mig.start + i * PAGE_SIZE;
        if (!range) {
          range = {
            mm: mig.vma.mm,
            start: addr,
            end: mig.end,
            event: MMU_NOTIFY_MIGRATE,
            owner: mig.pgmapOwner,
          };
          yield* mmuNotifierInvalidateRangeStart(range);
        }
        if (mpfnFlags(src[i]) & MIGRATE_PFN_COMPOUND && !(mpfnFlags(dst[i]) & MIGRATE_PFN_COMPOUND)) {
          nr = HPAGE_PMD_NR;
          src[i] = mpfnClear(src[i], MIGRATE_PFN_COMPOUND);
        }
        for (let j = 0; j < nr && i + j < npages; j++) {
          src[i + j] = src[i + j] - mpfnFlags(src[i + j]) + (mpfnFlags(src[i + j]) | MIGRATE_PFN_MIGRATE);
          if (migratePfnToPage(dst[i + j]) < 0) {
            // The kernel dereferences the missing page here; the model refuses the slot instead.
            core.warn('migrate_vma_pages: compound hole expanded without a destination page for every slot');
            src[i + j] = mpfnClear(src[i + j], MIGRATE_PFN_MIGRATE);
            continue;
          }
          const r = migrateVmaInsertPage(core, mig, addr + j * PAGE_SIZE, i + j, i + j);
          if (isKGen(r)) yield* r;
        }
        i += nr;
        if (core.sched.condResched('__migrate_device_pages: next unit')) yield RESCHED;
        continue;
      }
      let folio = m.head[page];
      const newfolio = m.head[newpage];
      const sflags = mpfnFlags(src[i]);
      const dflags = mpfnFlags(dst[i]);
      if (
        !((sflags | dflags) & MIGRATE_PFN_COMPOUND) &&
        !(m.flags[newfolio] & PG_zone_device) &&
        m.pgmap[newfolio] === 0
      ) {
        // The common unit of 4 KiB migrations to system memory: one page to one system page.
        // The steps below with nothing to split or refuse (no compound side, no device
        // destination): folio_migrate_mapping(), then folio_migrate_flags() on success.
        const extra = mig && mig.faultPage >= 0 && m.head[mig.faultPage] === folio ? 1 : 0;
        if (folioMigrateMapping(core, newfolio, folio, extra))
          src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
        else folioMigrateFlags(core, newfolio, folio);
        i++;
        if (core.sched.condResched('__migrate_device_pages: next unit')) yield RESCHED;
        continue;
      }
      const sOrder = sflags & MIGRATE_PFN_COMPOUND ? m.folioOrder(folio) : 0;
      const dCompound = (dflags & MIGRATE_PFN_COMPOUND) !== 0;
      const dOrder = dCompound ? m.folioOrder(newfolio) : 0;
      // How many slots one destination piece covers (a source split to the destination's order).
      let step = 1;
      if (
        sflags & MIGRATE_PFN_MIGRATE &&
        sflags & MIGRATE_PFN_COMPOUND &&
        (!dCompound || (dOrder > 0 && dOrder < sOrder))
      ) {
        // A smaller compound destination is the mTHP extension (mthp.ts); one of an order the
        // driver did not declare is refused (v6.19 cannot express it).
        // K19 (fix switch, test-hmm Findings): the eviction's pfn API call splits too (v6.19
        // needs a VMA).
        const deviceSplit = !mig && !dCompound && splitUnmapped;
        if ((!mig && !deviceSplit) || (mig && dCompound && !(mig.mthpOrders & (1 << dOrder)))) {
          if (dCompound)
            core.warn(`migrate_vma_pages: destination order ${dOrder} was not declared in mthpOrders`);
          src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
          i += nr;
          continue;
        }
        nr = m.folioNrPages(folio);
        const split = !mig
          ? yield* splitAndSpread(core, src, i, folio, 0, 0)
          : sOrder < HPAGE_PMD_ORDER
            ? splitMthpForMigrate(core, mig, i, folio, dOrder)
            : yield* splitUnmappedForMigrate(core, mig, i, mig.start + i * PAGE_SIZE, folio, dOrder);
        if (split) {
          src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
          i += nr;
          continue;
        }
        step = 1 << dOrder;
      } else if (sflags & MIGRATE_PFN_MIGRATE && dCompound && !(sflags & MIGRATE_PFN_COMPOUND)) {
        // Small to huge is refused.
        src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
      } else if (sflags & MIGRATE_PFN_MIGRATE && dCompound && mig?.mthpOrders && dOrder > sOrder) {
        // The extension: a destination bigger than the source unit is refused too.
        src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
      }
      const devDst =
        folioIsDevicePrivate(core, newfolio) || core.pgmapOf(newfolio)?.type === MEMORY_DEVICE_COHERENT;
      const swapcache = (m.flags[folio] & PG_swapcache) !== 0;
      const hasMapping = (!folioTestAnon(core, folio) && m.mapping[folio] !== 0) || swapcache;
      if (devDst) {
        // Only anonymous memory migrates to device memory; a swap-cache folio first tries to
        // leave the swap cache (folio_free_swap(): no swap PTE may still hold its slot).
        if (hasMapping && !(swapcache && folioTestAnon(core, folio) && folioFreeSwap(core, folio))) {
          src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
          i += nr;
          continue;
        }
      } else if (folioIsZoneDevice(core, newfolio)) {
        src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
        i += nr;
        continue;
      }
      for (let j = 0; j < nr && i + j < npages; j += step) {
        const sp = migratePfnToPage(src[i + j]);
        const dp = migratePfnToPage(dst[i + j]);
        if (sp < 0 || dp < 0) {
          // The kernel dereferences both pages here (§9 invariant 6: after a split every dst slot
          // must be filled); the model records the driver bug and refuses the slot instead.
          core.warn(
            `migrate_vma_pages: slot ${i + j} of a split unit has no ${sp < 0 ? 'source' : 'destination'} page`,
          );
          src[i + j] = mpfnClear(src[i + j], MIGRATE_PFN_MIGRATE);
          continue;
        }
        folio = m.head[sp];
        const nf = m.head[dp];
        // The fault handler's reference (the kernel compares pages; folios here, see unmap.ts).
        const extra = mig && mig.faultPage >= 0 && m.head[mig.faultPage] === folio ? 1 : 0;
        if (folioMigrateMapping(core, nf, folio, extra))
          src[i + j] = mpfnClear(src[i + j], MIGRATE_PFN_MIGRATE);
        else folioMigrateFlags(core, nf, folio);
      }
      i += nr;
      if (core.sched.condResched('__migrate_device_pages: next unit')) yield RESCHED;
    }
  } finally {
    if (range) mmuNotifierInvalidateRangeEnd(range);
  }
}
