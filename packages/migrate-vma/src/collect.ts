import {
  _PAGE_RW,
  _PAGE_SPECIAL,
  BLOCK_PAGES,
  type Core,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  folioGet,
  folioLockWait,
  folioPut,
  folioTestLarge,
  folioTrylock,
  folioUnlock,
  isDevicePrivateType,
  KernelBug,
  type KGen,
  LivelockFinding,
  MEMORY_DEVICE_COHERENT,
  MMU_NOTIFY_MIGRATE,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  PAGE_SIZE,
  PG_zone_device,
  PGDIR_SHIFT,
  PMD_SIZE,
  PUD_SIZE,
  pgdIndex,
  pmdIndex,
  pmdLock,
  pmdTableOf,
  pteIndex,
  pteLock,
  pteTableAt,
  ptHi,
  ptLo,
  ptlUnlock,
  RESCHED,
  SWP_DEVICE_WRITE,
  setPmdMigrationEntry,
  setPteMigrationEntryAt,
  splitFolioMapped,
  swpType,
  type Vma,
} from '@hmm-model/mm-core';
import { collectMthpUnit } from './mthp.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migratePfn,
} from './types.js';

/** Models thp_migration_supported(): x86-64 has ARCH_ENABLE_THP_MIGRATION. */
export const THP_MIGRATION_SUPPORTED = true;

function push(mig: MigrateVma, mpfn: number): void {
  mig.dst[mig.npages] = 0;
  mig.src[mig.npages++] = mpfn;
}

/** Models migrate_vma_collect_skip(): empty slots for [start, end). */
function collectSkip(mig: MigrateVma, start: number, end: number): void {
  for (let a = start; a < end; a += PAGE_SIZE) push(mig, 0);
}

/**
 * Models migrate_vma_collect_hole(): anonymous holes are collected (one compound head for an
 * aligned PMD-sized hole when SELECT_COMPOUND), holes of other VMAs are skipped.
 */
