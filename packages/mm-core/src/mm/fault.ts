import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import {
  type Core,
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
  folioAddRmapPtes,
  folioGet,
  folioPut,
  folioRemoveRmapPtes,
  folioTrylock,
  folioUnlock,
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
  mkHi,
  mkLo,
  mkPmdLo,
  mkPteLo,
  SWP_DEVICE_EXCLUSIVE,
  swpType,
} from '../pgtable/entry.js';
import {
  PG_anon,
  PG_anon_exclusive,
  PG_dirty,
  PG_head,
  PG_locked,
  PG_lru,
  PG_reserved,
} from '../phys/memmap.js';
import { anonVmaPrepare, linearPageIndex } from './anon.js';
import { addMmCounter, mmCounter } from './counters.js';
import { allocDeposit, depositTable, splitHugePmdLocked } from './huge.js';
import { hugetlbAlloc } from './hugetlb.js';
import { withInvalidation } from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableAt, ptHi, ptLo, ptSet } from './pgtable.js';
import { shmemGetFolio } from './shmem.js';
import {
  MMU_NOTIFY_CLEAR,
  type MmStruct,
  VM_EXEC,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_NOHUGEPAGE,
  VM_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WRITE,
  type Vma,
} from './types.js';

/**
 * Models thp_vma_allowable_order() for PMD order on a page fault: an anonymous private VMA
 * that may hold an aligned PMD at haddr, under the global THP mode and VM_(NO)HUGEPAGE.
 */
export function thpVmaAllowable(core: Core, vma: Vma, haddr: number, ignoreMode = false): boolean {
  if (!vma.isAnonymous || vma.flags & (VM_SHARED | VM_SPECIAL | VM_HUGETLB | VM_NOHUGEPAGE)) return false;
  if (haddr < vma.start || haddr + PMD_SIZE > vma.end) return false;
  if (ignoreMode) return true;
  if (core.thpMode === 'always') return true;
  return core.thpMode === 'madvise' && (vma.flags & VM_HUGEPAGE) !== 0;
}

/** Models mm_get_huge_zero_folio(): the huge zero folio, allocated on first use; -1 if that fails. */
export function getHugeZeroFolio(core: Core, mm: MmStruct): number {
  if (core.hugeZeroPfn < 0) {
    const pfn = allocFolio(core, HPAGE_PMD_ORDER, true);
    if (pfn < 0) return -1;
    core.map.flags[pfn] |= PG_reserved;
    core.hugeZeroPfn = pfn;
    core.vmstat.thp_zero_page_alloc++;
  }
  mm.hugeZeroRef = true;
  return core.hugeZeroPfn;
}

/** Models the zero page's PTE: present, read-only, special. */
export function zeroPteLo(core: Core): number {
  return mkLo(core.zeroPfn, _PAGE_PRESENT | _PAGE_USER | _PAGE_SPECIAL | _PAGE_ACCESSED);
}

/**
 * Models do_huge_pmd_anonymous_page(): map the huge zero page for a read fault, otherwise
 * allocate, zero and map a PMD-order anonymous folio. VM_FAULT_FALLBACK when it cannot.
 */
export function doHugePmdAnonymousPage(
  core: Core,
  vma: Vma,
  pmdT: number,
  haddr: number,
  flags: number,
): number {
  const mm = vma.mm;
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  // vmf_anon_prepare() comes first, so even a huge-zero-page VMA gets an anon_vma (and fork
  // copies its PMD).
  const av = anonVmaPrepare(core, vma);
  if (!write && core.thpUseZeroPage) {
    const z = getHugeZeroFolio(core, mm);
    if (z >= 0) {
      const table = allocDeposit(core, mm);
      if (table < 0) return VM_FAULT_OOM;
      depositTable(mm, haddr, table);
      ptSet(core, pmdT, pmdIndex(haddr), (mkPmdLo(z, false, false, true) | _PAGE_SPECIAL) >>> 0, mkHi(z));
      return 0;
    }
  }
  const folio = allocFolio(core, HPAGE_PMD_ORDER, true);
  if (folio < 0) {
    core.vmstat.thp_fault_fallback++;
    return VM_FAULT_FALLBACK;
  }
  const table = allocDeposit(core, mm);
  if (table < 0) {
    folioPut(core, folio);
    return VM_FAULT_OOM;
  }
  depositTable(mm, haddr, table);
  folioAddNewAnonRmap(core, folio, av.id, linearPageIndex(vma, haddr), true);
  core.map.flags[folio] |= PG_lru | PG_dirty;
  const w = (vma.flags & VM_WRITE) !== 0;
  ptSet(core, pmdT, pmdIndex(haddr), mkPmdLo(folio, w, w, true), mkHi(folio));
  addMmCounter(mm, 'MM_ANONPAGES', HPAGE_PMD_NR);
  core.vmstat.thp_fault_alloc++;
  return 0;
}

