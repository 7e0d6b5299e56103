import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { allocFolio, folioGet, folioPut, GFP_NOMEMALLOC } from '../folio.js';
import { PG_head, PG_hugetlb, PG_lru, PG_swapbacked, PG_uptodate } from '../phys/memmap.js';
import {
  mappingLargeFolioSupport,
  SHMEM_PMD_ORDERS,
  shmemAllowableHugeOrders,
  thpFileVmaSuitablePmd,
} from './shmem-huge.js';
import { Inode, type Vma } from './types.js';

let nextIno = 1;

/** Models get_next_ino(): the inode number of a new in-memory inode (tmpfs, hugetlbfs). */
export function getNextIno(): number {
  return nextIno++;
}

/** Models shmem_get_inode()/shmem_file_setup(): a new tmpfs inode with an empty page cache. */
export function shmemNewInode(core: Core, name: string): Inode {
  const inode = new Inode(name, getNextIno());
  inode.id = core.registerMapping(inode);
  return inode;
}

/**
 * Models shmem_add_to_page_cache() for a new folio at the aligned index `start`: every page of
 * the folio gets its page-cache slot (the model's i_pages holds, per index, the pfn of that page:
 * a large folio is a multi-index entry), one reference per page (the kernel's folio_ref_add(nr)),
 * NR_SHMEM / NR_FILE_PAGES per page and NR_SHMEM_THPS for a PMD-sized folio. The folio arrives
 * with the allocation's reference, which becomes the first page's.
 */
function shmemAddToPageCache(core: Core, inode: Inode, head: number, start: number): void {
  const m = core.map;
  const nr = m.folioNrPages(head);
  m.flags[head] |= PG_uptodate | PG_swapbacked | PG_lru;
  m.mapping[head] = inode.id;
  m.index[head] = start;
  if (nr > 1) folioGet(core, head, nr - 1);
  for (let i = 0; i < nr; i++) inode.pages.set(start + i, head + i);
  core.vmstat.nr_shmem += nr;
  core.vmstat.nr_file_pages += nr;
  if (m.folioOrder(head) === HPAGE_PMD_ORDER) core.vmstat.nr_shmem_hugepages += nr;
}

/** Models xa_find(&mapping->i_pages, index, last, XA_PRESENT): some slot of [index, last] is in use. */
function pageCacheRangeUsed(inode: Inode, index: number, last: number): boolean {
  for (let i = index; i <= last; i++) if (inode.pages.has(i)) return true;
  return false;
}

/**
 * Where a shmem folio is wanted: the faulting VMA and address (null for write(2) and fallocate),
 * and write_end (the end of the write, 0 for a fault).
 */
export interface ShmemGetCtx {
  readonly vma: Vma | null;
  readonly addr: number;
  readonly writeEnd: number;
}

/**
 * Models shmem_get_folio_gfp() (mm/shmem.c) with SGP_CACHE: the page-cache page at `index`, or
 * (`alloc`) a new zeroed folio added to the page cache. A huge one is tried first when
 * shmem_allowable_huge_orders() allows the PMD order: shmem_suitable_orders() wants the PMD
 * extent around the fault inside the VMA (vm_pgoff aligned) and the extent empty in the page
 * cache; the allocation counts THP_FILE_ALLOC, its failure THP_FILE_FALLBACK and an order-0
 * page follows. Returns the pfn of the page at index, or -1 (absent, or out of memory).
 */
export function shmemGetFolio(
  core: Core,
  inode: Inode,
  index: number,
  alloc: boolean,
  ctx: ShmemGetCtx = { vma: null, addr: 0, writeEnd: 0 },
): number {
  const have = inode.pages.get(index);
  if (have !== undefined) return have;
  if (!alloc) return -1;
  const orders = shmemAllowableHugeOrders(
    core,
    inode,
    ctx.vma ? ctx.vma.flags : null,
    index,
    ctx.writeEnd,
    false,
  );
  if (orders & SHMEM_PMD_ORDERS) {
    const start = Math.floor(index / HPAGE_PMD_NR) * HPAGE_PMD_NR;
    const suitable =
      (!ctx.vma || thpFileVmaSuitablePmd(ctx.vma, ctx.addr)) &&
      !pageCacheRangeUsed(inode, start, start + HPAGE_PMD_NR - 1);
    if (suitable) {
      const head = allocFolio(core, HPAGE_PMD_ORDER, true, GFP_NOMEMALLOC);
      if (head >= 0) {
        core.vmstat.thp_file_alloc++;
        shmemAddToPageCache(core, inode, head, start);
        return head + (index - start);
      }
      core.vmstat.thp_file_fallback++;
    }
  }
  const pfn = allocFolio(core, 0, true);
  if (pfn < 0) return -1;
  shmemAddToPageCache(core, inode, pfn, index);
  return pfn;
}