function collectHole(mig: MigrateVma, vma: Vma, start: number, end: number): void {
  if (!vma.isAnonymous) {
    collectSkip(mig, start, end);
    return;
  }
  if (
    THP_MIGRATION_SUPPORTED &&
    mig.flags & MIGRATE_VMA_SELECT_COMPOUND &&
    start % PMD_SIZE === 0 &&
    end % PMD_SIZE === 0
  ) {
    push(mig, MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
    mig.cpages++;
    collectSkip(mig, start + PAGE_SIZE, end);
    return;
  }
  for (let a = start; a < end; a += PAGE_SIZE) {
    push(mig, MIGRATE_PFN_MIGRATE);
    mig.cpages++;
  }
}

/**
 * folio_get() in migrate_vma_split_folio(), with its VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow())
 * (CONFIG_DEBUG_VM): the folio must not be free. `why` says how it came to be (bug F28, finding K15).
 */
function splitFolioGet(core: Core, folio: number, why: string): void {
  if (core.map.refcount[folio] === 0)
    throw new KernelBug(
      'migrate_vma_split_folio',
      'VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow(folio)) in folio_get()',
      [`  ${why}`],
    );
  folioGet(core, folio);
}

/**
 * Models migrate_vma_split_folio(): split a PTE-mapped large folio met by the walk (the PTE lock
 * already dropped); afterwards exactly the fault page's folio (if any) is locked and holds the
 * fault handler's reference. `pinned`: the caller already took the reference under the PTE lock
 * (the fix of bug F28); without it, the reference is taken only here, after the window in which
 * the folio may have been freed. Finding K15: when the fault page's mapping is zapped in the
 * same window, split_folio() frees the fault page's new folio and v6.19's folio_get() on it
 * resurrects a free folio.
 */
function* splitFolioForCollect(core: Core, folio: number, faultPage: number, pinned: boolean): KGen<number> {
  const m = core.map;
  const faultFolio = faultPage >= 0 ? m.head[faultPage] : -1;
  if (folio !== faultFolio) {
    if (!pinned)
      splitFolioGet(core, folio, `folio 0x${folio.toString(16)} was freed after the PTE lock was dropped`);
    yield* folioLockWait(core, folio, 'migrate_vma_split_folio');
  } else if (pinned) folioPut(core, folio);
  // Fix K15 (README, Findings): split_huge_page(fault_page), so that the split itself leaves the
  // fault page's new folio locked and holding the fault handler's reference.
  const splitAtFault = folio === faultFolio && core.fixed('K15');
  const ret = yield* splitFolioMapped(core, folio, splitAtFault ? faultPage : folio);
  if (splitAtFault) return ret;
  if (ret) {
    if (folio !== faultFolio) {
      folioUnlock(core, folio);
      folioPut(core, folio);
    }
    return ret;
  }
  const newFault = faultPage >= 0 ? m.head[faultPage] : -1;
  if (newFault < 0) {
    folioUnlock(core, folio);
    folioPut(core, folio);
  } else if (folio !== newFault) {
    if (newFault !== faultFolio) {
      // Finding K15: the split freed the fault page's new folio when nothing mapped the fault
      // page any more (its PTE zapped after the walk dropped the PTE lock).
      splitFolioGet(
        core,
        newFault,
        `the fault page 0x${faultPage.toString(16)}'s folio was freed by split_folio(): its mapping was zapped after the PTE lock was dropped`,
      );
      yield* folioLockWait(core, newFault, 'migrate_vma_split_folio');
    }
    folioUnlock(core, folio);
    folioPut(core, folio);
  }
  return 0;
}

/**
 * Models migrate_vma_collect_huge_pmd() under the PMD lock. Returns 'done' when the PMD range
 * was handled, 'again' when the PMD is a table now (split under us: re-read it), 'pte' to
 * continue with the PTE walk (-ENOENT). With bug R3 the fault folio is trylocked like any other
 * (it is already locked by the fault path, so the whole PMD is skipped).
 */
function* collectHugePmd(
  core: Core,
  mig: MigrateVma,
  vma: Vma,
  pmdT: number,
  start: number,
  end: number,
  faultFolio: number,
): KGen<'done' | 'again' | 'pte'> {
  const m = core.map;
  const mi = pmdIndex(start);
  const ptl = pmdLock(core, pmdT, 'migrate_vma_collect_huge_pmd');
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  let unlocked = false;
  const unlock = () => {
    if (!unlocked) ptlUnlock(core, ptl, 'migrate_vma_collect_huge_pmd');
    unlocked = true;
  };
  try {
    if (entryNone(lo, hi)) {
      unlock();
      collectHole(mig, vma, start, end);
      return 'done';
    }
    let folio: number;
    let write = 0;
    if (entryPresent(lo) && entryHuge(lo)) {
      if (!(mig.flags & MIGRATE_VMA_SELECT_SYSTEM)) {
        unlock();
        collectSkip(mig, start, end);
        return 'done';
      }
      const pfn = entryPfn(lo, hi);
      if (pfn === core.hugeZeroPfn) {
        unlock();
        collectHole(mig, vma, start, end);
        return 'done';
      }
      folio = m.head[pfn];
      // Fix switch K1 (README, Findings): v6.19 has no device-coherent check here, unlike the
      // PTE path of migrate_vma_collect_pmd(), so a coherent THP is collected for SELECT_SYSTEM.
      if (
        core.fixed('K1') &&
        m.flags[folio] & PG_zone_device &&
        (!(mig.flags & MIGRATE_VMA_SELECT_DEVICE_COHERENT) || core.pgmapOf(folio)?.owner !== mig.pgmapOwner)
      ) {
        unlock();
        collectSkip(mig, start, end);
        return 'done';
      }
      if (lo & _PAGE_RW) write = MIGRATE_PFN_WRITE;
    } else if (!entryPresent(lo)) {
      const type = swpType(lo);
      const pfn = entryPfn(lo, hi);
      if (
        !isDevicePrivateType(type) ||
        !(mig.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) ||
        core.pgmapOf(pfn)?.owner !== mig.pgmapOwner
      ) {
        unlock();
        collectSkip(mig, start, end);
        return 'done';
      }
      folio = m.head[pfn];
      if (type === SWP_DEVICE_WRITE) write = MIGRATE_PFN_WRITE;
    } else {
      unlock();
      return 'again';
    }
    folioGet(core, folio);
    const exempt = folio === faultFolio && !core.bug('R3');
    if (!exempt && !folioTrylock(core, folio)) {
      unlock();
      folioPut(core, folio);
      collectSkip(mig, start, end);
      return 'done';
    }
    if (
      THP_MIGRATION_SUPPORTED &&
      mig.flags & MIGRATE_VMA_SELECT_COMPOUND &&
      start % PMD_SIZE === 0 &&
      end % PMD_SIZE === 0
    ) {
      push(mig, migratePfn(folio) + (write | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND));
      mig.cpages++;
      const ret = setPmdMigrationEntry(core, vma, pmdT, start);
      if (ret === 0) {
        collectSkip(mig, start + PAGE_SIZE, end);
        return 'done';
      }
      mig.npages--;
      mig.cpages--;
      mig.src[mig.npages] = 0;
      mig.dst[mig.npages] = 0;
    }
    // fallback:
    unlock();
    if (!folioTestLarge(core, folio)) return 'pte';
    const ret = yield* splitFolioMapped(core, folio, folio);
    if (faultFolio !== folio) folioUnlock(core, m.head[folio]);
    folioPut(core, m.head[folio]);
    if (ret) {
      collectSkip(mig, start, end);
      return 'done';
    }
    if (entryNone(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))) {
      collectHole(mig, vma, start, end);
      return 'done';
    }
    return 'pte';
  } finally {
    unlock();
  }
}

