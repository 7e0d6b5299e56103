import { MAX_PAGE_ORDER } from '../constants.js';
import { type MemMap, PG_buddy } from './memmap.js';

/**
 * Models the buddy allocator of one zone (mm/page_alloc.c): free lists per order 0..MAX_PAGE_ORDER,
 * splitting on allocation (expand()) and coalescing on free (__free_one_page()). Because buddies
 * only merge when both halves are free, large allocations fail for real under fragmentation.
 * Free blocks are linked through memmap.next/prev and marked PageBuddy with their order.
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

  /** Models memblock_free_all(): hand every page of the zone to the allocator, largest blocks first. */
  freeAll(): void {
    let p = this.start;
    const end = this.start + this.nrPages;
    while (p < end) {
      let order = MAX_PAGE_ORDER;
      while (order > 0 && (p - this.start) % (1 << order) !== 0) order--;
      while (order > 0 && p + (1 << order) > end) order--;
      this.free(p, order);
      p += 1 << order;
    }
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

  /** Models __rmqueue_smallest() + expand(): returns the first pfn of a 2^order block, or -1. */
  alloc(order: number): number {
    if (order < 0 || order > MAX_PAGE_ORDER) return -1;
    if (this.failHook?.(order)) return -1;
    let o = order;
    while (o <= MAX_PAGE_ORDER && this.freeHead[o] === -1) o++;
    if (o > MAX_PAGE_ORDER) return -1;
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
    const m = this.map;
    this.nrFree += 1 << order;
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
    return Array.from(this.freeCount);
  }

  /** Models zone_watermark_ok() loosely: is a block of this order available right now? */
  canAlloc(order: number): boolean {
    for (let o = order; o <= MAX_PAGE_ORDER; o++) if (this.freeHead[o] !== -1) return true;
    return false;
  }

  /** Iterates free blocks (for the invariant checker): calls fn(pfn, order). */
  forEachFree(fn: (pfn: number, order: number) => void): void {
    for (let o = 0; o <= MAX_PAGE_ORDER; o++) {
      for (let p = this.freeHead[o]; p !== -1; p = this.map.next[p]) fn(p, o);
    }
  }
}
