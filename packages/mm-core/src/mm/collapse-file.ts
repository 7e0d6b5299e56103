/**
 * Shmem (tmpfs) THP collapse (mm/khugepaged.c, CONFIG_SHMEM): the scan of a PMD-sized range of
 * a file's page cache (hpage_collapse_scan_file()), the collapse of its small folios into one
 * PMD-sized page-cache folio (collapse_file()), the removal of the emptied PTE tables from every
 * mapping (retract_page_tables()) and the install of the huge PMD (collapse_pte_mapped_thp(),
 * set_huge_pmd()). khugepaged and MADV_COLLAPSE call these for file VMAs (mm/khugepaged.ts,
 * mm/collapse.ts). Not modelled: swap entries in the shmem page cache (the model's tmpfs is not
 * swapped out, so max_ptes_swap never applies here), non-shmem file THP (READ_ONLY_THP_FOR_FS),
 * userfaultfd, memcg charging and shmem_charge() quota.
 */
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import {
  allocFolio,
  folioGet,
  folioMapcount,
  folioMapped,
  folioPut,
  folioRemoveRmapPtes,
  folioTestLarge,
  folioTrylock,
  folioUnlock,
  GFP_NOMEMALLOC,
} from '../folio.js';
import { _PAGE_DIRTY, entryNone, entryPfn, entryPresent } from '../pgtable/entry.js';
import { PG_dirty, PG_lru, PG_swapbacked, PG_uptodate } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { linearPageIndex } from './anon.js';
import { type CollapseControl, collapseTestExit, findPmdOrThpOrNone, type ScanResult } from './collapse.js';
import { addMmCounter, mmCounter } from './counters.js';
import { doSetPmd } from './fault-file.js';
import { khugepagedSettings, thpVmaAllowableOrder } from './khugepaged-state.js';
import { folioLockWait, pmdLock, pteLock, ptlUnlock } from './locking.js';
import { withInvalidationSync } from './notifier.js';
import { freeTable, pmdIndex, pmdTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import { unmapMappingPages } from './truncate.js';
import { type Inode, MMU_NOTIFY_CLEAR, type MmStruct } from './types.js';

/**
 * Models hpage_collapse_scan_file() (mm/khugepaged.c): walk the page cache of [start, start +
 * HPAGE_PMD_NR) without locks. A large folio ends the scan: SCAN_PTE_MAPPED_HUGEPAGE when it is
 * the PMD-sized folio of this range ("maybe PMD-mapped"), else SCAN_PAGE_COMPOUND; a folio off
 * the LRU is SCAN_PAGE_LRU, one with a reference beyond the page cache's and its mappings
 * SCAN_PAGE_COUNT. khugepaged needs at least HPAGE_PMD_NR - max_ptes_none pages present
 * (SCAN_EXCEED_NONE_PTE, counted), MADV_COLLAPSE does not. Then collapse_file().
 */
export function* hpageCollapseScanFile(
  core: Core,
  mm: MmStruct,
  addr: number,
  inode: Inode,
  start: number,
  cc: CollapseControl,
): KGen<ScanResult> {
  const m = core.map;
  let present = 0;
  let result: ScanResult = 'SCAN_SUCCEED';
  for (let index = start; index < start + HPAGE_PMD_NR; index++) {
    const pfn = inode.pages.get(index);
    if (pfn === undefined) continue;
    const head = m.head[pfn];
    // "TODO: khugepaged should compact smaller compound pages into a PMD sized page"
    if (folioTestLarge(core, head)) {
      result =
        m.folioOrder(head) === HPAGE_PMD_ORDER && m.index[head] === start
          ? 'SCAN_PTE_MAPPED_HUGEPAGE'
          : 'SCAN_PAGE_COMPOUND';
      break;
    }
    if (!(m.flags[head] & PG_lru)) {
      result = 'SCAN_PAGE_LRU';
      break;
    }
    if (m.refcount[head] !== 1 + folioMapcount(core, head)) {
      result = 'SCAN_PAGE_COUNT';
      break;
    }
    present++;
  }
  if (core.sched.preempt('hpage_collapse_scan_file: rcu_read_unlock')) yield RESCHED;
  if (result !== 'SCAN_SUCCEED') return result;
  if (cc.isKhugepaged && present < HPAGE_PMD_NR - khugepagedSettings(core).maxPtesNone) {
    core.vmstat.thp_scan_exceed_none_pte++;
    return 'SCAN_EXCEED_NONE_PTE';
  }
  return yield* collapseFile(core, mm, addr, inode, start, cc);
}

/** A small folio collapse_file() locked, isolated from the LRU and holds a reference on. */
interface Isolated {
  readonly head: number;
  readonly index: number;
}

/** Models folio_putback_lru() + folio_unlock() + folio_put() of collapse_file()'s rollback. */
function rollbackFolio(core: Core, f: Isolated): void {
  core.map.flags[f.head] |= PG_lru;
  folioPut(core, f.head);
  folioUnlock(core, f.head);
  folioPut(core, f.head);
}

/**
 * Models collapse_file() (mm/khugepaged.c) for shmem: allocate the PMD-sized folio
 * (alloc_charge_folio(): THP_COLLAPSE_ALLOC / _FAILED), then for every index of the range lock
 * the small folio (SCAN_PAGE_LOCK when it is locked), re-check it (a large folio:
 * SCAN_PTE_MAPPED_HUGEPAGE or SCAN_PAGE_COMPOUND; truncated meanwhile: SCAN_TRUNCATED), isolate
 * it from the LRU (SCAN_DEL_PAGE_LRU), unmap it from every mapping (try_to_unmap()) and require
 * exactly three references (ours, the page cache's, the isolation's: else SCAN_PAGE_COUNT).
 * Holes are counted (nr_none); an empty range is SCAN_TRUNCATED. On success the pages are copied
 * (holes zeroed), the new folio replaces them in the page cache (uptodate, dirty, one reference
 * per page, NR_SHMEM_THPS; NR_SHMEM and NR_FILE_PAGES grow by the holes), the PTE tables of the
 * range are retracted from every mapping (retract_page_tables()) and the old folios are freed.
 * MADV_COLLAPSE's result is then SCAN_PTE_MAPPED_HUGEPAGE, for its caller to install the PMD.
 * On failure everything is rolled back.
 */
export function* collapseFile(
  core: Core,
  _mm: MmStruct,
  _addr: number,
  inode: Inode,
  start: number,
  cc: CollapseControl,
): KGen<ScanResult> {
  const m = core.map;
  const end = start + HPAGE_PMD_NR;
  const folio = allocFolio(core, HPAGE_PMD_ORDER, false, GFP_NOMEMALLOC);
  if (folio < 0) {
    core.vmstat.thp_collapse_alloc_failed++;
    return 'SCAN_ALLOC_HUGE_PAGE_FAIL';
  }
  core.vmstat.thp_collapse_alloc++;
  folioTrylock(core, folio);
  m.flags[folio] |= PG_swapbacked;
  m.index[folio] = start;
  m.mapping[folio] = inode.id;
  const list: Isolated[] = [];
  let nrNone = 0;
  let result: ScanResult = 'SCAN_SUCCEED';
  for (let index = start; index < end && result === 'SCAN_SUCCEED'; index++) {
    const pfn = inode.pages.get(index);
    if (pfn === undefined) {
      // "Stop if extent has been truncated or hole-punched, and is now completely empty."
      if (index === start) {
        let any = false;
        for (let i = start + 1; i < end && !any; i++) any = inode.pages.has(i);
        if (!any) {
          result = 'SCAN_TRUNCATED';
          break;
        }
      }
      nrNone++;
      continue;
    }
    const head = m.head[pfn];
    if (!folioTrylock(core, head)) {
      result = 'SCAN_PAGE_LOCK';
      break;
    }
    folioGet(core, head);
    const out = (r: ScanResult) => {
      folioUnlock(core, head);
      folioPut(core, head);
      result = r;
    };
    // "If file was truncated then extended, or hole-punched, before we locked the first folio,
    // then a THP might be there already."
    if (folioTestLarge(core, head)) {
      out(
        m.folioOrder(head) === HPAGE_PMD_ORDER && m.index[head] === start
          ? 'SCAN_PTE_MAPPED_HUGEPAGE'
          : 'SCAN_PAGE_COMPOUND',
      );
      break;
    }
    if (m.mapping[head] !== inode.id) {
      out('SCAN_TRUNCATED');
      break;
    }
    // folio_isolate_lru()
    if (!(m.flags[head] & PG_lru)) {
      out('SCAN_DEL_PAGE_LRU');
      break;
    }
    m.flags[head] &= ~PG_lru;
    folioGet(core, head);
    // try_to_unmap(folio, TTU_IGNORE_MLOCK | TTU_BATCH_FLUSH): the page leaves every mapping
    // (private COW copies are other folios and stay).
    if (folioMapped(core, head)) yield* unmapMappingPages(core, inode, index, 1, false);
    // "We control three references to the folio: we hold a pin on it; one reference from page
    // cache; one from lru_isolate_folio."
    if (m.refcount[head] !== 3 || inode.pages.get(index) !== head) {
      m.flags[head] |= PG_lru;
      folioPut(core, head);
      out('SCAN_PAGE_COUNT');
      break;
    }
    list.push({ head, index });
  }
  if (result !== 'SCAN_SUCCEED') {
    for (const f of list) rollbackFolio(core, f);
    m.mapping[folio] = 0;
    folioUnlock(core, folio);
    folioPut(core, folio);
    return result;
  }
  // The old folios are locked, so they won't change anymore: copy them, zero the holes.
  let k = 0;
  for (let index = start; index < end; index++) {
    const dst = folio + (index - start);
    if (k < list.length && list[k].index === index) core.frames.copy(dst, list[k++].head, 1);
    else core.frames.zero(dst, 1);
  }
  // Holes filled meanwhile (a racing fault or write): SCAN_PAGE_FILLED, rolled back.
  let nrNoneCheck = 0;
  for (let index = start; index < end; index++) if (!inode.pages.has(index)) nrNoneCheck++;
  if (nrNoneCheck !== nrNone) {
    for (const f of list) rollbackFolio(core, f);
    m.mapping[folio] = 0;
    folioUnlock(core, folio);
    folioPut(core, folio);
    return 'SCAN_PAGE_FILLED';
  }
  core.vmstat.nr_shmem_hugepages += HPAGE_PMD_NR;
  core.vmstat.nr_file_pages += nrNone;
  core.vmstat.nr_shmem += nrNone;
  // folio_mark_uptodate(), folio_ref_add(HPAGE_PMD_NR - 1), folio_mark_dirty(), folio_add_lru(),
  // then the multi-index store over the range.
  m.flags[folio] |= PG_uptodate | PG_dirty | PG_lru;
  folioGet(core, folio, HPAGE_PMD_NR - 1);
  for (let i = 0; i < HPAGE_PMD_NR; i++) inode.pages.set(start + i, folio + i);
  // "Remove pte page tables, so we can re-fault the page as huge."
  yield* retractPageTables(core, inode, start);
  if (!cc.isKhugepaged) result = 'SCAN_PTE_MAPPED_HUGEPAGE';
  folioUnlock(core, folio);
  // "The collapse has succeeded, so free the old folios."
  for (const f of list) {
    m.mapping[f.head] = 0;
    folioUnlock(core, f.head);
    folioPut(core, f.head, 3);
  }
  return result;
}

/** True when every entry of PTE table t is none. */
function pteTableEmpty(core: Core, t: number): boolean {
  for (let i = 0; i < HPAGE_PMD_NR; i++) if (!entryNone(ptLo(core, t, i), ptHi(core, t, i))) return false;
  return true;
}

/**
 * Models retract_page_tables() (mm/khugepaged.c): under the i_mmap lock, in every VMA mapping
 * file index pgoff with a PMD-aligned address and the whole PMD inside it, without an anon_vma
 * (a written MAP_PRIVATE mapping is skipped) and with a PTE table at that PMD, clear the PMD
 * (pmdp_collapse_flush() inside an MMU_NOTIFY_CLEAR invalidation) and free the table, so that
 * the next fault maps the new folio by a PMD. The kernel relies on the new folio's lock to keep
 * the table empty; the model's faults do not take it, so a table a racing fault filled is left.
 */
export function* retractPageTables(core: Core, inode: Inode, pgoff: number): KGen {
  yield* inode.immapRwsem.downRead(core.sched, 'retract_page_tables');
  try {
    for (const vma of [...inode.mmaps]) {
      if (pgoff < vma.pgoff || pgoff >= vma.pgoff + (vma.end - vma.start) / PAGE_SIZE) continue;
      if (vma.anonVma) continue;
      const addr = vma.start + (pgoff - vma.pgoff) * PAGE_SIZE;
      if (addr % PMD_SIZE || vma.end < addr + PMD_SIZE) continue;
      const mm = vma.mm;
      const found = findPmdOrThpOrNone(core, mm, addr);
      if (found.result !== 'SCAN_SUCCEED') continue;
      if (collapseTestExit(mm)) continue;
      const pmdT = found.pmdT;
      const mi = pmdIndex(addr);
      yield* withInvalidationSync(mm, addr, addr + PMD_SIZE, MMU_NOTIFY_CLEAR, null, () => {
        const pml = pmdLock(core, pmdT, 'retract_page_tables');
        try {
          const lo = ptLo(core, pmdT, mi);
          if (!entryPresent(lo) || vma.anonVma) return;
          const t = entryPfn(lo, ptHi(core, pmdT, mi));
          const ptl = pteLock(core, t, 'retract_page_tables');
          const empty = pteTableEmpty(core, t);
          ptlUnlock(core, ptl, 'retract_page_tables');
          if (!empty) return;
          ptSet(core, pmdT, mi, 0, 0);
          mm.tlb.flushRange(addr, addr + PMD_SIZE);
          freeTable(core, mm, t);
        } finally {
          ptlUnlock(core, pml, 'retract_page_tables');
        }
      });
    }
  } finally {
    inode.immapRwsem.upRead(core.sched, 'retract_page_tables');
  }
}

/**
 * Models collapse_pte_mapped_thp(mm, addr, install_pmd) (mm/khugepaged.c), with the mmap_lock
 * held for read: the VMA must be a file VMA holding the whole PMD (SCAN_VMA_CHECK); a PMD
 * already huge is SCAN_PMD_MAPPED; the VMA must allow a forced collapse. The page-cache folio at
 * the PMD's index is locked (none: SCAN_PAGE_NULL; not PMD-sized: SCAN_PAGE_COMPOUND). With a PTE
 * table, every present PTE must map the folio's page for its slot (a swap or other non-present
 * entry: SCAN_PTE_NON_PRESENT; another page: SCAN_FAIL); they are cleared, their rmaps, rss and
 * references dropped and the table freed. With no table (retracted), nothing to clear. Then,
 * with install_pmd (MADV_COLLAPSE), set_huge_pmd() maps the folio by a PMD (do_set_pmd();
 * SCAN_FAIL when it falls back); khugepaged leaves the PMD none for the next fault.
 */
export function* collapsePteMappedThp(
  core: Core,
  mm: MmStruct,
  addr: number,
  installPmd: boolean,
): KGen<ScanResult> {
  const m = core.map;
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  const vma = mm.vmaLookup(haddr);
  if (!vma?.file || vma.vmOps || haddr < vma.start || haddr + PMD_SIZE > vma.end) return 'SCAN_VMA_CHECK';
  const inode = vma.file;
  let found = findPmdOrThpOrNone(core, mm, haddr);
  if (found.result === 'SCAN_PMD_MAPPED') return found.result;
  // "If a mm were to fault-in this memory (mapped by a suitably aligned VMA), we'd get the
  // hugepage and map it by a PMD, regardless of sysfs THP settings."
  if (!thpVmaAllowableOrder(core, vma, vma.flags, 'forced')) return 'SCAN_VMA_CHECK';
  const pfn = inode.pages.get(linearPageIndex(vma, haddr));
  if (pfn === undefined) return 'SCAN_PAGE_NULL';
  const folio = m.head[pfn];
  // filemap_lock_folio(): a reference, then the lock (may sleep).
  folioGet(core, folio);
  yield* folioLockWait(core, folio, 'collapse_pte_mapped_thp');
  let result: ScanResult = 'SCAN_FAIL';
  try {
    if (m.folioOrder(folio) !== HPAGE_PMD_ORDER || inode.pages.get(linearPageIndex(vma, haddr)) !== pfn)
      return 'SCAN_PAGE_COMPOUND';
    found = findPmdOrThpOrNone(core, mm, haddr);
    if (found.result === 'SCAN_SUCCEED') {
      result = yield* clearPteMappedThp(core, mm, found.pmdT, haddr, folio);
      if (result !== 'SCAN_SUCCEED') return result;
    } else if (found.result !== 'SCAN_NO_PTE_TABLE') return found.result;
    // Step 5: install the PMD entry.
    if (!installPmd) return 'SCAN_SUCCEED';
    const pmdT = pmdTableOf(core, mm, haddr, true);
    if (pmdT < 0) return 'SCAN_FAIL';
    result = doSetPmd(core, vma, pmdT, haddr, folio, false) ? 'SCAN_FAIL' : 'SCAN_SUCCEED';
    return result;
  } finally {
    folioUnlock(core, folio);
    folioPut(core, folio);
  }
}

/**
 * Steps 1 to 4 of collapse_pte_mapped_thp(): check that every present PTE of the table maps the
 * folio's page for its slot, then under an MMU_NOTIFY_CLEAR invalidation clear them, drop their
 * rmaps, references and rss, clear the PMD and free the table.
 */
function* clearPteMappedThp(
  core: Core,
  mm: MmStruct,
  pmdT: number,
  haddr: number,
  folio: number,
): KGen<ScanResult> {
  const mi = pmdIndex(haddr);
  const t = entryPfn(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi));
  // Step 1: check all mapped PTEs are to the right huge page.
  {
    const ptl = pteLock(core, t, 'collapse_pte_mapped_thp');
    try {
      for (let i = 0; i < HPAGE_PMD_NR; i++) {
        const lo = ptLo(core, t, i);
        const hi = ptHi(core, t, i);
        if (entryNone(lo, hi)) continue;
        if (!entryPresent(lo)) return 'SCAN_PTE_NON_PRESENT';
        if (entryPfn(lo, hi) !== folio + i) return 'SCAN_FAIL';
      }
    } finally {
      ptlUnlock(core, ptl, 'collapse_pte_mapped_thp');
    }
  }
  return yield* withInvalidationSync(mm, haddr, haddr + PMD_SIZE, MMU_NOTIFY_CLEAR, null, (): ScanResult => {
    const pml = pmdLock(core, pmdT, 'collapse_pte_mapped_thp');
    const ptl = pteLock(core, t, 'collapse_pte_mapped_thp');
    try {
      // Step 2: clear the page table and adjust the rmap; the PTEs are re-checked (a PTE may
      // have been COWed, swapped or migrated while ptl was dropped).
      let nr = 0;
      let result: ScanResult = 'SCAN_SUCCEED';
      for (let i = 0; i < HPAGE_PMD_NR; i++) {
        const lo = ptLo(core, t, i);
        const hi = ptHi(core, t, i);
        if (entryNone(lo, hi)) continue;
        if (!entryPresent(lo)) {
          result = 'SCAN_PTE_NON_PRESENT';
          break;
        }
        if (entryPfn(lo, hi) !== folio + i) {
          result = 'SCAN_FAIL';
          break;
        }
        if (lo & _PAGE_DIRTY) core.map.flags[folio] |= PG_dirty;
        ptSet(core, t, i, 0, 0);
        folioRemoveRmapPtes(core, folio, folio + i, 1);
        nr++;
      }
      // Step 3: the references and rss of the PTEs cleared (also on abort).
      if (nr) {
        mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
        folioPut(core, folio, nr);
        addMmCounter(mm, mmCounter(core, folio), -nr);
      }
      if (result !== 'SCAN_SUCCEED') return result;
      // Step 4: remove the empty page table.
      ptSet(core, pmdT, mi, 0, 0);
      mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
      freeTable(core, mm, t);
      return 'SCAN_SUCCEED';
    } finally {
      ptlUnlock(core, ptl, 'collapse_pte_mapped_thp');
      ptlUnlock(core, pml, 'collapse_pte_mapped_thp');
    }
  });
}
