import { PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { entryHuge, entryNone, entryPresent } from '../pgtable/entry.js';
import type { KGen } from '../sched/task.js';
import { anonVmaClone } from './anon.js';
import { splitHugePmd } from './huge.js';
import { pmdIndex, pmdTableOf, ptHi, ptLo } from './pgtable.js';
import { Vma } from './types.js';

/**
 * Models split_huge_pmd_address()/vma_adjust_trans_huge(): if a huge PMD straddles `addr`
 * (addr not PMD aligned), split it (non-freezing) so the boundary can fall inside it.
 */
export function* splitHugePmdAt(core: Core, vma: Vma, addr: number): KGen {
  if (addr % PMD_SIZE === 0) return;
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  if (haddr < vma.start || haddr + PMD_SIZE > vma.end) return;
  const pmdT = pmdTableOf(core, vma.mm, haddr, false);
  if (pmdT < 0) return;
  const mi = pmdIndex(haddr);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  if (entryNone(lo, hi) || (entryPresent(lo) && !entryHuge(lo))) return;
  yield* splitHugePmd(core, vma, pmdT, haddr, false);
}

/**
 * Models __split_vma(): split vma at addr into [start, addr) and [addr, end); returns the
 * upper part (a new VMA sharing file, anon_vma chain and flags). Huge PMDs across the
 * boundary are split first.
 */
export function* splitVma(core: Core, vma: Vma, addr: number): KGen<Vma> {
  yield* splitHugePmdAt(core, vma, addr);
  const upper = new Vma(
    vma.mm,
    addr,
    vma.end,
    vma.flags,
    vma.pgoff + (addr - vma.start) / PAGE_SIZE,
    vma.file,
  );
  upper.vmOps = vma.vmOps;
  upper.vmFile = vma.vmFile;
  upper.mayStayApart = vma.mayStayApart;
  anonVmaClone(vma, upper);
  if (vma.file) {
    // Models vm_area_dup()'s get_file(): each VMA holds its own reference on the file.
    vma.file.mmaps.add(upper);
    vma.file.refs++;
  }
  vma.end = addr;
  vma.mm.insertVma(upper);
  return upper;
}

/**
 * Models the VMA-splitting half of vma_modify(): make [start, end) exactly covered by whole
 * VMAs (splitting at both ends) and return them in address order.
 */
export function* isolateRange(core: Core, vmas: readonly Vma[], start: number, end: number): KGen<Vma[]> {
  const out: Vma[] = [];
  for (const v0 of [...vmas]) {
    if (v0.end <= start || v0.start >= end) continue;
    let v = v0;
    if (v.start < start) v = yield* splitVma(core, v, start);
    if (v.end > end) yield* splitVma(core, v, end);
    out.push(v);
  }
  return out;
}
