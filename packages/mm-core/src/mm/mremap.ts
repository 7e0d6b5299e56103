import {
  EFAULT,
  EINVAL,
  ENOMEM,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  TASK_SIZE,
} from '../constants.js';
import type { Core } from '../core.js';
import { entryHuge, entryNone, entryPresent } from '../pgtable/entry.js';
import { anonVmaClone } from './anon.js';
import { depositTable, splitHugePmdLocked, withdrawTable } from './huge.js';
import { getUnmappedArea, pageAlign, rangeFree, unmapRange } from './mmap.js';
import { withInvalidation } from './notifier.js';
import { mremapAccount } from './overcommit.js';
import { freeEmptyTables, pmdIndex, pmdTableOf, pteIndex, pteTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import { MMU_NOTIFY_UNMAP, type MmStruct, VM_HUGETLB, VM_SHARED, Vma } from './types.js';
import { splitHugePmdAt } from './vma.js';

/**
 * Models move_page_tables(): move every entry of [old, old + len) to [neu, neu + len).
 * Whole aligned huge PMDs (present, huge zero, device-private, migration) move verbatim with
 * their deposited table (move_huge_pmd()); others are split and moved PTE by PTE. rmap is
 * untouched: the new VMA's pgoff keeps every folio's index valid. Returns false on OOM.
 */
function movePageTables(
  core: Core,
  mm: MmStruct,
  oldVma: Vma,
  old: number,
  neu: number,
  len: number,
): boolean {
  let off = 0;
  while (off < len) {
    const s = old + off;
    const d = neu + off;
    const sPmdT = pmdTableOf(core, mm, s, false);
    const chunkEnd = Math.min(len, off + (PMD_SIZE - (s % PMD_SIZE)));
    if (sPmdT < 0) {
      off = chunkEnd;
      continue;
    }
    const mi = pmdIndex(s);
    const lo = ptLo(core, sPmdT, mi);
    const hi = ptHi(core, sPmdT, mi);
    if (entryNone(lo, hi)) {
      off = chunkEnd;
      continue;
    }
    if (!entryPresent(lo) || entryHuge(lo)) {
      if (s % PMD_SIZE === 0 && d % PMD_SIZE === 0 && len - off >= PMD_SIZE) {
        const dPmdT = pmdTableOf(core, mm, d, true);
        if (dPmdT < 0) return false;
        ptSet(core, dPmdT, pmdIndex(d), lo, hi);
        ptSet(core, sPmdT, mi, 0, 0);
        depositTable(mm, d, withdrawTable(mm, s));
        off += PMD_SIZE;
        continue;
      }
      splitHugePmdLocked(core, oldVma, sPmdT, Math.floor(s / PMD_SIZE) * PMD_SIZE, false);
    }
    const sT = pteTableOf(core, mm, s, false);
    for (let a = s; a < old + chunkEnd; a += PAGE_SIZE) {
      const i = pteIndex(a);
      const plo = ptLo(core, sT, i);
      const phi = ptHi(core, sT, i);
      if (entryNone(plo, phi)) continue;
      const dd = neu + (a - old);
      // A destination PMD that is huge would need a split; the destination range is empty.
      const dT = pteTableOf(core, mm, dd, true);
      if (dT < 0) return false;
      ptSet(core, dT, pteIndex(dd), plo, phi);
      ptSet(core, sT, i, 0, 0);
    }
    off = chunkEnd;
  }
  return true;
}

/**
 * Models mremap(2) (mm/mremap.c): shrink, grow in place, or move (MREMAP_MAYMOVE,
 * MREMAP_FIXED, MREMAP_DONTUNMAP). Returns the new address or -errno.
 */
export function sysMremap(
  core: Core,
  mm: MmStruct,
  oldAddr: number,
  oldLen: number,
  newLen: number,
  flags: number,
  newAddr: number,
): number {
  if (![oldAddr, oldLen, newLen, flags, newAddr].every(Number.isInteger)) return -EINVAL;
  if (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) return -EINVAL;
  if (flags & MREMAP_FIXED && !(flags & MREMAP_MAYMOVE)) return -EINVAL;
  if (flags & MREMAP_DONTUNMAP && (!(flags & MREMAP_MAYMOVE) || oldLen !== newLen)) return -EINVAL;
  if (oldAddr % PAGE_SIZE !== 0 || oldAddr < 0) return -EINVAL;
  const oLen = pageAlign(oldLen);
  const nLen = pageAlign(newLen);
  if (nLen === 0 || nLen > TASK_SIZE) return -EINVAL;
  if (flags & MREMAP_FIXED) {
    if (newAddr % PAGE_SIZE !== 0 || newAddr + nLen > TASK_SIZE) return -EINVAL;
    if (newAddr < oldAddr + oLen && oldAddr < newAddr + nLen) return -EINVAL;
  }
  let vma = mm.vmaLookup(oldAddr);
  if (!vma || oldAddr + Math.max(oLen, PAGE_SIZE) > vma.end) return -EFAULT;
  if (vma.flags & VM_HUGETLB) return -EINVAL;
  if (flags & MREMAP_DONTUNMAP && vma.flags & VM_SHARED && !vma.file) return -EINVAL;
  if (mremapAccount(core, mm, vma, oLen, nLen, (flags & MREMAP_DONTUNMAP) !== 0) < 0) return -ENOMEM;
  // Models do_mremap(): MREMAP_FIXED and MREMAP_DONTUNMAP always go through mremap_to().
  if (!(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))) {
    if (nLen <= oLen) {
      if (nLen < oLen) unmapRange(core, mm, oldAddr + nLen, oldAddr + oLen);
      return oldAddr;
    }
    if (oldAddr + oLen === vma.end && rangeFree(mm, vma.end, nLen - oLen)) {
      vma.end = oldAddr + nLen;
      return oldAddr;
    }
    if (!(flags & MREMAP_MAYMOVE)) return -ENOMEM;
  }
  let dest: number;
  if (flags & MREMAP_FIXED) {
    unmapRange(core, mm, newAddr, newAddr + nLen);
    dest = newAddr;
    // Models mremap_to(): the destination is unmapped before vma_to_resize() looks the source
    // VMA up, since that unmap may have split the VMA the old range lives in.
    vma = mm.vmaLookup(oldAddr)!;
  } else {
    dest = getUnmappedArea(mm, 0, nLen, vma.isAnonymous);
    if (dest < 0) return dest;
  }
  const moveLen = Math.min(oLen, nLen);
  // Models move_vma(): split the source VMA to exactly the moved range, copy it.
  splitHugePmdAt(core, vma, oldAddr);
  splitHugePmdAt(core, vma, oldAddr + moveLen);
  const nv = new Vma(
    mm,
    dest,
    dest + nLen,
    vma.flags,
    vma.pgoff + (oldAddr - vma.start) / PAGE_SIZE,
    vma.file,
  );
  nv.vmOps = vma.vmOps;
  anonVmaClone(vma, nv);
  if (vma.file) {
    vma.file.mmaps.add(nv);
    vma.file.refs++;
  }
  mm.insertVma(nv);
  const ok = withInvalidation(mm, oldAddr, oldAddr + moveLen, MMU_NOTIFY_UNMAP, null, () =>
    movePageTables(core, mm, vma, oldAddr, dest, moveLen),
  );
  if (!ok) return -ENOMEM;
  if (flags & MREMAP_DONTUNMAP) {
    freeEmptyTables(core, mm, oldAddr, oldAddr + moveLen);
  } else {
    unmapRange(core, mm, oldAddr, oldAddr + oLen);
  }
  return dest;
}
