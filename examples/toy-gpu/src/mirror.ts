/**
 * The toy GPU's view of a process's memory: its own page table, filled on GPU faults through
 * hmm_range_fault() and torn down by an mmu interval notifier, with the read_begin / read_retry
 * protocol in between (Documentation/mm/hmm.rst, "Using the mmu_interval_notifier"). Models the
 * per-process mirror of lib/test_hmm.c (struct dmirror, dmirror_fault(),
 * dmirror_interval_invalidate()) and nouveau's SVMM (nouveau_range_fault()).
 */
import {
  EBUSY,
  EFAULT,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_WRITE,
  type HmmRange,
  hmmPfnFlags,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
  type KGen,
  type MmStruct,
  MmuIntervalNotifier,
  type MmuNotifierRange,
  mmapReadLock,
  mmapReadUnlock,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  PAGE_SIZE,
  TASK_SIZE,
} from '@hmm-model/mm-core';
import type { ToyGpu } from './gpu.js';

/** Models one entry of the GPU's page table: the physical page a GPU virtual page maps. */
export interface ToyGpuPte {
  /** A system RAM pfn, or a device-private pfn of this GPU (its VRAM). */
  readonly pfn: number;
  readonly write: boolean;
  /** hmm_pfn_to_map_order(): 9 when the CPU maps it with a PMD (the GPU could use a 2 MiB page). */
  readonly order: number;
}

/** Bound on hmm_range_fault() retries (HMM_RANGE_DEFAULT_TIMEOUT in the kernel is a time). */
const FAULT_RETRIES = 64;

const mirrorsOf = new WeakMap<ToyGpu, Set<ToyGpuMirror>>();

/** Model-only (no kernel symbol): the live mirrors of a GPU (for its checker). */
export function gpuMirrors(gpu: ToyGpu): ReadonlySet<ToyGpuMirror> {
  return mirrorsOf.get(gpu) ?? new Set();
}

/**
 * Models struct dmirror (one open of the device by a process) / struct nouveau_svmm: a GPU
 * address space mirroring the process's: the GPU page table, keyed by virtual page number, and
 * an mmu interval notifier over the whole user address space.
 */
export class ToyGpuMirror {
  /** The GPU page table (protected by gpu.mutex). */
  readonly pt = new Map<number, ToyGpuPte>();
  readonly notifier: MmuIntervalNotifier;
  /** Invalidations received (for tests). */
  invalidations = 0;
  /** GPU faults that had to retry because an invalidation came in between. */
  retries = 0;

  /** Models mmu_interval_notifier_insert() over [0, TASK_SIZE) of mm (dmirror_fops_open()). */
  constructor(
    readonly gpu: ToyGpu,
    readonly mm: MmStruct,
  ) {
    this.notifier = new MmuIntervalNotifier(mm, 0, TASK_SIZE, {
      invalidate: (sub, range, seq) => this.invalidate(sub, range, seq),
    });
    mmuIntervalNotifierInsert(this.notifier);
    let set = mirrorsOf.get(gpu);
    if (!set) {
      set = new Set();
      mirrorsOf.set(gpu, set);
    }
    set.add(this);
  }

  /**
   * Models mmu_interval_notifier_ops.invalidate (dmirror_interval_invalidate()): under the
   * driver's mutex, record the new sequence (mmu_interval_set_seq()) and drop the GPU's entries
   * for the range, so the GPU faults again and cannot use a page the CPU side is changing.
   */
  *invalidate(sub: MmuIntervalNotifier, range: MmuNotifierRange, seq: number): KGen<boolean> {
    const sched = this.gpu.core.sched;
    yield* this.gpu.mutex.lock(sched, 'toy_gpu_invalidate');
    mmuIntervalSetSeq(sub, seq);
    this.zap(range.start, range.end);
    this.invalidations++;
    this.gpu.mutex.unlock(sched, 'toy_gpu_invalidate');
    return true;
  }

  /** Drops the GPU page-table entries of [start, end) (caller holds gpu.mutex). */
  zap(start: number, end: number): void {
    const first = Math.floor(start / PAGE_SIZE);
    const last = Math.ceil(end / PAGE_SIZE);
    for (const vpn of this.pt.keys()) if (vpn >= first && vpn < last) this.pt.delete(vpn);
  }

