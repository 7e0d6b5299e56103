/**
 * The dmirror device's eviction of its chunks (lib/test_hmm.c): dmirror_device_evict_chunk(),
 * dmirror_device_remove_chunks() and the model's fixed variants (evictUntilEmpty, fix K5), which
 * wait for a folio a racing task holds and evict again.
 */
import {
  allocFolio,
  allocFolioNoFail,
  borrowPfnArray,
  folioLock,
  folioMapcount,
  folioWaitLocked,
  KernelBug,
  type KGen,
  PG_head,
  PG_locked,
  PG_tail,
  RESCHED,
  returnPfnArray,
  waitEvent,
} from '@hmm-model/mm-core';
import { isDeviceCoherentPage, isDevicePrivatePage, memunmapPages } from '@hmm-model/zone-device';
import type { DmirrorChunk, DmirrorDevice } from './device.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_WRITE,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnToPage,
  mpfnFlags,
} from './kapi.js';

/**
 * Models dmirror_device_evict_chunk(): migrate every allocated page of the chunk back to
 * system memory with the pfn-based API; compound sources get a system folio of the same order
 * (compound destination), small ones an order-0 NOFAIL page; data is copied from the backing
 * page (private) or the device page itself (coherent).
 */
export function* dmirrorDeviceEvictChunk(dev: DmirrorDevice, chunk: DmirrorChunk): KGen {
  // No page of the chunk is allocated: migrate_device_range() would lock none and the rest
  // would do nothing (the model skips walking the 65536 empty slots).
  if (chunk.pagemap.refs === 0) return;
  const first = chunk.pagemap.startPfn;
  const npages = chunk.pagemap.endPfn - first;
  const src = borrowPfnArray(npages);
  const dst = borrowPfnArray(npages);
  try {
    // Likewise the free base pages before the first allocated page and after the last one:
    // their slots stay empty and every pass skips them. The model evicts from the first
    // allocated page to the slot after the last one (so that finalize still reaches its
    // "next slot" point after the last page): the same folios, in the same order, with the
    // same preemption points.
    const [lo, hi] = usedSlots(dev, first, npages);
    const n = Math.min(npages, hi + 1) - lo;
    yield* evictChunkPfns(dev, first + lo, n, src.subarray(0, n), dst.subarray(0, n));
  } finally {
    returnPfnArray(src);
    returnPfnArray(dst);
  }
}

/**
 * Model-only (dmirror_device_evict_chunk()'s range): the slots [lo, hi) of pfns [first, first +
 * npages) outside of which every page is a free base page (no reference, not part of a folio):
 * migrate_device_range() locks none of them.
 */
export function usedSlots(dev: DmirrorDevice, first: number, npages: number): [number, number] {
  const m = dev.core.map;
  const single = PG_head | PG_tail;
  // Below the chunk's untouched end nothing was ever handed out.
  const chunk = dev.chunkOf(first);
  let lo = chunk ? Math.max(0, Math.min(npages, chunk.untouchedEnd - first)) : 0;
  while (lo < npages && m.refcount[first + lo] === 0 && !(m.flags[first + lo] & single)) lo++;
  let hi = npages;
  while (hi > lo && m.refcount[first + hi - 1] === 0 && !(m.flags[first + hi - 1] & single)) hi--;
  return [lo, hi];
}

