/**
 * A minimal device-private driver for the migrate-vma tests and benchmark (test-only, not
 * exported): one pgmap, free lists of small pages and PMD-order folios, device memory as its
 * own lazily backed frames, migration to and from the device in PMD-sized steps (as generators
 * that yield between the migrate_vma phases, so a seeded scheduler can interleave them), a
 * migrate_to_ram that migrates a PTE-faulted page or a whole PMD-faulted folio, and device
 * accesses through hmm_range_fault().
 */
import {
  allocFolio,
  type Core,
  type DevPagemap,
  EBUSY,
  EFAULT,
  Frames,
  folioLock,
  folioPut,
  folioUnlock,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_WRITE,
  type HmmRange,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  hmmPfnFlags,
  hmmPfnToPfn,
  hmmRangeFault,
  type Kernel,
  type KGen,
  type MmStruct,
  MmuIntervalNotifier,
  mmapReadLock,
  mmapReadUnlock,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  PAGE_SIZE,
  PG_zone_device,
  RESCHED,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  type Vma,
  type VmFault,
} from '@hmm-model/mm-core';
import { memremapPages, zoneDeviceFolioInit } from '@hmm-model/zone-device';
import type { DeviceFreeLists } from '../checker.js';
import { migrateVmaFinalize, migrateVmaPages, migrateVmaSetup } from '../setup.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migratePfn,
  migratePfnToPage,
  mpfnFlags,
  newMigrateVma,
} from '../types.js';
import { copyFrames } from './copy.js';

/** Result of one migration call: setup's return value and the struct of every step. */
export interface MigrateRun {
  r: number;
  mig: MigrateVma;
  migs: MigrateVma[];
}

/** Runs a minidev kernel path to completion on the scheduler (for synchronous callers). */
export function runSteps<T>(g: KGen<T>, core: Core): T {
  return core.sched.runSync(g, 'minidev');
}

/**
 * Models a minimal lib/test_hmm.c dmirror_device: one DEVICE_PRIVATE pgmap (owner = this),
 * dmirror_devmem_alloc_page(), alloc_and_copy in both directions, dmirror_devmem_fault() as
 * migrate_to_ram, and dmirror_devmem_folio_split() as folio_split.
 */
export class MiniDevice {
  readonly pgmap: DevPagemap;
  readonly small: number[] = [];
  readonly large: number[] = [];
  /**
   * Device memory (VRAM), indexed by the page's offset in the pgmap (so the frames' block
   * array starts at 0 and stays dense).
   */
  readonly mem = new Frames();
  /** Large device allocations still to fail (models HMM_DMIRROR_FLAG_FAIL_ALLOC, counted). */
  failLarge = 0;
  /** Large system allocations in migrate_to_ram / toSystem still to fail. */
  failLargeRam = 0;
  frees = 0;
  /** folio_split callback calls: [head, tail] (tail -1 for the final call). */
  readonly splitCalls: [number, number][] = [];

  constructor(
    readonly kernel: Kernel,
    nrPages = 8192,
    readonly name = 'minidev',
  ) {
    const r = memremapPages(kernel.core, {
      type: 1,
      owner: this,
      name,
      nrPages,
      ops: {
        folioFree: (head, order) => {
          this.frees++;
          (order > 0 ? this.large : this.small).push(head);
        },
        migrateToRam: (vmf) => this.migrateToRam(vmf),
        folioSplit: (head, tail) => {
          this.splitCalls.push([head, tail]);
          if (tail >= 0) this.core.map.pgmap[tail] = this.pgmap.id;
        },
      },
    });
    if (typeof r === 'number') throw new Error(`memremap failed ${r}`);
    this.pgmap = r;
    const half = r.startPfn + nrPages / 2;
    for (let p = half - HPAGE_PMD_NR; p >= r.startPfn; p -= HPAGE_PMD_NR) this.large.push(p);
    for (let p = r.endPfn - 1; p >= half; p--) this.small.push(p);
  }

  get core(): Core {
    return this.kernel.core;
  }

  /** The driver's free lists for the checker (§9 #1, #19). */
  freeLists(): DeviceFreeLists {
    return {
      pgmapId: this.pgmap.id,
      forEach: (add) => {
        for (const pfn of this.large) add(pfn, HPAGE_PMD_NR);
        for (const pfn of this.small) add(pfn, 1);
      },
    };
  }

