/**
 * Anonymous THP collapse (mm/khugepaged.c): the scan of one PMD's PTE table
 * (hpage_collapse_scan_pmd()), the collapse itself (collapse_huge_page()) and MADV_COLLAPSE
 * (madvise_collapse()). khugepaged (mm/khugepaged.ts) runs the same scan with its sysfs limits;
 * MADV_COLLAPSE is not held to them (cc->is_khugepaged is false).
 *
 * As in v6.19 the scan runs under the mmap_lock for read; collapse_huge_page() drops it,
 * allocates the huge folio, and does the collapse under mmap_write_lock() after revalidating
 * the VMA and the PMD. Result codes are the kernel's enum scan_result names. Swap PTEs count
 * against max_ptes_swap and are swapped in by __collapse_huge_page_swapin() before the collapse.
 * Not modelled: userfaultfd, file/shmem collapse (collapse_file()),
 * NUMA node selection, memcg charging and the deferred "underused THP" queue.
 */
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { VM_FAULT_ERROR } from '../core.js';
import { ModelBug } from '../errors.js';
import {
  allocFolio,
  folioAddNewAnonRmap,
  folioGet,
  folioIsZoneDevice,
  folioMapcount,
  folioPut,
  folioRemoveRmapPtes,
  folioTestLarge,
  folioTrylock,
  folioUnlock,
  GFP_NOMEMALLOC,
} from '../folio.js';
import {
  _PAGE_ACCESSED,
  _PAGE_SPECIAL,
  _PAGE_SWP_UFFD_WP,
  _PAGE_UFFD_WP,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  isMigrationType,
  isSwapType,
  mkHi,
  mkPmdLo,
  swpType,
} from '../pgtable/entry.js';
import { PG_anon, PG_locked, PG_lru, PG_referenced, PG_swapcache } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { linearPageIndex } from './anon.js';
import { addMmCounter } from './counters.js';
import { folioMaybeMappedShared } from './folio-shared.js';
import { deferredSplitFolio, depositTable } from './huge.js';
import { khugepagedSettings, thpVmaAllowableOrder, thpVmaSuitablePmd } from './khugepaged-state.js';
import {
  mmapReadLock,
  mmapReadUnlock,
  mmapWriteLock,
  mmapWriteUnlock,
  pmdLock,
  pteLock,
  ptlUnlock,
} from './locking.js';
import { withInvalidationSync } from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo, ptSet, tableHi, tableLo } from './pgtable.js';
import { doSwapPage } from './swap-fault.js';
import { freeSwapCache } from './swapfile.js';
import { MMU_NOTIFY_CLEAR, type MmStruct, VM_EXEC, VM_READ, VM_WRITE, type Vma } from './types.js';

/** Models enum scan_result (mm/khugepaged.c, v6.19) for the results the model can produce. */
export type ScanResult =
  | 'SCAN_FAIL'
  | 'SCAN_SUCCEED'
  | 'SCAN_NO_PTE_TABLE'
  | 'SCAN_PMD_MAPPED'
  | 'SCAN_EXCEED_NONE_PTE'
  | 'SCAN_EXCEED_SWAP_PTE'
  | 'SCAN_EXCEED_SHARED_PTE'
  | 'SCAN_PTE_NON_PRESENT'
  | 'SCAN_PTE_UFFD_WP'
  | 'SCAN_LACK_REFERENCED_PAGE'
  | 'SCAN_PAGE_NULL'
  | 'SCAN_PAGE_COUNT'
  | 'SCAN_PAGE_LRU'
  | 'SCAN_PAGE_LOCK'
  | 'SCAN_PAGE_ANON'
  | 'SCAN_PAGE_COMPOUND'
  | 'SCAN_ANY_PROCESS'
  | 'SCAN_VMA_NULL'
  | 'SCAN_VMA_CHECK'
  | 'SCAN_ADDRESS_RANGE'
  | 'SCAN_DEL_PAGE_LRU'
  | 'SCAN_ALLOC_HUGE_PAGE_FAIL'
  | 'SCAN_CGROUP_CHARGE_FAIL'
  | 'SCAN_PAGE_FILLED'
  | 'SCAN_PTE_MAPPED_HUGEPAGE'
  | 'SCAN_TRUNCATED';

