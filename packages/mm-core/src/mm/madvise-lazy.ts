/**
 * The page-walking advices of madvise(2) that leave the mapping in place (mm/madvise.c,
 * mm/huge_memory.c): MADV_FREE (lazy free), MADV_COLD and MADV_PAGEOUT. Each walks PMD by PMD:
 * pmd_trans_huge() is checked without the lock, then the huge path takes pmd_trans_huge_lock()
 * and looks again, so another CPU can change the PMD in between (bugs F5 and F6 live in that
 * window). Without memory pressure and without swap nothing is reclaimed: lazy-freed pages
 * keep their data and a paged-out anonymous folio goes back to the LRU (a THP split first, as
 * shrink_folio_list() splits a large folio it cannot give swap space).
 */
import { HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import {
  folioGet,
  folioIsZoneDevice,
  folioMapcount,
  folioMaybeDmaPinned,
  folioPut,
  folioTestLarge,
  folioTrylock,
  folioUnlock,
} from '../folio.js';
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
  isSwapType,
  swpType,
} from '../pgtable/entry.js';
import {
  PG_anon,
  PG_dirty,
  PG_lru,
  PG_partially_mapped,
  PG_referenced,
  PG_swapbacked,
  PG_swapcache,
} from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { addMmCounter } from './counters.js';
import { folioMaybeMappedShared } from './folio-shared.js';
import { pmdTransHugeLock } from './huge.js';
import { folioLockWait, pteLock, ptlUnlock } from './locking.js';
import { withInvalidation } from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableAt, ptHi, ptLo, ptSet } from './pgtable.js';
import { splitFolioMapped } from './split.js';
import { folioFreeSwap, freeSwapAndCacheNr, swpEntryVal, totalSwapPages } from './swapfile.js';
import { countMthpStat } from './thp-orders.js';
import { MMU_NOTIFY_CLEAR, type Vma } from './types.js';
import { reclaimPages as reclaimSwapPages } from './vmscan.js';

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
 * and covered whole is marked clean, old and lazy-free (folio_mark_lazyfree()); one covered in
 * part is split. Returns
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
    folioMarkLazyfree(core, folio);
    return true;
  } finally {
    if (!unlocked) ptlUnlock(core, ptl, 'madvise_free_huge_pmd');
  }
}

/**
 * Models madvise_free_pte_range() + madvise_free_single_vma(): an MMU_NOTIFY_CLEAR
 * invalidation over the VMA's part of the range, then the walk. Swap entries are freed; present
 * anonymous folios are marked clean, old and lazy-free; zone-device pages and other software
 * entries are left alone.
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
        if (core.sched.preempt('madvise_free_pte_range: pmd_trans_huge() seen without the PMD lock'))
          yield RESCHED;
        if (yield* madviseFreeHugePmd(core, vma, pmdT, addr, next)) {
          addr = next;
          continue;
        }
      }
      yield* lazyFreePtes(core, vma, pmdT, addr, next);
      addr = next;
      if (core.sched.preempt('madvise_free_pte_range: next PMD')) yield RESCHED;
    }
  });
}

/**
 * Models folio_mark_lazyfree() (mm/swap.c, lru_lazyfree()): an anonymous, swap-backed folio on
 * the LRU and not in the swap cache loses PG_swapbacked (the kernel moves it to the inactive
 * file LRU) and PG_referenced, and counts PGLAZYFREE. Reclaim then discards it while clean
 * (shrink_folio_list()'s lazy-free path) instead of writing it to swap.
 */
export function folioMarkLazyfree(core: Core, folio: number): void {
  const m = core.map;
  const f = m.flags[folio];
  if (!(f & PG_lru) || !(f & PG_anon) || !(f & PG_swapbacked) || f & PG_swapcache) return;
  m.flags[folio] &= ~(PG_swapbacked | PG_referenced);
  core.vmstat.pglazyfree += m.folioNrPages(folio);
}

