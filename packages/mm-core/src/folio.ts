import { type Core, MEMORY_DEVICE_PRIVATE } from './core.js';
import { ModelBug } from './errors.js';
import { KernelBug } from './kernel-bug.js';
import { oomCurrent } from './oom.js';
import { ALLOC_NO_WATERMARKS, ALLOC_OOM } from './phys/buddy.js';
import {
  FOLIO_FLAGS,
  PG_anon,
  PG_anon_exclusive,
  PG_deferred_split,
  PG_head,
  PG_hugetlb,
  PG_large_rmappable,
  PG_locked,
  PG_lru,
  PG_partially_mapped,
  PG_present_section,
  PG_reserved,
  PG_swapbacked,
  PG_swapcache,
  PG_tail,
  PG_zone_device,
} from './phys/memmap.js';

/** Models dump_page(): a one-line description of a folio for bug reports and the shell. */
export function dumpFolio(core: Core, pfn: number): string {
  const m = core.map;
  if (!m.valid(pfn)) return `pfn 0x${pfn.toString(16)}: invalid`;
  const h = m.head[pfn];
  const f = m.flags[h];
  const names: string[] = [];
  const bits: [number, string][] = [
    [PG_locked, 'locked'],
    [PG_lru, 'lru'],
    [PG_head, 'head'],
    [PG_anon, 'anon'],
    [PG_anon_exclusive, 'exclusive'],
    [PG_zone_device, 'zone_device'],
    [PG_large_rmappable, 'large_rmappable'],
    [PG_reserved, 'reserved'],
    [PG_hugetlb, 'hugetlb'],
    [PG_swapbacked, 'swapbacked'],
    [PG_swapcache, 'swapcache'],
  ];
  for (const [b, n] of bits) if (f & b) names.push(n);
  return (
    `page pfn:0x${pfn.toString(16)} head:0x${h.toString(16)} order:${m.folioOrder(h)} ` +
    `refcount:${m.refcount[h]} mapcount:${m.mapcount[pfn]} entire:${m.entireMapcount[h]} ` +
    `large:${m.largeMapcount[h]} pgmap:${m.pgmap[pfn]} flags:${names.join('|') || '0'}`
  );
}

/**
 * Models VM_BUG_ON_FOLIO(): the kernel's assertion fails, a modelled kernel BUG. `msg` starts
 * with the kernel function's name ("folio_put: refcount underflow").
 */
export function folioBugOn(core: Core, cond: boolean, pfn: number, msg: string): void {
  if (cond) folioBug(core, pfn, msg);
}

/** The KernelBug of a failed {@link folioBugOn} (out of line: the check is inlined per page). */
function folioBug(core: Core, pfn: number, msg: string): never {
  const m = /^([a-z_0-9]+): (.*)$/s.exec(msg);
  throw new KernelBug(m ? m[1] : 'VM_BUG_ON_FOLIO', m ? m[2] : msg, [dumpFolio(core, pfn)]);
}

/** Models prep_compound_page() + folio_set_large_rmappable(): make [head, head + 2^order) one folio. */
export function prepCompound(core: Core, head: number, order: number, rmappable: boolean): void {
  const m = core.map;
  m.entireMapcount[head] = 0;
  m.largeMapcount[head] = 0;
  m.pincount[head] = 0;
  if (order === 0) {
    m.flags[head] &= ~(PG_head | PG_tail);
    m.order[head] = 0;
    m.head[head] = head;
    return;
  }
  m.flags[head] = (m.flags[head] & ~PG_tail) | PG_head | (rmappable ? PG_large_rmappable : 0);
  m.order[head] = order;
  m.head[head] = head;
  const n = 1 << order;
  for (let i = 1; i < n; i++) {
    const p = head + i;
    m.flags[p] = (m.flags[p] & (PG_present_section | PG_zone_device)) | PG_tail;
    m.head[p] = head;
    m.order[p] = 0;
    m.refcount[p] = 0;
  }
}

/**
 * Model-only {@link allocFolio} / {@link allocPages} flag: the gfp mask has __GFP_NOMEMALLOC
 * (GFP_TRANSHUGE_LIGHT and GFP_TRANSHUGE do: a THP fault, shmem's huge folio, khugepaged's
 * collapse), so not even an OOM victim may take the reserves.
 */
