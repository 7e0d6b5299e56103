import { EAGAIN, EBUSY, EINVAL, HPAGE_PMD_ORDER, PAGE_SIZE } from '../constants.js';
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
  PG_writeback,
  PG_zone_device,
} from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { removeMigrationPtes, rmapLockOf, TTU_SPLIT_HUGE_PMD, tryToMigrate } from './rmap.js';
import { shmemDeleteFolio } from './shmem.js';
import { freeSwapCache } from './swapfile.js';
import { countMthpStat } from './thp-orders.js';
import { Inode } from './types.js';
import { TTU_IGNORE_MLOCK, TTU_RMAP_LOCKED, TTU_SYNC, tryToUnmap } from './vmscan.js';

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

/** Models enum split_type: SPLIT_TYPE_UNIFORM or SPLIT_TYPE_NON_UNIFORM. */
export type SplitType = 'uniform' | 'non_uniform';

/**
 * Models folio_split_supported(folio, new_order, split_type, warns) (mm/huge_memory.c): an
 * anonymous folio cannot be split to order 1; a swap-cache folio only uniformly to order 0.
 * A page-cache (shmem) folio may be split to any order, uniformly or not: the model has no
 * CONFIG_READ_ONLY_THP_FOR_FS (no non-shmem file THP), so the mapping_large_folio_support()
 * check never applies. The VM_WARN_ONCE()s of CONFIG_DEBUG_VM are not modelled.
 */
export function folioSplitSupported(
  core: Core,
  head: number,
  newOrder: number,
  splitType: SplitType,
): boolean {
  const m = core.map;
  if (m.flags[head] & PG_anon && newOrder === 1) return false;
  if ((splitType === 'non_uniform' || newOrder) && m.flags[head] & PG_swapcache) return false;
  return true;
}

/**
 * Models __split_unmapped_folio() (mm/huge_memory.c) on the memmap: a uniform split makes
 * folios of newOrder at once; a non-uniform one (the buddy-allocator-like folio_split()) halves
 * the folio containing `splitAt` one order at a time down to newOrder, leaving one folio of
 * each order in between (an anonymous folio skips order 1). Returns the heads of the new
 * folios in pfn order (the first is `head`). Refcounts are the caller's to set.
 */
export function splitUnmappedFolio(
  core: Core,
  head: number,
  newOrder: number,
  splitAt: number,
  splitType: SplitType,
): number[] {
  const m = core.map;
  const end = head + m.folioNrPages(head);
  if (splitType === 'uniform') return splitFolioMeta(core, head, newOrder);
  const anon = (m.flags[head] & PG_anon) !== 0;
  let folio = head;
  for (let splitOrder = m.folioOrder(head) - 1; splitOrder >= newOrder; splitOrder--) {
    if (anon && splitOrder === 1) continue;
    splitFolioMeta(core, folio, splitOrder);
    folio = m.head[splitAt];
  }
  const heads: number[] = [];
  for (let h = head; h < end; h += m.folioNrPages(h)) heads.push(h);
  return heads;
}

/**
 * Models split_folio()/split_huge_page_to_list_to_order() (mm/huge_memory.c): the uniform
 * __folio_split() of `head` to newOrder, leaving the new folio containing `lockAt` locked (and
 * holding the caller's reference). See {@link folioSplit}.
 */
export function* splitFolioMapped(
  core: Core,
  head: number,
  lockAt = head,
  newOrder = 0,
  list?: number[],
): KGen<number> {
  return yield* folioSplit(core, head, newOrder, head, lockAt, list, 'uniform');
}

/**
 * Models folio_split(folio, new_order, split_at, list) (mm/huge_memory.c, v6.15+): the
 * non-uniform __folio_split() of `head` around the page `splitAt`, leaving the first new folio
 * locked (lock_at is the folio's first page). See {@link folioSplit}.
 */
export function* folioSplitAt(core: Core, head: number, newOrder: number, splitAt: number): KGen<number> {
  return yield* folioSplit(core, head, newOrder, splitAt, head, undefined, 'non_uniform');
}

/**
 * Models try_folio_split_to_order(folio, page, new_order) (include/linux/huge_mm.h): a
 * non-uniform split at `page` when folio_split_supported() allows one, else the uniform split
 * to newOrder (split_huge_page_to_order()). The first new folio stays locked.
 */
export function* tryFolioSplitToOrder(
  core: Core,
  head: number,
  page: number,
  newOrder: number,
): KGen<number> {
  if (!folioSplitSupported(core, head, newOrder, 'non_uniform'))
    return yield* folioSplit(core, head, newOrder, head, head, undefined, 'uniform');
  return yield* folioSplitAt(core, head, newOrder, page);
}