/**
 * Models filemap_remove_folio() + the page cache's references for a whole shmem folio: its slots
 * go, NR_SHMEM / NR_FILE_PAGES (and NR_SHMEM_THPS) drop, mapping is cleared, one reference per
 * page is put. hugetlbfs folios share the page cache but are not counted in NR_SHMEM.
 */
export function shmemDeleteFolio(core: Core, inode: Inode, head: number): void {
  const m = core.map;
  const huge = (m.flags[head] & PG_hugetlb) !== 0;
  const nr = huge ? 1 : m.folioNrPages(head);
  const start = huge ? -1 : m.index[head];
  if (huge) {
    for (const [i, p] of inode.pages) if (p === head) inode.pages.delete(i);
  } else for (let i = 0; i < nr; i++) inode.pages.delete(start + i);
  m.mapping[head] = 0;
  m.flags[head] &= ~PG_lru;
  if (!huge) {
    core.vmstat.nr_shmem -= nr;
    core.vmstat.nr_file_pages -= nr;
    if (m.folioOrder(head) === HPAGE_PMD_ORDER) core.vmstat.nr_shmem_hugepages -= nr;
  }
  folioPut(core, head, nr);
}

/**
 * The page-cache folios of an inode as [head, first index, pages] (a large shmem folio once).
 * Hugetlbfs folios (one slot per huge page) come as one page each.
 */
export function shmemFolios(core: Core, inode: Inode): [head: number, index: number, nr: number][] {
  const m = core.map;
  const out: [number, number, number][] = [];
  for (const [index, pfn] of inode.pages) {
    const head = m.head[pfn];
    if (m.flags[head] & PG_hugetlb || !(m.flags[head] & PG_head)) out.push([head, index, 1]);
    else if (pfn === head) out.push([head, index, m.folioNrPages(head)]);
  }
  return out;
}

/**
 * Models shmem_evict_inode()'s shmem_truncate_range(inode, 0, -1) for an inode nobody maps or
 * references any more: every page-cache folio leaves the page cache whole (no folio straddles
 * offset 0, so nothing is split or zeroed).
 */
export function shmemTruncateAll(core: Core, inode: Inode): void {
  for (const [head] of shmemFolios(core, inode)) shmemDeleteFolio(core, inode, head);
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

/**
 * Models shmem_file_write_iter() -> generic_perform_write(): copy buf into the file at pos,
 * extending it; bytes written or -errno. `writeLimit` is where the whole write(2) ends (buf may
 * be one piece of it). generic_perform_write() calls shmem_write_begin(pos, len) per chunk of
 * mapping_max_folio_size() (2 MiB, PMD-aligned, for a mapping with large folios; a page
 * otherwise), so the write_end shmem_get_folio() sees for a page is the end of its chunk or of
 * the write, whichever comes first: a 2 MiB write at a PMD boundary of a huge=always file gets a
 * PMD-sized folio.
 */
export function shmemWrite(
  core: Core,
  inode: Inode,
  buf: Uint8Array,
  pos: number,
  writeLimit = pos + buf.length,
): number {
  const chunk = mappingLargeFolioSupport(core, inode) ? HPAGE_PMD_NR * PAGE_SIZE : PAGE_SIZE;
  let done = 0;
  while (done < buf.length) {
    const p = pos + done;
    const index = Math.floor(p / PAGE_SIZE);
    const off = p % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, buf.length - done);
    const writeEnd = Math.min((Math.floor(p / chunk) + 1) * chunk, writeLimit);
    const pfn = shmemGetFolio(core, inode, index, true, { vma: null, addr: 0, writeEnd });
    if (pfn < 0) break;
    core.frames.page(pfn).set(buf.subarray(done, done + n), off);
    done += n;
  }
  if (pos + done > inode.size) inode.size = pos + done;
  return done;
}
