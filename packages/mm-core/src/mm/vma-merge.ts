/**
 * VMA merging (mm/vma.c, v6.19): the rules that decide when a new, changed or mremap()-copied
 * range becomes part of a neighbouring VMA, a function per kernel function and in the kernel's
 * order of checks. The model's VMA tree is MmStruct.vmas (a sorted array), so the vma_iterator
 * positioning of the kernel has no counterpart; OOM in the maple tree preallocation is not modelled
 * (a merge never fails for want of memory). The anon_vma and i_mmap write locks vma_prepare()
 * takes are not taken: as in splitVma(), the VMA update is atomic between two preemption points.
 */
import { PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import type { KGen } from '../sched/task.js';
import { anonVmaClone, unlinkAnonVmas } from './anon.js';
import { inodePut } from './mmap.js';
import {
  type AnonVma,
  type Inode,
  type MmStruct,
  VM_HUGETLB,
  VM_IGNORE_MERGE,
  VM_SPECIAL,
  Vma,
} from './types.js';
import { splitHugePmdAt, splitVma } from './vma.js';

/** Models enum vma_merge_state (mm/vma.h); no merge fails for memory in this model. */
export type VmaMergeState = 'start' | 'nomerge' | 'success';

/**
 * Models struct vma_merge_struct (mm/vma.h): the proposed range [start, end) with its pgoff,
 * flags, file and anon_vma, and the VMAs around it. `vmFile` is vm_file's identity (see
 * Vma.vmFile); `file` the inode the model keeps the page cache in.
 */
export interface VmaMergeStruct {
  readonly mm: MmStruct;
  prev: Vma | null;
  /** The existing VMA being modified (vma_modify()), or null for a new range. */
  middle: Vma | null;
  next: Vma | null;
  /** The VMA that ends up covering the merged range. */
  target: Vma | null;
  start: number;
  end: number;
  pgoff: number;
  flags: number;
  file: Inode | null;
  vmFile: object | null;
  anonVma: AnonVma | null;
  /** Models vmg->copied_from: the source VMA of an mremap() copy (copy_vma()). */
  copiedFrom: Vma | null;
  /** Models vmg->just_expand: only expand prev (never merge next). */
  justExpand: boolean;
  state: VmaMergeState;
  removeMiddle: boolean;
  removeNext: boolean;
  adjustMiddleStart: boolean;
  adjustNextStart: boolean;
}

/** Index of the first VMA of mm with end > addr (mm.vmas.length when none). */
function firstEndAfter(mm: MmStruct, addr: number): number {
  const v = mm.vmas;
  let lo = 0;
  let hi = v.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (v[mid].end <= addr) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Models vma_prev() from addr (find_vma_prev()'s pprev): the last VMA ending at or below addr. */
export function vmaPrevOf(mm: MmStruct, addr: number): Vma | null {
  const i = firstEndAfter(mm, addr);
  return i > 0 ? mm.vmas[i - 1] : null;
}

/** Models vma_iter_next_rewind()/vma_next() from addr: the first VMA starting at or above addr. */
export function vmaNextFrom(mm: MmStruct, addr: number): Vma | null {
  const i = firstEndAfter(mm, addr);
  const v = mm.vmas[i];
  if (!v) return null;
  return v.start >= addr ? v : (mm.vmas[i + 1] ?? null);
}

/**
 * Models VMG_VMA_STATE() (mm/vma.h): a merge state describing [start, end) of an existing VMA,
 * with that VMA's flags, file, anon_vma and the pgoff of start.
 */
export function vmgVmaState(prev: Vma | null, vma: Vma, start: number, end: number): VmaMergeStruct {
  return {
    mm: vma.mm,
    prev,
    middle: vma,
    next: null,
    target: null,
    start,
    end,
    pgoff: vma.pgoff + (start - vma.start) / PAGE_SIZE,
    flags: vma.flags,
    file: vma.file,
    vmFile: vma.vmFile,
    anonVma: vma.anonVma,
    copiedFrom: null,
    justExpand: false,
    state: 'start',
    removeMiddle: false,
    removeNext: false,
    adjustMiddleStart: false,
    adjustNextStart: false,
  };
}

/**
 * Models VMG_MMAP_STATE() (mm/vma.c): the merge state of a new mapping [start, end) that
 * __mmap_region() tries to merge before allocating a VMA (no anon_vma yet).
 */
export function vmgMmapState(
  mm: MmStruct,
  start: number,
  end: number,
  flags: number,
  pgoff: number,
  file: Inode | null,
  vmFile: object | null,
): VmaMergeStruct {
  return {
    mm,
    prev: vmaPrevOf(mm, start),
    middle: null,
    next: vmaNextFrom(mm, end),
    target: null,
    start,
    end,
    pgoff,
    flags,
    file,
    vmFile,
    anonVma: null,
    copiedFrom: null,
    justExpand: false,
    state: 'start',
    removeMiddle: false,
    removeNext: false,
    adjustMiddleStart: false,
    adjustNextStart: false,
  };
}

/**
 * Models vma_is_fork_child() (mm/vma.c): the VMA has an anon_vma and more than one
 * anon_vma_chain link (anon_vma_fork() linked it into its parent's anon_vmas too).
 */
export function vmaIsForkChild(vma: Vma | null): boolean {
  return vma !== null && vma.anonVma !== null && vma.anonVmaChain.length !== 1;
}

/**
 * Models is_mergeable_vma() (mm/vma.c): the neighbour (next or prev) has the proposed flags
 * (VM_SOFTDIRTY ignored) and the same vm_file. Memory policies, userfaultfd contexts and
 * anon_vma names are not modelled (always equal).
 */
export function isMergeableVma(vmg: VmaMergeStruct, mergeNext: boolean): boolean {
  const vma = (mergeNext ? vmg.next : vmg.prev) as Vma;
  if ((vma.flags ^ vmg.flags) & ~VM_IGNORE_MERGE) return false;
  if (vma.vmFile !== vmg.vmFile) return false;
  return true;
}

/**
 * Models is_mergeable_anon_vma() (mm/vma.c), the three cases: only the source has an anon_vma
 * (dup_anon_vma() will give it to the target; refused when the source or the mremap()ed VMA
 * is a fork child), only the target has one (refused when the target is a fork child), both
 * (they must be the same anon_vma).
 */
export function isMergeableAnonVma(vmg: VmaMergeStruct, mergeNext: boolean): boolean {
  const tgt = (mergeNext ? vmg.next : vmg.prev) as Vma;
  const src = vmg.middle;
  const tgtAnon = tgt.anonVma;
  const srcAnon = vmg.anonVma;
  if (!tgtAnon && srcAnon) {
    if (vmaIsForkChild(src)) return false;
    if (vmaIsForkChild(vmg.copiedFrom)) return false;
    return true;
  }
  if (tgtAnon && !srcAnon) return !vmaIsForkChild(tgt);
  return srcAnon === tgtAnon;
}

/** Models can_vma_merge_before() (mm/vma.c): the range can become the front of next. */
export function canVmaMergeBefore(vmg: VmaMergeStruct): boolean {
  const pglen = (vmg.end - vmg.start) / PAGE_SIZE;
  return isMergeableVma(vmg, true) && isMergeableAnonVma(vmg, true) && vmg.next!.pgoff === vmg.pgoff + pglen;
}

/** Models can_vma_merge_after() (mm/vma.c): the range can become the tail of prev. */
export function canVmaMergeAfter(vmg: VmaMergeStruct): boolean {
  const prev = vmg.prev as Vma;
  return (
    isMergeableVma(vmg, false) && isMergeableAnonVma(vmg, false) && prev.pgoff + prev.pages === vmg.pgoff
  );
}

/** Models can_vma_merge_left() (mm/vma.c): prev ends at the range and can take it. */
function canVmaMergeLeft(vmg: VmaMergeStruct): boolean {
  return vmg.prev !== null && vmg.prev.end === vmg.start && canVmaMergeAfter(vmg);
}

/**
 * Models can_vma_merge_right() (mm/vma.c): next starts at the range's end and can take it; when
 * prev can too, prev's and next's anon_vmas must also be compatible with each other.
 */
function canVmaMergeRight(vmg: VmaMergeStruct, canMergeLeft: boolean): boolean {
  const next = vmg.next;
  if (!next || vmg.end !== next.start || !canVmaMergeBefore(vmg)) return false;
  if (!canMergeLeft) return true;
  const prev = vmg.prev as Vma;
  return !prev.anonVma || !next.anonVma || prev.anonVma === next.anonVma;
}

/**
 * Models vma->vm_ops->close being set: a driver's own close, and hugetlb_vm_ops's
 * hugetlb_vm_op_close() (the model keeps hugetlb VMAs without vmOps).
 */
export function vmaHasClose(vma: Vma): boolean {
  return vma.vmOps?.close !== undefined || (vma.flags & VM_HUGETLB) !== 0;
}

/** Models can_merge_remove_vma() (mm/vma.c): a VMA with a ->close() hook is never removed by a merge. */
export function canMergeRemoveVma(vma: Vma): boolean {
  return !vmaHasClose(vma);
}

/**
 * Models dup_anon_vma() (mm/vma.c): when the expanding VMA has no anon_vma but the one it
 * absorbs has, link it into the source's anon_vmas (anon_vma_clone()) so rmap finds the
 * folios of the merged range. Returns the VMA that was given an anon_vma, or null.
 */
export function dupAnonVma(dst: Vma, src: Vma): Vma | null {
  if (src.anonVma && !dst.anonVma) {
    anonVmaClone(src, dst);
    return dst;
  }
  return null;
}

/**
 * Models vma_complete()'s removal of a merged-away VMA: out of the tree, unlink_anon_vmas(),
 * out of i_mmap and fput(). No ->close() (can_merge_remove_vma() made sure there is none).
 */
function removeMergedVma(core: Core, vma: Vma): void {
  vma.mm.removeVma(vma);
  unlinkAnonVmas(core, vma);
  if (vma.file) {
    vma.file.mmaps.delete(vma);
    inodePut(core, vma.file);
  }
}

/**
 * Models commit_merge() (mm/vma.c): split huge PMDs across a boundary that moves
 * (vma_adjust_trans_huge()), set the range of the VMA that grows (or of middle, when next
 * grows down into it), move the start of the adjusted VMA (vmg_adjust_set_range()) and remove
 * middle and/or next.
 */
function* commitMerge(core: Core, vmg: VmaMergeStruct): KGen {
  const vma = vmg.adjustNextStart ? (vmg.middle as Vma) : (vmg.target as Vma);
  if (vmg.adjustMiddleStart || vmg.adjustNextStart) {
    yield* splitHugePmdAt(core, vmg.middle as Vma, vmg.end);
  }
  vma.start = vmg.start;
  vma.end = vmg.end;
  vma.pgoff = vmg.pgoff;
  if (vmg.adjustMiddleStart) {
    const m = vmg.middle as Vma;
    m.pgoff += (vmg.end - m.start) / PAGE_SIZE;
    m.start = vmg.end;
  } else if (vmg.adjustNextStart) {
    const n = vmg.next as Vma;
    n.pgoff -= (n.start - vmg.end) / PAGE_SIZE;
    n.start = vmg.end;
  }
  if (vmg.removeMiddle) removeMergedVma(core, vmg.middle as Vma);
  if (vmg.removeNext) removeMergedVma(core, vmg.next as Vma);
}

/**
 * Models vma_expand() (mm/vma.c): grow vmg.target to [vmg.start, vmg.end), absorbing next when
 * the range reaches its end; the anon_vma of next or of the mremap() source is duplicated into
 * a target that has none.
 */
export function* vmaExpand(core: Core, vmg: VmaMergeStruct): KGen<number> {
  const target = vmg.target as Vma;
  const next = vmg.next;
  const removeNext = next !== null && target !== next && vmg.end === next.end;
  if (removeNext) dupAnonVma(target, next);
  if (vmg.copiedFrom) dupAnonVma(target, vmg.copiedFrom);
  if (removeNext) vmg.removeNext = true;
  yield* commitMerge(core, vmg);
  return 0;
}

/**
 * Models vma_merge_new_range() (mm/vma.c): a range about to be mapped (mmap, mremap copy,
 * in-place mremap growth) joins prev, next, or both, when the rules allow; VM_SPECIAL ranges
 * never merge. Returns the expanded VMA or null.
 */
export function* vmaMergeNewRange(core: Core, vmg: VmaMergeStruct): KGen<Vma | null> {
  const prev = vmg.prev;
  const next = vmg.next;
  const end = vmg.end;
  vmg.state = 'nomerge';
  if (vmg.flags & VM_SPECIAL || (!prev && !next)) return null;
  const canMergeLeft = canVmaMergeLeft(vmg);
  const canMergeRight = !vmg.justExpand && canVmaMergeRight(vmg, canMergeLeft);
  if (canMergeRight) {
    vmg.end = (next as Vma).end;
    vmg.target = next;
  }
  if (canMergeLeft) {
    vmg.start = (prev as Vma).start;
    vmg.target = prev;
    vmg.pgoff = (prev as Vma).pgoff;
    if (canMergeRight && !canMergeRemoveVma(next as Vma)) vmg.end = end;
  }
  if (vmg.target && (yield* vmaExpand(core, vmg)) === 0) {
    vmg.state = 'success';
    return vmg.target;
  }
  return null;
}

/**
 * Models vma_merge_copied_range() (mm/vma.c): copy_vma()'s merge, with the source VMA moved
 * from middle to copied_from (so is_mergeable_anon_vma() checks it for fork children).
 */
export function* vmaMergeCopiedRange(core: Core, vmg: VmaMergeStruct): KGen<Vma | null> {
  vmg.copiedFrom = vmg.middle;
  vmg.middle = null;
  return yield* vmaMergeNewRange(core, vmg);
}

/**
 * Models vma_merge_existing_range() (mm/vma.c): [vmg.start, vmg.end) of vmg.middle is about to
 * get vmg.flags; if the range touches middle's start and prev can take it, and/or touches its
 * end and next can, merge (prev grows, middle shrinks or goes, next grows down or goes).
 * Returns the merged VMA or null (nothing changed).
 */
export function* vmaMergeExistingRange(core: Core, vmg: VmaMergeStruct): KGen<Vma | null> {
  const middle = vmg.middle as Vma;
  const prev = vmg.prev;
  const start = vmg.start;
  const end = vmg.end;
  const leftSide = start === middle.start;
  const rightSide = end === middle.end;
  vmg.state = 'nomerge';
  if (vmg.flags & VM_SPECIAL || (!leftSide && !rightSide)) return null;
  const mergeLeft = leftSide ? canVmaMergeLeft(vmg) : false;
  let mergeRight = false;
  let next: Vma | null = null;
  if (rightSide) {
    next = vmg.next = vmaNextFrom(vmg.mm, middle.end);
    mergeRight = canVmaMergeRight(vmg, mergeLeft);
  }
  if (!mergeLeft && !mergeRight) return null;
  let mergeBoth = mergeLeft && mergeRight;
  vmg.removeMiddle = leftSide && rightSide;
  if (vmg.removeMiddle && !canMergeRemoveVma(middle)) return null;
  vmg.removeNext = mergeBoth;
  if (vmg.removeNext && !canMergeRemoveVma(next as Vma)) {
    vmg.removeNext = false;
    mergeRight = false;
    mergeBoth = false;
  }
  if (mergeRight) vmg.target = next;
  if (mergeLeft) vmg.target = prev;
  if (mergeBoth) {
    const p = prev as Vma;
    const n = next as Vma;
    vmg.start = p.start;
    vmg.end = n.end;
    vmg.pgoff = p.pgoff;
    dupAnonVma(p, n.anonVma ? n : middle);
  } else if (mergeLeft) {
    const p = prev as Vma;
    vmg.start = p.start;
    vmg.pgoff = p.pgoff;
    if (!vmg.removeMiddle) vmg.adjustMiddleStart = true;
    dupAnonVma(p, middle);
  } else {
    const n = next as Vma;
    const pglen = (vmg.end - vmg.start) / PAGE_SIZE;
    if (vmg.removeMiddle) {
      vmg.end = n.end;
      vmg.pgoff = n.pgoff - pglen;
    } else {
      vmg.adjustNextStart = true;
      vmg.start = middle.start;
      vmg.end = start;
      vmg.pgoff = middle.pgoff;
    }
    dupAnonVma(n, middle);
  }
  yield* commitMerge(core, vmg);
  vmg.state = 'success';
  return vmg.target;
}

/**
 * Models vma_modify() (mm/vma.c): try to merge [vmg.start, vmg.end) of vmg.middle with its
 * neighbours; otherwise split middle so the range is exactly one VMA. Returns that VMA.
 */
export function* vmaModify(core: Core, vmg: VmaMergeStruct): KGen<Vma> {
  let vma = vmg.middle as Vma;
  const start = vmg.start;
  const end = vmg.end;
  const merged = yield* vmaMergeExistingRange(core, vmg);
  if (merged) return merged;
  // split_vma(vmi, vma, start, 1): the model keeps the lower part and returns the upper one.
  if (vma.start < start) vma = yield* splitVma(core, vma, start);
  if (vma.end > end) yield* splitVma(core, vma, end);
  return vma;
}

/**
 * Models vma_modify_flags() (mm/vma.c), with prev as do_mprotect_pkey()/madvise_walk_vmas()
 * track it (vma itself when the range starts inside it, else the VMA before it): give
 * [start, end) of vma the flags `flags`, merging or splitting. Returns the VMA now covering the
 * range; its flags are the new flags when it was merged, the caller sets them otherwise.
 */
export function* vmaModifyFlags(core: Core, vma: Vma, start: number, end: number, flags: number): KGen<Vma> {
  const prev = start > vma.start ? vma : vmaPrevOf(vma.mm, vma.start);
  const vmg = vmgVmaState(prev, vma, start, end);
  vmg.flags = flags;
  return yield* vmaModify(core, vmg);
}

/**
 * Models vma_merge_extend() (mm/vma.c): grow vma by delta bytes in place (mremap()), merging
 * with next when it becomes adjacent and compatible. Null when no merge is possible (a
 * VM_SPECIAL VMA): mremap() then fails with -ENOMEM.
 */
export function* vmaMergeExtend(core: Core, vma: Vma, delta: number): KGen<Vma | null> {
  const vmg = vmgVmaState(vma, vma, vma.end, vma.end + delta);
  vmg.next = vmaNextFrom(vma.mm, vma.end);
  vmg.middle = null;
  return yield* vmaMergeNewRange(core, vmg);
}

/** What copy_vma() returns: the destination VMA and the (possibly merged) source VMA. */
export interface CopyVmaResult {
  readonly newVma: Vma;
  readonly vma: Vma;
}

/**
 * Models copy_vma() (mm/vma.c): the destination VMA of an mremap() move of [vma's part at
 * pgoff, len bytes) to addr: merged into a compatible neighbour (vma_merge_copied_range()) or a
 * new VMA sharing file and anon_vma chain. An unfaulted anonymous VMA takes the destination's
 * linear pgoff (so it can merge there); the source itself may be the VMA it merged into.
 * Null when the destination is not free (the kernel's "should never get here").
 */
export function* copyVma(
  core: Core,
  vma: Vma,
  addr: number,
  len: number,
  pgoff: number,
): KGen<CopyVmaResult | null> {
  const mm = vma.mm;
  const vmaStart = vma.start;
  let pg = pgoff;
  if (vma.isAnonymous && !vma.anonVma) pg = addr / PAGE_SIZE;
  const vmg = vmgVmaState(null, vma, addr, addr + len);
  const existing = mm.findVma(addr);
  if (existing && existing.start < addr + len) return null;
  vmg.prev = vmaPrevOf(mm, addr);
  vmg.pgoff = pg;
  vmg.next = vmaNextFrom(mm, addr);
  const merged = yield* vmaMergeCopiedRange(core, vmg);
  if (merged) {
    // The source merged into the destination: only an unfaulted anonymous VMA can (its pgoff
    // was reset to the destination's), as copy_vma()'s VM_BUG_ON_VMA() asserts.
    const src = vmaStart >= merged.start && vmaStart < merged.end ? merged : vma;
    return { newVma: merged, vma: src };
  }
  const nv = new Vma(mm, addr, addr + len, vma.flags, pg, vma.file);
  nv.vmOps = vma.vmOps;
  nv.vmFile = vma.vmFile;
  anonVmaClone(vma, nv);
  if (vma.file) {
    vma.file.mmaps.add(nv);
    vma.file.refs++;
  }
  mm.insertVma(nv);
  return { newVma: nv, vma };
}

/**
 * Model-only: would the kernel's rules let adjacent VMAs a and b (a below b) be one VMA? Same
 * flags (VM_SOFTDIRTY aside), same file, linear pgoff, not VM_SPECIAL, and anon_vmas
 * is_mergeable_anon_vma() accepts (equal, or one side without anon_vma and the other not a
 * fork child). Used by the randomized tests to check the layout after every operation.
 */
export function vmasMergeable(a: Vma, b: Vma): boolean {
  if (a.end !== b.start || a.mm !== b.mm) return false;
  if ((a.flags | b.flags) & VM_SPECIAL) return false;
  // A VMA with ->close() can stay apart (can_merge_remove_vma() refuses to remove it).
  if (vmaHasClose(a) || vmaHasClose(b)) return false;
  if ((a.flags ^ b.flags) & ~VM_IGNORE_MERGE) return false;
  if (a.vmFile !== b.vmFile) return false;
  if (a.pgoff + a.pages !== b.pgoff) return false;
  if (a.anonVma && b.anonVma) return a.anonVma === b.anonVma;
  if (a.anonVma) return !vmaIsForkChild(a);
  if (b.anonVma) return !vmaIsForkChild(b);
  return true;
}