/** Models struct collapse_control: who collapses (khugepaged obeys max_ptes_* and "referenced"). */
export interface CollapseControl {
  readonly isKhugepaged: boolean;
}

/** Models collapse_test_exit(): the mm has no users left (it is being torn down). */
export function collapseTestExit(mm: MmStruct): boolean {
  return mm.users === 0;
}

/**
 * Models find_pmd_or_thp_or_none() + check_pmd_state(): the PMD table when addr's PMD points to a
 * PTE table; SCAN_NO_PTE_TABLE when there is none (no PMD table, a none PMD, or a non-present PMD
 * that is not a migration entry, e.g. a device-private PMD); SCAN_PMD_MAPPED for a huge PMD (the
 * huge zero PMD included) or a PMD migration entry ("migration success or failure will
 * eventually end up with a present PMD mapping a folio again").
 */
export function findPmdOrThpOrNone(
  core: Core,
  mm: MmStruct,
  addr: number,
): { result: ScanResult; pmdT: number } {
  const pmdT = pmdTableOf(core, mm, addr, false);
  if (pmdT < 0) return { result: 'SCAN_NO_PTE_TABLE', pmdT };
  const mi = pmdIndex(addr);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  if (entryNone(lo, hi)) return { result: 'SCAN_NO_PTE_TABLE', pmdT };
  if (!entryPresent(lo)) {
    if (isMigrationType(swpType(lo))) return { result: 'SCAN_PMD_MAPPED', pmdT };
    return { result: 'SCAN_NO_PTE_TABLE', pmdT };
  }
  if (entryHuge(lo)) return { result: 'SCAN_PMD_MAPPED', pmdT };
  return { result: 'SCAN_SUCCEED', pmdT };
}

/** The PTE table the PMD entry of addr in `pmdT` points to (the caller checked it is a table). */
function pmdTable(core: Core, pmdT: number, addr: number): number {
  const mi = pmdIndex(addr);
  return entryPfn(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi));
}

/**
 * Models is_refcount_suitable() / folio_expected_ref_count() for an anonymous folio: one
 * reference per mapping plus one per page while it is in the swap cache (a GUP reference or pin
 * makes it unsuitable).
 */
function isRefcountSuitable(core: Core, head: number): boolean {
  const m = core.map;
  const cache = m.flags[head] & PG_swapcache ? m.folioNrPages(head) : 0;
  return m.refcount[head] === folioMapcount(core, head) + cache;
}

/** Models pte_young() || folio_test_young() || folio_test_referenced() (mmu_notifier_test_young() is false). */
function referencedPte(core: Core, lo: number, head: number): boolean {
  return (lo & _PAGE_ACCESSED) !== 0 || (core.map.flags[head] & PG_referenced) !== 0;
}

/**
 * Models the PTE checks shared by hpage_collapse_scan_pmd() and __collapse_huge_page_isolate():
 * 'none' for pte_none_or_zero(), 'swap' for a swap entry (is_swap_pte() of a genuine swap slot),
 * 'nonpresent' for another software entry (non_swap_entry(): migration, device-private,
 * device-exclusive), 'uffd' for
 * pte_uffd_wp(), 'null' when vm_normal_page() gives no page or a zone-device page
 * (device-coherent), else the folio's head.
 */
function classifyPte(
  core: Core,
  lo: number,
  hi: number,
): 'none' | 'swap' | 'nonpresent' | 'uffd' | 'null' | number {
  if (entryNone(lo, hi)) return 'none';
  if (entryPresent(lo) && entryPfn(lo, hi) === core.zeroPfn) return 'none';
  if (!entryPresent(lo)) return isSwapType(swpType(lo)) ? 'swap' : 'nonpresent';
  if (lo & _PAGE_UFFD_WP) return 'uffd';
  if (lo & _PAGE_SPECIAL) return 'null';
  const head = core.map.head[entryPfn(lo, hi)];
  if (folioIsZoneDevice(core, head)) return 'null';
  return head;
}

