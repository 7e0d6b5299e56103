import {
  allocFolio,
  type Core,
  type DevPagemap,
  type DevPagemapOps,
  ENOMEM,
  folioPut,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  type KGen,
  MEMORY_DEVICE_COHERENT,
  MEMORY_DEVICE_PRIVATE,
  ModelBug,
  Mutex,
  PAGE_SIZE,
  PG_head,
  PG_large_rmappable,
  PG_locked,
  PG_tail,
} from '@hmm-model/mm-core';
import {
  isDevicePrivatePage,
  memremapPages,
  pageDevPagemap,
  zoneDeviceFolioInit,
} from '@hmm-model/zone-device';
import { dmirrorAllocMthp, MthpFreeLists } from './mthp.js';
import { type DmirrorMemoryType, dmirrorPath, HMM_DMIRROR_MEMORY_DEVICE_PRIVATE } from './uapi.js';

/** Models DEVMEM_CHUNK_SIZE (256 MiB). */
export const DEVMEM_CHUNK_SIZE = 256 * 1024 * 1024;
/** Models DEVMEM_CHUNK_SIZE >> PAGE_SHIFT (65536 pages = 128 PMD-sized slots). */
export const DEVMEM_CHUNK_PAGES = DEVMEM_CHUNK_SIZE / PAGE_SIZE;
/** Models DEVMEM_CHUNKS_RESERVE: growth step of the chunk pointer array. */
export const DEVMEM_CHUNKS_RESERVE = 16;

/** Models struct dmirror_chunk (lib/test_hmm.c): one dev_pagemap of device memory. */
export interface DmirrorChunk {
  readonly pagemap: DevPagemap;
  readonly mdevice: DmirrorDevice;
  /** Models chunk->remove: the chunk is being torn down; freed pages do not go back to the lists. */
  remove: boolean;
  /**
   * Model-only: pages [pagemap.startPfn, untouchedEnd) were never handed out since the chunk was
   * allocated (refcount 0, no folio, untouched since memmap_init). While such a range is on
   * free_pages (DmirrorDevice.lazy), its links are implied: see {@link DmirrorDevice.nextFree}.
   */
  untouchedEnd: number;
}

/**
 * Models struct dmirror_device (lib/test_hmm.c): the device memory (chunks), the free lists of
 * small pages and PMD-order folios linked through zone_device_data (memmap.priv, 0 = NULL) and
 * the calloc/cfree counters. It is the pgmap owner of its chunks.
 */
export class DmirrorDevice {
  readonly path: string;
  /** Models devmem_chunks[0 .. devmem_count). */
  chunks: DmirrorChunk[] = [];
  /** Models devmem_capacity (grows by DEVMEM_CHUNKS_RESERVE). */
  devmemCapacity = 0;
  /** Model-only: the fixed chunk removal ({@link DmirrorOptions.evictUntilEmpty}). */
  evictUntilEmpty = false;
  /** Models mdevice->devmem_lock: held by chunk removal; dmirror_allocate_chunk() takes it. */
  readonly devmemLock: Mutex;
  /** Models calloc: pages handed out. */
  calloc = 0;
  /** Models cfree: pages returned to the free lists. */
  cfree = 0;
  /** Model-only: pages freed while their chunk was being removed (not counted in cfree). */
  cdropped = 0;
  /** Models free_pages: head of the order-0 free list (0 = NULL). */
  freePages = 0;
  /** Models free_folios: head of the order-9 free list (0 = NULL). */
  freeFolios = 0;
  /** Length of free_pages (for inspection; the kernel does not count). */
  nrFreePages = 0;
  /** Length of free_folios (for inspection). */
  nrFreeFolios = 0;
  private readonly chunkByPgmap = new Map<number, DmirrorChunk>();
  /** The pgmap of the last {@link DmirrorDevice.chunkOfPgmap} lookup and its chunk (frees run per page). */
  private lastPgmap: DevPagemap | undefined = undefined;
  private lastChunk: DmirrorChunk | undefined = undefined;
  /**
   * Model-only: the chunks whose untouched pages are on free_pages. dmirror_allocate_chunk()
   * pushes a small-page chunk's 65536 pages in pfn order, so free_pages then reads from the last
   * pfn down to the first, whose zone_device_data is the old head. The model writes only that
   * last link: page p of the range links to p - 1 without it being stored
   * ({@link DmirrorDevice.nextFree}), so an unused chunk costs nothing per page. The links differ
   * from the kernel's only in the memmap (zone_device_data of such a free page reads 0); every
   * walk of the list goes through nextFree().
   */
  private lazy: DmirrorChunk[] = [];
  /** The count of entries the last {@link DmirrorDevice.dropFree} kept. */
  private dropKept = 0;
  /** Model extension (mthp.ts): the mTHP orders this device allocates and migrates whole. */
  mthpOrders = 0;
  /** Model extension (mthp.ts): free device folios of the mTHP orders. */
  readonly mthpFree = new MthpFreeLists();

