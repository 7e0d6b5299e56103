/**
 * The PMD level of the fault handler (mm/huge_memory.c): THP on fault, the huge zero page and
 * its write fault, reuse of an exclusive THP, the device-private PMD fault and hugetlb.
 * Each handler re-checks the PMD under the PMD lock against what the lockless read saw
 * (pmd_same()), as the kernel does: a PMD that changed in between makes the fault retry.
 */
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import {
  type Core,
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
  VM_FAULT_FALLBACK,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  type VmFault,
} from '../core.js';
import {
  allocFolio,
  folioAddNewAnonRmap,
  folioGet,
  folioPut,
  folioTrylock,
  folioUnlock,
  GFP_NOMEMALLOC,
} from '../folio.js';
import { KernelBug } from '../kernel-bug.js';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_RW,
  _PAGE_SPECIAL,
  entryNone,
  entryPfn,
  mkHi,
  mkPmdLo,
} from '../pgtable/entry.js';
import { PG_anon, PG_anon_exclusive, PG_dirty, PG_locked, PG_lru, PG_reserved } from '../phys/memmap.js';
import { spinRetry } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { anonVmaPrepare, linearPageIndex } from './anon.js';
import { addMmCounter } from './counters.js';
import { allocDeposit, depositTable } from './huge.js';
import { hugetlbAlloc } from './hugetlb.js';
import { hugetlbAddToPageCache } from './hugetlbfs.js';
import { khugepagedEnterVma } from './khugepaged-state.js';
import { folioWaitLocked, pmdLock, ptlUnlock } from './locking.js';
import { withInvalidationSync } from './notifier.js';
import { freeTable, pmdIndex, pmdTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import { countMthpStat, thpVmaAllowableOrders, thpVmaSuitableOrder } from './thp-orders.js';
import { MMU_NOTIFY_CLEAR, type MmStruct, VM_SHARED, VM_WRITE, type Vma } from './types.js';

/**
 * Models check_stable_address_space() (include/linux/oom.h): VM_FAULT_SIGBUS once the OOM reaper
 * has started on the mm (MMF_UNSTABLE), for the faults that would map a new page of it.
 */
export function checkStableAddressSpace(mm: MmStruct): number {
  return mm.unstable ? VM_FAULT_SIGBUS : 0;
}
/**
 * Models thp_vma_allowable_order(vma, vm_flags, TVA_PAGEFAULT, PMD_ORDER) with
 * do_huge_pmd_anonymous_page()'s thp_vma_suitable_order() check: an anonymous private VMA that
 * may hold an aligned PMD at haddr, under the PMD order's per-size setting
 * (hugepages-2048kB/enabled, "inherit" by default: the top-level mode) and VM_(NO)HUGEPAGE.
 */
export function thpVmaAllowable(core: Core, vma: Vma, haddr: number): boolean {
  const pmd = 1 << HPAGE_PMD_ORDER;
  if (!thpVmaAllowableOrders(core, vma, vma.flags, 'pagefault', pmd)) return false;
  return thpVmaSuitableOrder(vma, haddr, HPAGE_PMD_ORDER);
}

/** Models mm_get_huge_zero_folio(): the huge zero folio, allocated on first use; -1 if that fails. */
export function getHugeZeroFolio(core: Core, mm: MmStruct): number {
  if (core.hugeZeroPfn < 0) {
    const pfn = allocFolio(core, HPAGE_PMD_ORDER, true, GFP_NOMEMALLOC);
    if (pfn < 0) return -1;
    core.map.flags[pfn] |= PG_reserved;
    core.hugeZeroPfn = pfn;
    core.vmstat.thp_zero_page_alloc++;
  }
  mm.hugeZeroRef = true;
  return core.hugeZeroPfn;
}

/**
 * Models do_huge_pmd_anonymous_page(): map the huge zero page for a read fault, otherwise
 * allocate, zero and map a PMD-order anonymous folio. The allocation may sleep; the PMD is
 * re-checked under the PMD lock (another thread may have faulted it in meanwhile: then the new
 * folio is released and the fault retries). VM_FAULT_FALLBACK when no THP can be allocated.
 */
export function* doHugePmdAnonymousPage(
  core: Core,
  vma: Vma,
  pmdT: number,
  haddr: number,
  flags: number,
): KGen<number> {
  const mm = vma.mm;
  const mi = pmdIndex(haddr);
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  khugepagedEnterVma(core, vma, vma.flags);
  // vmf_anon_prepare() comes first, so even a huge-zero-page VMA gets an anon_vma (and fork
  // copies its PMD).
  const av = anonVmaPrepare(core, vma);
  if (!write && core.thpUseZeroPage) {
    const z = getHugeZeroFolio(core, mm);
    if (z >= 0) {
      const table = allocDeposit(core, mm);
      if (table < 0) return VM_FAULT_OOM;
      const ptl = pmdLock(core, pmdT, 'do_huge_pmd_anonymous_page');
      let ret = 0;
      if (entryNone(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))) {
        ret = checkStableAddressSpace(mm);
        if (ret) freeTable(core, mm, table);
        else {
          depositTable(mm, haddr, table);
          ptSet(core, pmdT, mi, (mkPmdLo(z, false, false, true) | _PAGE_SPECIAL) >>> 0, mkHi(z));
        }
      } else freeTable(core, mm, table);
      ptlUnlock(core, ptl, 'do_huge_pmd_anonymous_page');
      return ret;
    }
  }
  const folio = allocFolio(core, HPAGE_PMD_ORDER, true, GFP_NOMEMALLOC);
  if (folio < 0) {
    core.vmstat.thp_fault_fallback++;
    countMthpStat(core, HPAGE_PMD_ORDER, 'anon_fault_fallback');
    return VM_FAULT_FALLBACK;
  }
  if (core.sched.preempt('do_huge_pmd_anonymous_page: folio allocated, PMD lock not taken')) yield RESCHED;
  const table = allocDeposit(core, mm);
  if (table < 0) {
    folioPut(core, folio);
    return VM_FAULT_OOM;
  }
  const ptl = pmdLock(core, pmdT, '__do_huge_pmd_anonymous_page');
  const none = entryNone(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi));
  // check_stable_address_space() once the PMD is seen none.
  const ret = none ? checkStableAddressSpace(mm) : 0;
  if (!none || ret) {
    ptlUnlock(core, ptl, '__do_huge_pmd_anonymous_page');
    freeTable(core, mm, table);
    folioPut(core, folio);
    return ret;
  }
  depositTable(mm, haddr, table);
  folioAddNewAnonRmap(core, folio, av.id, linearPageIndex(vma, haddr), true);
  core.map.flags[folio] |= PG_lru | PG_dirty;
  const w = (vma.flags & VM_WRITE) !== 0;
  ptSet(core, pmdT, mi, mkPmdLo(folio, w, w, true), mkHi(folio));
  addMmCounter(mm, 'MM_ANONPAGES', HPAGE_PMD_NR);
  core.vmstat.thp_fault_alloc++;
  countMthpStat(core, HPAGE_PMD_ORDER, 'anon_fault_alloc');
  ptlUnlock(core, ptl, '__do_huge_pmd_anonymous_page');
  return 0;
}