  /**
   * Models dmirror_fault() / nouveau_range_fault(): fill the GPU page table for npages pages at
   * addr. mmu_interval_read_begin(); hmm_range_fault() with HMM_PFN_REQ_FAULT (| REQ_WRITE) and
   * dev_private_owner = this GPU under mmap_read_lock, again on -EBUSY; then under the driver's
   * mutex mmu_interval_read_retry(): if an invalidation came in since read_begin the pfns may be
   * stale, so start over; only otherwise write the GPU page table. 0 or -errno.
   */
  *faultGen(addr: number, npages: number, write: boolean): KGen<number> {
    const core = this.gpu.core;
    const start = addr - (addr % PAGE_SIZE);
    const range: HmmRange = {
      notifier: this.notifier,
      notifierSeq: 0,
      start,
      end: start + npages * PAGE_SIZE,
      hmmPfns: new Float64Array(npages),
      defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
      pfnFlagsMask: 0,
      devPrivateOwner: this.gpu,
    };
    for (let tries = 0; tries < FAULT_RETRIES; tries++) {
      range.notifierSeq = yield* mmuIntervalReadBegin(core, this.notifier);
      yield* mmapReadLock(core, this.mm, 'toy_gpu_fault');
      let ret: number;
      try {
        ret = yield* hmmRangeFault(core, range);
      } finally {
        mmapReadUnlock(core, this.mm, 'toy_gpu_fault');
      }
      if (ret === -EBUSY) continue;
      if (ret) return ret;
      yield 'toy_gpu_fault: hmm_range_fault done, before the driver lock';
      yield* this.gpu.mutex.lock(core.sched, 'toy_gpu_fault');
      try {
        if (mmuIntervalReadRetry(this.notifier, range.notifierSeq)) {
          this.retries++;
          continue;
        }
        this.commit(range);
      } finally {
        this.gpu.mutex.unlock(core.sched, 'toy_gpu_fault');
      }
      return 0;
    }
    return -EBUSY;
  }

  /** Writes hmm_range_fault()'s result into the GPU page table (caller holds gpu.mutex, sequence checked). */
  commit(range: HmmRange): void {
    for (let k = 0; k < range.hmmPfns.length; k++) {
      const v = range.hmmPfns[k];
      this.pt.set(range.start / PAGE_SIZE + k, {
        pfn: hmmPfnToPfn(v),
        write: (hmmPfnFlags(v) & HMM_PFN_WRITE) !== 0,
        order: hmmPfnToMapOrder(v),
      });
    }
  }

  /**
   * Models a GPU engine's access to [addr, addr + buf.length) through its page table: a missing
   * entry (or a read-only one for a write) raises a GPU fault ({@link ToyGpuMirror.faultGen}) and
   * the access is replayed. Our device pages are read in VRAM, other pages in system RAM. 0 or
   * -errno (-EFAULT when a write meets a page that stays read-only, e.g. our own read-only
   * device page, which hmm_range_fault() reports without a write fault).
   */
  *accessGen(addr: number, buf: Uint8Array, dir: 'read' | 'write'): KGen<number> {
    const write = dir === 'write';
    const frames = this.gpu.core.frames;
    let done = 0;
    while (done < buf.length) {
      const a = addr + done;
      const n = Math.min(PAGE_SIZE - (a % PAGE_SIZE), buf.length - done);
      const vpn = Math.floor(a / PAGE_SIZE);
      let pte = this.pt.get(vpn);
      if (!pte || (write && !pte.write)) {
        const r = yield* this.faultGen(a, 1, write);
        if (r) return r;
        pte = this.pt.get(vpn);
        if (!pte || (write && !pte.write)) return -EFAULT;
      }
      // The data access itself does not yield: the entry cannot be zapped underneath it.
      const page = this.gpu.owns(pte.pfn) ? this.gpu.vramPage(pte.pfn) : frames.page(pte.pfn);
      const off = a % PAGE_SIZE;
      const part = buf.subarray(done, done + n);
      if (write) page.set(part, off);
      else part.set(page.subarray(off, off + n));
      done += n;
    }
    return 0;
  }

  /** Models mmu_interval_notifier_remove() and dropping the GPU page table (dmirror_fops_release()). */
  release(): void {
    mmuIntervalNotifierRemove(this.notifier);
    this.pt.clear();
    mirrorsOf.get(this.gpu)?.delete(this);
  }
}
