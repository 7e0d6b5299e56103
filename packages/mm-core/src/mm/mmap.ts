import { EINVAL, ENOMEM, HPAGE_PMD_NR, MMAP_MIN_ADDR, PAGE_SIZE, PMD_SIZE, TASK_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import type { KGen } from '../sched/task.js';
import { munmapArgs } from '../syscall-args.js';
import { unlinkAnonVmas } from './anon.js';
import { mmapReadUnlock, mmapWriteDowngrade, mmapWriteLock, mmapWriteUnlock } from './locking.js';
import { mmuNotifierInvalidateRangeEnd, mmuNotifierInvalidateRangeStart } from './notifier.js';
import { freeEmptyTables } from './pgtable.js';
import { shmemTruncateAll } from './shmem.js';
import { type Inode, MMU_NOTIFY_UNMAP, type MmStruct, VM_HUGETLB, type Vma } from './types.js';
import { isolateRange } from './vma.js';
import { zapRange } from './zap.js';

/** Models PAGE_ALIGN(). */
export function pageAlign(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

/** True when the range [start, start + len) contains no VMA. */
export function rangeFree(mm: MmStruct, start: number, len: number): boolean {
  const v = mm.findVma(start);
  return !v || v.start >= start + len;
}

/**
 * Models unmapped_area_topdown() (mm/vma.c): the highest gap below mmap_base that holds len
 * bytes at the given alignment. Returns -ENOMEM when nothing fits.
 */
export function unmappedAreaTopdown(mm: MmStruct, len: number, align: number): number {
  let gapEnd = mm.mmapBase;
  for (let i = mm.vmas.length - 1; i >= -1; i--) {
    const v = i >= 0 ? mm.vmas[i] : undefined;
    if (v && v.start >= mm.mmapBase) continue;
    const gapStart = v ? v.end : MMAP_MIN_ADDR;
    const cand = Math.floor((gapEnd - len) / align) * align;
    if (cand >= gapStart && cand + len <= gapEnd) return cand;
    if (v) gapEnd = v.start;
  }
  return -ENOMEM;
}

/**
 * Models __get_unmapped_area(): honour a free hint, else search top-down; anonymous mappings
 * whose length is a multiple of PMD_SIZE are PMD aligned (thp_get_unmapped_area()).
 */
export function getUnmappedArea(mm: MmStruct, hint: number, len: number, thpAlign: boolean): number {
  if (len > TASK_SIZE) return -ENOMEM;
  if (hint) {
    const h = pageAlign(hint);
    if (h >= MMAP_MIN_ADDR && h + len <= TASK_SIZE && rangeFree(mm, h, len)) return h;
  }
  if (thpAlign && len % PMD_SIZE === 0) {
    const a = unmappedAreaTopdown(mm, len, PMD_SIZE);
    if (a >= 0) return a;
  }
  return unmappedAreaTopdown(mm, len, PAGE_SIZE);
}

/** Models remove_vma(): unlink a VMA that has been zapped. */
export function removeVma(core: Core, vma: Vma): void {
  vma.mm.removeVma(vma);
  unlinkAnonVmas(core, vma);
  if (vma.file) {
    vma.file.mmaps.delete(vma);
    inodePut(core, vma.file);
  }
  vma.vmOps?.close?.(vma);
}

/**
 * Models do_vmi_munmap() on a validated range, the mmap_lock held for write: split VMAs at the
 * boundaries and detach them, then (unmap_region()) zap the pages under an MMU_NOTIFY_UNMAP
 * invalidation, free page tables no longer used and remove the VMAs. With `downgrade` (munmap(2)
 * itself) the lock is downgraded to read after the detach, as vms_complete_munmap_vmas() does,
 * and the caller must release a read lock afterwards.
 */
export function* unmapRange(core: Core, mm: MmStruct, start: number, end: number, downgrade = false): KGen {
  const vmas = yield* isolateRange(core, mm.vmas, start, end);
  // vms_gather_munmap_vmas(): the VMAs leave the tree before the pages go (a fault in the range
  // now finds no VMA).
  for (const v of vmas) mm.removeVma(v);
  if (downgrade) mmapWriteDowngrade(core, mm, 'vms_complete_munmap_vmas');
  if (vmas.length === 0) return;
  const range = { mm, start, end, event: MMU_NOTIFY_UNMAP, owner: null };
  yield* mmuNotifierInvalidateRangeStart(range);
  try {
    for (const v of vmas) yield* zapRange(core, v, v.start, v.end);
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
  // unmap_region(): floor and ceiling are the neighbours' bounds (prev->vm_end, next->vm_start).
  let floor = 0;
  let ceiling = 2 ** 48;
  for (const v of mm.vmas) {
    if (v.end <= start && v.end > floor) floor = v.end;
    if (v.start >= end && v.start < ceiling) ceiling = v.start;
  }
  freeEmptyTables(core, mm, start, end, floor, ceiling);
  for (const v of vmas) removeVma(core, v);
}

/**
 * Models munmap(2) (__vm_munmap()): validation, mmap_write_lock, do_vmi_munmap() with the
 * downgrade, mmap_read_unlock. 0 or -EINVAL.
 */
export function* sysMunmap(core: Core, mm: MmStruct, addrArg: number, lenArg: number): KGen<number> {
  const range = munmapArgs(addrArg, lenArg);
  if (typeof range === 'number') return range;
  const addr = range.start;
  const l = range.end - addr;
  yield* mmapWriteLock(core, mm, '__vm_munmap');
  // hugetlb VMAs must be unmapped on huge-page boundaries.
  for (const v of mm.vmas) {
    if (v.end <= addr || v.start >= addr + l) continue;
    if (
      v.flags & VM_HUGETLB &&
      ((addr > v.start && addr % PMD_SIZE) || (addr + l < v.end && (addr + l) % PMD_SIZE))
    ) {
      mmapWriteUnlock(core, mm, '__vm_munmap');
      return -EINVAL;
    }
  }
  yield* unmapRange(core, mm, addr, addr + l, true);
  mmapReadUnlock(core, mm, '__vm_munmap');
  return 0;
}

/** Number of 4 KiB pages in a PMD (re-exported for callers that iterate PMDs). */
export const PMD_PAGES = HPAGE_PMD_NR;

/** Models iput() of an unlinked tmpfs inode: when nothing references it, drop its page cache. */
export function inodePut(core: Core, inode: Inode): void {
  inode.refs--;
  if (inode.refs <= 0 && inode.unlinked) {
    shmemTruncateAll(core, inode);
    if (core.mappings.has(inode.id)) core.unregisterMapping(inode.id);
  }
}