/**
 * Models do_huge_zero_wp_pmd() (mm/huge_memory.c, since v6.12): a write or unshare fault on the
 * huge zero PMD allocates a THP and maps it in place of the zero PMD (the deposited table stays),
 * if the PMD is still the one the fault saw (writable only in a VM_WRITE VMA).
 * VM_FAULT_FALLBACK when no THP is available: the caller splits the PMD and COWs one page.
 */
export function* doHugeZeroWpPmd(
  core: Core,
  vma: Vma,
  pmdT: number,
  haddr: number,
  orig: readonly [number, number],
): KGen<number> {
  const folio = allocFolio(core, HPAGE_PMD_ORDER, true, GFP_NOMEMALLOC);
  if (folio < 0) {
    core.vmstat.thp_fault_fallback++;
    countMthpStat(core, HPAGE_PMD_ORDER, 'anon_fault_fallback');
    return VM_FAULT_FALLBACK;
  }
  const av = anonVmaPrepare(core, vma);
  const mi = pmdIndex(haddr);
  return yield* withInvalidationSync(vma.mm, haddr, haddr + PMD_SIZE, MMU_NOTIFY_CLEAR, null, () => {
    const ptl = pmdLock(core, pmdT, 'do_huge_zero_wp_pmd');
    if (ptLo(core, pmdT, mi) !== orig[0] || ptHi(core, pmdT, mi) !== orig[1]) {
      ptlUnlock(core, ptl, 'do_huge_zero_wp_pmd');
      folioPut(core, folio);
      return 0;
    }
    folioAddNewAnonRmap(core, folio, av.id, linearPageIndex(vma, haddr), true);
    core.map.flags[folio] |= PG_lru | PG_dirty;
    // map_anon_folio_pmd(): pmd_mkdirty(), then maybe_pmd_mkwrite(): writable only in a VM_WRITE
    // VMA (an unshare fault, a read-only long-term pin of the huge zero page in a read-only
    // private mapping, maps the new THP read-only).
    const w = (vma.flags & VM_WRITE) !== 0;
    ptSet(core, pmdT, mi, mkPmdLo(folio, w, true, true), mkHi(folio));
    addMmCounter(vma.mm, 'MM_ANONPAGES', HPAGE_PMD_NR);
    core.vmstat.thp_fault_alloc++;
    countMthpStat(core, HPAGE_PMD_ORDER, 'anon_fault_alloc');
    ptlUnlock(core, ptl, 'do_huge_zero_wp_pmd');
    return 0;
  });
}