/**
 * Models hpage_collapse_scan_pmd() (mm/khugepaged.c): with the mmap_lock held for read, look at
 * the 512 PTEs of the PMD at haddr under the PTE lock. None/zero PTEs count against
 * max_ptes_none, swap PTEs against max_ptes_swap (SCAN_EXCEED_SWAP_PTE; a uffd-wp swap PTE is
 * SCAN_PTE_UFFD_WP), a non-swap software entry aborts with SCAN_PTE_NON_PRESENT ("abort collapse
 * scan on non-swap entries": device-private, device-exclusive and migration entries), a
 * zone-device page is SCAN_PAGE_NULL, a non-anonymous folio SCAN_PAGE_ANON, a folio mapped by
 * more than one mm counts against max_ptes_shared, then SCAN_PAGE_LRU, SCAN_PAGE_LOCK and
 * SCAN_PAGE_COUNT (a reference beyond the mappings). khugepaged also needs a young PTE, and half
 * the PTEs young when some are swapped out. The max_ptes_* limits and the "referenced" rule apply
 * only to khugepaged (cc->is_khugepaged).
 * On SCAN_SUCCEED it calls collapse_huge_page(), which returns with the mmap_lock released
 * (`mmapLocked` false).
 */
export function* hpageCollapseScanPmd(
  core: Core,
  mm: MmStruct,
  haddr: number,
  cc: CollapseControl,
): KGen<{ result: ScanResult; mmapLocked: boolean }> {
  const found = findPmdOrThpOrNone(core, mm, haddr);
  if (found.result !== 'SCAN_SUCCEED') return { result: found.result, mmapLocked: true };
  const pteT = pmdTable(core, found.pmdT, haddr);
  const ptl = pteLock(core, pteT, 'hpage_collapse_scan_pmd');
  const scan = { unmapped: 0 };
  const result = scanPtes(core, pteT, cc, scan);
  ptlUnlock(core, ptl, 'hpage_collapse_scan_pmd');
  if (result !== 'SCAN_SUCCEED') return { result, mmapLocked: true };
  return { result: yield* collapseHugePage(core, mm, haddr, scan.unmapped, cc), mmapLocked: false };
}

/** The PTE loop of hpage_collapse_scan_pmd() over table pteT, under its lock; counts swap PTEs in `out.unmapped`. */
function scanPtes(core: Core, pteT: number, cc: CollapseControl, out: { unmapped: number }): ScanResult {
  const s = khugepagedSettings(core);
  const m = core.map;
  let none = 0;
  let shared = 0;
  let referenced = 0;
  let unmapped = 0;
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    const lo = ptLo(core, pteT, i);
    const hi = ptHi(core, pteT, i);
    const c = classifyPte(core, lo, hi);
    if (c === 'none') {
      if (!cc.isKhugepaged || ++none <= s.maxPtesNone) continue;
      core.vmstat.thp_scan_exceed_none_pte++;
      return 'SCAN_EXCEED_NONE_PTE';
    }
    if (c === 'swap') {
      ++unmapped;
      if (!cc.isKhugepaged || unmapped <= s.maxPtesSwap) {
        // "Always be strict with uffd-wp enabled swap entries."
        if (lo & _PAGE_SWP_UFFD_WP) return 'SCAN_PTE_UFFD_WP';
        continue;
      }
      core.vmstat.thp_scan_exceed_swap_pte++;
      return 'SCAN_EXCEED_SWAP_PTE';
    }
    if (c === 'nonpresent') return 'SCAN_PTE_NON_PRESENT';
    if (c === 'uffd') return 'SCAN_PTE_UFFD_WP';
    if (c === 'null') return 'SCAN_PAGE_NULL';
    const head = c;
    if (!(m.flags[head] & PG_anon)) return 'SCAN_PAGE_ANON';
    // "We treat a single page as shared if any part of the THP is shared."
    if (folioMaybeMappedShared(core, head) && ++shared > s.maxPtesShared && cc.isKhugepaged) {
      core.vmstat.thp_scan_exceed_share_pte++;
      return 'SCAN_EXCEED_SHARED_PTE';
    }
    if (!(m.flags[head] & PG_lru)) return 'SCAN_PAGE_LRU';
    if (m.flags[head] & PG_locked) return 'SCAN_PAGE_LOCK';
    if (!isRefcountSuitable(core, head)) return 'SCAN_PAGE_COUNT';
    if (cc.isKhugepaged && referencedPte(core, lo, head)) referenced++;
  }
  out.unmapped = unmapped;
  if (cc.isKhugepaged && (!referenced || (unmapped && referenced < HPAGE_PMD_NR / 2)))
    return 'SCAN_LACK_REFERENCED_PAGE';
  return 'SCAN_SUCCEED';
}

