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
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  isDevicePrivateType,
  isMigrationType,
  mkHi,
  mkLo,
  mkPteLo,
  SWP_DEVICE_EXCLUSIVE,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  SWP_MIGRATION_READ,
  swpType,
  wrprotectLo,
} from '../pgtable/entry.js';
import { PG_anon, PG_anon_exclusive, PG_hugetlb, PG_lru } from '../phys/memmap.js';
import { anonVmaClone, anonVmaPrepare, linearPageIndex } from './anon.js';
import { addMmCounter, mmCounter } from './counters.js';
import { allocDeposit, depositTable, splitHugePmdLocked } from './huge.js';
import { hugetlbAlloc } from './hugetlb.js';
import { withInvalidation } from './notifier.js';
import { allocTable, pmdIndex, pmdTableOf, pteIndex, pteTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import {
  AnonVma,
  MMU_NOTIFY_PROTECTION_PAGE,
  MmStruct,
  VM_DONTCOPY,
  VM_HUGETLB,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_SHARED,
  Vma,
} from './types.js';

/** Models is_cow_mapping(): private and may become writable. */
export function isCowMapping(flags: number): boolean {
  return (flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}

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
      // Models try_restore_exclusive_pte(): make it a normal PTE again, then copy that.
      lo = mkPteLo(pfn, false, false, true);
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
    ptSet(core, dT, i, mkPteLo(np, (lo & _PAGE_RW) !== 0, true, true), mkHi(np));
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

/** Models copy_huge_pmd() for present THPs, the huge zero page, device-private and migration PMDs. */
function copyHugePmd(core: Core, src: Vma, dst: Vma, sPmdT: number, haddr: number): 'done' | 'split' | 'oom' {
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
  const dPmdT = pmdTableOf(core, dst.mm, haddr, true);
  const table = dPmdT < 0 ? -1 : allocDeposit(core, dst.mm);
  if (table < 0) return 'oom';
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
      folioGet(core, head);
      folioAddRmapPmd(core, head, false);
      m.flags[head] &= ~PG_anon_exclusive;
      if (type === SWP_DEVICE_WRITE) {
        lo = ((lo & ~(31 << 1)) | (SWP_DEVICE_READ << 1)) >>> 0;
        ptSet(core, sPmdT, mi, lo, hi);
      }
    }
    addMmCounter(dst.mm, mmCounter(core, head), HPAGE_PMD_NR);
  }
  ptSet(core, dPmdT, mi, lo, hi);
  return 'done';
}

/** Models copy_hugetlb_page_range(): private pages are copied eagerly, shared ones shared. */
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
    if (src.flags & VM_SHARED) {
      folioGet(core, pfn);
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
    ptSet(core, dT, mi, mkLo(f, lo & 0xfff), mkHi(f));
  }
  return true;
}

/** Models copy_page_range(): copy the page tables of one VMA into the child's VMA. */
export function copyPageRange(core: Core, src: Vma, dst: Vma): boolean {
  if (!src.anonVma && !(src.flags & (VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP))) return true;
  if (src.flags & VM_HUGETLB) return copyHugetlb(core, src, dst);
  const run = (): boolean => {
    for (let addr = src.start; addr < src.end; ) {
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
        const r = copyHugePmd(core, src, dst, sPmdT, Math.floor(addr / PMD_SIZE) * PMD_SIZE);
        if (r === 'oom') return false;
        if (r === 'done') {
          addr = next;
          continue;
        }
      }
      const sT = pteTableOf(core, src.mm, addr, false);
      const dT = pteTableOf(core, dst.mm, addr, true);
      if (dT < 0) return false;
      for (let a = addr; a < next; a += PAGE_SIZE) if (!copyPte(core, src, dst, sT, dT, a)) return false;
      addr = next;
    }
    return true;
  };
  if (isCowMapping(src.flags))
    return withInvalidation(src.mm, src.start, src.end, MMU_NOTIFY_PROTECTION_PAGE, null, run);
  return run();
}

/**
 * Models dup_mmap(): a new mm with copies of every VMA (except VM_DONTCOPY), each child VMA
 * linked into the parent's anon_vmas plus an anon_vma of its own (anon_vma_fork()), then
 * copy_page_range(). Returns null when out of memory (the caller tears the child down).
 */
export function dupMmap(core: Core, parent: MmStruct, childId: number): { mm: MmStruct; ok: boolean } {
  const mm = new MmStruct(childId);
  mm.mmapBase = parent.mmapBase;
  mm.pgd = allocTable(core, mm, true);
  if (mm.pgd < 0) return { mm, ok: false };
  for (const v of parent.vmas) {
    if (v.flags & VM_DONTCOPY) continue;
    const c = new Vma(mm, v.start, v.end, v.flags, v.pgoff, v.file);
    c.vmOps = v.vmOps;
    if (v.anonVma) {
      anonVmaClone(v, c);
      const own = new AnonVma();
      own.id = core.registerMapping(own);
      own.vmas.add(c);
      c.anonVma = own;
      c.anonVmaChain.push(own);
    }
    if (v.file) {
      v.file.mmaps.add(c);
      v.file.refs++;
    }
    mm.insertVma(c);
    if (!copyPageRange(core, v, c)) return { mm, ok: false };
  }
  return { mm, ok: true };
}
