/**
 * Models folio_pte_batch() (mm/internal.h): the run of PTEs mapping consecutive pages of one
 * large folio that the kernel handles as a unit (zap_present_ptes(), madvise, fork).
 */
import type { Core } from '../core.js';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_NX_HI,
  _PAGE_RW,
  _PAGE_SOFT_DIRTY,
  _PAGE_SPECIAL,
  entryPfn,
  entryPresent,
} from '../pgtable/entry.js';
import { ptHi, ptLo } from './pgtable.js';

/** The PTE flag bits (bits 0..11 of the low word). */
const PTE_FLAG_BITS = 0xfff;
/** Bits folio_pte_batch() without FPB_RESPECT_* ignores: young, dirty, soft-dirty, writable. */
const IGNORED = _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_SOFT_DIRTY | _PAGE_RW;

/**
 * Models folio_pte_batch(folio, ptep, pte, max_nr) with no FPB flags: how many PTEs from index i
 * of table t (at least 1, at most `max`, never past the folio's last page) are present,
 * not special, map the next page of the folio at `head`, and differ from the first only in the
 * young, dirty, soft-dirty and writable bits.
 */
export function folioPteBatch(core: Core, t: number, i: number, max: number, head: number): number {
  const m = core.map;
  const lo0 = ptLo(core, t, i);
  const hi0 = ptHi(core, t, i);
  const first = entryPfn(lo0, hi0);
  const limit = Math.min(max, head + m.folioNrPages(head) - first);
  const flags = lo0 & PTE_FLAG_BITS & ~IGNORED;
  const nx = hi0 & _PAGE_NX_HI;
  let nr = 1;
  while (nr < limit) {
    const lo = ptLo(core, t, i + nr);
    const hi = ptHi(core, t, i + nr);
    if (!entryPresent(lo) || lo & _PAGE_SPECIAL || entryPfn(lo, hi) !== first + nr) break;
    if ((lo & PTE_FLAG_BITS & ~IGNORED) !== flags || (hi & _PAGE_NX_HI) !== nx) break;
    nr++;
  }
  return nr;
}