export const GFP_NOMEMALLOC = 0x100;

/**
 * Models alloc_pages() as far as the zone's reserves go: get_page_from_freelist() against the min
 * watermark (or none, with ALLOC_NO_WATERMARKS in `flags`); when that fails for lack of memory,
 * the slow path's __gfp_pfmemalloc_flags(): an allocation by an OOM victim (oom_reserves_allowed():
 * tsk_is_oom_victim(current), never a kernel thread) without {@link GFP_NOMEMALLOC} tries again
 * with ALLOC_OOM. Reclaim and the OOM killer are the callers' (faultOomSlowpath(),
 * allocFolioNoFail()). Returns the first pfn or -1; a failure for lack of memory is counted in
 * the running task's allocShortFailures.
 */
export function allocPages(core: Core, order: number, flags = 0): number {
  const zone = core.zone;
  let pfn = zone.alloc(order, flags & ALLOC_NO_WATERMARKS);
  if (pfn >= 0) return pfn;
  const short = zone.lastFailShort;
  if (short && !(flags & (GFP_NOMEMALLOC | ALLOC_NO_WATERMARKS)) && oomCurrent(core)?.oomVictim === true) {
    pfn = zone.alloc(order, ALLOC_OOM);
    if (pfn >= 0) return pfn;
  }
  if (short || zone.lastFailShort) core.sched.current.allocShortFailures++;
  return -1;
}

/**
 * Models folio_alloc()/alloc_pages(): take 2^order pages from the buddy zone ({@link allocPages},
 * `flags` as there) and prepare a folio with refcount 1. Returns the head pfn or -1 on failure
 * (fragmentation, injection, or below the watermark the allocation may go to).
 */
export function allocFolio(core: Core, order: number, zeroed: boolean, flags = 0): number {
  const pfn = allocPages(core, order, flags);
  if (pfn < 0) return -1;
  const m = core.map;
  const n = 1 << order;
  for (let i = 0; i < n; i++) {
    const p = pfn + i;
    m.flags[p] = PG_present_section;
    m.mapcount[p] = 0;
    m.mapping[p] = 0;
    m.index[p] = 0;
    m.priv[p] = 0;
    m.pgmap[p] = 0;
    m.head[p] = p;
  }
  m.refcount[pfn] = 1;
  if (order > 0) prepCompound(core, pfn, order, true);
  if (zeroed) core.frames.zero(pfn, n);
  core.vmstat.pgalloc_normal += n;
  return pfn;
}

/** Models folio_get(). */
export function folioGet(core: Core, head: number, nr = 1): void {
  core.map.refcount[head] += nr;
}

/** Models folio_try_get(): fails on a folio whose refcount is zero (being freed / free). */
export function folioTryGet(core: Core, head: number): boolean {
  if (core.map.refcount[head] <= 0) return false;
  core.map.refcount[head]++;
  return true;
}

/** Models folio_ref_count(). */
export function folioRefCount(core: Core, head: number): number {
  return core.map.refcount[head];
}

/** Models folio_is_zone_device(). */
export function folioIsZoneDevice(core: Core, head: number): boolean {
  return (core.map.flags[head] & PG_zone_device) !== 0;
}

/** Models folio_is_device_private(). */
export function folioIsDevicePrivate(core: Core, head: number): boolean {
  if (!(core.map.flags[head] & PG_zone_device)) return false;
  return core.pgmapOf(head)?.type === MEMORY_DEVICE_PRIVATE;
}

/** Models folio_test_anon(). */
export function folioTestAnon(core: Core, head: number): boolean {
  return (core.map.flags[head] & PG_anon) !== 0;
}

/** Models folio_test_large(). */
export function folioTestLarge(core: Core, head: number): boolean {
  return (core.map.flags[head] & PG_head) !== 0;
}

/** Models folio_trylock(); the owner is recorded for lock reports. */
export function folioTrylock(core: Core, head: number): boolean {
  const m = core.map;
  if (m.flags[head] & PG_locked) return false;
  m.flags[head] |= PG_locked;
  core.folioLockOwners.set(head, core.sched.current);
  core.events.folioLocks++;
  return true;
}

/**
 * Models folio_lock() of a folio nobody else can hold (a folio just allocated or isolated by the
 * caller). A contended lock needs the sleeping folioLockWait() (mm/locking.ts); here it is a
 * model bug.
 */
