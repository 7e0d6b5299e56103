/**
 * /proc/kpageflags (fs/proc/page.c): one u64 of stable page flags per physical page frame, the
 * KPF_* bits of include/uapi/linux/kernel-page-flags.h. Tools (page-types, the mm selftests'
 * `pageflags_get()`) read it with the pfn that /proc/pid/pagemap reports.
 */

import { EINVAL, HPAGE_PMD_NR, MAX_PAGE_ORDER } from './constants.js';
import { type Core, RAM_START_PFN } from './core.js';
import { folioMapped } from './folio.js';
import type { FileOperations } from './fs.js';
import {
  PAGES_PER_SECTION,
  PG_anon,
  PG_buddy,
  PG_dirty,
  PG_head,
  PG_hugetlb,
  PG_large_rmappable,
  PG_locked,
  PG_lru,
  PG_referenced,
  PG_reserved,
  PG_swapbacked,
  PG_swapcache,
  PG_table,
  PG_uptodate,
  PG_writeback,
  PG_zone_device,
} from './phys/memmap.js';

/** Models KPF_LOCKED (include/uapi/linux/kernel-page-flags.h). */
export const KPF_LOCKED = 0;
/** Models KPF_REFERENCED. */
export const KPF_REFERENCED = 2;
/** Models KPF_UPTODATE. */
export const KPF_UPTODATE = 3;
/** Models KPF_DIRTY. */
export const KPF_DIRTY = 4;
/** Models KPF_LRU. */
export const KPF_LRU = 5;
/** Models KPF_WRITEBACK. */
export const KPF_WRITEBACK = 8;
/** Models KPF_BUDDY. */
export const KPF_BUDDY = 10;
/** Models KPF_MMAP. */
export const KPF_MMAP = 11;
/** Models KPF_ANON. */
export const KPF_ANON = 12;
/** Models KPF_SWAPCACHE. */
export const KPF_SWAPCACHE = 13;
/** Models KPF_SWAPBACKED. */
export const KPF_SWAPBACKED = 14;
/** Models KPF_COMPOUND_HEAD. */
export const KPF_COMPOUND_HEAD = 15;
/** Models KPF_COMPOUND_TAIL. */
export const KPF_COMPOUND_TAIL = 16;
/** Models KPF_HUGE (hugetlb). */
export const KPF_HUGE = 17;
/** Models KPF_NOPAGE: no struct page at this pfn (or not an online one). */
export const KPF_NOPAGE = 20;
/** Models KPF_THP: any large rmappable folio (every mTHP order, not only PMD size), or the huge zero folio. */
export const KPF_THP = 22;
/** Models KPF_ZERO_PAGE. */
export const KPF_ZERO_PAGE = 24;
/** Models KPF_PGTABLE. */
export const KPF_PGTABLE = 26;
/** Models KPF_RESERVED (a kernel-internal bit above 31, reported as-is by the kernel). */
export const KPF_RESERVED = 32;

/** Models KPMSIZE: the size of one /proc/kpage* entry. */
const KPMSIZE = 8;

/**
 * Models pfn_to_online_page(): false for pfns without an online struct page. ZONE_DEVICE memory
 * is never online ("TODO: ZONE_DEVICE support requires to identify memmaps that were actually
 * initialized"), and neither is the hole below RAM.
 */
function pfnOnline(core: Core, pfn: number): boolean {
  const m = core.map;
  if (pfn < RAM_START_PFN || !m.valid(pfn)) return false;
  return (m.flags[pfn] & PG_zone_device) === 0;
}

/**
 * Models stable_page_flags() (fs/proc/page.c, v6.19 with snapshot_page()): the KPF_* bits of
 * the page at pfn. A pfn without an online page is KPF_NOPAGE.
 */
export function stablePageFlags(core: Core, pfn: number): bigint {
  if (!pfnOnline(core, pfn)) return 1n << BigInt(KPF_NOPAGE);
  const m = core.map;
  if (m.deferred(pfn)) {
    // The model sets up a deferred section's struct pages on first use; the kernel has by now
    // freed it to the buddy allocator in MAX_PAGE_ORDER blocks (deferred_init_memmap()).
    return pfn % (1 << MAX_PAGE_ORDER) === 0 ? 1n << BigInt(KPF_BUDDY) : 0n;
  }
  const head = m.head[pfn];
  const k = m.flags[head];
  let u = 0;
  if (folioMapped(core, head)) u |= 1 << KPF_MMAP;
  if (k & PG_anon) u |= 1 << KPF_ANON;
  // Compound pages: head and tail bits give the folio's start and order.
  if (pfn === head) {
    if (k & PG_head) u |= 1 << KPF_COMPOUND_HEAD;
  } else u |= 1 << KPF_COMPOUND_TAIL;
  const hz = core.hugeZeroPfn;
  if (k & PG_hugetlb) u |= 1 << KPF_HUGE;
  else if (k & PG_head && k & PG_large_rmappable) u |= 1 << KPF_THP;
  else if (hz >= 0 && pfn - (pfn % HPAGE_PMD_NR) === hz) u |= (1 << KPF_ZERO_PAGE) | (1 << KPF_THP);
  else if (pfn === core.zeroPfn) u |= 1 << KPF_ZERO_PAGE;
  // PageBuddy is a page type of the free block's first page only.
  if (m.flags[pfn] & PG_buddy) u |= 1 << KPF_BUDDY;
  if (k & PG_table) u |= 1 << KPF_PGTABLE;
  if (k & PG_locked) u |= 1 << KPF_LOCKED;
  if (k & PG_dirty) u |= 1 << KPF_DIRTY;
  if (k & PG_uptodate) u |= 1 << KPF_UPTODATE;
  if (k & PG_writeback) u |= 1 << KPF_WRITEBACK;
  if (k & PG_lru) u |= 1 << KPF_LRU;
  if (k & PG_referenced) u |= 1 << KPF_REFERENCED;
  if ((k & (PG_swapbacked | PG_swapcache)) === (PG_swapbacked | PG_swapcache)) u |= 1 << KPF_SWAPCACHE;
  if (k & PG_swapbacked) u |= 1 << KPF_SWAPBACKED;
  let r = BigInt(u >>> 0);
  if (k & PG_reserved) r |= 1n << BigInt(KPF_RESERVED);
  return r;
}

/**
 * Models get_max_dump_pfn() with SPARSEMEM: max_pfn rounded up to a whole memory section;
 * reads at or past it return 0 (end of file).
 */
function maxDumpPfn(core: Core): number {
  const maxPfn = RAM_START_PFN + core.ramPages;
  return Math.ceil(maxPfn / PAGES_PER_SECTION) * PAGES_PER_SECTION;
}

/**
 * Models kpageflags_proc_ops (kpage_read() with get_page_flags()): an unaligned position or
 * count is -EINVAL; entries stop at the last dumpable pfn.
 */
export function kpageflagsFops(core: Core): FileOperations {
  return {
    *pread(_file, buf, pos) {
      if (pos % KPMSIZE !== 0 || buf.length % KPMSIZE !== 0) return -EINVAL;
      const max = maxDumpPfn(core);
      const first = pos / KPMSIZE;
      if (first >= max) return 0;
      const n = Math.min(buf.length / KPMSIZE, max - first);
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      for (let i = 0; i < n; i++) dv.setBigUint64(i * KPMSIZE, stablePageFlags(core, first + i), true);
      return n * KPMSIZE;
    },
  };
}