/**
 * Models the reuse test of do_huge_pmd_wp_page(): an AnonExclusive THP is reused; so is an
 * anonymous THP whose only reference is this mapping (after the other side of a fork went
 * away): folio_move_anon_rmap() to this VMA's anon_vma and SetPageAnonExclusive().
 */
export function wpCanReuseAnonThp(core: Core, vma: Vma, head: number): boolean {
  const m = core.map;
  if (!(m.flags[head] & PG_anon)) return false;
  if (m.flags[head] & PG_anon_exclusive) return true;
  if (m.refcount[head] !== 1 || m.flags[head] & PG_locked || !vma.anonVma) return false;
  const n = m.folioNrPages(head);
  for (let i = 0; i < n; i++) m.mapping[head + i] = vma.anonVma.id;
  m.flags[head] |= PG_anon_exclusive;
  return true;
}

/**
 * Models do_swap_page()'s device-private branch (PTE level) and do_huge_pmd_device_private()
 * (PMD level): under the page-table lock, re-check the entry is still the one the fault saw;
 * trylock the device folio, take a reference, drop the lock and call
 * pgmap->ops->migrate_to_ram(). A locked folio means a migration is in flight: the PTE path
 * sleeps until it is unlocked (the 2026 livelock fix), the PMD path just retries.
 */
export function* deviceFault(
  core: Core,
  vma: Vma,
  addr: number,
  table: number,
  index: number,
  orig: readonly [number, number],
  flags: number,
  pte: boolean,
): KGen<number> {
  const m = core.map;
  const site = pte ? 'do_swap_page' : 'do_huge_pmd_device_private';
  const ptl = pmdLock(core, table, site);
  if (ptLo(core, table, index) !== orig[0] || ptHi(core, table, index) !== orig[1]) {
    ptlUnlock(core, ptl, site);
    return 0;
  }
  // vmf->page: the faulting device page (the head page for a PMD fault).
  const pfn = entryPfn(orig[0], orig[1]);
  const head = m.head[pfn];
  const pgmap = core.pgmapOf(pfn);
  if (!pgmap?.ops.migrateToRam) {
    ptlUnlock(core, ptl, site);
    return VM_FAULT_SIGBUS;
  }
  if (!folioTrylock(core, head)) {
    ptlUnlock(core, ptl, site);
    if (pte) yield* folioWaitLocked(core, head, 'device-private entry wait');
    else
      yield* spinRetry(
        core.sched,
        `${site}: device folio locked by another task, retry`,
        core.folioLockOwners.get(head) ?? null,
      );
    return 0;
  }
  folioGet(core, head);
  ptlUnlock(core, ptl, site);
  if (core.sched.preempt(`${site}: device folio locked, migrate_to_ram not called yet`)) yield RESCHED;
  core.vmstat.device_private_faults++;
  const vmf: VmFault = { vma, address: addr - (addr % PAGE_SIZE), page: pfn, flags, pte };
  let ret: number;
  try {
    ret = yield* pgmap.ops.migrateToRam(vmf);
  } catch (e) {
    // A modelled oops inside ->migrate_to_ram() ends the task there: the unlock_page() and
    // put_page() after it never run (and must not bury the oops under a second report).
    if (!(e instanceof KernelBug)) unlockPutPage(core, vmf.page);
    throw e;
  }
  unlockPutPage(core, vmf.page);
  return ret;
}

/**
 * do_swap_page()'s unlock_page(vmf->page); put_page(vmf->page): the folio may have been split
 * inside ->migrate_to_ram(), so the lock and reference belong to the folio holding `page` now.
 */
function unlockPutPage(core: Core, page: number): void {
  const now = core.map.head[page];
  folioUnlock(core, now);
  folioPut(core, now);
}

/** What hugetlb_wp() found under the PMD lock when it must copy: the entry it saw. */
interface HugetlbCopy {
  readonly lo: number;
  readonly hi: number;
  readonly unshare: boolean;
}