/**
 * Models migrate_vma_collect_pmd(): one PMD's worth [start, end) of the walk. The PMD is
 * checked without the lock; a huge or non-present one goes to migrate_vma_collect_huge_pmd(),
 * which takes the lock and looks again. PTEs are collected under the PTE lock; a PTE-mapped
 * large folio drops the lock, is split (migrate_vma_split_folio()), and the walk resumes at the
 * same address (with bug R5: from the first address of the PMD again).
 */
function* collectPmd(core: Core, mig: MigrateVma, vma: Vma, pmdT: number, start: number, end: number): KGen {
  const m = core.map;
  // v6.19 reads fault_folio once, before `again:`. After migrate_vma_split_folio() split the
  // fault folio, it still names the first piece, which the split unlocked: a walk over more than
  // the fault page then takes that piece for the fault folio (no trylock) and finalize unlocks
  // it, unlocked (fix switch K13: read it again after a split).
  let faultFolio = mig.faultPage >= 0 ? m.head[mig.faultPage] : -1;
  let addr = start;
  const mi = pmdIndex(start);
  for (let guard = 0; ; guard++) {
    if (guard > 10_000)
      throw new LivelockFinding(
        `migrate_vma_collect_pmd: PMD at 0x${start.toString(16)} retried ${guard} times`,
      );
    const lo = ptLo(core, pmdT, mi);
    if (entryNone(lo, ptHi(core, pmdT, mi)) || !entryPresent(lo) || entryHuge(lo)) {
      if (core.sched.preempt('migrate_vma_collect_pmd: PMD seen huge or none without the PMD lock'))
        yield RESCHED;
      const r = yield* collectHugePmd(core, mig, vma, pmdT, start, end, faultFolio);
      if (r === 'again') continue;
      if (r === 'done') return;
    }
    const pteT = pteTableAt(core, vma.mm, pmdT, addr, false);
    if (pteT < 0) continue;
    const r = yield* collectPtes(core, mig, vma, pteT, addr, end, faultFolio);
    if (r === 'done') return;
    // A large folio was split (or could not be): 'again' resumes where the walk stopped.
    addr = core.bug('R5') ? start : r;
    if (r < 0) return;
    if (mig.faultPage >= 0 && core.fixed('K13')) faultFolio = m.head[mig.faultPage];
  }
}

