/**
 * madvise(2) (mm/madvise.c): do_madvise() validates the advice and range, takes the mmap_lock as
 * get_lock_mode() says, and either populates the range (madvise_populate(),
 * mm/madvise-populate.ts) or walks its VMAs (madvise_walk_vmas()) applying the advice to each
 * VMA's part with madvise_vma_behavior(): VMA-flag advices through madvise_update_vma()
 * (splitting the VMA, then merging), the page-walking ones (mm/madvise-lazy.ts), MADV_REMOVE's
 * hole punch, MADV_COLLAPSE (mm/collapse.ts). The first VMA that fails ends the walk with its
 * error; holes in the range give -ENOMEM after the rest was advised.
 *
 * The model's configuration: CONFIG_SWAP=y without a swap device, CONFIG_TRANSPARENT_HUGEPAGE=y,
 * CONFIG_KSM=n and CONFIG_MEMORY_FAILURE=n (so MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HWPOISON
 * and MADV_SOFT_OFFLINE are -EINVAL, as on such a kernel). Not modelled: MADV_GUARD_INSTALL and
 * MADV_GUARD_REMOVE (no PTE markers; -EINVAL here, valid in v6.19), mseal (-EPERM) and
 * process_madvise().
 */
import {
  EACCES,
  EAGAIN,
  EFBIG,
  EINVAL,
  ENODEV,
  ENOMEM,
  HPAGE_PMD_SIZE,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_KEEPONFORK,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  PAGE_SIZE,
  PMD_SIZE,
} from '../constants.js';
import type { Core } from '../core.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { argInt, MODEL_MAX_FILESIZE, madviseArgs } from '../syscall-args.js';
import { khugepagedEnterVma } from './khugepaged-state.js';
import { mmapReadLock, mmapReadUnlock, mmapWriteLock, mmapWriteUnlock } from './locking.js';
import { madviseCollapse } from './madvise-collapse.js';
import { madviseColdOrPageout, madviseFreeSingleVma } from './madvise-lazy.js';
import { madvisePopulate } from './madvise-populate.js';
import { inodePut } from './mmap.js';
import { withInvalidation } from './notifier.js';
import { pmdIndex, pmdTableOf, ptHi, ptLo } from './pgtable.js';
import { hugetlbfsPunchHole, shmemFallocatePunchHole } from './shmem-fallocate.js';
import {
  MMU_NOTIFY_CLEAR,
  type MmStruct,
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_MAYWRITE,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_RAND_READ,
  VM_SEQ_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WIPEONFORK,
  type Vma,
} from './types.js';
import { vmaModifyFlags } from './vma-merge.js';
import { zapRange } from './zap.js';

/**
 * Models vma->vm_file != NULL: a tmpfs file, shared anonymous memory's shmem file, a device file,
 * or the hugetlbfs file every MAP_HUGETLB mapping has (the model keeps no inode for private ones).
 */
function hasVmFile(vma: Vma): boolean {
  return vma.file !== null || vma.vmOps !== null || (vma.flags & VM_HUGETLB) !== 0;
}

/** Models struct madvise_behavior: the advice, the VMA and its part of the range being advised. */
interface MadviseBehavior {
  readonly core: Core;
  readonly mm: MmStruct;
  readonly behavior: number;
  vma: Vma;
  start: number;
  end: number;
  /** Models madv_behavior->lock_dropped: the VMA may be gone, look the next one up by address. */
  lockDropped: boolean;
}

/**
 * Models madvise_behavior_valid() for the model's configuration (see the file comment): the
 * advices the kernel accepts.
 */
const VALID = new Set([
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_NORMAL,
  MADV_SEQUENTIAL,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_WILLNEED,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_COLD,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_COLLAPSE,
  MADV_DONTDUMP,
  MADV_DODUMP,
  MADV_WIPEONFORK,
  MADV_KEEPONFORK,
]);

/**
 * Models get_lock_mode(): advices that change VMA flags take the mmap_lock for write; REMOVE,
 * WILLNEED, COLD, PAGEOUT, the populates and COLLAPSE take it for read; DONTNEED(_LOCKED) and
 * FREE take a per-VMA read lock, which the model (without per-VMA locks) takes as the mmap_lock
 * for read.
 */
function needMmapWrite(advice: number): boolean {
  switch (advice) {
    case MADV_REMOVE:
    case MADV_WILLNEED:
    case MADV_COLD:
    case MADV_PAGEOUT:
    case MADV_POPULATE_READ:
    case MADV_POPULATE_WRITE:
    case MADV_COLLAPSE:
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED:
    case MADV_FREE:
      return false;
    default:
      return true;
  }
}

