import { EINVAL, ENOMEM, HPAGE_PMD_NR, MMAP_MIN_ADDR, PAGE_SIZE, PMD_SIZE, TASK_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { unlinkAnonVmas } from './anon.js';
import { withInvalidation } from './notifier.js';
import { freeEmptyTables } from './pgtable.js';
import { shmemTruncatePages } from './shmem.js';
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
 * Models do_vmi_munmap() on a validated range: split VMAs at the boundaries, zap the pages
 * (MMU_NOTIFY_UNMAP), remove the VMAs and free page tables no longer used.
 */
export function unmapRange(core: Core, mm: MmStruct, start: number, end: number): void {
  const vmas = isolateRange(core, mm.vmas, start, end);
  if (vmas.length === 0) return;
  withInvalidation(mm, start, end, MMU_NOTIFY_UNMAP, null, () => {
    for (const v of vmas) zapRange(core, v, v.start, v.end);
  });
  for (const v of vmas) removeVma(core, v);
  freeEmptyTables(core, mm, start, end);
}

/** Models the validation and work of munmap(2): 0 or -EINVAL. */
export function sysMunmap(core: Core, mm: MmStruct, addr: number, len: number): number {
  if (!Number.isInteger(addr) || !Number.isInteger(len)) return -EINVAL;
  if (addr % PAGE_SIZE !== 0 || addr < 0 || addr > TASK_SIZE) return -EINVAL;
  const l = pageAlign(len);
  if (len <= 0 || l > TASK_SIZE - addr) return -EINVAL;
  // hugetlb VMAs must be unmapped on huge-page boundaries.
  for (const v of mm.vmas) {
    if (v.end <= addr || v.start >= addr + l) continue;
    if (
      v.flags & VM_HUGETLB &&
      ((addr > v.start && addr % PMD_SIZE) || (addr + l < v.end && (addr + l) % PMD_SIZE))
    )
      return -EINVAL;
  }
  unmapRange(core, mm, addr, addr + l);
  return 0;
}

/** Number of 4 KiB pages in a PMD (re-exported for callers that iterate PMDs). */
export const PMD_PAGES = HPAGE_PMD_NR;

/** Models iput() of an unlinked tmpfs inode: when nothing references it, drop its page cache. */
export function inodePut(core: Core, inode: Inode): void {
  inode.refs--;
  if (inode.refs <= 0 && inode.unlinked) {
    shmemTruncatePages(core, inode, 0);
    if (core.mappings.has(inode.id)) core.unregisterMapping(inode.id);
  }
}
