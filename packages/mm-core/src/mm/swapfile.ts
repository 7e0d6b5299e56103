/**
 * Swap devices and their slots (mm/swapfile.c, include/linux/swap.h): struct swap_info_struct
 * with its per-slot swap counts, the cluster allocator that hands out slots (one slot for a
 * small folio, a whole naturally aligned cluster for a PMD-sized THP), the swap counts that swap
 * PTEs hold (swap_duplicate() at fork, swap_free_nr() at swap-in, free_swap_and_cache_nr() at
 * zap), the swap table that holds the swap cache, and the bytes written to each slot.
 *
 * Model of a slot (offset o of device si):
 * - `si.swapMap[o]`: the swap count, the number of swap PTEs that hold the entry (the kernel's
 *   swap_map count without SWAP_HAS_CACHE and without the continuation pages: the model's counts
 *   are plain integers and never overflow SWAP_MAP_MAX). Slot 0 is the header (SWAP_MAP_BAD).
 * - `si.table[o]`: the swap table / swap cache: the pfn of the page cached for the slot, 0 when
 *   none (the kernel's swap_table entry of the slot's cluster, or SWAP_HAS_CACHE before it).
 * - A slot is free when both are zero. {@link folioAllocSwap} allocates slots and adds the folio
 *   to the swap cache in one step, as folio_alloc_swap() does.
 * - The bytes of slot o live in `si.data` (a Frames store indexed by offset), so a swap device
 *   costs host memory only for the 2 MiB blocks of slots ever written.
 */
