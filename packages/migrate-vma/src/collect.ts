import {
  _PAGE_RW,
  _PAGE_SPECIAL,
  type Core,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  folioGet,
  folioLock,
  folioPut,
  folioTestLarge,
  folioTrylock,
  folioUnlock,
  isDevicePrivateType,
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
  pmdTableOf,
  pteIndex,
  ptHi,
  ptLo,
  SWP_DEVICE_WRITE,
  setPmdMigrationEntry,
  setPteMigrationEntry,
  splitFolioMapped,
  swpType,
  type Vma,
} from '@hmm-model/mm-core';
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
 * Models migrate_vma_split_folio(): split a PTE-mapped large folio met by the walk; afterwards
 * exactly the fault page's folio (if any) is locked and holds the fault handler's reference.
 */
function splitFolioForCollect(core: Core, folio: number, faultPage: number): number {
  const m = core.map;
  const faultFolio = faultPage >= 0 ? m.head[faultPage] : -1;
  if (folio !== faultFolio) {
    folioGet(core, folio);
    if (!folioTrylock(core, folio)) {
      core.wait('folio lock (migrate_vma_split_folio)', () => folioTrylock(core, folio));
    }
  }
  const ret = splitFolioMapped(core, folio, folio);
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
      folioGet(core, newFault);
      folioLock(core, newFault);
    }
    folioUnlock(core, folio);
    folioPut(core, folio);
  }
  return 0;
}

/**
 * Models migrate_vma_collect_huge_pmd(). Returns 'done' when the PMD range was handled, 'again'
 * when the PMD changed under us, 'pte' to continue with the PTE walk.
 */
function collectHugePmd(
  core: Core,
  mig: MigrateVma,
  vma: Vma,
  pmdT: number,
  start: number,
  end: number,
  faultFolio: number,
): 'done' | 'again' | 'pte' {
  const m = core.map;
  const mi = pmdIndex(start);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  if (entryNone(lo, hi)) {
    collectHole(mig, vma, start, end);
    return 'done';
  }
  let folio: number;
  let write = 0;
  if (entryPresent(lo) && entryHuge(lo)) {
    if (!(mig.flags & MIGRATE_VMA_SELECT_SYSTEM)) {
      collectSkip(mig, start, end);
      return 'done';
    }
    const pfn = entryPfn(lo, hi);
    if (pfn === core.hugeZeroPfn) {
      collectHole(mig, vma, start, end);
      return 'done';
    }
    folio = m.head[pfn];
    if (lo & _PAGE_RW) write = MIGRATE_PFN_WRITE;
  } else if (!entryPresent(lo)) {
    const type = swpType(lo);
    const pfn = entryPfn(lo, hi);
    if (
      !isDevicePrivateType(type) ||
      !(mig.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) ||
      core.pgmapOf(pfn)?.owner !== mig.pgmapOwner
    ) {
      collectSkip(mig, start, end);
      return 'done';
    }
    folio = m.head[pfn];
    if (type === SWP_DEVICE_WRITE) write = MIGRATE_PFN_WRITE;
  } else {
    return 'again';
  }
  folioGet(core, folio);
  if (folio !== faultFolio && !folioTrylock(core, folio)) {
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
  if (!folioTestLarge(core, folio)) return 'pte';
  const ret = splitFolioMapped(core, folio, folio);
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
}

/** Models migrate_vma_collect_pmd(): one PMD's worth [start, end) of the walk. */
function collectPmd(core: Core, mig: MigrateVma, vma: Vma, pmdT: number, start: number, end: number): void {
  const m = core.map;
  const faultFolio = mig.faultPage >= 0 ? m.head[mig.faultPage] : -1;
  let addr = start;
  const mi = pmdIndex(start);
  for (let guard = 0; guard < 64; guard++) {
    const lo = ptLo(core, pmdT, mi);
    if (entryNone(lo, ptHi(core, pmdT, mi)) || !entryPresent(lo) || entryHuge(lo)) {
      const r = collectHugePmd(core, mig, vma, pmdT, start, end, faultFolio);
      if (r === 'again') continue;
      if (r === 'done') return;
    }
    const plo0 = ptLo(core, pmdT, mi);
    if (!entryPresent(plo0) || entryHuge(plo0)) continue;
    const pteT = entryPfn(plo0, ptHi(core, pmdT, mi));
    let restart = false;
    for (; addr < end; addr += PAGE_SIZE) {
      const i = pteIndex(addr);
      const plo = ptLo(core, pteT, i);
      const phi = ptHi(core, pteT, i);
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
        const folio = m.head[page];
        if (folioTestLarge(core, folio)) {
          if (splitFolioForCollect(core, folio, mig.faultPage)) {
            collectSkip(mig, addr, end);
            return;
          }
          restart = true;
          break;
        }
        mpfn = migratePfn(page) + (MIGRATE_PFN_MIGRATE | (type === SWP_DEVICE_WRITE ? MIGRATE_PFN_WRITE : 0));
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
        if (page >= 0 && folioTestLarge(core, m.head[page])) {
          if (splitFolioForCollect(core, m.head[page], mig.faultPage)) {
            collectSkip(mig, addr, end);
            return;
          }
          restart = true;
          break;
        }
        mpfn = migratePfn(pfn) + (MIGRATE_PFN_MIGRATE | (plo & _PAGE_RW ? MIGRATE_PFN_WRITE : 0));
      }
      // "!page->mapping": pages without an anon_vma or file (driver-inserted pages) are skipped.
      if (page < 0 || m.mapping[m.head[page]] === 0) {
        push(mig, 0);
        continue;
      }
      const folio = m.head[page];
      folioGet(core, folio);
      if (faultFolio === folio || folioTrylock(core, folio)) {
        if (!setPteMigrationEntry(core, vma, pteT, addr)) {
          if (faultFolio !== folio) folioUnlock(core, folio);
          folioPut(core, folio);
          push(mig, 0);
          continue;
        }
        mig.cpages++;
      } else {
        folioPut(core, folio);
        mpfn = 0;
      }
      push(mig, mpfn);
    }
    if (!restart) return;
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
 * carrying pgmap_owner, filling src[] in address order; then end = start + npages pages.
 */
export function migrateVmaCollect(core: Core, mig: MigrateVma): void {
  const vma = mig.vma!;
  const mm = vma.mm;
  const range = { mm, start: mig.start, end: mig.end, event: MMU_NOTIFY_MIGRATE, owner: mig.pgmapOwner };
  mmuNotifierInvalidateRangeStart(range);
  for (let addr = mig.start; addr < mig.end; ) {
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
    collectPmd(core, mig, vma, pmdT, addr, next);
    addr = next;
  }
  mmuNotifierInvalidateRangeEnd(range);
  mig.end = mig.start + mig.npages * PAGE_SIZE;
}
