/**
 * The explorer's incremental check: after an operation completes with no other operation in
 * the kernel, the page-table entries of the range it touched are checked (what the full
 * checkers would say about them, at the cost of the range), and the drivers' O(1) counters.
 * Full checks run at barriers every `checkEvery` operations and at the end.
 */
import {
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  isMigrationType,
  isSwapType,
  type MemMap,
  type MmStruct,
  PAGE_SIZE,
  PG_locked,
  PMD_SIZE,
  pmdIndex,
  pmdTableOf,
  pteIndex,
  pteTableAt,
  ptHi,
  ptLo,
  swpType,
} from '@hmm-model/mm-core';
import type { World } from './world.js';

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * Model-only: with no migration in flight anywhere, the range [start, end) of `mm` holds no
 * migration entry and maps no locked folio (kernel-mechanics §9 #8: a migration entry or a
 * folio lock outlives its migration). Returns one string per violation.
 */
export function checkRangeQuiescent(w: World, mm: MmStruct, start: number, end: number): string[] {
  const core = w.kernel.core;
  const m = core.map;
  const out: string[] = [];
  if (mm.pgd < 0) return out;
  for (let a = start - (start % PMD_SIZE); a < end && out.length < 8; a += PMD_SIZE) {
    const pmdT = pmdTableOf(core, mm, a, false);
    if (pmdT < 0) continue;
    const mi = pmdIndex(a);
    const lo = ptLo(core, pmdT, mi);
    const hi = ptHi(core, pmdT, mi);
    if (entryNone(lo, hi)) continue;
    if (!entryPresent(lo) || entryHuge(lo)) {
      quiescentLeaf(m, out, a, lo, hi, 'PMD');
      continue;
    }
    const pteT = pteTableAt(core, mm, pmdT, a, false);
    if (pteT < 0) continue;
    const first = Math.max(a, start);
    const last = Math.min(a + PMD_SIZE, end);
    for (let p = first; p < last; p += PAGE_SIZE)
      quiescentLeaf(m, out, p, ptLo(core, pteT, pteIndex(p)), ptHi(core, pteT, pteIndex(p)), 'PTE');
  }
  return out;
}

/**
 * checkRangeQuiescent() for one leaf entry (a module function: a closure made per check would
 * be optimized again for every operation).
 */
function quiescentLeaf(m: MemMap, out: string[], addr: number, lo: number, hi: number, level: string): void {
  if (entryNone(lo, hi)) return;
  // A swap entry's offset field is a swap slot, not a pfn.
  if (!entryPresent(lo) && isSwapType(swpType(lo))) return;
  const pfn = entryPfn(lo, hi);
  if (!entryPresent(lo) && isMigrationType(swpType(lo)))
    out.push(`${hex(addr)}: a migration ${level} outlives its migration (pfn ${hex(pfn)})`);
  else if (m.valid(pfn) && m.flags[m.head[pfn]] & PG_locked)
    out.push(
      `${hex(addr)}: ${level} maps folio ${hex(m.head[pfn])}, still locked with no migration in flight`,
    );
}

/** Model-only: the O(1) driver counters (dmirror calloc/cfree against pgmap references). */
export function checkDriverCounters(w: World): string[] {
  return w.dmirror.check();
}
