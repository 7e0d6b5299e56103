import { EBUSY, EFAULT, EPERM, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import {
  type Core,
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_WRITE,
  MEMORY_DEVICE_PRIVATE,
  VM_FAULT_ERROR,
  VM_FAULT_OOM,
} from '../core.js';
import {
  _PAGE_PROTNONE,
  _PAGE_RW,
  _PAGE_SPECIAL,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  isDevicePrivateType,
  isMigrationType,
  SWP_DEVICE_WRITE,
  swpType,
} from '../pgtable/entry.js';
import { PG_zone_device } from '../phys/memmap.js';
import { LivelockFinding } from '../sched/findings.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { handleMmFault } from './fault.js';
import { faultOomSlowpath } from './fault-oom.js';
import { folioWaitLocked } from './locking.js';
import { mmuIntervalCheckRetry } from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo } from './pgtable.js';
import {
  type MmuIntervalNotifier,
  VM_HUGETLB,
  VM_IO,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
  type Vma,
} from './types.js';

/**
 * hmm_pfns entries in this model are numbers: pfn * 256 + a flag byte. The flag byte's bits
 * model enum hmm_pfn_flags (include/linux/hmm.h); the low 5 bits carry the map order.
 */
export const HMM_PFN_VALID = 0x80;
/** Models HMM_PFN_WRITE. */
export const HMM_PFN_WRITE = 0x40;
/** Models HMM_PFN_ERROR. */
export const HMM_PFN_ERROR = 0x20;
/** Models HMM_PFN_ORDER_MASK (5 bits of map order). */
export const HMM_PFN_ORDER_MASK = 0x1f;
/** Models HMM_PFN_REQ_FAULT (input: the page must be faulted in). */
export const HMM_PFN_REQ_FAULT = HMM_PFN_VALID;
/** Models HMM_PFN_REQ_WRITE (input: the page must be writable). */
export const HMM_PFN_REQ_WRITE = HMM_PFN_WRITE;
/** Models HMM_PFN_FLAGS: every flag bit of an entry. */
export const HMM_PFN_FLAGS = 0xff;

/** Models hmm_pfn_to_page()/page_to_pfn(): the pfn of an entry. */
export function hmmPfnToPfn(v: number): number {
  return Math.floor(v / 256);
}

/** The flag byte of an entry. */
export function hmmPfnFlags(v: number): number {
  return v % 256;
}

/** Models hmm_pfn_to_map_order(). */
export function hmmPfnToMapOrder(v: number): number {
  return hmmPfnFlags(v) & HMM_PFN_ORDER_MASK;
}

/** Models struct hmm_range (include/linux/hmm.h). */
export interface HmmRange {
  notifier: MmuIntervalNotifier;
  notifierSeq: number;
  start: number;
  end: number;
  /** hmm_pfns: one entry per page; input request flags, output pfn | flags. */
  hmmPfns: Float64Array;
  defaultFlags: number;
  pfnFlagsMask: number;
  /** dev_private_owner: device-private pages of this owner are reported, not faulted. */
  devPrivateOwner: unknown;
}

const NEED_FAULT = 1;
const NEED_WRITE_FAULT = 2;

/** Models hmm_pte_need_fault(). */
function needFault(range: HmmRange, i: number, cpuFlags: number): number {
  const req = (hmmPfnFlags(range.hmmPfns[i]) & range.pfnFlagsMask) | range.defaultFlags;
  if (!(req & HMM_PFN_REQ_FAULT)) return 0;
  if (req & HMM_PFN_REQ_WRITE && !(cpuFlags & HMM_PFN_WRITE)) return NEED_FAULT | NEED_WRITE_FAULT;
  if (!(cpuFlags & HMM_PFN_VALID)) return NEED_FAULT;
  return 0;
}

/** Model-only: retries of one page's fault after the allocator's slow path before a livelock finding. */
const HMM_FAULT_OOM_RETRY_BOUND = 10_000;

/** The walk's state (struct hmm_vma_walk): where a restart begins. */
interface HmmVmaWalk {
  last: number;
}

/** Models hmm_vma_fault(): fault [addr, end) in, then restart the walk at addr (-EBUSY). */
function* hmmVmaFault(
  core: Core,
  w: HmmVmaWalk,
  vma: Vma,
  addr: number,
  end: number,
  need: number,
): KGen<number> {
  w.last = addr;
  if (need & NEED_WRITE_FAULT && !(vma.flags & VM_WRITE)) return -EPERM;
  const flags = FAULT_FLAG_REMOTE | (need & NEED_WRITE_FAULT ? FAULT_FLAG_WRITE : 0);
  for (let a = addr; a < end; a += PAGE_SIZE) {
    for (let tries = 0; ; tries++) {
      if (tries >= HMM_FAULT_OOM_RETRY_BOUND)
        throw new LivelockFinding(
          `hmm_vma_fault: 0x${a.toString(16)} ran out of memory ${tries} times while the OOM killer made progress`,
        );
      const short = core.sched.current.allocShortFailures;
      const f = handleMmFault(core, vma, a, flags);
      const r = typeof f === 'number' ? f : yield* f;
      // The fault's allocation: the allocator's slow path (reclaim, then the OOM killer).
      if (r & VM_FAULT_OOM && (yield* faultOomSlowpath(core, a, 'hmm_vma_fault()', short))) continue;
      if (r & VM_FAULT_ERROR) return -EFAULT;
      break;
    }
  }
  return -EBUSY;
}

