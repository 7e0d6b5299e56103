import { EAGAIN, EBUSY, EINVAL, HPAGE_PMD_ORDER } from '../constants.js';
import type { Core } from '../core.js';
import {
  folioBugOn,
  folioGet,
  folioIsDevicePrivate,
  folioMapcount,
  folioMapped,
  folioMaybeDmaPinned,
  folioPut,
  folioUnlock,
  splitFolioMeta,
} from '../folio.js';
import {
  PG_anon,
  PG_deferred_split,
  PG_head,
  PG_locked,
  PG_partially_mapped,
  PG_swapcache,
  PG_zone_device,
} from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { removeMigrationPtes, rmapLockOf, TTU_SPLIT_HUGE_PMD, tryToMigrate } from './rmap.js';
import { freeSwapCache } from './swapfile.js';
import { countMthpStat } from './thp-orders.js';

/**
 * Models the device-private part of __folio_freeze_and_split_unmapped(): after the struct-page
 * split, call pgmap->ops->folio_split(head, tail) for every new folio but the first (or, without
 * the op, copy pgmap and mapping from the head: zone_device_private_split_cb()), then once with
 * no tail to say the split is finished.
 */
function deviceSplitCallbacks(core: Core, head: number, heads: number[]): void {
  const m = core.map;
  const pgmapId = m.pgmap[head];
  const pgmap = core.pgmaps[pgmapId];
  for (const t of heads) {
    if (t === head) continue;
    if (pgmap?.ops.folioSplit) pgmap.ops.folioSplit(head, t);
    else {
      m.pgmap[t] = pgmapId;
      m.mapping[t] = m.mapping[head];
    }
  }
  pgmap?.ops.folioSplit?.(head, -1);
}

/**
 * A device-coherent folio's split: zone_device_private_split_cb() handles device-private folios
 * only, so v6.19 leaves every new folio but the first with the pgmap the split wiped (NULL: it
 * shares storage with compound_head). Fix switch K6 copies it from the head, as the private
 * path's default does.
 */
function coherentSplitPgmap(core: Core, head: number, heads: number[]): void {
  const m = core.map;
  if (!core.fixed('K6') || !(m.flags[head] & PG_zone_device)) return;
  for (const h of heads) m.pgmap[h] = m.pgmap[head];
}

/**
 * Models folio_split_unmapped() (mm/huge_memory.c, the split-during-migration helper): split a
 * locked, unmapped, large anonymous folio holding exactly `1 + extraRefs` references into
 * folios of newOrder. Every piece stays locked, unmapped, with refcount 1; device-private
 * split callbacks run. No remap, no LRU, no THP_SPLIT_PAGE counter. 0 or -EAGAIN.
 */
export function folioSplitUnmapped(core: Core, head: number, newOrder = 0, extraRefs = 0): number {
  const m = core.map;
  folioBugOn(core, folioMapcount(core, head) !== 0, head, 'folio_split_unmapped: folio is mapped');
  folioBugOn(core, !(m.flags[head] & PG_locked), head, 'folio_split_unmapped: folio not locked');
  folioBugOn(core, !(m.flags[head] & PG_head), head, 'folio_split_unmapped: folio not large');
  folioBugOn(core, !(m.flags[head] & PG_anon), head, 'folio_split_unmapped: folio not anonymous');
  const cache = swapCacheRefs(core, head);
  if (m.refcount[head] !== 1 + extraRefs + cache || folioMaybeDmaPinned(core, head)) return -EAGAIN;
  const device = folioIsDevicePrivate(core, head);
  m.flags[head] &= ~(PG_deferred_split | PG_partially_mapped);
  const refs = m.refcount[head] - cache;
  const heads = splitFolioMeta(core, head, newOrder);
  if (device) deviceSplitCallbacks(core, head, heads);
  else coherentSplitPgmap(core, head, heads);
  for (const h of heads) m.refcount[h] = (h === head ? refs : 1) + swapCacheRefs(core, h);
  return 0;
}

/**
 * The references the swap cache holds on a folio (one per page while PG_swapcache): what
 * can_split_folio() and __folio_split() count as extra pins of an anonymous swap-cache folio.
 * After a split each new folio keeps its own pages' references, and each page's swap entry
 * (page private) and swap-table slot stay valid, so the cache needs no other update.
 */
