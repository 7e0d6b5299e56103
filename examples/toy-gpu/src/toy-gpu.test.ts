import {
  HPAGE_PMD_NR,
  MADV_DONTNEED,
  PAGE_SIZE,
  PM_SWAP,
  PMD_SIZE,
  PROT_READ,
  pagemapEntry,
  SignalDelivered,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { fill, holds, machine, thpBuffer } from './testing/setup.js';

const WORDS = PMD_SIZE / 4;

describe('toy GPU: migration with THP', () => {
  it('moves a THP to VRAM as one device THP and back as one THP', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 2);
    fill(p, a, 2 * WORDS, (i) => i * 3);
    const r = drv.migrateToDevice(p, a, 2 * PMD_SIZE);
    expect(r).toEqual({ ret: 0, cpages: 2, moved: 2 * HPAGE_PMD_NR, thps: 2 });
    expect(drv.gpu.stats.allocLarge).toBe(2);
    expect(pagemapEntry(k.core, p.mm, a) & PM_SWAP).toBeTruthy();
    const back = drv.migrateToRam(p, a, 2 * PMD_SIZE);
    expect(back).toEqual({ ret: 0, cpages: 2, moved: 2 * HPAGE_PMD_NR, thps: 2 });
    expect(drv.gpu.stats.freeLarge).toBe(2);
    expect(drv.gpu.vramUsed).toBe(0);
    expect(holds(p, a, 2 * WORDS, (i) => i * 3)).toBe(true);
    expect(k.check()).toEqual([]);
  });

  it('falls back to small device pages when no device THP is free, splitting the source THP', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 1);
    fill(p, a, WORDS, (i) => ~i);
    drv.gpu.failLarge = 1;
    const r = drv.migrateToDevice(p, a, PMD_SIZE);
    expect(r).toEqual({ ret: 0, cpages: 1, moved: HPAGE_PMD_NR, thps: 0 });
    expect(drv.gpu.stats.allocSmall).toBe(HPAGE_PMD_NR);
    expect(k.core.vmstat.thp_split_pmd).toBeGreaterThan(0);
    expect(holds(p, a, WORDS, (i) => ~i)).toBe(true); // 512 CPU faults, one page each
    expect(drv.gpu.stats.cpuFaults).toBe(HPAGE_PMD_NR);
    expect(k.check()).toEqual([]);
  });

  it('migrates unpopulated memory as a compound hole and reads zeros back', () => {
    const { drv, p } = machine();
    const a = thpBuffer(p, 1);
    expect(drv.migrateToDevice(p, a, PMD_SIZE)).toMatchObject({ cpages: 1, thps: 1 });
    expect(p.readI32(a + 100 * PAGE_SIZE)).toBe(0);
  });
});

describe('toy GPU: the CPU fault path (migrate_to_ram)', () => {
  it('a CPU touch of a device THP brings the whole THP back in one fault', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 1);
    fill(p, a, WORDS, (i) => i);
    drv.migrateToDevice(p, a, PMD_SIZE);
    expect(p.readI32(a + 8 * PAGE_SIZE)).toBe(8 * 1024);
    expect(drv.gpu.stats.cpuFaults).toBe(1);
    expect(drv.gpu.vramUsed).toBe(0);
    expect(holds(p, a, WORDS, (i) => i)).toBe(true);
    expect(k.check()).toEqual([]);
  });

  it('a CPU fault on a small device page migrates that page only', () => {
    const { drv, p } = machine();
    const a = thpBuffer(p, 1);
    drv.gpu.failLarge = 1;
    fill(p, a, WORDS, (i) => i);
    drv.migrateToDevice(p, a, PMD_SIZE);
    p.writeI32(a, 77);
    expect(drv.gpu.stats.cpuFaults).toBe(1);
    expect(drv.gpu.vramUsed).toBe((HPAGE_PMD_NR - 1) * PAGE_SIZE);
  });
});