/**
 * Models do_huge_zero_wp_pmd() (mm/huge_memory.c, since v6.12): a write fault on the huge zero
 * PMD allocates a THP and maps it in place of the zero PMD (the deposited table stays).
 * VM_FAULT_FALLBACK when no THP is available: the caller splits the PMD and COWs one page.
 */
function doHugeZeroWpPmd(core: Core, vma: Vma, pmdT: number, haddr: number): number {
  const folio = allocFolio(core, HPAGE_PMD_ORDER, true);
  if (folio < 0) {
    core.vmstat.thp_fault_fallback++;
    return VM_FAULT_FALLBACK;
  }
  const av = anonVmaPrepare(core, vma);
  withInvalidation(vma.mm, haddr, haddr + PMD_SIZE, MMU_NOTIFY_CLEAR, null, () => {
    folioAddNewAnonRmap(core, folio, av.id, linearPageIndex(vma, haddr), true);
    core.map.flags[folio] |= PG_lru | PG_dirty;
    ptSet(core, pmdT, pmdIndex(haddr), mkPmdLo(folio, true, true, true), mkHi(folio));
    addMmCounter(vma.mm, 'MM_ANONPAGES', HPAGE_PMD_NR);
  });
  core.vmstat.thp_fault_alloc++;
  return 0;
}

/**
 * Models the reuse test of do_huge_pmd_wp_page(): an AnonExclusive THP is reused; so is an
 * anonymous THP whose only reference is this mapping (after the other side of a fork went
 * away): folio_move_anon_rmap() to this VMA's anon_vma and SetPageAnonExclusive().
 */
function wpCanReuseAnonThp(core: Core, vma: Vma, head: number): boolean {
  const m = core.map;
  if (!(m.flags[head] & PG_anon)) return false;
  if (m.flags[head] & PG_anon_exclusive) return true;
  if (m.refcount[head] !== 1 || m.flags[head] & PG_locked || !vma.anonVma) return false;
  const n = m.folioNrPages(head);
  for (let i = 0; i < n; i++) m.mapping[head + i] = vma.anonVma.id;
  m.flags[head] |= PG_anon_exclusive;
  return true;
}

/** Models do_anonymous_page(): zero page for reads, a new exclusive anonymous page for writes. */
function doAnonymousPage(core: Core, vma: Vma, pteT: number, addr: number, flags: number): number {
  const i = pteIndex(addr);
  if (!(flags & FAULT_FLAG_WRITE)) {
    ptSet(core, pteT, i, zeroPteLo(core), mkHi(core.zeroPfn));
    core.vmstat.zero_page_faults++;
    return 0;
  }
  const pfn = allocFolio(core, 0, true);
  if (pfn < 0) return VM_FAULT_OOM;
  const av = anonVmaPrepare(core, vma);
  folioAddNewAnonRmap(core, pfn, av.id, linearPageIndex(vma, addr), false);
  core.map.flags[pfn] |= PG_lru | PG_dirty;
  const w = (vma.flags & VM_WRITE) !== 0;
  ptSet(core, pteT, i, mkPteLo(pfn, w, w, true), mkHi(pfn));
  addMmCounter(vma.mm, 'MM_ANONPAGES', 1);
  return 0;
}

/**
 * Models do_read_fault()/do_shared_fault()/do_cow_fault() for a tmpfs-backed VMA: map the
 * page-cache folio, or for a private write a new anonymous copy of it. SIGBUS beyond EOF.
 */
