import { HPAGE_PMD_NR, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { folioPut, folioTestLarge, folioTryGet, folioTrylock, folioUnlock } from '../folio.js';
import { PG_dirty } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { folioLockWait } from './locking.js';
import { withInvalidation } from './notifier.js';
import { shmemFolios } from './shmem.js';
import { truncateInodeFolio, truncateInodePartialFolio, unmapMappingPages } from './truncate.js';
import { type Inode, MMU_NOTIFY_CLEAR } from './types.js';
import { zapRange } from './zap.js';

/**
 * The page-cache folios of an inode with a slot in [from, to), as [head, first index, pages],
 * in index order (find_lock_entries()/find_get_entries() walk the xarray in order).
 */
function pageCacheFolios(core: Core, inode: Inode, from: number, to: number): [number, number, number][] {
  return shmemFolios(core, inode)
    .filter(([, index, nr]) => index + nr > from && index < to)
    .sort((x, y) => x[1] - y[1]);
}

/**
 * Models shmem_get_partial_folio(inode, index) (mm/shmem.c): the page-cache folio holding
 * index (filemap_get_entry() with a reference), locked (folio_lock() may sleep) and still in
 * this mapping; else -1 (the model has no swap, so there is nothing to read back).
 */
function* shmemGetPartialFolio(core: Core, inode: Inode, index: number): KGen<number> {
  const pfn = inode.pages.get(index);
  if (pfn === undefined) return -1;
  const head = core.map.head[pfn];
  if (!folioTryGet(core, head)) return -1;
  yield* folioLockWait(core, head, 'shmem_get_partial_folio');
  if (core.map.mapping[head] === inode.id) return head;
  folioUnlock(core, head);
  folioPut(core, head);
  return -1;
}

/**
 * Models shmem_undo_range(inode, lstart, lend, false) (mm/shmem.c, v6.19) as
 * shmem_truncate_range() runs it, lend -1 meaning the end of the file. The caller has unmapped
 * the range (unmap_mapping_range()). First the folios wholly inside [start, end) (the whole
 * pages of the range) that can be locked at once leave the page cache (find_lock_entries(),
 * truncate_inode_folio(): one still mapped, by a fault that raced the unmap, is unmapped
 * first). Then the folio holding lstart and the one holding lend are marked dirty and handed to
 * truncate_inode_partial_folio(): their part of the range is zeroed and a large one is split so
 * that the pieces inside can go; one whose split failed stays (zeroed) and the range shrinks
 * past it. Last, every folio left in [start, end) is truncated (a large one through
 * truncate_inode_partial_folio() again; after a split the walk restarts to find the pieces),
 * until none is left.
 */
function* shmemUndoRange(core: Core, inode: Inode, lstart: number, lend: number): KGen {
  const m = core.map;
  let start = Math.ceil(lstart / PAGE_SIZE);
  let end = lend < 0 ? Number.POSITIVE_INFINITY : Math.floor((lend + 1) / PAGE_SIZE);
  for (const [head, index, nr] of pageCacheFolios(core, inode, start, end)) {
    // find_lock_entries() omits large folios beginning before start or extending beyond end.
    if (index < start || index + nr > end) continue;
    if (m.head[head] !== head || !folioTryGet(core, head)) continue;
    if (folioTrylock(core, head)) {
      if (inode.pages.get(index) === head) yield* truncateInodeFolio(core, inode, head);
      folioUnlock(core, head);
    }
    folioPut(core, head);
  }
  const lendIndex = lend < 0 ? Number.POSITIVE_INFINITY : Math.floor(lend / PAGE_SIZE);
  let sameFolio = Math.floor(lstart / PAGE_SIZE) === lendIndex;
  let folio = yield* shmemGetPartialFolio(core, inode, Math.floor(lstart / PAGE_SIZE));
  if (folio >= 0) {
    // lend < folio_next_pos(folio), lend being unsigned (-1 is beyond every folio).
    sameFolio = lend >= 0 && lend < (m.index[folio] + m.folioNrPages(folio)) * PAGE_SIZE;
    m.flags[folio] |= PG_dirty;
    const next = m.index[folio] + m.folioNrPages(folio);
    if (!(yield* truncateInodePartialFolio(core, inode, folio, lstart, lend))) {
      start = next;
      if (sameFolio) end = m.index[folio];
    }
    folioUnlock(core, folio);
    folioPut(core, folio);
    folio = -1;
  }
  if (!sameFolio && lendIndex !== Number.POSITIVE_INFINITY)
    folio = yield* shmemGetPartialFolio(core, inode, lendIndex);
  if (folio >= 0) {
    m.flags[folio] |= PG_dirty;
    if (!(yield* truncateInodePartialFolio(core, inode, folio, lstart, lend))) end = m.index[folio];
    folioUnlock(core, folio);
    folioPut(core, folio);
  }
  // whole_folios:
  let index = start;
  while (index < end) {
    if (core.sched.preempt('shmem_undo_range: cond_resched')) yield RESCHED;
    const batch = pageCacheFolios(core, inode, index, end);
    if (batch.length === 0) {
      // "If all gone or hole-punch or unfalloc, we're done"; "but if truncating, restart to
      // make sure all gone".
      if (index === start || end !== Number.POSITIVE_INFINITY) break;
      index = start;
      continue;
    }
    let nextIndex = batch[batch.length - 1][1] + batch[batch.length - 1][2];
    for (const [head, idx] of batch) {
      if (m.head[head] !== head || !folioTryGet(core, head)) continue;
      yield* folioLockWait(core, head, 'shmem_undo_range');
      if (m.mapping[head] !== inode.id) {
        // Gone meanwhile ("Page was replaced by swap: retry" in the kernel): look again from here.
        folioUnlock(core, head);
        folioPut(core, head);
        nextIndex = idx;
        break;
      }
      if (!folioTestLarge(core, head)) yield* truncateInodeFolio(core, inode, head);
      else {
        const done = yield* truncateInodePartialFolio(core, inode, head, lstart, lend);
        // "If we split a page, reset the loop so that we pick up the new sub pages."
        if (done && !folioTestLarge(core, head)) {
          folioUnlock(core, head);
          folioPut(core, head);
          nextIndex = start;
          break;
        }
      }
      folioUnlock(core, head);
      folioPut(core, head);
    }
    index = nextIndex;
  }
}

/**
 * Models shmem_truncate_range(inode, lstart, lend) (mm/shmem.c): shmem_undo_range() over the
 * bytes [lstart, lend] (lend -1: to the end of the file), for ftruncate(2) and hole punching.
 */
export function* shmemTruncateRange(core: Core, inode: Inode, lstart: number, lend: number): KGen {
  yield* shmemUndoRange(core, inode, lstart, lend);
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
  yield* shmemTruncateRange(core, inode, offset, offset + len - 1);
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
