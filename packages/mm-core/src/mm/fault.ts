/**
 * The fault handler (mm/memory.c): handle_mm_fault() and the PTE level. The PMD is read
 * without a lock first (pmdp_get_lockless()), the PTE likewise; every handler re-checks the
 * entry under the page-table lock (pte_same()/pmd_same()) and a changed entry makes the fault
 * return 0 so the access retries, as in the kernel. Allocations may sleep: another task can
 * run between the lockless read and the locked re-check.
 */
import { HPAGE_PMD_NR, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import {
  type Core,
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
  VM_FAULT_FALLBACK,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
} from '../core.js';
import {
  allocFolio,
  folioAddNewAnonRmap,
  folioAddRmapPtes,
  folioGet,
  folioPut,
  folioRemoveRmapPtes,
  folioTrylock,
  folioUnlock,
  GFP_NOMEMALLOC,
} from '../folio.js';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  _PAGE_SPECIAL,
  _PAGE_USER,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  isDevicePrivateType,
  isMigrationType,
  isSwapType,
  mkHi,
  mkLo,
  mkPteLo,
  SWP_DEVICE_EXCLUSIVE,
  swpType,
} from '../pgtable/entry.js';
import { PG_anon, PG_anon_exclusive, PG_dirty, PG_head, PG_lru, PG_swapcache } from '../phys/memmap.js';
import type { KGen, KMaybe } from '../sched/task.js';
import { RESCHED, reschedThen } from '../sched/task.js';
import { anonVmaPrepare, linearPageIndex } from './anon.js';
import { addMmCounter, mmCounter } from './counters.js';
import { shmemFaultPmd } from './fault-file.js';
import {
  checkStableAddressSpace,
  deviceFault,
  doHugePmdAnonymousPage,
  doHugeZeroWpPmd,
  hugePmdTouch,
  hugetlbFault,
  thpVmaAllowable,
} from './fault-huge.js';
import { deferredSplitFolio, splitHugePmd } from './huge.js';
import { folioWaitLocked, pteLock, ptlUnlock } from './locking.js';
import {
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  withInvalidationNoWait,
} from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableAt, ptHi, ptLo, ptSet } from './pgtable.js';
import { pageVmaMappedCount } from './pvmw.js';
import { rmapVmas } from './rmap.js';
import { shmemGetFolio } from './shmem.js';
import { doSwapPage } from './swap-fault.js';
import { folioFreeSwap } from './swapfile.js';
import {
  countMthpStat,
  highestOrder,
  nextOrder,
  THP_ORDERS_BELOW_PMD,
  thpVmaAllowableOrders,
  thpVmaSuitableOrders,
} from './thp-orders.js';
import {
  type AnonVma,
  isCowMapping,
  MMU_NOTIFY_CLEAR,
  type MmuNotifierRange,
  VM_EXEC,
  VM_HUGETLB,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
} from './types.js';

export { checkStableAddressSpace, getHugeZeroFolio, thpVmaAllowable } from './fault-huge.js';

/** Models the zero page's PTE: present, read-only, special. */
export function zeroPteLo(core: Core): number {
  return mkLo(core.zeroPfn, _PAGE_PRESENT | _PAGE_USER | _PAGE_SPECIAL | _PAGE_ACCESSED);
}

/** True when entry i of table t still holds what the fault read without the lock (pte_same()). */
function same(core: Core, t: number, i: number, lo: number, hi: number): boolean {
  return ptLo(core, t, i) === lo && ptHi(core, t, i) === hi;
}

/**
 * Models pte_offset_map_lock()'s re-read of *vmf->pmd after a sleep: true while the PMD entry
 * of addr in table `pmdT` still maps PTE table `pteT` (a collapse meanwhile made it huge and
 * deposited the table; the kernel's lookup then fails and the fault retries).
 */
