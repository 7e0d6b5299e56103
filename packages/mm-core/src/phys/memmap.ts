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
 * - zone_device_data / private -> priv (driver-defined number; for a swap-cache page its swap entry)
 * - lru / buddy_list       -> next/prev (intrusive list links, -1 = none)
 */
import type { HostMemoryPool } from './hostpool.js';
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
/**
 * Models PG_swapcache (folio_test_swapcache()): the folio is in the swap cache; each page's
 * `priv` then holds its swap entry (folio->swap + index, see mm/swapfile.ts swpEntryVal()).
 */
export const PG_swapcache = 1 << 20;

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
  PG_deferred_split |
  PG_swapcache;

/** Bytes of metadata per simulated 4 KiB page (the kernel's struct page is 64). */
export const MEMMAP_BYTES_PER_PAGE = 4 + 4 + 4 + 4 + 4 + 4 + 1 + 4 + 2 + 4 + 8 + 8 + 4 + 4;

/** Models PFN_SECTION_SHIFT (x86-64: SECTION_SIZE_BITS 27 - PAGE_SHIFT 12). */
export const PFN_SECTION_SHIFT = 15;
/** Models PAGES_PER_SECTION: 32768 pages = 128 MiB per memory section. */
export const PAGES_PER_SECTION = 1 << PFN_SECTION_SHIFT;
/** Models SECTION_SIZE_BITS: a memory section is 128 MiB. */
export const SECTION_SIZE_BITS = PFN_SECTION_SHIFT + 12;
/**
 * Models MAX_PHYSMEM_BITS for this model: 43 bits (8 TiB) of physical address space, because
 * free-list links (memmap.next/prev) are 32-bit signed pfns. x86-64 has 46 (4-level paging).
 */
export const MAX_PHYSMEM_BITS = 43;
/** Models 1UL << (MAX_PHYSMEM_BITS - PAGE_SHIFT): the first pfn beyond the physical address space. */
export const MAX_PHYS_PFN = 2 ** (MAX_PHYSMEM_BITS - 12);

/** Models SECTION_HAS_MEM_MAP: the struct pages of the section's pfns are initialised. */
export const SECTION_HAS_MEM_MAP = 1 << 0;
/**
 * Models a section whose struct page initialisation is deferred (CONFIG_DEFERRED_STRUCT_PAGE_INIT):
 * present RAM that the buddy allocator initialises on first use (deferred_grow_zone()).
 */
export const SECTION_DEFERRED = 1 << 1;
/** Model-only: the section's memmap was written at least once (its host pages exist). */
export const SECTION_TOUCHED = 1 << 2;
/**
 * Model-only: every struct page of the section is torn down (MemMap.removeRange() of the whole
 * section: every field zero, head pointing at itself) and nothing was initialised since, so
 * MemMap.initRange() need not clear it again.
 */
export const SECTION_CLEAN = 1 << 3;

type MemMapField =
  | 'flags'
  | 'refcount'
  | 'mapcount'
  | 'entireMapcount'
  | 'largeMapcount'
  | 'pincount'
  | 'order'
  | 'head'
  | 'pgmap'
  | 'mapping'
  | 'index'
  | 'priv'
  | 'next'
  | 'prev';

type PfnArray =
  | Uint8Array<ArrayBuffer>
  | Uint16Array<ArrayBuffer>
  | Uint32Array<ArrayBuffer>
  | Int32Array<ArrayBuffer>
  | Float64Array<ArrayBuffer>;

/** Every per-pfn array (in MemMap.ensure()'s assignment order) with its allocator. */
const FIELDS: readonly (readonly [MemMapField, (n: number) => PfnArray])[] = [
  ['flags', (n) => new Uint32Array(n)],
  ['refcount', (n) => new Int32Array(n)],
  ['mapcount', (n) => new Int32Array(n)],
  ['entireMapcount', (n) => new Int32Array(n)],
  ['largeMapcount', (n) => new Int32Array(n)],
  ['pincount', (n) => new Int32Array(n)],
  ['order', (n) => new Uint8Array(n)],
  ['head', (n) => new Uint32Array(n)],
  ['pgmap', (n) => new Uint16Array(n)],
  ['mapping', (n) => new Uint32Array(n)],
  ['index', (n) => new Float64Array(n)],
  ['priv', (n) => new Float64Array(n)],
  ['next', (n) => new Int32Array(n)],
  ['prev', (n) => new Int32Array(n)],
];

/** Fields whose initial value is not zero or that init_single_page() sets explicitly. */
const ZEROED_ON_REINIT: readonly MemMapField[] = [
  'refcount',
  'mapcount',
  'entireMapcount',
  'largeMapcount',
  'pincount',
  'order',
  'pgmap',
  'mapping',
  'index',
  'priv',
  'next',
  'prev',
];