  constructor(
    readonly core: Core,
    /** The minor number (0..3). */
    readonly minor: number,
    /** Models zone_device_type. */
    readonly zoneDeviceType: DmirrorMemoryType,
    /** Models dmirror_devmem_ops (shared by every chunk). */
    readonly ops: DevPagemapOps,
    /** Models spm_addr_dev0/1 for a coherent device: the fixed start pfn of its only chunk. */
    readonly spmPfn?: number,
  ) {
    this.path = dmirrorPath(minor);
    this.devmemLock = new Mutex(`mdevice->devmem_lock (${this.path})`);
  }

  /** Models dmirror_is_private_zone(). */
  get isPrivate(): boolean {
    return this.zoneDeviceType === HMM_DMIRROR_MEMORY_DEVICE_PRIVATE;
  }

  /** Models dmirror_page_to_chunk(): the chunk whose pgmap the page belongs to. */
  chunkOf(pfn: number): DmirrorChunk | undefined {
    const pgmap = pageDevPagemap(this.core, pfn);
    return pgmap ? this.chunkOfPgmap(pgmap) : undefined;
  }

  /** The chunk whose pagemap is `pgmap` (dmirror_page_to_chunk() once the pgmap is known). */
  private chunkOfPgmap(pgmap: DevPagemap): DmirrorChunk | undefined {
    if (pgmap === this.lastPgmap) return this.lastChunk;
    const chunk = this.chunkByPgmap.get(pgmap.id);
    if (chunk) {
      this.lastPgmap = pgmap;
      this.lastChunk = chunk;
    }
    return chunk;
  }

  /** Models BACKING_PAGE(): zone_device_data for a device-private page, the page itself otherwise. */
  backingPage(pfn: number): number {
    return isDevicePrivatePage(this.core, pfn) ? this.core.map.priv[pfn] : pfn;
  }

  private pushPage(pfn: number): void {
    this.core.map.priv[pfn] = this.freePages;
    this.freePages = pfn;
    this.nrFreePages++;
  }

  private pushFolio(pfn: number): void {
    this.core.map.priv[pfn] = this.freeFolios;
    this.freeFolios = pfn;
    this.nrFreeFolios++;
  }

  private popPage(): number {
    const pfn = this.freePages;
    this.freePages = this.nextFree(pfn, true);
    this.nrFreePages--;
    return pfn;
  }

