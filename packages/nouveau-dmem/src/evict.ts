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
import {
  allocFolio,
  allocFolioNoFail,
  borrowPfnArray,
  folioMapped,
  type KGen,
  RESCHED,
  returnPfnArray,
} from '@hmm-model/mm-core';
import { memunmapPages } from '@hmm-model/zone-device';
import { freeListPfns, nouveauDmemCopyFolio, nouveauWarn } from './dmem.js';
import type { NouveauDmemChunk, NouveauDrm } from './types.js';

/** Models a device folio nouveau_dmem_evict_chunk() left behind (memunmap_pages() would wait on it). */
export interface NotEvicted {
  /** Head pfn of the device folio. */
  readonly pfn: number;
  readonly order: number;
  /** Still mapped by some process (a device-private PMD or PTEs). */
  readonly mapped: boolean;
}

/** Models the outcome of one nouveau_dmem_evict_chunk() (counts the kernel does not keep). */
export interface EvictResult {
  /** Units selected by migrate_device_range() (src slots with MIGRATE). */
  collected: number;
  /** Units that moved to system memory. */
  evicted: number;
  /** Units migrate_device_pages() refused (the device folio stays where it was). */
  refused: number;
}

/**
 * Models nouveau_dmem_evict_chunk(): migrate_device_range() over the chunk's whole pagemap; for
 * every selected unit allocate a system destination — a folio of the source's order when the
 * slot is COMPOUND (no __GFP_NOFAIL, no NULL check in the kernel), else an order-0 page with
 * __GFP_NOFAIL — copy the whole source folio with the copy engine, then migrate_device_pages(),
 * fence, migrate_device_finalize().
 *
 * As merged, the destination slot is written as migrate_pfn(pfn) *without* MIGRATE_PFN_COMPOUND
 * even for a compound source. The pfn-based core (no VMA, so no split) refuses a compound source
 * with a small destination, so a device THP is not evicted: it stays mapped on the device and
 * the order-9 system folio is freed again. `drm.options.evictCompoundFixed` sets COMPOUND (as
 * dmirror_device_evict_chunk() does) and the THP moves.
 */
export function nouveauDmemEvictChunk(chunk: NouveauDmemChunk): EvictResult {
  return chunk.drm.core.sched.runSync(nouveauDmemEvictChunkGen(chunk), 'nouveau_dmem_evict_chunk');
}

/** The kernel path of {@link nouveauDmemEvictChunk}, for tasks. */
export function* nouveauDmemEvictChunkGen(chunk: NouveauDmemChunk): KGen<EvictResult> {
  const npages = chunk.pagemap.endPfn - chunk.pagemap.startPfn;
  const src = borrowPfnArray(npages);
  const dst = borrowPfnArray(npages);
  try {
    return yield* evictChunkPfns(chunk, src, dst);
  } finally {
    returnPfnArray(src);
    returnPfnArray(dst);
  }
}

/** nouveauDmemEvictChunkGen() with its src/dst arrays (kvcalloc()ed by the caller). */
function* evictChunkPfns(chunk: NouveauDmemChunk, src: Float64Array, dst: Float64Array): KGen<EvictResult> {
  const drm = chunk.drm;
  const core = drm.core;
  const m = core.map;
  const npages = chunk.pagemap.endPfn - chunk.pagemap.startPfn;
  const res: EvictResult = { collected: 0, evicted: 0, refused: 0 };
  yield* migrateDeviceRange(core, src, chunk.pagemap.startPfn, npages);
  if (core.sched.preempt('nouveau_dmem_evict_chunk: after migrate_device_range')) yield RESCHED;
  for (let i = 0; i < npages; i++) {
    if (!(mpfnFlags(src[i]) & MIGRATE_PFN_MIGRATE)) continue;
    res.collected++;
    const folio = m.head[migratePfnToPage(src[i])];
    const order = m.folioOrder(folio);
    const compound = (mpfnFlags(src[i]) & MIGRATE_PFN_COMPOUND) !== 0;
    let dpage: number;
    if (compound) {
      dpage = allocFolio(core, order, false);
      if (dpage < 0) {
        // The kernel dereferences the NULL folio here; the model leaves the unit in place.
        nouveauWarn(
          drm,
          `nouveau_dmem_evict_chunk: order-${order} folio_alloc failed (NULL dereference in the kernel)`,
        );
        continue;
      }
    } else {
      // alloc_page(GFP_HIGHUSER | __GFP_NOFAIL): reclaim and the OOM killer until a page comes.
      dpage = yield* allocFolioNoFail(core, 0, false, 'nouveau_dmem_evict_chunk');
    }
    dst[i] = migratePfn(dpage) + (compound && drm.options.evictCompoundFixed ? MIGRATE_PFN_COMPOUND : 0);
    nouveauDmemCopyFolio(drm, folio, dpage);
  }
  if (core.sched.preempt('nouveau_dmem_evict_chunk: copies issued, before migrate_device_pages'))
    yield RESCHED;
  yield* migrateDevicePages(core, src, dst, npages);
  for (let i = 0; i < npages; i++) {
    if (migratePfnToPage(dst[i]) < 0) continue;
    if (mpfnFlags(src[i]) & MIGRATE_PFN_MIGRATE) res.evicted++;
    else res.refused++;
  }
  yield* migrateDeviceFinalize(core, src, dst, npages);
  return res;
}