/**
 * The PTE loop of migrate_vma_collect_pmd() under the PTE lock, from addr. Returns 'done', or
 * the address to resume at after a large folio was split (the lock dropped), or -1 when the
 * split failed (the rest of the PMD was skipped).
 */
function* collectPtes(
  core: Core,
  mig: MigrateVma,
  vma: Vma,
  pteT: number,
  addr: number,
  end: number,
  faultFolio: number,
): KGen<'done' | number> {
  const m = core.map;
  const ptl = pteLock(core, pteT, 'migrate_vma_collect_pmd');
  let locked = true;
  // ptLo()/ptHi() of the table's entries: its words, looked up at the first entry read (the
  // table stays put while its lock is held).
  let words: Uint32Array | undefined;
  const base = (pteT & (BLOCK_PAGES - 1)) << 10;
  const start = addr;
  // Migration entries set with ptep_get_and_clear() (no per-page flush): flushed as one range.
  let unmapped = 0;
  try {
    for (; addr < end; addr += PAGE_SIZE) {
      words ??= core.frames.block32(pteT);
      const off = base + (pteIndex(addr) << 1);
      const plo = words[off];
      const phi = words[off + 1];
      let mpfn = 0;
      let page = -1;
      if (entryNone(plo, phi)) {
        if (vma.isAnonymous) {
          mpfn = MIGRATE_PFN_MIGRATE;
          mig.cpages++;
        }
        push(mig, mpfn);
        continue;
      }
      let large = -1;
      if (!entryPresent(plo)) {
        const type = swpType(plo);
        if (!isDevicePrivateType(type)) {
          push(mig, 0);
          continue;
        }
        page = entryPfn(plo, phi);
        if (
          !(mig.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) ||
          core.pgmapOf(page)?.owner !== mig.pgmapOwner
        ) {
          push(mig, 0);
          continue;
        }
        if (folioTestLarge(core, m.head[page])) large = m.head[page];
        else
          mpfn =
            migratePfn(page) + (MIGRATE_PFN_MIGRATE | (type === SWP_DEVICE_WRITE ? MIGRATE_PFN_WRITE : 0));
      } else {
        const pfn = entryPfn(plo, phi);
        if (pfn === core.zeroPfn && plo & _PAGE_SPECIAL) {
          if (mig.flags & MIGRATE_VMA_SELECT_SYSTEM) {
            mpfn = MIGRATE_PFN_MIGRATE;
            mig.cpages++;
          }
          push(mig, mpfn);
          continue;
        }
        // vm_normal_page(): special mappings have no struct page to migrate.
        page = plo & _PAGE_SPECIAL ? -1 : pfn;
        if (page >= 0 && !(m.flags[page] & PG_zone_device) && !(mig.flags & MIGRATE_VMA_SELECT_SYSTEM)) {
          push(mig, 0);
          continue;
        }
        // is_device_coherent_page() reads folio->pgmap: NULL after a v6.19 split of a coherent
        // folio (mm-core fix switch K6).
        if (page >= 0 && m.flags[page] & PG_zone_device && !core.pgmapOf(page))
          throw new KernelBug(
            'migrate_vma_collect_pmd',
            'NULL pointer dereference: is_device_coherent_page() on a split device-coherent folio whose pgmap the split cleared',
          );
        if (
          page >= 0 &&
          m.flags[page] & PG_zone_device &&
          core.pgmapOf(page)?.type === MEMORY_DEVICE_COHERENT
        ) {
          if (
            !(mig.flags & MIGRATE_VMA_SELECT_DEVICE_COHERENT) ||
            core.pgmapOf(page)?.owner !== mig.pgmapOwner
          ) {
            push(mig, 0);
            continue;
          }
        }
        if (page >= 0 && folioTestLarge(core, m.head[page])) large = m.head[page];
        else mpfn = migratePfn(pfn) + (MIGRATE_PFN_MIGRATE | (plo & _PAGE_RW ? MIGRATE_PFN_WRITE : 0));
      }
      if (large >= 0) {
        // Model extension (mthp.ts): a declared-order folio migrates whole.
        const unit = collectMthpUnit(core, mig, vma, pteT, addr, end, large, faultFolio);
        if (unit >= 0) {
          push(mig, unit);
          if (unit) mig.cpages++;
          const nr = m.folioNrPages(large);
          collectSkip(mig, addr + PAGE_SIZE, addr + nr * PAGE_SIZE);
          addr += (nr - 1) * PAGE_SIZE;
          continue;
        }
        // Fixed kernel: pin the folio before the PTE lock goes (bug F28: only after).
        const pinned = !core.bug('F28') && large !== faultFolio;
        if (pinned) folioGet(core, large);
        ptlUnlock(core, ptl, 'migrate_vma_collect_pmd');
        locked = false;
        if (core.sched.preempt('migrate_vma_collect_pmd: PTE lock dropped before migrate_vma_split_folio'))
          yield RESCHED;
        if (yield* splitFolioForCollect(core, large, mig.faultPage, pinned)) {
          collectSkip(mig, addr, end);
          return -1;
        }
        return addr;
      }
      // "!page->mapping": pages without an anon_vma or file (driver-inserted pages) are skipped.
      if (page < 0 || m.mapping[m.head[page]] === 0) {
        push(mig, 0);
        continue;
      }
      const folio = m.head[page];
      folioGet(core, folio);
      if (faultFolio === folio || folioTrylock(core, folio)) {
        if (!setPteMigrationEntryAt(core, vma, pteT, addr, words, off, true)) {
          if (faultFolio !== folio) folioUnlock(core, folio);
          folioPut(core, folio);
          push(mig, 0);
          continue;
        }
        mig.cpages++;
        unmapped++;
      } else {
        folioPut(core, folio);
        mpfn = 0;
      }
      push(mig, mpfn);
    }
    return 'done';
  } finally {
    if (locked) ptlUnlock(core, ptl, 'migrate_vma_collect_pmd');
    // "Only flush the TLB if we actually modified any entries".
    if (unmapped) vma.mm.tlb.flushRange(start, end);
  }
}

