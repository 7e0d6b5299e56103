import {
  EFAULT,
  EINVAL,
  ENOMEM,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  TASK_SIZE,
} from '../constants.js';
import type { Core } from '../core.js';
import { entryNone } from '../pgtable/entry.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { mremapArgs } from '../syscall-args.js';
import { unlinkAnonVmas } from './anon.js';
import { depositTable, pmdIsHuge, splitHugePmd, withdrawTable } from './huge.js';
import { mmapWriteLock, mmapWriteUnlock, pmdLock, pteLock, ptlUnlock } from './locking.js';
import { getUnmappedArea, rangeFree, unmapRange } from './mmap.js';
import { withInvalidation } from './notifier.js';
import { vmEnoughMemory } from './overcommit.js';
import { freeEmptyTables, pmdIndex, pmdTableOf, pteIndex, pteTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import {
  MMU_NOTIFY_UNMAP,
  type MmStruct,
  VM_ACCOUNT,
  VM_DONTEXPAND,
  VM_HUGETLB,
  VM_LOCKED,
  VM_MAYSHARE,
  VM_PFNMAP,
  VM_SHARED,
  type Vma,
} from './types.js';
import { copyVma, vmaMergeExtend } from './vma-merge.js';

/** Models take_rmap_locks(): the anon_vma (or i_mmap) lock of the VMA, for write. */
function* takeRmapLocks(core: Core, vma: Vma): KGen {
  if (vma.anonVma) yield* vma.anonVma.root.rwsem.downWrite(core.sched, 'take_rmap_locks');
  if (vma.file) yield* vma.file.immapRwsem.downWrite(core.sched, 'take_rmap_locks');
}

/** Models drop_rmap_locks(). */
function dropRmapLocks(core: Core, vma: Vma): void {
  if (vma.file) vma.file.immapRwsem.upWrite(core.sched, 'drop_rmap_locks');
  if (vma.anonVma) vma.anonVma.root.rwsem.upWrite(core.sched, 'drop_rmap_locks');
}

/**
 * Models move_page_tables(): move every entry of [old, old + len) to [neu, neu + len), PMD by
 * PMD with cond_resched() between, each move under the rmap locks (so an rmap walk sees an
 * entry at one address or the other) and both page-table locks. Whole aligned huge PMDs
 * (present, huge zero, device-private, migration) move verbatim with their deposited table
 * (move_huge_pmd()); others are split and moved PTE by PTE. rmap is untouched: the new VMA's
 * pgoff keeps every folio's index valid. Returns the bytes moved: short of len when a
 * destination table could not be allocated (move_page_tables()'s pmc_progress()).
 */
function* movePageTables(
  core: Core,
  mm: MmStruct,
  oldVma: Vma,
  old: number,
  neu: number,
  len: number,
): KGen<number> {
  let off = 0;
  while (off < len) {
    if (core.sched.preempt('move_page_tables: cond_resched')) yield RESCHED;
    const s = old + off;
    const d = neu + off;
    const sPmdT = pmdTableOf(core, mm, s, false);
    const chunkEnd = Math.min(len, off + (PMD_SIZE - (s % PMD_SIZE)));
    if (sPmdT < 0) {
      off = chunkEnd;
      continue;
    }
    const mi = pmdIndex(s);
    if (entryNone(ptLo(core, sPmdT, mi), ptHi(core, sPmdT, mi))) {
      off = chunkEnd;
      continue;
    }
    if (pmdIsHuge(ptLo(core, sPmdT, mi), ptHi(core, sPmdT, mi))) {
      if (s % PMD_SIZE === 0 && d % PMD_SIZE === 0 && len - off >= PMD_SIZE) {
        const dPmdT = pmdTableOf(core, mm, d, true);
        if (dPmdT < 0) return off;
        yield* takeRmapLocks(core, oldVma);
        const oldPtl = pmdLock(core, sPmdT, 'move_huge_pmd');
        const newPtl = dPmdT === sPmdT ? null : pmdLock(core, dPmdT, 'move_huge_pmd');
        const lo = ptLo(core, sPmdT, mi);
        const hi = ptHi(core, sPmdT, mi);
        const moved = pmdIsHuge(lo, hi);
        if (moved) {
          ptSet(core, dPmdT, pmdIndex(d), lo, hi);
          ptSet(core, sPmdT, mi, 0, 0);
          depositTable(mm, d, withdrawTable(mm, s));
          mm.tlb.flushRange(s, s + PMD_SIZE);
        }
        if (newPtl) ptlUnlock(core, newPtl, 'move_huge_pmd');
        ptlUnlock(core, oldPtl, 'move_huge_pmd');
        dropRmapLocks(core, oldVma);
        if (moved) {
          off += PMD_SIZE;
          continue;
        }
      } else {
        yield* splitHugePmd(core, oldVma, sPmdT, Math.floor(s / PMD_SIZE) * PMD_SIZE, false);
      }
    }
    const sT = pteTableOf(core, mm, s, false);
    if (sT < 0) continue;
    // Destination tables exist before the move (alloc_new_pmd()/pte_alloc()).
    for (let a = s; a < old + chunkEnd; a += PAGE_SIZE) {
      if (pteTableOf(core, mm, neu + (a - old), true) < 0) return off;
    }
    yield* takeRmapLocks(core, oldVma);
    const oldPtl = pteLock(core, sT, 'move_ptes');
    const held = new Set<number>([sT]);
    const locks = [oldPtl];
    for (let a = s; a < old + chunkEnd; a += PAGE_SIZE) {
      const i = pteIndex(a);
      const plo = ptLo(core, sT, i);
      const phi = ptHi(core, sT, i);
      if (entryNone(plo, phi)) continue;
      const dd = neu + (a - old);
      const dT = pteTableOf(core, mm, dd, false);
      if (!held.has(dT)) {
        held.add(dT);
        locks.push(pteLock(core, dT, 'move_ptes'));
      }
      ptSet(core, dT, pteIndex(dd), plo, phi);
      ptSet(core, sT, i, 0, 0);
    }
    mm.tlb.flushRange(s, old + chunkEnd);
    for (const l of locks.reverse()) ptlUnlock(core, l, 'move_ptes');
    dropRmapLocks(core, oldVma);
    off = chunkEnd;
  }
  return len;
}

/** Models enum mremap_type (mm/mremap.c). */
type MremapType = 'invalid' | 'no_resize' | 'shrink' | 'expand';

/** Models struct vma_remap_struct (mm/mremap.c): the state one mremap() threads through. */
interface VmaRemap {
  readonly mm: MmStruct;
  addr: number;
  oldLen: number;
  newLen: number;
  readonly flags: number;
  newAddr: number;
  vma: Vma | null;
  delta: number;
  remapType: MremapType;
}

/**
 * Models mremap(2) (mm/mremap.c, do_mremap()): shrink, grow in place, or move (MREMAP_MAYMOVE,
 * MREMAP_FIXED, MREMAP_DONTUNMAP); a same-size MREMAP_FIXED move may span several VMAs
 * (remap_move()). Returns the new address or -errno.
 */
export function* sysMremap(
  core: Core,
  mm: MmStruct,
  oldAddr: number,
  oldLen: number,
  newLen: number,
  flags: number,
  newAddr: number,
): KGen<number> {
  const args = mremapArgs(oldAddr, oldLen, newLen, flags, newAddr);
  if (typeof args === 'number') return args;
  const vrm: VmaRemap = {
    mm,
    addr: args.addr,
    oldLen: args.oldLen,
    newLen: args.newLen,
    flags: args.flags,
    newAddr: args.newAddr,
    vma: null,
    delta: 0,
    remapType: 'invalid',
  };
  // The rest of check_mremap_params() (mremapArgs() did the flag, alignment and length checks).
  if (vrm.newLen > TASK_SIZE) return -EINVAL;
  if (vrmImpliesNewAddr(vrm)) {
    if (vrm.newAddr > TASK_SIZE - vrm.newLen) return -EINVAL;
    if (vrmOverlaps(vrm)) return -EINVAL;
  }
  yield* mmapWriteLock(core, mm, 'do_mremap');
  try {
    if (vrmMoveOnly(vrm)) return yield* remapMove(core, vrm);
    vrm.vma = (vrm.addr <= TASK_SIZE ? mm.vmaLookup(vrm.addr) : undefined) ?? null;
    const r = checkPrepVma(vrm);
    if (r) return r;
    return vrmImpliesNewAddr(vrm) ? yield* mremapTo(core, vrm) : yield* mremapAt(core, vrm);
  } finally {
    mmapWriteUnlock(core, mm, 'do_mremap');
  }
}

/** Models vrm_implies_new_addr(): MREMAP_FIXED or MREMAP_DONTUNMAP always move. */
function vrmImpliesNewAddr(vrm: VmaRemap): boolean {
  return (vrm.flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) !== 0;
}

/** Models vrm_overlaps(): do [addr, addr + old_len) and [new_addr, new_addr + new_len) meet? */
function vrmOverlaps(vrm: VmaRemap): boolean {
  return vrm.addr + vrm.oldLen > vrm.newAddr && vrm.newAddr + vrm.newLen > vrm.addr;
}

/** Models vrm_move_only(): a same-size MREMAP_FIXED move (the multi-VMA case). */
function vrmMoveOnly(vrm: VmaRemap): boolean {
  return (vrm.flags & MREMAP_FIXED) !== 0 && vrm.oldLen === vrm.newLen;
}

/** Models vrm_will_map_new(): the operation grows or moves the mapping. */
function vrmWillMapNew(vrm: VmaRemap): boolean {
  return vrm.remapType === 'expand' || vrmImpliesNewAddr(vrm);
}

/**
 * Models vma_multi_allowed(): may this VMA be one of several moved at once? Not with
 * userfaultfd (not modelled), nor a file whose own get_unmapped_area() might not honour
 * MREMAP_FIXED (no file of this model has one: tmpfs is shmem, device files have none).
 */
function vmaMultiAllowed(vma: Vma): boolean {
  return vma.vmFile === null || vma.file !== null || vma.vmOps !== null || (vma.flags & VM_HUGETLB) !== 0;
}

/**
 * Models check_prep_vma(): the VMA at addr must exist; a plain shrink or same-size call needs
 * nothing more (the range past addr's VMA may span other VMAs and holes); a grow or move must
 * stay within the VMA (a shrink only its kept part), may not grow VM_DONTEXPAND/VM_PFNMAP
 * mappings, and old_len 0 duplicates shared mappings only. 0 or -errno.
 */
function checkPrepVma(vrm: VmaRemap): number {
  const vma = vrm.vma;
  if (!vma) return -EFAULT;
  // hugetlb mremap (align_hugetlb(), move_hugetlb_page_tables()) is not modelled.
  if (vma.flags & VM_HUGETLB) return -EINVAL;
  vrm.delta = Math.abs(vrm.oldLen - vrm.newLen);
  vrm.remapType = vrm.delta === 0 ? 'no_resize' : vrm.oldLen > vrm.newLen ? 'shrink' : 'expand';
  if (!vrmImpliesNewAddr(vrm)) vrm.newAddr = vrm.addr;
  if (!vrmWillMapNew(vrm)) return 0;
  let oldLen = vrm.oldLen;
  const newLen = vrm.newLen;
  if (!oldLen && !(vma.flags & (VM_SHARED | VM_MAYSHARE))) return -EINVAL;
  if (vrm.flags & MREMAP_DONTUNMAP && vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) return -EINVAL;
  if (vrm.remapType === 'shrink') oldLen = newLen;
  if (oldLen > vma.end - vrm.addr) return -EFAULT;
  if (newLen === oldLen) return 0;
  if (vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) return -EFAULT;
  return 0;
}

/**
 * Models vrm_calc_charge(): a VM_ACCOUNT mapping is charged the size change (MREMAP_DONTUNMAP:
 * the whole new length, the old mapping stays).
 */
function vrmCalcCharge(core: Core, vrm: VmaRemap): boolean {
  const vma = vrm.vma as Vma;
  if (!(vma.flags & VM_ACCOUNT)) return true;
  const charged = (vrm.flags & MREMAP_DONTUNMAP ? vrm.newLen : vrm.delta) / PAGE_SIZE;
  return !charged || vmEnoughMemory(core, vrm.mm, charged) >= 0;
}

/**
 * Models vrm_set_new_addr(): MREMAP_FIXED takes new_addr as it is; MREMAP_DONTUNMAP uses it as
 * a hint; otherwise get_unmapped_area() picks the place.
 */
function vrmSetNewAddr(vrm: VmaRemap): number {
  const vma = vrm.vma as Vma;
  if (vrm.flags & MREMAP_FIXED) return 0;
  const hint = vrm.flags & MREMAP_DONTUNMAP ? vrm.newAddr : 0;
  const res = getUnmappedArea(vrm.mm, hint, vrm.newLen, vma.isAnonymous);
  if (res < 0) return res;
  vrm.newAddr = res;
  return 0;
}

/**
 * Models shrink_vma(): munmap [addr + new_len, addr + old_len) (any VMAs and holes there); when
 * a move follows, look the VMA at addr up again.
 */
function* shrinkVma(core: Core, vrm: VmaRemap, dropLock: boolean): KGen<number> {
  const start = vrm.addr + vrm.newLen;
  // do_vmi_munmap()'s range check.
  if (start > TASK_SIZE || vrm.delta > TASK_SIZE - start) return -EINVAL;
  yield* unmapRange(core, vrm.mm, start, start + vrm.delta);
  vrm.vma = null;
  if (!dropLock) {
    vrm.vma = vrm.mm.vmaLookup(vrm.addr) ?? null;
    if (!vrm.vma) return -EFAULT;
  }
  return 0;
}

/**
 * Models copy_vma_and_data(): copy_vma() the destination (maybe merged into a neighbour), move
 * the page tables; if the move falls short, move what moved back and make the destination the
 * range the caller unmaps. Returns the error and the destination VMA.
 */
function* copyVmaAndData(core: Core, vrm: VmaRemap): KGen<{ err: number; newVma: Vma | null }> {
  const mm = vrm.mm;
  const vma0 = vrm.vma as Vma;
  const newPgoff = vma0.pgoff + (vrm.addr - vma0.start) / PAGE_SIZE;
  const c = yield* copyVma(core, vma0, vrm.newAddr, vrm.newLen, newPgoff);
  if (!c) return { err: -ENOMEM, newVma: null };
  vrm.vma = c.vma;
  const { addr, newAddr, oldLen } = vrm;
  const moved = yield* withInvalidation(mm, addr, addr + oldLen, MMU_NOTIFY_UNMAP, null, () =>
    movePageTables(core, mm, c.vma, addr, newAddr, oldLen),
  );
  if (moved >= oldLen) return { err: 0, newVma: c.newVma };
  yield* withInvalidation(mm, newAddr, newAddr + moved, MMU_NOTIFY_UNMAP, null, () =>
    movePageTables(core, mm, c.newVma, newAddr, addr, moved),
  );
  vrm.vma = c.newVma;
  vrm.oldLen = vrm.newLen;
  vrm.addr = vrm.newAddr;
  return { err: -ENOMEM, newVma: c.newVma };
}

/**
 * Models dontunmap_complete(): the old VMA stays (not mlock()ed any more); when the whole VMA
 * moved it leaves its anon_vmas (unlink_anon_vmas()), so a later fault starts afresh. The model
 * also frees the emptied page tables.
 */
function dontunmapComplete(core: Core, vrm: VmaRemap, newVma: Vma): void {
  const vma = vrm.vma as Vma;
  const start = vrm.addr;
  const end = vrm.addr + vrm.oldLen;
  vma.flags &= ~VM_LOCKED;
  if (newVma !== vma && start === vma.start && end === vma.end) {
    unlinkAnonVmas(core, vma);
    vma.mayStayApart = true;
  }
  freeEmptyTables(core, vrm.mm, start, end);
}

/** Models move_vma(): charge, copy VMA and page tables, then unmap the source (or keep it). */
function* moveVma(core: Core, vrm: VmaRemap): KGen<number> {
  if (!vrmCalcCharge(core, vrm)) return -ENOMEM;
  const { err, newVma } = yield* copyVmaAndData(core, vrm);
  if (err && !newVma) return err;
  if (!err && vrm.flags & MREMAP_DONTUNMAP) dontunmapComplete(core, vrm, newVma as Vma);
  // unmap_source_vma(): do_vmi_munmap() of a 0-length range is -EINVAL and unmaps nothing.
  else if (vrm.oldLen > 0) yield* unmapRange(core, vrm.mm, vrm.addr, vrm.addr + vrm.oldLen);
  return err ? err : vrm.newAddr;
}

/**
 * Models mremap_to(): MREMAP_FIXED unmaps the destination first (and looks the source up again,
 * the unmap may have split it); a shrink happens in place before the move.
 */
function* mremapTo(core: Core, vrm: VmaRemap): KGen<number> {
  if (vrm.flags & MREMAP_FIXED) {
    yield* unmapRange(core, vrm.mm, vrm.newAddr, vrm.newAddr + vrm.newLen);
    vrm.vma = vrm.mm.vmaLookup(vrm.addr) ?? null;
    if (!vrm.vma) return -EFAULT;
  }
  if (vrm.remapType === 'shrink') {
    const r = yield* shrinkVma(core, vrm, false);
    if (r) return r;
    vrm.oldLen = vrm.newLen;
  }
  const r = vrmSetNewAddr(vrm);
  if (r) return r;
  return yield* moveVma(core, vrm);
}

/**
 * Models vrm_can_expand_in_place()/vma_expandable(): [addr, addr + old_len) reaches the VMA's end
 * and the delta above it is free and inside the address space.
 */
function vrmCanExpandInPlace(vrm: VmaRemap): boolean {
  const vma = vrm.vma as Vma;
  if (vma.end - vrm.addr !== vrm.oldLen) return false;
  const end = vma.end + vrm.delta;
  if (end > TASK_SIZE) return false;
  return rangeFree(vrm.mm, vma.end, vrm.delta);
}

/** Models expand_vma_in_place(): charge and vma_merge_extend() (which may merge with next). */
function* expandVmaInPlace(core: Core, vrm: VmaRemap): KGen<number> {
  if (!vrmCalcCharge(core, vrm)) return -ENOMEM;
  const vma = yield* vmaMergeExtend(core, vrm.vma as Vma, vrm.delta);
  if (!vma) return -ENOMEM;
  vrm.vma = vma;
  return 0;
}

/** Models expand_vma(): grow in place if possible, else move (MREMAP_MAYMOVE) or -ENOMEM. */
function* expandVma(core: Core, vrm: VmaRemap): KGen<number> {
  if (vrmCanExpandInPlace(vrm)) {
    const r = yield* expandVmaInPlace(core, vrm);
    return r || vrm.addr;
  }
  if (!(vrm.flags & MREMAP_MAYMOVE)) return -ENOMEM;
  const r = vrmSetNewAddr(vrm);
  if (r) return r;
  return yield* moveVma(core, vrm);
}

/** Models mremap_at(): resize without a requested address. */
function* mremapAt(core: Core, vrm: VmaRemap): KGen<number> {
  switch (vrm.remapType) {
    case 'no_resize':
      return vrm.addr;
    case 'shrink': {
      const r = yield* shrinkVma(core, vrm, true);
      return r || vrm.addr;
    }
    case 'expand':
      return yield* expandVma(core, vrm);
    default:
      return -EINVAL;
  }
}

/**
 * Models remap_move() (Linux 6.17+, "mremap: permit moves of multiple VMAs"): a same-size
 * MREMAP_FIXED move of [addr, addr + old_len) moves each VMA piece in it in turn (splitting the
 * first and last), keeping the gaps between source VMAs in the destination. The range must
 * start in a VMA (-EFAULT); holes after that are allowed. Each piece is checked and moved as its
 * own mremap_to() (so only the destination of each piece is unmapped first); an error stops
 * the walk with the pieces already moved left moved. Returns the first piece's new address.
 */
function* remapMove(core: Core, vrm: VmaRemap): KGen<number> {
  const mm = vrm.mm;
  const start = vrm.addr;
  const end = vrm.addr + vrm.oldLen;
  const newAddr = vrm.newAddr;
  let targetAddr = newAddr;
  let res = -EFAULT;
  let lastEnd = 0;
  let seenVma = false;
  for (let cursor = start; cursor < end; ) {
    const vma = cursor <= TASK_SIZE ? mm.findVma(cursor) : undefined;
    if (!vma || vma.start >= end) break;
    const addr = Math.max(vma.start, start);
    const len = Math.min(end, vma.end) - addr;
    if (!seenVma && start < vma.start) return -EFAULT;
    const offset = seenVma ? vma.start - lastEnd : 0;
    lastEnd = vma.end;
    cursor = addr + len;
    vrm.vma = vma;
    vrm.addr = addr;
    vrm.newAddr = targetAddr + offset;
    vrm.oldLen = vrm.newLen = len;
    if (!vmaMultiAllowed(vma)) {
      if (seenVma) return -EFAULT;
      if (vma.end < end) return -EFAULT;
    }
    let r = checkPrepVma(vrm);
    if (!r) r = yield* mremapTo(core, vrm);
    if (r < 0) return r;
    if (!seenVma) res = r;
    seenVma = true;
    targetAddr = r + len;
  }
  return res;
}