function swapCacheRefs(core: Core, head: number): number {
  return core.map.flags[head] & PG_swapcache ? core.map.folioNrPages(head) : 0;
}

/**
 * Models split_folio()/__folio_split() (mm/huge_memory.c) for an anonymous large folio that
 * may be mapped: the caller holds the folio lock and one reference. Mappings are replaced by
 * migration entries (PMDs split with freeze), the folio is split to newOrder, every piece is
 * remapped (device-private pieces as device-private entries) and, except the piece containing
 * `lockAt`, unlocked with the caller's reference dropped. With `list` (split_folio_to_list(),
 * reclaim splitting a folio it isolated), those pieces are appended to the list with a reference
 * of their own. A swap-cache folio counts the cache's references as expected ones. 0, -EAGAIN
 * (extra references or still mapped: everything restored), -EBUSY, -EINVAL.
 */
export function* splitFolioMapped(
  core: Core,
  head: number,
  lockAt = head,
  newOrder = 0,
  list?: number[],
): KGen<number> {
  // __folio_split(): anon_vma_lock_write() of the folio's root anon_vma around unmap and remap.
  const rmapLock = rmapLockOf(core, head);
  if (rmapLock) yield* rmapLock.downWrite(core.sched, '__folio_split');
  try {
    return yield* splitFolioMappedLocked(core, head, lockAt, newOrder, list);
  } finally {
    rmapLock?.upWrite(core.sched, '__folio_split');
  }
}

function* splitFolioMappedLocked(
  core: Core,
  head: number,
  lockAt: number,
  newOrder: number,
  list: number[] | undefined,
): KGen<number> {
  const m = core.map;
  if (!(m.flags[head] & PG_head)) return -EINVAL;
  folioBugOn(core, !(m.flags[head] & PG_locked), head, 'split_folio: folio not locked');
  const order = m.folioOrder(head);
  // __folio_split() counts THP_SPLIT_PAGE_FAILED on every failure of a PMD-order folio.
  const fail = (err: number) => {
    if (order === HPAGE_PMD_ORDER) core.vmstat.thp_split_page_failed++;
    countMthpStat(core, order, 'split_failed');
    return err;
  };
  if (!(m.flags[head] & PG_anon)) return fail(-EBUSY);
  if (head === core.hugeZeroPfn) return fail(-EBUSY);
  if (newOrder >= order || newOrder === 1) return fail(-EINVAL);
  // can_split_folio(): only the caller's reference (and the swap cache's) beyond the mappings.
  const cache = swapCacheRefs(core, head);
  if (folioMaybeDmaPinned(core, head) || m.refcount[head] !== folioMapcount(core, head) + 1 + cache)
    return fail(-EAGAIN);
  yield* tryToMigrate(core, head, TTU_SPLIT_HUGE_PMD, true);
  if (folioMapcount(core, head) !== 0 || m.refcount[head] !== 1 + cache) {
    yield* removeMigrationPtes(core, head, head, true);
    return fail(-EAGAIN);
  }
  const device = folioIsDevicePrivate(core, head);
  m.flags[head] &= ~(PG_deferred_split | PG_partially_mapped);
  const heads = splitFolioMeta(core, head, newOrder);
  if (device) deviceSplitCallbacks(core, head, heads);
  else coherentSplitPgmap(core, head, heads);
  for (const h of heads) m.refcount[h] = 1 + swapCacheRefs(core, h);
  if (order === HPAGE_PMD_ORDER) core.vmstat.thp_split_page++;
  countMthpStat(core, order, 'split');
  // remap_page(): RMP_USE_SHARED_ZEROPAGE after a successful split of an anonymous folio that is
  // not device-private (all-zero order-0 pieces become the zero page).
  for (const h of heads) yield* removeMigrationPtes(core, h, h, true, !device);
  const keep = m.head[lockAt];
  for (const h of heads) {
    if (h === keep) continue;
    // lru_add_split_folio() with a list (reclaim splitting an isolated folio): the new folio
    // goes on the list with a reference of its own, off the LRU.
    if (list) {
      folioGet(core, h);
      list.push(h);
    }
    folioUnlock(core, h);
    // free_folio_and_swap_cache(): drop the split's reference.
    if (!list && m.flags[h] & PG_swapcache && !folioMapped(core, h)) freeSwapCache(core, h);
    folioPut(core, h);
  }
  return 0;
}