/**
 * Models __folio_split() (mm/huge_memory.c) for a large folio that may be mapped: the caller
 * holds the folio lock and one reference.
 *
 * Anonymous: under the anon_vma write lock, the mappings are replaced by migration entries (PMDs
 * split with freeze), the folio is split, every piece is remapped (device-private pieces as
 * device-private entries; all-zero order-0 pieces as the shared zero page). A swap-cache folio
 * counts the cache's references as expected ones.
 *
 * Page cache (shmem): under i_mmap_lock_read(), unmap_folio() simply unmaps the folio
 * (try_to_unmap(TTU_SPLIT_HUGE_PMD): PMD mappings are zapped, PTEs removed); faults map the
 * pieces back later (remap_page() is for anonymous folios only). The folio must still be in the
 * page cache with only the cache's references (one per page) and the caller's; the pieces keep
 * their page-cache slots and references, NR_SHMEM_THPS drops for a PMD-sized folio, and a piece
 * wholly beyond i_size leaves the page cache and is freed (__folio_freeze_and_split_unmapped()).
 *
 * Every piece but the one containing `lockAt` is unlocked with the split's reference dropped
 * (free_folio_and_swap_cache()). With `list` (split_folio_to_list(), reclaim splitting a folio
 * it isolated) those pieces are appended to the list with a reference of their own.
 * THP_SPLIT_PAGE / THP_SPLIT_PAGE_FAILED and the mTHP split stats count every attempt that got
 * past the early checks. 0, -EAGAIN (extra references, or still mapped: an anonymous folio is
 * restored, a file folio stays unmapped), -EBUSY, -EINVAL.
 */
export function* folioSplit(
  core: Core,
  head: number,
  newOrder: number,
  splitAt: number,
  lockAt: number,
  list: number[] | undefined,
  splitType: SplitType,
): KGen<number> {
  const m = core.map;
  if (!(m.flags[head] & PG_head)) return -EINVAL;
  folioBugOn(core, !(m.flags[head] & PG_locked), head, 'split_folio: folio not locked');
  if (m.head[splitAt] !== head || m.head[lockAt] !== head) return -EINVAL;
  const anon = (m.flags[head] & PG_anon) !== 0;
  // "Folios that just got truncated cannot get split."
  if (!anon && !m.mapping[head]) return -EBUSY;
  const order = m.folioOrder(head);
  if (newOrder >= order) return -EINVAL;
  if (!folioSplitSupported(core, head, newOrder, splitType)) return -EINVAL;
  if (head === core.hugeZeroPfn) return -EBUSY;
  if (m.flags[head] & PG_writeback) return -EBUSY;
  if (anon) {
    // anon_vma_lock_write() of the folio's root anon_vma around unmap and remap.
    const rmapLock = rmapLockOf(core, head);
    if (rmapLock) yield* rmapLock.downWrite(core.sched, '__folio_split');
    let ret: number;
    try {
      ret = yield* splitAnonFolioLocked(core, head, newOrder, splitAt, lockAt, list, splitType);
    } finally {
      rmapLock?.upWrite(core.sched, '__folio_split');
    }
    return countSplit(core, order, ret);
  }
  const inode = core.mappings.get(m.mapping[head]);
  if (!(inode instanceof Inode)) return countSplit(core, order, -EBUSY);
  // mapping_min_folio_order() is 0 for shmem; filemap_release_folio() has no private data to
  // drop. i_mmap_lock_read() keeps the rmap stable for unmap_folio().
  yield* inode.immapRwsem.downRead(core.sched, '__folio_split');
  let ret: number;
  try {
    ret = yield* splitFileFolioLocked(core, inode, head, newOrder, splitAt, lockAt, list, splitType);
  } finally {
    inode.immapRwsem.upRead(core.sched, '__folio_split');
  }
  return countSplit(core, order, ret);
}

/** __folio_split()'s `out:` label: THP_SPLIT_PAGE(_FAILED) for a PMD-sized folio, the mTHP stats. */
function countSplit(core: Core, order: number, ret: number): number {
  if (order === HPAGE_PMD_ORDER) {
    if (ret === 0) core.vmstat.thp_split_page++;
    else core.vmstat.thp_split_page_failed++;
  }
  countMthpStat(core, order, ret === 0 ? 'split' : 'split_failed');
  return ret;
}