export function folioLock(core: Core, head: number): void {
  if (!folioTrylock(core, head))
    throw new ModelBug(
      'folio_lock of a folio held by another task needs folioLockWait()',
      dumpFolio(core, head),
    );
}

/** Models folio_unlock() (any task may unlock, as in the kernel). */
export function folioUnlock(core: Core, head: number): void {
  const m = core.map;
  folioBugOn(core, !(m.flags[head] & PG_locked), head, 'folio_unlock: folio not locked');
  m.flags[head] &= ~PG_locked;
  core.folioLockOwners.forget(head);
}

/** Models folio_test_locked(). */
export function folioTestLocked(core: Core, head: number): boolean {
  return (core.map.flags[head] & PG_locked) !== 0;
}

/**
 * Models folio_mapcount(): PTE mappings of every page plus PMD mappings (entire mapcount).
 */
export function folioMapcount(core: Core, head: number): number {
  const m = core.map;
  return m.flags[head] & PG_head ? m.largeMapcount[head] : m.mapcount[head];
}

/** Models folio_mapped(). */
export function folioMapped(core: Core, head: number): boolean {
  return folioMapcount(core, head) > 0;
}

/** Models folio_maybe_dma_pinned(): FOLL_PIN references held. */
export function folioMaybeDmaPinned(core: Core, head: number): boolean {
  return core.map.pincount[head] > 0;
}

/** Models __folio_set_anon() for a new anonymous folio: mapping = anon_vma id, index = linear page. */
export function folioSetAnon(core: Core, head: number, anonVmaId: number, index: number): void {
  const m = core.map;
  const n = m.folioNrPages(head);
  m.flags[head] |= PG_anon;
  for (let i = 0; i < n; i++) {
    m.mapping[head + i] = anonVmaId;
    m.index[head + i] = index + i;
  }
}

/**
 * Models folio_add_new_anon_rmap(): a small folio or a large one that is not PMD-mappable
 * (`pmd` false) is mapped by one PTE per page (every page's mapcount 1, the large mapcount the
 * number of pages; the caller holds one reference per page); a PMD-sized one (`pmd` true) by
 * its PMD (entire mapcount 1). Every page (PMD: the folio) is AnonExclusive.
 */
export function folioAddNewAnonRmap(
  core: Core,
  head: number,
  anonVmaId: number,
  index: number,
  pmd: boolean,
): void {
  folioSetAnon(core, head, anonVmaId, index);
  const m = core.map;
  // __folio_set_swapbacked(): anonymous memory is backed by swap (MADV_FREE clears it).
  m.flags[head] |= PG_swapbacked;
  const n = m.folioNrPages(head);
  if (pmd) {
    folioAddRmapPmd(core, head, true);
  } else {
    for (let i = 0; i < n; i++) {
      m.mapcount[head + i] = 1;
      m.flags[head + i] |= PG_anon_exclusive;
    }
    if (m.flags[head] & PG_head) m.largeMapcount[head] = n;
  }
  core.vmstat.nr_anon_pages += n;
}

/** Models folio_add_anon_rmap_ptes()/folio_add_file_rmap_ptes() mapping counts for pages [pfn, pfn+nr). */
export function folioAddRmapPtes(
  core: Core,
  head: number,
  pfn: number,
  nr: number,
  exclusive: boolean,
): void {
  const m = core.map;
  for (let i = 0; i < nr; i++) {
    m.mapcount[pfn + i]++;
    if (exclusive) m.flags[pfn + i] |= PG_anon_exclusive;
  }
  if (m.flags[head] & PG_head) m.largeMapcount[head] += nr;
}

/** Models folio_add_anon_rmap_pmd()/folio_add_file_rmap_pmd() / folio_dup_*_rmap_pmd(). */
export function folioAddRmapPmd(core: Core, head: number, exclusive: boolean): void {
  const m = core.map;
  if (m.entireMapcount[head]++ === 0) {
    if (m.flags[head] & PG_anon) core.vmstat.nr_anon_transparent_hugepages++;
    else if (isShmemThp(m.flags[head])) core.vmstat.nr_shmem_pmdmapped += m.folioNrPages(head);
  }
  m.largeMapcount[head]++;
  if (exclusive) m.flags[head] |= PG_anon_exclusive;
}