  /**
   * Model-only: the page after `pfn` on free_pages (page->zone_device_data, or the implied link
   * of an untouched range, see {@link DmirrorDevice.lazy}). With `pop`, pfn leaves the list (it
   * is the head: the top of its untouched range, if any).
   */
  nextFree(pfn: number, pop = false): number {
    const lazy = this.lazy;
    for (let i = 0; i < lazy.length; i++) {
      const c = lazy[i];
      const start = c.pagemap.startPfn;
      if (pfn < start || pfn >= c.untouchedEnd) continue;
      if (pop) {
        if (pfn !== c.untouchedEnd - 1)
          throw new ModelBug(`dmirror: popped pfn 0x${pfn.toString(16)} below its chunk's untouched top`);
        c.untouchedEnd = pfn;
        if (pfn === start) lazy.splice(i, 1);
      }
      return pfn > start ? pfn - 1 : this.core.map.priv[pfn];
    }
    return this.core.map.priv[pfn];
  }

  private popFolio(): number {
    const pfn = this.freeFolios;
    this.freeFolios = this.core.map.priv[pfn];
    this.nrFreeFolios--;
    return pfn;
  }

  /**
   * Models dmirror_allocate_chunk(): memremap a new 256 MiB chunk (a free physical range for a
   * private device, the SPM range for a coherent one), put all its pages on the free lists
   * (PMD-aligned 512-page slots on free_folios when is_large) and, if `want`, pop one page for
   * the caller. Returns the popped pfn, 0 when nothing was wanted, or -errno.
   */
  allocateChunk(isLarge: boolean, want: boolean): number {
    const core = this.core;
    const pagemap = memremapPages(core, {
      type: this.isPrivate ? MEMORY_DEVICE_PRIVATE : MEMORY_DEVICE_COHERENT,
      owner: this,
      ops: this.ops,
      nrPages: DEVMEM_CHUNK_PAGES,
      // The kernel names every region "hmm_dmirror"; the minor is added for inspection.
      name: `hmm_dmirror${this.minor}`,
      ...(this.isPrivate ? {} : { startPfn: this.spmPfn }),
    });
    if (typeof pagemap === 'number') return pagemap;
    if (this.chunks.length === this.devmemCapacity) this.devmemCapacity += DEVMEM_CHUNKS_RESERVE;
    const chunk: DmirrorChunk = { pagemap, mdevice: this, remove: false, untouchedEnd: pagemap.startPfn };
    this.chunks.push(chunk);
    this.chunkByPgmap.set(pagemap.id, chunk);
    const last = pagemap.endPfn;
    if (!isLarge && !this.mthpOrders) {
      // Every page goes on free_pages in pfn order: only the first one's link is written.
      this.core.map.priv[pagemap.startPfn] = this.freePages;
      this.freePages = last - 1;
      this.nrFreePages += last - pagemap.startPfn;
      chunk.untouchedEnd = last;
      this.lazy.push(chunk);
    }
    for (let pfn = chunk.untouchedEnd; pfn < last; ) {
      // Model extension (mthp.ts): a device with mTHP orders keeps PMD-order slots to carve.
      if ((isLarge || this.mthpOrders) && pfn % HPAGE_PMD_NR === 0 && pfn + HPAGE_PMD_NR <= last) {
        this.pushFolio(pfn);
        pfn += HPAGE_PMD_NR;
        continue;
      }
      this.pushPage(pfn);
      pfn++;
    }
    if (!want) return 0;
    if (isLarge) {
      if (!this.freeFolios) return -ENOMEM;
      this.calloc += HPAGE_PMD_NR;
      return this.popFolio();
    }
    if (!this.freePages && !this.carvePages()) return -ENOMEM;
    this.calloc++;
    return this.popPage();
  }

  /**
   * Model extension (mthp.ts): a free PMD-order slot to carve into mTHP pieces, from free_folios
   * or a new chunk; 0 when there is none. Not counted in calloc (the pieces are, when handed out).
   */
  takePmdSlot(): number {
    if (!this.freeFolios && this.allocateChunk(true, false) < 0) return 0;
    return this.freeFolios ? this.popFolio() : 0;
  }