function pmdStillMaps(core: Core, pmdT: number, addr: number, pteT: number): boolean {
  const lo = ptLo(core, pmdT, pmdIndex(addr));
  return entryPresent(lo) && !entryHuge(lo) && entryPfn(lo, ptHi(core, pmdT, pmdIndex(addr))) === pteT;
}

/** Models pte_range_none(): entries [i, i + nr) of table t are all none. */
function pteRangeNone(core: Core, t: number, i: number, nr: number): boolean {
  for (let k = 0; k < nr; k++) if (!same(core, t, i + k, 0, 0)) return false;
  return true;
}

/**
 * Models alloc_anon_folio() (mm/memory.c): the orders below PMD order that the VMA allows
 * (thp_vma_allowable_orders() with the per-size settings) and that fit at addr
 * (thp_vma_suitable_orders()); from the highest, the first whose naturally aligned range of PTEs
 * is all none; then allocations from that order down, each failure counted as
 * anon_fault_fallback of its size; at last an order-0 page (folio_prealloc()). Returns the
 * zeroed folio's head pfn, or -1 when even the order-0 allocation fails.
 */
function allocAnonFolio(core: Core, vma: Vma, pteT: number, addr: number): number {
  let orders = thpVmaAllowableOrders(core, vma, vma.flags, 'pagefault', THP_ORDERS_BELOW_PMD);
  orders = thpVmaSuitableOrders(vma, addr, orders);
  if (orders) {
    let order = highestOrder(orders);
    while (orders) {
      const size = PAGE_SIZE * 2 ** order;
      if (pteRangeNone(core, pteT, pteIndex(Math.floor(addr / size) * size), 1 << order)) break;
      [orders, order] = nextOrder(orders, order);
    }
    while (orders) {
      const pfn = allocFolio(core, order, true, GFP_NOMEMALLOC);
      if (pfn >= 0) return pfn;
      countMthpStat(core, order, 'anon_fault_fallback');
      [orders, order] = nextOrder(orders, order);
    }
  }
  return allocFolio(core, 0, true);
}

/**
 * Models do_anonymous_page(): the zero page for reads, for writes a new exclusive anonymous
 * folio from alloc_anon_folio() (order 0, or an mTHP order the per-size settings enable; the
 * allocation may sleep); under the PTE lock the PTE (for a large folio every PTE of its
 * naturally aligned range) must still be none, then all of them are set at once (set_ptes()).
 */
function doAnonymousPage(
  core: Core,
  vma: Vma,
  pmdT: number,
  pteT: number,
  addr: number,
  flags: number,
): KMaybe<number> {
  const i = pteIndex(addr);
  if (!(flags & FAULT_FLAG_WRITE)) {
    const ptl = pteLock(core, pteT, 'do_anonymous_page');
    let ret = 0;
    if (same(core, pteT, i, 0, 0)) {
      ret = checkStableAddressSpace(vma.mm);
      if (ret === 0) {
        ptSet(core, pteT, i, zeroPteLo(core), mkHi(core.zeroPfn));
        core.vmstat.zero_page_faults++;
      }
    }
    ptlUnlock(core, ptl, 'do_anonymous_page');
    return ret;
  }
  const av = anonVmaPrepare(core, vma);
  const pfn = allocAnonFolio(core, vma, pteT, addr);
  if (pfn < 0) return VM_FAULT_OOM;
  if (core.sched.preempt('do_anonymous_page: page allocated, PTE lock not taken'))
    return reschedThen(mapAnonymousFolio, core, vma, pmdT, pteT, addr, pfn, av);
  return mapAnonymousFolio(core, vma, pmdT, pteT, addr, pfn, av);
}