/** Models the outcome of nouveau_dmem_fini(): evictions, what was left behind, chunks torn down. */
export interface FiniResult {
  /** Per-chunk eviction results, in list order. */
  readonly evictions: EvictResult[];
  /** Device folios still allocated after eviction (what could not be evicted). */
  readonly notEvicted: NotEvicted[];
  /** Chunks torn down (memunmap_pages() completed). */
  readonly chunksFreed: number;
  /**
   * Chunks whose memunmap_pages() would wait forever in the kernel (device pages still
   * allocated); the model leaves them registered so the pages stay usable, and a later
   * fini can finish the job.
   */
  readonly chunksStuck: number;
}

function liveFolios(chunk: NouveauDmemChunk): NotEvicted[] {
  const core = chunk.drm.core;
  const m = core.map;
  const out: NotEvicted[] = [];
  for (let p = chunk.pagemap.startPfn; p < chunk.pagemap.endPfn; ) {
    const n = m.head[p] === p ? m.folioNrPages(p) : 1;
    if (m.head[p] === p && m.refcount[p] > 0)
      out.push({ pfn: p, order: m.folioOrder(p), mapped: folioMapped(core, p) });
    p += n;
  }
  return out;
}

/**
 * Models nouveau_dmem_fini(): for every chunk, evict it, unpin its buffer object, WARN if
 * callocated is not zero, then memunmap_pages() and release the region. Where the kernel would
 * block forever in memunmap_pages() (pages still allocated: a device THP the buggy eviction
 * could not move, or pages of an svmm that is still running), the model reports the chunk as
 * stuck, keeps it (and its BO) alive and returns what could not be evicted.
 */
export function nouveauDmemFini(drm: NouveauDrm): FiniResult {
  const res = drm.core.sched.runSync(nouveauDmemFiniGen(drm), 'nouveau_dmem_fini');
  drm.kernel.afterSyscall('nouveau_dmem_fini');
  return res;
}

/** The kernel path of {@link nouveauDmemFini}, for tasks. */
export function* nouveauDmemFiniGen(drm: NouveauDrm): KGen<FiniResult> {
  const dmem = drm.dmem;
  const res = {
    evictions: [] as EvictResult[],
    notEvicted: [] as NotEvicted[],
    chunksFreed: 0,
    chunksStuck: 0,
  };
  if (!dmem) return res;
  for (const chunk of [...dmem.chunks]) {
    res.evictions.push(yield* nouveauDmemEvictChunkGen(chunk));
    if (chunk.callocated !== 0)
      nouveauWarn(drm, `nouveau_dmem_fini: WARN_ON(chunk->callocated) callocated=${chunk.callocated}`);
    const live = liveFolios(chunk);
    if (live.length || chunk.pagemap.refs > 0) {
      res.notEvicted.push(...live);
      res.chunksStuck++;
      continue;
    }
    drm.vram.freeBo(chunk.bo.offset);
    dmem.chunks.splice(dmem.chunks.indexOf(chunk), 1);
    dmem.chunkByPgmap.delete(chunk.pagemap.id);
    // Model-only hygiene: the kernel frees dmem wholesale; here other chunks may live on, so
    // drop this chunk's pages from the free lists before its memmap goes away.
    const inChunk = (p: number) => p >= chunk.pagemap.startPfn && p < chunk.pagemap.endPfn;
    relink(
      drm,
      'freePages',
      freeListPfns(drm, dmem.freePages).filter((p) => !inChunk(p)),
    );
    relink(
      drm,
      'freeFolios',
      freeListPfns(drm, dmem.freeFolios).filter((p) => !inChunk(p)),
    );
    yield* memunmapPages(drm.core, chunk.pagemap);
    res.chunksFreed++;
  }
  return res;
}

function relink(drm: NouveauDrm, list: 'freePages' | 'freeFolios', pfns: number[]): void {
  const dmem = drm.dmem!;
  let head = 0;
  for (let k = pfns.length - 1; k >= 0; k--) {
    drm.core.map.priv[pfns[k]] = head;
    head = pfns[k];
  }
  dmem[list] = head;
}
