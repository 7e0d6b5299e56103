import { EIO, folioLock, folioPut, folioUnlock, MEMORY_DEVICE_PRIVATE, PAGE_SIZE } from '@hmm-model/mm-core';
import {
  folioSetZoneDeviceData,
  folioZoneDeviceData,
  memremapPages,
  pageDevPagemap,
  zoneDeviceFolioInit,
} from '@hmm-model/zone-device';
import {
  DMEM_CHUNK_NPAGES,
  DMEM_CHUNK_SIZE,
  DMEM_FOLIO_ORDER,
  DMEM_PAGEMAP_NPAGES,
  NOUVEAU_APER_HOST,
  NOUVEAU_APER_VRAM,
  NR_CHUNKS,
} from './constants.js';
import type { NouveauDmem, NouveauDmemChunk, NouveauDrm } from './types.js';

/**
 * Models CONFIG_TRANSPARENT_HUGEPAGE as nouveau_dmem_chunk_alloc() and
 * nouveau_dmem_migrate_vma() test it: the modelled kernel is built with THP.
 */
export const CONFIG_TRANSPARENT_HUGEPAGE = true;

/** Models WARN_ON() in the driver: recorded on the drm and on the machine. */
export function nouveauWarn(drm: NouveauDrm, message: string): void {
  drm.warnings.push({ message });
  drm.core.warn(message);
}

/** Models dereferencing drm->dmem (callers have checked it is not NULL). */
export function dmemOf(drm: NouveauDrm): NouveauDmem {
  if (!drm.dmem) throw new Error('nouveau: drm->dmem is NULL');
  return drm.dmem;
}

/**
 * Models nouveau_page_to_chunk() (container_of(page_pgmap(page), struct nouveau_dmem_chunk,
 * pagemap)): the chunk whose pagemap holds pfn, or undefined for a foreign page.
 */
export function nouveauPageToChunk(drm: NouveauDrm, pfn: number): NouveauDmemChunk | undefined {
  const pgmap = pageDevPagemap(drm.core, pfn);
  return pgmap ? drm.dmem?.chunkByPgmap.get(pgmap.id) : undefined;
}

/**
 * Models nouveau_dmem_page_addr(): the VRAM address of a device page, chunk->bo->offset plus the
 * page's byte offset inside the chunk's pagemap.
 */
export function nouveauDmemPageAddr(drm: NouveauDrm, pfn: number): number {
  const chunk = nouveauPageToChunk(drm, pfn);
  if (!chunk)
    throw new Error(`nouveau_dmem_page_addr: pfn 0x${pfn.toString(16)} is not a nouveau device page`);
  return chunk.bo.offset + (pfn - chunk.pagemap.startPfn) * PAGE_SIZE;
}

function pushPage(dmem: NouveauDmem, pfn: number): void {
  dmem.drm.core.map.priv[pfn] = dmem.freePages;
  dmem.freePages = pfn;
}

function pushFolio(dmem: NouveauDmem, pfn: number): void {
  dmem.drm.core.map.priv[pfn] = dmem.freeFolios;
  dmem.freeFolios = pfn;
}

/** Models walking dmem->free_pages / free_folios through page->zone_device_data (0 = NULL). */
export function freeListPfns(drm: NouveauDrm, head: number, limit = Number.POSITIVE_INFINITY): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  for (let p = head; p !== 0 && out.length < limit; p = drm.core.map.priv[p]) {
    if (seen.has(p)) break;
    seen.add(p);
    out.push(p);
  }
  return out;
}

/**
 * Models nouveau_dmem_folio_free() (dev_pagemap_ops.folio_free): push the freed folio onto
 * free_folios if it is large, else onto free_pages, and decrement the owning chunk's callocated
 * (WARN_ON(!chunk->callocated) first: the decrement happens anyway, as in the kernel).
 */
