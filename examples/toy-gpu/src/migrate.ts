/**
 * Migration between system memory and the toy GPU's VRAM with the migrate_vma API, THP included:
 * to the device (HMM_DMIRROR_MIGRATE_TO_DEV, nouveau_dmem_migrate_vma()), back to system memory
 * (HMM_DMIRROR_MIGRATE_TO_SYS), and the CPU fault path, dev_pagemap_ops.migrate_to_ram
 * (dmirror_devmem_fault(), nouveau_dmem_migrate_to_ram()).
 */

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
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
  mpfnFlags,
  newMigrateVma,
} from '@hmm-model/migrate-vma';
import {
  allocFolio,
  type Core,
  EINVAL,
  ENOMEM,
  folioLock,
  folioPut,
  folioUnlock,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  type KGen,
  type MmStruct,
  mmapReadLock,
  mmapReadUnlock,
  PAGE_SIZE,
  PMD_SIZE,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_READ,
  VM_WRITE,
  type Vma,
  type VmFault,
} from '@hmm-model/mm-core';
import type { ToyGpu } from './gpu.js';

/** Model-only (no kernel symbol): what one migration call did, for callers and tests. */
export interface MigrateResult {
  /** 0, or -EINVAL (no readable VMA; migrate_vma_setup()'s checks) or -ENOMEM. */
  ret: number;
  /** Units collected by migrate_vma_setup() (a THP or a compound hole counts once). */
  cpages: number;
  /** Pages that moved (a THP counts 512). */
  moved: number;
  /** Compound units that moved as one THP. */
  thps: number;
}

/** Copy callback of {@link fillSmall}: copy (or clear) page k of the unit into destination pfn d. */
type FillPage = (d: number, k: number) => void;

/**
 * The small-page fallback for a compound source unit at slot i: a destination page for each of
 * its 512 slots, without MIGRATE_PFN_COMPOUND, so migrate_vma_pages() splits the source THP.
 * All or nothing: on failure the pages got so far are unlocked and put, and every slot is 0.
 */
function fillSmall(
  core: Core,
  mig: MigrateVma,
  i: number,
  write: number,
  alloc: () => number,
  fill: FillPage,
): boolean {
  for (let k = 0; k < HPAGE_PMD_NR; k++) {
    const d = alloc();
    if (d < 0) {
      for (let j = 0; j < k; j++) {
        const got = migratePfnToPage(mig.dst[i + j]);
        folioUnlock(core, got);
        folioPut(core, got);
        mig.dst[i + j] = 0;
      }
      return false;
    }
    fill(d, k);
    mig.dst[i + k] = migratePfn(d) + write;
  }
  return true;
}

/**
 * Models dmirror_migrate_alloc_and_copy(): for every slot migrate_vma_setup() selected, a locked
 * device destination with the data copied (zeros for a hole): a THP for a COMPOUND slot, marked
 * MIGRATE_PFN_COMPOUND, or (THP allocation failed) 512 small pages without it. The destination is
 * writable when the source was, or for a hole in a writable VMA.
 */
export function allocAndCopyToDevice(gpu: ToyGpu, mig: MigrateVma): void {
  const vmaWrite = mig.vma && mig.vma.flags & VM_WRITE ? MIGRATE_PFN_WRITE : 0;
  for (let i = 0; i < mig.npages; i++) {
    const f = mpfnFlags(mig.src[i]);
    if (!(f & MIGRATE_PFN_MIGRATE)) continue;
    const spfn = migratePfnToPage(mig.src[i]);
    const write = spfn >= 0 ? f & MIGRATE_PFN_WRITE : vmaWrite;
    if (!(f & MIGRATE_PFN_COMPOUND)) {
      const d = gpu.allocFolio(0);
      if (d < 0) continue; // the slot stays 0: migrate_vma_pages() leaves that page where it is
      gpu.copyToVram(d, spfn, 1);
      mig.dst[i] = migratePfn(d) + write;
      continue;
    }
    const d = gpu.allocFolio(HPAGE_PMD_ORDER);
    if (d >= 0) {
      gpu.copyToVram(d, spfn, HPAGE_PMD_NR);
      mig.dst[i] = migratePfn(d) + (write | MIGRATE_PFN_COMPOUND);
    } else {
      // All or nothing: without a destination for every slot the unit stays where it is.
      fillSmall(
        gpu.core,
        mig,
        i,
        write,
        () => gpu.allocFolio(0),
        (d1, k) => gpu.copyToVram(d1, spfn >= 0 ? spfn + k : -1, 1),
      );
    }
    i += HPAGE_PMD_NR - 1;
  }
}

