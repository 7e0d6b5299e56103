import {
  type Core,
  folioIsZoneDevice,
  folioPut,
  folioUnlock,
  type KGen,
  PG_lru,
  PteWalkCache,
  RESCHED,
  removeMigrationPtes,
  tryRemoveMigrationPtes,
} from '@hmm-model/mm-core';
import { MIGRATE_PFN_MIGRATE, migratePfnToPage, mpfnFlags } from './types.js';

/**
 * Models __migrate_device_finalize() (mm/migrate_device.c): for every slot, replace the
 * migration entries by the new folio (success) or the old one (failure), put system folios
 * back on the LRU, unlock and drop the migration's references on both sides. The fault folio
 * stays locked (its fault handler unlocks it).
 */
export function* migrateDeviceFinalizeCore(
  core: Core,
  src: Float64Array,
  dst: Float64Array,
  npages: number,
  faultPage: number,
): KGen {
  const m = core.map;
  const faultFolio = faultPage >= 0 ? m.head[faultPage] : -1;
  // The page-table walk of the last slot, reused by the next one in the same PMD range until
  // this loop sleeps or reaches its preemption point.
  const walk = new PteWalkCache();
  for (let i = 0; i < npages; i++) {
    // An empty slot (a compound unit's tail, a skipped page) holds neither folio.
    if (src[i] === 0 && dst[i] === 0) continue;
    const newpage = migratePfnToPage(dst[i]);
    const page = migratePfnToPage(src[i]);
    let dstFolio = newpage >= 0 ? m.head[newpage] : -1;
    if (page < 0) {
      if (dstFolio >= 0) {
        if (faultFolio === dstFolio) core.warn('migrate finalize: fault folio used as a destination');
        folioUnlock(core, dstFolio);
        folioPut(core, dstFolio);
      }
      continue;
    }
    const srcFolio = m.head[page];
    if (!(mpfnFlags(src[i]) & MIGRATE_PFN_MIGRATE) || dstFolio < 0) {
      if (dstFolio >= 0) {
        if (faultFolio === dstFolio) core.warn('migrate finalize: fault folio used as a destination');
        folioUnlock(core, dstFolio);
        folioPut(core, dstFolio);
      }
      dstFolio = srcFolio;
    }
    if (!folioIsZoneDevice(core, dstFolio)) m.flags[dstFolio] |= PG_lru;
    // remove_migration_ptes(): at once when the rmap lock is free, else sleeping for it.
    if (!tryRemoveMigrationPtes(core, srcFolio, dstFolio, walk)) {
      walk.reset();
      yield* removeMigrationPtes(core, srcFolio, dstFolio);
    }
    if (faultFolio !== srcFolio) folioUnlock(core, srcFolio);
    folioPut(core, srcFolio);
    if (dstFolio !== srcFolio) {
      if (faultFolio === dstFolio) core.warn('migrate finalize: fault folio used as a destination');
      folioUnlock(core, dstFolio);
      folioPut(core, dstFolio);
    }
    if (i + 1 < npages && core.sched.needResched()) {
      walk.reset();
      if (core.sched.preempt('__migrate_device_finalize: next slot')) yield RESCHED;
    }
  }
}