export function nouveauDmemFolioFree(drm: NouveauDrm, head: number, order: number): void {
  const chunk = nouveauPageToChunk(drm, head);
  const dmem = dmemOf(drm);
  if (!chunk) throw new Error(`nouveau_dmem_folio_free: pfn 0x${head.toString(16)} has no chunk`);
  if (order) pushFolio(dmem, head);
  else pushPage(dmem, head);
  if (chunk.callocated === 0)
    nouveauWarn(drm, `nouveau_dmem_folio_free: WARN_ON(!chunk->callocated) pfn 0x${head.toString(16)}`);
  chunk.callocated--;
}

/**
 * Models nouveau_dmem_folio_split() (dev_pagemap_ops.folio_split): for each new folio of a split
 * device THP copy pgmap, mapping and the head's zone_device_data (the svmm) into it, and count it
 * in its chunk's callocated (the 2026 fix "drm/nouveau/dmem: fix callocated underflow on large
 * folio split"; bug F30 restores v6.19, where the THP was counted once but freed 512 times);
 * nothing on the final call (tail == NULL, -1 here).
 */
export function nouveauDmemFolioSplit(drm: NouveauDrm, head: number, tail: number): void {
  if (tail < 0) return;
  const m = drm.core.map;
  m.pgmap[tail] = m.pgmap[head];
  m.mapping[tail] = m.mapping[head];
  folioSetZoneDeviceData(drm.core, tail, folioZoneDeviceData(drm.core, head));
  if (!drm.core.bug('F30')) {
    const chunk = nouveauPageToChunk(drm, tail);
    if (chunk) chunk.callocated++;
  }
}

/**
 * Models nouveau_dmem_chunk_alloc(drm, &page, is_large): reserve a free physical range of
 * NR_CHUNKS * DMEM_CHUNK_SIZE, pin a VRAM buffer object, memremap_pages() it as
 * MEMORY_DEVICE_PRIVATE owned by drm->dev, then fill the free lists:
 *  - is_large: NR_CHUNKS folio heads at DMEM_CHUNK_NPAGES stride onto free_folios;
 *  - small: for each of the NR_CHUNKS sub-chunks, DMEM_CHUNK_NPAGES - 1 = 511 pages onto
 *    free_pages. The pfn cursor advances only 511 per sub-chunk, so the listed pages are the
 *    65408 contiguous pfns from the start and the last 128 pages of the pagemap are never used
 *    (the kernel's loop quirk, reproduced).
 * Then pop one entry for the caller (callocated = 1). Returns the pfn, or -errno.
 *
 * Simplified: the kernel pins a DMEM_CHUNK_SIZE (2 MiB) buffer object although the pagemap spans
 * 256 MiB, so device addresses past 2 MiB fall outside the BO; the model pins a BO as large as
 * the pagemap so every device page has VRAM behind it (VRAM capacity = opts.vramBytes).
 */
export function nouveauDmemChunkAlloc(drm: NouveauDrm, isLarge: boolean): number {
  const dmem = dmemOf(drm);
  const boSize = NR_CHUNKS * DMEM_CHUNK_SIZE;
  const boOffset = drm.vram.allocBo(boSize);
  if (boOffset < 0) return boOffset;
  const pgmap = memremapPages(drm.core, {
    type: MEMORY_DEVICE_PRIVATE,
    owner: drm.dev,
    ops: drm.ops,
    nrPages: DMEM_PAGEMAP_NPAGES,
    name: 'nouveau_dmem',
  });
  if (typeof pgmap === 'number') {
    drm.vram.freeBo(boOffset);
    return pgmap;
  }
  const chunk: NouveauDmemChunk = {
    drm,
    bo: { offset: boOffset, size: boSize },
    callocated: 0,
    pagemap: pgmap,
    isLarge,
  };
  dmem.chunks.unshift(chunk);
  dmem.chunkByPgmap.set(pgmap.id, chunk);
  let pfn = pgmap.startPfn;
  for (let i = 0; i < NR_CHUNKS; i++) {
    if (!CONFIG_TRANSPARENT_HUGEPAGE || !isLarge) {
      for (let j = 0; j < DMEM_CHUNK_NPAGES - 1; j++, pfn++) pushPage(dmem, pfn);
    } else {
      pushFolio(dmem, pfn);
      pfn += DMEM_CHUNK_NPAGES;
    }
  }
  let page: number;
  if (isLarge) {
    page = dmem.freeFolios;
    dmem.freeFolios = drm.core.map.priv[page];
  } else {
    page = dmem.freePages;
    dmem.freePages = drm.core.map.priv[page];
  }
  chunk.callocated++;
  return page;
}

