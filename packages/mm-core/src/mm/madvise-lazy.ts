/**
 * The page-walking advices of madvise(2) that leave the mapping in place (mm/madvise.c,
 * mm/huge_memory.c): MADV_FREE (lazy free), MADV_COLD and MADV_PAGEOUT. Each walks PMD by PMD:
 * pmd_trans_huge() is checked without the lock, then the huge path takes pmd_trans_huge_lock()
 * and looks again, so another CPU can change the PMD in between (bugs F5 and F6 live in that
 * window). Without memory pressure and without swap nothing is reclaimed: lazy-freed pages
 * keep their data and a paged-out anonymous folio goes back to the LRU.
 */
import { PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { folioGet, folioIsZoneDevice, folioPut, folioTrylock, folioUnlock } from '../folio.js';
import { KernelBug } from '../kernel-bug.js';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_PSE,
  _PAGE_SPECIAL,
  entryNone,
  entryPfn,
  entryPresent,
  isDevicePrivateType,
  isMigrationType,
  swpType,
} from '../pgtable/entry.js';
import { PG_anon, PG_dirty, PG_lru, PG_referenced } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { pmdTransHugeLock } from './huge.js';
import { folioLockWait, pteLock, ptlUnlock } from './locking.js';
import { withInvalidation } from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableAt, ptHi, ptLo, ptSet } from './pgtable.js';
import { splitFolioMapped } from './split.js';
import { MMU_NOTIFY_CLEAR, type Vma } from './types.js';

/** Models pmd_trans_huge(): a present huge PMD (not a software PMD, not a table). */
function pmdTransHuge(lo: number): boolean {
  return (lo & (_PAGE_PRESENT | _PAGE_PSE)) === (_PAGE_PRESENT | _PAGE_PSE);
}

/** Models folio_maybe_mapped_shared() for a PMD-mapped folio: mapped more than once. */
function maybeMappedShared(core: Core, head: number): boolean {
  return core.map.largeMapcount[head] > 1;
}

/**
 * The non-present branch of the huge PMD paths, under the PMD lock: before the fix (bugs F5,
 * F6) only a migration entry was expected there (VM_BUG_ON); after it a device-private PMD is
 * skipped too, and anything else only warns.
 */
function nonPresentHugePmd(core: Core, lo: number, fn: string, bug: string): void {
  const type = swpType(lo);
  if (core.bug(bug)) {
    if (!isMigrationType(type))
      throw new KernelBug(fn, 'VM_BUG_ON(thp_migration_supported() && !pmd_is_migration_entry(orig_pmd))', [
        `  orig_pmd 0x${lo.toString(16)}: ${isDevicePrivateType(type) ? 'a device-private PMD' : `software type ${type}`}`,
      ]);
    return;
  }
  if (!isMigrationType(type) && !isDevicePrivateType(type))
    core.warn(`${fn}: VM_WARN_ON_ONCE(unexpected non-present PMD type ${type})`);
}

/**
 * Models madvise_free_huge_pmd(): under pmd_trans_huge_lock(), a present THP mapped only here
 * and covered whole is marked clean and old (lazy free); one covered in part is split. Returns
 * true when the PMD was handled (the PTE walk is skipped).
 */
function* madviseFreeHugePmd(core: Core, vma: Vma, pmdT: number, addr: number, next: number): KGen<boolean> {
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  const mi = pmdIndex(haddr);
  const ptl = pmdTransHugeLock(core, pmdT, haddr, 'madvise_free_huge_pmd');
  if (!ptl) return false;
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  let unlocked = false;
  try {
    if (!entryPresent(lo)) {
      nonPresentHugePmd(core, lo, 'madvise_free_huge_pmd', 'F5');
      return false;
    }
    const pfn = entryPfn(lo, hi);
    if (pfn === core.hugeZeroPfn) return false;
    const m = core.map;
    const folio = m.head[pfn];
    if (maybeMappedShared(core, folio)) return false;
    if (!folioTrylock(core, folio)) return false;
    if (next - addr !== PMD_SIZE) {
      folioGet(core, folio);
      ptlUnlock(core, ptl, 'madvise_free_huge_pmd');
      unlocked = true;
      yield* splitFolioMapped(core, folio, folio);
      folioUnlock(core, m.head[folio]);
      folioPut(core, m.head[folio]);
      return false;
    }
    m.flags[folio] &= ~PG_dirty;
    folioUnlock(core, folio);
    if (lo & (_PAGE_ACCESSED | _PAGE_DIRTY)) {
      ptSet(core, pmdT, mi, (lo & ~(_PAGE_ACCESSED | _PAGE_DIRTY)) >>> 0, hi);
      vma.mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
    }
    return true;
  } finally {
    if (!unlocked) ptlUnlock(core, ptl, 'madvise_free_huge_pmd');
  }
}