/**
 * Models dmirror_devmem_fault_alloc_and_copy() / nouveau_dmem_migrate_copy_one(): for every of
 * our device units collected, a locked system destination with the VRAM data: a THP (COMPOUND)
 * for a compound unit, or 512 small pages when the THP allocation fails (migrate_vma_pages() then
 * splits our device folio, calling folio_split). 0 or VM_FAULT_OOM.
 */
export function allocAndCopyToRam(gpu: ToyGpu, mig: MigrateVma): number {
  const core = gpu.core;
  const allocRam = (order: number) => {
    const d = allocFolio(core, order, false);
    if (d >= 0) folioLock(core, d);
    return d;
  };
  for (let i = 0; i < mig.npages; i++) {
    const f = mpfnFlags(mig.src[i]);
    const spfn = migratePfnToPage(mig.src[i]);
    if (!(f & MIGRATE_PFN_MIGRATE) || spfn < 0 || !gpu.owns(spfn)) continue;
    const write = f & MIGRATE_PFN_WRITE;
    if (f & MIGRATE_PFN_COMPOUND) {
      const d = allocRam(HPAGE_PMD_ORDER);
      if (d >= 0) {
        gpu.copyFromVram(d, spfn, HPAGE_PMD_NR);
        mig.dst[i] = migratePfn(d) + (write | MIGRATE_PFN_COMPOUND);
      } else if (
        !fillSmall(
          core,
          mig,
          i,
          write,
          () => allocRam(0),
          (d1, k) => gpu.copyFromVram(d1, spfn + k, 1),
        )
      )
        return VM_FAULT_OOM;
      i += HPAGE_PMD_NR - 1;
      continue;
    }
    const d = allocRam(0);
    if (d < 0) return VM_FAULT_OOM;
    gpu.copyFromVram(d, spfn, 1);
    mig.dst[i] = migratePfn(d) + write;
  }
  return 0;
}

/** The PMD-sized steps of [start, end) (a migrate_vma struct per step keeps src/dst small). */
function* pmdSteps(start: number, end: number): Generator<[number, number]> {
  for (let a = start; a < end; ) {
    const b = Math.min(end, a - (a % PMD_SIZE) + PMD_SIZE);
    yield [a, b];
    a = b;
  }
}

function tally(res: MigrateResult, gpu: ToyGpu, mig: MigrateVma, toDevice: boolean): void {
  res.cpages += mig.cpages;
  for (let i = 0; i < mig.npages; i++) {
    const d = migratePfnToPage(mig.dst[i]);
    if (d < 0 || !(mpfnFlags(mig.src[i]) & MIGRATE_PFN_MIGRATE)) continue;
    if (toDevice !== gpu.owns(d)) continue;
    const compound = (mpfnFlags(mig.dst[i]) & MIGRATE_PFN_COMPOUND) !== 0;
    res.moved += compound ? HPAGE_PMD_NR : 1;
    if (compound) res.thps++;
  }
}

/** Model-only (no kernel symbol): the copy step of a migration to the device ({@link allocAndCopyToDevice}). */
export type AllocAndCopy = (gpu: ToyGpu, mig: MigrateVma) => void;

/**
 * Models dmirror_migrate_to_device(): under mmap_read_lock, for each PMD-sized step of
 * [start, end): migrate_vma_setup() selecting system memory and THPs (MIGRATE_VMA_SELECT_SYSTEM |
 * MIGRATE_VMA_SELECT_COMPOUND, pgmap_owner = the GPU), `copy` ({@link allocAndCopyToDevice} by
 * default), migrate_vma_pages(), migrate_vma_finalize(). The named yields are where another CPU can act.
 */
