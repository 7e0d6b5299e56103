/**
 * The swap-entry half of do_swap_page() (mm/memory.c): a fault on a PTE that holds a swap
 * entry finds the page in the swap cache or reads it from the slot (a major fault), and maps it
 * in place of the swap entry, exclusive (and writable) when the entry was marked exclusive or
 * the folio has no other user. The swap area is not SWP_SYNCHRONOUS_IO, so swap-in always goes
 * through the swap cache and allocates order-0 folios; a large folio is only mapped whole when
 * it is still in the swap cache (a THP whose reclaim kept it there) and all its swap PTEs match.
 */
import { PAGE_SIZE, PMD_SIZE } from '../constants.js';
import { type Core, FAULT_FLAG_WRITE, VM_FAULT_ERROR, VM_FAULT_MAJOR, VM_FAULT_OOM } from '../core.js';
import { ModelBug } from '../errors.js';
import {
  folioAddRmapPtes,
  folioBugOn,
  folioGet,
  folioPut,
  folioSetAnon,
  folioTrylock,
  folioUnlock,
} from '../folio.js';
import {
  _PAGE_SOFT_DIRTY,
  _PAGE_SWP_EXCLUSIVE,
  _PAGE_SWP_SOFT_DIRTY,
  _PAGE_SWP_UFFD_WP,
  _PAGE_UFFD_WP,
  entryHuge,
  entryPfn,
  entryPresent,
  mkHi,
  mkPteLo,
  mkSwapPteLo,
  pteSwpExclusive,
  swpOffset,
  swpType,
} from '../pgtable/entry.js';
import { PG_anon, PG_anon_exclusive, PG_swapbacked, PG_swapcache } from '../phys/memmap.js';
import type { KGen, KMaybe } from '../sched/task.js';
import { anonVmaPrepare, linearPageIndex } from './anon.js';
import { addMmCounter } from './counters.js';
import { folioWaitLocked, pteLock, ptlUnlock } from './locking.js';
import { pmdIndex, pteIndex, ptHi, ptLo, ptSet } from './pgtable.js';
import { swapinReadahead } from './swap-state.js';
import {
  folioFreeSwap,
  folioMatchesSwapEntry,
  swapCacheGetFolio,
  swapEntryToInfo,
  swapFreeNr,
  swpEntryOffset,
  swpEntryVal,
  vmSwapFull,
} from './swapfile.js';
import { VM_EXEC, VM_LOCKED, VM_READ, VM_WRITE, type Vma } from './types.js';

/**
 * Models the do_wp_page(vmf) call at the end of do_swap_page(): fault.ts hands in its
 * do_wp_page() (a write fault that do_swap_page() could not make writable continues there):
 * (orig PTE low word, high word) -> VM_FAULT_* bits.
 */
export type SwapWpFault = (lo: number, hi: number) => KMaybe<number>;

/**
 * Models should_try_to_free_swap() (mm/memory.c): drop the swap cache after swap-in when swap
 * is more than half full (mem_cgroup_swap_full() without a memcg limit), the VMA is mlocked, or
 * a write fault will likely find the folio exclusive (only the fault's and the cache's
 * references).
 */
function shouldTryToFreeSwap(core: Core, folio: number, vma: Vma, flags: number): boolean {
  const m = core.map;
  if (!(m.flags[folio] & PG_swapcache)) return false;
  if (vmSwapFull(core) || vma.flags & VM_LOCKED) return true;
  return (flags & FAULT_FLAG_WRITE) !== 0 && m.refcount[folio] === 1 + m.folioNrPages(folio);
}

/**
 * Models the large-folio check of do_swap_page(): a swap-cache folio of nr pages is mapped
 * whole when its pages' addresses lie in the VMA and in this PMD, and the nr PTEs from where
 * its first page would be are the consecutive swap entries of the folio with the faulting
 * PTE's bits (pte_same() with pte_move_swp_offset(), swap_pte_batch()). Returns the PTE index
 * of the folio's first page, or -1 to map only the faulting page.
 */
