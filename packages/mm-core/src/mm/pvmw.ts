/**
 * page_vma_mapped_walk() (mm/page_vma_mapped.c): where a range of a folio's pages is mapped in
 * one VMA, one mapping at a time, without an object per mapping.
 */
import { HPAGE_PMD_NR, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import {
  _PAGE_SPECIAL,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  isDevicePrivateType,
  isMigrationType,
  SWP_DEVICE_EXCLUSIVE,
  swpType,
} from '../pgtable/entry.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo } from './pgtable.js';
import type { Vma } from './types.js';

/** A place where a folio is mapped, as page_vma_mapped_walk() reports it. */
export type MappedAt =
  | { readonly level: 'pmd'; readonly vma: Vma; readonly pmdT: number; readonly addr: number }
  | {
      readonly level: 'pte';
      readonly vma: Vma;
      readonly pteT: number;
      readonly addr: number;
      readonly pfn: number;
    };

/**
 * Models struct page_vma_mapped_walk (include/linux/rmap.h) and page_vma_mapped_walk(): the
 * mappings of pages [pfn, pfn + nr) in one VMA whose first page would be at `addr`. Each
 * {@link PageVmaMappedWalk.walk} stops at the next one: a PMD-level mapping of the whole folio
 * (`pte` false, `pmdT`) or one PTE mapping page `pfn` (`pte` true, `pteT`), at `address`. With
 * `migration` only migration entries match (PVMW_MIGRATION); otherwise present pages,
 * device-private and device-exclusive entries match (never migration entries).
 *
 * Model: the kernel's walk holds the page-table lock from one stop to the next; here the caller
 * takes it per stop and must not sleep between stops (a stop's PTE table is remembered).
 */
export class PageVmaMappedWalk {
  /** The stop is a PTE (pvmw->pte set), else a PMD. */
  pte = false;
  /** pvmw->address: the stop's address (a PMD stop: its 2 MiB-aligned address). */
  address = 0;
  /** The page table holding a PMD stop's entry. */
  pmdT = -1;
  /** The page table holding a PTE stop's entry. */
  pteT = -1;
  /** The page a PTE stop maps (or its migration entry names). */
  pfn = -1;
  /** Next address to look at. */
  private a: number;
  private readonly end: number;
  /** End of the PTE table being walked (the next PMD boundary), or -1 between tables. */
  private tableEnd = -1;

  constructor(
    private readonly core: Core,
    readonly vma: Vma,
    private readonly first: number,
    private readonly nr: number,
    private readonly start: number,
    private readonly migration: boolean,
  ) {
    this.a = Math.max(start, vma.start);
    this.end = Math.min(start + nr * PAGE_SIZE, vma.end);
  }

  /** Models page_vma_mapped_walk(): move to the next mapping; false when there is none. */
  walk(): boolean {
    const core = this.core;
    const first = this.first;
    const last = first + this.nr;
    for (;;) {
      if (this.tableEnd >= 0) {
        const pteT = this.pteT;
        const tableEnd = this.tableEnd;
        for (let a = this.a; a < tableEnd; a += PAGE_SIZE) {
          const i = pteIndex(a);
          const plo = ptLo(core, pteT, i);
          const phi = ptHi(core, pteT, i);
          if (entryNone(plo, phi)) continue;
          const p = entryPfn(plo, phi);
          if (p < first || p >= last) continue;
          let ok: boolean;
          if (entryPresent(plo)) ok = !this.migration && !(plo & _PAGE_SPECIAL);
          else {
            const t = swpType(plo);
            ok = this.migration ? isMigrationType(t) : isDevicePrivateType(t) || t === SWP_DEVICE_EXCLUSIVE;
          }
          if (ok) {
            this.pte = true;
            this.address = a;
            this.pfn = p;
            this.a = a + PAGE_SIZE;
            return true;
          }
        }
        this.a = tableEnd;
        this.tableEnd = -1;
      }
      const a = this.a;
      if (a >= this.end) return false;
      const next = Math.min(this.end, (Math.floor(a / PMD_SIZE) + 1) * PMD_SIZE);
      const pmdT = pmdTableOf(core, this.vma.mm, a, false);
      this.a = next;
      if (pmdT < 0) continue;
      const mi = pmdIndex(a);
      const lo = ptLo(core, pmdT, mi);
      const hi = ptHi(core, pmdT, mi);
      if (entryNone(lo, hi)) continue;
      if (!entryPresent(lo) || entryHuge(lo)) {
        const p = entryPfn(lo, hi);
        const isMig = !entryPresent(lo) && isMigrationType(swpType(lo));
        const isDev = !entryPresent(lo) && isDevicePrivateType(swpType(lo));
        const matches = this.migration ? isMig : entryPresent(lo) || isDev;
        // PMD entries carry the head pfn; the walk's range must overlap it (Wei Yang's check).
        if (matches && p <= last - 1 && p + HPAGE_PMD_NR > first) {
          this.pte = false;
          this.pmdT = pmdT;
          this.address = Math.floor(a / PMD_SIZE) * PMD_SIZE;
          return true;
        }
        continue;
      }
      this.pteT = entryPfn(lo, hi);
      this.a = a;
      this.tableEnd = next;
    }
  }

  /** Models page_vma_mapped_walk_restart(): the next walk() starts again from the first page. */
  restart(): void {
    this.a = Math.max(this.start, this.vma.start);
    this.tableEnd = -1;
  }

  /** Model-only: the current stop as a record (for callers that collect the stops). */
  at(): MappedAt {
    return this.pte
      ? { level: 'pte', vma: this.vma, pteT: this.pteT, addr: this.address, pfn: this.pfn }
      : { level: 'pmd', vma: this.vma, pmdT: this.pmdT, addr: this.address };
  }
}

/**
 * Models a whole page_vma_mapped_walk() loop over [pfn, pfn + nr) in one VMA whose first page
 * would be at `addr`, collecting every stop (see {@link PageVmaMappedWalk}); for callers that
 * sleep between stops, which the cursor does not allow.
 */
export function pageVmaMappedWalk(
  core: Core,
  vma: Vma,
  pfn: number,
  nr: number,
  addr: number,
  migration: boolean,
): MappedAt[] {
  const out: MappedAt[] = [];
  const w = new PageVmaMappedWalk(core, vma, pfn, nr, addr, migration);
  while (w.walk()) out.push(w.at());
  return out;
}

/**
 * {@link pageVmaMappedWalk} that only counts the mappings, stopping at `limit` (the callers that
 * ask "how many" or "any").
 */
export function pageVmaMappedCount(
  core: Core,
  vma: Vma,
  pfn: number,
  nr: number,
  addr: number,
  migration: boolean,
  limit = Number.POSITIVE_INFINITY,
): number {
  let count = 0;
  const w = new PageVmaMappedWalk(core, vma, pfn, nr, addr, migration);
  while (count < limit && w.walk()) count++;
  return count;
}