  /** Models dmirror_devmem_alloc_page(): pop a free page / PMD-order folio, zone_device_folio_init it. */
  alloc(order: number): number {
    if (order > 0 && this.failLarge > 0) {
      this.failLarge--;
      return -1;
    }
    const pfn = (order > 0 ? this.large : this.small).pop();
    if (pfn === undefined) return -1;
    zoneDeviceFolioInit(this.core, pfn, this.pgmap, order);
    return pfn;
  }

  /** True for a device-private page of this device. */
  owns(pfn: number): boolean {
    return this.core.pgmapOf(pfn) === this.pgmap && (this.core.map.flags[pfn] & PG_zone_device) !== 0;
  }

  /** Copies n system pages from spfn (or zeros, for spfn < 0) into device memory at dpfn. */
  fillFromSrc(dpfn: number, spfn: number, n: number): void {
    const off = dpfn - this.pgmap.startPfn;
    if (spfn >= 0) copyFrames(this.mem, off, this.core.frames, spfn, n);
    else this.mem.zero(off, n);
  }

  /** Copies n pages of device memory at device pfn spfn into system memory at dpfn. */
  private copyToRam(dpfn: number, spfn: number, n: number): void {
    copyFrames(this.core.frames, dpfn, this.mem, spfn - this.pgmap.startPfn, n);
  }

  /** Allocates and fills destinations for one collected step (dmirror_migrate_alloc_and_copy()). */
  private allocAndCopy(mig: MigrateVma): void {
    for (let i = 0; i < mig.npages; i++) {
      const f = mpfnFlags(mig.src[i]);
      if (!(f & MIGRATE_PFN_MIGRATE)) continue;
      const spfn = migratePfnToPage(mig.src[i]);
      const write = f & MIGRATE_PFN_WRITE;
      if (!(f & MIGRATE_PFN_COMPOUND)) {
        const d = this.alloc(0);
        if (d < 0) continue;
        this.fillFromSrc(d, spfn, 1);
        mig.dst[i] = migratePfn(d) + write;
        continue;
      }
      const d = this.alloc(HPAGE_PMD_ORDER);
      if (d >= 0) {
        this.fillFromSrc(d, spfn, HPAGE_PMD_NR);
        mig.dst[i] = migratePfn(d) + (write | MIGRATE_PFN_COMPOUND);
      } else if (!this.fillSmall(mig, i, (d1, k) => this.fillFromSrc(d1, spfn >= 0 ? spfn + k : -1, 1))) {
        continue;
      }
      i += HPAGE_PMD_NR - 1;
    }
  }

