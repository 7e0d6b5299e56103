/**
 * hugetlbfs files (fs/hugetlbfs/inode.c, mm/hugetlb.c): memfd_create(MFD_HUGETLB) files and the
 * file of a MAP_SHARED|MAP_HUGETLB mapping. The page cache of such an inode is keyed by huge-page
 * index (2 MiB; the model has the default hstate only) and holds hugetlb folios from the pool;
 * folio->index is in base pages, as since v6.7.
 */
import {
  EINVAL,
  ENODEV,
  ENOMEM,
  ENOSPC,
  EOPNOTSUPP,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  PAGE_SHIFT,
  PAGE_SIZE,
  PMD_SIZE,
} from '../constants.js';
import type { Core } from '../core.js';
import { PG_uptodate } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { hugetlbAlloc } from './hugetlb.js';
import { getNextIno, shmemNewInode } from './shmem.js';
import { hugetlbfsPunchHole } from './shmem-fallocate.js';
import type { Inode } from './types.js';

/** Models HUGETLB_ANON_FILE: the name of the file hugetlb_file_setup() makes for MAP_HUGETLB. */
export const HUGETLB_ANON_FILE = 'anon_hugepage';

/**
 * Model-only: the device number /proc/pid/maps shows for files on the internal hugetlbfs mount
 * (its superblock's anonymous dev_t). Linux's number depends on the order of the internal mounts
 * at boot; the model's shm_mnt is 00:01 and its hugetlbfs mount 00:0f.
 */
export const HUGETLBFS_DEV = '00:0f';

/**
 * Models the vm_file of a MAP_PRIVATE|MAP_HUGETLB anonymous mapping: ksys_mmap_pgoff() calls
 * hugetlb_file_setup(HUGETLB_ANON_FILE, ...) for private mappings too. The model keeps no page
 * cache for it (a private mapping's pages are anonymous), only its identity and inode number.
 */
export class AnonHugetlbFile {
  readonly ino = getNextIno();
}

/**
 * Models get_hstate_idx() for hugetlb_file_setup(): the hstate of a huge page size given as
 * log2 (0: the default hstate). The model has one, 2 MiB; any other size has none (-ENODEV).
 */
export function hugetlbHstateForLog(pageSizeLog: number): number {
  return pageSizeLog === 0 || pageSizeLog === PAGE_SHIFT + HPAGE_PMD_ORDER ? 0 : -ENODEV;
}

/**
 * Models hugetlb_file_setup(name, 0, VM_NORESERVE, HUGETLB_ANONHUGE_INODE, log) and
 * hugetlbfs_get_inode(): a new, unlinked hugetlbfs inode with an empty page cache.
 */
export function hugetlbfsNewInode(core: Core, name: string): Inode {
  const inode = shmemNewInode(core, name);
  inode.hugetlbfs = true;
  return inode;
}

/**
 * Models hugetlbfs_fallocate() (fs/hugetlbfs/inode.c): modes other than FALLOC_FL_KEEP_SIZE and
 * FALLOC_FL_PUNCH_HOLE are -EOPNOTSUPP; a punch hole is hugetlbfs_punch_hole(); otherwise every
 * huge page of [offset, offset + len) (rounded out to huge pages) not yet in the page cache is
 * allocated from the pool, zeroed and added (-ENOSPC when the pool is empty: the pages added
 * before stay), then i_size grows to offset + len unless KEEP_SIZE. cond_resched() per page.
 */
export function* hugetlbfsFallocate(
  core: Core,
  inode: Inode,
  mode: number,
  offset: number,
  len: number,
): KGen<number> {
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) return -EOPNOTSUPP;
  if (mode & FALLOC_FL_PUNCH_HOLE) return yield* hugetlbfsPunchHole(core, inode, offset, len);
  const start = Math.floor(offset / PMD_SIZE);
  const end = Math.ceil((offset + len) / PMD_SIZE);
  for (let idx = start; idx < end; idx++) {
    if (core.sched.preempt('hugetlbfs_fallocate: cond_resched')) yield RESCHED;
    if (inode.pages.has(idx)) continue;
    const folio = hugetlbAlloc(core);
    if (folio < 0) return -ENOSPC;
    hugetlbAddToPageCache(core, inode, idx, folio);
  }
  if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + len > inode.size) inode.size = offset + len;
  return 0;
}

/**
 * Models hugetlb_add_to_page_cache(): a new hugetlb folio enters the inode's page cache at huge
 * index `idx`; the reference the caller got from the pool becomes the page cache's.
 */
export function hugetlbAddToPageCache(core: Core, inode: Inode, idx: number, folio: number): void {
  const m = core.map;
  m.flags[folio] |= PG_uptodate;
  m.mapping[folio] = inode.id;
  m.index[folio] = idx * HPAGE_PMD_NR;
  inode.pages.set(idx, folio);
}

/**
 * Models hugetlbfs_read_iter(): the file's bytes from `pos` (holes read as zeros), up to i_size.
 * Returns the bytes read.
 */
export function hugetlbfsRead(core: Core, inode: Inode, buf: Uint8Array, pos: number): number {
  if (pos >= inode.size) return 0;
  const len = Math.min(buf.length, inode.size - pos);
  for (let done = 0; done < len; ) {
    const p = pos + done;
    const folio = inode.pages.get(Math.floor(p / PMD_SIZE));
    const inHuge = p % PMD_SIZE;
    const off = inHuge % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, len - done);
    if (folio === undefined) buf.fill(0, done, done + n);
    else buf.set(core.frames.page(folio + Math.floor(inHuge / PAGE_SIZE)).subarray(off, off + n), done);
    done += n;
  }
  return len;
}

/**
 * Models the checks hugetlbfs_file_mmap() makes for a mapping of `len` bytes (a multiple of the
 * huge page size: ksys_mmap_pgoff() rounded it) at file offset `offset`: an offset that is not
 * huge-page aligned is -EINVAL (the caller checks), then hugetlb_reserve_pages(): a private
 * mapping reserves a page for every huge page of the range, a shared one for every huge page not
 * yet in the page cache, unless VM_NORESERVE; not enough free pool pages is -ENOMEM. The model
 * keeps no reservation map: the check is against the free pool at mmap time.
 */
export function hugetlbReserveCheck(
  core: Core,
  inode: Inode | null,
  offset: number,
  len: number,
  shared: boolean,
  noreserve: boolean,
): number {
  if (noreserve) return 0;
  const first = Math.floor(offset / PMD_SIZE);
  const n = len / PMD_SIZE;
  let need = n;
  if (shared && inode) for (let i = first; i < first + n; i++) if (inode.pages.has(i)) need--;
  return core.hugetlb.free.length < need ? -ENOMEM : 0;
}

/**
 * Models hugetlbfs_setattr() for ftruncate(2): a size that is not a multiple of the huge page
 * size is -EINVAL; shrinking is hugetlb_vmtruncate(): every huge page past the new end is
 * unmapped from every mapping of the file and leaves the page cache (remove_inode_hugepages(),
 * as a punch hole from the new end). Returns 0 or -errno.
 */
export function* hugetlbfsTruncate(core: Core, inode: Inode, length: number): KGen<number> {
  if (length % PMD_SIZE) return -EINVAL;
  if (length < inode.size) {
    let last = inode.size;
    for (const idx of inode.pages.keys()) last = Math.max(last, (idx + 1) * PMD_SIZE);
    const r = yield* hugetlbfsPunchHole(core, inode, length, last - length);
    if (r < 0) return r;
  }
  inode.size = length;
  return 0;
}