/** The rest of {@link doAnonymousPage} once the folio is allocated: map it under the PTE lock. */
function mapAnonymousFolio(
  core: Core,
  vma: Vma,
  pmdT: number,
  pteT: number,
  addr: number,
  pfn: number,
  av: AnonVma,
): number {
  const i = pteIndex(addr);
  const nr = core.map.folioNrPages(pfn);
  const start = Math.floor(addr / (nr * PAGE_SIZE)) * (nr * PAGE_SIZE);
  const i0 = pteIndex(start);
  if (!pmdStillMaps(core, pmdT, addr, pteT)) {
    folioPut(core, pfn);
    return 0;
  }
  const ptl = pteLock(core, pteT, 'do_anonymous_page');
  if (nr === 1 ? !same(core, pteT, i, 0, 0) : !pteRangeNone(core, pteT, i0, nr)) {
    ptlUnlock(core, ptl, 'do_anonymous_page');
    folioPut(core, pfn);
    return 0;
  }
  const unstable = checkStableAddressSpace(vma.mm);
  if (unstable) {
    ptlUnlock(core, ptl, 'do_anonymous_page');
    folioPut(core, pfn);
    return unstable;
  }
  folioGet(core, pfn, nr - 1);
  addMmCounter(vma.mm, 'MM_ANONPAGES', nr);
  countMthpStat(core, core.map.folioOrder(pfn), 'anon_fault_alloc');
  folioAddNewAnonRmap(core, pfn, av.id, linearPageIndex(vma, start), false);
  core.map.flags[pfn] |= PG_lru | PG_dirty;
  const w = (vma.flags & VM_WRITE) !== 0;
  for (let k = 0; k < nr; k++) ptSet(core, pteT, i0 + k, mkPteLo(pfn + k, w, w, true), mkHi(pfn + k));
  ptlUnlock(core, ptl, 'do_anonymous_page');
  return 0;
}

/**
 * Models do_read_fault()/do_shared_fault()/do_cow_fault() for a tmpfs-backed VMA: map the
 * page-cache folio (shmem_get_folio_gfp() may allocate a huge one), or for a private write a new
 * anonymous copy of its page. SIGBUS beyond EOF. Runs under the PTE lock with the PTE re-checked
 * none. A large shmem folio is mapped whole when it fits the VMA and the PTE table and all its
 * PTEs are none (finish_fault()'s "set mappings for the whole large folio"), else one page.
 */
function doFileFault(core: Core, vma: Vma, pteT: number, addr: number, flags: number): number {
  const inode = vma.file;
  if (!inode) return VM_FAULT_SIGBUS;
  const index = linearPageIndex(vma, addr);
  if (index * PAGE_SIZE >= inode.size) return VM_FAULT_SIGBUS;
  const i = pteIndex(addr);
  if (!same(core, pteT, i, 0, 0)) return 0;
  const page = shmemGetFolio(core, inode, index, true, { vma, addr, writeEnd: 0 });
  if (page < 0) return VM_FAULT_OOM;
  // finish_fault(), after __do_fault() got the page: a private mapping of a reaped mm maps nothing.
  if (!(vma.flags & VM_SHARED)) {
    const unstable = checkStableAddressSpace(vma.mm);
    if (unstable) return unstable;
  }
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  if (write && !(vma.flags & VM_SHARED)) {
    const copy = allocFolio(core, 0, false);
    if (copy < 0) return VM_FAULT_OOM;
    core.frames.copy(copy, page, 1);
    const av = anonVmaPrepare(core, vma);
    folioAddNewAnonRmap(core, copy, av.id, index, false);
    core.map.flags[copy] |= PG_lru | PG_dirty;
    ptSet(core, pteT, i, mkPteLo(copy, true, true, true), mkHi(copy));
    addMmCounter(vma.mm, 'MM_ANONPAGES', 1);
    core.vmstat.cow_faults++;
    return 0;
  }
  const head = core.map.head[page];
  let first = page;
  let i0 = i;
  let nr = 1;
  const folioNr = core.map.folioNrPages(head);
  if (folioNr > 1) {
    const idx = page - head;
    const vmaOff = index - vma.pgoff;
    if (
      vmaOff >= idx &&
      vmaOff + (folioNr - idx) <= (vma.end - vma.start) / PAGE_SIZE &&
      i >= idx &&
      i + (folioNr - idx) <= HPAGE_PMD_NR &&
      pteRangeNone(core, pteT, i - idx, folioNr)
    ) {
      first = head;
      i0 = i - idx;
      nr = folioNr;
    }
  }
  folioGet(core, head, nr);
  folioAddRmapPtes(core, head, first, nr, false);
  const w = write || ((vma.flags & VM_SHARED) !== 0 && (vma.flags & VM_WRITE) !== 0);
  if (write) core.map.flags[head] |= PG_dirty;
  for (let k = 0; k < nr; k++) ptSet(core, pteT, i0 + k, mkPteLo(first + k, w, write, true), mkHi(first + k));
  addMmCounter(vma.mm, mmCounter(core, head), nr);
  return 0;
}