function wholeFolioIndex(
  core: Core,
  vma: Vma,
  pteT: number,
  addr: number,
  lo: number,
  page: number,
  folio: number,
): number {
  const m = core.map;
  const nr = m.folioNrPages(folio);
  const idx = page - folio;
  const start = addr - idx * PAGE_SIZE;
  const end = start + nr * PAGE_SIZE;
  const pmdStart = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  if (start < Math.max(pmdStart, vma.start) || end > Math.min(pmdStart + PMD_SIZE, vma.end)) return -1;
  const first = pteIndex(start);
  const type = swpType(lo);
  const bits = lo & (_PAGE_SWP_EXCLUSIVE | _PAGE_SWP_SOFT_DIRTY | _PAGE_SWP_UFFD_WP);
  const off0 = swpEntryOffset(m.priv[folio]);
  for (let k = 0; k < nr; k++) {
    const want = mkSwapPteLo(type, off0 + k, bits);
    if (ptLo(core, pteT, first + k) !== want || ptHi(core, pteT, first + k) !== mkHi(off0 + k)) return -1;
  }
  return first;
}

/**
 * Models do_swap_page() (mm/memory.c) for a swap entry (softleaf_is_swap()) read without the
 * PTE lock as (lo, hi) at addr of table pteT under pmdT: swap cache lookup, else
 * swapin_readahead() (VM_FAULT_MAJOR, PGMAJFAULT); folio_lock_or_retry() (a locked folio makes
 * the fault wait and retry); under the PTE lock, pte_same() or back out; swap_free_nr(),
 * should_try_to_free_swap(); the page mapped exclusive when pte_swp_exclusive() or the folio's
 * only reference is ours (writable then if VM_WRITE, dirty for a write fault), else read-only
 * and shared, a write fault continuing in do_wp_page(). MM_ANONPAGES up, MM_SWAPENTS down.
 */