/**
 * Models the sparse memmap (CONFIG_SPARSEMEM_VMEMMAP: mem_section[] and the vmemmap): struct
 * page metadata for every pfn, as typed arrays indexed by pfn, materialised per 128 MiB section.
 *
 * The arrays span the whole physical address range in use (they are reallocated when memory is
 * added above it: never cache an array across {@link MemMap.ensure}). They are zero-filled host
 * allocations (calloc/mmap) whose host pages are committed only when written, so the memmap of
 * a section costs host memory only once the section is initialised; {@link MemMap.initRange} and
 * {@link MemMap.removeRange} touch only the pfns they cover. A pfn outside every initialised
 * section has all fields zero (head 0), so only pfns handed out by an allocator or a pgmap are
 * meaningful. `next`/`prev` are meaningful only on PageBuddy block heads.
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
  /** Models mem_section[].section_mem_map's state bits: SECTION_* per section. */
  sectionState = new Uint8Array(0);

  /** @param pool Model-only: host arrays of released machines to reuse ({@link HostMemoryPool}). */
  constructor(private readonly pool?: HostMemoryPool) {}

  /**
   * Models sparse_add_section()'s growth of the vmemmap: make pfns [0, maxPfn) addressable.
   * Grows by at least a quarter, in whole sections; only sections that were ever written are
   * copied, so growing costs host memory for touched sections only. Throws a RangeError when
   * maxPfn lies beyond MAX_PHYSMEM_BITS or the host cannot reserve the address space.
   */
  ensure(maxPfn: number): void {
    if (maxPfn <= this.capacity) return;
    if (maxPfn > MAX_PHYS_PFN)
      throw new RangeError(
        `pfn 0x${maxPfn.toString(16)} is beyond the model's physical address space (MAX_PHYSMEM_BITS ${MAX_PHYSMEM_BITS})`,
      );
    const want = Math.max(maxPfn, this.capacity + Math.floor(this.capacity / 4), 1 << 16);
    const cap = Math.min(MAX_PHYS_PFN, Math.ceil(want / PAGES_PER_SECTION) * PAGES_PER_SECTION);
    const old = this.sectionState;
    const touched: number[] = [];
    for (let sec = 0; sec < old.length; sec++) if (old[sec] & SECTION_TOUCHED) touched.push(sec);
    // Allocate everything before changing anything: a host allocation failure leaves the map as it was.
    let sections: Uint8Array<ArrayBuffer>;
    let fresh: PfnArray[];
    try {
      const pooled = this.pool?.takeMemmap(cap) as PfnArray[] | undefined;
      fresh = FIELDS.map(([name, make], fi) => {
        const a = pooled ? pooled[fi] : make(cap);
        const src = this[name];
        for (const sec of touched) {
          const p = sec * PAGES_PER_SECTION;
          a.set(src.subarray(p, p + PAGES_PER_SECTION), p);
        }
        return a;
      });
      sections = new Uint8Array(cap / PAGES_PER_SECTION);
    } catch (e) {
      throw new RangeError(
        `the host cannot reserve ${((cap * MEMMAP_BYTES_PER_PAGE) / 2 ** 30).toFixed(1)} GiB of address space ` +
          `for the memmap of ${cap} pfns: ${(e as Error).message}`,
      );
    }
    sections.set(old);
    let i = 0;
    this.flags = fresh[i++] as Uint32Array<ArrayBuffer>;
    this.refcount = fresh[i++] as Int32Array<ArrayBuffer>;
    this.mapcount = fresh[i++] as Int32Array<ArrayBuffer>;
    this.entireMapcount = fresh[i++] as Int32Array<ArrayBuffer>;
    this.largeMapcount = fresh[i++] as Int32Array<ArrayBuffer>;
    this.pincount = fresh[i++] as Int32Array<ArrayBuffer>;
    this.order = fresh[i++] as Uint8Array<ArrayBuffer>;
    this.head = fresh[i++] as Uint32Array<ArrayBuffer>;
    this.pgmap = fresh[i++] as Uint16Array<ArrayBuffer>;
    this.mapping = fresh[i++] as Uint32Array<ArrayBuffer>;
    this.index = fresh[i++] as Float64Array<ArrayBuffer>;
    this.priv = fresh[i++] as Float64Array<ArrayBuffer>;
    this.next = fresh[i++] as Int32Array<ArrayBuffer>;
    this.prev = fresh[i++] as Int32Array<ArrayBuffer>;
    this.sectionState = sections;
    this.capacity = cap;
  }

  /**
   * Models memmap_init_range() / __init_single_page() for [start, start+n): every struct page
   * present (plus extraFlags), its own head, all counters zero, and the section marked
   * SECTION_HAS_MEM_MAP (no longer deferred). Fields of sections never written before are
   * already zero and are not rewritten (their host pages stay uncommitted).
   */
  initRange(start: number, n: number, extraFlags: number): void {
    const e = start + n;
    this.ensure(e);
    for (let s = start; s < e; ) {
      const sec = s >>> PFN_SECTION_SHIFT;
      const se = Math.min(e, (sec + 1) * PAGES_PER_SECTION);
      const st = this.sectionState[sec];
      if (!(st & SECTION_CLEAN)) {
        if (st & SECTION_TOUCHED) for (const f of ZEROED_ON_REINIT) this[f].fill(0, s, se);
        const head = this.head;
        for (let p = s; p < se; p++) head[p] = p;
      }
      this.flags.fill(PG_present_section | extraFlags, s, se);
      this.sectionState[sec] =
        (st & ~(SECTION_DEFERRED | SECTION_CLEAN)) | SECTION_HAS_MEM_MAP | SECTION_TOUCHED;
      s = se;
    }
  }

  /**
   * Models the memmap side of sparse_remove_section() for [start, start+n): the struct pages
   * are torn down (every field zero, head pointing at itself) and the pfns stop being valid.
   * Sections left without any present pfn lose SECTION_HAS_MEM_MAP.
   */
  removeRange(start: number, n: number): void {
    const e = Math.min(start + n, this.capacity);
    for (let s = start; s < e; ) {
      const sec = s >>> PFN_SECTION_SHIFT;
      const se = Math.min(e, (sec + 1) * PAGES_PER_SECTION);
      const st = this.sectionState[sec];
      if (st & SECTION_TOUCHED && !(st & SECTION_CLEAN)) {
        this.flags.fill(0, s, se);
        for (const f of ZEROED_ON_REINIT) this[f].fill(0, s, se);
        const head = this.head;
        for (let p = s; p < se; p++) head[p] = p;
        // [s, se) was just cleared: only the rest of the section can still have a present pfn.
        const a = sec * PAGES_PER_SECTION;
        let any = false;
        for (let p = a; p < s && !any; p++) any = (this.flags[p] & PG_present_section) !== 0;
        for (let p = se; p < a + PAGES_PER_SECTION && !any; p++)
          any = (this.flags[p] & PG_present_section) !== 0;
        if (!any) this.sectionState[sec] &= ~SECTION_HAS_MEM_MAP;
        if (s === a && se === a + PAGES_PER_SECTION) this.sectionState[sec] |= SECTION_CLEAN;
      }
      s = se;
    }
  }

  /**
   * Models deferring the struct page initialisation of present RAM (deferred_init_memmap()):
   * the sections of [start, start+n) count as present (pfn_valid()) but their struct pages are
   * only initialised, by {@link MemMap.initRange}, when the zone grows into them.
   */
  deferRange(start: number, n: number): void {
    const e = start + n;
    this.ensure(e);
    for (let sec = start >>> PFN_SECTION_SHIFT; sec * PAGES_PER_SECTION < e; sec++)
      this.sectionState[sec] |= SECTION_DEFERRED;
  }

  /** Models pfn_valid(): pfn has a struct page (initialised, or deferred present RAM). */
  valid(pfn: number): boolean {
    return (
      pfn >= 0 &&
      pfn < this.capacity &&
      ((this.flags[pfn] & PG_present_section) !== 0 ||
        (this.sectionState[pfn >>> PFN_SECTION_SHIFT] & SECTION_DEFERRED) !== 0)
    );
  }

  /** Models early_page_initialised() being false: pfn is present RAM whose struct page is not set up yet. */
  deferred(pfn: number): boolean {
    return (
      pfn >= 0 &&
      pfn < this.capacity &&
      (this.sectionState[pfn >>> PFN_SECTION_SHIFT] & SECTION_DEFERRED) !== 0
    );
  }

  /**
   * Model-only: the machine is gone (its Kernel is discarded). With a pool, the arrays are
   * cleared where they were written and go to the next memmap of the same capacity; this memmap is
   * left empty (capacity 0), so a later use of it fails loudly instead of reading another
   * machine's struct pages.
   */
  release(): void {
    if (this.capacity === 0) return;
    const arrays = FIELDS.map(([name]) => this[name]);
    const pool = this.pool;
    if (pool && pool.memmaps.length < pool.maxMemmaps) {
      for (let sec = 0; sec < this.sectionState.length; sec++) {
        const st = this.sectionState[sec];
        if (!(st & SECTION_TOUCHED)) continue;
        const p = sec * PAGES_PER_SECTION;
        // A clean section is zero but for its heads.
        if (st & SECTION_CLEAN) this.head.fill(0, p, p + PAGES_PER_SECTION);
        else for (const a of arrays) a.fill(0, p, p + PAGES_PER_SECTION);
      }
      pool.memmaps.push(arrays);
    }
    for (const [name, make] of FIELDS) (this as unknown as Record<MemMapField, PfnArray>)[name] = make(0);
    this.sectionState = new Uint8Array(0);
    this.capacity = 0;
  }

  /** Models counting the sections with a mem map (for_each_present_section_nr()): those whose memmap was ever written. */
  get touchedSections(): number {
    let n = 0;
    for (let s = 0; s < this.sectionState.length; s++) if (this.sectionState[s] & SECTION_TOUCHED) n++;
    return n;
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
