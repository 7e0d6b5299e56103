/**
 * Direct reclaim (mm/page_alloc.c __alloc_pages_direct_reclaim() -> mm/vmscan.c
 * try_to_free_pages() -> do_try_to_free_pages() -> shrink_node()): what an allocation that found
 * no free page does before the OOM killer. The model runs it where a user fault, a populate or a
 * GUP fault got VM_FAULT_OOM, and retries the fault when reclaim freed memory — which is what
 * the kernel's allocation retry looks like from user space.
 *
 * Model simplifications (documented in the README, "Swap"):
 * - No LRU lists: a clock hand walks the RAM pfns (kept per machine, so successive passes go
 *   on where the last one stopped) and takes the folios that are on an LRU (PG_lru). The
 *   kernel's second chance is kept: folio_check_references() clears the young bits of every
 *   mapping, a folio found young for the first time gets PG_referenced and stays, one found
 *   young again (or mlocked) is "activated" (also stays), one not young is reclaimed. Two
 *   turns of the hand give every folio its second look.
 * - Anonymous (swap-backed) folios are scanned only while swap has a free slot
 *   (can_reclaim_anon_pages()); lazy-free folios (MADV_FREE, PG_swapbacked clear: the kernel
 *   keeps them on the file LRU) always. Page-cache (tmpfs) folios are not reclaimed (no
 *   shmem_writeout()). The deferred-split shrinker (deferred_split_scan()) splits partially
 *   mapped THPs, which frees their unmapped pages.
 * - Progress is "free memory grew" (the kernel retries when did_some_progress, then its
 *   get_page_from_freelist() sees the freed pages); no watermarks, no kswapd, no compaction,
 *   no memcg; a pass with no progress goes straight to out_of_memory() (the kernel retries
 *   up to MAX_RECLAIM_RETRIES times first; the model's reclaim is deterministic, so a retry
 *   without another task running would find nothing either).
 */

import { PAGE_SIZE } from '../constants.js';
import { type Core, RAM_START_PFN } from '../core.js';
import { folioGet, folioIsZoneDevice, folioPut, folioTrylock, folioUnlock } from '../folio.js';
import { _PAGE_ACCESSED, entryPresent } from '../pgtable/entry.js';
import {
  PG_anon,
  PG_head,
  PG_lru,
  PG_partially_mapped,
  PG_referenced,
  PG_swapbacked,
  PG_tail,
} from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { pmdLock, pteLock, ptlUnlock } from './locking.js';
import { pmdIndex, pteIndex, ptHi, ptLo, ptSet } from './pgtable.js';
import { PageVmaMappedWalk } from './pvmw.js';
import { rmapLockRead, rmapUnlockRead, rmapVmas } from './rmap.js';
import { splitFolioMapped } from './split.js';
import { nrSwapPages } from './swapfile.js';
import { VM_LOCKED } from './types.js';
import { reclaimPages } from './vmscan.js';

/** Models SWAP_CLUSTER_MAX (include/linux/swap.h): the batch reclaim works in, and sc->nr_to_reclaim. */
export const SWAP_CLUSTER_MAX = 32;

/** Per-machine reclaim state: the clock hand (the model's stand-in for the LRU order). */
const hands = new WeakMap<Core, { pfn: number }>();

function handOf(core: Core): { pfn: number } {
  let h = hands.get(core);
  if (!h) {
    h = { pfn: RAM_START_PFN };
    hands.set(core, h);
  }
  return h;
}

/** Models enum folio_references (mm/vmscan.c). */
export type FolioReferences = 'activate' | 'keep' | 'reclaim';

/**
 * Models folio_referenced() (mm/rmap.c) for an anonymous folio: an rmap walk under the
 * anon_vma lock (read) that counts and clears the young (accessed) bit of every PTE and PMD
 * mapping the folio (folio_referenced_one(): ptep_clear_flush_young_notify()). A mapping in a
 * VM_LOCKED VMA ends the walk with `locked` set (the folio is mlocked). Model: the young bit is
 * cleared with a flush of the model's software TLB, which sets it again only on a walk.
 */