/**
 * Models nouveau_dmem_page_alloc_locked(drm, is_large): pop a folio head (large) or a page
 * (small) from the matching free list, or build a new chunk; count it in the chunk's callocated
 * and zone_device_folio_init() it with order 9 or 0 (refcount 1, locked). Returns the pfn or
 * -1 (NULL). There is no fallback from a failed large allocation to small pages.
 */
export function nouveauDmemPageAllocLocked(drm: NouveauDrm, isLarge: boolean): number {
  const dmem = dmemOf(drm);
  const m = drm.core.map;
  let page: number;
  let order = 0;
  if (isLarge && dmem.freeFolios) {
    page = dmem.freeFolios;
    dmem.freeFolios = m.priv[page];
    nouveauPageToChunk(drm, page)!.callocated++;
    order = DMEM_FOLIO_ORDER;
  } else if (!isLarge && dmem.freePages) {
    page = dmem.freePages;
    dmem.freePages = m.priv[page];
    nouveauPageToChunk(drm, page)!.callocated++;
  } else {
    page = nouveauDmemChunkAlloc(drm, isLarge);
    if (page < 0) return -1;
    if (isLarge) order = DMEM_FOLIO_ORDER;
  }
  const pgmap = pageDevPagemap(drm.core, page);
  if (!pgmap) throw new Error(`nouveau_dmem_page_alloc_locked: pfn 0x${page.toString(16)} has no pgmap`);
  zoneDeviceFolioInit(drm.core, page, pgmap, order);
  return page;
}

/** Models nouveau_dmem_page_free_locked(): unlock_page() + put_page() of a fresh device page. */
export function nouveauDmemPageFreeLocked(drm: NouveauDrm, pfn: number): void {
  folioUnlock(drm.core, pfn);
  folioPut(drm.core, pfn);
}

/**
 * Models nouveau_dmem_copy_folio(): lock the destination system folio, (DMA-map it,) and copy
 * folio_nr_pages(sfolio) pages from the source device folio's VRAM to it with one copy-engine
 * launch. 0 or -EIO.
 */
export function nouveauDmemCopyFolio(drm: NouveauDrm, sfolio: number, dfolio: number): number {
  folioLock(drm.core, dfolio);
  const nr = drm.core.map.folioNrPages(sfolio);
  const engine = dmemOf(drm).migrate.engine;
  if (
    engine.copy(
      nr,
      NOUVEAU_APER_HOST,
      dfolio * PAGE_SIZE,
      NOUVEAU_APER_VRAM,
      nouveauDmemPageAddr(drm, sfolio),
    )
  )
    return -EIO;
  return 0;
}

/**
 * Model-only (fix K17): nouveau_dmem_copy_one() for each page of device folio `sfolio` into the
 * small system pages `dpages` (locked first, as nouveau_dmem_copy_folio() locks its folio):
 * one copy-engine command per page. 0 or -EIO.
 */
export function nouveauDmemCopyPages(drm: NouveauDrm, sfolio: number, dpages: readonly number[]): number {
  const engine = dmemOf(drm).migrate.engine;
  const base = nouveauDmemPageAddr(drm, sfolio);
  for (let k = 0; k < dpages.length; k++) {
    folioLock(drm.core, dpages[k]);
    if (engine.copy(1, NOUVEAU_APER_HOST, dpages[k] * PAGE_SIZE, NOUVEAU_APER_VRAM, base + k * PAGE_SIZE))
      return -EIO;
  }
  return 0;
}
