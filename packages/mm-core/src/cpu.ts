import { PAGE_SIZE } from './constants.js';
import {
  type Core,
  FAULT_FLAG_USER,
  FAULT_FLAG_WRITE,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
} from './core.js';
import { handleMmFault } from './mm/fault.js';
import { pgdIndex, pmdIndex, pteIndex, ptHi, ptLo, pudIndex } from './mm/pgtable.js';
import type { MmStruct } from './mm/types.js';
import { _PAGE_PRESENT, _PAGE_PSE, _PAGE_RW, entryPfn } from './pgtable/entry.js';
import { BLOCK_PAGES } from './phys/frames.js';

/** Result codes of {@link translate} besides a pfn. */
export const XLATE_SEGV = -1;
export const XLATE_BUS = -2;
export const XLATE_OOM = -3;

const TLB_MASK = 1023;

/**
 * Models the MMU's page walk (no faulting): the pfn that addr maps to with the needed access,
 * or -1. Fills the software TLB on success.
 */
export function walkPfn(core: Core, mm: MmStruct, addr: number, write: boolean): number {
  if (mm.pgd < 0) return -1;
  let lo = ptLo(core, mm.pgd, pgdIndex(addr));
  if (!(lo & _PAGE_PRESENT)) return -1;
  let t = entryPfn(lo, ptHi(core, mm.pgd, pgdIndex(addr)));
  let i = pudIndex(addr);
  lo = ptLo(core, t, i);
  if (!(lo & _PAGE_PRESENT)) return -1;
  t = entryPfn(lo, ptHi(core, t, i));
  i = pmdIndex(addr);
  lo = ptLo(core, t, i);
  if (!(lo & _PAGE_PRESENT)) return -1;
  let pfn: number;
  if (lo & _PAGE_PSE) {
    if (write && !(lo & _PAGE_RW)) return -1;
    pfn = entryPfn(lo, ptHi(core, t, i)) + pteIndex(addr);
  } else {
    t = entryPfn(lo, ptHi(core, t, i));
    i = pteIndex(addr);
    lo = ptLo(core, t, i);
    if (!(lo & _PAGE_PRESENT)) return -1;
    if (write && !(lo & _PAGE_RW)) return -1;
    pfn = entryPfn(lo, ptHi(core, t, i));
  }
  const vpn = Math.floor(addr / PAGE_SIZE);
  const s = vpn & TLB_MASK;
  mm.tlb.tag[s] = vpn;
  mm.tlb.pfn[s] = pfn;
  mm.tlb.writable[s] = lo & _PAGE_RW ? 1 : 0;
  return pfn;
}

/**
 * Models a user access as the CPU performs it: TLB hit, else page walk, else the page-fault
 * handler (access_error() + handle_mm_fault()), retried until the walk succeeds. Returns the
 * pfn, or XLATE_SEGV / XLATE_BUS / XLATE_OOM when the fault cannot be resolved.
 */
export function translate(core: Core, mm: MmStruct, addr: number, write: boolean): number {
  const vpn = Math.floor(addr / PAGE_SIZE);
  const s = vpn & TLB_MASK;
  const tlb = mm.tlb;
  if (tlb.tag[s] === vpn && (!write || tlb.writable[s] === 1)) return tlb.pfn[s];
  for (let tries = 0; tries < 16; tries++) {
    const pfn = walkPfn(core, mm, addr, write);
    if (pfn >= 0) return pfn;
    const vma = mm.vmaLookup(addr);
    if (!vma) return XLATE_SEGV;
    const r = handleMmFault(core, vma, addr, (write ? FAULT_FLAG_WRITE : 0) | FAULT_FLAG_USER);
    if (r & VM_FAULT_SIGSEGV) return XLATE_SEGV;
    if (r & VM_FAULT_SIGBUS) return XLATE_BUS;
    if (r & VM_FAULT_OOM) return XLATE_OOM;
  }
  return XLATE_BUS;
}

/**
 * Models copy_from_user()/copy_to_user() and the CPU's bulk loads/stores: one translation per
 * page, then a block copy. `dir` 'read' copies simulated memory into buf, 'write' copies buf in.
 * Returns 0 or the failing XLATE_* code (bytes before the failing page were transferred).
 */
export function accessBytes(
  core: Core,
  mm: MmStruct,
  addr: number,
  buf: Uint8Array,
  dir: 'read' | 'write',
): number {
  let done = 0;
  const len = buf.length;
  const write = dir === 'write';
  while (done < len) {
    const a = addr + done;
    const off = a % PAGE_SIZE;
    const n = Math.min(PAGE_SIZE - off, len - done);
    const pfn = translate(core, mm, a, write);
    if (pfn < 0) return pfn;
    const blk = core.frames.block(pfn);
    const boff = (pfn & (BLOCK_PAGES - 1)) * PAGE_SIZE + off;
    if (write) blk.set(buf.subarray(done, done + n), boff);
    else buf.set(blk.subarray(boff, boff + n), done);
    done += n;
  }
  return 0;
}