/**
 * Models do_madvise(): madvise_should_skip() (-EINVAL for an invalid advice, an unaligned start
 * or a length that wraps; 0 for an empty range), madvise_lock(), then madvise_populate() for the
 * populate advices and madvise_walk_vmas() for the others.
 */
export function* sysMadvise(
  core: Core,
  mm: MmStruct,
  addr: number,
  len: number,
  advice: number,
): KGen<number> {
  const adv = argInt(advice);
  if (adv === undefined || !VALID.has(adv)) return -EINVAL;
  const range = madviseArgs(addr, len);
  if (typeof range === 'number') return range;
  const { start, end } = range;
  if (end === start) return 0;
  const write = needMmapWrite(adv);
  if (write) yield* mmapWriteLock(core, mm, 'madvise_lock');
  else yield* mmapReadLock(core, mm, 'madvise_lock');
  const b: MadviseBehavior = {
    core,
    mm,
    behavior: adv,
    vma: mm.vmas[0],
    start,
    end,
    lockDropped: false,
  };
  try {
    if (adv === MADV_POPULATE_READ || adv === MADV_POPULATE_WRITE)
      return yield* madvisePopulate(core, mm, start, end, adv === MADV_POPULATE_WRITE);
    return yield* madviseWalkVmas(b);
  } finally {
    if (write) mmapWriteUnlock(core, mm, 'madvise_unlock');
    else mmapReadUnlock(core, mm, 'madvise_unlock');
  }
}

/**
 * Models madvise_walk_vmas(): madvise_vma_behavior() on each VMA's part of [start, end) in
 * address order. The first error is returned at once; a gap between VMAs only makes the result
 * -ENOMEM once every VMA was advised. After a behaviour dropped the mmap_lock the next VMA is
 * looked up again by address.
 */
function* madviseWalkVmas(b: MadviseBehavior): KGen<number> {
  const mm = b.mm;
  const lastEnd = b.end;
  let unmappedError = 0;
  let vma = mm.findVma(b.start);
  for (;;) {
    if (!vma) return -ENOMEM;
    if (b.start < vma.start) {
      unmappedError = -ENOMEM;
      b.start = vma.start;
      if (b.start >= lastEnd) break;
    }
    b.end = Math.min(vma.end, lastEnd);
    b.vma = vma;
    const error = yield* madviseVmaBehavior(b);
    if (error) return error;
    let cur: Vma | undefined;
    if (b.lockDropped) {
      cur = undefined;
      b.lockDropped = false;
    } else cur = b.vma;
    if (cur && b.end < cur.end) b.end = cur.end;
    if (b.end >= lastEnd) break;
    vma = mm.findVma(cur ? cur.end : b.end);
    b.start = b.end;
  }
  return unmappedError;
}

/**
 * Models madvise_vma_behavior(): dispatch one VMA's part of the range to its behaviour; VMA-flag
 * advices compute the new flags (MADV_DOFORK on VM_IO, MADV_WIPEONFORK on a file or shared
 * mapping and MADV_DODUMP on a VM_SPECIAL non-hugetlb mapping are -EINVAL) and go through
 * madvise_update_vma(). -ENOMEM from it is reported as -EAGAIN.
 */
function* madviseVmaBehavior(b: MadviseBehavior): KGen<number> {
  const vma = b.vma;
  let newFlags = vma.flags;
  switch (b.behavior) {
    case MADV_REMOVE:
      return yield* madviseRemove(b);
    case MADV_WILLNEED:
      return yield* madviseWillneed(b);
    case MADV_COLD:
    case MADV_PAGEOUT:
      return yield* madviseColdPageout(b);
    case MADV_FREE:
    case MADV_DONTNEED:
    case MADV_DONTNEED_LOCKED:
      return yield* madviseDontneedFree(b);
    case MADV_COLLAPSE: {
      const out = { lockDropped: false };
      const r = yield* madviseCollapse(b.core, vma, b.start, b.end, out);
      if (out.lockDropped) b.lockDropped = true;
      return r;
    }
    case MADV_NORMAL:
      newFlags &= ~(VM_RAND_READ | VM_SEQ_READ);
      break;
    case MADV_SEQUENTIAL:
      newFlags = (newFlags & ~VM_RAND_READ) | VM_SEQ_READ;
      break;
    case MADV_RANDOM:
      newFlags = (newFlags & ~VM_SEQ_READ) | VM_RAND_READ;
      break;
    case MADV_DONTFORK:
      newFlags |= VM_DONTCOPY;
      break;
    case MADV_DOFORK:
      if (newFlags & VM_IO) return -EINVAL;
      newFlags &= ~VM_DONTCOPY;
      break;
    case MADV_WIPEONFORK:
      // "MADV_WIPEONFORK is only supported on anonymous memory."
      if (hasVmFile(vma) || newFlags & VM_SHARED) return -EINVAL;
      newFlags |= VM_WIPEONFORK;
      break;
    case MADV_KEEPONFORK:
      // (VM_DROPPABLE, which refuses it, does not exist in the model.)
      newFlags &= ~VM_WIPEONFORK;
      break;
    case MADV_DONTDUMP:
      newFlags |= VM_DONTDUMP;
      break;
    case MADV_DODUMP:
      if (!(newFlags & VM_HUGETLB) && newFlags & VM_SPECIAL) return -EINVAL;
      newFlags &= ~VM_DONTDUMP;
      break;
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE:
      newFlags = hugepageMadvise(b.core, vma, newFlags, b.behavior);
      break;
  }
  const error = yield* madviseUpdateVma(newFlags, b);
  return error === -ENOMEM ? -EAGAIN : error;
}

