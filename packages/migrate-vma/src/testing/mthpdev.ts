/**
 * A device-private test driver for the mTHP extension (test-only, not exported): device memory
 * is carved into folios of any order from PMD-sized blocks (a free list per order, split
 * buddy-style on demand), the driver declares the orders it migrates whole (`orders`, passed as
 * `mthpOrders`), and allocation of the destination negotiates from the source's order down to 0
 * (the cover letter's step 3). Migration runs in PMD-sized steps like dmirror's; a CPU fault on
 * one of its pages migrates the page's whole folio back.
 */
import {
  allocFolio,
  type Core,
  type DevPagemap,
  Frames,
  folioLock,
  folioPut,
  folioUnlock,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  type Kernel,
  type KGen,
  mmapReadLock,
  mmapReadUnlock,
  PAGE_SIZE,
  PG_zone_device,
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

/** A device whose memory holds folios of every order up to the PMD order. */
export class MthpDevice {
  readonly pgmap: DevPagemap;
  /** Free device folios by order (heads). */
  readonly free: number[][] = Array.from({ length: HPAGE_PMD_ORDER + 1 }, () => []);
  readonly mem = new Frames();
  /** Device allocations of these orders fail (models FAIL_ALLOC for an order). */
  readonly failOrders = new Set<number>();
  /** System allocations of these orders fail in the copy back. */
  readonly failRamOrders = new Set<number>();

  constructor(
    readonly kernel: Kernel,
    /** The mTHP orders (a bit per order, 2..8) the driver migrates whole. */
    public orders: number,
    nrPages = 8192,
  ) {
    const r = memremapPages(kernel.core, {
      type: 1,
      owner: this,
      name: 'mthpdev',
      nrPages,
      ops: {
        folioFree: (head, order) => this.free[order].push(head),
        migrateToRam: (vmf) => this.migrateToRam(vmf),
        folioSplit: (_head, tail) => {
          if (tail >= 0) this.core.map.pgmap[tail] = this.pgmap.id;
        },
      },
    });
    if (typeof r === 'number') throw new Error(`memremap failed ${r}`);
    this.pgmap = r;
    for (let p = r.endPfn - HPAGE_PMD_NR; p >= r.startPfn; p -= HPAGE_PMD_NR)
      this.free[HPAGE_PMD_ORDER].push(p);
  }

  get core(): Core {
    return this.kernel.core;
  }

  /** The free lists for the migrate checker. */
  freeLists(): DeviceFreeLists {
    return {
      pgmapId: this.pgmap.id,
      forEach: (add) => {
        this.free.forEach((l, o) => {
          for (const p of l) add(p, 1 << o);
        });
      },
    };
  }

  /** A device folio of `order` (split from a bigger free one if need be), initialised and locked; -1 if none. */
  alloc(order: number): number {
    if (this.failOrders.has(order)) return -1;
    let o = order;
    while (o <= HPAGE_PMD_ORDER && this.free[o].length === 0) o++;
    if (o > HPAGE_PMD_ORDER) return -1;
    const pfn = this.free[o].pop() as number;
    for (; o > order; o--) this.free[o - 1].push(pfn + (1 << (o - 1)));
    zoneDeviceFolioInit(this.core, pfn, this.pgmap, order);
    return pfn;
  }

  /**
   * The destination of one source unit of `srcOrder` at slot i: the highest order from srcOrder
   * down that allocates (0 always allowed; mTHP orders only when declared), every piece filled
   * from the source (or zeroed for a hole). False when not even order-0 pages could be had.
   */
  private fillDevice(mig: MigrateVma, i: number, srcOrder: number): boolean {
    const spfn = migratePfnToPage(mig.src[i]);
    const write = mpfnFlags(mig.src[i]) & MIGRATE_PFN_WRITE;
    for (let o = srcOrder; o >= 0; o--) {
      if (o > 0 && o < HPAGE_PMD_ORDER && !(this.orders & (1 << o))) continue;
      const pieces: number[] = [];
      for (let k = 0; k < 1 << (srcOrder - o); k++) {
        const d = this.alloc(o);
        if (d < 0) break;
        pieces.push(d);
      }
      if (pieces.length < 1 << (srcOrder - o)) {
        for (const d of pieces) {
          folioUnlock(this.core, d);
          folioPut(this.core, d);
        }
        continue;
      }
      pieces.forEach((d, k) => {
        const at = k << o;
        const off = d - this.pgmap.startPfn;
        if (spfn >= 0) copyFrames(this.mem, off, this.core.frames, spfn + at, 1 << o);
        else this.mem.zero(off, 1 << o);
        mig.dst[i + at] = migratePfn(d) + write + (o > 0 ? MIGRATE_PFN_COMPOUND : 0);
      });
      return true;
    }
    return false;
  }

  /** dmirror_migrate_alloc_and_copy() with order negotiation. */
  private allocAndCopy(mig: MigrateVma): void {
    const m = this.core.map;
    for (let i = 0; i < mig.npages; i++) {
      const f = mpfnFlags(mig.src[i]);
      if (!(f & MIGRATE_PFN_MIGRATE)) continue;
      const spfn = migratePfnToPage(mig.src[i]);
      const order = f & MIGRATE_PFN_COMPOUND ? (spfn >= 0 ? m.folioOrder(spfn) : HPAGE_PMD_ORDER) : 0;
      this.fillDevice(mig, i, order);
      i += (1 << order) - 1;
    }
  }

  /** Migrates [start, end) of vma to the device in PMD-sized steps. */
  toDevice(
    vma: Vma,
    start: number,
    end: number,
    mthpOrders = this.orders,
  ): { r: number; migs: MigrateVma[] } {
    return this.core.sched.runSync(this.toDeviceSteps(vma, start, end, mthpOrders), 'mthpdev');
  }

  private *toDeviceSteps(
    vma: Vma,
    start: number,
    end: number,
    mthpOrders: number,
  ): KGen<{ r: number; migs: MigrateVma[] }> {
    const migs: MigrateVma[] = [];
    let r = 0;
    yield* mmapReadLock(this.core, vma.mm, 'mthpdev to device');
    try {
      for (let a = start; a < end; ) {
        const b = Math.min(end, (Math.floor(a / (HPAGE_PMD_NR * PAGE_SIZE)) + 1) * HPAGE_PMD_NR * PAGE_SIZE);
        const mig = newMigrateVma({
          vma,
          start: a,
          end: b,
          flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND,
          pgmapOwner: this,
          mthpOrders,
        });
        migs.push(mig);
        r = yield* migrateVmaSetup(this.core, mig);
        if (r) break;
        if (mig.cpages) {
          this.allocAndCopy(mig);
          yield* migrateVmaPages(this.core, mig);
          yield* migrateVmaFinalize(this.core, mig);
        }
        a = b;
      }
    } finally {
      mmapReadUnlock(this.core, vma.mm, 'mthpdev to device');
    }
    return { r, migs };
  }

  /** The copy back of one device unit at slot i: a system folio of its order, else order-0 pages. */
  private fillRam(mig: MigrateVma, i: number, order: number): boolean {
    const core = this.core;
    const spfn = migratePfnToPage(mig.src[i]);
    const write = mpfnFlags(mig.src[i]) & MIGRATE_PFN_WRITE;
    const copy = (d: number, at: number, n: number) =>
      copyFrames(core.frames, d, this.mem, spfn + at - this.pgmap.startPfn, n);
    const big = order > 0 && !this.failRamOrders.has(order) ? allocFolio(core, order, false) : -1;
    if (big >= 0) {
      folioLock(core, big);
      copy(big, 0, 1 << order);
      mig.dst[i] = migratePfn(big) + write + MIGRATE_PFN_COMPOUND;
      return true;
    }
    for (let k = 0; k < 1 << order; k++) {
      const d = allocFolio(core, 0, false);
      if (d < 0) {
        for (let j = 0; j < k; j++) {
          const g = migratePfnToPage(mig.dst[i + j]);
          folioUnlock(core, g);
          folioPut(core, g);
          mig.dst[i + j] = 0;
        }
        return false;
      }
      folioLock(core, d);
      copy(d, k, 1);
      mig.dst[i + k] = migratePfn(d) + write;
    }
    return true;
  }

  private copyBack(mig: MigrateVma): number {
    const m = this.core.map;
    for (let i = 0; i < mig.npages; i++) {
      const f = mpfnFlags(mig.src[i]);
      const spfn = migratePfnToPage(mig.src[i]);
      if (!(f & MIGRATE_PFN_MIGRATE) || spfn < 0 || this.core.pgmapOf(spfn) !== this.pgmap) continue;
      const order = f & MIGRATE_PFN_COMPOUND ? m.folioOrder(spfn) : 0;
      if (!this.fillRam(mig, i, order)) return VM_FAULT_OOM;
      i += (1 << order) - 1;
    }
    return 0;
  }

  /** Migrates this device's pages in [start, end) back to system memory. */
  toSystem(vma: Vma, start: number, end: number): number {
    const flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_COMPOUND;
    return this.core.sched.runSync(this.migrateBack(vma, start, end, flags, -1), 'mthpdev');
  }

  private *migrateBack(vma: Vma, start: number, end: number, flags: number, faultPage: number): KGen<number> {
    const mthpOrders = flags & MIGRATE_VMA_SELECT_COMPOUND ? this.orders : 0;
    const mig = newMigrateVma({ vma, start, end, flags, pgmapOwner: this, faultPage, mthpOrders });
    if (yield* migrateVmaSetup(this.core, mig)) return VM_FAULT_SIGBUS;
    const ret = this.copyBack(mig);
    if (ret) {
      yield* migrateVmaFinalize(this.core, mig);
      return ret;
    }
    yield* migrateVmaPages(this.core, mig);
    yield* migrateVmaFinalize(this.core, mig);
    return 0;
  }

  /** migrate_to_ram: like v6.19's dmirror_devmem_fault(), the faulting page's whole folio. */
  *migrateToRam(vmf: VmFault): KGen<number> {
    const order = this.core.map.folioOrder(this.core.map.head[vmf.page]);
    const size = PAGE_SIZE << order;
    const start = vmf.address - (vmf.address % size);
    const flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE | (order ? MIGRATE_VMA_SELECT_COMPOUND : 0);
    return yield* this.migrateBack(vmf.vma as Vma, start, start + size, flags, vmf.page);
  }

  /** True for a device-private page of this device. */
  owns(pfn: number): boolean {
    return this.core.pgmapOf(pfn) === this.pgmap && (this.core.map.flags[pfn] & PG_zone_device) !== 0;
  }
}