  /** Small-page fallback for a compound unit: every dst slot gets its own page, or none does. */
  private fillSmall(mig: MigrateVma, i: number, fill: (pfn: number, k: number) => void): boolean {
    const got: number[] = [];
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      const d = this.alloc(0);
      if (d < 0) {
        for (const g of got) {
          folioUnlock(this.core, g);
          folioPut(this.core, g);
        }
        for (let j = 0; j < HPAGE_PMD_NR; j++) mig.dst[i + j] = 0;
        return false;
      }
      got.push(d);
      fill(d, k);
      mig.dst[i + k] = migratePfn(d) + (mpfnFlags(mig.src[i]) & MIGRATE_PFN_WRITE);
    }
    return true;
  }

  /** The steps (at most PMD_SIZE, clipped to PMD boundaries) of [start, end). */
  private *steps(start: number, end: number): Generator<[number, number]> {
    for (let a = start; a < end; ) {
      const b = Math.min(end, a + HPAGE_PMD_NR * PAGE_SIZE - (a % (HPAGE_PMD_NR * PAGE_SIZE)));
      yield [a, b];
      a = b;
    }
  }

  /** Migration of [start, end) of vma to the device, yielding between the migrate_vma phases. */
  *toDeviceSteps(
    vma: Vma,
    start: number,
    end: number,
    flags = MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND,
  ): KGen<MigrateRun> {
    const migs: MigrateVma[] = [];
    let r = 0;
    // Like dmirror_migrate_to_device(): the mmap_lock for read across the phases.
    yield* mmapReadLock(this.core, vma.mm, 'minidev to device');
    try {
      for (const [a, b] of this.steps(start, end)) {
        const mig = newMigrateVma({ vma, start: a, end: b, flags, pgmapOwner: this });
        migs.push(mig);
        r = yield* migrateVmaSetup(this.core, mig);
        if (r) break;
        if (!mig.cpages) continue;
        if (this.core.sched.preempt('minidev: after migrate_vma_setup')) yield RESCHED;
        this.allocAndCopy(mig);
        if (this.core.sched.preempt('minidev: after alloc_and_copy')) yield RESCHED;
        yield* migrateVmaPages(this.core, mig);
        if (this.core.sched.preempt('minidev: after migrate_vma_pages')) yield RESCHED;
        yield* migrateVmaFinalize(this.core, mig);
      }
    } finally {
      mmapReadUnlock(this.core, vma.mm, 'minidev to device');
    }
    return { r, mig: migs[0], migs };
  }

  /** Migrates [start, end) to the device now. */
  toDevice(vma: Vma, start: number, end: number, flags?: number): MigrateRun {
    return runSteps(this.toDeviceSteps(vma, start, end, flags), this.core);
  }

  /**
   * dmirror_devmem_fault_alloc_and_copy(): a system destination per collected device unit (a
   * THP for a compound one unless its allocation fails, then 512 small pages). 0 or VM_FAULT_OOM.
   */
  copyBack(mig: MigrateVma): number {
    const core = this.core;
    for (let i = 0; i < mig.npages; i++) {
      const f = mpfnFlags(mig.src[i]);
      const spfn = migratePfnToPage(mig.src[i]);
      if (!(f & MIGRATE_PFN_MIGRATE) || spfn < 0 || !this.owns(spfn)) continue;
      if (f & MIGRATE_PFN_COMPOUND) {
        let d = -1;
        if (this.failLargeRam > 0) this.failLargeRam--;
        else d = allocFolio(core, HPAGE_PMD_ORDER, false);
        if (d >= 0) {
          folioLock(core, d);
          this.copyToRam(d, spfn, HPAGE_PMD_NR);
          mig.dst[i] = migratePfn(d) + ((f & MIGRATE_PFN_WRITE) | MIGRATE_PFN_COMPOUND);
        } else {
          const ok = this.fillSmallRam(mig, i, spfn);
          if (!ok) return VM_FAULT_OOM;
        }
        i += HPAGE_PMD_NR - 1;
        continue;
      }
      const d = allocFolio(core, 0, false);
      if (d < 0) return VM_FAULT_OOM;
      folioLock(core, d);
      this.copyToRam(d, spfn, 1);
      mig.dst[i] = migratePfn(d) + (f & MIGRATE_PFN_WRITE);
    }
    return 0;
  }

  private fillSmallRam(mig: MigrateVma, i: number, spfn: number): boolean {
    const core = this.core;
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      const d = allocFolio(core, 0, false);
      if (d < 0) {
        for (let j = 0; j < k; j++) {
          const g = migratePfnToPage(mig.dst[i + j]);
          folioUnlock(core, g);
          folioPut(core, g);
        }
        for (let j = 0; j < HPAGE_PMD_NR; j++) mig.dst[i + j] = 0;
        return false;
      }
      folioLock(core, d);
      this.copyToRam(d, spfn + k, 1);
      mig.dst[i + k] = migratePfn(d) + (mpfnFlags(mig.src[i]) & MIGRATE_PFN_WRITE);
    }
    return true;
  }

  /** Migration of this device's pages in [start, end) back to system memory (MIGRATE_TO_SYS). */
  *toSystemSteps(vma: Vma, start: number, end: number): KGen<MigrateRun> {
    const migs: MigrateVma[] = [];
    let r = 0;
    yield* mmapReadLock(this.core, vma.mm, 'minidev to system');
    try {
      for (const [a, b] of this.steps(start, end)) {
        const flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_COMPOUND;
        const mig = newMigrateVma({ vma, start: a, end: b, flags, pgmapOwner: this });
        migs.push(mig);
        r = yield* migrateVmaSetup(this.core, mig);
        if (r) break;
        if (!mig.cpages) continue;
        if (this.core.sched.preempt('minidev: after migrate_vma_setup')) yield RESCHED;
        if (this.copyBack(mig)) {
          yield* migrateVmaFinalize(this.core, mig);
          r = -12;
          break;
        }
        if (this.core.sched.preempt('minidev: after copy back')) yield RESCHED;
        yield* migrateVmaPages(this.core, mig);
        if (this.core.sched.preempt('minidev: after migrate_vma_pages')) yield RESCHED;
        yield* migrateVmaFinalize(this.core, mig);
      }
    } finally {
      mmapReadUnlock(this.core, vma.mm, 'minidev to system');
    }
    return { r, mig: migs[0], migs };
  }

  /** Migrates this device's pages in [start, end) back now. */
  toSystem(vma: Vma, start: number, end: number): MigrateRun {
    return runSteps(this.toSystemSteps(vma, start, end), this.core);
  }

  /** migrate_to_ram op: like dmirror_devmem_fault() (a PTE fault migrates one page). */
  *migrateToRam(vmf: VmFault): KGen<number> {
    const core = this.core;
    const head = core.map.head[vmf.page];
    const order = vmf.pte ? 0 : core.map.folioOrder(head);
    const size = PAGE_SIZE << order;
    const start = vmf.address - (vmf.address % size);
    const flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE | (order ? MIGRATE_VMA_SELECT_COMPOUND : 0);
    const mig = newMigrateVma({
      vma: vmf.vma as Vma,
      start,
      end: start + size,
      flags,
      pgmapOwner: this,
      faultPage: vmf.page,
    });
    if (yield* migrateVmaSetup(core, mig)) return VM_FAULT_SIGBUS;
    if (mig.cpages && core.sched.preempt('minidev migrate_to_ram: after migrate_vma_setup')) yield RESCHED;
    const ret = this.copyBack(mig);
    if (ret) {
      yield* migrateVmaFinalize(core, mig);
      return ret;
    }
    yield* migrateVmaPages(core, mig);
    if (mig.cpages && core.sched.preempt('minidev migrate_to_ram: after migrate_vma_pages')) yield RESCHED;
    yield* migrateVmaFinalize(core, mig);
    return 0;
  }

  /**
   * A device access (read into, or write from, buf) of [addr, addr + buf.length) in mm through
   * hmm_range_fault() with the fault flags set (like dmirror_fault + dmirror READ/WRITE): this
   * device's private pages are accessed in device memory, everything else in system memory.
   * 0 or -errno (-EFAULT for a write that meets a read-only page of this device).
   */
  access(mm: MmStruct, addr: number, buf: Uint8Array, write: boolean): number {
    return this.core.sched.runSync(this.accessGen(mm, addr, buf, write), 'minidev access');
  }

  /** The kernel path of {@link access}. */
  *accessGen(mm: MmStruct, addr: number, buf: Uint8Array, write: boolean): KGen<number> {
    const core = this.core;
    const first = addr - (addr % PAGE_SIZE);
    const last = addr + buf.length;
    const end = last + ((PAGE_SIZE - (last % PAGE_SIZE)) % PAGE_SIZE);
    const npages = (end - first) / PAGE_SIZE;
    const sub = new MmuIntervalNotifier(mm, first, end, {
      *invalidate(s, _range, seq) {
        mmuIntervalSetSeq(s, seq);
        return true;
      },
    });
    mmuIntervalNotifierInsert(sub);
    try {
      const range: HmmRange = {
        notifier: sub,
        notifierSeq: 0,
        start: first,
        end,
        hmmPfns: new Float64Array(npages),
        defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
        pfnFlagsMask: 0,
        devPrivateOwner: this,
      };
      for (let tries = 0; ; tries++) {
        if (tries > 64) return -EBUSY;
        range.notifierSeq = yield* mmuIntervalReadBegin(core, sub);
        yield* mmapReadLock(core, mm, 'minidev access');
        let ret: number;
        try {
          ret = yield* hmmRangeFault(core, range);
        } finally {
          mmapReadUnlock(core, mm, 'minidev access');
        }
        if (ret === -EBUSY) continue;
        if (ret) return ret;
        if (mmuIntervalReadRetry(sub, range.notifierSeq)) continue;
        break;
      }
      // hmm_range_fault() reports this device's own read-only private pages without the
      // write fault a write asked for (mm/hmm.c): like dmirror_do_fault(), refuse the write.
      if (write && range.hmmPfns.some((v) => !(hmmPfnFlags(v) & HMM_PFN_WRITE))) return -EFAULT;
      for (let k = 0; k < npages; k++) {
        const pfn = hmmPfnToPfn(range.hmmPfns[k]);
        const page = this.owns(pfn) ? this.mem.page(pfn - this.pgmap.startPfn) : core.frames.page(pfn);
        const va = first + k * PAGE_SIZE;
        const lo = Math.max(va, addr);
        const hi = Math.min(va + PAGE_SIZE, last);
        if (write) page.set(buf.subarray(lo - addr, hi - addr), lo - va);
        else buf.set(page.subarray(lo - va, hi - va), lo - addr);
      }
      return 0;
    } finally {
      mmuIntervalNotifierRemove(sub);
    }
  }
}