export function* folioReferenced(core: Core, head: number): KGen<{ referenced: number; locked: boolean }> {
  const m = core.map;
  const nr = m.folioNrPages(head);
  let referenced = 0;
  const lock = yield* rmapLockRead(core, head, 'folio_referenced');
  try {
    for (const { vma, addr } of rmapVmas(core, head)) {
      const pvmw = new PageVmaMappedWalk(core, vma, head, nr, addr, false);
      while (pvmw.walk()) {
        if (vma.flags & VM_LOCKED) return { referenced, locked: true };
        const table = pvmw.pte ? pvmw.pteT : pvmw.pmdT;
        const i = pvmw.pte ? pteIndex(pvmw.address) : pmdIndex(pvmw.address);
        const ptl = pvmw.pte
          ? pteLock(core, table, 'folio_referenced_one')
          : pmdLock(core, table, 'folio_referenced_one');
        const lo = ptLo(core, table, i);
        if (entryPresent(lo) && lo & _PAGE_ACCESSED) {
          ptSet(core, table, i, (lo & ~_PAGE_ACCESSED) >>> 0, ptHi(core, table, i));
          const len = pvmw.pte ? PAGE_SIZE : nr * PAGE_SIZE;
          vma.mm.tlb.flushRange(pvmw.address, pvmw.address + len);
          referenced++;
        }
        ptlUnlock(core, ptl, 'folio_referenced_one');
      }
    }
  } finally {
    rmapUnlockRead(core, lock, 'folio_referenced');
  }
  return { referenced, locked: false };
}

/**
 * Models folio_check_references() (mm/vmscan.c) for an anonymous folio: mlocked -> activate
 * (the kernel moves it to the unevictable list); young PTEs -> PG_referenced set, and activate
 * when the folio was already referenced or is mapped young more than once, else keep (a folio
 * gets a second look); not young -> reclaim.
 */
export function* folioCheckReferences(core: Core, head: number): KGen<FolioReferences> {
  const m = core.map;
  const { referenced, locked } = yield* folioReferenced(core, head);
  const wasReferenced = (m.flags[head] & PG_referenced) !== 0;
  m.flags[head] &= ~PG_referenced;
  if (locked) return 'activate';
  if (referenced > 0) {
    m.flags[head] |= PG_referenced;
    if (wasReferenced || referenced > 1) return 'activate';
    return 'keep';
  }
  return 'reclaim';
}

/** Models can_reclaim_anon_pages() (mm/vmscan.c) without memcg or demotion: swap has a free slot. */
export function canReclaimAnonPages(core: Core): boolean {
  return nrSwapPages(core) > 0;
}

/**
 * Models deferred_split_scan() (mm/huge_memory.c) for one queued folio: under the queue lock
 * folio_try_get() (a folio freed since the scan saw it, which may have slept in
 * shrink_folio_list() meanwhile, has left the queue and is skipped), then folio_trylock() and
 * split_folio(), which frees its unmapped pages. Returns whether it was split.
 */
function* deferredSplitOne(core: Core, head: number): KGen<boolean> {
  const m = core.map;
  // The model's queue is the PG_partially_mapped flag of a live large folio's head.
  if (m.head[head] !== head || !(m.flags[head] & PG_head) || !(m.flags[head] & PG_partially_mapped))
    return false;
  if (m.refcount[head] === 0) return false;
  folioGet(core, head);
  if (!folioTrylock(core, head)) {
    folioPut(core, head);
    return false;
  }
  const err = yield* splitFolioMapped(core, head, head);
  folioUnlock(core, m.head[head]);
  folioPut(core, m.head[head]);
  return err === 0;
}

