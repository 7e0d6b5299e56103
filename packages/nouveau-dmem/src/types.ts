import type {
  Core,
  DevPagemap,
  DevPagemapOps,
  Kernel,
  MmStruct,
  MmuNotifier,
  Mutex,
  Warning,
} from '@hmm-model/mm-core';
import type { NouveauChipset } from './constants.js';
import type { NouveauVmm } from './gpuvmm.js';
import type { CopyEngine, Vram } from './vram.js';

/**
 * Models drm->dev (struct device of the GPU): the opaque cookie used as pgmap->owner, as the
 * migrate_vma pgmap_owner and as hmm_range.dev_private_owner.
 */
export interface NouveauDev {
  readonly name: string;
}

/** Models struct nouveau_dmem_chunk (nouveau_dmem.c): one dev_pagemap and its pinned VRAM buffer object. */
export interface NouveauDmemChunk {
  /** chunk->drm. */
  readonly drm: NouveauDrm;
  /** chunk->bo: the pinned VRAM buffer object behind the chunk (offset and size in VRAM). */
  readonly bo: { readonly offset: number; readonly size: number };
  /**
   * chunk->callocated: allocations handed out (one per folio, whatever its order) minus
   * folio_free calls. The kernel field is unsigned long; a negative value here stands for the
   * wrapped value 2^64 + callocated after an underflow (which the kernel WARNs about once).
   */
  callocated: number;
  /** chunk->pagemap: MEMORY_DEVICE_PRIVATE, NR_CHUNKS * DMEM_CHUNK_SIZE, owner drm->dev. */
  readonly pagemap: DevPagemap;
  /** Model-only: the is_large argument of the chunk_alloc that built this chunk. */
  readonly isLarge: boolean;
}

/** Models struct nouveau_dmem_migrate: the copy engine's copy_func / clear_func and its channel. */
export interface NouveauDmemMigrate {
  /** copy_func and clear_func (nvc0b5_migrate_copy / nvc0b5_migrate_clear) on drm->ttm.chan. */
  readonly engine: CopyEngine;
}

/** Models struct nouveau_dmem (nouveau_dmem.c): chunks and the two free lists. */
export interface NouveauDmem {
  /** dmem->drm. */
  readonly drm: NouveauDrm;
  /** dmem->migrate. */
  readonly migrate: NouveauDmemMigrate;
  /** dmem->chunks (list_add at the head: newest first). */
  readonly chunks: NouveauDmemChunk[];
  /** dmem->free_pages: head pfn of the order-0 free list, linked through zone_device_data (0 = NULL). */
  freePages: number;
  /** dmem->free_folios: head pfn of the order-9 free list, linked the same way (0 = NULL). */
  freeFolios: number;
  /** Model-only: pgmap id -> chunk (container_of(page_pgmap(page), ...) in the kernel). */
  readonly chunkByPgmap: Map<number, NouveauDmemChunk>;
}

/** Options of {@link NouveauDrm} that select kernel behaviour or a fix. */
export interface NouveauOptions {
  /**
   * Set MIGRATE_PFN_COMPOUND on eviction destinations of compound sources (what dmirror does).
   * Default false = the kernel as merged, which cannot evict a device THP (see README).
   */
  evictCompoundFixed: boolean;
  /**
   * Reproduce nouveau_dmem_migrate_to_ram() computing the source folio from vmf->page *before*
   * migrate_vma_setup(): after setup split a PTE-mapped device THP, that pointer is the old
   * head's small folio, so the wrong page is copied. Default false = use src[] after setup.
   */
  sfolioBeforeSetup: boolean;
}

/**
 * Models struct nouveau_drm as far as dmem/SVM need it: the device cookie, the chipset, VRAM,
 * drm->dmem (null when nouveau_dmem_init() did not set it up) and the SVMMs of its clients.
 */
export interface NouveauDrm {
  readonly kernel: Kernel;
  readonly core: Core;
  /** drm->dev: the pgmap owner cookie. */
  readonly dev: NouveauDev;
  readonly chipset: NouveauChipset;
  /** drm->client.device.info.family. */
  readonly family: number;
  /** drm->ttm.copy.oclass. */
  readonly copyClass: number;
  /** The GPU's VRAM (ram_user bytes). */
  readonly vram: Vram;
  /** drm->dmem; null when the chipset is pre-Pascal or has no supported copy engine. */
  dmem: NouveauDmem | null;
  /** The dev_pagemap_ops shared by every chunk (nouveau_dmem_pagemap_ops). */
  readonly ops: DevPagemapOps;
  /** SVMMs by id (the value stored in a device page's zone_device_data). */
  readonly svmms: Map<number, NouveauSvmm>;
  readonly options: NouveauOptions;
  /** Warnings this driver raised (also pushed to core.warnings). */
  readonly warnings: Warning[];
}

/**
 * Models struct nouveau_svmm (nouveau_svm.c): a GPU address space mirroring one process's mm,
 * its mmu notifier and its GPU page tables.
 */
export interface NouveauSvmm {
  /** Model-only id: what device pages' zone_device_data holds (the svmm pointer). */
  readonly id: number;
  readonly drm: NouveauDrm;
  /** The mirrored mm (svmm->notifier.mm). */
  readonly mm: MmStruct;
  /** svmm->vmm: the GPU page tables. */
  readonly vmm: NouveauVmm;
  /** svmm->notifier: an hlist mmu_notifier (nouveau_mn_ops), null before registration or after nouveau_svmm_fini(). */
  notifier: MmuNotifier | null;
  /** Models svmm->mutex. */
  readonly mutex: Mutex;
  /**
   * Model-only (fix switch K9): invalidations that unmapped GPU entries (every one but this
   * device's own migrations), counted under svmm->mutex.
   */
  invalidations: number;
}