/**
 * Models hugepage_vma_revalidate(): after the mmap_lock was dropped, the VMA at addr must still
 * be one a collapse at the PMD may use.
 */
export function hugepageVmaRevalidate(
  core: Core,
  mm: MmStruct,
  addr: number,
  expectAnon: boolean,
  cc: CollapseControl,
): { result: ScanResult; vma: Vma | null } {
  if (collapseTestExit(mm)) return { result: 'SCAN_ANY_PROCESS', vma: null };
  const vma = mm.findVma(addr) ?? null;
  if (!vma) return { result: 'SCAN_VMA_NULL', vma };
  if (!thpVmaSuitablePmd(vma, addr)) return { result: 'SCAN_ADDRESS_RANGE', vma };
  if (!thpVmaAllowableOrder(core, vma, vma.flags, cc.isKhugepaged ? 'khugepaged' : 'forced'))
    return { result: 'SCAN_VMA_CHECK', vma };
  if (expectAnon && (!vma.anonVma || !vma.isAnonymous)) return { result: 'SCAN_PAGE_ANON', vma };
  return { result: 'SCAN_SUCCEED', vma };
}

/** A folio __collapse_huge_page_isolate() locked and took off the LRU. */
function releasePteFolio(core: Core, head: number): void {
  folioUnlock(core, head);
  // folio_putback_lru()
  core.map.flags[head] |= PG_lru;
  folioPut(core, head);
}

/**
 * Models __collapse_huge_page_isolate(): with the PMD cleared and the PTE lock held, check the
 * PTEs again and lock and isolate every folio (a large folio once, on the compound list). The
 * refcount must still equal the mappings. On failure everything isolated so far is released.
 */
function collapseHugePageIsolate(
  core: Core,
  pteT: number,
  cc: CollapseControl,
  isolated: number[],
): ScanResult {
  const s = khugepagedSettings(core);
  const m = core.map;
  let none = 0;
  let shared = 0;
  let referenced = 0;
  const fail = (r: ScanResult): ScanResult => {
    for (const h of isolated) releasePteFolio(core, h);
    isolated.length = 0;
    return r;
  };
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    const lo = ptLo(core, pteT, i);
    const hi = ptHi(core, pteT, i);
    const c = classifyPte(core, lo, hi);
    if (c === 'none') {
      if (!cc.isKhugepaged || ++none <= s.maxPtesNone) continue;
      core.vmstat.thp_scan_exceed_none_pte++;
      return fail('SCAN_EXCEED_NONE_PTE');
    }
    // After __collapse_huge_page_swapin() a swap PTE left (or new) is non-present too.
    if (c === 'nonpresent' || c === 'swap') return fail('SCAN_PTE_NON_PRESENT');
    if (c === 'uffd') return fail('SCAN_PTE_UFFD_WP');
    if (c === 'null') return fail('SCAN_PAGE_NULL');
    const head = c;
    if (!(m.flags[head] & PG_anon)) return fail('SCAN_PAGE_ANON');
    if (folioMaybeMappedShared(core, head) && ++shared > s.maxPtesShared && cc.isKhugepaged) {
      core.vmstat.thp_scan_exceed_share_pte++;
      return fail('SCAN_EXCEED_SHARED_PTE');
    }
    if (!(folioTestLarge(core, head) && isolated.includes(head))) {
      if (!folioTrylock(core, head)) return fail('SCAN_PAGE_LOCK');
      if (!isRefcountSuitable(core, head)) {
        folioUnlock(core, head);
        return fail('SCAN_PAGE_COUNT');
      }
      // folio_isolate_lru()
      if (!(m.flags[head] & PG_lru)) {
        folioUnlock(core, head);
        return fail('SCAN_DEL_PAGE_LRU');
      }
      m.flags[head] &= ~PG_lru;
      folioGet(core, head);
      isolated.push(head);
    }
    if (cc.isKhugepaged && referencedPte(core, lo, head)) referenced++;
  }
  if (cc.isKhugepaged && !referenced) return fail('SCAN_LACK_REFERENCED_PAGE');
  return 'SCAN_SUCCEED';
}

