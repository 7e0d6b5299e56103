/**
 * The toy GPU's device memory: one DEVICE_PRIVATE dev_pagemap registered with memremap_pages(),
 * VRAM bytes behind it, and the driver's free lists of small pages and PMD-order (THP) folios.
 * This is the part of a ZONE_DEVICE driver that lib/test_hmm.c calls dmirror_allocate_chunk() /
 * dmirror_devmem_alloc_page() and nouveau calls nouveau_dmem_chunk_alloc() / nouveau_dmem_page_alloc_locked().
 */

import type { DeviceFreeLists } from '@hmm-model/migrate-vma';
import {
  type Core,
  type DevPagemap,
  Frames,
  HPAGE_PMD_NR,
  type HPAGE_PMD_ORDER,
  type Kernel,
  type KGen,
  MEMORY_DEVICE_PRIVATE,
  Mutex,
  PAGE_SIZE,
  type VmFault,
} from '@hmm-model/mm-core';
import {
  folioSetZoneDeviceData,
  folioZoneDeviceData,
  memremapPages,
  memunmapPages,
  pageDevPagemap,
  zoneDeviceFolioInit,
} from '@hmm-model/zone-device';

/** Model-only (no kernel symbol): options of {@link ToyGpu}. */
export interface ToyGpuOptions {
  /** VRAM size in 4 KiB pages, a multiple of 512 (default 4096: 16 MiB). */
  readonly vramPages?: number;
  /** How many of them are carved into 2 MiB THP slots (default half). */
  readonly thpPages?: number;
  /** Resource name (default "toy_gpu"). */
  readonly name?: string;
}

/** Model-only (no kernel symbol): counters a driver would keep in debugfs. */
export interface ToyGpuStats {
  /** Device folios handed out, by order 0 / PMD order. */
  allocSmall: number;
  allocLarge: number;
  /** folio_free() calls, by order. */
  freeSmall: number;
  freeLarge: number;
  /** folio_split() calls for new folios (not counting the final call). */
  splits: number;
  /** migrate_to_ram() calls (CPU faults on our device pages). */
  cpuFaults: number;
}

let nextGpuId = 1;

/**
 * Models a GPU driver's device-memory object (struct dmirror_device, struct nouveau_dmem):
 * the dev_pagemap (DEVICE_PRIVATE, owner = this object, the cookie migrate_vma and
 * hmm_range_fault compare), VRAM as its own lazily backed frames indexed by page offset in the
 * pgmap, and the free lists. The dev_pagemap_ops are this object's {@link ToyGpu.folioFree},
 * {@link ToyGpu.folioSplit} and the migrate_to_ram it is given by {@link ToyGpu.setMigrateToRam}.
 */
export class ToyGpu {
  /** An id stored in every allocated folio's zone_device_data (folio_split must keep it). */
  readonly id = nextGpuId++;
  readonly pgmap: DevPagemap;
  /** VRAM, indexed by a device page's offset in the pgmap. */
  readonly vram = new Frames();
  /** Free order-0 device pages (pfns). Changed only in code that does not yield (a spinlock). */
  readonly freeSmall: number[] = [];
  /** Free PMD-order device folios (head pfns). */
  readonly freeLarge: number[] = [];
  /** Models the driver's mutex around its GPU page tables (dmirror->mutex, svmm->mutex). */
  readonly mutex: Mutex;
  readonly stats: ToyGpuStats = {
    allocSmall: 0,
    allocLarge: 0,
    freeSmall: 0,
    freeLarge: 0,
    splits: 0,
    cpuFaults: 0,
  };
  /** Large allocations still to fail (a test knob, like HMM_DMIRROR_FLAG_FAIL_ALLOC). */
  failLarge = 0;
  private migrateToRamOp: ((vmf: VmFault) => KGen<number>) | null = null;

  constructor(
    readonly kernel: Kernel,
    opts: ToyGpuOptions = {},
  ) {
    const nrPages = opts.vramPages ?? 4096;
    const thpPages = opts.thpPages ?? nrPages / 2;
    if (nrPages % HPAGE_PMD_NR || thpPages % HPAGE_PMD_NR || thpPages > nrPages)
      throw new RangeError('toy_gpu: VRAM and its THP part must be multiples of 512 pages');
    const name = opts.name ?? 'toy_gpu';
    this.mutex = new Mutex(`${name}->mutex`);
    const r = memremapPages(kernel.core, {
      type: MEMORY_DEVICE_PRIVATE,
      owner: this,
      name,
      nrPages,
      ops: {
        folioFree: (head, order) => this.folioFree(head, order),
        migrateToRam: (vmf) => this.migrateToRam(vmf),
        folioSplit: (head, tail) => this.folioSplit(head, tail),
      },
    });
    if (typeof r === 'number') throw new Error(`toy_gpu: memremap_pages failed: ${r}`);
    this.pgmap = r;
    // Pop order: lowest addresses first.
    for (let p = r.startPfn + thpPages - HPAGE_PMD_NR; p >= r.startPfn; p -= HPAGE_PMD_NR)
      this.freeLarge.push(p);
    for (let p = r.endPfn - 1; p >= r.startPfn + thpPages; p--) this.freeSmall.push(p);
  }

