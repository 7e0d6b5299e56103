/**
 * Swap-in and swap-out I/O (mm/swap_state.c, mm/page_io.c): reading a slot into a new
 * swap-cache folio and writing a swap-cache folio to its slots. The model's swap area is an SSD
 * whose requests complete before the submitter continues (the model has no I/O latency): a
 * write ends its writeback at once, so reclaim frees the folio in the same pass, as it does
 * for a synchronous device. Swap readahead is off (vm.page-cluster = 0): a fault reads only
 * the faulting slot.
 */
import { HPAGE_PMD_ORDER } from '../constants.js';
import type { Core } from '../core.js';
import { ModelBug } from '../errors.js';
import { allocFolio, folioBugOn, folioLock, folioPut, folioUnlock } from '../folio.js';
import { PG_dirty, PG_locked, PG_lru, PG_swapbacked, PG_swapcache, PG_uptodate } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import {
  folioFreeSwap,
  swapCacheAddFolio,
  swapCacheGetFolio,
  swapEntryToInfo,
  swpEntryOffset,
} from './swapfile.js';
import { countMthpStat } from './thp-orders.js';

/**
 * Models swap_read_folio() (mm/page_io.c) for a locked swap-cache folio: its pages are read
 * from their slots, the folio becomes uptodate and is unlocked at I/O completion
 * (end_swap_bio_read()). Counts PSWPIN per page.
 */
export function swapReadFolio(core: Core, head: number): void {
  const m = core.map;
  folioBugOn(core, !(m.flags[head] & PG_locked), head, 'swap_read_folio: folio not locked');
  folioBugOn(core, (m.flags[head] & PG_uptodate) !== 0, head, 'swap_read_folio: folio already uptodate');
  const entry = m.priv[head];
  const si = swapEntryToInfo(core, entry);
  if (!si) throw new ModelBug('swap_read_folio: folio without a valid swap entry');
  const nr = m.folioNrPages(head);
  core.frames.copy(head, swpEntryOffset(entry), nr, si.data);
  core.vmstat.pswpin += nr;
  m.flags[head] |= PG_uptodate;
  folioUnlock(core, head);
}

/**
 * Models swap_writeout() (mm/page_io.c) for a locked swap-cache folio that
 * folio_clear_dirty_for_io() cleaned: a folio no swap PTE holds any more just leaves the swap
 * cache (folio_free_swap(): nothing to write); otherwise its pages are written to their slots
 * (__swap_writepage(), PSWPOUT per page, THP_SWPOUT for a PMD-sized folio). The folio is
 * unlocked either way. Returns 0 (AOP success).
 */
export function swapWriteout(core: Core, head: number): number {
  const m = core.map;
  folioBugOn(core, !(m.flags[head] & PG_locked), head, 'swap_writeout: folio not locked');
  folioBugOn(core, !(m.flags[head] & PG_swapcache), head, 'swap_writeout: folio not in the swap cache');
  if (folioFreeSwap(core, head)) {
    folioUnlock(core, head);
    return 0;
  }
  const entry = m.priv[head];
  const si = swapEntryToInfo(core, entry);
  if (!si) throw new ModelBug('swap_writeout: folio without a valid swap entry');
  const nr = m.folioNrPages(head);
  si.data.copy(swpEntryOffset(entry), head, nr, core.frames);
  core.vmstat.pswpout += nr;
  if (m.folioOrder(head) === HPAGE_PMD_ORDER) core.vmstat.thp_swpout++;
  countMthpStat(core, m.folioOrder(head), 'swpout');
  folioUnlock(core, head);
  return 0;
}

/**
 * Models swapin_readahead() with vm.page-cluster = 0 (swap_vma_readahead() with a window of one
 * page) down to swap_cache_alloc_folio() + swap_read_folio(): the folio caching `entry`, with a
 * reference, read from the slot when it had to be allocated; -1 when the allocation failed or
 * the entry is no longer swapped (its swap PTE changed while this task slept). `read` tells the
 * caller whether this call did the I/O (a major fault).
 */
export function* swapinReadahead(core: Core, entry: number): KGen<{ folio: number; read: boolean }> {
  const have = swapCacheGetFolio(core, entry);
  if (have >= 0) return { folio: have, read: false };
  const si = swapEntryToInfo(core, entry);
  if (!si) return { folio: -1, read: false };
  const off = swpEntryOffset(entry);
  // swap_cache_alloc_folio(): skip an entry without swap count (swap_entry_swapped()).
  if (si.swapMap[off] === 0) return { folio: -1, read: false };
  const folio = allocFolio(core, 0, false);
  if (folio < 0) return { folio: -1, read: false };
  if (core.sched.preempt('swap_cache_alloc_folio: folio allocated, not yet in the swap cache')) yield RESCHED;
  // swap_cache_add_folio(): -EEXIST when another task cached the entry meanwhile (use its
  // folio), -ENOENT when the entry lost its last swap count.
  const raced = swapCacheGetFolio(core, entry);
  if (raced >= 0 || si.swapMap[off] === 0) {
    folioPut(core, folio);
    return { folio: raced, read: false };
  }
  const m = core.map;
  // __swap_cache_prepare_and_add(): locked, swap-backed, in the swap cache, on the LRU.
  folioLock(core, folio);
  m.flags[folio] |= PG_swapbacked | PG_lru;
  swapCacheAddFolio(core, si, folio, off);
  m.flags[folio] &= ~PG_dirty;
  swapReadFolio(core, folio);
  return { folio, read: true };
}
