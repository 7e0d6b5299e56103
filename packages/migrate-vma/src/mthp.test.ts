/**
 * The mTHP extension (mthp.ts): PTE-mapped large folios of orders 2..8 migrate to a device and
 * back as compound units of their own order, split to the order the driver could allocate, and
 * fault back whole; with mthpOrders 0 the v6.19 behaviour (split during collection) stays.
 */
import {
  EINVAL,
  HPAGE_PMD_ORDER,
  installMmCoreChecker,
  Kernel,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  type ThpSizeMode,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { installMigrateChecker } from './checker.js';
import { MTHP_ORDERS_VALID } from './mthp.js';
import { badPattern, entryPfnAt, fillPattern } from './testing/harness.js';
import { MthpDevice } from './testing/mthpdev.js';
import { migrateVmaSetup } from './testing/sync.js';
import { MIGRATE_VMA_SELECT_COMPOUND, MIGRATE_VMA_SELECT_SYSTEM, newMigrateVma } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** A machine with anonymous mTHP of `order` always on, both checkers, and an mTHP device. */
function setup(order: number, devOrders: number) {
  const sizes: Record<number, ThpSizeMode> = { [order]: 'always' };
  const k = new Kernel({ ramBytes: 128 << 20, checkInvariants: true, thp: 'never', thpAnon: sizes });
  installMmCoreChecker(k);
  const dev = new MthpDevice(k, devOrders);
  installMigrateChecker(k, { freeLists: () => [dev.freeLists()] });
  k.spawn();
  const p = k.spawn();
  const check = () => [...k.check(), ...k.core.warnings.map((w) => `WARN: ${w.message}`)];
  return { k, dev, p, check };
}

/** A PMD-aligned anonymous region of len bytes (inside a larger mapping), faulted with the pattern. */
function region(p: Process, len: number): number {
  const raw = p.mmap(0, len + PMD_SIZE, RW, ANON);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  fillPattern(p, a, len);
  return a;
}

function orderAt(k: Kernel, p: Process, addr: number): number {
  const pfn = entryPfnAt(k, p, addr);
  return k.core.map.folioOrder(k.core.map.head[pfn]);
}

describe('mTHP device migration (model extension of migrate_vma, mthp.ts)', () => {
  for (let order = 2; order < HPAGE_PMD_ORDER; order++) {
    it(`order ${order}: each folio migrates whole to the device and back, data intact`, () => {
      const { k, dev, p, check } = setup(order, 1 << order);
      const size = 4 << (order + 12);
      const a = region(p, size);
      for (let off = 0; off < size; off += PAGE_SIZE << order) expect(orderAt(k, p, a + off)).toBe(order);
      const vma = p.mm.vmaLookup(a)!;
      const { r, migs } = dev.toDevice(vma, a, a + size);
      expect(r).toBe(0);
      expect(migs.reduce((n, m) => n + m.cpages, 0)).toBe(4);
      for (let off = 0; off < size; off += PAGE_SIZE) {
        const pfn = entryPfnAt(k, p, a + off);
        expect(dev.owns(pfn)).toBe(true);
        expect(k.core.map.folioOrder(k.core.map.head[pfn])).toBe(order);
      }
      expect(check()).toEqual([]);
      expect(dev.toSystem(vma, a, a + size)).toBe(0);
      for (let off = 0; off < size; off += PAGE_SIZE << order) {
        expect(dev.owns(entryPfnAt(k, p, a + off))).toBe(false);
        expect(orderAt(k, p, a + off)).toBe(order);
      }
      expect(badPattern(p, a, size)).toBe(-1);
      expect(check()).toEqual([]);
    });
  }

  it('without mthpOrders (v6.19): the folios are split in collection and migrate as base pages', () => {
    const { k, dev, p, check } = setup(4, 1 << 4);
    const size = 4 * 64 * 1024;
    const a = region(p, size);
    const vma = p.mm.vmaLookup(a)!;
    const { r, migs } = dev.toDevice(vma, a, a + size, 0);
    expect(r).toBe(0);
    expect(migs[0].cpages).toBe(64);
    for (let off = 0; off < size; off += PAGE_SIZE) expect(orderAt(k, p, a + off)).toBe(0);
    expect(badPattern(p, a, size)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('negotiation: the device has order-2 folios only, so each order-6 source is split to order 2 mid-migration', () => {
    const { k, dev, p, check } = setup(6, (1 << 6) | (1 << 2));
    dev.failOrders.add(6);
    const size = 2 * (PAGE_SIZE << 6);
    const a = region(p, size);
    const vma = p.mm.vmaLookup(a)!;
    const { r, migs } = dev.toDevice(vma, a, a + size);
    expect(r).toBe(0);
    expect(migs[0].cpages).toBe(2);
    for (let off = 0; off < size; off += PAGE_SIZE) {
      expect(dev.owns(entryPfnAt(k, p, a + off))).toBe(true);
      expect(orderAt(k, p, a + off)).toBe(2);
    }
    expect(check()).toEqual([]);
    expect(badPattern(p, a, size)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('fallback to base pages when no declared order can be allocated', () => {
    const { k, dev, p, check } = setup(5, 1 << 5);
    dev.failOrders.add(5);
    const size = PAGE_SIZE << 5;
    const a = region(p, size);
    const { r } = dev.toDevice(p.mm.vmaLookup(a)!, a, a + size);
    expect(r).toBe(0);
    for (let off = 0; off < size; off += PAGE_SIZE) {
      expect(dev.owns(entryPfnAt(k, p, a + off))).toBe(true);
      expect(orderAt(k, p, a + off)).toBe(0);
    }
    expect(badPattern(p, a, size)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('a CPU fault on one page of a device mTHP brings the whole folio back at its order', () => {
    const { k, dev, p, check } = setup(4, 1 << 4);
    const size = 2 * (PAGE_SIZE << 4);
    const a = region(p, size);
    dev.toDevice(p.mm.vmaLookup(a)!, a, a + size);
    // A write to page 5 of the first folio.
    p.writeI32(a + 5 * PAGE_SIZE, -1);
    for (let off = 0; off < PAGE_SIZE << 4; off += PAGE_SIZE) {
      expect(dev.owns(entryPfnAt(k, p, a + off))).toBe(false);
      expect(orderAt(k, p, a + off)).toBe(4);
    }
    // The second folio is still on the device.
    expect(dev.owns(entryPfnAt(k, p, a + (PAGE_SIZE << 4)))).toBe(true);
    p.writeI32(a + 5 * PAGE_SIZE, (5 * PAGE_SIZE) / 4);
    expect(badPattern(p, a, size)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('a system mTHP comes back as base pages when its order cannot be allocated', () => {
    const { k, dev, p, check } = setup(3, 1 << 3);
    const size = PAGE_SIZE << 3;
    const a = region(p, size);
    dev.toDevice(p.mm.vmaLookup(a)!, a, a + size);
    dev.failRamOrders.add(3);
    expect(dev.toSystem(p.mm.vmaLookup(a)!, a, a + size)).toBe(0);
    for (let off = 0; off < size; off += PAGE_SIZE) expect(orderAt(k, p, a + off)).toBe(0);
    expect(badPattern(p, a, size)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('bad input: orders outside 2..8, or without MIGRATE_VMA_SELECT_COMPOUND, are -EINVAL and collect nothing', () => {
    const { k, p } = setup(4, 1 << 4);
    const size = PAGE_SIZE << 4;
    const a = region(p, size);
    const vma = p.mm.vmaLookup(a)!;
    const flags = MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND;
    expect(MTHP_ORDERS_VALID).toBe(0b111111100);
    for (const mthpOrders of [1 << 1, 1 << 0, 1 << 9, 1 << 12, -1, 0.5]) {
      const mig = newMigrateVma({ vma, start: a, end: a + size, flags, mthpOrders });
      expect(migrateVmaSetup(k.core, mig)).toBe(-EINVAL);
      expect(mig.npages).toBe(0);
    }
    const mig = newMigrateVma({
      vma,
      start: a,
      end: a + size,
      flags: MIGRATE_VMA_SELECT_SYSTEM,
      mthpOrders: 1 << 4,
    });
    expect(migrateVmaSetup(k.core, mig)).toBe(-EINVAL);
    expect(orderAt(k, p, a)).toBe(4);
    expect(badPattern(p, a, size)).toBe(-1);
  });
});