/** Where the hole that walk_page_range() reports for addr ends when its PMD table is missing. */
function upperHoleEnd(core: Core, pgd: number, addr: number): number {
  const i = pgdIndex(addr);
  const size = entryNone(ptLo(core, pgd, i), ptHi(core, pgd, i)) ? 2 ** PGDIR_SHIFT : PUD_SIZE;
  return (Math.floor(addr / size) + 1) * size;
}

/**
 * Models migrate_vma_collect(): walk [start, end) under an MMU_NOTIFY_MIGRATE invalidation
 * carrying pgmap_owner, filling src[] in address order (a preemption point between PMDs); then
 * end = start + npages pages.
 */
export function* migrateVmaCollect(core: Core, mig: MigrateVma): KGen {
  const vma = mig.vma!;
  const mm = vma.mm;
  const range = { mm, start: mig.start, end: mig.end, event: MMU_NOTIFY_MIGRATE, owner: mig.pgmapOwner };
  yield* mmuNotifierInvalidateRangeStart(range);
  try {
    for (let addr = mig.start; addr < mig.end; ) {
      if (addr > mig.start && core.sched.preempt('migrate_vma_collect: next PMD')) yield RESCHED;
      const pmdT = pmdTableOf(core, mm, addr, false);
      if (pmdT < 0) {
        // walk_pgd_range()/walk_pud_range() report a missing PUD or PMD table as one hole up
        // to the next PGD/PUD boundary: with SELECT_COMPOUND and an aligned span of several
        // PMDs this is the kernel's single compound head for the whole span (§2.2a).
        const next = Math.min(mig.end, upperHoleEnd(core, mm.pgd, addr));
        collectHole(mig, vma, addr, next);
        addr = next;
        continue;
      }
      const next = Math.min(mig.end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
      yield* collectPmd(core, mig, vma, pmdT, addr, next);
      addr = next;
    }
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
  mig.end = mig.start + mig.npages * PAGE_SIZE;
}
