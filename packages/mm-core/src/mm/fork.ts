import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import {
  allocFolio,
  folioAddNewAnonRmap,
  folioAddRmapPmd,
  folioAddRmapPtes,
  folioGet,
  folioMaybeDmaPinned,
} from '../folio.js';
import {
  _PAGE_RW,
  _PAGE_SPECIAL,
  _PAGE_SWP_EXCLUSIVE,
  _PAGE_SWP_UFFD_WP,
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
  pteSwpExclusive,
  SWP_DEVICE_EXCLUSIVE,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  SWP_MIGRATION_READ,
  swpType,
  wrprotectLo,
} from '../pgtable/entry.js';
import { PG_anon, PG_anon_exclusive, PG_hugetlb, PG_lru } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { anonVmaClone, anonVmaPrepare, linearPageIndex } from './anon.js';
import { addMmCounter, mmCounter } from './counters.js';
import { allocDeposit, depositTable, pmdIsHuge, splitHugePmdLocked } from './huge.js';
import { hugetlbAlloc } from './hugetlb.js';
import { khugepagedFork } from './khugepaged-state.js';
import { mmapWriteLock, mmapWriteUnlock, pmdLock, pteLock, ptlUnlock } from './locking.js';
import { withInvalidation, withInvalidationSync } from './notifier.js';
import {
  allocTable,
  freeTable,
  pmdIndex,
  pmdTableOf,
  pteIndex,
  pteTableOf,
  ptHi,
  ptLo,
  ptSet,
} from './pgtable.js';
import { swapDuplicate, swpEntryVal } from './swapfile.js';
import {
  AnonVma,
  isCowMapping,
  MMU_NOTIFY_CLEAR,
  MMU_NOTIFY_PROTECTION_PAGE,
  MmStruct,
  VM_DONTCOPY,
  VM_EXEC,
  VM_HUGETLB,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WIPEONFORK,
  VM_WRITE,
  Vma,
} from './types.js';

export { isCowMapping } from './types.js';

/** Models copy_nonpresent_pte()/copy_present_pte() for one PTE; returns false on OOM. */
function copyPte(core: Core, src: Vma, dst: Vma, sT: number, dT: number, addr: number): boolean {
  const i = pteIndex(addr);
  let lo = ptLo(core, sT, i);
  const hi = ptHi(core, sT, i);
  if (entryNone(lo, hi)) return true;
  const m = core.map;
  const cow = isCowMapping(src.flags);
  const pfn = entryPfn(lo, hi);
  if (!entryPresent(lo)) {
    const type = swpType(lo);
    if (isSwapType(type)) {
      // copy_nonpresent_pte(): swap_duplicate(); the entry is shared now, so the exclusive
      // marker goes in both; no uffd-wp in the child (the child's VMA has no userfaultfd).
      if (swapDuplicate(core, swpEntryVal(type, pfn)) < 0) return false;
      addMmCounter(dst.mm, 'MM_SWAPENTS', 1);
      if (pteSwpExclusive(lo)) {
        lo = (lo & ~_PAGE_SWP_EXCLUSIVE) >>> 0;
        ptSet(core, sT, i, lo, hi);
      }
      ptSet(core, dT, i, (lo & ~_PAGE_SWP_UFFD_WP) >>> 0, hi);
      return true;
    }
    const head = m.head[pfn];
    if (isMigrationType(type)) {
      if (type !== SWP_MIGRATION_READ && cow) {
        lo = ((lo & ~(31 << 1)) | (SWP_MIGRATION_READ << 1)) >>> 0;
        ptSet(core, sT, i, lo, hi);
      }
      addMmCounter(dst.mm, mmCounter(core, head), 1);
      ptSet(core, dT, i, lo, hi);
      return true;
    }
    if (isDevicePrivateType(type)) {
      folioGet(core, head);
      folioAddRmapPtes(core, head, pfn, 1, false);
      m.flags[pfn] &= ~PG_anon_exclusive;
      if (type === SWP_DEVICE_WRITE && cow) {
        lo = ((lo & ~(31 << 1)) | (SWP_DEVICE_READ << 1)) >>> 0;
        ptSet(core, sT, i, lo, hi);
      }
      addMmCounter(dst.mm, mmCounter(core, head), 1);
      ptSet(core, dT, i, lo, hi);
      return true;
    }
    if (type === SWP_DEVICE_EXCLUSIVE) {
      // Models try_restore_exclusive_pte(): make it a normal PTE again, then copy that. The
      // protection is the VMA's now (restore_exclusive_pte() takes vma->vm_page_prot): an
      // mprotect(PROT_NONE) since the entry was made leaves it inaccessible.
      lo = mkPteLo(pfn, false, false, true, !(src.flags & (VM_READ | VM_WRITE | VM_EXEC)));
      ptSet(core, sT, i, lo, hi);
    } else {
      ptSet(core, dT, i, lo, hi);
      return true;
    }
  }
  if (lo & _PAGE_SPECIAL) {
    ptSet(core, dT, i, lo, hi);
    return true;
  }
  const head = m.head[pfn];
  if (m.flags[head] & PG_anon && m.flags[pfn] & PG_anon_exclusive && folioMaybeDmaPinned(core, head)) {
    // Models copy_present_page(): a possibly pinned exclusive page is copied right away.
    const np = allocFolio(core, 0, false);
    if (np < 0) return false;
    core.frames.copy(np, pfn, 1);
    const av = anonVmaPrepare(core, dst);
    folioAddNewAnonRmap(core, np, av.id, linearPageIndex(dst, addr), false);
    m.flags[np] |= PG_lru;
    // folio_mk_pte(new_folio, dst_vma->vm_page_prot), then maybe_mkwrite(pte_mkdirty()): the
    // VMA's protection (PROT_NONE maps it protnone), writable when the VMA is.
    const none = !(dst.flags & (VM_READ | VM_WRITE | VM_EXEC));
    ptSet(core, dT, i, mkPteLo(np, (dst.flags & VM_WRITE) !== 0 && !none, true, true, none), mkHi(np));
    addMmCounter(dst.mm, 'MM_ANONPAGES', 1);
    return true;
  }
  folioGet(core, head);
  folioAddRmapPtes(core, head, pfn, 1, false);
  m.flags[pfn] &= ~PG_anon_exclusive;
  if (cow && lo & _PAGE_RW) {
    lo = wrprotectLo(lo);
    ptSet(core, sT, i, lo, hi);
  }
  addMmCounter(dst.mm, mmCounter(core, head), 1);
  ptSet(core, dT, i, lo, hi);
  return true;
}