function doFileFault(core: Core, vma: Vma, pteT: number, addr: number, flags: number): number {
  const inode = vma.file;
  if (!inode) return VM_FAULT_SIGBUS;
  const index = linearPageIndex(vma, addr);
  if (index * PAGE_SIZE >= inode.size) return VM_FAULT_SIGBUS;
  const page = shmemGetFolio(core, inode, index, true);
  if (page < 0) return VM_FAULT_OOM;
  const i = pteIndex(addr);
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
  folioGet(core, page);
  folioAddRmapPtes(core, page, page, 1, false);
  const w = write || ((vma.flags & VM_SHARED) !== 0 && (vma.flags & VM_WRITE) !== 0);
  if (write) core.map.flags[page] |= PG_dirty;
  ptSet(core, pteT, i, mkPteLo(page, w, write, true), mkHi(page));
  addMmCounter(vma.mm, 'MM_SHMEMPAGES', 1);
  return 0;
}

/**
 * Models wp_can_reuse_anon_folio(): an exclusive anonymous page, or a small anonymous folio
 * whose only reference is this mapping, can be written in place.
 */
function canReuseAnon(core: Core, pfn: number): boolean {
  const m = core.map;
  const head = m.head[pfn];
  if (!(m.flags[head] & PG_anon)) return false;
  if (m.flags[pfn] & PG_anon_exclusive) return true;
  if (m.flags[head] & PG_head) return false;
  if (m.refcount[head] !== 1 || m.pincount[head] > 0) return false;
  m.flags[pfn] |= PG_anon_exclusive;
  return true;
}

/**
 * Models do_wp_page(): a write fault on a present read-only PTE. Shared mappings become
 * writable; exclusive anonymous pages are reused; everything else (zero page, shared anon,
 * private file page) is copied (wp_page_copy()).
 */
function doWpPage(core: Core, vma: Vma, pteT: number, addr: number, lo: number, hi: number): number {
  const i = pteIndex(addr);
  const pfn = entryPfn(lo, hi);
  const m = core.map;
  if (vma.flags & VM_SHARED) {
    ptSet(core, pteT, i, (lo | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED) >>> 0, hi);
    m.flags[m.head[pfn]] |= PG_dirty;
    vma.mm.tlb.flushRange(addr, addr + PAGE_SIZE);
    return 0;
  }
  const isZero = (lo & _PAGE_SPECIAL) !== 0 && pfn === core.zeroPfn;
  if (!isZero && canReuseAnon(core, pfn)) {
    ptSet(core, pteT, i, (lo | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED) >>> 0, hi);
    vma.mm.tlb.flushRange(addr, addr + PAGE_SIZE);
    return 0;
  }
  const copy = allocFolio(core, 0, isZero);
  if (copy < 0) return VM_FAULT_OOM;
  if (!isZero) core.frames.copy(copy, pfn, 1);
  const av = anonVmaPrepare(core, vma);
  return withInvalidation(vma.mm, addr, addr + PAGE_SIZE, MMU_NOTIFY_CLEAR, null, () => {
    folioAddNewAnonRmap(core, copy, av.id, linearPageIndex(vma, addr), false);
    m.flags[copy] |= PG_lru | PG_dirty;
    ptSet(core, pteT, i, mkPteLo(copy, true, true, true), mkHi(copy));
    addMmCounter(vma.mm, 'MM_ANONPAGES', 1);
    if (!isZero) {
      const head = m.head[pfn];
      addMmCounter(vma.mm, mmCounter(core, head), -1);
      folioRemoveRmapPtes(core, head, pfn, 1);
      folioPut(core, head);
    }
    core.vmstat.cow_faults++;
    return 0;
  });
}

/**
 * Models do_swap_page()'s device-private branch and do_huge_pmd_device_private(): trylock the
 * device folio, take a reference and call pgmap->ops->migrate_to_ram(). A locked folio means
 * a migration is in flight: the PTE path waits for the unlock (the 2026 livelock fix), the
 * PMD path just retries.
 */
