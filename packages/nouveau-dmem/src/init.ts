import { type DevPagemapOps, ENODEV, type Kernel, type KGen, type VmFault } from '@hmm-model/mm-core';
import {
  CHIPSETS,
  type NouveauChipset,
  NV_DEVICE_INFO_V0_PASCAL,
  PASCAL_DMA_COPY_A,
  PASCAL_DMA_COPY_B,
  TURING_DMA_COPY_A,
  VOLTA_DMA_COPY_A,
} from './constants.js';
import { nouveauDmemFolioFree, nouveauDmemFolioSplit } from './dmem.js';
import { nouveauDmemMigrateToRam } from './toram.js';
import type { NouveauDrm } from './types.js';
import { CopyEngine, Vram } from './vram.js';

/** Models what a nouveau probe finds (chipset, VRAM ram_user, copy class) plus the model's behaviour switches. */
export interface NouveauDmemOptions {
  /** The GPU generation (default 'pascal'). Pre-Pascal ('kepler') gets no dmem. */
  chipset?: NouveauChipset;
  /** VRAM size in bytes (default 1 GiB: four 256 MiB chunks). */
  vramBytes?: number;
  /** Override the copy-engine class the probe finds (drm->ttm.copy.oclass). */
  copyClass?: number;
  /** See NouveauOptions.evictCompoundFixed (default false: the kernel as merged). */
  evictCompoundFixed?: boolean;
  /** See NouveauOptions.sfolioBeforeSetup (default false). */
  sfolioBeforeSetup?: boolean;
  /** Name of the device cookie (drm->dev), for inspection (default "nouveau"). */
  name?: string;
}

/**
 * Models nouveau_dmem_migrate_init(): pick copy_func/clear_func for the copy-engine class
 * (PASCAL_DMA_COPY_A/B, VOLTA_DMA_COPY_A, TURING_DMA_COPY_A all use the nvc0b5 methods).
 * Returns the engine or -ENODEV.
 */
export function nouveauDmemMigrateInit(drm: NouveauDrm): CopyEngine | number {
  switch (drm.copyClass) {
    case PASCAL_DMA_COPY_A:
    case PASCAL_DMA_COPY_B:
    case VOLTA_DMA_COPY_A:
    case TURING_DMA_COPY_A:
      return new CopyEngine(drm.vram, drm.core.frames, drm.core.events);
    default:
      return -ENODEV;
  }
}

/**
 * Models nouveau_dmem_init(): only Pascal or newer gets device memory; allocate drm->dmem with
 * empty chunk and free lists, then nouveau_dmem_migrate_init() — on failure drm->dmem stays
 * NULL. No chunk is created here: the first allocation builds one (nouveau_dmem_chunk_alloc()).
 */
export function nouveauDmemInit(drm: NouveauDrm): void {
  if (drm.family < NV_DEVICE_INFO_V0_PASCAL) return;
  const engine = nouveauDmemMigrateInit(drm);
  if (typeof engine === 'number') return;
  drm.dmem = {
    drm,
    migrate: { engine },
    chunks: [],
    freePages: 0,
    freeFolios: 0,
    chunkByPgmap: new Map(),
  };
}

/**
 * Models nouveau_dmem_pagemap_ops. A class rather than an object of arrow functions: its methods
 * are compiled once per thread, where each machine's own closures would be compiled again for
 * every machine a campaign boots (V8 drops a dead closure's optimized code at a full GC).
 */
class NouveauDmemPagemapOps implements DevPagemapOps {
  /** The drm, set once it exists (it holds these ops). */
  drm: NouveauDrm | undefined = undefined;
  /** Models nouveau_dmem_folio_free(). */
  folioFree(head: number, order: number): void {
    nouveauDmemFolioFree(this.drm!, head, order);
  }
  /** Models nouveau_dmem_migrate_to_ram(). */
  migrateToRam(vmf: VmFault): KGen<number> {
    return nouveauDmemMigrateToRam(this.drm!, vmf);
  }
  /** Models nouveau_dmem_folio_split(). */
  folioSplit(head: number, tail: number): void {
    nouveauDmemFolioSplit(this.drm!, head, tail);
  }
}

/**
 * Models nouveau_drm_device_init() as far as SVM/dmem need it: struct nouveau_drm with its device
 * cookie, VRAM and nouveau_dmem_pagemap_ops (folio_free, migrate_to_ram, folio_split), then
 * nouveau_dmem_init(). Check `drm.dmem` (null on Kepler or without a supported copy engine).
 */
export function createNouveauDmem(kernel: Kernel, opts: NouveauDmemOptions = {}): NouveauDrm {
  const chipset = opts.chipset ?? 'pascal';
  const info = CHIPSETS[chipset];
  const core = kernel.core;
  const drm: NouveauDrm = {
    kernel,
    core,
    dev: { name: opts.name ?? 'nouveau' },
    chipset,
    family: info.family,
    copyClass: opts.copyClass ?? info.copyClass,
    vram: new Vram(opts.vramBytes ?? 1024 * 1024 * 1024, core.frames),
    dmem: null,
    ops: new NouveauDmemPagemapOps(),
    svmms: new Map(),
    options: {
      evictCompoundFixed: opts.evictCompoundFixed ?? false,
      sfolioBeforeSetup: opts.sfolioBeforeSetup ?? false,
    },
    warnings: [],
  };
  (drm.ops as NouveauDmemPagemapOps).drm = drm;
  nouveauDmemInit(drm);
  return drm;
}
