/**
 * Page reclaim of isolated folios (mm/vmscan.c: reclaim_pages(), shrink_folio_list(),
 * pageout(), __remove_mapping()) and the unmapping it needs (mm/rmap.c: try_to_unmap() with
 * try_to_unmap_one()'s anonymous branch). This is what MADV_PAGEOUT runs on the folios
 * madvise_cold_or_pageout_pte_range() isolated: an anonymous folio gets swap slots and joins
 * the swap cache (folio_alloc_swap(); a PMD-sized THP takes a whole cluster, or is split when
 * none is free), every mapping becomes a swap PTE (a PMD is split first: TTU_SPLIT_HUGE_PMD),
 * the folio is written to its slots and freed.
 *
 * What is kept instead of reclaimed, as in the kernel: a folio that may be DMA-pinned, one
 * whose unmapping failed (an exclusive page that may be pinned, an mlocked VMA), one with
 * references beyond the mappings, the cache and the isolation (pageout() PAGE_KEEP: it stays in
 * the swap cache, already unmapped). Model limits: page-cache (shmem) folios are not
 * reclaimed (shmem_writeout() is not modelled: they go back to the LRU untouched); zone-device
 * folios are never on an LRU, so they never get here (and are kept if handed in).
 */
import { EBUSY, HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import {
  folioBugOn,
  folioIsZoneDevice,
  folioMapcount,
  folioMapped,
  folioMaybeDmaPinned,
  folioPut,
  folioRemoveRmapPmd,
  folioRemoveRmapPtes,
  folioTrylock,
  folioUnlock,
} from '../folio.js';
import { KernelBug } from '../kernel-bug.js';
import {
  _PAGE_DIRTY,
  _PAGE_SOFT_DIRTY,
  _PAGE_SWP_EXCLUSIVE,
  _PAGE_SWP_SOFT_DIRTY,
  _PAGE_SWP_UFFD_WP,
  _PAGE_UFFD_WP,
  entryPresent,
  mkHi,
  mkSwapPteLo,
  SWP_DEVICE_EXCLUSIVE,
  swpType,
} from '../pgtable/entry.js';
import {
  PG_anon,
  PG_anon_exclusive,
  PG_deferred_split,
  PG_dirty,
  PG_head,
  PG_hugetlb,
  PG_lru,
  PG_partially_mapped,
  PG_swapbacked,
  PG_swapcache,
  PG_writeback,
} from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { addMmCounter, mmCounter } from './counters.js';
import { pmdIsHuge, splitHugePmdLocked, zapDepositedTable } from './huge.js';
import { pmdLock, pteLock, ptlUnlock } from './locking.js';
import { withInvalidationSync } from './notifier.js';
import { pmdIndex, pteIndex, ptHi, ptLo, ptSet } from './pgtable.js';
import { PageVmaMappedWalk } from './pvmw.js';
import { rmapLockRead, rmapUnlockRead, rmapVmas, TTU_SPLIT_HUGE_PMD } from './rmap.js';
import { splitFolioMapped } from './split.js';
import { swapWriteout } from './swap-state.js';
import {
  folioAllocSwap,
  folioFreeSwap,
  swapCacheDelFolio,
  swapDuplicate,
  swapFreeNr,
  swpEntryOffset,
  swpEntryType,
  vmSwapFull,
} from './swapfile.js';
import { countMthpStat } from './thp-orders.js';
import { MMU_NOTIFY_CLEAR, VM_LOCKED, type Vma } from './types.js';

/** Models TTU_SYNC (enum ttu_flags): take the page-table lock even for a PTE that looks none. */
export const TTU_SYNC = 0x10;
/** Models TTU_IGNORE_MLOCK. */
export const TTU_IGNORE_MLOCK = 0x8;
/** Models TTU_RMAP_LOCKED: the caller holds the folio's rmap lock (a folio split's unmap_folio()). */
export const TTU_RMAP_LOCKED = 0x80;

/**
 * Models folio_try_share_anon_rmap_pte() (include/linux/rmap.h): an exclusive anonymous page
 * that is about to be shared (its PTE replaced by a swap entry) loses PageAnonExclusive,
 * unless the folio may be pinned: -EBUSY then.
 */
function folioTryShareAnonRmapPte(core: Core, head: number, page: number): number {
  if (folioMaybeDmaPinned(core, head)) return -EBUSY;
  core.map.flags[page] &= ~PG_anon_exclusive;
  return 0;
}

/**
 * Models __discard_anon_folio_pmd_locked() / unmap_huge_pmd_locked() (mm/huge_memory.c) for a
 * lazy-free PMD-mapped THP under the PMD lock: a clean folio with no reference beyond its
 * mappings and the caller's is discarded (PMD cleared, deposit freed); a dirty one becomes
 * swap-backed again. Returns whether it was discarded.
 */
function discardAnonFolioPmdLocked(core: Core, vma: Vma, pmdT: number, haddr: number, head: number): boolean {
  const m = core.map;
  const mi = pmdIndex(haddr);
  if (ptLo(core, pmdT, mi) & _PAGE_DIRTY) m.flags[head] |= PG_dirty;
  if (m.flags[head] & PG_dirty) {
    m.flags[head] |= PG_swapbacked;
    return false;
  }
  if (m.refcount[head] !== folioMapcount(core, head) + 1) return false;
  ptSet(core, pmdT, mi, 0, 0);
  vma.mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
  zapDepositedTable(core, vma.mm, haddr);
  addMmCounter(vma.mm, 'MM_ANONPAGES', -HPAGE_PMD_NR);
  folioRemoveRmapPmd(core, head);
  folioPut(core, head);
  return true;
}

/**
 * Models try_to_unmap_one() (mm/rmap.c) after its MMU_NOTIFY_CLEAR invalidation started, for
 * one VMA: every mapping of the folio found by page_vma_mapped_walk() is removed. A PMD mapping
 * is split first with TTU_SPLIT_HUGE_PMD (then its PTEs are walked), or discarded whole for a
 * clean lazy-free THP. A present (or device-exclusive) PTE of a swap-backed anonymous folio
 * becomes the swap PTE of its page's entry (swap_duplicate(); exclusive marker when the page
 * was PageAnonExclusive, soft-dirty / uffd-wp carried over; MM_ANONPAGES -1, MM_SWAPENTS +1);
 * a clean lazy-free page is dropped; a page-cache page is dropped. Returns true to stop the
 * rmap walk (walk_abort: the folio stays mapped, the failing PTE is restored).
 */
function tryToUnmapOne(core: Core, vma: Vma, head: number, addr: number, flagsArg: number): boolean {
  const m = core.map;
  const nr = m.folioNrPages(head);
  let flags = flagsArg;
  const pvmw = new PageVmaMappedWalk(core, vma, head, nr, addr, false);
  while (pvmw.walk()) {
    // The folio is in an mlock()ed VMA: it must not be swapped out.
    if (!(flags & TTU_IGNORE_MLOCK) && vma.flags & VM_LOCKED) return true;
    if (!pvmw.pte) {
      const pmdT = pvmw.pmdT;
      const haddr = pvmw.address;
      const ptl = pmdLock(core, pmdT, 'try_to_unmap_one');
      try {
        if (!pmdIsHuge(ptLo(core, pmdT, pmdIndex(haddr)), ptHi(core, pmdT, pmdIndex(haddr)))) continue;
        if (m.flags[head] & PG_anon && !(m.flags[head] & PG_swapbacked)) {
          if (discardAnonFolioPmdLocked(core, vma, pmdT, haddr, head)) continue;
          return true;
        }
        if (!(flags & TTU_SPLIT_HUGE_PMD))
          throw new KernelBug(
            'try_to_unmap_one',
            'VM_BUG_ON_FOLIO(!pvmw.pte, folio): PMD-mapped THP without TTU_SPLIT_HUGE_PMD',
            [],
          );
        splitHugePmdLocked(core, vma, pmdT, haddr, false);
      } finally {
        ptlUnlock(core, ptl, 'try_to_unmap_one');
      }
      // page_vma_mapped_walk_restart(): walk again to process the PTE-mapped THP.
      flags &= ~TTU_SPLIT_HUGE_PMD;
      pvmw.restart();
      continue;
    }
    const ptl = pteLock(core, pvmw.pteT, 'try_to_unmap_one');
    const stop = unmapPte(core, vma, head, pvmw.pteT, pvmw.address, pvmw.pfn);
    ptlUnlock(core, ptl, 'try_to_unmap_one');
    if (stop) return true;
    if (!folioMapped(core, head)) break;
  }
  return false;
}

/** try_to_unmap_one() for one PTE under its lock: true to abort the walk (PTE restored). */
function unmapPte(core: Core, vma: Vma, head: number, pteT: number, addr: number, page: number): boolean {
  const m = core.map;
  const mm = vma.mm;
  const i = pteIndex(addr);
  const lo = ptLo(core, pteT, i);
  const hi = ptHi(core, pteT, i);
  const present = entryPresent(lo);
  if (!present) {
    // "Handle PFN swap PTEs, such as device-exclusive ones, that actually map pages": the
    // entry is unmapped like a present PTE (an anonymous page gets its swap PTE; the device
    // loses its exclusive access through the MMU_NOTIFY_CLEAR invalidation). v6.19 warns only
    // for hugetlb, which never gets here.
    if (swpType(lo) !== SWP_DEVICE_EXCLUSIVE) return false;
    if (m.flags[head] & PG_hugetlb)
      core.warn('try_to_unmap_one: VM_WARN_ON_FOLIO(folio_test_hugetlb(folio)) for a device-exclusive PTE');
  }
  const anonExclusive = (m.flags[head] & PG_anon) !== 0 && (m.flags[page] & PG_anon_exclusive) !== 0;
  // Nuke the page table entry; move its dirty bit to the folio.
  ptSet(core, pteT, i, 0, 0);
  mm.tlb.flushRange(addr, addr + PAGE_SIZE);
  if (present && lo & _PAGE_DIRTY) m.flags[head] |= PG_dirty;
  const restore = () => ptSet(core, pteT, i, lo, hi);
  if (m.flags[head] & PG_anon) {
    const swapbacked = (m.flags[head] & PG_swapbacked) !== 0;
    const swapcache = (m.flags[head] & PG_swapcache) !== 0;
    if (swapbacked !== swapcache) {
      core.warn(
        'try_to_unmap_one: WARN_ON_ONCE(folio_test_swapbacked(folio) != folio_test_swapcache(folio))',
      );
      restore();
      return true;
    }
    if (!swapbacked) {
      // MADV_FREE page: redirtied (through the PTE or a GUP reference) -> swap-backed again;
      // extra references -> leave it; else discard.
      if (m.flags[head] & PG_dirty) {
        restore();
        m.flags[head] |= PG_swapbacked;
        return true;
      }
      if (m.refcount[head] !== 1 + folioMapcount(core, head)) {
        restore();
        return true;
      }
      addMmCounter(mm, 'MM_ANONPAGES', -1);
    } else {
      const entry = m.priv[page];
      if (swapDuplicate(core, entry) < 0) {
        restore();
        return true;
      }
      // See folio_try_share_anon_rmap(): clear the PTE first.
      if (anonExclusive && folioTryShareAnonRmapPte(core, head, page) < 0) {
        swapFreeNr(core, entry);
        restore();
        return true;
      }
      addMmCounter(mm, 'MM_ANONPAGES', -1);
      addMmCounter(mm, 'MM_SWAPENTS', 1);
      let bits = anonExclusive ? _PAGE_SWP_EXCLUSIVE : 0;
      if (present) {
        if (lo & _PAGE_SOFT_DIRTY) bits |= _PAGE_SWP_SOFT_DIRTY;
        if (lo & _PAGE_UFFD_WP) bits |= _PAGE_SWP_UFFD_WP;
      } else bits |= lo & (_PAGE_SWP_SOFT_DIRTY | _PAGE_SWP_UFFD_WP);
      const off = swpEntryOffset(entry);
      ptSet(core, pteT, i, mkSwapPteLo(swpEntryType(entry), off, bits), mkHi(off));
    }
  } else {
    addMmCounter(mm, mmCounter(core, head), -1);
  }
  // discard: folio_remove_rmap_ptes() and the mapping's reference (never the last: the caller
  // holds the isolation reference).
  folioRemoveRmapPtes(core, head, page, 1);
  folioPut(core, head);
  return false;
}

/**
 * Models try_to_unmap() (mm/rmap.c) for a locked folio: rmap_walk() under the folio's rmap lock
 * (read; with TTU_RMAP_LOCKED the caller holds it: rmap_walk_locked()), try_to_unmap_one() per
 * VMA under an MMU_NOTIFY_CLEAR invalidation of the folio's range in it, until the folio is no
 * longer mapped (folio_not_mapped()) or a mapping cannot be removed. The caller checks
 * folio_mapped() afterwards.
 */
export function* tryToUnmap(core: Core, head: number, flags: number): KGen {
  const m = core.map;
  const nr = m.folioNrPages(head);
  const lock = flags & TTU_RMAP_LOCKED ? null : yield* rmapLockRead(core, head, 'try_to_unmap');
  try {
    for (const { vma, addr } of rmapVmas(core, head)) {
      const stop = yield* withInvalidationSync(
        vma.mm,
        Math.max(addr, vma.start),
        Math.min(addr + nr * PAGE_SIZE, vma.end),
        MMU_NOTIFY_CLEAR,
        null,
        () => tryToUnmapOne(core, vma, head, addr, flags),
      );
      if (stop || !folioMapped(core, head)) return;
    }
  } finally {
    rmapUnlockRead(core, lock, 'try_to_unmap');
  }
}

/** What pageout() says about a dirty folio (enum pageout_t). */
type Pageout = 'keep' | 'activate' | 'success' | 'clean';

/**
 * Models pageout() (mm/vmscan.c) for a locked, unmapped, dirty swap-cache folio: kept when
 * someone beyond the isolation and the cache holds a reference (is_page_cache_freeable()),
 * else cleaned (folio_clear_dirty_for_io()) and written (swap_writeout(), which unlocks).
 */
function pageout(core: Core, head: number): Pageout {
  const m = core.map;
  if (m.refcount[head] !== 1 + m.folioNrPages(head)) return 'keep';
  // No mapping (not in the swap cache): nothing to write to.
  if (!(m.flags[head] & PG_swapcache)) return 'keep';
  if (!(m.flags[head] & PG_dirty)) return 'clean';
  m.flags[head] &= ~PG_dirty;
  swapWriteout(core, head);
  return 'success';
}

/**
 * Models __remove_mapping() (mm/vmscan.c) for a locked swap-cache folio: only when the cache
 * and the isolation hold the only references (folio_ref_freeze(folio, 1 + nr)) and the folio
 * is clean, it leaves the swap cache (__swap_cache_del_folio(): slots without swap count are
 * freed, the others stay for their swap PTEs). Returns whether it did.
 */
function removeMapping(core: Core, head: number): boolean {
  const m = core.map;
  if (!(m.flags[head] & PG_swapcache)) return false;
  if (m.refcount[head] !== 1 + m.folioNrPages(head)) return false;
  if (m.flags[head] & PG_dirty) return false;
  swapCacheDelFolio(core, head);
  return true;
}

/** Models struct reclaim_stat (the parts the model keeps): per-call counters of shrink_folio_list(). */
export interface ReclaimStat {
  /** Folios (pages) written to swap (nr_pageout). */
  nrPageout: number;
  /** Pages whose unmapping failed (nr_unmap_fail). */
  nrUnmapFail: number;
}

/**
 * Models shrink_folio_list() (mm/vmscan.c) with ignore_references (reclaim_pages()) over
 * isolated, unlocked folios, each holding the isolation reference. Returns the pages reclaimed
 * (freed); folios that stay are appended to `kept` with their isolation reference. Large folios
 * that must be split put their new pieces on `list` for their own pass.
 */
function* shrinkFolioList(core: Core, list: number[], kept: number[], stat: ReclaimStat): KGen<number> {
  const m = core.map;
  let reclaimed = 0;
  while (list.length > 0) {
    const folio = list.shift() as number;
    if (core.sched.preempt('shrink_folio_list: next folio')) yield RESCHED;
    if (!folioTrylock(core, folio)) {
      kept.push(folio);
      continue;
    }
    const outcome = yield* shrinkOne(core, folio, list, stat);
    if (outcome === 'freed') {
      reclaimed += m.folioNrPages(folio);
      // free_it: the isolation reference is the last one.
      folioBugOn(core, m.refcount[folio] !== 1, folio, 'shrink_folio_list: freeing a folio with references');
      folioPut(core, folio);
      continue;
    }
    if (outcome === 'activate') {
      // activate_locked: not a candidate for swapping, so reclaim swap space.
      if (m.flags[folio] & PG_swapcache && vmSwapFull(core)) folioFreeSwap(core, folio);
    }
    if (outcome !== 'kept-unlocked') folioUnlock(core, folio);
    kept.push(folio);
  }
  return reclaimed;
}

/** One folio of shrink_folio_list(), locked: what became of it. */
type ShrinkOutcome = 'freed' | 'activate' | 'keep' | 'kept-unlocked';

function* shrinkOne(core: Core, folio: number, list: number[], stat: ReclaimStat): KGen<ShrinkOutcome> {
  const m = core.map;
  // Model: zone-device folios are never on an LRU (a device-coherent page is not), and
  // page-cache folios would need shmem_writeout(), which is not modelled.
  if (folioIsZoneDevice(core, folio) || !(m.flags[folio] & PG_anon)) return 'activate';
  let head = folio;
  const lazyfree = !(m.flags[head] & PG_swapbacked);
  if (!lazyfree && !(m.flags[head] & PG_swapcache)) {
    if (folioMaybeDmaPinned(core, head)) return 'keep';
    if (m.flags[head] & PG_head) {
      // Cannot split a folio with references beyond its mappings and the isolation.
      if (m.refcount[head] - 1 !== folioMapcount(core, head)) return 'activate';
      // Split partially mapped folios right away: the unmapped pages are freed without I/O.
      if (m.flags[head] & PG_deferred_split && m.flags[head] & PG_partially_mapped) {
        if ((yield* splitFolioMapped(core, head, head, 0, list)) !== 0) return 'activate';
      }
    }
    if (folioAllocSwap(core, head) < 0) {
      if (!(m.flags[head] & PG_head)) return 'activate';
      const order = m.folioOrder(head);
      // Fall back to swapping out the pages one by one: split, the tail pages take their own
      // pass through the list.
      if ((yield* splitFolioMapped(core, head, head, 0, list)) !== 0) return 'activate';
      if (order === HPAGE_PMD_ORDER) core.vmstat.thp_swpout_fallback++;
      countMthpStat(core, order, 'swpout_fallback');
      head = m.head[folio];
      if (folioAllocSwap(core, head) < 0) return 'activate';
    }
    // Always dirty: a MADV_FREE'd page whose PTE was clean must still be written.
    m.flags[head] |= PG_dirty;
  }
  const nr = m.folioNrPages(head);
  if (folioMapped(core, head)) {
    let flags = 0;
    if (m.folioOrder(head) === HPAGE_PMD_ORDER) flags |= TTU_SPLIT_HUGE_PMD;
    if (nr > 1) flags |= TTU_SYNC;
    yield* tryToUnmap(core, head, flags);
    if (folioMapped(core, head)) {
      stat.nrUnmapFail += nr;
      return 'activate';
    }
  }
  // Unmapped now, so it cannot be newly pinned; a pinned folio is not reclaimed.
  if (folioMaybeDmaPinned(core, head)) return 'activate';
  if (lazyfree) {
    // The only reference left must be the isolation's; a redirtied folio is kept.
    if (m.refcount[head] !== 1 || m.flags[head] & PG_dirty) return 'keep';
    core.vmstat.pglazyfreed += nr;
    folioUnlock(core, head);
    return 'freed';
  }
  if (m.flags[head] & PG_dirty) {
    switch (pageout(core, head)) {
      case 'keep':
        return 'keep';
      case 'activate':
        return 'activate';
      case 'clean':
        break;
      case 'success':
        stat.nrPageout += nr;
        // The write completed synchronously and swap_writeout() unlocked the folio.
        if (m.flags[head] & PG_writeback || m.flags[head] & PG_dirty) return 'kept-unlocked';
        if (!folioTrylock(core, head)) return 'kept-unlocked';
        if (m.flags[head] & (PG_dirty | PG_writeback)) return 'keep';
        break;
    }
  }
  if (!removeMapping(core, head)) return 'keep';
  folioUnlock(core, head);
  return 'freed';
}

/**
 * Models reclaim_pages() (mm/vmscan.c) -> reclaim_folio_list() -> shrink_folio_list() with
 * ignore_references, as MADV_PAGEOUT calls it: `folios` were isolated from the LRU by
 * folio_isolate_lru() (PG_lru cleared, one reference each). Anonymous folios are swapped out
 * and freed when nothing keeps them; every folio not reclaimed goes back to the LRU
 * (folio_putback_lru(): PG_lru set, isolation reference dropped). Returns the number of pages
 * reclaimed.
 */
export function* reclaimPages(core: Core, folios: readonly number[], stat?: ReclaimStat): KGen<number> {
  if (folios.length === 0) return 0;
  if (core.sched.preempt('reclaim_pages: folios isolated from the LRU')) yield RESCHED;
  const list = [...folios];
  const kept: number[] = [];
  const st = stat ?? { nrPageout: 0, nrUnmapFail: 0 };
  const reclaimed = yield* shrinkFolioList(core, list, kept, st);
  const m = core.map;
  for (const f of kept) {
    // Zone-device folios were never on an LRU: they go back without PG_lru.
    if (!folioIsZoneDevice(core, f)) m.flags[f] |= PG_lru;
    folioPut(core, f);
  }
  return reclaimed;
}