function deviceFault(core: Core, vma: Vma, addr: number, pfn: number, flags: number, pte: boolean): number {
  const m = core.map;
  const head = m.head[pfn];
  const pgmap = core.pgmapOf(pfn);
  if (!pgmap?.ops.migrateToRam) return VM_FAULT_SIGBUS;
  if (!folioTrylock(core, head)) {
    core.wait('device-private folio lock', () => !(m.flags[head] & PG_locked));
    return 0;
  }
  folioGet(core, head);
  core.vmstat.device_private_faults++;
  const vmf: VmFault = { vma, address: addr - (addr % PAGE_SIZE), page: pte ? pfn : head, flags, pte };
  let ret: number;
  try {
    ret = pgmap.ops.migrateToRam(vmf);
  } finally {
    // The folio may have been split inside: the lock and reference now belong to the
    // folio that contains the faulting page.
    const now = m.head[vmf.page];
    folioUnlock(core, now);
    folioPut(core, now);
  }
  return ret;
}

/** Models migration_entry_wait()/pmd_migration_entry_wait(): sleep until the entry is gone. */
function migrationWait(core: Core, read: () => [number, number]): number {
  core.wait('migration entry', () => {
    const [lo, hi] = read();
    return !(isMigrationType(swpType(lo)) && !entryPresent(lo) && !entryNone(lo, hi));
  });
  return 0;
}

/**
 * Models restore_exclusive_pte() via remove_device_exclusive_entry(): a CPU access to a
 * device-exclusive entry revokes the device's exclusive access (MMU_NOTIFY_CLEAR) and
 * reinstalls the normal PTE.
 */
function removeDeviceExclusive(
  core: Core,
  vma: Vma,
  pteT: number,
  addr: number,
  lo: number,
  hi: number,
): number {
  const pfn = entryPfn(lo, hi);
  const head = core.map.head[pfn];
  if (!folioTrylock(core, head)) {
    core.wait('device-exclusive folio lock', () => !(core.map.flags[head] & PG_locked));
    return 0;
  }
  withInvalidation(vma.mm, addr, addr + PAGE_SIZE, MMU_NOTIFY_CLEAR, null, () => {
    const canWrite = (vma.flags & VM_WRITE) !== 0 && (core.map.flags[pfn] & PG_anon_exclusive) !== 0;
    ptSet(core, pteT, pteIndex(addr), mkPteLo(pfn, canWrite, canWrite, true), hi);
  });
  folioUnlock(core, head);
  return 0;
}

/** Models hugetlb_fault() for a MAP_HUGETLB VMA (PMD-sized pages only). */
function hugetlbFault(core: Core, vma: Vma, addr: number, flags: number): number {
  const mm = vma.mm;
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  const pmdT = pmdTableOf(core, mm, haddr, true);
  if (pmdT < 0) return VM_FAULT_OOM;
  const mi = pmdIndex(haddr);
  const lo = ptLo(core, pmdT, mi);
  if (lo !== 0) {
    if (flags & FAULT_FLAG_WRITE && !(lo & _PAGE_RW)) {
      if (!(vma.flags & VM_WRITE)) return VM_FAULT_SIGSEGV;
      ptSet(core, pmdT, mi, (lo | _PAGE_RW | _PAGE_DIRTY) >>> 0, ptHi(core, pmdT, mi));
      mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
    }
    return 0;
  }
  let folio = -1;
  if (vma.flags & VM_SHARED && vma.file) {
    const index = Math.floor(linearPageIndex(vma, haddr) / HPAGE_PMD_NR);
    const have = vma.file.pages.get(index);
    if (have !== undefined) {
      folio = have;
      folioGet(core, folio);
    }
  }
  if (folio < 0) {
    folio = hugetlbAlloc(core);
    if (folio < 0) return VM_FAULT_OOM;
    if (vma.flags & VM_SHARED && vma.file) {
      const index = Math.floor(linearPageIndex(vma, haddr) / HPAGE_PMD_NR);
      vma.file.pages.set(index, folio);
      core.map.mapping[folio] = vma.file.id;
      folioGet(core, folio);
    } else {
      const av = anonVmaPrepare(core, vma);
      core.map.flags[folio] |= PG_anon;
      core.map.mapping[folio] = av.id;
      core.map.index[folio] = linearPageIndex(vma, haddr);
    }
  }
  core.map.entireMapcount[folio]++;
  core.map.largeMapcount[folio]++;
  const w = (vma.flags & VM_WRITE) !== 0;
  ptSet(core, pmdT, mi, mkPmdLo(folio, w, w, true), mkHi(folio));
  return 0;
}

