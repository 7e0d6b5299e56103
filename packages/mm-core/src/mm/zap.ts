import { PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { folioPut, folioRemoveRmapPtes } from '../folio.js';
import {
  _PAGE_DIRTY,
  _PAGE_SPECIAL,
  entryNone,
  entryPfn,
  entryPresent,
  isDevicePrivateType,
  isMigrationType,
  isSwapType,
  SWP_DEVICE_EXCLUSIVE,
  swpType,
} from '../pgtable/entry.js';
import { PG_anon, PG_dirty, PG_head, PG_swapcache } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { addMmCounter, mmCounter } from './counters.js';
import { deferredSplitFolio, pmdIsHuge, pmdTransHugeLock, splitHugePmd, zapHugePmd } from './huge.js';
import { pmdLock, pteLock, ptlUnlock } from './locking.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableAt, ptHi, ptLo, ptSet } from './pgtable.js';
import { folioPteBatch } from './pte-batch.js';
import { freeSwapAndCacheNr, freeSwapCache, swpEntryVal } from './swapfile.js';
import { VM_HUGETLB, type Vma } from './types.js';

/**
 * Models zap_pte_range() for [start, end) inside one PTE table, under its PTE lock: every
 * present, zero, device-private, device-exclusive, migration and swap entry is cleared with its
 * rss, rmap and reference (a swap entry's slot with free_swap_and_cache_nr()). Partially
 * unmapped anon THPs go to the deferred split queue (never device ones, unless bug R7 is
 * switched on). `evenCows` false models zap_details without even_cows (unmap_mapping_range()
 * of a hole punch): anonymous folios (COWed private copies) are left mapped
 * (should_zap_folio()); the zero page and page-cache folios are zapped.
 */
export function zapPteRange(
  core: Core,
  vma: Vma,
  pteT: number,
  start: number,
  end: number,
  evenCows = true,
): void {
  const mm = vma.mm;
  const m = core.map;
  const first = pteIndex(start);
  const n = Math.round((end - start) / PAGE_SIZE);
  const ptl = pteLock(core, pteT, 'zap_pte_range');
  for (let k = 0; k < n; k++) {
    const i = first + k;
    const lo = ptLo(core, pteT, i);
    const hi = ptHi(core, pteT, i);
    if (lo === 0 && hi === 0) continue;
    const pfn = entryPfn(lo, hi);
    if (!evenCows && !(entryPresent(lo) && lo & _PAGE_SPECIAL) && m.flags[m.head[pfn]] & PG_anon) continue;
    if (entryPresent(lo) && !(lo & _PAGE_SPECIAL)) {
      // zap_present_ptes(): the PTEs of a large folio go as one batch (folio_pte_batch()).
      const head = m.head[pfn];
      const nr = m.flags[head] & PG_head ? folioPteBatch(core, pteT, i, n - k, head) : 1;
      let dirty = false;
      for (let j = 0; j < nr; j++) {
        if (ptLo(core, pteT, i + j) & _PAGE_DIRTY) dirty = true;
        ptSet(core, pteT, i + j, 0, 0);
      }
      k += nr - 1;
      addMmCounter(mm, mmCounter(core, head), -nr);
      if (dirty) m.flags[head] |= PG_dirty;
      if (folioRemoveRmapPtes(core, head, pfn, nr)) deferredSplitFolio(core, head);
      // free_pages_and_swap_cache(): free_swap_cache() before the mmu_gather's folio_put().
      if (m.flags[head] & PG_swapcache) freeSwapCache(core, head);
      folioPut(core, head, nr);
      continue;
    }
    ptSet(core, pteT, i, 0, 0);
    if (entryPresent(lo)) continue;
    const type = swpType(lo);
    if (isSwapType(type)) {
      // zap_nonpresent_ptes(): a genuine swap entry (private anonymous memory).
      addMmCounter(mm, 'MM_SWAPENTS', -1);
      freeSwapAndCacheNr(core, swpEntryVal(type, pfn), 1);
      continue;
    }
    const head = m.head[pfn];
    if (isDevicePrivateType(type) || type === SWP_DEVICE_EXCLUSIVE) {
      addMmCounter(mm, mmCounter(core, head), -1);
      if (folioRemoveRmapPtes(core, head, pfn, 1)) deferredSplitFolio(core, head);
      folioPut(core, head);
    } else if (isMigrationType(type)) {
      addMmCounter(mm, mmCounter(core, head), -1);
    }
  }
  mm.tlb.flushRange(start, end);
  ptlUnlock(core, ptl, 'zap_pte_range');
}

/**
 * Models __unmap_hugepage_range() (mm/hugetlb.c) for PMD-sized hugetlb pages: clear each huge
 * PMD under its lock, hugetlb_remove_rmap() and drop the mapping's reference (the last one
 * returns the page to the pool). hugetlb pages are not in the rss counters and have no
 * deposited table.
 */
function unmapHugepageRange(core: Core, vma: Vma, start: number, end: number): void {
  const mm = vma.mm;
  const m = core.map;
  for (let addr = Math.floor(start / PMD_SIZE) * PMD_SIZE; addr < end; addr += PMD_SIZE) {
    const pmdT = pmdTableOf(core, mm, addr, false);
    if (pmdT < 0) continue;
    const mi = pmdIndex(addr);
    const ptl = pmdLock(core, pmdT, '__unmap_hugepage_range');
    const lo = ptLo(core, pmdT, mi);
    const hi = ptHi(core, pmdT, mi);
    if (lo !== 0 || hi !== 0) {
      ptSet(core, pmdT, mi, 0, 0);
      const head = m.head[entryPfn(lo, hi)];
      if (lo & _PAGE_DIRTY) m.flags[head] |= PG_dirty;
      m.entireMapcount[head]--;
      m.largeMapcount[head]--;
      folioPut(core, head);
    }
    ptlUnlock(core, ptl, '__unmap_hugepage_range');
  }
  mm.tlb.flushRange(start, end);
}

/**
 * Models unmap_page_range()/zap_pmd_range() (mm/memory.c): zap [start, end) of a VMA, PMD by
 * PMD. A PMD seen huge without the lock is, after a window where other CPUs may change it,
 * zapped whole under pmd_trans_huge_lock() when the range covers it, or split first
 * (__split_huge_pmd()) when only part of it is zapped; a PMD split under us falls back to the
 * PTE level, which re-reads the PMD (pte_offset_map_lock() fails on a huge or none PMD and the
 * PMD is retried). cond_resched() between PMDs. `evenCows`: see {@link zapPteRange} (huge PMDs
 * are zapped whatever it says, as zap_huge_pmd() does).
 */
export function* zapRange(core: Core, vma: Vma, start: number, end: number, evenCows = true): KGen {
  if (vma.flags & VM_HUGETLB) {
    unmapHugepageRange(core, vma, start, end);
    return;
  }
  const mm = vma.mm;
  let addr = start;
  while (addr < end) {
    const next = Math.min(end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
    const pmdT = pmdTableOf(core, mm, addr, false);
    if (pmdT < 0) {
      addr = Math.min(end, (Math.floor(addr / 2 ** 30) + 1) * 2 ** 30);
      continue;
    }
    const mi = pmdIndex(addr);
    const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
    if (pmdIsHuge(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))) {
      if (core.sched.preempt('zap_pmd_range: PMD seen huge without the PMD lock')) yield RESCHED;
      if (next - addr !== PMD_SIZE) {
        yield* splitHugePmd(core, vma, pmdT, haddr, false);
      } else {
        const ptl = pmdTransHugeLock(core, pmdT, haddr, 'zap_huge_pmd');
        if (ptl) {
          zapHugePmd(core, vma, pmdT, haddr);
          ptlUnlock(core, ptl, 'zap_huge_pmd');
          addr = next;
          if (core.sched.preempt('zap_pmd_range: cond_resched')) yield RESCHED;
          continue;
        }
      }
    }
    const lo = ptLo(core, pmdT, mi);
    const hi = ptHi(core, pmdT, mi);
    if (entryNone(lo, hi)) {
      addr = next;
      continue;
    }
    const pteT = pteTableAt(core, mm, pmdT, addr, false);
    // pte_offset_map_lock() failed: the PMD became huge again under us; retry this PMD.
    if (pteT < 0) continue;
    zapPteRange(core, vma, pteT, addr, next, evenCows);
    addr = next;
    if (core.sched.preempt('zap_pmd_range: cond_resched')) yield RESCHED;
  }
}