/**
 * Models hugetlb_fault() for a MAP_HUGETLB VMA (PMD-sized pages only), under the PMD lock; a
 * hugetlb_wp() that must copy finishes in {@link hugetlbWpCopy} with the lock dropped.
 */
export function* hugetlbFault(core: Core, vma: Vma, addr: number, flags: number): KGen<number> {
  const mm = vma.mm;
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  const pmdT = pmdTableOf(core, mm, haddr, true);
  if (pmdT < 0) return VM_FAULT_OOM;
  const mi = pmdIndex(haddr);
  const ptl = pmdLock(core, pmdT, 'hugetlb_fault');
  let r: number | HugetlbCopy;
  try {
    r = hugetlbFaultLocked(core, vma, pmdT, mi, haddr, flags);
  } finally {
    ptlUnlock(core, ptl, 'hugetlb_fault');
  }
  if (typeof r === 'number') return r;
  return yield* hugetlbWpCopy(core, vma, pmdT, mi, haddr, r);
}

function hugetlbFaultLocked(
  core: Core,
  vma: Vma,
  pmdT: number,
  mi: number,
  haddr: number,
  flags: number,
): number | HugetlbCopy {
  const lo = ptLo(core, pmdT, mi);
  if (lo !== 0) {
    const write = (flags & FAULT_FLAG_WRITE) !== 0;
    const unshare = (flags & FAULT_FLAG_UNSHARE) !== 0;
    if ((write || unshare) && !(lo & _PAGE_RW)) {
      if (write && !(vma.flags & VM_WRITE)) return VM_FAULT_SIGSEGV;
      return hugetlbWp(core, vma, pmdT, mi, haddr, lo, ptHi(core, pmdT, mi), unshare);
    }
    return 0;
  }
  let folio = -1;
  // hugetlb_no_page(): the page-cache folio of a file (a private mapping maps it read-only; a
  // write fault then copies it, hugetlb_wp()).
  let pageCache = false;
  if (vma.file) {
    const index = Math.floor(linearPageIndex(vma, haddr) / HPAGE_PMD_NR);
    const have = vma.file.pages.get(index);
    if (have !== undefined) {
      folio = have;
      pageCache = true;
      folioGet(core, folio);
    }
  }
  if (folio < 0) {
    folio = hugetlbAlloc(core);
    if (folio < 0) return VM_FAULT_OOM;
    if (vma.flags & VM_SHARED && vma.file) {
      const index = Math.floor(linearPageIndex(vma, haddr) / HPAGE_PMD_NR);
      hugetlbAddToPageCache(core, vma.file, index, folio);
      folioGet(core, folio);
    } else {
      // hugetlb_add_new_anon_rmap(): a new anonymous hugetlb folio is AnonExclusive (head page).
      const av = anonVmaPrepare(core, vma);
      core.map.flags[folio] |= PG_anon | PG_anon_exclusive;
      core.map.mapping[folio] = av.id;
      core.map.index[folio] = linearPageIndex(vma, haddr);
    }
  }
  core.map.entireMapcount[folio]++;
  core.map.largeMapcount[folio]++;
  const priv = pageCache && !(vma.flags & VM_SHARED);
  const w = (vma.flags & VM_WRITE) !== 0 && !priv;
  const newLo = mkPmdLo(folio, w, w, true);
  ptSet(core, pmdT, mi, newLo, mkHi(folio));
  // hugetlb_no_page(): a write fault on a private mapping of a page-cache folio breaks COW at once.
  if (priv && flags & FAULT_FLAG_WRITE)
    return hugetlbWp(core, vma, pmdT, mi, haddr, newLo, mkHi(folio), false);
  return 0;
}

/**
 * Models hugetlb_wp() (mm/hugetlb.c) for a write or unshare fault on a read-only hugetlb PMD,
 * under the PMD lock. A shared mapping is made writable. A private anonymous folio mapped once
 * is reused (folio_move_anon_rmap() + SetPageAnonExclusive() on the head page; an unshare leaves
 * it read-only): unlike do_wp_page(), hugetlb decides on folio_mapcount() alone, so a reference
 * held elsewhere (vmsplice()'s FOLL_GET) does not prevent the reuse, the case cow.c flags as
 * XFAIL for hugetlb. Otherwise the folio must be copied: the entry seen is returned for
 * {@link hugetlbWpCopy}.
 */
