import type { Core } from '../core.js';
import { PG_anon } from '../phys/memmap.js';
import type { MmStruct, RssCounters } from './types.js';

/** Models mm_counter(): which rss counter a folio is accounted in. */
export function mmCounter(core: Core, head: number): keyof RssCounters {
  if (core.map.flags[head] & PG_anon) return 'MM_ANONPAGES';
  // Page-cache folios of this model are all tmpfs (shmem); pages without a mapping are
  // driver pages inserted with vm_insert_page(), counted as file pages.
  return core.map.mapping[head] !== 0 ? 'MM_SHMEMPAGES' : 'MM_FILEPAGES';
}

/** Models add_mm_counter(). */
export function addMmCounter(mm: MmStruct, which: keyof RssCounters, n: number): void {
  addRss(mm.rss, which, n);
}

/**
 * Models the add of add_mm_counter() on a set of rss counters (the mm's, or a checker's count):
 * one named store per counter, as `rss[which]` with a variable name is a keyed access that V8
 * cannot make monomorphic.
 */
export function addRss(rss: RssCounters, which: keyof RssCounters, n: number): void {
  switch (which) {
    case 'MM_ANONPAGES':
      rss.MM_ANONPAGES += n;
      break;
    case 'MM_FILEPAGES':
      rss.MM_FILEPAGES += n;
      break;
    case 'MM_SHMEMPAGES':
      rss.MM_SHMEMPAGES += n;
      break;
    case 'MM_SWAPENTS':
      rss.MM_SWAPENTS += n;
      break;
  }
}
