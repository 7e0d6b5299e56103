import { PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { PT_LEVEL_PMD, PT_LEVEL_PTE, PT_LEVEL_UPPER } from '../entry-stats.js';
import { ModelBug } from '../errors.js';
import { allocPages } from '../folio.js';
import { _PAGE_TABLE, entryHuge, entryPfn, entryPresent, mkHi, mkLo } from '../pgtable/entry.js';
import { BLOCK_PAGES } from '../phys/frames.js';
import { PG_table } from '../phys/memmap.js';
import { ptlockFree } from './locking.js';
import type { MmStruct } from './types.js';

/** Models pgd_index()/pud_index()/pmd_index()/pte_index() for a user virtual address. */
export function pgdIndex(addr: number): number {
  return Math.floor(addr / 2 ** 39) & 511;
}
export function pudIndex(addr: number): number {
  return Math.floor(addr / 2 ** 30) & 511;
}
export function pmdIndex(addr: number): number {
  return Math.floor(addr / 2 ** 21) & 511;
}
export function pteIndex(addr: number): number {
  return Math.floor(addr / PAGE_SIZE) & 511;
}

/** Reads the low word of entry idx of the table page at pfn t. */
export function ptLo(core: Core, t: number, idx: number): number {
  return core.frames.block32(t)[((t & (BLOCK_PAGES - 1)) << 10) + (idx << 1)];
}

/** Reads the high word of entry idx of the table page at pfn t. */
export function ptHi(core: Core, t: number, idx: number): number {
  return core.frames.block32(t)[((t & (BLOCK_PAGES - 1)) << 10) + (idx << 1) + 1];
}

/** Models set_pte()/set_pmd() (and pte_clear() with 0, 0): writes entry idx of table t. */
export function ptSet(core: Core, t: number, idx: number, lo: number, hi: number): void {
  const b = core.frames.block32(t);
  const off = ((t & (BLOCK_PAGES - 1)) << 10) + (idx << 1);
  b[off] = lo;
  b[off + 1] = hi;
  core.events.ptesWritten++;
  core.events.entries.note(core, t, lo, hi);
}

/**
 * Models pte_alloc_one()/pmd_alloc_one()/pud_alloc_one(): a zeroed order-0 page marked as a
 * page-table page, accounted in mm->pgtables_bytes (unless `pgd`). Returns -1 on OOM.
 */
export function allocTable(core: Core, mm: MmStruct | null, pgd = false): number {
  const pfn = allocPages(core, 0);
  if (pfn < 0) return -1;
  const m = core.map;
  m.flags[pfn] = (m.flags[pfn] & ~0) | PG_table;
  m.refcount[pfn] = 1;
  m.head[pfn] = pfn;
  core.frames.zero(pfn, 1);
  core.events.entries.tagTable(pfn, pgd ? PT_LEVEL_UPPER : PT_LEVEL_PTE);
  core.vmstat.nr_page_table_pages++;
  if (mm && !pgd) mm.pgtablesBytes += PAGE_SIZE;
  return pfn;
}

/** Models pte_free()/pmd_free()/pud_free(): return a page-table page. */
export function freeTable(core: Core, mm: MmStruct | null, pfn: number, pgd = false): void {
  const m = core.map;
  if (!(m.flags[pfn] & PG_table))
    throw new ModelBug(`freeing pfn 0x${pfn.toString(16)} that is not a page table`);
  ptlockFree(core, pfn);
  m.flags[pfn] &= ~PG_table;
  m.refcount[pfn] = 0;
  core.vmstat.nr_page_table_pages--;
  if (mm && !pgd) mm.pgtablesBytes -= PAGE_SIZE;
  core.zone.free(pfn, 0);
}

/** Low word of a table-pointer entry for a table page. */
export function tableLo(pfn: number): number {
  return mkLo(pfn, _PAGE_TABLE);
}

/** High word of a table-pointer entry for a table page. */
export function tableHi(pfn: number): number {
  return mkHi(pfn);
}

/** The walk one level down from table t; a table it allocates is tagged `level` (entry-stats.ts). */
function nextLevel(
  core: Core,
  mm: MmStruct,
  t: number,
  idx: number,
  alloc: boolean,
  level = PT_LEVEL_PTE,
): number {
  // ptLo()/ptHi() of the entry, with one lookup of the table's block.
  const b = core.frames.block32(t);
  const off = ((t & (BLOCK_PAGES - 1)) << 10) + (idx << 1);
  const lo = b[off];
  if (lo !== 0) {
    if (!entryPresent(lo) || entryHuge(lo)) return -1;
    return entryPfn(lo, b[off + 1]);
  }
  if (b[off + 1] !== 0 || !alloc) return -1;
  const n = allocTable(core, mm);
  if (n < 0) return -1;
  if (level !== PT_LEVEL_PTE) core.events.entries.tagTable(n, level);
  ptSet(core, t, idx, tableLo(n), tableHi(n));
  return n;
}

/**
 * Models pud_alloc()+pmd_alloc() (alloc) or the pgd/p4d/pud walk of pmd_off() (no alloc):
 * the pfn of the PMD table covering addr, or -1 if absent (or out of memory when allocating).
 */
export function pmdTableOf(core: Core, mm: MmStruct, addr: number, alloc: boolean): number {
  const pud = nextLevel(core, mm, mm.pgd, pgdIndex(addr), alloc, PT_LEVEL_UPPER);
  if (pud < 0) return -1;
  return nextLevel(core, mm, pud, pudIndex(addr), alloc, PT_LEVEL_PMD);
}

/**
 * Models pte_offset_map() (+ pte_alloc() when alloc): the pfn of the PTE table covering addr,
 * or -1 if absent, or if the PMD is a huge / non-present leaf.
 */
export function pteTableOf(core: Core, mm: MmStruct, addr: number, alloc: boolean): number {
  const pmdT = pmdTableOf(core, mm, addr, alloc);
  if (pmdT < 0) return -1;
  return nextLevel(core, mm, pmdT, pmdIndex(addr), alloc);
}

/**
 * Models pte_offset_map() (+ pte_alloc()) from an already walked PMD table `pmdT`: the PTE
 * table covering addr, or -1 if absent or if the PMD is a huge / non-present leaf.
 */
export function pteTableAt(core: Core, mm: MmStruct, pmdT: number, addr: number, alloc: boolean): number {
  return nextLevel(core, mm, pmdT, pmdIndex(addr), alloc);
}

/** The PMD entry words for addr, or [0, 0] when no PMD table exists. Allocation-free. */
export function readPmd(core: Core, mm: MmStruct, addr: number): [number, number, number] {
  const t = pmdTableOf(core, mm, addr, false);
  if (t < 0) return [-1, 0, 0];
  const i = pmdIndex(addr);
  return [t, ptLo(core, t, i), ptHi(core, t, i)];
}

/**
 * Models free_pgd_range()/free_pgtables(): after zapping [start, end), free the table pages
 * below the PGD whose whole span lies in [floor, ceiling) (the gap between the VMAs left on either
 * side: prev->vm_end and next->vm_start) and that map nothing. A table shared with a VMA beside
 * the gap stays: with the mmap_lock downgraded (munmap(2)), a fault or migrate_vma_insert_page()
 * in that VMA may be about to fill it.
 */
export function freeEmptyTables(
  core: Core,
  mm: MmStruct,
  start: number,
  end: number,
  floor = 0,
  ceiling = 2 ** 48,
): void {
  const pgd = mm.pgd;
  const G = 2 ** 39;
  const U = 2 ** 30;
  const M = 2 ** 21;
  for (let ga = Math.floor(start / G) * G; ga < end; ga += G) {
    const gi = pgdIndex(ga);
    const glo = ptLo(core, pgd, gi);
    if (glo === 0) continue;
    const pud = entryPfn(glo, ptHi(core, pgd, gi));
    for (let ua = Math.max(ga, Math.floor(start / U) * U); ua < Math.min(end, ga + G); ua += U) {
      const ui = pudIndex(ua);
      const ulo = ptLo(core, pud, ui);
      if (ulo === 0) continue;
      const pmd = entryPfn(ulo, ptHi(core, pud, ui));
      for (let ma = Math.max(ua, Math.floor(start / M) * M); ma < Math.min(end, ua + U); ma += M) {
        const mi = pmdIndex(ma);
        const mlo = ptLo(core, pmd, mi);
        const mhi = ptHi(core, pmd, mi);
        if ((mlo === 0 && mhi === 0) || !entryPresent(mlo) || entryHuge(mlo)) continue;
        if (ma < floor || ma + M > ceiling) continue;
        const pte = entryPfn(mlo, mhi);
        if (tableEmpty(core, pte)) {
          ptSet(core, pmd, mi, 0, 0);
          freeTable(core, mm, pte);
        }
      }
      if (ua >= floor && ua + U <= ceiling && tableEmpty(core, pmd)) {
        ptSet(core, pud, ui, 0, 0);
        freeTable(core, mm, pmd);
      }
    }
    if (ga >= floor && ga + G <= ceiling && tableEmpty(core, pud)) {
      ptSet(core, pgd, gi, 0, 0);
      freeTable(core, mm, pud);
    }
  }
}

/** True when every entry of the table page is none. */
export function tableEmpty(core: Core, t: number): boolean {
  const b = core.frames.block32(t);
  const off = (t & (BLOCK_PAGES - 1)) << 10;
  for (let i = 0; i < 1024; i++) if (b[off + i] !== 0) return false;
  return true;
}