/**
 * Models madvise_free_pte_range() + madvise_free_single_vma(): an MMU_NOTIFY_CLEAR
 * invalidation over the VMA's part of the range, then the walk. Present anonymous pages are
 * marked clean and old; zone-device pages and software entries are left alone.
 */
export function* madviseFreeSingleVma(core: Core, vma: Vma, start: number, end: number): KGen {
  yield* withInvalidation(vma.mm, start, end, MMU_NOTIFY_CLEAR, null, function* () {
    for (let addr = start; addr < end; ) {
      const next = Math.min(end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
      const pmdT = pmdTableOf(core, vma.mm, addr, false);
      if (pmdT < 0) {
        addr = next;
        continue;
      }
      if (pmdTransHuge(ptLo(core, pmdT, pmdIndex(addr)))) {
        yield 'madvise_free_pte_range: pmd_trans_huge() seen without the PMD lock';
        if (yield* madviseFreeHugePmd(core, vma, pmdT, addr, next)) {
          addr = next;
          continue;
        }
      }
      lazyFreePtes(core, vma, pmdT, addr, next);
      addr = next;
      yield 'madvise_free_pte_range: next PMD';
    }
  });
}

/** The PTE half of madvise_free_pte_range() under the PTE lock. */
function lazyFreePtes(core: Core, vma: Vma, pmdT: number, addr: number, next: number): void {
  const pteT = pteTableAt(core, vma.mm, pmdT, addr, false);
  if (pteT < 0) return;
  const m = core.map;
  const ptl = pteLock(core, pteT, 'madvise_free_pte_range');
  for (let a = addr; a < next; a += PAGE_SIZE) {
    const i = pteIndex(a);
    const plo = ptLo(core, pteT, i);
    const phi = ptHi(core, pteT, i);
    if (entryNone(plo, phi) || !entryPresent(plo) || plo & _PAGE_SPECIAL) continue;
    const pfn = entryPfn(plo, phi);
    const folio = m.head[pfn];
    if (folioIsZoneDevice(core, folio) || !(m.flags[folio] & PG_anon)) continue;
    m.flags[folio] &= ~PG_dirty;
    if (plo & (_PAGE_ACCESSED | _PAGE_DIRTY)) {
      ptSet(core, pteT, i, (plo & ~(_PAGE_ACCESSED | _PAGE_DIRTY)) >>> 0, phi);
      vma.mm.tlb.flushRange(a, a + PAGE_SIZE);
    }
  }
  ptlUnlock(core, ptl, 'madvise_free_pte_range');
}

/**
 * Models reclaim_pages() of an isolated folio list without swap: anonymous folios cannot be
 * written out, so each goes back to the LRU (folio_putback_lru()).
 */
function* reclaimPages(core: Core, folios: readonly number[]): KGen {
  if (folios.length === 0) return;
  yield 'reclaim_pages: folios isolated from the LRU';
  for (const f of folios) {
    core.map.flags[f] |= PG_lru;
    folioPut(core, f);
  }
}

/** Models folio_isolate_lru(): off the LRU with a reference; false if it was not on it. */
function isolateLru(core: Core, folio: number): boolean {
  const m = core.map;
  if (!(m.flags[folio] & PG_lru)) return false;
  m.flags[folio] &= ~PG_lru;
  folioGet(core, folio);
  return true;
}

/**
 * Models madvise_cold_or_pageout_pte_range() (MADV_COLD / MADV_PAGEOUT) over one VMA's part of
 * the range: a present THP covered whole is aged (COLD) or isolated for reclaim (PAGEOUT); one
 * covered in part is split first; PTE-mapped anonymous pages likewise. Folios mapped by other
 * processes are left alone.
 */
export function* madviseColdOrPageout(
  core: Core,
  vma: Vma,
  start: number,
  end: number,
  pageout: boolean,
): KGen {
  const m = core.map;
  for (let addr = start; addr < end; ) {
    const next = Math.min(end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
    const pmdT = pmdTableOf(core, vma.mm, addr, false);
    if (pmdT < 0) {
      addr = next;
      continue;
    }
    const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
    const mi = pmdIndex(haddr);
    const list: number[] = [];
    if (pmdTransHuge(ptLo(core, pmdT, mi))) {
      yield 'madvise_cold_or_pageout_pte_range: pmd_trans_huge() seen without the PMD lock';
      const ptl = pmdTransHugeLock(core, pmdT, haddr, 'madvise_cold_or_pageout_pte_range');
      if (!ptl) {
        addr = next;
        continue;
      }
      const lo = ptLo(core, pmdT, mi);
      const hi = ptHi(core, pmdT, mi);
      let regular = false;
      let folio = -1;
      if (!entryPresent(lo)) nonPresentHugePmd(core, lo, 'madvise_cold_or_pageout_pte_range', 'F6');
      else if (entryPfn(lo, hi) !== core.hugeZeroPfn) folio = m.head[entryPfn(lo, hi)];
      if (folio >= 0 && !maybeMappedShared(core, folio)) {
        if (next - addr !== PMD_SIZE) {
          folioGet(core, folio);
          ptlUnlock(core, ptl, 'madvise_cold_or_pageout_pte_range');
          yield* folioLockWait(core, folio, 'madvise_cold_or_pageout_pte_range');
          const err = yield* splitFolioMapped(core, folio, folio);
          folioUnlock(core, m.head[folio]);
          folioPut(core, m.head[folio]);
          if (err) {
            addr = next;
            continue;
          }
          regular = true;
        } else {
          if (!pageout && lo & _PAGE_ACCESSED) {
            ptSet(core, pmdT, mi, (lo & ~_PAGE_ACCESSED) >>> 0, hi);
            vma.mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
          }
          m.flags[folio] &= ~PG_referenced;
          if (pageout && isolateLru(core, folio)) list.push(folio);
        }
      }
      if (!regular) {
        ptlUnlock(core, ptl, 'madvise_cold_or_pageout_pte_range');
        yield* reclaimPages(core, list);
        addr = next;
        continue;
      }
    }
    const pteT = pteTableAt(core, vma.mm, pmdT, addr, false);
    if (pteT >= 0) {
      const ptl = pteLock(core, pteT, 'madvise_cold_or_pageout_pte_range');
      for (let a = addr; a < next; a += PAGE_SIZE) {
        const i = pteIndex(a);
        const plo = ptLo(core, pteT, i);
        const phi = ptHi(core, pteT, i);
        if (entryNone(plo, phi) || !entryPresent(plo) || plo & _PAGE_SPECIAL) continue;
        const folio = m.head[entryPfn(plo, phi)];
        if (
          folioIsZoneDevice(core, folio) ||
          m.largeMapcount[folio] > 1 ||
          m.mapcount[entryPfn(plo, phi)] > 1
        )
          continue;
        if (!pageout && plo & _PAGE_ACCESSED) {
          ptSet(core, pteT, i, (plo & ~_PAGE_ACCESSED) >>> 0, phi);
          vma.mm.tlb.flushRange(a, a + PAGE_SIZE);
        }
        m.flags[folio] &= ~PG_referenced;
        if (pageout && !list.includes(folio) && isolateLru(core, folio)) list.push(folio);
      }
      ptlUnlock(core, ptl, 'madvise_cold_or_pageout_pte_range');
    }
    yield* reclaimPages(core, list);
    addr = next;
    yield 'madvise_cold_or_pageout_pte_range: next PMD';
  }
}