/**
 * Models __collapse_huge_page_copy() + __collapse_huge_page_copy_succeeded(): copy each page
 * into the new folio (none and zero PTEs become zero pages of it), then clear the PTEs, drop the
 * old folios' rmaps and references (a large source folio a batch at a time) and put the
 * isolated folios back. MM_ANONPAGES ends counting the whole new folio. A source folio still
 * mapped elsewhere (COW-shared with a child) keeps the child's mappings.
 */
function collapseHugePageCopy(core: Core, vma: Vma, pteT: number, folio: number, isolated: number[]): void {
  const m = core.map;
  const mm = vma.mm;
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    const lo = ptLo(core, pteT, i);
    const hi = ptHi(core, pteT, i);
    if (entryNone(lo, hi) || entryPfn(lo, hi) === core.zeroPfn) core.frames.zero(folio + i, 1);
    else core.frames.copy(folio + i, entryPfn(lo, hi), 1);
  }
  for (let i = 0; i < HPAGE_PMD_NR; ) {
    const lo = ptLo(core, pteT, i);
    const hi = ptHi(core, pteT, i);
    if (entryNone(lo, hi) || entryPfn(lo, hi) === core.zeroPfn) {
      addMmCounter(mm, 'MM_ANONPAGES', 1);
      ptSet(core, pteT, i, 0, 0);
      i++;
      continue;
    }
    const pfn = entryPfn(lo, hi);
    const head = m.head[pfn];
    // folio_pte_batch(): consecutive PTEs mapping consecutive pages of the same large folio.
    let nr = 1;
    if (folioTestLarge(core, head))
      while (i + nr < HPAGE_PMD_NR) {
        const l2 = ptLo(core, pteT, i + nr);
        const h2 = ptHi(core, pteT, i + nr);
        if (!entryPresent(l2) || entryPfn(l2, h2) !== pfn + nr || m.head[pfn + nr] !== head) break;
        nr++;
      }
    for (let k = 0; k < nr; k++) ptSet(core, pteT, i + k, 0, 0);
    folioRemoveRmapPtes(core, head, pfn, nr);
    folioPut(core, head, nr);
    i += nr;
  }
  for (const h of isolated) {
    // __folio_remove_rmap(): a large folio left partially mapped goes to the deferred split queue.
    if (folioTestLarge(core, h) && m.largeMapcount[h] > 0) {
      const n = m.folioNrPages(h);
      for (let k = 0; k < n; k++)
        if (m.mapcount[h + k] === 0) {
          deferredSplitFolio(core, h);
          break;
        }
    }
    // free_page_and_swap_cache() / free_swap_cache(): an unmapped swap-cache folio leaves the cache.
    folioUnlock(core, h);
    if (m.flags[h] & PG_swapcache) freeSwapCache(core, h);
    core.map.flags[h] |= PG_lru;
    folioPut(core, h);
  }
}

/**
 * Models collapse_huge_page() (mm/khugepaged.c). Called with the mmap_lock held for read and
 * returns with it released: allocate the folio (alloc_charge_folio(): THP_COLLAPSE_ALLOC or
 * THP_COLLAPSE_ALLOC_FAILED) without the lock, take mmap_write_lock(), revalidate the VMA and
 * the PMD (check_pmd_still_valid()), then under the anon_vma lock and an MMU_NOTIFY_CLEAR
 * invalidation clear the PMD (pmdp_collapse_flush()), isolate the PTEs' folios
 * (__collapse_huge_page_isolate(); on failure the PMD is put back), copy, and map the new folio
 * by a dirty huge PMD with the VMA's protection, the emptied PTE table deposited.
 */
