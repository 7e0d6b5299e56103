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
import { entryNone } from '../pgtable/entry.js';
import type { KGen } from '../sched/task.js';
import { mremapArgs } from '../syscall-args.js';
import { anonVmaClone } from './anon.js';
import { depositTable, pmdIsHuge, splitHugePmd, withdrawTable } from './huge.js';
import { mmapWriteLock, mmapWriteUnlock, pmdLock, pteLock, ptlUnlock } from './locking.js';
import { getUnmappedArea, rangeFree, unmapRange } from './mmap.js';
import { withInvalidation } from './notifier.js';
import { mremapAccount } from './overcommit.js';
import { freeEmptyTables, pmdIndex, pmdTableOf, pteIndex, pteTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import { MMU_NOTIFY_UNMAP, type MmStruct, VM_HUGETLB, VM_MAYSHARE, VM_SHARED, Vma } from './types.js';
import { splitHugePmdAt } from './vma.js';

/** Models take_rmap_locks(): the anon_vma (or i_mmap) lock of the VMA, for write. */
function* takeRmapLocks(core: Core, vma: Vma): KGen {
  if (vma.anonVma) yield* vma.anonVma.root.rwsem.downWrite(core.sched, 'take_rmap_locks');
  if (vma.file) yield* vma.file.immapRwsem.downWrite(core.sched, 'take_rmap_locks');
}

/** Models drop_rmap_locks(). */
function dropRmapLocks(core: Core, vma: Vma): void {
  if (vma.file) vma.file.immapRwsem.upWrite(core.sched, 'drop_rmap_locks');
  if (vma.anonVma) vma.anonVma.root.rwsem.upWrite(core.sched, 'drop_rmap_locks');
}

/**
 * Models move_page_tables(): move every entry of [old, old + len) to [neu, neu + len), PMD by
 * PMD with cond_resched() between, each move under the rmap locks (so an rmap walk sees an
 * entry at one address or the other) and both page-table locks. Whole aligned huge PMDs
 * (present, huge zero, device-private, migration) move verbatim with their deposited table
 * (move_huge_pmd()); others are split and moved PTE by PTE. rmap is untouched: the new VMA's
 * pgoff keeps every folio's index valid. Returns false on OOM.
 */
function* movePageTables(
  core: Core,
  mm: MmStruct,
  oldVma: Vma,
  old: number,
  neu: number,
  len: number,
): KGen<boolean> {
  let off = 0;
  while (off < len) {
    yield 'move_page_tables: cond_resched';
    const s = old + off;
    const d = neu + off;
    const sPmdT = pmdTableOf(core, mm, s, false);
    const chunkEnd = Math.min(len, off + (PMD_SIZE - (s % PMD_SIZE)));
    if (sPmdT < 0) {
      off = chunkEnd;
      continue;
    }
    const mi = pmdIndex(s);
    if (entryNone(ptLo(core, sPmdT, mi), ptHi(core, sPmdT, mi))) {
      off = chunkEnd;
      continue;
    }
    if (pmdIsHuge(ptLo(core, sPmdT, mi), ptHi(core, sPmdT, mi))) {
      if (s % PMD_SIZE === 0 && d % PMD_SIZE === 0 && len - off >= PMD_SIZE) {
        const dPmdT = pmdTableOf(core, mm, d, true);
        if (dPmdT < 0) return false;
        yield* takeRmapLocks(core, oldVma);
        const oldPtl = pmdLock(core, sPmdT, 'move_huge_pmd');
        const newPtl = dPmdT === sPmdT ? null : pmdLock(core, dPmdT, 'move_huge_pmd');
        const lo = ptLo(core, sPmdT, mi);
        const hi = ptHi(core, sPmdT, mi);
        const moved = pmdIsHuge(lo, hi);
        if (moved) {
          ptSet(core, dPmdT, pmdIndex(d), lo, hi);
          ptSet(core, sPmdT, mi, 0, 0);
          depositTable(mm, d, withdrawTable(mm, s));
          mm.tlb.flushRange(s, s + PMD_SIZE);
        }
        if (newPtl) ptlUnlock(core, newPtl, 'move_huge_pmd');
        ptlUnlock(core, oldPtl, 'move_huge_pmd');
        dropRmapLocks(core, oldVma);
        if (moved) {
          off += PMD_SIZE;
          continue;
        }
      } else {
        yield* splitHugePmd(core, oldVma, sPmdT, Math.floor(s / PMD_SIZE) * PMD_SIZE, false);
      }
    }
    const sT = pteTableOf(core, mm, s, false);
    if (sT < 0) continue;
    // Destination tables exist before the move (alloc_new_pmd()/pte_alloc()).
    for (let a = s; a < old + chunkEnd; a += PAGE_SIZE) {
      if (pteTableOf(core, mm, neu + (a - old), true) < 0) return false;
    }
    yield* takeRmapLocks(core, oldVma);
    const oldPtl = pteLock(core, sT, 'move_ptes');
    const held = new Set<number>([sT]);
    const locks = [oldPtl];
    for (let a = s; a < old + chunkEnd; a += PAGE_SIZE) {
      const i = pteIndex(a);
      const plo = ptLo(core, sT, i);
      const phi = ptHi(core, sT, i);
      if (entryNone(plo, phi)) continue;
      const dd = neu + (a - old);
      const dT = pteTableOf(core, mm, dd, false);
      if (!held.has(dT)) {
        held.add(dT);
        locks.push(pteLock(core, dT, 'move_ptes'));
      }
      ptSet(core, dT, pteIndex(dd), plo, phi);
      ptSet(core, sT, i, 0, 0);
    }
    mm.tlb.flushRange(s, old + chunkEnd);
    for (const l of locks.reverse()) ptlUnlock(core, l, 'move_ptes');
    dropRmapLocks(core, oldVma);
    off = chunkEnd;
  }
  return true;
}

/**
 * Models mremap(2) (mm/mremap.c): shrink, grow in place, or move (MREMAP_MAYMOVE,
 * MREMAP_FIXED, MREMAP_DONTUNMAP). Returns the new address or -errno.
 */
export function* sysMremap(
  core: Core,
  mm: MmStruct,
  oldAddr: number,
  oldLen: number,
  newLen: number,
  flags: number,
  newAddr: number,
): KGen<number> {
  const args = mremapArgs(oldAddr, oldLen, newLen, flags, newAddr);
  if (typeof args === 'number') return args;
  yield* mmapWriteLock(core, mm, 'do_mremap');
  try {
    return yield* mremapLocked(core, mm, args.addr, args.oldLen, args.newLen, args.flags, args.newAddr);
  } finally {
    mmapWriteUnlock(core, mm, 'do_mremap');
  }
}

/** do_mremap() with the mmap_lock held for write. */
function* mremapLocked(
  core: Core,
  mm: MmStruct,
  oldAddr: number,
  oLen: number,
  nLen: number,
  flags: number,
  newAddr: number,
): KGen<number> {
  let vma = oldAddr <= TASK_SIZE ? mm.vmaLookup(oldAddr) : undefined;
  if (!vma || oldAddr + Math.max(oLen, PAGE_SIZE) > vma.end) return -EFAULT;
  if (vma.flags & VM_HUGETLB) return -EINVAL;
  // Models remap_is_valid(): old_len 0 'duplicates' a shared mapping only.
  if (oLen === 0 && !(vma.flags & (VM_SHARED | VM_MAYSHARE))) return -EINVAL;
  if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
    // Models mremap_to(): a new length or address beyond TASK_SIZE, or overlapping ranges.
    if (nLen > TASK_SIZE || newAddr > TASK_SIZE - nLen) return -EINVAL;
    if (newAddr < oldAddr + oLen && oldAddr < newAddr + nLen) return -EINVAL;
  } else if (nLen > TASK_SIZE) {
    // Growing past the address space: neither in place nor by a move (get_unmapped_area()).
    return -ENOMEM;
  }
  if (flags & MREMAP_DONTUNMAP && vma.flags & VM_SHARED && !vma.file) return -EINVAL;
  if (mremapAccount(core, mm, vma, oLen, nLen, (flags & MREMAP_DONTUNMAP) !== 0) < 0) return -ENOMEM;
  // Models do_mremap(): MREMAP_FIXED and MREMAP_DONTUNMAP always go through mremap_to().
  if (!(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))) {
    if (nLen <= oLen) {
      if (nLen < oLen) yield* unmapRange(core, mm, oldAddr + nLen, oldAddr + oLen);
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
    yield* unmapRange(core, mm, newAddr, newAddr + nLen);
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
  yield* splitHugePmdAt(core, vma, oldAddr);
  yield* splitHugePmdAt(core, vma, oldAddr + moveLen);
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
  const src = vma;
  const ok = yield* withInvalidation(mm, oldAddr, oldAddr + moveLen, MMU_NOTIFY_UNMAP, null, () =>
    movePageTables(core, mm, src, oldAddr, dest, moveLen),
  );
  if (!ok) return -ENOMEM;
  if (flags & MREMAP_DONTUNMAP) {
    freeEmptyTables(core, mm, oldAddr, oldAddr + moveLen);
  } else {
    yield* unmapRange(core, mm, oldAddr, oldAddr + oLen);
  }
  return dest;
}