export function* migrateToDeviceGen(
  gpu: ToyGpu,
  mm: MmStruct,
  start: number,
  end: number,
  copy: AllocAndCopy = allocAndCopyToDevice,
): KGen<MigrateResult> {
  return yield* migrateRange(gpu, mm, start, end, copy);
}

/**
 * Models dmirror_migrate_to_system(): the same phases selecting our device-private pages
 * (MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_COMPOUND) and
 * {@link allocAndCopyToRam}.
 */
export function* migrateToRamGen(gpu: ToyGpu, mm: MmStruct, start: number, end: number): KGen<MigrateResult> {
  return yield* migrateRange(gpu, mm, start, end, null);
}

function* migrateRange(
  gpu: ToyGpu,
  mm: MmStruct,
  start: number,
  end: number,
  copy: AllocAndCopy | null,
): KGen<MigrateResult> {
  const core = gpu.core;
  const toDevice = copy !== null;
  const res: MigrateResult = { ret: 0, cpages: 0, moved: 0, thps: 0 };
  const select = toDevice ? MIGRATE_VMA_SELECT_SYSTEM : MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
  yield* mmapReadLock(core, mm, 'toy_gpu_migrate');
  try {
    for (let a = start; a < end; ) {
      const vma = mm.vmaLookup(a);
      // Like dmirror_migrate_to_device(): every address must be in a readable VMA.
      if (!vma || !(vma.flags & VM_READ)) {
        res.ret = -EINVAL;
        break;
      }
      const stop = Math.min(end, vma.end);
      for (const [s, e] of pmdSteps(a, stop)) {
        const mig = newMigrateVma({
          vma,
          start: s,
          end: e,
          flags: select | MIGRATE_VMA_SELECT_COMPOUND,
          pgmapOwner: gpu,
        });
        const r = yield* migrateVmaSetup(core, mig);
        if (r) {
          res.ret = r;
          return res;
        }
        if (!mig.cpages) continue;
        yield 'toy_gpu: after migrate_vma_setup';
        if (copy) copy(gpu, mig);
        else if (allocAndCopyToRam(gpu, mig)) {
          yield* migrateVmaFinalize(core, mig);
          res.ret = -ENOMEM;
          return res;
        }
        yield 'toy_gpu: after alloc_and_copy';
        yield* migrateVmaPages(core, mig);
        yield 'toy_gpu: after migrate_vma_pages';
        yield* migrateVmaFinalize(core, mig);
        tally(res, gpu, mig, toDevice);
      }
      a = stop;
    }
  } finally {
    mmapReadUnlock(core, mm, 'toy_gpu_migrate');
  }
  return res;
}

/**
 * Models the toy GPU's dev_pagemap_ops.migrate_to_ram (dmirror_devmem_fault()): a CPU touched
 * one of our device pages. The core holds the faulting device folio locked and referenced
 * (vmf->page). A PTE fault migrates that one page; a fault on a device-private PMD migrates the
 * whole THP (MIGRATE_VMA_SELECT_COMPOUND). migrate_vma_setup() with fault_page = vmf->page. 0, or
 * VM_FAULT_SIGBUS / VM_FAULT_OOM.
 */
export function* toyGpuMigrateToRam(gpu: ToyGpu, vmf: VmFault): KGen<number> {
  const core = gpu.core;
  const head = core.map.head[vmf.page];
  const order = vmf.pte ? 0 : core.map.folioOrder(head);
  const size = PAGE_SIZE * 2 ** order;
  const start = vmf.address - (vmf.address % size);
  const mig = newMigrateVma({
    vma: vmf.vma as Vma,
    start,
    end: start + size,
    flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE | (order ? MIGRATE_VMA_SELECT_COMPOUND : 0),
    pgmapOwner: gpu,
    faultPage: vmf.page,
  });
  if (yield* migrateVmaSetup(core, mig)) return VM_FAULT_SIGBUS;
  const ret = allocAndCopyToRam(gpu, mig);
  if (ret) {
    yield* migrateVmaFinalize(core, mig);
    return ret;
  }
  yield* migrateVmaPages(core, mig);
  yield* migrateVmaFinalize(core, mig);
  return 0;
}