export function* collapseHugePage(
  core: Core,
  mm: MmStruct,
  haddr: number,
  unmapped: number,
  cc: CollapseControl,
): KGen<ScanResult> {
  mmapReadUnlock(core, mm, 'collapse_huge_page');
  const folio = allocFolio(core, HPAGE_PMD_ORDER, false, GFP_NOMEMALLOC);
  if (folio < 0) {
    core.vmstat.thp_collapse_alloc_failed++;
    return 'SCAN_ALLOC_HUGE_PAGE_FAIL';
  }
  core.vmstat.thp_collapse_alloc++;
  let result: ScanResult = 'SCAN_FAIL';
  try {
    if (core.sched.preempt('collapse_huge_page: folio allocated, mmap_lock not held')) yield RESCHED;
    if (unmapped) {
      // Revalidate under the read lock and swap the missing pages in; on failure
      // __collapse_huge_page_swapin() returns with the mmap_lock released.
      yield* mmapReadLock(core, mm, 'collapse_huge_page');
      const rv = hugepageVmaRevalidate(core, mm, haddr, true, cc);
      const found = rv.result === 'SCAN_SUCCEED' ? findPmdOrThpOrNone(core, mm, haddr) : rv;
      if (found.result !== 'SCAN_SUCCEED' || !rv.vma) {
        mmapReadUnlock(core, mm, 'collapse_huge_page');
        result = found.result;
        return result;
      }
      result = yield* collapseHugePageSwapin(core, rv.vma, haddr);
      if (result !== 'SCAN_SUCCEED') return result;
      mmapReadUnlock(core, mm, 'collapse_huge_page');
    }
    yield* mmapWriteLock(core, mm, 'collapse_huge_page');
    try {
      result = yield* collapseHugePageLocked(core, mm, haddr, cc, folio);
    } finally {
      mmapWriteUnlock(core, mm, 'collapse_huge_page');
    }
  } finally {
    if (result !== 'SCAN_SUCCEED') folioPut(core, folio);
  }
  return result;
}

/** Models do_swap_page()'s caller-supplied do_wp_page(): never reached, swap-in here is a read fault. */
function* noWpFault(): KGen<number> {
  throw new ModelBug('__collapse_huge_page_swapin: do_swap_page() asked for do_wp_page() on a read fault');
}

/**
 * Models __collapse_huge_page_swapin() (mm/khugepaged.c): with the mmap_lock held for read, fault
 * every swap PTE of the PMD at haddr back in with do_swap_page() (a read fault,
 * FAULT_FLAG_ALLOW_RETRY). A PTE table gone is SCAN_NO_PTE_TABLE; a fault that had to retry (the
 * swap PTE is still there: the folio was locked) is SCAN_PAGE_LOCK, an error SCAN_FAIL; on any
 * failure the mmap_lock is released, as do_swap_page() does for VM_FAULT_RETRY.
 */
export function* collapseHugePageSwapin(core: Core, vma: Vma, haddr: number): KGen<ScanResult> {
  const mm = vma.mm;
  for (let address = haddr; address < haddr + PMD_SIZE; address += PAGE_SIZE) {
    // pte_offset_map_ro_nolock(): the PMD must still point to a PTE table.
    const found = findPmdOrThpOrNone(core, mm, haddr);
    if (found.result !== 'SCAN_SUCCEED') {
      mmapReadUnlock(core, mm, '__collapse_huge_page_swapin');
      return 'SCAN_NO_PTE_TABLE';
    }
    const pteT = pmdTable(core, found.pmdT, haddr);
    const i = pteIndex(address);
    const lo = ptLo(core, pteT, i);
    const hi = ptHi(core, pteT, i);
    if (classifyPte(core, lo, hi) !== 'swap') continue;
    const ret = yield* doSwapPage(core, vma, found.pmdT, pteT, address, lo, hi, 0, noWpFault);
    if (ret & VM_FAULT_ERROR) {
      mmapReadUnlock(core, mm, '__collapse_huge_page_swapin');
      return 'SCAN_FAIL';
    }
    // The model's do_swap_page() waits for a locked folio and returns instead of VM_FAULT_RETRY:
    // the swap PTE is still there.
    if (ptLo(core, pteT, i) === lo && ptHi(core, pteT, i) === hi) {
      mmapReadUnlock(core, mm, '__collapse_huge_page_swapin');
      return 'SCAN_PAGE_LOCK';
    }
  }
  return 'SCAN_SUCCEED';
}

