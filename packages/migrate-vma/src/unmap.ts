import {
  type Core,
  folioGet,
  folioIsZoneDevice,
  folioMapcount,
  folioMapped,
  folioPut,
  folioTestAnon,
  folioUnlock,
  isKGen,
  type KGen,
  PG_lru,
  PG_swapcache,
  RESCHED,
  removeMigrationPtes,
  tryToMigrateNoWait,
} from '@hmm-model/mm-core';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  migratePfnToPage,
  mpfnClear,
  mpfnFlags,
  mpfnSet,
} from './types.js';

/**
 * Models migrate_vma_check_page(): the folio holds no references beyond its mappings, the
 * migration's own, the fault handler's (if this is the fault page), ZONE_DEVICE's extra one
 * and, for a page-cache or swap-cache folio, the cache's (folio_mapping() != NULL:
 * 1 + folio_has_private(), and no folio of this model has private data).
 */
export function migrateVmaCheckPage(core: Core, page: number, faultPage: number): boolean {
  const m = core.map;
  const folio = m.head[page];
  // The kernel compares pages (page == fault_page); the model compares folios, which is the same
  // for everything v6.19 collects (order-0 pages, and PMD faults whose fault page is the head)
  // and right for a whole PTE-mapped device mTHP faulted through a tail page (mthp.ts).
  let extra = 1 + (faultPage >= 0 && m.head[faultPage] === folio ? 1 : 0);
  if (folioIsZoneDevice(core, folio)) extra++;
  // folio_mapping() is also non-NULL for an anonymous folio in the swap cache (the swap
  // address space); the cache holds one reference per page, counted once here as in the kernel.
  if ((!folioTestAnon(core, folio) && m.mapping[folio] !== 0) || m.flags[folio] & PG_swapcache) extra++;
  return m.refcount[folio] - extra <= folioMapcount(core, folio);
}

/** Models folio_isolate_lru(): take the folio off the LRU with a reference. */
function folioIsolateLru(core: Core, folio: number): boolean {
  const m = core.map;
  if (!(m.flags[folio] & PG_lru)) return false;
  m.flags[folio] &= ~PG_lru;
  folioGet(core, folio);
  return true;
}

/** Models folio_putback_lru(): back on the LRU, dropping the isolation reference. */
function folioPutbackLru(core: Core, folio: number): void {
  core.map.flags[folio] |= PG_lru;
  folioPut(core, folio);
}

/**
 * Models migrate_device_unmap() (mm/migrate_device.c): isolate system folios from the LRU,
 * unmap every remaining mapping with try_to_migrate(), check for extra references, and restore
 * the folios that cannot migrate. Returns the number of units still migrating.
 */
export function* migrateDeviceUnmap(
  core: Core,
  src: Float64Array,
  npages: number,
  faultPage: number,
): KGen<number> {
  const m = core.map;
  const faultFolio = faultPage >= 0 ? m.head[faultPage] : -1;
  let restore = 0;
  let unmapped = 0;
  for (let i = 0; i < npages; ) {
    if (src[i] === 0) {
      i++;
      continue;
    }
    const page = migratePfnToPage(src[i]);
    let nr = 1;
    if (page < 0) {
      if (mpfnFlags(src[i]) & MIGRATE_PFN_MIGRATE) unmapped++;
      i += nr;
      continue;
    }
    const folio = m.head[page];
    nr = m.folioNrPages(folio);
    if (nr > 1) src[i] = mpfnSet(src[i], MIGRATE_PFN_COMPOUND);
    if (!folioIsZoneDevice(core, folio)) {
      if (!folioIsolateLru(core, folio)) {
        src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
        restore++;
        i += nr;
        continue;
      }
      folioPut(core, folio);
    }
    if (folioMapped(core, folio)) {
      const r = tryToMigrateNoWait(core, folio, 0);
      if (isKGen(r)) yield* r;
    }
    if (folioMapped(core, folio) || !migrateVmaCheckPage(core, page, faultPage)) {
      if (!folioIsZoneDevice(core, folio)) {
        folioGet(core, folio);
        folioPutbackLru(core, folio);
      }
      src[i] = mpfnClear(src[i], MIGRATE_PFN_MIGRATE);
      restore++;
      i += nr;
      continue;
    }
    unmapped++;
    i += nr;
    if (core.sched.condResched('migrate_device_unmap: next folio')) yield RESCHED;
  }
  for (let i = 0; i < npages && restore; i++) {
    const page = migratePfnToPage(src[i]);
    if (page < 0 || mpfnFlags(src[i]) & MIGRATE_PFN_MIGRATE) continue;
    const folio = m.head[page];
    yield* removeMigrationPtes(core, folio, folio);
    src[i] = 0;
    if (faultFolio !== folio) folioUnlock(core, folio);
    folioPut(core, folio);
    restore--;
  }
  return unmapped;
}
