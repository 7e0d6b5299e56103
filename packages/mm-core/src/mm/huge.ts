import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { ModelBug } from '../errors.js';
import {
  folioAddRmapPtes,
  folioBugOn,
  folioGet,
  folioIsDevicePrivate,
  folioPut,
  folioRemoveRmapPmd,
} from '../folio.js';
import { KernelBug } from '../kernel-bug.js';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_RW,
  _PAGE_SOFT_DIRTY,
  _PAGE_SPECIAL,
  _PAGE_SWP_SOFT_DIRTY,
  _PAGE_SWP_UFFD_WP,
  _PAGE_UFFD_WP,
  _PAGE_USER,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  isDevicePrivateType,
  isMigrationType,
  mkHi,
  mkLo,
  mkPteLo,
  mkSwpLo,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  SWP_MIG_DIRTY,
  SWP_MIG_YOUNG,
  SWP_MIGRATION_READ,
  SWP_MIGRATION_READ_EXCLUSIVE,
  SWP_MIGRATION_WRITE,
  swpType,
} from '../pgtable/entry.js';
import {
  PG_anon,
  PG_anon_exclusive,
  PG_deferred_split,
  PG_dirty,
  PG_head,
  PG_partially_mapped,
  PG_swapcache,
} from '../phys/memmap.js';
import type { SpinLock } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { addMmCounter, mmCounter } from './counters.js';
import { assertPtlHeld, pmdLock, ptlUnlock } from './locking.js';
import { withInvalidationSync } from './notifier.js';
import { allocTable, freeTable, pmdIndex, ptHi, ptLo, ptSet, tableHi, tableLo } from './pgtable.js';
import { countMthpStat } from './thp-orders.js';
import { MMU_NOTIFY_CLEAR, type MmStruct, type Vma } from './types.js';

/** Models pgtable_trans_huge_deposit(): keep a preallocated PTE table with the PMD at haddr. */
export function depositTable(mm: MmStruct, haddr: number, table: number): void {
  if (mm.deposits.has(haddr)) throw new ModelBug(`double deposit at 0x${haddr.toString(16)}`);
  mm.deposits.set(haddr, table);
}

/** Models pgtable_trans_huge_withdraw(). */
export function withdrawTable(mm: MmStruct, haddr: number): number {
  const t = mm.deposits.get(haddr);
  if (t === undefined) throw new ModelBug(`no deposited table at 0x${haddr.toString(16)}`);
  mm.deposits.delete(haddr);
  return t;
}

/** Models zap_deposited_table(): withdraw and free the deposited table. */
export function zapDepositedTable(core: Core, mm: MmStruct, haddr: number): void {
  freeTable(core, mm, withdrawTable(mm, haddr));
}

/**
 * Models deferred_split_folio(folio, partially_mapped = true): queue a partially mapped
 * anonymous large folio (order 2 or more; never a device-private one, never one in the swap
 * cache, which reclaim is handling) and mark it partially mapped, counting
 * THP_DEFERRED_SPLIT_PAGE for a PMD-sized one and split_deferred for its size.
 */
export function deferredSplitFolio(core: Core, head: number): void {
  const m = core.map;
  if (!(m.flags[head] & PG_head) || !(m.flags[head] & PG_anon)) return;
  const order = m.folioOrder(head);
  if (order <= 1) return;
  // Device-private folios are never queued (bug R7 restores the review version that queued them).
  if (folioIsDevicePrivate(core, head) && !core.bug('R7')) return;
  if (m.flags[head] & PG_swapcache) return;
  if (m.flags[head] & PG_deferred_split) return;
  m.flags[head] |= PG_deferred_split | PG_partially_mapped;
  if (order >= HPAGE_PMD_ORDER) core.vmstat.thp_deferred_split_page++;
  countMthpStat(core, order, 'split_deferred');
}

/**
 * Models __split_huge_pmd_locked() (mm/huge_memory.c) for every kind of huge PMD at haddr:
 * present THP, huge zero, device-private, and migration PMDs. `freeze` installs migration
 * entries instead of mappings (the try_to_migrate(TTU_SPLIT_HUGE_PMD) path).
 * The PMD table entry is replaced by the deposited PTE table filled with 512 entries.
 */