  get core(): Core {
    return this.kernel.core;
  }

  /** Models is_device_private_page() && page_pgmap(page)->owner == this device. */
  owns(pfn: number): boolean {
    return pageDevPagemap(this.core, pfn) === this.pgmap;
  }

  /** The VRAM page index of a device pfn. */
  vramIndex(pfn: number): number {
    return pfn - this.pgmap.startPfn;
  }

  /**
   * Models dmirror_devmem_alloc_page() / nouveau_dmem_page_alloc_locked(): pop a free device page
   * (order 0) or THP (PMD order) and zone_device_folio_init() it: the folio comes back locked
   * with one reference, as migrate_vma_pages() wants a destination. -1 when none is free.
   */
  allocFolio(order: 0 | typeof HPAGE_PMD_ORDER): number {
    if (order && this.failLarge > 0) {
      this.failLarge--;
      return -1;
    }
    const pfn = (order ? this.freeLarge : this.freeSmall).pop();
    if (pfn === undefined) return -1;
    zoneDeviceFolioInit(this.core, pfn, this.pgmap, order);
    folioSetZoneDeviceData(this.core, pfn, this.id);
    if (order) this.stats.allocLarge++;
    else this.stats.allocSmall++;
    return pfn;
  }

  /**
   * Models dev_pagemap_ops.folio_free (dmirror_devmem_free / nouveau_dmem_folio_free): the last
   * reference to a device folio went away (free_zone_device_folio() already cleared its mapping);
   * give it back to the free list of its order. Must not sleep.
   */
  folioFree(head: number, order: number): void {
    if (order) {
      this.freeLarge.push(head);
      this.stats.freeLarge++;
    } else {
      this.freeSmall.push(head);
      this.stats.freeSmall++;
    }
  }

  /**
   * Models dev_pagemap_ops.folio_split (dmirror_devmem_folio_split): called by the core for every
   * new folio a split of our device THP creates, then once with tail = -1. Without this op the
   * core copies pgmap and mapping itself; with it the driver must give each new folio what it
   * keeps per folio: the pgmap and our zone_device_data.
   */
  folioSplit(head: number, tail: number): void {
    if (tail < 0) return;
    this.core.map.pgmap[tail] = this.pgmap.id;
    folioSetZoneDeviceData(this.core, tail, folioZoneDeviceData(this.core, head));
    this.stats.splits++;
  }

  /** Installs the migrate_to_ram implementation (migrate.ts provides the driver's). */
  setMigrateToRam(op: (vmf: VmFault) => KGen<number>): void {
    this.migrateToRamOp = op;
  }

  /** Models dev_pagemap_ops.migrate_to_ram: delegates to the installed implementation. */
  *migrateToRam(vmf: VmFault): KGen<number> {
    this.stats.cpuFaults++;
    if (!this.migrateToRamOp) throw new Error('toy_gpu: no migrate_to_ram installed');
    return yield* this.migrateToRamOp(vmf);
  }

  /**
   * The driver's free lists for migrate-vma's checker (installMigrateChecker({ freeLists })): it
   * then reports a page that is both allocated and free, listed twice, or on no list (leaked).
   */
  freeLists(): DeviceFreeLists {
    return {
      pgmapId: this.pgmap.id,
      forEach: (add) => {
        for (const p of this.freeLarge) add(p, HPAGE_PMD_NR);
        for (const p of this.freeSmall) add(p, 1);
      },
    };
  }

  /** Models the copy engine: n pages of system RAM from spfn (or zeros for spfn < 0) into VRAM at device pfn dpfn. */
  copyToVram(dpfn: number, spfn: number, n: number): void {
    const frames = this.core.frames;
    for (let k = 0; k < n; k++) {
      const d = this.vramIndex(dpfn) + k;
      if (spfn < 0 || frames.isZero(spfn + k)) this.vram.zero(d, 1);
      else this.vram.page(d).set(frames.page(spfn + k));
    }
  }

  /** Models the copy engine: n pages of VRAM at device pfn spfn into system RAM at dpfn. */
  copyFromVram(dpfn: number, spfn: number, n: number): void {
    const frames = this.core.frames;
    for (let k = 0; k < n; k++) {
      const s = this.vramIndex(spfn) + k;
      if (this.vram.isZero(s)) frames.zero(dpfn + k, 1);
      else frames.page(dpfn + k).set(this.vram.page(s));
    }
  }

  /** The bytes of one device page (a view into VRAM). */
  vramPage(pfn: number): Uint8Array {
    return this.vram.page(this.vramIndex(pfn));
  }

  /**
   * Models the driver's teardown: memunmap_pages() waits until every device page is free (evict
   * first: {@link evictAllGen} in evict.ts), then the struct pages go away.
   */
  *destroyGen(): KGen {
    yield* memunmapPages(this.core, this.pgmap);
  }

  /** Bytes of VRAM in use (allocated device pages × PAGE_SIZE). */
  get vramUsed(): number {
    return this.pgmap.refs * PAGE_SIZE;
  }
}