describe('toy GPU: splitting a device THP (folio_split)', () => {
  it('migrating back into small system pages splits the device THP', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 1);
    fill(p, a, WORDS, (i) => 3 * i);
    drv.migrateToDevice(p, a, PMD_SIZE);
    k.core.zone.failHook = (order) => order > 0; // no system THP: 512 small destinations
    expect(drv.migrateToRam(p, a, PMD_SIZE)).toEqual({ ret: 0, cpages: 1, moved: HPAGE_PMD_NR, thps: 0 });
    k.core.zone.failHook = undefined;
    expect(drv.gpu.stats.splits).toBe(HPAGE_PMD_NR - 1);
    expect(drv.gpu.stats.freeSmall).toBe(HPAGE_PMD_NR);
    expect(holds(p, a, WORDS, (i) => 3 * i)).toBe(true);
    expect(k.check()).toEqual([]);
  });

  it('a CPU fault on one PTE of a PTE-mapped device THP splits it; the rest stays in VRAM', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 1);
    fill(p, a, WORDS, (i) => i);
    drv.migrateToDevice(p, a, PMD_SIZE);
    expect(p.mprotect(a, PAGE_SIZE, PROT_READ)).toBe(0); // splits the device-private PMD
    expect(p.readI32(a)).toBe(0);
    expect(drv.gpu.stats.splits).toBe(HPAGE_PMD_NR - 1);
    expect(drv.gpu.vramUsed).toBe((HPAGE_PMD_NR - 1) * PAGE_SIZE);
    expect(k.check()).toEqual([]); // every split folio kept the GPU's zone_device_data
    expect(holds(p, a, WORDS, (i) => i)).toBe(true);
  });
});

describe('toy GPU: device access through hmm_range_fault', () => {
  it('reads system memory and its own VRAM, and faults a write in', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 2);
    fill(p, a, 2 * WORDS, (i) => i + 5);
    drv.migrateToDevice(p, a + PMD_SIZE, PMD_SIZE);
    const bytes = drv.read(p, a + PMD_SIZE - 8, 16);
    expect(bytes).toBeInstanceOf(Uint8Array);
    const v = new Int32Array((bytes as Uint8Array).buffer);
    expect([...v]).toEqual([WORDS - 2 + 5, WORDS - 1 + 5, WORDS + 5, WORDS + 1 + 5]);
    const m = drv.bind(p);
    expect(m.pt.get((a + PMD_SIZE) / PAGE_SIZE)).toMatchObject({ write: true });
    expect(drv.write(p, a, new Uint8Array([9, 0, 0, 0]))).toBe(0);
    expect(p.readI32(a)).toBe(9);
    expect(k.check()).toEqual([]);
  });

  it('an invalidation drops the GPU entries; the next access faults the new page in', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 1);
    fill(p, a, 4, () => 1);
    expect(drv.read(p, a, 4)).toEqual(new Uint8Array([1, 0, 0, 0]));
    const m = drv.bind(p);
    expect(m.pt.size).toBe(1);
    expect(p.madvise(a, PMD_SIZE, MADV_DONTNEED)).toBe(0);
    expect(m.pt.size).toBe(0);
    expect(m.invalidations).toBeGreaterThan(0);
    p.writeI32(a, 2);
    expect(drv.read(p, a, 4)).toEqual(new Uint8Array([2, 0, 0, 0]));
    expect(k.check()).toEqual([]);
  });

  it('an address without a VMA is -EFAULT for the GPU, as for the CPU', () => {
    const { drv, p } = machine();
    expect(drv.read(p, 0x10000, 4)).toBe(-14);
    expect(() => p.readI32(0x10000)).toThrow(SignalDelivered);
  });
});

describe('toy GPU: eviction and unload', () => {
  it('evicts device THPs and small pages with migrate_device_range, then unloads', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 2);
    fill(p, a, 2 * WORDS, (i) => i ^ 0x55);
    drv.migrateToDevice(p, a, PMD_SIZE);
    drv.gpu.failLarge = 1;
    drv.migrateToDevice(p, a + PMD_SIZE, PMD_SIZE);
    expect(drv.evictAll()).toEqual({ collected: 1 + HPAGE_PMD_NR, evicted: 1 + HPAGE_PMD_NR, stayed: 0 });
    expect(drv.gpu.vramUsed).toBe(0);
    expect(holds(p, a, 2 * WORDS, (i) => i ^ 0x55)).toBe(true);
    drv.migrateToDevice(p, a, PMD_SIZE);
    expect(drv.destroy().evicted).toBe(1);
    expect(k.core.pgmaps[drv.gpu.pgmap.id]).toBeUndefined();
    expect(holds(p, a, WORDS, (i) => i ^ 0x55)).toBe(true);
    expect(k.check()).toEqual([]);
  });
});
