/**
 * A minimal device-private driver for the migrate-vma unit tests (test-only, not exported):
 * one pgmap, free lists of small pages and PMD-order folios, device data kept in a Map, and a
 * migrate_to_ram that migrates a PTE-faulted page or a whole PMD-faulted folio.
 */
import {
  allocFolio,
  type Core,
  type DevPagemap,
  folioLock,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  type Kernel,
  PAGE_SIZE,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  type Vma,
  type VmFault,
} from '@hmm-model/mm-core';
import { memremapPages, zoneDeviceFolioInit } from '@hmm-model/zone-device';
import { migrateVmaFinalize, migrateVmaPages, migrateVmaSetup } from '../setup.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  migratePfn,
  migratePfnToPage,
  mpfnFlags,
  newMigrateVma,
} from '../types.js';

export class MiniDevice {
  readonly pgmap: DevPagemap;
  readonly small: number[] = [];
  readonly large: number[] = [];
  readonly data = new Map<number, Uint8Array>();
  failLarge = false;
  frees = 0;
  splits = 0;
  constructor(
    readonly kernel: Kernel,
    nrPages = 8192,
  ) {
    const core = kernel.core;
    const r = memremapPages(core, {
      type: 1,
      owner: this,
      name: 'minidev',
      nrPages,
      ops: {
        folioFree: (head, order) => {
          this.frees++;
          (order > 0 ? this.large : this.small).push(head);
        },
        migrateToRam: (vmf) => this.migrateToRam(vmf),
        folioSplit: (_head, tail) => {
          if (tail >= 0) this.splits++;
        },
      },
    });
    if (typeof r === 'number') throw new Error(`memremap failed ${r}`);
    this.pgmap = r;
    for (let p = r.startPfn; p < r.startPfn + nrPages / 2; p += HPAGE_PMD_NR) this.large.push(p);
    for (let p = r.startPfn + nrPages / 2; p < r.endPfn; p++) this.small.push(p);
  }

  get core(): Core {
    return this.kernel.core;
  }

  alloc(order: number): number {
    if (order > 0 && this.failLarge) {
      this.failLarge = false;
      return -1;
    }
    const pfn = (order > 0 ? this.large : this.small).pop();
    if (pfn === undefined) return -1;
    zoneDeviceFolioInit(this.core, pfn, this.pgmap, order);
    return pfn;
  }

  private readPage(pfn: number): Uint8Array {
    return this.data.get(pfn) ?? new Uint8Array(PAGE_SIZE);
  }

  /** migrate to device: for each collected unit allocate, copy and fill dst. */
  toDevice(
    vma: Vma,
    start: number,
    end: number,
    flags = MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND,
  ) {
    const mig = newMigrateVma({ vma, start, end, flags, pgmapOwner: this });
    const r = migrateVmaSetup(this.core, mig);
    if (r) return { r, mig };
    for (let i = 0; i < mig.npages; i++) {
      const f = mpfnFlags(mig.src[i]);
      if (!(f & MIGRATE_PFN_MIGRATE)) continue;
      const spfn = migratePfnToPage(mig.src[i]);
      if (f & MIGRATE_PFN_COMPOUND) {
        const d = this.alloc(HPAGE_PMD_ORDER);
        if (d >= 0) {
          for (let k = 0; k < HPAGE_PMD_NR; k++)
            this.data.set(
              d + k,
              spfn >= 0 ? this.core.frames.page(spfn + k).slice() : new Uint8Array(PAGE_SIZE),
            );
          mig.dst[i] = migratePfn(d) + MIGRATE_PFN_COMPOUND;
          i += HPAGE_PMD_NR - 1;
          continue;
        }
        for (let k = 0; k < HPAGE_PMD_NR; k++) {
          const d1 = this.alloc(0);
          this.data.set(d1, spfn >= 0 ? this.core.frames.page(spfn + k).slice() : new Uint8Array(PAGE_SIZE));
          mig.dst[i + k] = migratePfn(d1);
        }
        i += HPAGE_PMD_NR - 1;
        continue;
      }
      const d = this.alloc(0);
      if (d < 0) continue;
      this.data.set(d, spfn >= 0 ? this.core.frames.page(spfn).slice() : new Uint8Array(PAGE_SIZE));
      mig.dst[i] = migratePfn(d);
    }
    migrateVmaPages(this.core, mig);
    migrateVmaFinalize(this.core, mig);
    return { r, mig };
  }

  /** migrate_to_ram op: like dmirror_devmem_fault(). */
  migrateToRam(vmf: VmFault): number {
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
    if (migrateVmaSetup(core, mig)) return VM_FAULT_SIGBUS;
    this.copyBack(mig.src, mig.dst, mig.npages);
    migrateVmaPages(core, mig);
    migrateVmaFinalize(core, mig);
    return 0;
  }

  copyBack(src: Float64Array, dst: Float64Array, n: number): number {
    const core = this.core;
    for (let i = 0; i < n; i++) {
      const f = mpfnFlags(src[i]);
      const spfn = migratePfnToPage(src[i]);
      if (!(f & MIGRATE_PFN_MIGRATE) || spfn < 0) continue;
      const order = f & MIGRATE_PFN_COMPOUND ? HPAGE_PMD_ORDER : 0;
      const d = allocFolio(core, order, false);
      if (d < 0) return VM_FAULT_OOM;
      folioLock(core, d);
      for (let k = 0; k < 1 << order; k++) core.frames.page(d + k).set(this.readPage(spfn + k));
      dst[i] = migratePfn(d) + (f & MIGRATE_PFN_WRITE) + (order ? MIGRATE_PFN_COMPOUND : 0);
      i += (1 << order) - 1;
    }
    return 0;
  }
}