/** Entry flags of a device-private or present page for the range's owner rule. */
function devicePrivateOwned(core: Core, pfn: number, owner: unknown): boolean {
  if (!(core.map.flags[pfn] & PG_zone_device)) return false;
  const pgmap = core.pgmapOf(pfn);
  return pgmap?.type === MEMORY_DEVICE_PRIVATE && pgmap.owner === owner;
}

/**
 * Walks one VMA's part of the range without page-table locks (hmm_vma_walk_pmd(): the
 * notifier sequence, not the locks, tells the caller whether what it read is still valid);
 * returns 0, -EBUSY (restart at w.last) or -errno.
 */
function* walkVma(
  core: Core,
  w: HmmVmaWalk,
  range: HmmRange,
  vma: Vma,
  start: number,
  end: number,
): KGen<number> {
  const mm = vma.mm;
  const base = range.start;
  for (let addr = start; addr < end; ) {
    if (addr > start && core.sched.preempt('hmm_vma_walk_pmd: next PMD')) yield RESCHED;
    const next = Math.min(end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
    const i0 = (addr - base) / PAGE_SIZE;
    const n = (next - addr) / PAGE_SIZE;
    const pmdT = pmdTableOf(core, mm, addr, false);
    const mi = pmdIndex(addr);
    const lo = pmdT < 0 ? 0 : ptLo(core, pmdT, mi);
    const hi = pmdT < 0 ? 0 : ptHi(core, pmdT, mi);
    if (entryNone(lo, hi)) {
      // Models hmm_vma_walk_hole().
      let need = 0;
      for (let k = 0; k < n; k++) need |= needFault(range, i0 + k, 0);
      if (need) return yield* hmmVmaFault(core, w, vma, addr, next, need);
      range.hmmPfns.fill(0, i0, i0 + n);
      addr = next;
      continue;
    }
    if (!entryPresent(lo) || entryHuge(lo) || vma.flags & VM_HUGETLB) {
      // Models hmm_vma_handle_pmd() / hmm_vma_handle_absent_pmd() / hmm_vma_walk_hugetlb_entry().
      const pfn = entryPfn(lo, hi) + pteIndex(addr);
      let cpu = 0;
      if (entryPresent(lo)) {
        cpu = lo & _PAGE_PROTNONE && !(lo & 1) ? 0 : HMM_PFN_VALID | (lo & _PAGE_RW ? HMM_PFN_WRITE : 0);
      } else {
        const type = swpType(lo);
        if (isMigrationType(type)) {
          let need = 0;
          for (let k = 0; k < n; k++) need |= needFault(range, i0 + k, 0);
          if (need) {
            w.last = addr;
            yield* folioWaitLocked(core, core.map.head[entryPfn(lo, hi)], 'pmd_migration_entry_wait');
            return -EBUSY;
          }
        } else if (
          isDevicePrivateType(type) &&
          devicePrivateOwned(core, entryPfn(lo, hi), range.devPrivateOwner)
        ) {
          // hmm_vma_handle_absent_pmd(): the caller's own device-private THP is reported at PMD
          // order whatever the request asked (a write request on a read-only entry comes back
          // without HMM_PFN_WRITE; the driver must refuse it).
          const own = HMM_PFN_VALID | (type === SWP_DEVICE_WRITE ? HMM_PFN_WRITE : 0) | HPAGE_PMD_ORDER;
          for (let k = 0; k < n; k++) range.hmmPfns[i0 + k] = (pfn + k) * 256 + own;
          addr = next;
          continue;
        } else {
          // hmm_vma_handle_absent_pmd(): another device's private THP is faulted back when a
          // fault is requested; any other absent PMD is -EFAULT then. Without a fault request
          // every page is HMM_PFN_ERROR.
          let need = 0;
          for (let k = 0; k < n; k++) need |= needFault(range, i0 + k, 0);
          if (need) {
            if (isDevicePrivateType(type)) return yield* hmmVmaFault(core, w, vma, addr, next, need);
            return -EFAULT;
          }
          range.hmmPfns.fill(HMM_PFN_ERROR, i0, i0 + n);
          addr = next;
          continue;
        }
      }
      let need = 0;
      for (let k = 0; k < n; k++) need |= needFault(range, i0 + k, cpu);
      if (need) return yield* hmmVmaFault(core, w, vma, addr, next, need);
      for (let k = 0; k < n; k++) {
        range.hmmPfns[i0 + k] = cpu ? (pfn + k) * 256 + cpu + HPAGE_PMD_ORDER : 0;
      }
      addr = next;
      continue;
    }
    const pteT = entryPfn(lo, hi);
    for (let k = 0; k < n; k++) {
      const a = addr + k * PAGE_SIZE;
      const i = i0 + k;
      const pi = pteIndex(a);
      const plo = ptLo(core, pteT, pi);
      const phi = ptHi(core, pteT, pi);
      if (entryNone(plo, phi)) {
        const need = needFault(range, i, 0);
        if (need) return yield* hmmVmaFault(core, w, vma, a, next, need);
        range.hmmPfns[i] = 0;
        continue;
      }
      const pfn = entryPfn(plo, phi);
      if (!entryPresent(plo)) {
        const type = swpType(plo);
        if (isDevicePrivateType(type) && devicePrivateOwned(core, pfn, range.devPrivateOwner)) {
          const cpu = HMM_PFN_VALID | (type === SWP_DEVICE_WRITE ? HMM_PFN_WRITE : 0);
          range.hmmPfns[i] = pfn * 256 + cpu;
          continue;
        }
        const need = needFault(range, i, 0);
        if (!need) {
          range.hmmPfns[i] = 0;
          continue;
        }
        if (isMigrationType(type)) {
          w.last = a;
          yield* folioWaitLocked(core, core.map.head[pfn], 'migration_entry_wait');
          return -EBUSY;
        }
        return yield* hmmVmaFault(core, w, vma, a, next, need);
      }
      if (!(plo & 1)) {
        // PROT_NONE (protnone) entry: no access for the device either.
        const need = needFault(range, i, 0);
        if (need) return yield* hmmVmaFault(core, w, vma, a, next, need);
        range.hmmPfns[i] = 0;
        continue;
      }
      if (plo & _PAGE_SPECIAL && pfn !== core.zeroPfn) {
        const need = needFault(range, i, 0);
        if (need) return -EFAULT;
        range.hmmPfns[i] = HMM_PFN_ERROR;
        continue;
      }
      const cpu = HMM_PFN_VALID | (plo & _PAGE_RW ? HMM_PFN_WRITE : 0);
      const need = needFault(range, i, cpu);
      if (need) return yield* hmmVmaFault(core, w, vma, a, next, need);
      range.hmmPfns[i] = pfn * 256 + cpu;
    }
    addr = next;
  }
  return 0;
}

/** Bound on walk restarts inside one hmm_range_fault() call before it is a livelock finding. */
export const HMM_WALK_RESTART_BOUND = 100_000;

/**
 * Models hmm_range_fault() (mm/hmm.c): fill range.hmmPfns with the CPU page table's view of
 * [start, end), faulting pages in where the request flags require it. Returns 0, -EBUSY when
 * the notifier sequence changed (the caller retries with a fresh sequence), -EFAULT for
 * missing / inaccessible VMAs, -EPERM for a write to a read-only VMA. The caller holds the
 * mmap lock for read. A walk that had to fault or wait restarts at the address it stopped at.
 */
export function* hmmRangeFault(core: Core, range: HmmRange): KGen<number> {
  const mm = range.notifier.mm;
  const w: HmmVmaWalk = { last: range.start };
  for (let restarts = 0; ; restarts++) {
    if (restarts >= HMM_WALK_RESTART_BOUND)
      throw new LivelockFinding(`hmm_range_fault: the walk restarted ${restarts} times without finishing`);
    if (core.sched.preempt('hmm_range_fault: before mmu_interval_check_retry')) yield RESCHED;
    if (mmuIntervalCheckRetry(range.notifier, range.notifierSeq)) return -EBUSY;
    let ret = 0;
    let addr = w.last;
    while (addr < range.end && ret === 0) {
      const vma = mm.findVma(addr);
      const i0 = (addr - range.start) / PAGE_SIZE;
      if (!vma || vma.start >= range.end) {
        // Models the pte_hole callback with no VMA.
        const n = (range.end - addr) / PAGE_SIZE;
        let need = 0;
        for (let k = 0; k < n; k++) need |= needFault(range, i0 + k, 0);
        if (need) return -EFAULT;
        range.hmmPfns.fill(HMM_PFN_ERROR, i0, i0 + n);
        break;
      }
      if (vma.start > addr) {
        const n = (vma.start - addr) / PAGE_SIZE;
        let need = 0;
        for (let k = 0; k < n; k++) need |= needFault(range, i0 + k, 0);
        if (need) return -EFAULT;
        range.hmmPfns.fill(HMM_PFN_ERROR, i0, i0 + n);
        addr = vma.start;
        continue;
      }
      const end = Math.min(vma.end, range.end);
      if (vma.flags & (VM_IO | VM_PFNMAP) || !(vma.flags & VM_READ)) {
        // Models hmm_vma_walk_test().
        const n = (end - addr) / PAGE_SIZE;
        let need = 0;
        for (let k = 0; k < n; k++) need |= needFault(range, i0 + k, 0);
        if (need) return -EFAULT;
        range.hmmPfns.fill(HMM_PFN_ERROR, i0, i0 + n);
        addr = end;
        continue;
      }
      ret = yield* walkVma(core, w, range, vma, addr, end);
      addr = end;
    }
    if (ret !== -EBUSY) return ret;
  }
}
