import { HPAGE_PMD_NR, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { folioMapped, folioPut } from '../folio.js';
import type { KGen } from '../sched/task.js';
import { withInvalidation } from './notifier.js';
import { shmemDeleteFolio, shmemFolios } from './shmem.js';
import { type Inode, MMU_NOTIFY_CLEAR } from './types.js';
import { zapRange } from './zap.js';

/**
 * Models unmap_mapping_pages(mapping, start, nr, even_cows) (mm/memory.c): under the i_mmap
 * lock, zap the pages [start, start + nr) of the file in every VMA that maps them, each VMA's
 * part inside an MMU_NOTIFY_CLEAR invalidation (zap_page_range_single()). Without even_cows the
 * private COWed copies stay (only page-cache folios and zero pages are zapped).
 */
export function* unmapMappingPages(
  core: Core,
  inode: Inode,
  start: number,
  nr: number,
  evenCows: boolean,
): KGen {
  const last = start + nr - 1;
  yield* inode.immapRwsem.downRead(core.sched, 'unmap_mapping_range');
  try {
    for (const v of [...inode.mmaps]) {
      const vba = v.pgoff;
      const vea = vba + v.pages - 1;
      const zba = Math.max(start, vba);
      const zea = Math.min(last, vea);
      if (zba > zea) continue;
      const s = v.start + (zba - vba) * PAGE_SIZE;
      const e = s + (zea - zba + 1) * PAGE_SIZE;
      yield* withInvalidation(v.mm, s, e, MMU_NOTIFY_CLEAR, null, () => zapRange(core, v, s, e, evenCows));
    }
  } finally {
    inode.immapRwsem.upRead(core.sched, 'unmap_mapping_range');
  }
}

/**
 * Models shmem_undo_range(inode, lstart, lend, false) as shmem_truncate_range() runs it: the
 * page-cache folios wholly inside [lstart, lend] leave the page cache (one still mapped, by a
 * fault that raced the unmap, is unmapped first: truncate_inode_folio()); the partial pages at
 * either end are zeroed over their part of the range.
 */
function* shmemUndoRange(core: Core, inode: Inode, lstart: number, lend: number): KGen {
  const first = Math.ceil(lstart / PAGE_SIZE);
  const endIndex = Math.floor((lend + 1) / PAGE_SIZE);
  for (const [head, index, nr] of shmemFolios(core, inode)) {
    if (index + nr <= first || index >= endIndex) continue;
    if (index < first || index + nr > endIndex) {
      // A large folio partly inside the hole: the kernel splits it and frees the pages inside;
      // the model keeps the folio and zeroes them (what the kernel does when the split fails).
      for (let i = Math.max(first, index); i < Math.min(endIndex, index + nr); i++)
        core.frames.page(head + (i - index)).fill(0);
      continue;
    }
    if (folioMapped(core, head)) yield* unmapMappingPages(core, inode, index, nr, false);
    if (inode.pages.get(index) !== head) continue;
    shmemDeleteFolio(core, inode, head);
  }
  const zeroPart = (index: number, from: number, to: number) => {
    const pfn = inode.pages.get(index);
    if (pfn !== undefined && to > from) core.frames.page(pfn).fill(0, from, to);
  };
  const headIndex = Math.floor(lstart / PAGE_SIZE);
  const tailIndex = Math.floor(lend / PAGE_SIZE);
  if (lstart % PAGE_SIZE)
    zeroPart(headIndex, lstart % PAGE_SIZE, headIndex === tailIndex ? (lend % PAGE_SIZE) + 1 : PAGE_SIZE);
  if ((lend + 1) % PAGE_SIZE && tailIndex !== headIndex) zeroPart(tailIndex, 0, (lend % PAGE_SIZE) + 1);
}

/**
 * Models vfs_fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) on tmpfs
 * (shmem_fallocate()): unmap the whole pages of the hole from every mapping of the file, leaving
 * COWed private pages ("hole-punching leaves COWed pages"), then free the page cache there
 * (shmem_truncate_range()); the size does not change. Reads of the hole see zeros. Returns 0.
 */
export function* shmemFallocatePunchHole(
  core: Core,
  inode: Inode,
  offset: number,
  len: number,
): KGen<number> {
  const unmapStart = Math.ceil(offset / PAGE_SIZE) * PAGE_SIZE;
  const unmapEnd = Math.floor((offset + len) / PAGE_SIZE) * PAGE_SIZE - 1;
  if (unmapEnd > unmapStart)
    yield* unmapMappingPages(
      core,
      inode,
      unmapStart / PAGE_SIZE,
      (1 + unmapEnd - unmapStart) / PAGE_SIZE,
      false,
    );
  yield* shmemUndoRange(core, inode, offset, offset + len - 1);
  return 0;
}

/** Zeroes [from, to) of the file, inside one huge page of a hugetlbfs inode (hugetlbfs_zero_partial_page()). */
function hugetlbfsZeroPartialPage(core: Core, inode: Inode, from: number, to: number): void {
  const folio = inode.pages.get(Math.floor(from / PMD_SIZE));
  if (folio === undefined) return;
  const base = Math.floor(from / PMD_SIZE) * PMD_SIZE;
  for (let off = from - base; off < to - base; ) {
    const page = Math.floor(off / PAGE_SIZE);
    const end = Math.min(to - base, (page + 1) * PAGE_SIZE);
    core.frames.page(folio + page).fill(0, off % PAGE_SIZE, (off % PAGE_SIZE) + (end - off));
    off = end;
  }
}

/**
 * Models hugetlbfs_punch_hole() (fs/hugetlbfs/inode.c), the hugetlbfs fallocate(PUNCH_HOLE):
 * partial huge pages at either end are zeroed, the whole huge pages of the hole are unmapped from
 * every VMA of the file (hugetlb_vmdelete_list(), an MMU_NOTIFY_CLEAR invalidation per VMA) under
 * the i_mmap lock and then removed from the page cache (remove_inode_hugepages(): a page nobody
 * maps any more goes back to the pool). Returns 0.
 */
export function* hugetlbfsPunchHole(core: Core, inode: Inode, offset: number, len: number): KGen<number> {
  const holeStart = Math.ceil(offset / PMD_SIZE) * PMD_SIZE;
  const holeEnd = Math.floor((offset + len) / PMD_SIZE) * PMD_SIZE;
  yield* inode.immapRwsem.downWrite(core.sched, 'hugetlbfs_punch_hole');
  try {
    if (offset < holeStart) hugetlbfsZeroPartialPage(core, inode, offset, Math.min(offset + len, holeStart));
    if (holeEnd > holeStart)
      for (const v of [...inode.mmaps]) {
        const s = Math.max(v.start, v.start + (holeStart / PAGE_SIZE - v.pgoff) * PAGE_SIZE);
        const e = Math.min(v.end, v.start + (holeEnd / PAGE_SIZE - v.pgoff) * PAGE_SIZE);
        if (s < e) yield* withInvalidation(v.mm, s, e, MMU_NOTIFY_CLEAR, null, () => zapRange(core, v, s, e));
      }
    if (offset + len > holeEnd && offset + len > holeStart)
      hugetlbfsZeroPartialPage(core, inode, Math.max(holeEnd, offset), offset + len);
  } finally {
    inode.immapRwsem.upWrite(core.sched, 'hugetlbfs_punch_hole');
  }
  for (let idx = holeStart / PMD_SIZE; idx < holeEnd / PMD_SIZE; idx++) {
    const folio = inode.pages.get(idx);
    if (folio === undefined) continue;
    // A fault that raced the unmap: hugetlb_unmap_file_folio().
    if (core.map.largeMapcount[folio] > 0)
      for (const v of [...inode.mmaps]) {
        const s = v.start + (idx * HPAGE_PMD_NR - v.pgoff) * PAGE_SIZE;
        if (s >= v.start && s + PMD_SIZE <= v.end)
          yield* withInvalidation(v.mm, s, s + PMD_SIZE, MMU_NOTIFY_CLEAR, null, () =>
            zapRange(core, v, s, s + PMD_SIZE),
          );
      }
    if (inode.pages.get(idx) !== folio) continue;
    inode.pages.delete(idx);
    core.map.mapping[folio] = 0;
    folioPut(core, folio);
  }
  return 0;
}