export function splitHugePmdLocked(core: Core, vma: Vma, pmdT: number, haddr: number, freeze: boolean): void {
  assertPtlHeld(core, pmdT, '__split_huge_pmd_locked');
  const mm = vma.mm;
  const mi = pmdIndex(haddr);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  if (haddr % PMD_SIZE !== 0) throw new ModelBug('split_huge_pmd_locked: unaligned address');
  if (haddr < vma.start || haddr + PMD_SIZE > vma.end)
    throw new ModelBug('split_huge_pmd_locked: PMD outside VMA');
  const m = core.map;
  core.vmstat.thp_split_pmd++;
  mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
  if (!vma.isAnonymous) {
    splitFilePmdLocked(core, vma, pmdT, haddr, lo, hi);
    return;
  }
  const table = withdrawTable(mm, haddr);
  const pfn = entryPfn(lo, hi);
  if (entryPresent(lo)) {
    if (pfn === core.hugeZeroPfn) {
      // Models __split_huge_zero_page_pmd(): 512 zero-page PTEs with the VMA's protection
      // (pfn_pte(zero_pfn, vma->vm_page_prot)): a PROT_NONE huge zero PMD gives PROT_NONE PTEs.
      const prot = lo & _PAGE_PRESENT ? _PAGE_PRESENT | _PAGE_USER : _PAGE_PROTNONE;
      for (let i = 0; i < HPAGE_PMD_NR; i++)
        ptSet(core, table, i, mkLo(core.zeroPfn, prot | _PAGE_SPECIAL), mkHi(core.zeroPfn));
    } else {
      const head = m.head[pfn];
      const write = (lo & _PAGE_RW) !== 0;
      const dirty = (lo & _PAGE_DIRTY) !== 0;
      const young = (lo & _PAGE_ACCESSED) !== 0;
      const soft = lo & _PAGE_SOFT_DIRTY;
      const uffd = lo & _PAGE_UFFD_WP;
      const exclusive = (m.flags[head] & PG_anon_exclusive) !== 0;
      if (dirty) m.flags[head] |= PG_dirty;
      if (freeze) {
        const type = write
          ? SWP_MIGRATION_WRITE
          : exclusive
            ? SWP_MIGRATION_READ_EXCLUSIVE
            : SWP_MIGRATION_READ;
        const bits =
          (young ? SWP_MIG_YOUNG : 0) |
          (dirty ? SWP_MIG_DIRTY : 0) |
          (soft ? _PAGE_SWP_SOFT_DIRTY : 0) |
          (uffd ? _PAGE_SWP_UFFD_WP : 0);
        for (let i = 0; i < HPAGE_PMD_NR; i++)
          ptSet(core, table, i, mkSwpLo(type, pfn + i, bits), mkHi(pfn + i));
        folioRemoveRmapPmd(core, head);
        m.flags[head] &= ~PG_anon_exclusive;
        folioPut(core, head);
      } else {
        for (let i = 0; i < HPAGE_PMD_NR; i++) {
          const l = (mkPteLo(pfn + i, write, dirty, young, !(lo & _PAGE_PRESENT)) | soft | uffd) >>> 0;
          ptSet(core, table, i, l, mkHi(pfn + i, (hi & 0x80000000) !== 0));
        }
        folioGet(core, head, HPAGE_PMD_NR - 1);
        folioAddRmapPtes(core, head, pfn, HPAGE_PMD_NR, exclusive);
        folioRemoveRmapPmd(core, head);
      }
    }
  } else {
    const type = swpType(lo);
    const soft = lo & _PAGE_SWP_SOFT_DIRTY;
    const uffd = lo & _PAGE_SWP_UFFD_WP;
    if (isMigrationType(type)) {
      const bits = lo & (SWP_MIG_YOUNG | SWP_MIG_DIRTY | _PAGE_SWP_SOFT_DIRTY | _PAGE_SWP_UFFD_WP);
      for (let i = 0; i < HPAGE_PMD_NR; i++)
        ptSet(core, table, i, mkSwpLo(type, pfn + i, bits), mkHi(pfn + i));
      // A freezing split drops one reference even for a migration PMD (the caller of
      // migrate_vma_split_unmapped_folio() takes one beforehand).
      if (freeze) folioPut(core, m.head[pfn]);
    } else if (isDevicePrivateType(type)) {
      const head = m.head[pfn];
      const write = type === SWP_DEVICE_WRITE;
      const exclusive = (m.flags[head] & PG_anon_exclusive) !== 0;
      if (freeze) {
        // Device pages are never GUP-pinned, so the exclusive bit can always be dropped.
        const mtype = write
          ? SWP_MIGRATION_WRITE
          : exclusive
            ? SWP_MIGRATION_READ_EXCLUSIVE
            : SWP_MIGRATION_READ;
        for (let i = 0; i < HPAGE_PMD_NR; i++)
          ptSet(core, table, i, mkSwpLo(mtype, pfn + i, soft | uffd), mkHi(pfn + i));
        folioRemoveRmapPmd(core, head);
        m.flags[head] &= ~PG_anon_exclusive;
        folioPut(core, head);
      } else {
        const dtype = write ? SWP_DEVICE_WRITE : SWP_DEVICE_READ;
        for (let i = 0; i < HPAGE_PMD_NR; i++)
          ptSet(core, table, i, mkSwpLo(dtype, pfn + i, soft | uffd), mkHi(pfn + i));
        folioGet(core, head, HPAGE_PMD_NR - 1);
        folioAddRmapPtes(core, head, pfn, HPAGE_PMD_NR, exclusive);
        folioRemoveRmapPmd(core, head);
      }
    } else {
      folioBugOn(core, true, pfn, `split of an unexpected non-present PMD type ${type}`);
    }
  }
  ptSet(core, pmdT, mi, tableLo(table), tableHi(table));
}

