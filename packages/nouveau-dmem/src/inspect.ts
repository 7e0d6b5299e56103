/**
 * Read-only views of the driver's state for tools (the shell's `gpu` commands): VRAM chunks and
 * their free lists, the GPU page-table entries of a range, and whether a pfn is this GPU's VRAM.
 * Nothing here changes state.
 */

import { type Core, PAGE_SIZE } from '@hmm-model/mm-core';
import { pageDevPagemap } from '@hmm-model/zone-device';
import { freeListPfns, nouveauPageToChunk } from './dmem.js';
import type { GpuPte } from './gpuvmm.js';
import type { NouveauDmemChunk, NouveauDrm, NouveauSvmm } from './types.js';

/** The dev_pagemap name nouveau_dmem_chunk_alloc() gives its chunks (models the "nouveau_dmem" resource). */
export const NOUVEAU_DMEM_PGMAP_NAME = 'nouveau_dmem';

/** Models one struct nouveau_dmem_chunk as a debugfs-style dump would show it. */
export interface VramChunkInfo {
  /** Position in dmem->chunks (0 = newest, list_add order). */
  readonly index: number;
  /** chunk->bo: VRAM offset and size of the pinned buffer object. */
  readonly boOffset: number;
  readonly boSize: number;
  /** chunk->pagemap.range as pfns [startPfn, endPfn). */
  readonly startPfn: number;
  readonly endPfn: number;
  /** chunk->callocated (negative = the wrapped unsigned value after an underflow). */
  readonly callocated: number;
  /** Whether nouveau_dmem_chunk_alloc() built it for large (order-9) allocations. */
  readonly isLarge: boolean;
  /** Pages of this chunk on dmem->free_pages. */
  readonly freePages: number;
  /** Folios of this chunk on dmem->free_folios (512 pages each). */
  readonly freeFolios: number;
}

/** Models the dmem state of one GPU (struct nouveau_dmem plus VRAM and copy-engine counters). */
export interface NouveauDmemInfo {
  readonly chipset: string;
  readonly vramBytes: number;
  /** VRAM held by chunk buffer objects. */
  readonly vramBoBytes: number;
  readonly chunks: readonly VramChunkInfo[];
  /** Length of dmem->free_pages and its first pfns (head first). */
  readonly freePages: number;
  readonly freePagesHead: readonly number[];
  /** Length of dmem->free_folios and its first folio pfns (head first). */
  readonly freeFolios: number;
  readonly freeFoliosHead: readonly number[];
  /** Copy-engine launches, pages copied and clears since the GPU was set up. */
  readonly copyLaunches: number;
  readonly linesCopied: number;
  readonly clears: number;
}

/**
 * Models reading nouveau's dmem state (drm->dmem: chunks, free_pages, free_folios) for a debug
 * view: per chunk its buffer object, pfn range, callocated and how many of its pages / folios are
 * free; the two free lists with their first `sample` entries. Null when drm->dmem is NULL
 * (pre-Pascal, no copy engine).
 */
export function nouveauDmemInspect(drm: NouveauDrm, sample = 4): NouveauDmemInfo | null {
  const dmem = drm.dmem;
  if (!dmem) return null;
  const pages = freeListPfns(drm, dmem.freePages);
  const folios = freeListPfns(drm, dmem.freeFolios);
  const perChunk = new Map<NouveauDmemChunk, { pages: number; folios: number }>();
  const tally = (pfn: number, key: 'pages' | 'folios') => {
    const c = nouveauPageToChunk(drm, pfn);
    if (!c) return;
    const t = perChunk.get(c) ?? { pages: 0, folios: 0 };
    t[key]++;
    perChunk.set(c, t);
  };
  for (const p of pages) tally(p, 'pages');
  for (const p of folios) tally(p, 'folios');
  const engine = dmem.migrate.engine;
  return {
    chipset: drm.chipset,
    vramBytes: drm.vram.size,
    vramBoBytes: drm.vram.boBytes,
    chunks: dmem.chunks.map((c, index) => ({
      index,
      boOffset: c.bo.offset,
      boSize: c.bo.size,
      startPfn: c.pagemap.startPfn,
      endPfn: c.pagemap.endPfn,
      callocated: c.callocated,
      isLarge: c.isLarge,
      freePages: perChunk.get(c)?.pages ?? 0,
      freeFolios: perChunk.get(c)?.folios ?? 0,
    })),
    freePages: pages.length,
    freePagesHead: pages.slice(0, sample),
    freeFolios: folios.length,
    freeFoliosHead: folios.slice(0, sample),
    copyLaunches: engine.launches,
    linesCopied: engine.linesCopied,
    clears: engine.clears,
  };
}

/**
 * Models dumping the GPU page tables of an SVMM over [start, end) (what nvkm's PFNMAP entries
 * map): every valid entry overlapping the range, in address order, with page size and aperture.
 */
export function gpuPtEntries(svmm: NouveauSvmm, start: number, end: number): GpuPte[] {
  return svmm.vmm.entries().filter((e) => e.va < end && e.va + 2 ** e.pageShift > start);
}

/** Models `page_pgmap(page)->owner == drm->dev` for tools: is pfn a page of some nouveau GPU's VRAM? */
export function isNouveauDevicePfn(core: Core, pfn: number): boolean {
  return core.map.valid(pfn) && pageDevPagemap(core, pfn)?.name === NOUVEAU_DMEM_PGMAP_NAME;
}

/** Models nouveau_dmem_page_addr() for a VRAM byte address: the device pfn backing it, or -1. */
export function nouveauVramAddrToPfn(drm: NouveauDrm, vramAddr: number): number {
  for (const c of drm.dmem?.chunks ?? []) {
    if (vramAddr >= c.bo.offset && vramAddr < c.bo.offset + c.bo.size)
      return c.pagemap.startPfn + Math.floor((vramAddr - c.bo.offset) / PAGE_SIZE);
  }
  return -1;
}
