import {
  allocFolio,
  type Core,
  folioLock,
  folioLockWait,
  folioPut,
  folioTryGet,
  folioTrylock,
  type KGen,
  PG_head,
  PG_tail,
  setGupHooks,
} from '@hmm-model/mm-core';
import { migrateDeviceFinalizeCore } from './finalize.js';
import { migrationBeginPfns, migrationCollected, migrationEnd, migrationPagesDone } from './inflight.js';
import { migrateDevicePagesCore } from './pages.js';
import { MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, migratePfn, mpfnFlags, mpfnSet } from './types.js';
import { migrateDeviceUnmap } from './unmap.js';

/**
 * Models migrate_device_pfn_lock(): reference (only a non-tail page with references, i.e. an
 * allocated folio head) and trylock; the slot, or 0.
 */
function pfnLock(core: Core, pfn: number): number {
  const m = core.map;
  if (m.flags[pfn] & PG_tail) return 0;
  if (!folioTryGet(core, pfn)) return 0;
  if (!folioTrylock(core, pfn)) {
    folioPut(core, pfn);
    return 0;
  }
  return migratePfn(pfn) + MIGRATE_PFN_MIGRATE;
}

function lockAll(core: Core, src: Float64Array, pfnAt: (i: number) => number, npages: number): void {
  const m = core.map;
  const single = PG_head | PG_tail;
  for (let i = 0; i < npages; i++) {
    const pfn = pfnAt(i);
    // A free base page (most of an evicted chunk): no reference to take, nothing to lock.
    if (m.refcount[pfn] === 0 && !(m.flags[pfn] & single)) {
      src[i] = 0;
      continue;
    }
    src[i] = pfnLock(core, pfn);
    const nr = m.folioNrPages(m.head[pfn]);
    if (nr > 1) {
      src[i] = mpfnSet(src[i], MIGRATE_PFN_COMPOUND);
      for (let j = 1; j < nr && i + j < npages; j++) src[i + j] = 0;
      i += nr - 1;
    }
  }
}

/**
 * Models migrate_device_range(): lock and unmap every allocated device folio of
 * [start, start + npages) for migration to system memory (eviction). Always 0.
 */
export function* migrateDeviceRange(
  core: Core,
  src: Float64Array,
  start: number,
  npages: number,
): KGen<number> {
  migrationBeginPfns(core, src, npages);
  lockAll(core, src, (i) => start + i, npages);
  yield* unmapAndRecord(core, src, npages);
  return 0;
}

/** migrate_device_unmap() for the pfn-based API, recording the migration while pages stay locked. */
function* unmapAndRecord(core: Core, src: Float64Array, npages: number): KGen {
  if (yield* migrateDeviceUnmap(core, src, npages, -1)) migrationCollected(core, src);
  else migrationEnd(core, src);
}

/** Models migrate_device_pfns(): like migrate_device_range() for a pre-filled, non-contiguous pfn list. */
export function* migrateDevicePfns(core: Core, src: Float64Array, npages: number): KGen<number> {
  const pfns = Array.from(src.subarray(0, npages));
  migrationBeginPfns(core, src, npages);
  lockAll(core, src, (i) => pfns[i], npages);
  yield* unmapAndRecord(core, src, npages);
  return 0;
}

/**
 * Models migrate_device_pages(): migrate_vma_pages() without a VMA (holes impossible; a compound
 * source with a small destination is refused). `splitUnmapped` (model-only, for fix K19 of
 * dmirror_device_evict_chunk()) splits such a source instead.
 */
export function* migrateDevicePages(
  core: Core,
  src: Float64Array,
  dst: Float64Array,
  npages: number,
  splitUnmapped = false,
): KGen {
  yield* migrateDevicePagesCore(core, src, dst, npages, null, splitUnmapped);
  migrationPagesDone(core, src, dst);
}

/** Models migrate_device_finalize(). */
export function* migrateDeviceFinalize(
  core: Core,
  src: Float64Array,
  dst: Float64Array,
  npages: number,
): KGen {
  yield* migrateDeviceFinalizeCore(core, src, dst, npages, -1);
  migrationEnd(core, src);
}

/**
 * Models migrate_device_coherent_folio(): move one small device-coherent folio (the caller holds
 * a reference, which the migration consumes) back to system memory. 0 or -EBUSY.
 *
 * v6.19 handles small folios only (WARN_ON_ONCE(folio_test_large())), then migrates the head
 * page's slot alone, which fails for a large folio: a long-term pin of a large device-coherent
 * folio warns and fails (-ENOMEM from GUP). With fix switch K14 a large folio is migrated whole,
 * to a system folio of its order (MIGRATE_PFN_COMPOUND on both sides), or -EBUSY when none can
 * be allocated.
 */
export function* migrateDeviceCoherentFolio(core: Core, folio: number): KGen<number> {
  const large = core.map.folioNrPages(folio);
  const whole = large > 1 && core.fixed('K14');
  if (large > 1 && !whole) core.warn('migrate_device_coherent_folio: large folio');
  const nr = whole ? large : 1;
  yield* folioLockWait(core, folio, 'migrate_device_coherent_folio');
  const src = new Float64Array(nr);
  const dst = new Float64Array(nr);
  src[0] = migratePfn(folio) + MIGRATE_PFN_MIGRATE;
  if (whole) src[0] = mpfnSet(src[0], MIGRATE_PFN_COMPOUND);
  migrationBeginPfns(core, src, nr);
  yield* unmapAndRecord(core, src, nr);
  if (!(mpfnFlags(src[0]) & MIGRATE_PFN_MIGRATE)) return -16;
  const d = allocFolio(core, whole ? core.map.folioOrder(folio) : 0, false);
  if (d >= 0) {
    folioLock(core, d);
    dst[0] = whole ? mpfnSet(migratePfn(d), MIGRATE_PFN_COMPOUND) : migratePfn(d);
  }
  yield* migrateDevicePages(core, src, dst, nr);
  if (mpfnFlags(src[0]) & MIGRATE_PFN_MIGRATE) core.frames.copy(d, folio, nr);
  yield* migrateDeviceFinalize(core, src, dst, nr);
  return mpfnFlags(src[0]) & MIGRATE_PFN_MIGRATE ? 0 : -16;
}

/**
 * Models the link from check_and_migrate_movable_folios() (mm/gup.c) to
 * migrate_device_coherent_folio(): installs it as mm core's GUP hook for long-term pins of
 * coherent pages. Drivers call it when they register device memory.
 */
export function migrateDeviceInit(core: Core): void {
  setGupHooks(core, { migrateDeviceCoherentFolio: (c, f) => migrateDeviceCoherentFolio(c, f) });
}