/**
 * Models the !vma_is_anonymous() branch of __split_huge_pmd_locked(): a file (shmem) PMD is
 * not split into PTEs but zapped ("we are going to unmap this huge page, so just go ahead and
 * zap it"): the folio stays in the page cache and the next fault maps it again. The model's
 * deposited table (it deposits one with every huge PMD) is freed with it.
 */
function splitFilePmdLocked(core: Core, vma: Vma, pmdT: number, haddr: number, lo: number, hi: number): void {
  const mm = vma.mm;
  ptSet(core, pmdT, pmdIndex(haddr), 0, 0);
  mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
  zapDepositedTable(core, mm, haddr);
  const head = core.map.head[entryPfn(lo, hi)];
  folioBugOn(core, !entryPresent(lo), head, '__split_huge_pmd_locked: non-present file PMD');
  if (lo & _PAGE_DIRTY) core.map.flags[head] |= PG_dirty;
  folioRemoveRmapPmd(core, head);
  folioPut(core, head);
  addMmCounter(mm, mmCounter(core, head), -HPAGE_PMD_NR);
}

/**
 * Models zap_huge_pmd(): remove a whole huge PMD (present, huge zero, device-private or
 * migration), its rmap, rss and deposited table; drop the mapping's reference.
 */
export function zapHugePmd(core: Core, vma: Vma, pmdT: number, haddr: number): void {
  assertPtlHeld(core, pmdT, 'zap_huge_pmd');
  const mm = vma.mm;
  const mi = pmdIndex(haddr);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  // Bug F15: powerpc's hash MMU pmdp_huge_get_and_clear_full() asserted the PMD was a present THP.
  if (core.bug('F15') && !entryPresent(lo))
    throw new KernelBug(
      'pmdp_huge_get_and_clear_full',
      'VM_BUG_ON(!pmd_present(*pmdp)) (book3s64 hash MMU)',
      [`  zap_huge_pmd() of a non-present PMD 0x${lo.toString(16)} at 0x${haddr.toString(16)}`],
    );
  ptSet(core, pmdT, mi, 0, 0);
  mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
  const pfn = entryPfn(lo, hi);
  zapDepositedTable(core, mm, haddr);
  if (entryPresent(lo) && pfn === core.hugeZeroPfn) return;
  const head = core.map.head[pfn];
  const which = mmCounter(core, head);
  addMmCounter(mm, which, -HPAGE_PMD_NR);
  if (!entryPresent(lo) && isMigrationType(swpType(lo))) return;
  if (lo & _PAGE_DIRTY) core.map.flags[head] |= PG_dirty;
  folioRemoveRmapPmd(core, head);
  if (pmdUnmapLeavesPartial(core, head)) deferredSplitFolio(core, head);
  folioPut(core, head);
}

