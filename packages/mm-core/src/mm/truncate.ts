/**
 * Truncation of page-cache folios (mm/truncate.c: truncate_inode_folio(),
 * truncate_inode_partial_folio()) and unmap_mapping_pages() (mm/memory.c), which shmem's
 * truncate and hole punch (shmem-fallocate.ts) and collapse_file() use. A large folio only
 * partly inside the range is zeroed there and split (folio_split() at the range's first page,
 * then at its end), so the caller can free the pieces inside; when the split fails the zeroed
 * folio stays whole.
 */
import { EIO, PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { folioMapped, folioPut, folioTestLarge, folioTryGet, folioTrylock, folioUnlock } from '../folio.js';
import { PG_dirty } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { withInvalidation } from './notifier.js';
import { shmemDeleteFolio } from './shmem.js';
import { tryFolioSplitToOrder } from './split.js';
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
 * Models truncate_inode_folio(mapping, folio) (mm/truncate.c) for a locked shmem folio the
 * caller holds a reference on: -EIO when it left the mapping meanwhile; else
 * truncate_cleanup_folio() unmaps it from every mapping (unmap_mapping_folio(): private COWed
 * copies stay) and filemap_remove_folio() takes it out of the page cache. Returns 0 or -EIO.
 * The model's faults do not take the folio lock: a folio a racing fault mapped again after the
 * unmap is left in the page cache (-EIO), where the kernel's fault would have waited.
 */
export function* truncateInodeFolio(core: Core, inode: Inode, head: number): KGen<number> {
  const m = core.map;
  if (m.mapping[head] !== inode.id) return -EIO;
  if (folioMapped(core, head))
    yield* unmapMappingPages(core, inode, m.index[head], m.folioNrPages(head), false);
  if (folioMapped(core, head) || m.mapping[head] !== inode.id) return -EIO;
  shmemDeleteFolio(core, inode, head);
  return 0;
}

/**
 * Models truncate_inode_partial_folio(folio, start, end) (mm/truncate.c, v6.19) for a locked
 * shmem folio the caller holds a reference on, and the byte range [lstart, lend] (lend -1: to
 * the end of the file). A folio wholly inside is truncated. Otherwise its part of the range is
 * zeroed; a large folio is then split with try_folio_split_to_order() at the page holding the
 * range's start (to order 0, shmem's minimum order; pieces beyond i_size leave the page cache in
 * the split), and on success the piece holding the range's end is split there too ("to make
 * sure folios within the range can be dropped"), so the caller frees every piece inside. When
 * the first split fails a dirty folio is kept zeroed (false: the caller must not discard it), a
 * clean one is truncated whole.
 */
export function* truncateInodePartialFolio(
  core: Core,
  inode: Inode,
  head: number,
  lstart: number,
  lend: number,
): KGen<boolean> {
  const m = core.map;
  const pos = m.index[head] * PAGE_SIZE;
  const size = m.folioNrPages(head) * PAGE_SIZE;
  const offset = pos < lstart ? lstart - pos : 0;
  // (u64)end: lend -1 is beyond every folio.
  const length = lend < 0 || pos + size <= lend ? size - offset : lend + 1 - pos - offset;
  if (length === size) {
    yield* truncateInodeFolio(core, inode, head);
    return true;
  }
  // folio_zero_range(folio, offset, length): shmem's mapping is not inaccessible.
  for (let o = offset; o < offset + length; ) {
    const page = Math.floor(o / PAGE_SIZE);
    const to = Math.min(offset + length, (page + 1) * PAGE_SIZE);
    core.frames.page(head + page).fill(0, o % PAGE_SIZE, (o % PAGE_SIZE) + (to - o));
    o = to;
  }
  if (!folioTestLarge(core, head)) return true;
  const splitAt = head + Math.floor(offset / PAGE_SIZE);
  if ((yield* tryFolioSplitToOrder(core, head, splitAt, 0)) === 0) {
    if (offset + length === size) return true;
    const splitAt2 = head + Math.floor((offset + length) / PAGE_SIZE);
    const folio2 = m.head[splitAt2];
    if (!folioTryGet(core, folio2)) return true;
    if (folioTestLarge(core, folio2) && folioTrylock(core, folio2)) {
      // Make sure folio2 is large and does not change its mapping.
      if (folioTestLarge(core, folio2) && m.mapping[folio2] === m.mapping[head])
        yield* tryFolioSplitToOrder(core, folio2, splitAt2, 0);
      folioUnlock(core, folio2);
    }
    folioPut(core, folio2);
    return true;
  }
  if (m.flags[head] & PG_dirty) return false;
  yield* truncateInodeFolio(core, inode, head);
  return true;
}
