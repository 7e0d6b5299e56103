import {
  EACCES,
  EINVAL,
  ENOMEM,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
} from '../constants.js';
import type { Core } from '../core.js';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_SPECIAL,
  entryNone,
  entryPfn,
  entryPresent,
  mkPteLo,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  SWP_MIGRATION_READ,
  SWP_MIGRATION_READ_EXCLUSIVE,
  SWP_MIGRATION_WRITE,
  swpType,
} from '../pgtable/entry.js';
import { PG_anon, PG_anon_exclusive } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { argULong, mprotectArgs } from '../syscall-args.js';
import { pmdIsHuge, pmdTransHugeLock, splitHugePmd } from './huge.js';
import { mmapWriteLock, mmapWriteUnlock, pteLock, ptlUnlock } from './locking.js';
import { withInvalidation } from './notifier.js';
import { vmEnoughMemory } from './overcommit.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableAt, ptHi, ptLo, ptSet } from './pgtable.js';
import {
  MMU_NOTIFY_PROTECTION_VMA,
  type MmStruct,
  VM_ACCOUNT,
  VM_EXEC,
  VM_HUGETLB,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYWRITE,
  VM_NORESERVE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
} from './types.js';
import { vmaModifyFlags } from './vma-merge.js';

/** Models calc_vm_prot_bits(): PROT_* to VM_READ/WRITE/EXEC. */
export function protToVmFlags(prot: number): number {
  return (
    (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0)
  );
}

/**
 * Models change_pte_range()/change_huge_pmd() for one present or software entry: returns the
 * new low word. Writable migration and device-private entries are always made readable (the
 * kernel cannot check protections for them); present entries follow the new VMA flags.
 */
function changeEntry(core: Core, vma: Vma, lo: number, hi: number, huge: boolean): number {
  const flags = vma.flags;
  if (entryPresent(lo)) {
    const none = !(flags & (VM_READ | VM_WRITE | VM_EXEC));
    const pfn = entryPfn(lo, hi);
    const special = (lo & _PAGE_SPECIAL) !== 0 || pfn === core.hugeZeroPfn;
    let write = false;
    if (!special && flags & VM_WRITE) {
      const head = core.map.head[pfn];
      if (flags & VM_SHARED) write = true;
      else if (lo & _PAGE_RW) write = true;
      else if (core.map.flags[head] & PG_anon && core.map.flags[huge ? head : pfn] & PG_anon_exclusive)
        write = true;
    }
    let nl = mkPteLo(pfn, write, (lo & _PAGE_DIRTY) !== 0, (lo & _PAGE_ACCESSED) !== 0, none);
    nl |= lo & (_PAGE_SPECIAL | (1 << 10) | (1 << 11));
    if (huge) nl |= _PAGE_PSE;
    return nl >>> 0;
  }
  const type = swpType(lo);
  const keep = lo & ~(31 << 1);
  if (type === SWP_MIGRATION_WRITE) {
    const head = core.map.head[entryPfn(lo, hi)];
    const t = core.map.flags[head] & PG_anon ? SWP_MIGRATION_READ_EXCLUSIVE : SWP_MIGRATION_READ;
    return (keep | (t << 1)) >>> 0;
  }
  if (type === SWP_DEVICE_WRITE) return (keep | (SWP_DEVICE_READ << 1)) >>> 0;
  return lo;
}

/**
 * Models where change_pud_range() starts and ends its MMU_NOTIFY_PROTECTION_VMA invalidation:
 * change_p4d_range() calls it per populated P4D (512 GiB) of [start, end), and it starts the
 * range lazily at the first address whose PUD entry is populated, up to that call's end. No
 * range at all when every PUD is none (nothing was ever mapped there).
 */
export function protectionRanges(core: Core, mm: MmStruct, start: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  for (let a = start; a < end; ) {
    const p4dEnd = Math.min(end, (Math.floor(a / 2 ** 39) + 1) * 2 ** 39);
    for (let b = a; b < p4dEnd; b = Math.min(p4dEnd, (Math.floor(b / 2 ** 30) + 1) * 2 ** 30)) {
      if (pmdTableOf(core, mm, b, false) >= 0) {
        out.push([b, p4dEnd]);
        break;
      }
    }
    a = p4dEnd;
  }
  return out;
}

/**
 * Models change_protection() / change_pmd_range() over [from, to) of a VMA whose flags were
 * already updated, under MMU_NOTIFY_PROTECTION_VMA invalidations ({@link protectionRanges}). A
 * PMD seen huge without the lock is, after a window, changed in place under
 * pmd_trans_huge_lock() (change_huge_pmd()) when wholly inside the range, or split first; PTEs
 * change under the PTE lock.
 */
export function* changeProtection(core: Core, vma: Vma, from: number, to: number): KGen {
  const mm = vma.mm;
  for (const [start, end] of protectionRanges(core, mm, from, to))
    yield* withInvalidation(mm, start, end, MMU_NOTIFY_PROTECTION_VMA, null, () =>
      changePmdRange(core, vma, start, end),
    );
}

/**
 * Models change_pmd_range() (with change_pte_range()) over [start, end) inside an invalidation.
 * A module-level generator, not a closure per call: V8 keeps a closure's optimized code only
 * while a closure of that site is alive, so a body that a new closure carries is compiled again
 * after every full GC.
 */