/**
 * The PTE half of madvise_free_pte_range() under the PTE lock: a swap PTE is dropped with its
 * slot (free_swap_and_cache_nr(): reading the page later is cheaper as a zero-fill than as a
 * swap-in; MM_SWAPENTS -1); a present anonymous folio in the swap cache or dirty is, when it is
 * not mapped by another mm and its lock can be taken, taken out of the swap cache
 * (folio_free_swap(), skipped if a swap PTE still holds a slot) and cleaned; its PTEs lose the
 * young and dirty bits and the folio is marked lazy-free. A large folio mapped only in part by
 * the range is split first (unless mapped by another mm or locked), with the PTE lock dropped,
 * and its PTEs looked at again. Zone-device pages and other software entries are left alone.
 */
function* lazyFreePtes(core: Core, vma: Vma, pmdT: number, addr: number, next: number): KGen {
  let pteT = pteTableAt(core, vma.mm, pmdT, addr, false);
  if (pteT < 0) return;
  const m = core.map;
  const mm = vma.mm;
  let ptl = pteLock(core, pteT, 'madvise_free_pte_range');
  let nr = 1;
  for (let a = addr; a < next; a += nr * PAGE_SIZE) {
    nr = 1;
    const i = pteIndex(a);
    const plo = ptLo(core, pteT, i);
    const phi = ptHi(core, pteT, i);
    if (entryNone(plo, phi)) continue;
    if (!entryPresent(plo)) {
      const type = swpType(plo);
      if (isSwapType(type)) {
        ptSet(core, pteT, i, 0, 0);
        addMmCounter(mm, 'MM_SWAPENTS', -1);
        freeSwapAndCacheNr(core, swpEntryVal(type, entryPfn(plo, phi)), 1);
      }
      continue;
    }
    if (plo & _PAGE_SPECIAL) continue;
    const folio = m.head[entryPfn(plo, phi)];
    if (folioIsZoneDevice(core, folio) || !(m.flags[folio] & PG_anon)) continue;
    if (folioTestLarge(core, folio)) {
      [nr] = folioPteBatch(core, pteT, i, i + (next - a) / PAGE_SIZE, folio);
      if (nr < m.folioNrPages(folio)) {
        // Only part of it is in the range: split it so that MADV_FREE frees just those pages.
        if (folioMaybeMappedShared(core, folio) || !folioTrylock(core, folio)) continue;
        folioGet(core, folio);
        ptlUnlock(core, ptl, 'madvise_free_pte_range');
        const err = yield* splitFolioMapped(core, folio, folio);
        folioUnlock(core, folio);
        folioPut(core, folio);
        pteT = pteTableAt(core, mm, pmdT, a, false);
        if (pteT < 0) return;
        ptl = pteLock(core, pteT, 'madvise_free_pte_range');
        if (!err) nr = 0;
        continue;
      }
    }
    if (m.flags[folio] & (PG_swapcache | PG_dirty)) {
      if (!folioTrylock(core, folio)) continue;
      if (
        folioMaybeMappedShared(core, folio) ||
        (m.flags[folio] & PG_swapcache && !folioFreeSwap(core, folio))
      ) {
        folioUnlock(core, folio);
        continue;
      }
      m.flags[folio] &= ~PG_dirty;
      folioUnlock(core, folio);
    }
    // clear_young_dirty_ptes(CYDP_CLEAR_YOUNG | CYDP_CLEAR_DIRTY) over the batch.
    let flush = false;
    for (let k = 0; k < nr; k++) {
      const lo = ptLo(core, pteT, i + k);
      if (lo & (_PAGE_ACCESSED | _PAGE_DIRTY)) {
        ptSet(core, pteT, i + k, (lo & ~(_PAGE_ACCESSED | _PAGE_DIRTY)) >>> 0, ptHi(core, pteT, i + k));
        flush = true;
      }
    }
    if (flush) mm.tlb.flushRange(a, a + nr * PAGE_SIZE);
    folioMarkLazyfree(core, folio);
  }
  ptlUnlock(core, ptl, 'madvise_free_pte_range');
}

/** Models folio_putback_lru(): back on the LRU, the isolation reference dropped. */
function folioPutbackLru(core: Core, folio: number): void {
  core.map.flags[folio] |= PG_lru;
  folioPut(core, folio);
}