  /**
   * Model extension (mthp.ts): a device that declares mTHP orders lays its chunks out in
   * PMD-order slots; when free_pages runs dry, a free slot is broken into 512 pages for it.
   * True when pages were added.
   */
  private carvePages(): boolean {
    if (!this.mthpOrders || !this.freeFolios) return false;
    const slot = this.popFolio();
    for (let p = slot + HPAGE_PMD_NR - 1; p >= slot; p--) this.pushPage(p);
    return true;
  }

  /** The pgmap of a device pfn (for zone_device_folio_init()). */
  pgmapOfPage(pfn: number): DevPagemap | undefined {
    return this.core.pgmapOf(this.core.map.head[pfn]) ?? this.core.pgmapOf(pfn);
  }

  /** Model extension (mthp.ts): a device folio of `order` (0, an mTHP order or the PMD order), or -1. */
  allocOrder(order: number): number {
    if (order === 0 || order === HPAGE_PMD_ORDER) return this.allocPage(order !== 0);
    return dmirrorAllocMthp(this, order);
  }

  /**
   * Models dmirror_devmem_alloc_page(): for a private device first allocate the system backing
   * folio of the same order, then pop a device page (or folio) from the matching free list or a
   * new chunk, zone_device_folio_init() it (refcount 1, locked) and hang the backing page off its
   * zone_device_data. Returns the device pfn or -1 (NULL).
   */
  allocPage(isLarge: boolean): number {
    const core = this.core;
    const order = isLarge ? HPAGE_PMD_ORDER : 0;
    let rpage = 0;
    if (this.isPrivate) {
      rpage = allocFolio(core, order, false);
      if (rpage < 0) return -1;
    }
    let dpage: number;
    if (isLarge && this.freeFolios) {
      dpage = this.popFolio();
      this.calloc += 1 << order;
    } else if (!isLarge && (this.freePages || this.carvePages())) {
      dpage = this.popPage();
      this.calloc++;
    } else {
      dpage = this.allocateChunk(isLarge, true);
      if (dpage <= 0) {
        if (rpage) folioPut(core, rpage);
        return -1;
      }
    }
    const pgmap = core.pgmapOf(core.map.head[dpage]);
    if (!pgmap) throw new ModelBug(`dmirror: free device page 0x${dpage.toString(16)} has no pgmap`);
    zoneDeviceFolioInit(core, dpage, pgmap, order);
    core.map.priv[dpage] = rpage;
    return dpage;
  }

  /**
   * Models dmirror_devmem_free() (the folio_free op): free the backing folio (order taken from
   * the backing folio), then, unless the chunk is being removed, count cfree and push the device
   * page back on free_folios (order > 0) or free_pages.
   */
  devmemFree(head: number): void {
    const core = this.core;
    const m = core.map;
    // BACKING_PAGE() and dmirror_page_to_chunk() below read the same pgmap: looked up once.
    const pgmap = pageDevPagemap(core, head);
    let rpage = pgmap?.type === MEMORY_DEVICE_PRIVATE ? m.priv[head] : head;
    const rfolio = rpage ? m.head[rpage] : 0;
    if (!rfolio)
      throw new ModelBug(`dmirror_devmem_free: device page 0x${head.toString(16)} has no backing page`);
    const order = m.folioOrder(rfolio);
    if (rpage !== head) {
      folioPut(core, rfolio);
      rpage = 0;
    }
    const chunk = pgmap ? this.chunkOfPgmap(pgmap) : undefined;
    if (!chunk) throw new ModelBug(`dmirror_devmem_free: page 0x${head.toString(16)} is in no chunk`);
    if (chunk.remove) {
      this.cdropped += 1 << order;
      return;
    }
    this.cfree += 1 << order;
    if (order === HPAGE_PMD_ORDER) this.pushFolio(head);
    else if (order) this.mthpFree.push(core, head, order);
    else this.pushPage(head);
  }