/**
 * Models folio_remove_rmap_ptes(): drop PTE mappings of [pfn, pfn+nr). Returns true when
 * __folio_remove_rmap() would find a large folio partially mapped: some of these pages are
 * no longer mapped while the folio still is (the caller queues an anonymous one with
 * deferred_split_folio()).
 */
export function folioRemoveRmapPtes(core: Core, head: number, pfn: number, nr: number): boolean {
  const m = core.map;
  let unmapped = 0;
  for (let i = 0; i < nr; i++) {
    folioBugOn(core, m.mapcount[pfn + i] <= 0, pfn + i, 'folio_remove_rmap_ptes: mapcount underflow');
    m.mapcount[pfn + i]--;
    if (m.mapcount[pfn + i] === 0) {
      m.flags[pfn + i] &= ~PG_anon_exclusive;
      unmapped++;
    }
  }
  if (m.flags[head] & PG_head) {
    m.largeMapcount[head] -= nr;
    folioBugOn(core, m.largeMapcount[head] < 0, head, 'large mapcount underflow');
    return unmapped > 0 && m.largeMapcount[head] > 0;
  }
  return false;
}

/** Models folio_remove_rmap_pmd(). */
export function folioRemoveRmapPmd(core: Core, head: number): void {
  const m = core.map;
  folioBugOn(core, m.entireMapcount[head] <= 0, head, 'folio_remove_rmap_pmd: entire mapcount underflow');
  m.entireMapcount[head]--;
  m.largeMapcount[head]--;
  if (m.entireMapcount[head] === 0) {
    // The head page's AnonExclusive is also its PTE-level bit: __split_huge_pmd_locked()
    // adds the PTE rmaps (exclusive) before removing the PMD rmap, and the kernel never
    // clears the bit on unmap (__folio_remove_rmap()), so keep it while PTE-mapped.
    if (m.mapcount[head] === 0) m.flags[head] &= ~PG_anon_exclusive;
    if (m.flags[head] & PG_anon) core.vmstat.nr_anon_transparent_hugepages--;
    else if (isShmemThp(m.flags[head])) core.vmstat.nr_shmem_pmdmapped -= m.folioNrPages(head);
  }
}

/** A shmem page-cache folio (swap-backed, not anonymous, not hugetlb): NR_SHMEM_PMDMAPPED counts it. */
function isShmemThp(flags: number): boolean {
  return (flags & (PG_anon | PG_hugetlb | PG_zone_device)) === 0 && (flags & PG_swapbacked) !== 0;
}

/** Hooks the page allocator calls back into (set by higher layers; avoids import cycles). */
export interface FreeHooks {
  /** Models free_huge_folio(): return a hugetlb folio to its pool. */
  freeHugetlb?(head: number): void;
}

/** Per-core free hooks. */
const freeHooks = new WeakMap<Core, FreeHooks>();

/** Installs the free hooks of a core (hugetlb pool). */
export function setFreeHooks(core: Core, hooks: FreeHooks): void {
  freeHooks.set(core, hooks);
}

/**
 * Models free_zone_device_folio() (mm/memremap.c): clear anon state of every page, clear the
 * mapping, call pgmap->ops->folio_free() with the folio still large, and drop nr pgmap refs.
 * The order is not reset: the driver must reinitialise on reuse.
 */
export function freeZoneDeviceFolio(core: Core, head: number): void {
  const m = core.map;
  const pgmap = core.pgmapOf(head);
  if (!pgmap) {
    // Bug K6 (mm-core README): v6.19's split of a device-coherent folio clears the new folios'
    // pgmap; freeing one (a zero piece the split remapped to the zero page) dereferences it.
    if (!core.fixed('K6'))
      throw new KernelBug(
        'free_zone_device_folio',
        'NULL pointer dereference: folio->pgmap of a device-coherent folio split by v6.19 (K6)',
        [dumpFolio(core, head)],
        'oops',
      );
    throw new ModelBug('free_zone_device_folio without a pgmap', dumpFolio(core, head));
  }
  const order = m.folioOrder(head);
  const n = 1 << order;
  if (m.flags[head] & PG_anon) core.vmstat.nr_anon_pages -= n;
  for (let i = 0; i < n; i++) {
    m.flags[head + i] &= ~(PG_anon_exclusive | PG_anon | PG_partially_mapped | PG_deferred_split);
    m.mapping[head + i] = 0;
  }
  pgmap.ops.folioFree(head, order);
  pgmap.refs -= n;
}

