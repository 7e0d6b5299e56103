import {
  EFAULT,
  ENODEV,
  installMmCoreChecker,
  Kernel,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { installNouveauChecker } from './checker.js';
import { VOLTA_DMA_COPY_A } from './constants.js';
import { gpuFault, gpuPte, gpuRead, gpuWrite } from './fault.js';
import { createNouveauDmem } from './init.js';
import { svmmMigrateToVram } from './migrate.js';
import { nouveauSvmmFini, nouveauSvmmInit, nouveauSvmmInvalidate } from './svmm.js';
import { gpuInts, pattern, pmdKind, rig, thpWindow } from './testing.js';
import { toRamStats } from './toram.js';

describe('GPU faults through hmm_range_fault (nouveau_svm_fault / nouveau_range_fault)', () => {
  it('maps system pages (4 KiB) and system THPs (2 MiB) with the CPU permissions; GPU writes reach the CPU', () => {
    const { k, p, svmm } = rig();
    const a = p.mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.writeI32(a + PAGE_SIZE, 11);
    expect(gpuFault(svmm, a + PAGE_SIZE + 8, false)).toBe(0);
    const pte = gpuPte(svmm, a + PAGE_SIZE)!;
    expect(pte).toMatchObject({ va: a + PAGE_SIZE, aperture: 'host', pageShift: 12, writable: true });
    expect(gpuInts(gpuRead(svmm, a + PAGE_SIZE, 4))[0]).toBe(11);
    expect(gpuWrite(svmm, a + 2 * PAGE_SIZE, new Uint8Array(new Int32Array([99]).buffer))).toBe(0);
    expect(p.readI32(a + 2 * PAGE_SIZE)).toBe(99);

    const w = thpWindow(p);
    expect(gpuInts(gpuRead(svmm, w + 4096 * 7, 8))).toEqual(pattern(7 * 1024, 2));
    expect(gpuPte(svmm, w + 5)).toMatchObject({ va: w, aperture: 'host', pageShift: 21 });
    expect(gpuPte(svmm, w)!.addr).toBe(k.core.map.head[gpuPte(svmm, w)!.addr / PAGE_SIZE] * PAGE_SIZE);

    // munmap reaches the GPU through the svmm's notifier.
    expect(p.munmap(w, PMD_SIZE)).toBe(0);
    expect(gpuPte(svmm, w)).toBeNull();
    expect(gpuFault(svmm, w, false)).toBe(-EFAULT);
    expect(k.check()).toEqual([]);
  });

  it('maps device pages it owns as VRAM entries and honours mprotect', () => {
    const { k, drm, p, svmm } = rig();
    const w = thpWindow(p);
    svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    const vramAddr = gpuPte(svmm, w)!.addr;
    nouveauSvmmInvalidate(svmm, w, w + PMD_SIZE);
    expect(gpuPte(svmm, w)).toBeNull();
    // hmm_range_fault reports the device PMD (owner = drm->dev) with map order 9: no migration.
    expect(gpuFault(svmm, w + 3 * PAGE_SIZE, true)).toBe(0);
    expect(gpuPte(svmm, w)).toMatchObject({
      aperture: 'vram',
      addr: vramAddr,
      pageShift: 21,
      writable: true,
    });
    expect(toRamStats.get(drm)).toBeUndefined();
    expect(pmdKind(k, p, w)).toBe('device-private-write');

    // mprotect(PROT_READ): the device PMD becomes read-only and the GPU mapping is invalidated.
    expect(p.mprotect(w, PMD_SIZE, PROT_READ)).toBe(0);
    expect(gpuPte(svmm, w)).toBeNull();
    expect(gpuInts(gpuRead(svmm, w + 8, 4))[0]).toBe(2);
    expect(gpuPte(svmm, w)).toMatchObject({ aperture: 'vram', writable: false });
    // hmm_range_fault() reports the driver's own read-only device PMD without HMM_PFN_WRITE and
    // without faulting (hmm_vma_handle_absent_pmd()): the GPU keeps a read-only entry, the replayed
    // write faults again until the fault is cancelled.
    expect(gpuWrite(svmm, w, new Uint8Array(4))).toBe(-EFAULT);
    expect(pmdKind(k, p, w)).toBe('device-private-read');
    expect(k.check()).toEqual([]);
  });

  it('two GPUs: device pages of another owner are migrated back to RAM by the GPU fault', () => {
    const k = new Kernel({ ramBytes: 512 << 20 });
    installMmCoreChecker(k);
    const a = createNouveauDmem(k, { name: 'gpu-a' });
    const b = createNouveauDmem(k, { name: 'gpu-b', chipset: 'turing' });
    installNouveauChecker(a);
    installNouveauChecker(b);
    const p = k.spawn();
    const sa = nouveauSvmmInit(a, p.mm);
    const sb = nouveauSvmmInit(b, p.mm);
    const w = thpWindow(p);
    expect(gpuFault(sa, w, false)).toBe(0);
    expect(gpuPte(sa, w)?.aperture).toBe('host');

    // Migrating to GPU B: its collect notifies MIGRATE with owner B, which GPU A must honour.
    expect(svmmMigrateToVram(sb, w, w + PMD_SIZE)).toMatchObject({ thps: 1 });
    expect(gpuPte(sa, w)).toBeNull();
    expect(gpuPte(sb, w)?.aperture).toBe('vram');

    // GPU A faults: not its page, so hmm_range_fault faults it in -> B's migrate_to_ram.
    expect(gpuInts(gpuRead(sa, w + 4 * PAGE_SIZE, 4))[0]).toBe(4 * 1024);
    expect(toRamStats.get(b)).toMatchObject({ calls: 1, thp: 1 });
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(gpuPte(sa, w)).toMatchObject({ aperture: 'host', pageShift: 21 });
    expect(gpuPte(sb, w)).toBeNull();
    expect(b.dmem!.chunks[0].callocated).toBe(0);
    expect(k.check()).toEqual([]);
    nouveauSvmmFini(sa);
    expect(gpuPte(sa, w)).toBeNull();
    expect(p.mm.notifierList.size).toBe(1);
  });

  it('has no dmem before Pascal or without a supported copy engine; SVM faults still work', () => {
    const kepler = rig({ chipset: 'kepler' });
    expect(kepler.drm.dmem).toBeNull();
    const w = thpWindow(kepler.p);
    expect(svmmMigrateToVram(kepler.svmm, w, w + PMD_SIZE)).toMatchObject({ ret: -ENODEV, migratedPages: 0 });
    expect(pmdKind(kepler.k, kepler.p, w)).toBe('huge');
    expect(gpuInts(gpuRead(kepler.svmm, w, 4))[0]).toBe(0);

    expect(rig({ chipset: 'pascal', copyClass: 0xa0b5 }).drm.dmem).toBeNull();
    expect(rig({ chipset: 'volta' }).drm.copyClass).toBe(VOLTA_DMA_COPY_A);
    expect(rig({ chipset: 'volta' }).drm.dmem).not.toBeNull();
    expect(rig({ chipset: 'turing' }).drm.dmem).not.toBeNull();
  });

  it('rejects unaligned bind ranges and skips gaps between VMAs', () => {
    const { k, p, svmm } = rig();
    expect(svmmMigrateToVram(svmm, 4097, 8192).ret).toBe(-22);
    const a = p.mmap(0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(p.munmap(a + 2 * PAGE_SIZE, 2 * PAGE_SIZE)).toBe(0);
    const r = svmmMigrateToVram(svmm, a, a + 8 * PAGE_SIZE);
    expect(r).toMatchObject({ ret: 0, batches: 2, cpages: 6, migratedPages: 6 });
    expect(k.check()).toEqual([]);
  });
});