/** __folio_split() of an anonymous folio with the anon_vma locked. */
function* splitAnonFolioLocked(
  core: Core,
  head: number,
  newOrder: number,
  splitAt: number,
  lockAt: number,
  list: number[] | undefined,
  splitType: SplitType,
): KGen<number> {
  const m = core.map;
  // The racy check before unmap_folio(): only the caller's reference (and the swap cache's)
  // beyond the mappings.
  const cache = swapCacheRefs(core, head);
  if (folioMaybeDmaPinned(core, head) || m.refcount[head] !== folioMapcount(core, head) + 1 + cache)
    return -EAGAIN;
  yield* tryToMigrate(core, head, TTU_SPLIT_HUGE_PMD, true);
  if (folioMapcount(core, head) !== 0 || m.refcount[head] !== 1 + cache) {
    yield* removeMigrationPtes(core, head, head, true);
    return -EAGAIN;
  }
  const device = folioIsDevicePrivate(core, head);
  m.flags[head] &= ~(PG_deferred_split | PG_partially_mapped);
  const heads = splitUnmappedFolio(core, head, newOrder, splitAt, splitType);
  if (device) deviceSplitCallbacks(core, head, heads);
  else coherentSplitPgmap(core, head, heads);
  for (const h of heads) m.refcount[h] = 1 + swapCacheRefs(core, h);
  // remap_page(): RMP_USE_SHARED_ZEROPAGE after a successful split of an anonymous folio that is
  // not device-private (all-zero order-0 pieces become the zero page).
  for (const h of heads) yield* removeMigrationPtes(core, h, h, true, !device);
  releaseSplitFolios(core, heads, lockAt, list);
  return 0;
}

/**
 * __folio_split() of a shmem page-cache folio with i_mmap locked for read: unmap_folio(), the
 * page-cache re-check (xas_load() == folio), the freeze (only the cache's references and the
 * caller's) and __folio_freeze_and_split_unmapped(). The pieces keep their slots (the model's
 * page cache holds one pfn per index, so xas_split() changes nothing there); each gets its
 * mapping and index, the cache's references and the split's one; pieces at or beyond the end
 * (DIV_ROUND_UP(i_size), the model has no fallocend) leave the page cache.
 */
function* splitFileFolioLocked(
  core: Core,
  inode: Inode,
  head: number,
  newOrder: number,
  splitAt: number,
  lockAt: number,
  list: number[] | undefined,
  splitType: SplitType,
): KGen<number> {
  const m = core.map;
  const nr = m.folioNrPages(head);
  const order = m.folioOrder(head);
  const end = Math.ceil(inode.size / PAGE_SIZE);
  // folio_expected_ref_count(folio) != folio_ref_count(folio) - 1: the cache's references, the
  // mappings' and the caller's only.
  if (folioMaybeDmaPinned(core, head) || m.refcount[head] !== folioMapcount(core, head) + nr + 1)
    return -EAGAIN;
  // unmap_folio(): file folios are simply unmapped, then faulted back on demand.
  let ttu = TTU_RMAP_LOCKED | TTU_SYNC | TTU_IGNORE_MLOCK;
  if (order >= HPAGE_PMD_ORDER) ttu |= TTU_SPLIT_HUGE_PMD;
  yield* tryToUnmap(core, head, ttu);
  const index = m.index[head];
  if (inode.pages.get(index) !== head) return -EAGAIN;
  // folio_ref_freeze(folio, folio_cache_ref_count(folio) + 1).
  if (folioMapped(core, head) || m.refcount[head] !== nr + 1) return -EAGAIN;
  if (order >= HPAGE_PMD_ORDER && newOrder < HPAGE_PMD_ORDER) core.vmstat.nr_shmem_hugepages -= nr;
  const heads = splitUnmappedFolio(core, head, newOrder, splitAt, splitType);
  for (const h of heads) {
    m.mapping[h] = inode.id;
    m.index[h] = index + (h - head);
    m.refcount[h] = m.folioNrPages(h) + 1;
  }
  // Drop the pieces beyond EOF (->index >= end): __filemap_remove_folio() and the cache's
  // references; the split's one goes below.
  for (const h of heads) if (h !== head && m.index[h] >= end) shmemDeleteFolio(core, inode, h);
  releaseSplitFolios(core, heads, lockAt, list);
  return 0;
}

/**
 * The end of __folio_split(): every new folio but the one containing `lockAt` is unlocked and
 * the split's reference dropped (free_folio_and_swap_cache()); with a list (reclaim splitting an
 * isolated folio, lru_add_split_folio()) it goes on the list with a reference of its own.
 */
function releaseSplitFolios(core: Core, heads: number[], lockAt: number, list: number[] | undefined): void {
  const m = core.map;
  const keep = m.head[lockAt];
  for (const h of heads) {
    if (h === keep) continue;
    if (list) {
      folioGet(core, h);
      list.push(h);
    }
    folioUnlock(core, h);
    if (!list && m.flags[h] & PG_swapcache && !folioMapped(core, h)) freeSwapCache(core, h);
    folioPut(core, h);
  }
}