export function* doSwapPage(
  core: Core,
  vma: Vma,
  pmdT: number,
  pteT: number,
  addr: number,
  lo: number,
  hi: number,
  flagsArg: number,
  doWpPage: SwapWpFault,
): KGen<number> {
  const m = core.map;
  const mm = vma.mm;
  let flags = flagsArg;
  const i = pteIndex(addr);
  const entry = swpEntryVal(swpType(lo), swpOffset(lo, hi));
  // get_swap_device(): every swap PTE the model writes names a live slot.
  if (!swapEntryToInfo(core, entry))
    throw new ModelBug(`do_swap_page: swap PTE 0x${hi.toString(16)}:${lo.toString(16)} names no swap slot`);
  let ret = 0;
  let folio = swapCacheGetFolio(core, entry);
  if (folio < 0) {
    const r = yield* swapinReadahead(core, entry);
    if (r.folio < 0) {
      // Back out if somebody else faulted in this PTE while we slept; else out of memory.
      const ptl = pteLock(core, pteT, 'do_swap_page');
      const same = ptLo(core, pteT, i) === lo && ptHi(core, pteT, i) === hi;
      ptlUnlock(core, ptl, 'do_swap_page');
      return same ? VM_FAULT_OOM : 0;
    }
    folio = r.folio;
    if (r.read) {
      ret = VM_FAULT_MAJOR;
      core.vmstat.pgmajfault++;
    }
  }
  // folio_lock_or_retry(): wait for the holder, then VM_FAULT_RETRY (the access faults again).
  if (!folioTrylock(core, folio)) {
    yield* folioWaitLocked(core, folio, 'folio_lock_or_retry');
    folioPut(core, folio);
    return ret;
  }
  // folio_matches_swap_entry(): folio_free_swap() or a reclaim may have released it meanwhile.
  if (!folioMatchesSwapEntry(core, folio, entry)) {
    folioUnlock(core, folio);
    folioPut(core, folio);
    return ret;
  }
  let page = folio + (entry - m.priv[folio]);
  // pte_offset_map_lock(): the PMD must still map this PTE table.
  const pmdLo = ptLo(core, pmdT, pmdIndex(addr));
  const stillTable =
    entryPresent(pmdLo) && !entryHuge(pmdLo) && entryPfn(pmdLo, ptHi(core, pmdT, pmdIndex(addr))) === pteT;
  const ptl = stillTable ? pteLock(core, pteT, 'do_swap_page') : null;
  // (The kernel also fails a folio that is not uptodate with SIGBUS: reads here are synchronous
  // and succeed, and the model does not keep PG_uptodate on anonymous folios.)
  if (!ptl || ptLo(core, pteT, i) !== lo || ptHi(core, pteT, i) !== hi) {
    // out_nomap: somebody else already faulted this PTE in (or freed it).
    if (ptl) ptlUnlock(core, ptl, 'do_swap_page');
    folioUnlock(core, folio);
    folioPut(core, folio);
    return ret;
  }
  let nr = 1;
  let first = i;
  let firstEntry = entry;
  if (m.folioNrPages(folio) > 1) {
    const f = wholeFolioIndex(core, vma, pteT, addr, lo, page, folio);
    if (f >= 0) {
      nr = m.folioNrPages(folio);
      first = f;
      firstEntry = m.priv[folio];
      page = folio;
    }
  }
  // PG_anon_exclusive must never be set on a swap-cache page a swap PTE points to.
  folioBugOn(
    core,
    (m.flags[folio] & PG_anon) !== 0 && (m.flags[page] & PG_anon_exclusive) !== 0,
    page,
    'do_swap_page: BUG_ON(folio_test_anon(folio) && PageAnonExclusive(page))',
  );
  const exclusive = pteSwpExclusive(lo);
  swapFreeNr(core, firstEntry, nr);
  if (shouldTryToFreeSwap(core, folio, vma, flags)) folioFreeSwap(core, folio);
  addMmCounter(mm, 'MM_ANONPAGES', nr);
  addMmCounter(mm, 'MM_SWAPENTS', -nr);
  let write = false;
  let dirty = false;
  let rmapExclusive = false;
  if (exclusive || m.refcount[folio] === 1) {
    if (vma.flags & VM_WRITE) {
      write = true;
      if (flags & FAULT_FLAG_WRITE) {
        dirty = true;
        flags &= ~FAULT_FLAG_WRITE;
      }
    }
    rmapExclusive = true;
  }
  // The caller's reference becomes the first mapping's; one more per further page.
  if (nr > 1) folioGet(core, folio, nr - 1);
  if (!(m.flags[folio] & PG_anon)) {
    // folio_add_new_anon_rmap(): a shared folio takes the root anon_vma (__folio_set_anon()).
    const av = anonVmaPrepare(core, vma);
    folioSetAnon(
      core,
      folio,
      rmapExclusive ? av.id : av.root.id,
      linearPageIndex(vma, addr - (i - first) * PAGE_SIZE),
    );
    m.flags[folio] |= PG_swapbacked;
    core.vmstat.nr_anon_pages += m.folioNrPages(folio);
  }
  folioAddRmapPtes(core, folio, page, nr, rmapExclusive);
  // mk_pte(page, vma->vm_page_prot): young; PROT_NONE gives an inaccessible entry.
  const none = !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC));
  const extra =
    (lo & _PAGE_SWP_SOFT_DIRTY ? _PAGE_SOFT_DIRTY : 0) | (lo & _PAGE_SWP_UFFD_WP ? _PAGE_UFFD_WP : 0);
  let faultLo = 0;
  let faultHi = 0;
  for (let k = 0; k < nr; k++) {
    const plo = (mkPteLo(page + k, write, dirty, true, none) | extra) >>> 0;
    ptSet(core, pteT, first + k, plo, mkHi(page + k));
    if (first + k === i) {
      faultLo = plo;
      faultHi = mkHi(page + k);
    }
  }
  folioUnlock(core, folio);
  ptlUnlock(core, ptl, 'do_swap_page');
  if (flags & FAULT_FLAG_WRITE) {
    let r = doWpPage(faultLo, faultHi);
    if (typeof r !== 'number') r = yield* r;
    if (r & VM_FAULT_ERROR) r &= VM_FAULT_ERROR;
    ret |= r;
  }
  return ret;
}