/**
 * The PMD case of __folio_remove_rmap()'s partially_mapped: the last PMD mapping went while some,
 * but not all, pages stay PTE-mapped (nr && nr < nr_pmdmapped).
 */
function pmdUnmapLeavesPartial(core: Core, head: number): boolean {
  const m = core.map;
  if (m.entireMapcount[head] !== 0 || m.largeMapcount[head] === 0) return false;
  const n = m.folioNrPages(head);
  let mapped = 0;
  for (let i = 0; i < n; i++) if (m.mapcount[head + i] > 0) mapped++;
  return mapped < n;
}

/** Allocates the page table to deposit with a new huge PMD. Returns -1 on OOM. */
export function allocDeposit(core: Core, mm: MmStruct): number {
  return allocTable(core, mm);
}

/** The order of a PMD-mapped folio (the model's THP order). */
export const THP_ORDER = HPAGE_PMD_ORDER;

/**
 * Models pmd_is_huge(): the PMD is a leaf the THP code handles (a present huge PMD, the huge
 * zero PMD, or a non-present migration / device-private PMD), not none and not a table.
 */
export function pmdIsHuge(lo: number, hi: number): boolean {
  return !entryNone(lo, hi) && (!entryPresent(lo) || entryHuge(lo));
}

/**
 * Models __pmd_trans_huge_lock(): take the PMD lock and re-read the PMD; if it is still huge
 * (present huge or a non-present PMD leaf) return the held lock, else unlock and return null
 * (the PMD was split or zapped under us: the caller falls back to the PTE level).
 */
export function pmdTransHugeLock(core: Core, pmdT: number, haddr: number, site: string): SpinLock | null {
  const l = pmdLock(core, pmdT, site);
  const mi = pmdIndex(haddr);
  if (pmdIsHuge(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))) return l;
  ptlUnlock(core, l, site);
  return null;
}

/**
 * Models __split_huge_pmd() (mm/huge_memory.c): an MMU_NOTIFY_CLEAR invalidation of the PMD,
 * the PMD lock, split_huge_pmd_locked() (which re-checks the PMD is still huge), unlock.
 */
export function* splitHugePmd(core: Core, vma: Vma, pmdT: number, haddr: number, freeze: boolean): KGen {
  yield* withInvalidationSync(vma.mm, haddr, haddr + PMD_SIZE, MMU_NOTIFY_CLEAR, null, () => {
    const l = pmdLock(core, pmdT, '__split_huge_pmd');
    const mi = pmdIndex(haddr);
    if (pmdIsHuge(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi)))
      splitHugePmdLocked(core, vma, pmdT, haddr, freeze);
    ptlUnlock(core, l, '__split_huge_pmd');
  });
}

/**
 * Models split_huge_pmd(): the lockless pmd_is_huge() check, then (after a window in which
 * another CPU may change the PMD) __split_huge_pmd(). No-op when the PMD is not huge.
 */
export function* splitHugePmdIfHuge(core: Core, vma: Vma, pmdT: number, haddr: number): KGen {
  const mi = pmdIndex(haddr);
  if (!pmdIsHuge(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))) return;
  if (core.sched.preempt('split_huge_pmd: PMD seen huge without the PMD lock')) yield RESCHED;
  yield* splitHugePmd(core, vma, pmdT, haddr, false);
}
