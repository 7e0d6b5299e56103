/**
 * Eviction: moving every page of the toy GPU's VRAM back to system memory without knowing which
 * processes map it, with the pfn-based migrate_device_range() API (dmirror_device_evict_chunk(),
 * nouveau_dmem_evict_chunk()). A driver does this before memunmap_pages() on unload.
 */

import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnToPage,
  mpfnFlags,
} from '@hmm-model/migrate-vma';
import { allocFolio, folioLock, HPAGE_PMD_NR, type KGen } from '@hmm-model/mm-core';
import type { ToyGpu } from './gpu.js';

/** Model-only (no kernel symbol): the outcome of one eviction. */
export interface EvictResult {
  /** Units migrate_device_range() selected (a device THP counts once). */
  collected: number;
  /** Units that moved to system memory. */
  evicted: number;
  /** Units that stayed (no system memory for them). */
  stayed: number;
}

/**
 * Models dmirror_device_evict_chunk(): migrate_device_range() over the whole pgmap selects every
 * allocated device folio (locked, unmapped to migration entries); for each, a locked system
 * destination of the same size with the data copied (MIGRATE_PFN_COMPOUND for a THP: the pfn
 * API cannot split, so a compound source needs a compound destination), then
 * migrate_device_pages() and migrate_device_finalize(), which put the device folios (folio_free).
 */
export function* evictAllGen(gpu: ToyGpu): KGen<EvictResult> {
  const core = gpu.core;
  const m = core.map;
  const npages = gpu.pgmap.endPfn - gpu.pgmap.startPfn;
  const src = new Float64Array(npages);
  const dst = new Float64Array(npages);
  const res: EvictResult = { collected: 0, evicted: 0, stayed: 0 };
  yield* migrateDeviceRange(core, src, gpu.pgmap.startPfn, npages);
  yield 'toy_gpu_evict: after migrate_device_range';
  for (let i = 0; i < npages; i++) {
    if (!(mpfnFlags(src[i]) & MIGRATE_PFN_MIGRATE)) continue;
    res.collected++;
    const spfn = migratePfnToPage(src[i]);
    const order = m.folioOrder(m.head[spfn]);
    const d = allocFolio(core, order, false);
    if (d < 0) {
      res.stayed++;
      continue;
    }
    folioLock(core, d);
    gpu.copyFromVram(d, spfn, 2 ** order);
    dst[i] = migratePfn(d) + (order ? MIGRATE_PFN_COMPOUND : 0);
    if (order) i += HPAGE_PMD_NR - 1;
  }
  yield* migrateDevicePages(core, src, dst, npages);
  for (let i = 0; i < npages; i++)
    if (migratePfnToPage(dst[i]) >= 0 && mpfnFlags(src[i]) & MIGRATE_PFN_MIGRATE) res.evicted++;
  yield* migrateDeviceFinalize(core, src, dst, npages);
  return res;
}
