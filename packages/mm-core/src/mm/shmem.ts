import { PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { allocFolio, folioPut } from '../folio.js';
import { PG_hugetlb, PG_lru, PG_swapbacked, PG_uptodate } from '../phys/memmap.js';
import { Inode } from './types.js';

let nextIno = 1;

/** Models shmem_get_inode()/shmem_file_setup(): a new tmpfs inode with an empty page cache. */
export function shmemNewInode(core: Core, name: string): Inode {
  const inode = new Inode(name, nextIno++);
  inode.id = core.registerMapping(inode);
  return inode;
}

/**
 * Models shmem_get_folio(): the page-cache folio at `index`, allocating a zeroed one when
 * `alloc` (SGP_CACHE). Returns the pfn or -1 (absent, or out of memory).
 */
export function shmemGetFolio(core: Core, inode: Inode, index: number, alloc: boolean): number {
  const have = inode.pages.get(index);
  if (have !== undefined) return have;
  if (!alloc) return -1;
  const pfn = allocFolio(core, 0, true);
  if (pfn < 0) return -1;
  const m = core.map;
  m.flags[pfn] |= PG_uptodate | PG_swapbacked | PG_lru;
  m.mapping[pfn] = inode.id;
  m.index[pfn] = index;
  inode.pages.set(index, pfn);
  core.vmstat.nr_shmem++;
  core.vmstat.nr_file_pages++;
  return pfn;
}

/**
 * Models shmem_undo_range()/truncate_inode_pages_range() for page-cache pages at index >= from:
 * the caller must already have unmapped them (unmap_mapping_range).
 */
export function shmemTruncatePages(core: Core, inode: Inode, from: number): void {
  for (const [index, pfn] of [...inode.pages]) {
    if (index < from) continue;
    inode.pages.delete(index);
    core.map.mapping[pfn] = 0;
    core.map.flags[pfn] &= ~PG_lru;
    // hugetlbfs folios share the page cache but are not counted in NR_SHMEM/NR_FILE_PAGES.
    if (!(core.map.flags[pfn] & PG_hugetlb)) {
      core.vmstat.nr_shmem--;
      core.vmstat.nr_file_pages--;
    }
    folioPut(core, pfn);
  }
}

/** Models shmem_file_read_iter(): copy file bytes at pos into buf; returns bytes read. */
export function shmemRead(core: Core, inode: Inode, buf: Uint8Array, pos: number): number {
  if (pos >= inode.size) return 0;
  const len = Math.min(buf.length, inode.size - pos);
  let done = 0;
  while (done < len) {
    const p = pos + done;
    const index = Math.floor(p / PAGE_SIZE);
    const off = p % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, len - done);
    const pfn = inode.pages.get(index);
    if (pfn === undefined) buf.fill(0, done, done + n);
    else buf.set(core.frames.page(pfn).subarray(off, off + n), done);
    done += n;
  }
  return len;
}

/** Models shmem_file_write_iter(): copy buf into the file at pos, extending it; bytes written or -errno. */
export function shmemWrite(core: Core, inode: Inode, buf: Uint8Array, pos: number): number {
  let done = 0;
  while (done < buf.length) {
    const p = pos + done;
    const index = Math.floor(p / PAGE_SIZE);
    const off = p % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, buf.length - done);
    const pfn = shmemGetFolio(core, inode, index, true);
    if (pfn < 0) break;
    core.frames.page(pfn).set(buf.subarray(done, done + n), off);
    done += n;
  }
  if (pos + done > inode.size) inode.size = pos + done;
  return done;
}
