import {
  EACCES,
  EINVAL,
  ENOMEM,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Core } from '../core.js';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_SPECIAL,
  entryHuge,
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
import { splitHugePmdLocked } from './huge.js';
import { withInvalidation } from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo, ptSet } from './pgtable.js';
import {
  MMU_NOTIFY_PROTECTION_VMA,
  type MmStruct,
  VM_EXEC,
  VM_HUGETLB,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYWRITE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
} from './types.js';
import { isolateRange, mergeVmas } from './vma.js';

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
 * Models change_protection() over [start, end) of a VMA whose flags were already updated:
 * huge PMDs wholly inside are changed in place, partly covered ones are split first.
 */
export function changeProtection(core: Core, vma: Vma, start: number, end: number): void {
  const mm = vma.mm;
  withInvalidation(mm, start, end, MMU_NOTIFY_PROTECTION_VMA, null, () => {
    let addr = start;
    while (addr < end) {
      const next = Math.min(end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
      const pmdT = pmdTableOf(core, mm, addr, false);
      if (pmdT < 0) {
        addr = next;
        continue;
      }
      const mi = pmdIndex(addr);
      let lo = ptLo(core, pmdT, mi);
      let hi = ptHi(core, pmdT, mi);
      if (entryNone(lo, hi)) {
        addr = next;
        continue;
      }
      const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
      if (!entryPresent(lo) || entryHuge(lo)) {
        if (addr === haddr && next - addr === PMD_SIZE) {
          ptSet(core, pmdT, mi, changeEntry(core, vma, lo, hi, entryPresent(lo)), hi);
          addr = next;
          continue;
        }
        splitHugePmdLocked(core, vma, pmdT, haddr, false);
        lo = ptLo(core, pmdT, mi);
        hi = ptHi(core, pmdT, mi);
      }
      const pteT = entryPfn(lo, hi);
      for (let a = addr; a < next; a += PAGE_SIZE) {
        const i = pteIndex(a);
        const plo = ptLo(core, pteT, i);
        const phi = ptHi(core, pteT, i);
        if (entryNone(plo, phi)) continue;
        ptSet(core, pteT, i, changeEntry(core, vma, plo, phi, false), phi);
      }
      addr = next;
    }
  });
}

/**
 * Models do_mprotect_pkey(): validate, then for each VMA of the range split, set the new
 * flags and change the page tables. A hole in the range stops with -ENOMEM (earlier VMAs
 * keep their change, as in the kernel).
 */
export function sysMprotect(core: Core, mm: MmStruct, addr: number, len: number, prot: number): number {
  if (!Number.isInteger(addr) || !Number.isInteger(len) || !Number.isInteger(prot)) return -EINVAL;
  if (addr % PAGE_SIZE !== 0 || addr < 0) return -EINVAL;
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | 0x01000000 | 0x02000000)) return -EINVAL;
  if (len === 0) return 0;
  if (len < 0) return -EINVAL;
  const end = addr + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  if (end <= addr || end > 2 ** 47) return -ENOMEM;
  const vmFlags = protToVmFlags(prot);
  const first = mm.findVma(addr);
  if (!first || first.start > addr) return -ENOMEM;
  let cursor = addr;
  for (const v of [...mm.vmas]) {
    if (v.end <= cursor || v.start >= end) continue;
    if (v.start > cursor) return -ENOMEM;
    if (v.flags & VM_HUGETLB && (cursor % PMD_SIZE || (Math.min(end, v.end) % PMD_SIZE && end < v.end)))
      return -EINVAL;
    const mayFlags =
      (vmFlags & VM_READ ? VM_MAYREAD : 0) |
      (vmFlags & VM_WRITE ? VM_MAYWRITE : 0) |
      (vmFlags & VM_EXEC ? VM_MAYEXEC : 0);
    if ((v.flags & mayFlags) !== mayFlags) return -EACCES;
    const segEnd = Math.min(end, v.end);
    const [piece] = isolateRange(core, [v], cursor, segEnd);
    const newFlags = (piece.flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | vmFlags;
    if (newFlags !== piece.flags) {
      piece.flags = newFlags;
      changeProtection(core, piece, piece.start, piece.end);
    }
    cursor = segEnd;
    if (cursor >= end) break;
  }
  if (cursor < end) return -ENOMEM;
  mergeVmas(mm.vmas);
  return 0;
}
