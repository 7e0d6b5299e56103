import { MAX_PAGE_ORDER } from '../constants.js';
import { type MemMap, PAGES_PER_SECTION, PG_buddy } from './memmap.js';

/** Models ALLOC_NO_WATERMARKS (mm/internal.h): the allocation ignores the watermarks. */
export const ALLOC_NO_WATERMARKS = 0x04;
/**
 * Models ALLOC_OOM (mm/internal.h, CONFIG_MMU): an OOM victim's allocation
 * (__gfp_pfmemalloc_flags() -> oom_reserves_allowed()), which may take half of the min reserve.
 */
export const ALLOC_OOM = 0x08;

/**
 * Models the buddy allocator of one zone (mm/page_alloc.c): free lists per order 0..MAX_PAGE_ORDER,
 * splitting on allocation (expand()) and coalescing on free (__free_one_page()). Because buddies
 * only merge when both halves are free, large allocations fail for real under fragmentation.
 * Free blocks are linked through memmap.next/prev and marked PageBuddy with their order.
 *
 * Boot is O(sections), as with CONFIG_DEFERRED_STRUCT_PAGE_INIT: {@link BuddyZone.freeAll}
 * defers every section-sized chunk of MAX_PAGE_ORDER blocks, and when the free lists cannot
 * serve an allocation the zone grows into the highest deferred chunk (deferred_grow_zone()):
 * its struct pages are initialised and its blocks put on the MAX_PAGE_ORDER list. Deferred
 * chunks count as free (nr_free, buddyinfo) and are taken in exactly the order the eagerly
 * built free list would have served them, so allocation results do not depend on deferral.
 */
export class BuddyZone {
  readonly start: number;
  readonly nrPages: number;
  private readonly freeHead: Int32Array = new Int32Array(MAX_PAGE_ORDER + 1).fill(-1);
  private readonly freeCount: Int32Array = new Int32Array(MAX_PAGE_ORDER + 1);
  /** Models zone->free_pages (NR_FREE_PAGES). */
  nrFree = 0;
  /**
   * Models should_fail_alloc_page() (fault injection): return true to fail an allocation of
   * that order. Consulted before the free lists.
   */
  failHook: ((order: number) => boolean) | undefined;
  /**
   * Models the zone's min watermark (WMARK_MIN, from vm.min_free_kbytes) in pages: an allocation
   * that would leave fewer free pages fails (__zone_watermark_ok()), except an OOM victim's
   * (ALLOC_OOM: half of it) and one allowed to ignore the watermarks (ALLOC_NO_WATERMARKS: a
   * __GFP_NOFAIL allocation after the OOM killer ran). 0 (the model's default): no reserve.
   */
  minFree = 0;
  /**
   * Models setup_per_zone_wmarks() (mm/page_alloc.c) for the model's one zone: WMARK_MIN is
   * min_free_kbytes >> (PAGE_SHIFT - 10) pages (the kernel shares pages_min out among the lowmem
   * zones by size; one zone takes all of it).
   */
  setupWmarks(minFreeKbytes: number): void {
    this.minFree = Math.floor(minFreeKbytes / 4);
  }
  /**
   * Model-only: whether the last failed {@link alloc} failed for lack of memory (below the min
   * watermark, or no free page at all for order 0), rather than by injection or fragmentation.
   */
  lastFailShort = false;
  /** Deferred chunks [deferredStart[i], deferredEnd[i]), ascending: the last one is used first. */
  private readonly deferredStart: number[] = [];
  private readonly deferredEnd: number[] = [];
  /** Models the deferred pages of the zone: free, counted in nrFree, not yet on the free lists. */
  deferredPages = 0;

  /** The zone spans [start, start + nrPages); start must be aligned to 1 << MAX_PAGE_ORDER. */
  constructor(
    private readonly map: MemMap,
    start: number,
    nrPages: number,
  ) {
    if (start % (1 << MAX_PAGE_ORDER) !== 0) throw new RangeError('zone start must be MAX_ORDER aligned');
    this.start = start;
    this.nrPages = nrPages;
  }

  /**
   * Models memblock_free_all() with deferred struct page init: split the zone at section
   * boundaries; chunks made of whole MAX_PAGE_ORDER blocks are deferred (O(1) each), a chunk
   * with smaller blocks (an unaligned zone end) is initialised and freed now.
   */
  freeAll(): void {
    const end = this.start + this.nrPages;
    const maxBlock = 1 << MAX_PAGE_ORDER;
    for (let s = this.start; s < end; ) {
      const e = Math.min(end, (Math.floor(s / PAGES_PER_SECTION) + 1) * PAGES_PER_SECTION);
      this.nrFree += e - s;
      if ((e - this.start) % maxBlock === 0) {
        this.map.deferRange(s, e - s);
        this.deferredStart.push(s);
        this.deferredEnd.push(e);
        this.deferredPages += e - s;
      } else {
        this.populate(s, e);
      }
      s = e;
    }
  }

  /** Models deferred_init_memmap_chunk() + deferred_free_pages(): struct pages of [s, e), then its blocks. */
  private populate(s: number, e: number): void {
    this.map.initRange(s, e - s, 0);
    let p = s;
    while (p < e) {
      let order = MAX_PAGE_ORDER;
      while (order > 0 && (p - this.start) % (1 << order) !== 0) order--;
      while (order > 0 && p + (1 << order) > e) order--;
      this.freeOne(p, order);
      p += 1 << order;
    }
  }