/**
 * Models the FOLIO_MM_IDS_SHARED test of __wp_can_reuse_large_anon_folio(): true when every
 * mapping of the large folio is in `mm` (no VMA of another mm on the folio's anon_vma maps a page
 * of it). Simplified: exact, where the kernel's two mm-id slots can leave the bit set after a
 * third mm mapped the folio. (The kernel's test is O(1); a VMA of another mm that no longer maps
 * the folio costs the model a walk of it.)
 */
function largeFolioMappedOnlyBy(core: Core, mm: Vma['mm'], head: number): boolean {
  const m = core.map;
  const nr = m.folioNrPages(head);
  const vmas = rmapVmas(core, head);
  // Every VMA that can map the folio is this mm's: so is every mapping the large mapcount counts
  // (the invariant checker holds the mapcounts to the page tables), and no walk is needed.
  let others = false;
  for (const { vma } of vmas) if (vma.mm !== mm) others = true;
  if (!others) return true;
  // Any mapping in another mm answers "no" (the walk stops at the first one); with none, every
  // mapping is this mm's, as above.
  for (const { vma, addr } of vmas)
    if (vma.mm !== mm && pageVmaMappedCount(core, vma, head, nr, addr, false, 1) > 0) return false;
  return true;
}

/**
 * Models __wp_can_reuse_large_anon_folio() (v6.19): a large anonymous folio is reused when more
 * than one of its pages is mapped, all its mappings are in this mm and every reference is a
 * mapping (after trying to leave the swap cache); a folio with a single page mapped is copied
 * so that it can be freed.
 */
function wpCanReuseLargeAnonFolio(core: Core, vma: Vma, head: number): boolean {
  const m = core.map;
  if (m.largeMapcount[head] <= 1) return false;
  // References beyond the mappings answer "no" whatever the mappings are (checked first, as the
  // kernel does, because it is cheap); a swap-cache folio may still drop the cache's reference.
  if (!(m.flags[head] & PG_swapcache) && m.largeMapcount[head] !== m.refcount[head]) return false;
  if (!largeFolioMappedOnlyBy(core, vma.mm, head)) return false;
  if (m.flags[head] & PG_swapcache) {
    if (!folioTrylock(core, head)) return false;
    folioFreeSwap(core, head);
    folioUnlock(core, head);
  }
  return m.largeMapcount[head] === m.refcount[head];
}

/**
 * Models wp_can_reuse_anon_folio(): an exclusive anonymous page, or a small anonymous folio
 * whose only reference is this mapping, can be written in place. A swap-cache folio first
 * tries to leave the swap cache under its lock (folio_free_swap(): only when no swap PTE
 * still holds its slot), dropping the cache's reference. A large folio follows
 * {@link wpCanReuseLargeAnonFolio}. The reused page becomes AnonExclusive.
 */
