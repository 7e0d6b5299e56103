/**
 * Models the memmap: the array of struct page (include/linux/mm_types.h), as a struct of
 * typed arrays indexed by pfn. No object exists per 4 KiB page; a folio is a pfn.
 *
 * Field mapping (kernel -> model):
 * - page->flags            -> flags (PG_* bits below, plus the zone)
 * - page->_refcount        -> refcount (meaningful on the folio head)
 * - page->_mapcount        -> mapcount (0-based: the number of PTEs mapping this page)
 * - folio->_entire_mapcount-> entireMapcount (head only: PMD mappings)
 * - folio->_large_mapcount -> largeMapcount (head only: all mappings of a large folio)
 * - folio->_pincount       -> pincount (head only: FOLL_PIN references)
 * - compound order         -> order (head of a folio, or head of a free buddy block)
 * - compound_head          -> head (pfn of the head; a head or small page points at itself)
 * - page->pgmap            -> pgmap (index into the machine's dev_pagemap table, 0 = none)
 * - page->mapping          -> mapping (id into the machine's mapping table, 0 = none)
 * - page->index            -> index (page offset in the mapping: linear page index for anon)
 * - zone_device_data / private -> priv (driver-defined number)
 * - lru / buddy_list       -> next/prev (intrusive list links, -1 = none)
 */
export const PG_locked = 1 << 0;
export const PG_referenced = 1 << 1;
export const PG_uptodate = 1 << 2;
export const PG_dirty = 1 << 3;
export const PG_lru = 1 << 4;
export const PG_head = 1 << 5;
export const PG_tail = 1 << 6;
export const PG_swapbacked = 1 << 7;
/** Models PAGE_MAPPING_ANON: the mapping is an anon_vma. */
export const PG_anon = 1 << 8;
/** Models PG_anon_exclusive. */
export const PG_anon_exclusive = 1 << 9;
/** Models PageBuddy (a page type): head of a free buddy block. */
export const PG_buddy = 1 << 10;
/** Models PG_reserved (zero page, memory holes). */
export const PG_reserved = 1 << 11;
/** Models the zone bits: page_zonenum() == ZONE_DEVICE. */
export const PG_zone_device = 1 << 12;
/** Models PG_large_rmappable. */
export const PG_large_rmappable = 1 << 13;
/** Models PG_partially_mapped (folio on the deferred split queue because partially mapped). */
export const PG_partially_mapped = 1 << 14;
/** Models PG_hugetlb (a page type). */
export const PG_hugetlb = 1 << 15;
/** Models PG_table (a page type): page-table page. */
export const PG_table = 1 << 16;
/** Models PG_writeback (never set by this model; kept for the checks that read it). */
export const PG_writeback = 1 << 17;
/** Model-only: the page exists in the memmap (a registered section). */
export const PG_present_section = 1 << 18;
/** Model-only: the folio is on a deferred-split queue. */
export const PG_deferred_split = 1 << 19;

/** Flag bits that are per folio and live on the head page. */
export const FOLIO_FLAGS =
  PG_locked |
  PG_referenced |
  PG_uptodate |
  PG_dirty |
  PG_lru |
  PG_swapbacked |
  PG_anon |
  PG_large_rmappable |
  PG_partially_mapped |
  PG_deferred_split;

/** Bytes of metadata per simulated 4 KiB page (the kernel's struct page is 64). */
export const MEMMAP_BYTES_PER_PAGE = 4 + 4 + 4 + 4 + 4 + 4 + 1 + 4 + 2 + 4 + 8 + 8 + 4 + 4;

/**
 * Models the memmap (mem_map / vmemmap): struct page metadata for every pfn of every section.
 * Arrays grow when sections are added (memory hotplug); never cache an array across an
 * {@link MemMap.ensure} call.
 */
export class MemMap {
  capacity = 0;
  flags = new Uint32Array(0);
  refcount = new Int32Array(0);
  mapcount = new Int32Array(0);
  entireMapcount = new Int32Array(0);
  largeMapcount = new Int32Array(0);
  pincount = new Int32Array(0);
  order = new Uint8Array(0);
  head = new Uint32Array(0);
  pgmap = new Uint16Array(0);
  mapping = new Uint32Array(0);
  index = new Float64Array(0);
  priv = new Float64Array(0);
  next = new Int32Array(0);
  prev = new Int32Array(0);

  /** Models sparse_add_section()'s memmap allocation: make pfns [0, maxPfn) addressable. */
  ensure(maxPfn: number): void {
    if (maxPfn <= this.capacity) return;
    let cap = Math.max(this.capacity, 1 << 16);
    while (cap < maxPfn) cap *= 2;
    const grow = <T extends { length: number; set(a: ArrayLike<number>): void }>(
      old: T,
      make: (n: number) => T,
    ): T => {
      const a = make(cap);
      a.set(old as unknown as ArrayLike<number>);
      return a;
    };
    this.flags = grow(this.flags, (n) => new Uint32Array(n));
    this.refcount = grow(this.refcount, (n) => new Int32Array(n));
    this.mapcount = grow(this.mapcount, (n) => new Int32Array(n));
    this.entireMapcount = grow(this.entireMapcount, (n) => new Int32Array(n));
    this.largeMapcount = grow(this.largeMapcount, (n) => new Int32Array(n));
    this.pincount = grow(this.pincount, (n) => new Int32Array(n));
    this.order = grow(this.order, (n) => new Uint8Array(n));
    this.head = grow(this.head, (n) => new Uint32Array(n));
    this.pgmap = grow(this.pgmap, (n) => new Uint16Array(n));
    this.mapping = grow(this.mapping, (n) => new Uint32Array(n));
    this.index = grow(this.index, (n) => new Float64Array(n));
    this.priv = grow(this.priv, (n) => new Float64Array(n));
    const next = new Int32Array(cap).fill(-1);
    next.set(this.next);
    this.next = next;
    const prev = new Int32Array(cap).fill(-1);
    prev.set(this.prev);
    this.prev = prev;
    for (let p = this.capacity; p < cap; p++) this.head[p] = p;
    this.capacity = cap;
  }

  /** Models the struct page initialisation of memmap_init_range() for [start, start+n). */
  initRange(start: number, n: number, extraFlags: number): void {
    this.ensure(start + n);
    const e = start + n;
    this.flags.fill(PG_present_section | extraFlags, start, e);
    for (const a of [this.refcount, this.mapcount, this.entireMapcount, this.largeMapcount, this.pincount])
      a.fill(0, start, e);
    this.order.fill(0, start, e);
    this.pgmap.fill(0, start, e);
    this.mapping.fill(0, start, e);
    this.index.fill(0, start, e);
    this.priv.fill(0, start, e);
    this.next.fill(-1, start, e);
    this.prev.fill(-1, start, e);
    for (let p = start; p < e; p++) this.head[p] = p;
  }

  /** Models pfn_valid(). */
  valid(pfn: number): boolean {
    return pfn >= 0 && pfn < this.capacity && (this.flags[pfn] & PG_present_section) !== 0;
  }

  /** Models compound_head() / page_folio(): the head pfn of the folio containing pfn. */
  folioOf(pfn: number): number {
    return this.head[pfn];
  }

  /** Models folio_order(). */
  folioOrder(head: number): number {
    return this.flags[head] & PG_head ? this.order[head] : 0;
  }

  /** Models folio_nr_pages(). */
  folioNrPages(head: number): number {
    return this.flags[head] & PG_head ? 1 << this.order[head] : 1;
  }
}