/**
 * Models copy_huge_pmd() for present THPs, the huge zero page, device-private and migration
 * PMDs: the table to deposit is allocated first, then both PMD locks are taken and the source
 * PMD is re-read ('again' when it is no longer huge: the caller copies PTEs).
 */
function copyHugePmd(
  core: Core,
  src: Vma,
  dst: Vma,
  sPmdT: number,
  haddr: number,
): 'done' | 'split' | 'oom' | 'again' {
  // "Skip if can be re-fill on fault": a file (shmem) PMD is not copied; the child faults it.
  if (!dst.isAnonymous) return 'done';
  const dPmdT = pmdTableOf(core, dst.mm, haddr, true);
  const table = dPmdT < 0 ? -1 : allocDeposit(core, dst.mm);
  if (table < 0) return 'oom';
  const dptl = pmdLock(core, dPmdT, 'copy_huge_pmd');
  const sptl = pmdLock(core, sPmdT, 'copy_huge_pmd');
  try {
    const mi = pmdIndex(haddr);
    if (!pmdIsHuge(ptLo(core, sPmdT, mi), ptHi(core, sPmdT, mi))) {
      freeTable(core, dst.mm, table);
      return 'again';
    }
    const r = copyHugePmdLocked(core, src, dst, sPmdT, dPmdT, haddr, table);
    if (r !== 'done') freeTable(core, dst.mm, table);
    return r;
  } finally {
    ptlUnlock(core, sptl, 'copy_huge_pmd');
    ptlUnlock(core, dptl, 'copy_huge_pmd');
  }
}