function canReuseAnon(core: Core, vma: Vma, pfn: number): boolean {
  const m = core.map;
  const head = m.head[pfn];
  if (!(m.flags[head] & PG_anon)) return false;
  if (m.flags[pfn] & PG_anon_exclusive) return true;
  if (m.flags[head] & PG_head) {
    if (!wpCanReuseLargeAnonFolio(core, vma, head)) return false;
    m.flags[pfn] |= PG_anon_exclusive;
    return true;
  }
  const swapcache = m.flags[head] & PG_swapcache ? 1 : 0;
  if (m.refcount[head] > 1 + swapcache || m.pincount[head] > 0) return false;
  if (swapcache) {
    if (!folioTrylock(core, head)) return false;
    folioFreeSwap(core, head);
    folioUnlock(core, head);
    if (m.refcount[head] !== 1) return false;
  }
  m.flags[pfn] |= PG_anon_exclusive;
  return true;
}

/**
 * Models do_wp_page(): a write fault on a present read-only PTE. Shared mappings become
 * writable; exclusive anonymous pages are reused; everything else (zero page, shared anon,
 * private file page) is copied (wp_page_copy(): the copy is made without the lock, then the
 * PTE is replaced under an MMU_NOTIFY_CLEAR invalidation if it is still the one faulted on).
 */
function doWpPage(
  core: Core,
  vma: Vma,
  pteT: number,
  addr: number,
  lo: number,
  hi: number,
  unshare = false,
): KMaybe<number> {
  const i = pteIndex(addr);
  const pfn = entryPfn(lo, hi);
  const m = core.map;
  {
    const ptl = pteLock(core, pteT, 'do_wp_page');
    try {
      if (!same(core, pteT, i, lo, hi)) return 0;
      if (vma.flags & VM_SHARED) {
        ptSet(core, pteT, i, (lo | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED) >>> 0, hi);
        m.flags[m.head[pfn]] |= PG_dirty;
        vma.mm.tlb.flushRange(addr, addr + PAGE_SIZE);
        return 0;
      }
      const zero = (lo & _PAGE_SPECIAL) !== 0 && pfn === core.zeroPfn;
      if (!zero && canReuseAnon(core, vma, pfn)) {
        // FAULT_FLAG_UNSHARE: the page is now AnonExclusive; it stays read-only.
        if (unshare) return 0;
        ptSet(core, pteT, i, (lo | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED) >>> 0, hi);
        vma.mm.tlb.flushRange(addr, addr + PAGE_SIZE);
        return 0;
      }
    } finally {
      ptlUnlock(core, ptl, 'do_wp_page');
    }
  }
  const isZero = (lo & _PAGE_SPECIAL) !== 0 && pfn === core.zeroPfn;
  const copy = allocFolio(core, 0, isZero);
  if (copy < 0) return VM_FAULT_OOM;
  if (!isZero) core.frames.copy(copy, pfn, 1);
  const av = anonVmaPrepare(core, vma);
  if (core.sched.preempt('wp_page_copy: copy made, PTE lock not taken'))
    return reschedThen(wpPageCopy, core, vma, pteT, addr, lo, hi, copy, isZero, av, unshare);
  return wpPageCopy(core, vma, pteT, addr, lo, hi, copy, isZero, av, unshare);
}

/** The rest of wp_page_copy() once the copy is made: replace the PTE under an invalidation. */
function wpPageCopy(
  core: Core,
  vma: Vma,
  pteT: number,
  addr: number,
  lo: number,
  hi: number,
  copy: number,
  isZero: boolean,
  av: AnonVma,
  unshare: boolean,
): KMaybe<number> {
  const i = pteIndex(addr);
  const pfn = entryPfn(lo, hi);
  const m = core.map;
  return withInvalidationNoWait(vma.mm, addr, addr + PAGE_SIZE, MMU_NOTIFY_CLEAR, null, () => {
    const ptl = pteLock(core, pteT, 'wp_page_copy');
    try {
      if (!same(core, pteT, i, lo, hi)) {
        folioPut(core, copy);
        return 0;
      }
      folioAddNewAnonRmap(core, copy, av.id, linearPageIndex(vma, addr), false);
      m.flags[copy] |= PG_lru | PG_dirty;
      // wp_page_copy(): an unshare maps the exclusive copy read-only and clean.
      ptSet(core, pteT, i, mkPteLo(copy, !unshare, !unshare, true), mkHi(copy));
      addMmCounter(vma.mm, 'MM_ANONPAGES', 1);
      if (!isZero) {
        const head = m.head[pfn];
        addMmCounter(vma.mm, mmCounter(core, head), -1);
        if (folioRemoveRmapPtes(core, head, pfn, 1) && m.flags[head] & PG_anon)
          deferredSplitFolio(core, head);
        folioPut(core, head);
      }
      core.vmstat.cow_faults++;
      return 0;
    } finally {
      ptlUnlock(core, ptl, 'wp_page_copy');
    }
  });
}