/** Statistics of one try_to_free_pages() call. */
export interface DirectReclaimResult {
  /** Pages the folios handed to shrink_folio_list() gave back (sc->nr_reclaimed). */
  reclaimed: number;
  /** Folios looked at (pgscan_direct counts pages). */
  scanned: number;
  /** Pages by which free memory grew: the allocation retries when this is positive. */
  progress: number;
}

/** shrink_folio_list() of one batch of isolated folios (none: nothing); the pages reclaimed. */
function* reclaimBatch(core: Core, list: number[]): KGen<number> {
  if (list.length === 0) return 0;
  const got = yield* reclaimPages(core, list);
  core.vmstat.pgsteal_direct += got;
  return got;
}

/**
 * Models try_to_free_pages() (mm/vmscan.c) -> do_try_to_free_pages() -> shrink_node() /
 * shrink_lruvec() / shrink_inactive_list() / shrink_slab() for the one node and zone the model
 * has, as __alloc_pages_direct_reclaim() calls it for an order-0 allocation: counts allocstall,
 * then turns the clock hand over RAM (at most twice around) taking LRU folios the scan may
 * reclaim, checks their references, and hands batches of SWAP_CLUSTER_MAX isolated folios to
 * shrink_folio_list() (the same path MADV_PAGEOUT uses: swap-out, lazy-free discard, the keep
 * rules for pinned, mlocked and referenced folios) until SWAP_CLUSTER_MAX pages are reclaimed.
 * Partially mapped THPs met on the way are split (the deferred-split shrinker). Zone-device
 * folios are never on an LRU and are outside RAM, so they are never reclaimed.
 */
export function* tryToFreePages(core: Core, nrToReclaim = SWAP_CLUSTER_MAX): KGen<DirectReclaimResult> {
  const m = core.map;
  const freeBefore = core.zone.nrFree;
  core.vmstat.allocstall_normal++;
  if (core.sched.preempt('try_to_free_pages: direct reclaim')) yield RESCHED;
  const hand = handOf(core);
  const first = RAM_START_PFN;
  const end = RAM_START_PFN + core.ramPages;
  if (hand.pfn < first || hand.pfn >= end) hand.pfn = first;
  const anon = canReclaimAnonPages(core);
  let reclaimed = 0;
  let scanned = 0;
  // The isolated folios not yet handed to shrink_folio_list() (flushed by reclaimBatch(): a
  // module generator, as a closure made per call would be optimized again for every call).
  let batch: number[] = [];
  // Two turns of the hand: a folio seen young on the first gets reclaimed on the second.
  for (let left = 2 * core.ramPages; left > 0 && reclaimed < nrToReclaim; ) {
    const pfn = hand.pfn;
    const f = m.flags[pfn];
    let step = 1;
    if (f & PG_head) step = m.folioNrPages(pfn);
    const candidate =
      !(f & PG_tail) &&
      f & PG_lru &&
      f & PG_anon &&
      !folioIsZoneDevice(core, pfn) &&
      (anon || !(f & PG_swapbacked));
    hand.pfn = pfn + step >= end ? first : pfn + step;
    left -= step;
    if (!candidate) continue;
    scanned++;
    core.vmstat.pgscan_direct += step;
    if (f & PG_partially_mapped) {
      reclaimed += yield* reclaimBatch(core, batch);
      batch = [];
      yield* deferredSplitOne(core, pfn);
      continue;
    }
    const refs = yield* folioCheckReferences(core, pfn);
    if (refs !== 'reclaim') continue;
    // folio_isolate_lru(): the folio may have left the LRU at a preemption point.
    if (!(m.flags[pfn] & PG_lru) || m.head[pfn] !== pfn) continue;
    m.flags[pfn] &= ~PG_lru;
    folioGet(core, pfn);
    batch.push(pfn);
    if (batch.length >= SWAP_CLUSTER_MAX) {
      reclaimed += yield* reclaimBatch(core, batch);
      batch = [];
    }
  }
  reclaimed += yield* reclaimBatch(core, batch);
  return { reclaimed, scanned, progress: Math.max(0, core.zone.nrFree - freeBefore) };
}