  /**
   * Models dmirror_devmem_folio_split() (the folio_split op, §3.4): for each new device folio
   * `tail`, point its zone_device_data at the backing subpage at the same offset, make that
   * backing subpage a standalone order-0 page (refcount 1) carrying the dmirror, and copy
   * mapping and pgmap from the head; on the final call (tail = -1) reset the backing head to
   * order 0 with refcount 1.
   */
  folioSplit(head: number, tail: number): void {
    const m = this.core.map;
    const rpage = this.backingPage(head);
    if (!rpage) {
      if (tail >= 0) m.priv[tail] = 0;
      return;
    }
    const rfolio = m.head[rpage];
    if (tail < 0) {
      // Models folio_reset_order() + mapping = NULL + folio_init_count().
      m.flags[rfolio] &= ~(PG_head | PG_large_rmappable);
      m.order[rfolio] = 0;
      m.entireMapcount[rfolio] = 0;
      m.largeMapcount[rfolio] = 0;
      m.mapping[rfolio] = 0;
      m.refcount[rfolio] = 1;
      return;
    }
    const rpageTail = rfolio + (tail - head);
    m.priv[tail] = rpageTail;
    m.priv[rpageTail] = m.priv[rpage];
    // Models clear_compound_head().
    m.head[rpageTail] = rpageTail;
    m.flags[rpageTail] &= ~PG_tail;
    m.mapping[rpageTail] = 0;
    m.mapping[tail] = m.mapping[head];
    m.pgmap[tail] = m.pgmap[head];
    m.refcount[rpageTail] = 1;
  }

  /**
   * Drops the pfns in [lo, hi) (a chunk) from the free list that starts at `head` and links
   * through page->zone_device_data; returns the new head, the count kept in {@link dropKept}. An
   * untouched range on free_pages ({@link DmirrorDevice.nextFree}) lies wholly inside or outside
   * [lo, hi) and is kept or dropped as a whole, without visiting its pages.
   */
  private dropFree(head: number, lo: number, hi: number): number {
    const priv = this.core.map.priv;
    const lazy = this.lazy;
    let newHead = 0;
    let tail = 0;
    let n = 0;
    for (let p = head; p; ) {
      let c: DmirrorChunk | undefined;
      let i = 0;
      for (; i < lazy.length; i++)
        if (p >= lazy[i].pagemap.startPfn && p < lazy[i].untouchedEnd) {
          c = lazy[i];
          break;
        }
      // The next entry after this page, or after the whole untouched range it tops.
      const last = c ? c.pagemap.startPfn : p;
      const next = priv[last];
      if (p < lo || p >= hi) {
        if (tail) priv[tail] = p;
        else newHead = p;
        tail = last;
        n += p - last + 1;
      } else if (c) lazy.splice(i, 1);
      p = next;
    }
    if (tail) priv[tail] = 0;
    this.dropKept = n;
    return newHead;
  }

  /** Models dmirror_remove_free_pages(): drop the chunk's free pages from both lists. */
  removeFreePages(chunk: DmirrorChunk): void {
    const lo = chunk.pagemap.startPfn;
    const hi = chunk.pagemap.endPfn;
    this.freeFolios = this.dropFree(this.freeFolios, lo, hi);
    this.nrFreeFolios = this.dropKept;
    this.freePages = this.dropFree(this.freePages, lo, hi);
    this.nrFreePages = this.dropKept;
    this.mthpFree.filter(this.core, (pfn) => pfn >= lo && pfn < hi);
  }

  /** The end of dmirror_device_remove_chunks() for one chunk: it is no longer the device's. */
  forgetChunk(chunk: DmirrorChunk): void {
    this.chunkByPgmap.delete(chunk.pagemap.id);
    if (this.lastChunk === chunk) {
      this.lastPgmap = undefined;
      this.lastChunk = undefined;
    }
  }