import { ENOENT, ENOMEM, HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { ModelBug } from '../errors.js';
import { folioBugOn, folioMapped, folioPut, folioTryGet, folioTrylock, folioUnlock } from '../folio.js';
import { MAX_SWAPFILES } from '../pgtable/entry.js';
import { Frames } from '../phys/frames.js';
import { type HostMemoryPool, takeArray } from '../phys/hostpool.js';
import { PG_dirty, PG_locked, PG_swapbacked, PG_swapcache, PG_writeback } from '../phys/memmap.js';

/** Models enum SWP_* flags of swap_info_struct->flags (include/linux/swap.h). */
export const SWP_USED = 1 << 0;
export const SWP_WRITEOK = 1 << 1;
export const SWP_SOLIDSTATE = 1 << 4;
export const SWP_BLKDEV = 1 << 6;
export const SWP_STABLE_WRITES = 1 << 11;
export const SWP_SYNCHRONOUS_IO = 1 << 12;

/** Models SWAPFILE_CLUSTER (mm/swapfile.c): slots per cluster, HPAGE_PMD_NR with THP_SWAP. */
export const SWAPFILE_CLUSTER = HPAGE_PMD_NR;
/** Models SWAP_MAP_BAD: the swap_map value of the header slot (and of bad blocks). */
export const SWAP_MAP_BAD = 0x3f;

/** Models the TTRS_* flags of __try_to_reclaim_swap() (mm/swapfile.c). */
export const TTRS_ANYWAY = 0x1;
export const TTRS_UNMAPPED = 0x2;
export const TTRS_FULL = 0x4;

/** Model-only: the default swap size of a machine, 1 GiB (a swap partition, like a distribution install). */
export const DEFAULT_SWAP_BYTES = 2 ** 30;
/** Model-only: the largest swap area the model accepts (16 Mi slots). */
export const MAX_SWAP_BYTES = 64 * 2 ** 30;

/** swp_entry_t.val of the model: type * 2^40 + offset (the offset field of a PTE has 40 bits). */
const TYPE_SCALE = 2 ** 40;

/** Models swp_entry(type, offset).val: the number a swap entry is passed around as. */
export function swpEntryVal(type: number, offset: number): number {
  return type * TYPE_SCALE + offset;
}

/** Models swp_type() of a swp_entry_t value. */
export function swpEntryType(val: number): number {
  return Math.floor(val / TYPE_SCALE);
}

/** Models swp_offset() of a swp_entry_t value. */
export function swpEntryOffset(val: number): number {
  return val % TYPE_SCALE;
}

/** Model-only: names an entry for messages ("type:offset", the offset in hex). */
export function swpEntryName(val: number): string {
  return `${swpEntryType(val)}:0x${swpEntryOffset(val).toString(16)}`;
}

/**
 * Models the swap-size checks of sys_swapon() (mm/swapfile.c: read_swap_header(),
 * setup_swap_map()): returns an error message for a size the model cannot set up, or undefined.
 * 0 means no swap; otherwise a whole number of pages, at least the header page plus one slot,
 * at most {@link MAX_SWAP_BYTES}.
 */
export function checkSwapBytes(swapBytes: number): string | undefined {
  if (!Number.isFinite(swapBytes) || !Number.isInteger(swapBytes))
    return `swap size ${swapBytes} is not a whole number of bytes`;
  if (swapBytes < 0) return `swap size ${swapBytes} is negative`;
  if (swapBytes === 0) return undefined;
  if (swapBytes % PAGE_SIZE !== 0) return `swap size ${swapBytes} is not a multiple of the page size`;
  if (swapBytes < 2 * PAGE_SIZE) return `swap size ${swapBytes} leaves no slot after the swap header`;
  if (swapBytes > MAX_SWAP_BYTES)
    return `swap size ${swapBytes} exceeds the model's limit of ${MAX_SWAP_BYTES} bytes`;
  return undefined;
}

/**
 * Models struct swap_info_struct (include/linux/swap.h) of one swap area: a block device on an
 * SSD (SWP_BLKDEV | SWP_SOLIDSTATE, not SWP_SYNCHRONOUS_IO: swap-in goes through the swap cache
 * and allocates order-0 folios), with clusters of {@link SWAPFILE_CLUSTER} slots.
 */
export class SwapInfo {
  /** Models si->flags. */
  flags = SWP_USED | SWP_WRITEOK | SWP_BLKDEV | SWP_SOLIDSTATE;
  /** Models si->max: slots including the header slot 0. */
  readonly max: number;
  /** Models si->pages: usable slots (max - 1). */
  readonly pages: number;
  /** Models si->inuse_pages: slots with a swap count or a swap-cache folio. */
  inusePages = 0;
  /** Models si->prio (swapon without a priority: the first area gets -2 on current kernels). */
  readonly prio = -2;
  /** The bytes of every slot (indexed by offset). */
  readonly data: Frames;
  private map: Int32Array | null = null;
  private tab: Int32Array | null = null;
  private used: Uint16Array | null = null;
  /** Cluster order (-1 free) per cluster: models the free / nonfull / full cluster lists. */
  private order: Int8Array | null = null;
  /** Models si->global_cluster->next[order]: where the next allocation of that order looks first. */
  private readonly next: number[] = [];

  constructor(
    /** Models si->type: the index in swap_info[] and the type of its swap entries. */
    readonly type: number,
    slots: number,
    private readonly pool?: HostMemoryPool,
  ) {
    this.max = slots;
    this.pages = slots - 1;
    this.data = new Frames(pool);
  }

  /** Models si->cluster_info's length: clusters of the area (the last one may be partial). */
  get nrClusters(): number {
    return Math.ceil(this.max / SWAPFILE_CLUSTER);
  }

  /**
   * Models si->swap_map: swap count per slot. Allocated on first use (a machine that never
   * swaps allocates nothing), with the header slot marked SWAP_MAP_BAD.
   */
  get swapMap(): Int32Array {
    if (this.map === null) this.setup();
    return this.map as Int32Array;
  }

  /** Models the swap table (si->cluster_info[].table): the cached page pfn per slot, 0 = none. */
  get table(): Int32Array {
    if (this.tab === null) this.setup();
    return this.tab as Int32Array;
  }

  /** True once any slot was ever allocated (the maps exist). */
  get materialised(): boolean {
    return this.map !== null;
  }

  /** Models setup_swap_map() + setup_clusters(): slot 0 is the header, bad, in cluster 0. */
  private setup(): void {
    const n = this.nrClusters;
    this.map = takeArray(this.pool, Int32Array, this.max);
    this.tab = takeArray(this.pool, Int32Array, this.max);
    this.used = takeArray(this.pool, Uint16Array, n);
    this.order = takeArray(this.pool, Int8Array, n).fill(-1);
    this.map[0] = SWAP_MAP_BAD;
    this.used[0] = 1;
    this.order[0] = 0;
  }

  /** Models swap_cluster_info->count: slots in use in cluster c (the header slot counts). */
  clusterUsed(c: number): number {
    return this.used === null ? 0 : this.used[c];
  }

  /** Models swap_entry_swapped()/__swap_count() != 0 for one slot. */
  slotFree(off: number): boolean {
    return this.swapMap[off] === 0 && this.table[off] === 0;
  }

  /** Slots of cluster c (the last cluster may be short). */
  clusterSlots(c: number): number {
    return Math.min(SWAPFILE_CLUSTER, this.max - c * SWAPFILE_CLUSTER);
  }

  /**
   * Models cluster_alloc_swap_entry() / swap_alloc_fast() / swap_alloc_slow() for one area:
   * `nr` (a power of two, at most a cluster) naturally aligned free slots. Order 0 first tries
   * where the last order-0 allocation ended, then clusters already in use by order 0 (nonfull),
   * then a free cluster, then any free slot (frag clusters of other orders); a PMD-order
   * allocation needs a whole free cluster. Returns the first offset or -1.
   */
  allocSlots(nr: number): number {
    const map = this.swapMap;
    const tab = this.table;
    const used = this.used as Uint16Array;
    const order = this.order as Int8Array;
    const o = Math.log2(nr);
    const n = this.nrClusters;
    const fits = (start: number): boolean => {
      if (start + nr > this.max) return false;
      for (let k = 0; k < nr; k++) if (map[start + k] !== 0 || tab[start + k] !== 0) return false;
      return true;
    };
    const scan = (c: number, from: number): number => {
      const base = c * SWAPFILE_CLUSTER;
      const end = base + this.clusterSlots(c);
      for (let s = Math.max(base, from - (from % nr)); s + nr <= end; s += nr) if (fits(s)) return s;
      return -1;
    };
    let got = -1;
    const hint = this.next[o];
    if (hint !== undefined && hint >= 0) {
      const c = Math.floor(hint / SWAPFILE_CLUSTER);
      if (c < n && order[c] === o) got = scan(c, hint);
    }
    if (got < 0 && nr < SWAPFILE_CLUSTER)
      for (let c = 0; c < n && got < 0; c++)
        if (order[c] === o && used[c] < this.clusterSlots(c)) got = scan(c, c * SWAPFILE_CLUSTER);
    if (got < 0)
      for (let c = 0; c < n && got < 0; c++)
        if (order[c] === -1 && used[c] === 0 && this.clusterSlots(c) >= nr)
          got = scan(c, c * SWAPFILE_CLUSTER);
    if (got < 0 && o === 0)
      for (let c = 0; c < n && got < 0; c++)
        if (used[c] < this.clusterSlots(c)) got = scan(c, c * SWAPFILE_CLUSTER);
    if (got < 0) return -1;
    const c = Math.floor(got / SWAPFILE_CLUSTER);
    if (order[c] === -1) order[c] = o;
    this.next[o] = got + nr;
    return got;
  }

  /** Models swap_range_alloc() for one slot: it became used (a count or a cache entry where there was neither). */
  slotUsed(off: number): void {
    const c = Math.floor(off / SWAPFILE_CLUSTER);
    (this.used as Uint16Array)[c]++;
    this.inusePages++;
  }

  /**
   * Models swap_entries_free() / swap_range_free() for one slot whose count and cache are both
   * gone: the slot is free again, its bytes are dropped, an empty cluster returns to the free
   * list.
   */
  slotFreed(off: number): void {
    const c = Math.floor(off / SWAPFILE_CLUSTER);
    const used = this.used as Uint16Array;
    used[c]--;
    this.inusePages--;
    if (used[c] === 0) (this.order as Int8Array)[c] = -1;
    this.data.zero(off, 1);
  }

  /** Model-only: the machine is discarded; the slots' bytes and the maps go back to the host pool. */
  release(): void {
    this.data.release();
    const pool = this.pool;
    if (pool && this.map && this.tab && this.used && this.order) {
      pool.give(this.map);
      pool.give(this.tab);
      pool.give(this.used);
      pool.give(this.order);
    }
    this.map = this.tab = null;
    this.used = null;
    this.order = null;
  }
}

/**
 * Models sys_swapon() of a swap area of `swapBytes` at boot (the machine's fstab swap line):
 * the area becomes swap_info[type] and its slots count in total_swap_pages. 0 bytes: no swap.
 */
export function swapon(core: Core, swapBytes: number, pool?: HostMemoryPool): SwapInfo | undefined {
  const bad = checkSwapBytes(swapBytes);
  if (bad !== undefined) throw new RangeError(bad);
  if (swapBytes === 0) return undefined;
  const type = core.swapInfo.length;
  if (type >= MAX_SWAPFILES) throw new RangeError(`at most ${MAX_SWAPFILES} swap areas`);
  const si = new SwapInfo(type, swapBytes / PAGE_SIZE, pool);
  core.swapInfo.push(si);
  return si;
}

/** Models total_swap_pages: usable slots of every swap area. */
export function totalSwapPages(core: Core): number {
  let n = 0;
  for (const si of core.swapInfo) if (si.flags & SWP_WRITEOK) n += si.pages;
  return n;
}

/** Models get_nr_swap_pages() (nr_swap_pages): free slots of every swap area. */
export function nrSwapPages(core: Core): number {
  let n = 0;
  for (const si of core.swapInfo) if (si.flags & SWP_WRITEOK) n += si.pages - si.inusePages;
  return n;
}

/**
 * Models vm_swap_full() (include/linux/swap.h), which mem_cgroup_swap_full() falls back to
 * without a memcg swap limit: more than half of the swap space is in use.
 */
export function vmSwapFull(core: Core): boolean {
  return nrSwapPages(core) * 2 < totalSwapPages(core);
}

/**
 * Models get_swap_device() / __swap_entry_to_info(): the area of a swap entry, or undefined for
 * an entry that names no area or an offset beyond it ("Bad swap file entry").
 */
export function swapEntryToInfo(core: Core, entry: number): SwapInfo | undefined {
  const si = core.swapInfo[swpEntryType(entry)];
  const off = swpEntryOffset(entry);
  if (!si || off === 0 || off >= si.max) return undefined;
  return si;
}

/** Like {@link swapEntryToInfo}, for paths that hold the entry: a bad one is a model bug. */
function infoOf(core: Core, entry: number, fn: string): SwapInfo {
  const si = swapEntryToInfo(core, entry);
  if (!si) throw new ModelBug(`${fn}: Bad swap file entry ${swpEntryName(entry)}`);
  return si;
}

/** Models __swap_count() / swp_swapcount(): the swap count of an entry's slot. */
export function swapCount(core: Core, entry: number): number {
  const si = swapEntryToInfo(core, entry);
  return si ? si.swapMap[swpEntryOffset(entry)] : 0;
}

/**
 * Models folio_alloc_swap() (mm/swapfile.c): allocate folio_nr_pages() contiguous, naturally
 * aligned slots for a locked, swap-backed folio and add it to the swap cache
 * (swap_cache_add_folio(): folio->swap, PG_swapcache and one folio reference per page). A
 * PMD-sized THP needs a whole free cluster (THP_SWAP). Returns 0 or -ENOMEM (no area, or no
 * free slots of that size: the caller splits a large folio and tries again).
 */
export function folioAllocSwap(core: Core, head: number): number {
  const m = core.map;
  folioBugOn(core, !(m.flags[head] & PG_locked), head, 'folio_alloc_swap: folio not locked');
  folioBugOn(
    core,
    (m.flags[head] & PG_swapcache) !== 0,
    head,
    'folio_alloc_swap: folio already in the swap cache',
  );
  const nr = m.folioNrPages(head);
  const order = m.folioOrder(head);
  // Orders above a cluster cannot be allocated (the model's largest folio is PMD order).
  if (order > HPAGE_PMD_ORDER) return -ENOMEM;
  for (const si of core.swapInfo) {
    if (!(si.flags & SWP_WRITEOK)) continue;
    const off = si.allocSlots(nr);
    if (off < 0) continue;
    swapCacheAddFolio(core, si, head, off);
    return 0;
  }
  return -ENOMEM;
}

/**
 * Models __swap_cache_add_folio() (mm/swap_state.c): slots [off, off + nr) of si now cache the
 * folio's pages: the table points at each page, each page's private holds its entry, the folio
 * is PG_swapcache (and swap-backed) and holds one reference per page for the cache.
 */
export function swapCacheAddFolio(core: Core, si: SwapInfo, head: number, off: number): void {
  const m = core.map;
  const nr = m.folioNrPages(head);
  const map = si.swapMap;
  const tab = si.table;
  for (let k = 0; k < nr; k++) {
    folioBugOn(core, tab[off + k] !== 0, head, '__swap_cache_add_folio: slot already caches a folio');
    if (map[off + k] === 0) si.slotUsed(off + k);
    tab[off + k] = head + k;
    m.priv[head + k] = swpEntryVal(si.type, off + k);
  }
  m.flags[head] |= PG_swapcache | PG_swapbacked;
  m.refcount[head] += nr;
  core.vmstat.nr_swapcached += nr;
}

/**
 * Models __swap_cache_del_folio() + swap_cache_del_folio() (mm/swap_state.c): the folio leaves
 * the swap cache (PG_swapcache and folio->swap cleared), slots without a swap count are freed
 * (swap_entries_free()), and the cache's references are dropped (folio_ref_sub(): the caller
 * holds a reference, so this never frees the folio).
 */
export function swapCacheDelFolio(core: Core, head: number): void {
  const m = core.map;
  folioBugOn(core, !(m.flags[head] & PG_locked), head, 'swap_cache_del_folio: folio not locked');
  folioBugOn(
    core,
    !(m.flags[head] & PG_swapcache),
    head,
    'swap_cache_del_folio: folio not in the swap cache',
  );
  folioBugOn(core, (m.flags[head] & PG_writeback) !== 0, head, 'swap_cache_del_folio: folio under writeback');
  const nr = m.folioNrPages(head);
  const entry = m.priv[head];
  const si = infoOf(core, entry, 'swap_cache_del_folio');
  const off = swpEntryOffset(entry);
  const map = si.swapMap;
  const tab = si.table;
  for (let k = 0; k < nr; k++) {
    folioBugOn(core, tab[off + k] !== head + k, head, '__swap_cache_del_folio: slot caches another folio');
    tab[off + k] = 0;
    m.priv[head + k] = 0;
    if (map[off + k] === 0) si.slotFreed(off + k);
  }
  m.flags[head] &= ~PG_swapcache;
  core.vmstat.nr_swapcached -= nr;
  folioBugOn(core, m.refcount[head] <= nr, head, 'swap_cache_del_folio: the caller holds no reference');
  m.refcount[head] -= nr;
}

/**
 * Models swap_cache_get_folio() (mm/swap_state.c): the folio cached for an entry, with a
 * reference taken (folio_try_get()), or -1. The caller checks folio_matches_swap_entry() under
 * the folio lock.
 */
export function swapCacheGetFolio(core: Core, entry: number): number {
  const si = swapEntryToInfo(core, entry);
  if (!si?.materialised) return -1;
  const pfn = si.table[swpEntryOffset(entry)];
  if (pfn === 0) return -1;
  const head = core.map.head[pfn];
  return folioTryGet(core, head) ? head : -1;
}

/**
 * Models folio_matches_swap_entry() (mm/swap.h): the folio is still in the swap cache and
 * covers `entry` (folio->swap <= entry < folio->swap + nr).
 */
export function folioMatchesSwapEntry(core: Core, head: number, entry: number): boolean {
  const m = core.map;
  if (!(m.flags[head] & PG_swapcache)) return false;
  const first = m.priv[head];
  return entry >= first && entry < first + m.folioNrPages(head);
}

/**
 * Models swap_duplicate() / folio_dup_swap() (mm/swapfile.c): one more swap PTE holds each of
 * the nr entries from `entry` (fork's copy_nonpresent_pte(), try_to_unmap_one()). The model's
 * counts do not overflow (no swap count continuation), so this cannot fail for a slot in use;
 * -ENOENT (nothing changed) when a slot is free.
 */
export function swapDuplicate(core: Core, entry: number, nr = 1): number {
  const si = infoOf(core, entry, 'swap_duplicate');
  const off = swpEntryOffset(entry);
  const map = si.swapMap;
  for (let k = 0; k < nr; k++) if (si.slotFree(off + k)) return -ENOENT;
  for (let k = 0; k < nr; k++) map[off + k]++;
  return 0;
}

/**
 * Models swap_free_nr() / folio_put_swap(): nr swap PTEs gave up their entries (do_swap_page()
 * mapped the page in their place). A slot without count and without cache is freed.
 */
export function swapFreeNr(core: Core, entry: number, nr = 1): void {
  const si = infoOf(core, entry, 'swap_free_nr');
  const off = swpEntryOffset(entry);
  const map = si.swapMap;
  for (let k = 0; k < nr; k++) {
    if (map[off + k] <= 0)
      throw new ModelBug(`swap_free_nr: swap count underflow at ${swpEntryName(entry + k)}`);
    map[off + k]--;
    if (map[off + k] === 0 && si.table[off + k] === 0) si.slotFreed(off + k);
  }
}

/**
 * Models free_swap_and_cache_nr() (mm/swapfile.c): zap_nonpresent_ptes() drops nr swap PTEs;
 * entries whose count reaches zero while a folio still caches them get
 * __try_to_reclaim_swap(TTRS_UNMAPPED | TTRS_FULL): the cache folio is dropped when it is no
 * longer mapped (or swap is more than half full) and its lock can be taken at once.
 */
export function freeSwapAndCacheNr(core: Core, entry: number, nr = 1): void {
  const si = infoOf(core, entry, 'free_swap_and_cache_nr');
  const off = swpEntryOffset(entry);
  const map = si.swapMap;
  const tab = si.table;
  let onlyCache = false;
  for (let k = 0; k < nr; k++) {
    if (map[off + k] <= 0)
      throw new ModelBug(`free_swap_and_cache_nr: swap count underflow at ${swpEntryName(entry + k)}`);
    map[off + k]--;
    if (map[off + k] !== 0) continue;
    if (tab[off + k] === 0) si.slotFreed(off + k);
    else onlyCache = true;
  }
  if (!onlyCache) return;
  for (let o = off; o < off + nr; ) {
    let step = 1;
    if (map[o] === 0 && tab[o] !== 0) {
      const r = tryToReclaimSwap(core, swpEntryVal(si.type, o), TTRS_UNMAPPED | TTRS_FULL);
      const n = r === 0 ? 1 : Math.abs(r);
      // Folios are naturally aligned in swap: advance to the folio's end.
      step = Math.ceil((o + 1) / n) * n - o;
    }
    o += step;
  }
}

/**
 * Models __try_to_reclaim_swap() (mm/swapfile.c): drop the swap cache folio of `entry` when the
 * flags allow it (TTRS_ANYWAY; TTRS_UNMAPPED and not mapped; TTRS_FULL and vm_swap_full()) and
 * no slot of it has a swap count. Returns the folio's page count when reclaimed, its negation
 * when not, 0 when no folio caches the entry.
 */
export function tryToReclaimSwap(core: Core, entry: number, flags: number): number {
  const folio = swapCacheGetFolio(core, entry);
  if (folio < 0) return 0;
  const nr = core.map.folioNrPages(folio);
  let ret = -nr;
  if (folioTrylock(core, folio)) {
    const need =
      (flags & TTRS_ANYWAY) !== 0 ||
      ((flags & TTRS_UNMAPPED) !== 0 && !folioMapped(core, folio)) ||
      ((flags & TTRS_FULL) !== 0 && vmSwapFull(core));
    if (need && folioSwapcacheFreeable(core, folio) && !folioSwapped(core, folio)) {
      swapCacheDelFolio(core, folio);
      core.map.flags[folio] |= PG_dirty;
      ret = nr;
    }
    folioUnlock(core, folio);
  }
  folioPut(core, folio);
  return ret;
}

/** Models folio_swapcache_freeable(): in the swap cache and not under writeback. */
function folioSwapcacheFreeable(core: Core, head: number): boolean {
  const f = core.map.flags[head];
  return (f & PG_swapcache) !== 0 && !(f & PG_writeback);
}

/**
 * Models folio_swapped() (mm/swapfile.c): some slot of the swap-cache folio still has a swap
 * count (a swap PTE somewhere holds it).
 */
export function folioSwapped(core: Core, head: number): boolean {
  const m = core.map;
  const entry = m.priv[head];
  const si = infoOf(core, entry, 'folio_swapped');
  const off = swpEntryOffset(entry);
  const nr = m.folioNrPages(head);
  const map = si.swapMap;
  for (let k = 0; k < nr; k++) if (map[off + k] > 0) return true;
  return false;
}

/**
 * Models folio_free_swap() (mm/swapfile.c): a locked swap-cache folio whose slots no swap PTE
 * holds any more leaves the swap cache (the slots are freed) and becomes dirty (its data now
 * lives only in memory). Returns whether it did.
 */
export function folioFreeSwap(core: Core, head: number): boolean {
  const m = core.map;
  folioBugOn(core, !(m.flags[head] & PG_locked), head, 'folio_free_swap: folio not locked');
  if (!(m.flags[head] & PG_swapcache)) return false;
  if (m.flags[head] & PG_writeback) return false;
  if (folioSwapped(core, head)) return false;
  swapCacheDelFolio(core, head);
  m.flags[head] |= PG_dirty;
  return true;
}

/**
 * Models free_swap_cache() (mm/swap_state.c), called from free_pages_and_swap_cache() when a
 * zap releases a folio: a swap-cache folio that is no longer mapped leaves the swap cache if
 * its lock can be taken at once and no swap PTE holds its slots.
 */
export function freeSwapCache(core: Core, head: number): void {
  const m = core.map;
  if (!(m.flags[head] & PG_swapcache) || folioMapped(core, head)) return;
  if (!folioTrylock(core, head)) return;
  folioFreeSwap(core, head);
  folioUnlock(core, head);
}