/** dmirror_device_evict_chunk() of pfns [start, start + npages) with its src/dst arrays (kvcalloc()ed by the caller). */
function* evictChunkPfns(
  dev: DmirrorDevice,
  start: number,
  npages: number,
  src: Float64Array,
  dst: Float64Array,
): KGen {
  const core = dev.core;
  const m = core.map;
  yield* migrateDeviceRange(core, src, start, npages);
  if (core.sched.preempt('dmirror_device_evict_chunk: after migrate_device_range')) yield RESCHED;
  for (let i = 0; i < npages; i++) {
    if (src[i] === 0) continue;
    const f = mpfnFlags(src[i]);
    let spage = migratePfnToPage(src[i]);
    if (spage < 0 || !(f & MIGRATE_PFN_MIGRATE)) continue;
    if (!isDevicePrivatePage(core, spage) && !isDeviceCoherentPage(core, spage)) {
      core.warn(`dmirror_device_evict_chunk: pfn 0x${spage.toString(16)} is not a device page`);
      continue;
    }
    let order = m.folioOrder(m.head[spage]);
    spage = dev.backingPage(spage);
    let dpage: number;
    if (f & MIGRATE_PFN_COMPOUND) {
      dpage = allocFolio(core, order, false);
      if (dpage < 0 && !core.fixed('K19'))
        throw new KernelBug('dmirror_device_evict_chunk', 'NULL pointer dereference: folio_alloc() failed');
      if (dpage < 0) {
        // K19 (fix switch; v6.19: "TODO Support splitting here"): a small __GFP_NOFAIL page per
        // subpage, and migrate_device_pages() splits the device folio.
        const backing = m.head[spage];
        for (let k = 0; k < 1 << order; k++) {
          const p = yield* allocFolioNoFail(core, 0, false, 'dmirror_device_evict_chunk');
          folioLock(core, p);
          dst[i + k] = migratePfn(p) + (f & MIGRATE_PFN_WRITE ? MIGRATE_PFN_WRITE : 0);
          core.frames.copy(p, backing + k, 1);
        }
        continue;
      }
    } else {
      // alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL): reclaim and the OOM killer until a page comes.
      dpage = yield* allocFolioNoFail(core, 0, false, 'dmirror_device_evict_chunk');
      order = 0;
    }
    folioLock(core, dpage);
    let d = migratePfn(dpage);
    if (f & MIGRATE_PFN_WRITE) d += MIGRATE_PFN_WRITE;
    if (order) d += MIGRATE_PFN_COMPOUND;
    dst[i] = d;
    // Models folio_copy(dst folio, backing folio): folio_nr_pages(dst) pages.
    core.frames.copy(dpage, m.head[spage], 1 << order);
  }
  if (core.sched.preempt('dmirror_device_evict_chunk: after the copy')) yield RESCHED;
  yield* migrateDevicePages(core, src, dst, npages, core.fixed('K19'));
  yield* migrateDeviceFinalize(core, src, dst, npages);
}

/**
 * Models dmirror_device_remove_chunks() (HMM_DMIRROR_RELEASE, device release): for each chunk
 * mark it removed, drop its free pages, evict it, memunmap_pages() it (which waits until every
 * page is free: a page that cannot be evicted is a ModelBug), then forget all chunks and lists.
 */
export function* dmirrorDeviceRemoveChunks(dev: DmirrorDevice): KGen {
  yield* dev.devmemLock.lock(dev.core.sched, 'dmirror_device_remove_chunks');
  try {
    for (const chunk of dev.chunks) {
      chunk.remove = true;
      dev.removeFreePages(chunk);
      yield* dmirrorDeviceEvictChunk(dev, chunk);
      // migrate_device_range() skips folios it cannot trylock: a migration in flight keeps
      // them, and memunmap_pages() below waits for them forever. The fixed variant waits for
      // the lock and evicts again.
      if (dev.evictUntilEmpty)
        yield* evictAgain(dev, 'dmirror chunk removal: folio locked by a migration', () =>
          leftIn(dev, chunk),
        );
      yield* memunmapPages(dev.core, chunk.pagemap);
      dev.forgetChunk(chunk);
    }
    dev.forgetAllChunks();
  } finally {
    dev.devmemLock.unlock(dev.core.sched, 'dmirror_device_remove_chunks');
  }
}