/**
 * Models reclaim_pages() -> reclaim_folio_list() -> shrink_folio_list(ignore_references) for the
 * isolated folios of MADV_PAGEOUT on a machine without a swap device (v6.19 semantics):
 * - an anonymous folio needs swap space (folio_alloc_swap() fails): a small one is activated and
 *   kept; a large one is split first (a partially mapped one right away, any other as the
 *   "fallback to swap normal pages", counting THP_SWPOUT_FALLBACK for a PMD-sized one) and its
 *   pieces are kept the same way; a pinned one, or one whose split fails, is kept whole;
 * - a folio another task has locked is kept;
 * every kept folio goes back to the LRU (folio_putback_lru()). Simplified: page-cache (tmpfs)
 * folios are kept mapped; the kernel would unmap them (try_to_unmap()) and, since
 * shmem_writeout() has no swap to write to, keep them in the page cache (or drop a clean one).
 */
function* reclaimPagesNoSwap(core: Core, folios: readonly number[]): KGen {
  if (folios.length === 0) return;
  if (core.sched.preempt('reclaim_pages: folios isolated from the LRU')) yield RESCHED;
  const m = core.map;
  for (const f of folios) {
    if (!folioTrylock(core, f)) {
      folioPutbackLru(core, f);
      continue;
    }
    if (m.flags[f] & PG_anon && !folioMaybeDmaPinned(core, f) && folioTestLarge(core, f)) {
      const order = m.folioOrder(f);
      const partial = (m.flags[f] & PG_partially_mapped) !== 0;
      // can_split_folio(folio, 1): only the isolation reference beyond the mappings, else the
      // folio is kept whole (activate_locked).
      const canSplit = m.refcount[f] === folioMapcount(core, f) + 1;
      if (canSplit && (yield* splitFolioMapped(core, f, f)) === 0) {
        if (!partial && order >= HPAGE_PMD_ORDER) core.vmstat.thp_swpout_fallback++;
        if (!partial) countMthpStat(core, order, 'swpout_fallback');
        // split_folio_to_list(): the other pieces joined the list; each fails folio_alloc_swap()
        // and goes back to the LRU.
        for (let p = f + 1; p < f + (1 << order); p++) if (m.head[p] === p) m.flags[p] |= PG_lru;
      }
    }
    folioUnlock(core, f);
    folioPutbackLru(core, f);
  }
}

/**
 * Models MADV_PAGEOUT's reclaim_pages(): with a swap area, the swap-out path of mm/vmscan.ts
 * (anonymous folios are written to swap and freed); without one, {@link reclaimPagesNoSwap}.
 */
