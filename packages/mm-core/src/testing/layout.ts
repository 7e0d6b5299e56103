import type { MmStruct } from '../mm/types.js';
import { vmasMergeable } from '../mm/vma-merge.js';

/**
 * Model-only test check of the VMA layout against Linux's merge rules (mm/vma.c): every pair of
 * adjacent VMAs of mm that the rules would have made one VMA (vmasMergeable()), described.
 * Linux merges at every mmap(), mprotect(), madvise() flag change and mremap() that makes such a
 * pair, so after any of them the list is empty, except next to a VMA Linux leaves unmerged on
 * purpose (MREMAP_DONTUNMAP's old VMA, Vma.mayStayApart).
 */
export function mergeableNeighbours(mm: MmStruct): string[] {
  const out: string[] = [];
  const v = mm.vmas;
  for (let i = 0; i + 1 < v.length; i++) {
    if (!vmasMergeable(v[i], v[i + 1])) continue;
    // A VMA the kernel leaves unmerged on purpose (Vma.mayStayApart) is not a missed merge.
    if (v[i].mayStayApart || v[i + 1].mayStayApart) continue;
    const a = v[i];
    const b = v[i + 1];
    out.push(
      `mm ${mm.id}: [0x${a.start.toString(16)}, 0x${a.end.toString(16)}) and [0x${b.start.toString(16)}, 0x${b.end.toString(16)}) flags 0x${a.flags.toString(16)} are mergeable but apart`,
    );
  }
  return out;
}