/**
 * Fix K5 (README, Findings): after dmirror_fops_release()'s one eviction pass, the pages of
 * this device that still name mirror `id` in their backing page's zone_device_data (pages a
 * racing fault or migration held locked, which migrate_device_range() skipped): wait for the
 * lock and evict their chunk again, until none is left or a pass makes no progress.
 */
export function* dmirrorEvictNamed(dev: DmirrorDevice, id: number): KGen {
  yield* evictAgain(dev, 'dmirror_fops_release: folio locked by a fault', () => {
    const m = dev.core.map;
    let left = 0;
    let locked = 0;
    let busy = 0;
    let first: DmirrorChunk | null = null;
    for (const chunk of dev.chunks) {
      if (chunk.pagemap.refs === 0) continue;
      for (const p of namedHeads(dev, chunk, id)) {
        left++;
        first ??= chunk;
        if (!locked && m.flags[p] & PG_locked) locked = p;
        // A reference beyond the mappings: another task (a collection that try-locks after its
        // folio_get(), a fault) holds the folio for a moment, so the migration's refcount
        // check failed; its holder drops it soon.
        if (!busy && m.refcount[p] > folioMapcount(dev.core, p)) busy = p;
      }
    }
    return first ? { left, locked, busy, chunk: first } : null;
  });
}

/**
 * Model-only: the fixed evictions' retry loop. `pending()` says how many pages are left, a
 * locked one (0 if none) and the chunk to evict again, or null when none is left: wait for the
 * locked page, evict the chunk again, and give up when a pass leaves as many pages as before.
 */
function* evictAgain(
  dev: DmirrorDevice,
  site: string,
  pending: () => { left: number; locked: number; busy?: number; chunk: DmirrorChunk } | null,
): KGen {
  const m = dev.core.map;
  for (let before = Number.POSITIVE_INFINITY; ; ) {
    const p = pending();
    if (!p) return;
    if (p.locked) yield* folioWaitLocked(dev.core, p.locked, site);
    else if (p.busy) {
      // Wait until the extra reference is dropped (or the folio changes) rather than give up.
      const busy = p.busy;
      const ref = m.refcount[busy];
      yield* waitEvent(
        `${site}: extra folio reference`,
        () => m.refcount[busy] !== ref || m.head[busy] !== busy,
      );
    } else if (p.left >= before) return;
    before = p.left;
    yield* dmirrorDeviceEvictChunk(dev, p.chunk);
  }
}

/** Model-only: the allocated folio heads of `chunk` whose backing page names mirror `id`. */
function* namedHeads(dev: DmirrorDevice, chunk: DmirrorChunk, id: number): Generator<number> {
  const m = dev.core.map;
  for (let p = chunk.untouchedEnd; p < chunk.pagemap.endPfn; p++) {
    if (m.head[p] !== p || m.refcount[p] === 0) continue;
    const r = dev.backingPage(p);
    if (r && m.priv[m.head[r]] === id) yield p;
  }
}

/**
 * Model-only: what a removal pass left in `chunk` (null when nothing): how many pages, a
 * locked folio head (a migration in flight holds it), and a head with a reference beyond its
 * mappings (another task between its folio_get() and its trylock, a fault: the eviction's
 * refcount check failed and the holder drops it soon); 0 when none. One walk of the chunk.
 */
function leftIn(
  dev: DmirrorDevice,
  chunk: DmirrorChunk,
): { left: number; locked: number; busy: number; chunk: DmirrorChunk } | null {
  if (chunk.pagemap.refs === 0) return null;
  const m = dev.core.map;
  let locked = 0;
  let busy = 0;
  for (let p = chunk.untouchedEnd; p < chunk.pagemap.endPfn && !locked; p++) {
    if (m.head[p] !== p || m.refcount[p] === 0) continue;
    if (m.flags[p] & PG_locked) locked = p;
    else if (!busy && m.refcount[p] > folioMapcount(dev.core, p)) busy = p;
  }
  return { left: chunk.pagemap.refs, locked, busy, chunk };
}