/**
 * Models migration_entry_wait() / pmd_migration_entry_wait(): under the page-table lock, if
 * the entry is still the migration entry, sleep until its folio is unlocked (the migration
 * finished or failed); the access then retries.
 */
function* migrationWait(core: Core, t: number, i: number, lo: number, hi: number): KGen<number> {
  const ptl = pteLock(core, t, 'migration_entry_wait');
  const still = same(core, t, i, lo, hi);
  ptlUnlock(core, ptl, 'migration_entry_wait');
  if (!still) return 0;
  const head = core.map.head[entryPfn(lo, hi)];
  yield* folioWaitLocked(core, head, 'migration entry');
  return 0;
}

/**
 * Models remove_device_exclusive_entry(): a CPU access to a device-exclusive entry revokes the
 * device's exclusive access (MMU_NOTIFY_CLEAR with the folio locked) and reinstalls the PTE.
 */
function* removeDeviceExclusive(
  core: Core,
  vma: Vma,
  pteT: number,
  addr: number,
  lo: number,
  hi: number,
): KGen<number> {
  const pfn = entryPfn(lo, hi);
  const head = core.map.head[pfn];
  if (!folioTrylock(core, head)) {
    yield* folioWaitLocked(core, head, 'device-exclusive folio lock');
    return 0;
  }
  const i = pteIndex(addr);
  // The invalidation written out, not a body closure per call (see makeDeviceExclusive()).
  const range: MmuNotifierRange = {
    mm: vma.mm,
    start: addr,
    end: addr + PAGE_SIZE,
    event: MMU_NOTIFY_CLEAR,
    owner: null,
  };
  yield* mmuNotifierInvalidateRangeStart(range);
  try {
    const ptl = pteLock(core, pteT, 'remove_device_exclusive_entry');
    if (same(core, pteT, i, lo, hi)) {
      const canWrite = (vma.flags & VM_WRITE) !== 0 && (core.map.flags[pfn] & PG_anon_exclusive) !== 0;
      // restore_exclusive_pte(): the protection is vma->vm_page_prot's.
      const none = !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC));
      ptSet(core, pteT, i, mkPteLo(pfn, canWrite && !none, canWrite && !none, true, none), hi);
    }
    ptlUnlock(core, ptl, 'remove_device_exclusive_entry');
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
  folioUnlock(core, head);
  return 0;
}

/**
 * Models handle_pte_fault(): the PTE read without the lock decides the handler; each handler
 * re-checks it under the PTE lock.
 */