function* changePmdRange(core: Core, vma: Vma, start: number, end: number): KGen {
  const mm = vma.mm;
  let addr = start;
  while (addr < end) {
    const next = Math.min(end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
    const pmdT = pmdTableOf(core, mm, addr, false);
    if (pmdT < 0) {
      addr = next;
      continue;
    }
    const mi = pmdIndex(addr);
    const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
    if (pmdIsHuge(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))) {
      if (core.sched.preempt('change_pmd_range: PMD seen huge without the PMD lock')) yield RESCHED;
      if (addr === haddr && next - addr === PMD_SIZE) {
        const ptl = pmdTransHugeLock(core, pmdT, haddr, 'change_huge_pmd');
        if (ptl) {
          const lo = ptLo(core, pmdT, mi);
          const hi = ptHi(core, pmdT, mi);
          ptSet(core, pmdT, mi, changeEntry(core, vma, lo, hi, entryPresent(lo)), hi);
          mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
          ptlUnlock(core, ptl, 'change_huge_pmd');
          addr = next;
          if (core.sched.preempt('change_pmd_range: cond_resched')) yield RESCHED;
          continue;
        }
      } else {
        yield* splitHugePmd(core, vma, pmdT, haddr, false);
      }
    }
    if (entryNone(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))) {
      addr = next;
      continue;
    }
    const pteT = pteTableAt(core, mm, pmdT, addr, false);
    if (pteT < 0) continue;
    const ptl = pteLock(core, pteT, 'change_pte_range');
    for (let a = addr; a < next; a += PAGE_SIZE) {
      const i = pteIndex(a);
      const plo = ptLo(core, pteT, i);
      const phi = ptHi(core, pteT, i);
      if (entryNone(plo, phi)) continue;
      ptSet(core, pteT, i, changeEntry(core, vma, plo, phi, false), phi);
    }
    mm.tlb.flushRange(addr, next);
    ptlUnlock(core, ptl, 'change_pte_range');
    addr = next;
    if (core.sched.preempt('change_pmd_range: cond_resched')) yield RESCHED;
  }
}

/**
 * Models do_mprotect_pkey(): validate, then for each VMA of the range split, set the new
 * flags and change the page tables. A hole in the range stops with -ENOMEM (earlier VMAs
 * keep their change, as in the kernel).
 */
export function* sysMprotect(
  core: Core,
  mm: MmStruct,
  addr: number,
  len: number,
  prot: number,
): KGen<number> {
  const p = argULong(prot);
  if (p === undefined) return -EINVAL;
  const range = mprotectArgs(addr, len);
  if (typeof range === 'number') return range;
  if (p & ~BigInt(PROT_READ | PROT_WRITE | PROT_EXEC | 0x01000000 | 0x02000000)) return -EINVAL;
  // No VMA reaches past TASK_SIZE: the kernel's walk ends at a hole there (-ENOMEM).
  if (range.end > TASK_SIZE) return -ENOMEM;
  yield* mmapWriteLock(core, mm, 'do_mprotect_pkey');
  try {
    return yield* mprotectLocked(core, mm, range.start, range.end, Number(p));
  } finally {
    mmapWriteUnlock(core, mm, 'do_mprotect_pkey');
  }
}

/**
 * Models mprotect_fixup() (mm/mprotect.c): nothing to do when the flags do not change; making a
 * private mapping writable charges it (VM_ACCOUNT), making an unfaulted anonymous one
 * read-only drops VM_ACCOUNT; then vma_modify_flags() merges or splits and the page tables of
 * [start, end) follow the new flags. 0 or -ENOMEM (the charge refused).
 */
function* mprotectFixup(core: Core, vma: Vma, start: number, end: number, flags: number): KGen<number> {
  const oldflags = vma.flags;
  let newflags = flags;
  if (newflags === oldflags) return 0;
  if (newflags & VM_WRITE) {
    if (!(oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE))) {
      if (vmEnoughMemory(core, vma.mm, (end - start) / PAGE_SIZE) < 0) return -ENOMEM;
      newflags |= VM_ACCOUNT;
    }
  } else if (oldflags & VM_ACCOUNT && vma.isAnonymous && !vma.anonVma) {
    newflags &= ~VM_ACCOUNT;
  }
  const piece = yield* vmaModifyFlags(core, vma, start, end, newflags);
  piece.flags = newflags;
  yield* changeProtection(core, piece, start, end);
  return 0;
}

/**
 * do_mprotect_pkey() with the mmap_lock held for write: each VMA of the range in turn (a VMA
 * merged with its successor covers it already), stopping at a hole with -ENOMEM.
 */
function* mprotectLocked(core: Core, mm: MmStruct, addr: number, end: number, prot: number): KGen<number> {
  const vmFlags = protToVmFlags(prot);
  const first = mm.findVma(addr);
  if (!first || first.start > addr) return -ENOMEM;
  let cursor = addr;
  while (cursor < end) {
    const v = mm.findVma(cursor);
    if (!v || v.start > cursor) return -ENOMEM;
    if (v.flags & VM_HUGETLB && (cursor % PMD_SIZE || (Math.min(end, v.end) % PMD_SIZE && end < v.end)))
      return -EINVAL;
    const mayFlags =
      (vmFlags & VM_READ ? VM_MAYREAD : 0) |
      (vmFlags & VM_WRITE ? VM_MAYWRITE : 0) |
      (vmFlags & VM_EXEC ? VM_MAYEXEC : 0);
    if ((v.flags & mayFlags) !== mayFlags) return -EACCES;
    const segEnd = Math.min(end, v.end);
    const newFlags = (v.flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | vmFlags;
    const r = yield* mprotectFixup(core, v, cursor, segEnd, newFlags);
    if (r) return r;
    cursor = segEnd;
  }
  return 0;
}