function copyHugePmdLocked(
  core: Core,
  src: Vma,
  dst: Vma,
  sPmdT: number,
  dPmdT: number,
  haddr: number,
  table: number,
): 'done' | 'split' {
  const mi = pmdIndex(haddr);
  let lo = ptLo(core, sPmdT, mi);
  const hi = ptHi(core, sPmdT, mi);
  const pfn = entryPfn(lo, hi);
  const m = core.map;
  const head = m.head[pfn];
  if (
    entryPresent(lo) &&
    pfn !== core.hugeZeroPfn &&
    folioMaybeDmaPinned(core, head) &&
    m.flags[head] & PG_anon_exclusive
  ) {
    splitHugePmdLocked(core, src, sPmdT, haddr, false);
    return 'split';
  }
  depositTable(dst.mm, haddr, table);
  if (entryPresent(lo)) {
    if (pfn === core.hugeZeroPfn) {
      dst.mm.hugeZeroRef = true;
    } else {
      folioGet(core, head);
      folioAddRmapPmd(core, head, false);
      m.flags[head] &= ~PG_anon_exclusive;
      addMmCounter(dst.mm, mmCounter(core, head), HPAGE_PMD_NR);
      lo = wrprotectLo(lo);
      ptSet(core, sPmdT, mi, lo, hi);
    }
  } else {
    const type = swpType(lo);
    if (isMigrationType(type)) {
      if (type !== SWP_MIGRATION_READ) {
        lo = ((lo & ~(31 << 1)) | (SWP_MIGRATION_READ << 1)) >>> 0;
        ptSet(core, sPmdT, mi, lo, hi);
      }
    } else if (isDevicePrivateType(type)) {
      if (core.bug('R1')) {
        // Bug R1 (v1 of the series): the non-present branch only knew migration entries: a
        // device-private PMD became a readable *migration* entry in both processes, without a
        // reference or an rmap for the child.
        lo = ((lo & ~(31 << 1)) | (SWP_MIGRATION_READ << 1)) >>> 0;
        ptSet(core, sPmdT, mi, lo, hi);
      } else {
        folioGet(core, head);
        folioAddRmapPmd(core, head, false);
        m.flags[head] &= ~PG_anon_exclusive;
        if (type === SWP_DEVICE_WRITE) {
          lo = ((lo & ~(31 << 1)) | (SWP_DEVICE_READ << 1)) >>> 0;
          ptSet(core, sPmdT, mi, lo, hi);
        }
      }
    }
    addMmCounter(dst.mm, mmCounter(core, head), HPAGE_PMD_NR);
  }
  ptSet(core, dPmdT, mi, lo, hi);
  return 'done';
}

/**
 * Models copy_hugetlb_page_range() (mm/hugetlb.c): a shared mapping's folio is shared; a private
 * one is COW-shared too (hugetlb_try_dup_anon_rmap() clears PageAnonExclusive, and both the
 * parent's and the child's entries are write-protected, huge_ptep_set_wrprotect()) unless it may
 * be DMA-pinned (folio_maybe_dma_pinned()), when the child gets a copy at once
 * (hugetlb_install_folio()).
 */
function copyHugetlb(core: Core, src: Vma, dst: Vma): boolean {
  for (let a = src.start; a < src.end; a += PMD_SIZE) {
    const sT = pmdTableOf(core, src.mm, a, false);
    if (sT < 0) continue;
    const mi = pmdIndex(a);
    const lo = ptLo(core, sT, mi);
    const hi = ptHi(core, sT, mi);
    if (entryNone(lo, hi)) continue;
    const dT = pmdTableOf(core, dst.mm, a, true);
    if (dT < 0) return false;
    const pfn = entryPfn(lo, hi);
    let f = pfn;
    let dlo = lo;
    if (src.flags & VM_SHARED) {
      folioGet(core, pfn);
    } else if (!(core.map.flags[pfn] & PG_anon) || core.map.pincount[pfn] === 0) {
      folioGet(core, pfn);
      core.map.flags[pfn] &= ~PG_anon_exclusive;
      // is_cow_mapping(): write-protect both sides.
      if (lo & _PAGE_RW) {
        ptSet(core, sT, mi, (lo & ~_PAGE_RW) >>> 0, hi);
        src.mm.tlb.flushRange(a, a + PMD_SIZE);
      }
      dlo = (lo & ~_PAGE_RW) >>> 0;
    } else {
      f = hugetlbAlloc(core);
      if (f < 0) return false;
      core.frames.copy(f, pfn, 1 << HPAGE_PMD_ORDER);
      const av = anonVmaPrepare(core, dst);
      core.map.flags[f] |= PG_anon | PG_hugetlb;
      core.map.mapping[f] = av.id;
      core.map.index[f] = linearPageIndex(dst, a);
    }
    core.map.entireMapcount[f]++;
    core.map.largeMapcount[f]++;
    // The child maps `f` (the copy for private mappings): rebuild the pfn field of the entry.
    ptSet(core, dT, mi, mkLo(f, dlo & 0xfff), mkHi(f));
  }
  return true;
}

/**
 * Models copy_page_range(): copy the page tables of one VMA into the child's VMA, PMD by PMD
 * (copy_pmd_range(): a PMD seen huge without the lock goes to copy_huge_pmd(), which re-checks
 * it locked), PTEs under both PTE locks; cond_resched() between PMDs.
 */
export function* copyPageRange(core: Core, src: Vma, dst: Vma): KGen<boolean> {
  if (!src.anonVma && !(src.flags & (VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP))) return true;
  if (src.flags & VM_HUGETLB) {
    // copy_hugetlb_page_range(): a COW mapping is copied under an MMU_NOTIFY_CLEAR
    // invalidation of the whole source VMA.
    if (src.anonVma && isCowMapping(src.flags))
      return yield* withInvalidationSync(src.mm, src.start, src.end, MMU_NOTIFY_CLEAR, null, () =>
        copyHugetlb(core, src, dst),
      );
    return copyHugetlb(core, src, dst);
  }
  if (isCowMapping(src.flags))
    return yield* withInvalidation(src.mm, src.start, src.end, MMU_NOTIFY_PROTECTION_PAGE, null, () =>
      copyPmdRange(core, src, dst),
    );
  return yield* copyPmdRange(core, src, dst);
}