  /**
   * Models deferred_grow_zone(): initialise the highest deferred chunk and put its blocks on the
   * free lists. Returns false when nothing is deferred any more.
   */
  growDeferred(): boolean {
    const s = this.deferredStart.pop();
    const e = this.deferredEnd.pop();
    if (s === undefined || e === undefined) return false;
    this.deferredPages -= e - s;
    this.populate(s, e);
    return true;
  }

  /** Models the pgdat's deferred range (first_deferred_pfn onwards) as a count of chunks not initialised yet. */
  get deferredChunks(): number {
    return this.deferredStart.length;
  }

  private push(pfn: number, order: number): void {
    const m = this.map;
    m.flags[pfn] |= PG_buddy;
    m.order[pfn] = order;
    const h = this.freeHead[order];
    m.next[pfn] = h;
    m.prev[pfn] = -1;
    if (h !== -1) m.prev[h] = pfn;
    this.freeHead[order] = pfn;
    this.freeCount[order]++;
  }

  private unlink(pfn: number, order: number): void {
    const m = this.map;
    const n = m.next[pfn];
    const p = m.prev[pfn];
    if (p !== -1) m.next[p] = n;
    else this.freeHead[order] = n;
    if (n !== -1) m.prev[n] = p;
    m.next[pfn] = -1;
    m.prev[pfn] = -1;
    m.flags[pfn] &= ~PG_buddy;
    m.order[pfn] = 0;
    this.freeCount[order]--;
  }

  /**
   * Models __zone_watermark_ok() against the min watermark, then __rmqueue_smallest() +
   * expand(): returns the first pfn of a 2^order block, or -1. `allocFlags`: {@link ALLOC_OOM}
   * lowers the watermark to half of {@link minFree} (`min -= min / 2`), {@link ALLOC_NO_WATERMARKS}
   * ignores it.
   */
  alloc(order: number, allocFlags = 0): number {
    if (order < 0 || order > MAX_PAGE_ORDER) return -1;
    if (this.failHook?.(order)) {
      this.lastFailShort = false;
      return -1;
    }
    if (!(allocFlags & ALLOC_NO_WATERMARKS)) {
      let min = this.minFree;
      if (allocFlags & ALLOC_OOM) min -= Math.floor(min / 2);
      if (this.nrFree - (1 << order) < min) {
        this.lastFailShort = true;
        return -1;
      }
    }
    let o = order;
    while (o <= MAX_PAGE_ORDER && this.freeHead[o] === -1) o++;
    if (o > MAX_PAGE_ORDER) {
      if (!this.growDeferred()) {
        this.lastFailShort = order === 0;
        return -1;
      }
      o = MAX_PAGE_ORDER;
    }
    const pfn = this.freeHead[o];
    this.unlink(pfn, o);
    while (o > order) {
      o--;
      this.push(pfn + (1 << o), o);
    }
    this.nrFree -= 1 << order;
    return pfn;
  }

  /** Models __free_one_page(): return a 2^order block and merge it with free buddies. */
  free(pfn: number, order: number): void {
    this.nrFree += 1 << order;
    this.freeOne(pfn, order);
  }

  /** __free_one_page() without the NR_FREE_PAGES accounting. */
  private freeOne(pfn: number, order: number): void {
    const m = this.map;
    let p = pfn;
    let o = order;
    while (o < MAX_PAGE_ORDER) {
      const buddy = this.start + ((p - this.start) ^ (1 << o));
      if (buddy + (1 << o) > this.start + this.nrPages) break;
      if (!(m.flags[buddy] & PG_buddy) || m.order[buddy] !== o) break;
      this.unlink(buddy, o);
      if (buddy < p) p = buddy;
      o++;
    }
    this.push(p, o);
  }

  /** Models /proc/buddyinfo: number of free blocks per order. */
  buddyinfo(): number[] {
    const info = Array.from(this.freeCount);
    info[MAX_PAGE_ORDER] += this.deferredPages >> MAX_PAGE_ORDER;
    return info;
  }

  /** Models zone_watermark_ok() loosely: is a block of this order available right now? */
  canAlloc(order: number): boolean {
    for (let o = order; o <= MAX_PAGE_ORDER; o++) if (this.freeHead[o] !== -1) return true;
    return order >= 0 && order <= MAX_PAGE_ORDER && this.deferredStart.length > 0;
  }

  /**
   * Iterates the blocks on the free lists (for the invariant checker): calls fn(pfn, order).
   * Deferred chunks are not on the lists: see {@link BuddyZone.forEachDeferred}.
   */
  forEachFree(fn: (pfn: number, order: number) => void): void {
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
      for (let p = this.freeHead[o]; p !== -1; p = this.map.next[p]) fn(p, o);
    }
  }

  /** Models walking the deferred ranges (for_each_free_mem_pfn_range_in_zone_from()): fn(startPfn, nrPages), highest first. */
  forEachDeferred(fn: (pfn: number, nrPages: number) => void): void {
    for (let i = this.deferredStart.length - 1; i >= 0; i--)
      fn(this.deferredStart[i], this.deferredEnd[i] - this.deferredStart[i]);
  }
}