function hugetlbWp(
  core: Core,
  vma: Vma,
  pmdT: number,
  mi: number,
  haddr: number,
  lo: number,
  hi: number,
  unshare: boolean,
): number | HugetlbCopy {
  const m = core.map;
  const mm = vma.mm;
  if (vma.flags & VM_SHARED) {
    ptSet(core, pmdT, mi, (lo | _PAGE_RW | _PAGE_DIRTY) >>> 0, hi);
    mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
    return 0;
  }
  const old = m.head[entryPfn(lo, hi)];
  if (m.entireMapcount[old] === 1 && m.flags[old] & PG_anon) {
    if (!(m.flags[old] & PG_anon_exclusive)) {
      const av = anonVmaPrepare(core, vma);
      m.mapping[old] = av.id;
      m.flags[old] |= PG_anon_exclusive;
    }
    if (!unshare) {
      ptSet(core, pmdT, mi, (lo | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED) >>> 0, hi);
      mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
    }
    return 0;
  }
  return { lo, hi, unshare };
}

/**
 * Models the copy half of hugetlb_wp(): with the PMD lock dropped, a new folio from the pool (none:
 * VM_FAULT_OOM) gets the old one's bytes; then, inside an MMU_NOTIFY_CLEAR invalidation of the
 * huge page, under the lock again and if the entry is still the one faulted on, the copy replaces
 * it (hugetlb_remove_rmap() of the old folio, hugetlb_add_new_anon_rmap() of the copy: writable
 * for a write, read-only for an unshare) and the old folio's reference is dropped.
 */
function* hugetlbWpCopy(
  core: Core,
  vma: Vma,
  pmdT: number,
  mi: number,
  haddr: number,
  seen: HugetlbCopy,
): KGen<number> {
  const m = core.map;
  const mm = vma.mm;
  const old = m.head[entryPfn(seen.lo, seen.hi)];
  const copy = hugetlbAlloc(core);
  if (copy < 0) return VM_FAULT_OOM;
  core.frames.copy(copy, old, 1 << HPAGE_PMD_ORDER);
  const av = anonVmaPrepare(core, vma);
  if (core.sched.preempt('hugetlb_wp: copy made, PMD lock not taken')) yield RESCHED;
  return yield* withInvalidationSync(mm, haddr, haddr + PMD_SIZE, MMU_NOTIFY_CLEAR, null, () => {
    const ptl = pmdLock(core, pmdT, 'hugetlb_wp');
    try {
      if (ptLo(core, pmdT, mi) !== seen.lo || ptHi(core, pmdT, mi) !== seen.hi) {
        folioPut(core, copy);
        return 0;
      }
      m.flags[copy] |= PG_anon | PG_anon_exclusive;
      m.mapping[copy] = av.id;
      m.index[copy] = linearPageIndex(vma, haddr);
      m.entireMapcount[copy]++;
      m.largeMapcount[copy]++;
      ptSet(core, pmdT, mi, mkPmdLo(copy, !seen.unshare, !seen.unshare, true), mkHi(copy));
      mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
      m.entireMapcount[old]--;
      m.largeMapcount[old]--;
      folioPut(core, old);
      return 0;
    } finally {
      ptlUnlock(core, ptl, 'hugetlb_wp');
    }
  });
}

/** Models huge_pmd_set_accessed() and the reuse half of do_huge_pmd_wp_page(), under the PMD lock. */
export function hugePmdTouch(
  core: Core,
  vma: Vma,
  pmdT: number,
  haddr: number,
  orig: readonly [number, number],
  write: boolean,
  unshare = false,
): 'done' | 'retry' | 'cow' {
  const mi = pmdIndex(haddr);
  const wp = write || unshare;
  const ptl = pmdLock(core, pmdT, wp ? 'do_huge_pmd_wp_page' : 'huge_pmd_set_accessed');
  try {
    const lo = ptLo(core, pmdT, mi);
    const hi = ptHi(core, pmdT, mi);
    if (lo !== orig[0] || hi !== orig[1]) return 'retry';
    if (!wp || lo & _PAGE_RW) {
      ptSet(core, pmdT, mi, (lo | _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0)) >>> 0, hi);
      return 'done';
    }
    const head = core.map.head[entryPfn(lo, hi)];
    if (wpCanReuseAnonThp(core, vma, head)) {
      // do_huge_pmd_wp_page()'s reuse: an unshare leaves the PMD read-only.
      if (unshare) return 'done';
      ptSet(core, pmdT, mi, (lo | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED) >>> 0, hi);
      vma.mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
      return 'done';
    }
    return 'cow';
  } finally {
    ptlUnlock(core, ptl, wp ? 'do_huge_pmd_wp_page' : 'huge_pmd_set_accessed');
  }
}