/**
 * Models copy_pmd_range() over the whole VMA (a module function, not a closure per VMA: the loop
 * would be optimized again for every fork).
 */
function* copyPmdRange(core: Core, src: Vma, dst: Vma): KGen<boolean> {
  for (let addr = src.start; addr < src.end; ) {
    if (core.sched.preempt('copy_pmd_range: cond_resched')) yield RESCHED;
    const next = Math.min(src.end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
    const sPmdT = pmdTableOf(core, src.mm, addr, false);
    if (sPmdT < 0) {
      addr = next;
      continue;
    }
    const mi = pmdIndex(addr);
    const lo = ptLo(core, sPmdT, mi);
    const hi = ptHi(core, sPmdT, mi);
    if (entryNone(lo, hi)) {
      addr = next;
      continue;
    }
    if (!entryPresent(lo) || entryHuge(lo)) {
      if (core.sched.preempt('copy_pmd_range: PMD seen huge without the PMD lock')) yield RESCHED;
      const r = copyHugePmd(core, src, dst, sPmdT, Math.floor(addr / PMD_SIZE) * PMD_SIZE);
      if (r === 'oom') return false;
      if (r === 'done') {
        addr = next;
        continue;
      }
      if (r === 'again') continue;
    }
    const sT = pteTableOf(core, src.mm, addr, false);
    if (sT < 0) continue;
    const dT = pteTableOf(core, dst.mm, addr, true);
    if (dT < 0) return false;
    const dptl = pteLock(core, dT, 'copy_pte_range');
    const sptl = pteLock(core, sT, 'copy_pte_range');
    let ok = true;
    for (let a = addr; a < next && ok; a += PAGE_SIZE) ok = copyPte(core, src, dst, sT, dT, a);
    ptlUnlock(core, sptl, 'copy_pte_range');
    ptlUnlock(core, dptl, 'copy_pte_range');
    if (!ok) return false;
    addr = next;
  }
  return true;
}

/**
 * Models dup_mmap(): a new mm (registered with khugepaged when the parent is,
 * khugepaged_fork()) with copies of every VMA except VM_DONTCOPY ones, each child VMA linked
 * into the parent's anon_vmas plus an anon_vma of its own (anon_vma_fork()), then
 * copy_page_range(). A VM_WIPEONFORK VMA is copied with its flags but "gets a clean slate in
 * the child": no anon_vma (prepared at the first fault) and no page copied, so the child reads
 * zeros there. `ok` is false when out of memory (the caller tears the child down).
 */
export function* dupMmap(core: Core, parent: MmStruct, childId: number): KGen<{ mm: MmStruct; ok: boolean }> {
  yield* mmapWriteLock(core, parent, 'dup_mmap');
  try {
    return yield* dupMmapLocked(core, parent, childId);
  } finally {
    mmapWriteUnlock(core, parent, 'dup_mmap');
  }
}

function* dupMmapLocked(core: Core, parent: MmStruct, childId: number): KGen<{ mm: MmStruct; ok: boolean }> {
  const mm = new MmStruct(childId, core.events);
  mm.mmapBase = parent.mmapBase;
  mm.pgd = allocTable(core, mm, true);
  if (mm.pgd < 0) return { mm, ok: false };
  khugepagedFork(core, mm, parent);
  for (const v of parent.vmas) {
    if (v.flags & VM_DONTCOPY) continue;
    const c = new Vma(mm, v.start, v.end, v.flags, v.pgoff, v.file);
    c.vmOps = v.vmOps;
    c.vmFile = v.vmFile;
    const wipe = (v.flags & VM_WIPEONFORK) !== 0;
    // dup_mmap() merges nothing: a VM_WIPEONFORK child VMA starts without an anon_vma, which can
    // make it mergeable with a neighbour its parent's anon_vma kept apart.
    c.mayStayApart = v.mayStayApart || (wipe && v.anonVma !== null);
    if (v.anonVma && !wipe) {
      anonVmaClone(v, c);
      const own = new AnonVma();
      own.id = core.registerMapping(own);
      if (v.anonVma) own.root = v.anonVma.root;
      own.vmas.add(c);
      c.anonVma = own;
      c.anonVmaChain.push(own);
    }
    if (v.file) {
      v.file.mmaps.add(c);
      v.file.refs++;
    }
    mm.insertVma(c);
    if (!wipe && !(yield* copyPageRange(core, v, c))) return { mm, ok: false };
  }
  return { mm, ok: true };
}