function handlePteFault(core: Core, vma: Vma, pmdT: number, addr: number, flags: number): KMaybe<number> {
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  const mi = pmdIndex(addr);
  // pte_alloc(): a none PMD gets a table; a PMD that became huge under us makes the fault retry.
  const pmdLo = ptLo(core, pmdT, mi);
  const pmdHi = ptHi(core, pmdT, mi);
  if (!entryNone(pmdLo, pmdHi) && (!entryPresent(pmdLo) || entryHuge(pmdLo))) return 0;
  // finish_fault(): a PMD-sized shmem folio is mapped by do_set_pmd() while the PMD is none.
  if (entryNone(pmdLo, pmdHi) && vma.file && !vma.vmOps) {
    const r = shmemFaultPmd(core, vma, pmdT, addr, flags);
    if (r !== null) return r;
  }
  const pteT = pteTableAt(core, vma.mm, pmdT, addr, true);
  if (pteT < 0) return entryNone(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi)) ? VM_FAULT_OOM : 0;
  const i = pteIndex(addr);
  const plo = ptLo(core, pteT, i);
  const phi = ptHi(core, pteT, i);
  if (entryNone(plo, phi)) {
    if (vma.vmOps) return VM_FAULT_SIGBUS;
    if (vma.file) {
      const ptl = pteLock(core, pteT, 'do_fault');
      try {
        return doFileFault(core, vma, pteT, addr, flags);
      } finally {
        ptlUnlock(core, ptl, 'do_fault');
      }
    }
    return doAnonymousPage(core, vma, pmdT, pteT, addr, flags);
  }
  if (!entryPresent(plo)) return doSwapEntryFault(core, vma, pmdT, pteT, addr, plo, phi, flags);
  if (!(plo & _PAGE_PRESENT)) return VM_FAULT_SIGSEGV;
  const unshare = (flags & FAULT_FLAG_UNSHARE) !== 0;
  if ((write || unshare) && !(plo & _PAGE_RW)) return doWpPage(core, vma, pteT, addr, plo, phi, unshare);
  const ptl = pteLock(core, pteT, 'handle_pte_fault');
  if (same(core, pteT, i, plo, phi))
    ptSet(core, pteT, i, (plo | _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0)) >>> 0, phi);
  ptlUnlock(core, ptl, 'handle_pte_fault');
  return 0;
}

/** handle_pte_fault() on a non-present, non-none PTE: do_swap_page() and its special entries. */
function* doSwapEntryFault(
  core: Core,
  vma: Vma,
  pmdT: number,
  pteT: number,
  addr: number,
  plo: number,
  phi: number,
  flags: number,
): KGen<number> {
  const i = pteIndex(addr);
  const type = swpType(plo);
  if (isDevicePrivateType(type)) {
    if (core.sched.preempt('do_swap_page: device-private PTE seen without the PTE lock')) yield RESCHED;
    return yield* deviceFault(core, vma, addr, pteT, i, [plo, phi], flags, true);
  }
  if (isMigrationType(type)) return yield* migrationWait(core, pteT, i, plo, phi);
  if (type === SWP_DEVICE_EXCLUSIVE) return yield* removeDeviceExclusive(core, vma, pteT, addr, plo, phi);
  if (isSwapType(type))
    return yield* doSwapPage(core, vma, pmdT, pteT, addr, plo, phi, flags, (l, h) =>
      doWpPage(core, vma, pteT, addr, l, h),
    );
  return VM_FAULT_SIGBUS;
}

/**
 * Models handle_mm_fault() (mm/memory.c): resolve a fault at addr with FAULT_FLAG_* flags.
 * Returns 0 (the access retries: resolved, or the entry changed under us) or VM_FAULT_* error
 * bits. Access rights are checked here as the arch fault handler's access_error() would. The
 * caller holds the mmap_lock for read. A fault that does not sleep runs without a generator
 * (KMaybe: a generator comes back when it schedules; start it at once).
 */