/**
 * Models __folio_put() -> free_frozen_pages(): the last reference went; return the pages.
 */
export function freeFolio(core: Core, head: number): void {
  const m = core.map;
  const f = m.flags[head];
  if (f & PG_zone_device) {
    freeZoneDeviceFolio(core, head);
    return;
  }
  if (f & PG_hugetlb) {
    const hooks = freeHooks.get(core);
    if (hooks?.freeHugetlb) {
      hooks.freeHugetlb(head);
      return;
    }
  }
  folioBugOn(core, (f & PG_locked) !== 0, head, 'freeing a locked folio');
  folioBugOn(
    core,
    (f & PG_swapcache) !== 0,
    head,
    'free_pages_prepare: freeing a folio still in the swap cache',
  );
  folioBugOn(core, folioMapcount(core, head) !== 0, head, 'freeing a mapped folio');
  const order = m.folioOrder(head);
  const n = 1 << order;
  if (f & PG_anon) core.vmstat.nr_anon_pages -= n;
  for (let i = 0; i < n; i++) {
    const p = head + i;
    m.flags[p] = PG_present_section;
    m.mapping[p] = 0;
    m.mapcount[p] = 0;
    m.priv[p] = 0;
    m.head[p] = p;
    m.refcount[p] = 0;
  }
  m.entireMapcount[head] = 0;
  m.largeMapcount[head] = 0;
  m.pincount[head] = 0;
  m.order[head] = 0;
  core.vmstat.pgfree += n;
  core.zone.free(head, order);
}

/** Models folio_put(): drop a reference; free on zero. */
export function folioPut(core: Core, head: number, nr = 1): void {
  const refcount = core.map.refcount;
  const left = refcount[head] - nr;
  folioBugOn(core, left < 0, head, 'folio_put: refcount underflow');
  refcount[head] = left;
  if (left === 0) freeFolio(core, head);
}

/**
 * Models __split_folio_to_order()'s struct-page work: turn the folio at head into folios of
 * newOrder. Every new folio inherits the folio flags (including PG_locked), mapping and index;
 * per-page mapcounts and AnonExclusive stay per page; each new folio's PMD-level counts are zero.
 * Refcounts of the new folios are left at 0 (frozen) for the caller to set. Returns the new heads.
 */
export function splitFolioMeta(core: Core, head: number, newOrder: number): number[] {
  const m = core.map;
  const order = m.folioOrder(head);
  folioBugOn(core, newOrder >= order, head, 'split to an order not below the folio order');
  const folioFlags = m.flags[head] & FOLIO_FLAGS & ~(PG_partially_mapped | PG_deferred_split);
  // Every new folio inherits the lock, so it inherits the lock's owner too.
  const lockOwner = m.flags[head] & PG_locked ? core.folioLockOwners.get(head) : undefined;
  const n = 1 << order;
  const step = 1 << newOrder;
  const heads: number[] = [];
  for (let i = 0; i < n; i += step) {
    const h = head + i;
    heads.push(h);
    // The tail's pgmap shares storage with compound_head in the kernel: clearing the tail
    // marker wipes it. The folio_split callback (or the core default) restores it.
    if (i !== 0 && m.flags[h] & PG_zone_device) m.pgmap[h] = 0;
    m.flags[h] = (m.flags[h] & ~(PG_tail | PG_head | FOLIO_FLAGS)) | folioFlags;
    m.head[h] = h;
    m.order[h] = 0;
    m.entireMapcount[h] = 0;
    m.pincount[h] = 0;
    let mapped = 0;
    for (let j = 0; j < step; j++) mapped += m.mapcount[h + j];
    if (newOrder > 0) {
      prepCompound(core, h, newOrder, true);
      m.flags[h] |= folioFlags;
      m.largeMapcount[h] = mapped;
    } else {
      m.largeMapcount[h] = 0;
    }
    if (i !== 0) m.refcount[h] = 0;
    if (lockOwner) core.folioLockOwners.set(h, lockOwner);
  }
  return heads;
}