/** collapse_huge_page() under mmap_write_lock(): from hugepage_vma_revalidate() to set_pmd_at(). */
function* collapseHugePageLocked(
  core: Core,
  mm: MmStruct,
  haddr: number,
  cc: CollapseControl,
  folio: number,
): KGen<ScanResult> {
  // Revalidate again: the mmap_lock was dropped since the scan (and since the swap-in).
  const rv = hugepageVmaRevalidate(core, mm, haddr, true, cc);
  if (rv.result !== 'SCAN_SUCCEED' || !rv.vma) return rv.result;
  const vma = rv.vma;
  // check_pmd_still_valid()
  const found = findPmdOrThpOrNone(core, mm, haddr);
  if (found.result !== 'SCAN_SUCCEED') return found.result;
  const pmdT = found.pmdT;
  const mi = pmdIndex(haddr);
  const av = vma.anonVma;
  if (!av) return 'SCAN_PAGE_ANON';
  yield* av.root.rwsem.downWrite(core.sched, 'collapse_huge_page');
  let pteT = -1;
  let result: ScanResult;
  const isolated: number[] = [];
  try {
    pteT = yield* withInvalidationSync(mm, haddr, haddr + PMD_SIZE, MMU_NOTIFY_CLEAR, null, () => {
      // pmdp_collapse_flush() under the PMD lock.
      const pmdPtl = pmdLock(core, pmdT, 'collapse_huge_page');
      const t = pmdTable(core, pmdT, haddr);
      ptSet(core, pmdT, mi, 0, 0);
      mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
      ptlUnlock(core, pmdPtl, 'collapse_huge_page');
      return t;
    });
    const ptePtl = pteLock(core, pteT, '__collapse_huge_page_isolate');
    result = collapseHugePageIsolate(core, pteT, cc, isolated);
    ptlUnlock(core, ptePtl, '__collapse_huge_page_isolate');
    if (result !== 'SCAN_SUCCEED') {
      // pmd_populate(): the PTE table goes back.
      const pmdPtl = pmdLock(core, pmdT, 'collapse_huge_page');
      ptSet(core, pmdT, mi, tableLo(pteT), tableHi(pteT));
      ptlUnlock(core, pmdPtl, 'collapse_huge_page');
      return result;
    }
  } finally {
    av.root.rwsem.upWrite(core.sched, 'collapse_huge_page');
  }
  const ptl = pteLock(core, pteT, '__collapse_huge_page_copy');
  collapseHugePageCopy(core, vma, pteT, folio, isolated);
  ptlUnlock(core, ptl, '__collapse_huge_page_copy');
  // folio_mk_pmd(folio, vma->vm_page_prot), maybe_pmd_mkwrite(pmd_mkdirty()): protections come
  // from the VMA (PROT_NONE stays inaccessible, read-only stays read-only).
  const w = (vma.flags & VM_WRITE) !== 0;
  const protnone = !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC));
  const pmdPtl = pmdLock(core, pmdT, 'collapse_huge_page');
  folioAddNewAnonRmap(core, folio, av.id, linearPageIndex(vma, haddr), true);
  core.map.flags[folio] |= PG_lru;
  depositTable(mm, haddr, pteT);
  ptSet(core, pmdT, mi, mkPmdLo(folio, w, true, true, protnone), mkHi(folio));
  ptlUnlock(core, pmdPtl, 'collapse_huge_page');
  return 'SCAN_SUCCEED';
}