export function handleMmFault(core: Core, vma: Vma, addr: number, flagsArg: number): KMaybe<number> {
  let flags = flagsArg;
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  // Models sanitize_fault_flags(): an unshare is never a write, and applies to COW mappings
  // only (elsewhere it is an ordinary read fault).
  if (flags & FAULT_FLAG_UNSHARE) {
    if (write) {
      core.warn('sanitize_fault_flags: WARN_ON_ONCE(FAULT_FLAG_UNSHARE with FAULT_FLAG_WRITE)');
      return VM_FAULT_SIGSEGV;
    }
    if (!isCowMapping(vma.flags)) flags &= ~FAULT_FLAG_UNSHARE;
  }
  const unshare = (flags & FAULT_FLAG_UNSHARE) !== 0;
  // Models access_error() (arch/x86/mm/fault.c): a read needs vma_is_accessible() (any of
  // VM_READ|VM_WRITE|VM_EXEC: x86 cannot map write-only or execute-only), a write VM_WRITE.
  if (write ? !(vma.flags & VM_WRITE) : !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC)))
    return VM_FAULT_SIGSEGV;
  core.vmstat.pgfault++;
  if (vma.flags & VM_HUGETLB) return hugetlbFault(core, vma, addr, flags);
  const pmdT = pmdTableOf(core, vma.mm, addr, true);
  if (pmdT < 0) return VM_FAULT_OOM;
  const mi = pmdIndex(addr);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  if (entryNone(lo, hi)) {
    if (thpVmaAllowable(core, vma, Math.floor(addr / PMD_SIZE) * PMD_SIZE))
      return hugeAnonymousFault(core, vma, pmdT, addr, flags);
  } else if (!entryPresent(lo)) {
    return hugePmdSwapEntryFault(core, vma, pmdT, addr, lo, hi, flags);
  } else if (entryHuge(lo)) {
    const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
    const pfn = entryPfn(lo, hi);
    if ((write || unshare) && !(lo & _PAGE_RW) && pfn === core.hugeZeroPfn)
      return hugePmdCowFault(core, vma, pmdT, addr, lo, hi, flags);
    if (hugePmdTouch(core, vma, pmdT, haddr, [lo, hi], write, unshare) !== 'cow') return 0;
    return hugePmdCowFault(core, vma, pmdT, addr, lo, hi, flags, true);
  }
  return handlePteFault(core, vma, pmdT, addr, flags);
}

/** handle_mm_fault() on a none PMD where a THP is allowed: do_huge_pmd_anonymous_page(), or the PTE level when it falls back. */
function* hugeAnonymousFault(core: Core, vma: Vma, pmdT: number, addr: number, flags: number): KGen<number> {
  const r = yield* doHugePmdAnonymousPage(core, vma, pmdT, Math.floor(addr / PMD_SIZE) * PMD_SIZE, flags);
  if (!(r & VM_FAULT_FALLBACK)) return r;
  const p = handlePteFault(core, vma, pmdT, addr, flags);
  return typeof p === 'number' ? p : yield* p;
}

/** handle_mm_fault() on a non-present PMD: a device-private PMD faults back, a migration entry waits. */
function* hugePmdSwapEntryFault(
  core: Core,
  vma: Vma,
  pmdT: number,
  addr: number,
  lo: number,
  hi: number,
  flags: number,
): KGen<number> {
  const type = swpType(lo);
  const mi = pmdIndex(addr);
  if (isDevicePrivateType(type)) {
    if (core.sched.preempt('do_huge_pmd_device_private: device-private PMD seen without the PMD lock'))
      yield RESCHED;
    return yield* deviceFault(core, vma, addr, pmdT, mi, [lo, hi], flags, false);
  }
  if (isMigrationType(type)) return yield* migrationWait(core, pmdT, mi, lo, hi);
  return VM_FAULT_SIGBUS;
}

/**
 * handle_mm_fault() on a huge PMD that must be copied: a write to the huge zero page
 * (do_huge_zero_wp_pmd()), or with `touched` a COW that hugePmdTouch() left to the fallback of
 * do_huge_pmd_wp_page(): split the PMD, COW at PTE level.
 */
function* hugePmdCowFault(
  core: Core,
  vma: Vma,
  pmdT: number,
  addr: number,
  lo: number,
  hi: number,
  flags: number,
  touched = false,
): KGen<number> {
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  if (!touched) {
    const r = yield* doHugeZeroWpPmd(core, vma, pmdT, haddr, [lo, hi]);
    if (!(r & VM_FAULT_FALLBACK)) return r;
  }
  yield* splitHugePmd(core, vma, pmdT, haddr, false);
  const p = handlePteFault(core, vma, pmdT, addr, flags);
  return typeof p === 'number' ? p : yield* p;
}