/**
 * Models handle_mm_fault() (mm/memory.c): resolve a fault at addr with FAULT_FLAG_* flags.
 * Returns 0 or VM_FAULT_* error bits. The caller has checked nothing: access rights are
 * checked here as the arch fault handler's access_error() would.
 */
export function handleMmFault(core: Core, vma: Vma, addr: number, flags: number): number {
  const mm = vma.mm;
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  // Models access_error() (arch/x86/mm/fault.c): a read needs vma_is_accessible() (any of
  // VM_READ|VM_WRITE|VM_EXEC: x86 cannot map write-only or execute-only), a write VM_WRITE.
  if (write ? !(vma.flags & VM_WRITE) : !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC)))
    return VM_FAULT_SIGSEGV;
  core.vmstat.pgfault++;
  if (vma.flags & VM_HUGETLB) return hugetlbFault(core, vma, addr, flags);
  const pmdT = pmdTableOf(core, mm, addr, true);
  if (pmdT < 0) return VM_FAULT_OOM;
  const mi = pmdIndex(addr);
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  if (entryNone(lo, hi)) {
    if (thpVmaAllowable(core, vma, haddr)) {
      const r = doHugePmdAnonymousPage(core, vma, pmdT, haddr, flags);
      if (!(r & VM_FAULT_FALLBACK)) return r;
    }
  } else if (!entryPresent(lo)) {
    const type = swpType(lo);
    if (isDevicePrivateType(type)) return deviceFault(core, vma, addr, entryPfn(lo, hi), flags, false);
    if (isMigrationType(type)) return migrationWait(core, () => [ptLo(core, pmdT, mi), ptHi(core, pmdT, mi)]);
    return VM_FAULT_SIGBUS;
  } else if (entryHuge(lo)) {
    if (!write || lo & _PAGE_RW) {
      ptSet(core, pmdT, mi, (lo | _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0)) >>> 0, hi);
      return 0;
    }
    const pfn = entryPfn(lo, hi);
    const head = core.map.head[pfn];
    if (pfn === core.hugeZeroPfn) {
      const r = doHugeZeroWpPmd(core, vma, pmdT, haddr);
      if (!(r & VM_FAULT_FALLBACK)) return r;
    } else if (wpCanReuseAnonThp(core, vma, head)) {
      // Models do_huge_pmd_wp_page() reuse of an exclusive anonymous THP.
      ptSet(core, pmdT, mi, (lo | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED) >>> 0, hi);
      mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
      return 0;
    }
    // Models the fallback of do_huge_pmd_wp_page(): split the PMD, COW at PTE level.
    withInvalidation(mm, haddr, haddr + PMD_SIZE, MMU_NOTIFY_CLEAR, null, () =>
      splitHugePmdLocked(core, vma, pmdT, haddr, false),
    );
  }
  const pteT = pteTableAt(core, mm, pmdT, addr, true);
  if (pteT < 0) return VM_FAULT_OOM;
  const i = pteIndex(addr);
  const plo = ptLo(core, pteT, i);
  const phi = ptHi(core, pteT, i);
  if (entryNone(plo, phi)) {
    if (vma.vmOps) return VM_FAULT_SIGBUS;
    if (vma.file) return doFileFault(core, vma, pteT, addr, flags);
    return doAnonymousPage(core, vma, pteT, addr, flags);
  }
  if (!entryPresent(plo)) {
    const type = swpType(plo);
    if (isDevicePrivateType(type)) return deviceFault(core, vma, addr, entryPfn(plo, phi), flags, true);
    if (isMigrationType(type)) return migrationWait(core, () => [ptLo(core, pteT, i), ptHi(core, pteT, i)]);
    if (type === SWP_DEVICE_EXCLUSIVE) return removeDeviceExclusive(core, vma, pteT, addr, plo, phi);
    return VM_FAULT_SIGBUS;
  }
  if (!(plo & _PAGE_PRESENT)) return VM_FAULT_SIGSEGV;
  if (write && !(plo & _PAGE_RW)) return doWpPage(core, vma, pteT, addr, plo, phi);
  ptSet(core, pteT, i, (plo | _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0)) >>> 0, phi);
  return 0;
}