function* reclaimPages(core: Core, folios: readonly number[]): KGen {
  if (totalSwapPages(core) > 0) yield* reclaimSwapPages(core, folios);
  else yield* reclaimPagesNoSwap(core, folios);
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
 * Models madvise_folio_pte_batch() (folio_pte_batch_flags(FPB_MERGE_YOUNG_DIRTY)): how many PTEs
 * from index i map consecutive pages of the large folio, within [i, max) and the folio's end, and
 * whether any of them is young.
 */
function folioPteBatch(core: Core, pteT: number, i: number, max: number, head: number): [number, boolean] {
  const m = core.map;
  const first = entryPfn(ptLo(core, pteT, i), ptHi(core, pteT, i));
  const limit = Math.min(max - i, head + m.folioNrPages(head) - first);
  let young = false;
  let nr = 0;
  while (nr < limit) {
    const lo = ptLo(core, pteT, i + nr);
    if (!entryPresent(lo) || lo & _PAGE_SPECIAL || entryPfn(lo, ptHi(core, pteT, i + nr)) !== first + nr)
      break;
    if (lo & _PAGE_ACCESSED) young = true;
    nr++;
  }
  return [nr, young];
}

/**
 * The PTE half of madvise_cold_or_pageout_pte_range() for [addr, next) of one PMD: under the PTE
 * lock, skip none, non-present (device-private, migration, device-exclusive), zero-page and
 * zone-device entries; a large folio only partly in the range is split (unless mapped by another
 * mm, or locked), with the lock dropped, and the PTEs looked at again; folios not on the LRU or
 * mapped more than once are left alone; COLD clears the young bits, both clear PG_referenced,
 * PAGEOUT isolates the folio onto `list`. Every 32 PTEs cond_resched() may drop the lock.
 */
function* coldOrPageoutPtes(
  core: Core,
  vma: Vma,
  pmdT: number,
  addr: number,
  next: number,
  pageout: boolean,
  list: number[],
): KGen {
  const m = core.map;
  let pteT = pteTableAt(core, vma.mm, pmdT, addr, false);
  if (pteT < 0) return;
  let ptl = pteLock(core, pteT, 'madvise_cold_or_pageout_pte_range');
  let batch = 0;
  let nr = 1;
  for (let a = addr; a < next; a += nr * PAGE_SIZE) {
    nr = 1;
    if (++batch === 32) {
      batch = 0;
      if (core.sched.needResched()) {
        ptlUnlock(core, ptl, 'madvise_cold_or_pageout_pte_range');
        if (core.sched.preempt('madvise_cold_or_pageout_pte_range: cond_resched')) yield RESCHED;
        pteT = pteTableAt(core, vma.mm, pmdT, a, false);
        if (pteT < 0) return;
        ptl = pteLock(core, pteT, 'madvise_cold_or_pageout_pte_range');
      }
    }
    const i = pteIndex(a);
    const plo = ptLo(core, pteT, i);
    const phi = ptHi(core, pteT, i);
    if (entryNone(plo, phi) || !entryPresent(plo) || plo & _PAGE_SPECIAL) continue;
    const pfn = entryPfn(plo, phi);
    const folio = m.head[pfn];
    if (folioIsZoneDevice(core, folio)) continue;
    let young = (plo & _PAGE_ACCESSED) !== 0;
    if (folioTestLarge(core, folio)) {
      [nr, young] = folioPteBatch(core, pteT, i, i + (next - a) / PAGE_SIZE, folio);
      if (nr < m.folioNrPages(folio)) {
        if (folioMaybeMappedShared(core, folio) || !folioTrylock(core, folio)) continue;
        folioGet(core, folio);
        ptlUnlock(core, ptl, 'madvise_cold_or_pageout_pte_range');
        const err = yield* splitFolioMapped(core, folio, folio);
        folioUnlock(core, folio);
        folioPut(core, folio);
        pteT = pteTableAt(core, vma.mm, pmdT, a, false);
        if (pteT < 0) return;
        ptl = pteLock(core, pteT, 'madvise_cold_or_pageout_pte_range');
        if (!err) nr = 0;
        continue;
      }
    }
    if (!(m.flags[folio] & PG_lru) || folioMapcount(core, folio) !== m.folioNrPages(folio)) continue;
    if (!pageout && young) {
      // clear_young_dirty_ptes(CYDP_CLEAR_YOUNG) over the batch.
      for (let k = 0; k < nr; k++) {
        const lo = ptLo(core, pteT, i + k);
        if (lo & _PAGE_ACCESSED)
          ptSet(core, pteT, i + k, (lo & ~_PAGE_ACCESSED) >>> 0, ptHi(core, pteT, i + k));
      }
      vma.mm.tlb.flushRange(a, a + nr * PAGE_SIZE);
    }
    m.flags[folio] &= ~PG_referenced;
    if (pageout && isolateLru(core, folio)) list.push(folio);
  }
  ptlUnlock(core, ptl, 'madvise_cold_or_pageout_pte_range');
}

/**
 * Models madvise_cold_or_pageout_pte_range() (MADV_COLD / MADV_PAGEOUT) over one VMA's part of
 * the range, PMD by PMD: a present THP mapped only by this mm and covered whole is aged (COLD:
 * the PMD's young bit and PG_referenced cleared) or isolated for reclaim (PAGEOUT); one covered
 * in part is split first and handled at PTE level; the huge zero PMD and non-present PMDs
 * (migration, device-private) are skipped. Then reclaim_pages() for PAGEOUT.
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
      if (core.sched.preempt('madvise_cold_or_pageout_pte_range: pmd_trans_huge() seen without the PMD lock'))
        yield RESCHED;
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
        if (pageout) yield* reclaimPages(core, list);
        addr = next;
        continue;
      }
    }
    yield* coldOrPageoutPtes(core, vma, pmdT, addr, next, pageout, list);
    if (pageout) yield* reclaimPages(core, list);
    addr = next;
    if (core.sched.preempt('madvise_cold_or_pageout_pte_range: next PMD')) yield RESCHED;
  }
}