  /** The end of dmirror_device_remove_chunks(): no chunk, empty lists. */
  forgetAllChunks(): void {
    this.chunks = [];
    this.lazy = [];
    this.devmemCapacity = 0;
    this.freePages = 0;
    this.freeFolios = 0;
    this.nrFreePages = 0;
    this.nrFreeFolios = 0;
  }

  /**
   * Models the wait of dmirror_allocate_chunk()'s mutex_lock(&mdevice->devmem_lock) while a chunk
   * removal holds it. The model's allocation loop is atomic, so a migration waits here before
   * it instead of inside it: the interleaving where a migration pops free pages of a chunk the
   * removal has not reached yet is not modelled.
   */
  *waitDevmemLock(site: string): KGen {
    const s = this.core.sched;
    if (this.devmemLock.owner && this.devmemLock.owner !== s.current) {
      yield* this.devmemLock.lock(s, site);
      this.devmemLock.unlock(s, site);
    }
  }

  /** Models dmirror_device_init()'s initial small chunk; -errno on failure. */
  init(): number {
    const r = this.allocateChunk(false, false);
    return Math.min(r, 0);
  }

  /**
   * Invariant 19 (kernel-mechanics §9): pages handed out (calloc - cfree - dropped) equal the
   * pgmap references of the live chunks, and free + allocated pages cover every chunk page.
   */
  check(): string[] {
    const out: string[] = [];
    let refs = 0;
    for (const c of this.chunks) refs += c.pagemap.refs;
    const live = this.calloc - this.cfree - this.cdropped;
    if (live !== refs)
      out.push(
        `${this.path}: calloc ${this.calloc} - cfree ${this.cfree} - dropped ${this.cdropped} != pgmap refs ${refs}`,
      );
    const total = this.chunks.length * DEVMEM_CHUNK_PAGES;
    const mthp = this.mthpFree.counts.reduce((n, c, o) => n + (c << o), 0);
    const accounted = this.nrFreePages + this.nrFreeFolios * HPAGE_PMD_NR + mthp + refs;
    if (accounted !== total)
      out.push(
        `${this.path}: free ${this.nrFreePages} + ${this.nrFreeFolios} folios + ${mthp} in mTHP folios + allocated ${refs} != ${total} pages`,
      );
    return out;
  }

  /**
   * Full free-list hygiene (§9 invariants 1 and 19, O(pages)): every listed page is a free
   * (refcount 0, unlocked, unmapped) page of a live chunk of this device, listed once, and a
   * folio head on free_folios is PMD aligned.
   */
  checkFreeLists(): string[] {
    const m = this.core.map;
    const out: string[] = [];
    const seen = new Set<number>();
    const walk = (head: number, large: boolean) => {
      for (let p = head; p; p = large ? m.priv[p] : this.nextFree(p)) {
        if (seen.has(p)) {
          out.push(`${this.path}: pfn 0x${p.toString(16)} listed twice`);
          return;
        }
        seen.add(p);
        const chunk = this.chunkOf(p);
        if (!chunk || chunk.remove)
          out.push(`${this.path}: free pfn 0x${p.toString(16)} not in a live chunk`);
        if (m.refcount[p] !== 0)
          out.push(`${this.path}: free pfn 0x${p.toString(16)} has refcount ${m.refcount[p]}`);
        if (m.flags[p] & PG_locked) out.push(`${this.path}: free pfn 0x${p.toString(16)} is locked`);
        if (m.mapcount[p] !== 0) out.push(`${this.path}: free pfn 0x${p.toString(16)} is mapped`);
        if (large && p % HPAGE_PMD_NR)
          out.push(`${this.path}: free folio 0x${p.toString(16)} not PMD aligned`);
      }
    };
    walk(this.freePages, false);
    walk(this.freeFolios, true);
    out.push(
      ...this.mthpFree.check(this.core, this.path, seen, (p) => {
        const chunk = this.chunkOf(p);
        return chunk !== undefined && !chunk.remove;
      }),
    );
    return out;
  }
}
