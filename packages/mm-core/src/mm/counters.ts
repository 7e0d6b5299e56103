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
  mm.rss[which] += n;
}