/**
 * Models hugepage_madvise() (mm/khugepaged.c): MADV_HUGEPAGE sets VM_HUGEPAGE (clearing
 * VM_NOHUGEPAGE) and registers the mm with khugepaged if it may now collapse there
 * (khugepaged_enter_vma()); MADV_NOHUGEPAGE the reverse, without unregistering. The new flags.
 */
function hugepageMadvise(core: Core, vma: Vma, flags: number, advice: number): number {
  if (advice === MADV_HUGEPAGE) {
    const f = (flags & ~VM_NOHUGEPAGE) | VM_HUGEPAGE;
    khugepagedEnterVma(core, vma, f);
    return f;
  }
  return (flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE;
}

/**
 * Models madvise_update_vma(): nothing when the flags do not change; else vma_modify_flags()
 * merges [start, end) with a compatible neighbour or splits the VMA so that exactly that range
 * gets the new flags.
 */
function* madviseUpdateVma(newFlags: number, b: MadviseBehavior): KGen<number> {
  if (newFlags === b.vma.flags) return 0;
  const v = yield* vmaModifyFlags(b.core, b.vma, b.start, b.end, newFlags);
  v.flags = newFlags;
  b.vma = v;
  return 0;
}

/**
 * Models madvise_dontneed_free_valid_vma() (mm/madvise.c) for MADV_DONTNEED(_LOCKED) or MADV_FREE
 * on one VMA's part [start, end) of the range: the range to act on, or null for -EINVAL. A
 * VM_PFNMAP VMA is refused, and a VM_LOCKED one unless MADV_DONTNEED_LOCKED. A hugetlb VMA takes
 * only the DONTNEED advices (VM_LOCKED does not matter there), needs a start aligned to the huge
 * page size, and has its end aligned down to it ("madvise callers ... may be unaware that this
 * VMA uses huge pages. Avoid unexpected data loss by rounding down the number of huge pages
 * freed"), so the range may become empty.
 */
export function madviseDontneedFreeValidVma(
  vma: Vma,
  behavior: number,
  start: number,
  end: number,
): [number, number] | null {
  if (!(vma.flags & VM_HUGETLB)) {
    const forbidden = VM_PFNMAP | (behavior === MADV_DONTNEED_LOCKED ? 0 : VM_LOCKED);
    return vma.flags & forbidden ? null : [start, end];
  }
  if (behavior !== MADV_DONTNEED && behavior !== MADV_DONTNEED_LOCKED) return null;
  // huge_page_size(hstate_vma(vma)): the model has one hstate, 2 MiB.
  if (start % HPAGE_PMD_SIZE) return null;
  return [start, Math.floor(end / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE];
}

/**
 * Models madvise_dontneed_free(): check the VMA (the hugetlb end alignment may empty the range:
 * 0), then madvise_dontneed_single_vma() (zap_page_range_single_batched(): one MMU_NOTIFY_CLEAR
 * invalidation over the VMA's part) or madvise_free_single_vma() (anonymous VMAs only).
 */
function* madviseDontneedFree(b: MadviseBehavior): KGen<number> {
  const r = madviseDontneedFreeValidVma(b.vma, b.behavior, b.start, b.end);
  if (!r) return -EINVAL;
  b.end = r[1];
  if (b.start === b.end) return 0;
  const vma = b.vma;
  if (b.behavior === MADV_FREE) {
    if (!vma.isAnonymous) return -EINVAL;
    yield* madviseFreeSingleVma(b.core, vma, b.start, b.end);
    return 0;
  }
  const [s, e] = [b.start, b.end];
  yield* withInvalidation(vma.mm, s, e, MMU_NOTIFY_CLEAR, null, () => zapRange(b.core, vma, s, e));
  return 0;
}

/** Models can_madv_lru_vma(): MADV_COLD and MADV_PAGEOUT refuse locked, PFN-mapped and hugetlb VMAs. */
function canMadvLruVma(vma: Vma): boolean {
  return !(vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB));
}

/**
 * Models madvise_cold() / madvise_pageout(): -EINVAL unless can_madv_lru_vma(), then the walk of
 * madvise_cold_or_pageout_pte_range(). (madvise_pageout() skips shared file mappings of files the
 * caller could not write, can_do_file_pageout(); every model process owns its files.)
 */
function* madviseColdPageout(b: MadviseBehavior): KGen<number> {
  if (!canMadvLruVma(b.vma)) return -EINVAL;
  yield* madviseColdOrPageout(b.core, b.vma, b.start, b.end, b.behavior === MADV_PAGEOUT);
  return 0;
}

/**
 * Models madvise_willneed(): anonymous memory gets the swap readahead walk
 * (swapin_walk_pmd_entry(): without a swap device no PTE is a swap entry, so it only walks),
 * a tmpfs mapping shmem_swapin_range() (nothing in swap either); any other file (a device file,
 * hugetlbfs) vfs_fadvise(POSIX_FADV_WILLNEED) with the mmap_lock dropped. Always 0.
 */
function* madviseWillneed(b: MadviseBehavior): KGen<number> {
  const { core, vma } = b;
  if (!hasVmFile(vma)) {
    for (let a = b.start; a < b.end; a = (Math.floor(a / PMD_SIZE) + 1) * PMD_SIZE) {
      const pmdT = pmdTableOf(core, vma.mm, a, false);
      if (pmdT >= 0 && (ptLo(core, pmdT, pmdIndex(a)) || ptHi(core, pmdT, pmdIndex(a))))
        if (core.sched.preempt('swapin_walk_pmd_entry: cond_resched')) yield RESCHED;
    }
    return 0;
  }
  if (vma.file && !(vma.flags & VM_HUGETLB)) return 0;
  b.lockDropped = true;
  mmapReadUnlock(core, b.mm, 'madvise_willneed');
  if (core.sched.preempt('madvise_willneed: vfs_fadvise() without the mmap_lock')) yield RESCHED;
  yield* mmapReadLock(core, b.mm, 'madvise_willneed');
  return 0;
}

/**
 * Models madvise_remove(): punch a hole in the file behind the VMA's part of the range
 * (vfs_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) with the mmap_lock dropped:
 * -EINVAL for a VM_LOCKED VMA or one without a file (private anonymous memory), -EACCES unless
 * the VMA is shared and may be written (vma_is_shared_maywrite(): a read-only MAP_SHARED mapping
 * of a file opened O_RDWR qualifies), -EFBIG past the largest file size, -ENODEV for a device
 * file. Every mapping of the hole is zapped (private COWed copies stay) and the page cache there
 * is freed, so the range reads back zeros.
 */
function* madviseRemove(b: MadviseBehavior): KGen<number> {
  const { core, vma, mm } = b;
  b.lockDropped = true;
  if (vma.flags & VM_LOCKED) return -EINVAL;
  if (!hasVmFile(vma)) return -EINVAL;
  if ((vma.flags & (VM_SHARED | VM_MAYWRITE)) !== (VM_SHARED | VM_MAYWRITE)) return -EACCES;
  const inode = vma.file;
  // vfs_fallocate(): only regular files (and block devices) can be punched.
  if (!inode) return -ENODEV;
  const offset = b.start - vma.start + vma.pgoff * PAGE_SIZE;
  const len = b.end - b.start;
  if (offset + len > MODEL_MAX_FILESIZE) return -EFBIG;
  // get_file(): the VMA (and its file reference) may go away once the lock is dropped.
  inode.refs++;
  mmapReadUnlock(core, mm, 'madvise_remove');
  let error: number;
  try {
    error =
      vma.flags & VM_HUGETLB
        ? yield* hugetlbfsPunchHole(core, inode, offset, len)
        : yield* shmemFallocatePunchHole(core, inode, offset, len);
  } finally {
    inodePut(core, inode);
    yield* mmapReadLock(core, mm, 'madvise_remove');
  }
  return error;
}
