/**
 * The dmirror mTHP extension (mthp.ts): a device declaring mTHP orders migrates PTE-mapped
 * large folios whole in both directions, negotiates a lower order when its allocation fails,
 * faults a whole device mTHP back, and refuses bad configurations at load.
 */
import {
  entryPfn,
  installMmCoreChecker,
  Kernel,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  pteIndex,
  pteTableOf,
  ptHi,
  ptLo,
  type ThpSizeMode,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { installDmirror } from './module.js';
import { fillInts, hmmDmirrorCmd, hmmOpen, intsEqual } from './test-util.js';
import {
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_SNAPSHOT_ORDER,
  hmmDmirrorFlagFailAllocOrder,
} from './uapi.js';

/** A machine with anonymous mTHP of `order` always on and device `minor` declaring `devOrders`. */
function setup(order: number, devOrders: number, minor = 0) {
  const thpAnon: Record<number, ThpSizeMode> = { [order]: 'always' };
  const k = new Kernel({ ramBytes: 512 << 20, thp: 'never', thpAnon });
  k.checkInvariants = true;
  installMmCoreChecker(k);
  const mod = installDmirror(k, { coherent: minor >= 2, mthpOrders: { [minor]: devOrders } });
  k.spawn();
  const p = k.spawn();
  const fd = hmmOpen(p, minor);
  return { k, mod, p, fd };
}

/** A PMD-aligned buffer of `size` bytes filled with the int index pattern (mTHP-faulted). */
function buffer(p: Process, size: number) {
  const raw = p.mmap(0, size + PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const ptr = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  fillInts(p, ptr, size / 4, (i) => i);
  const mirror = p.malloc(size);
  return { ptr, mirror, size, cpages: 0, faults: 0 };
}

function pfnAt(k: Kernel, p: Process, addr: number): number {
  const t = pteTableOf(k.core, p.mm, addr, false);
  return entryPfn(ptLo(k.core, t, pteIndex(addr)), ptHi(k.core, t, pteIndex(addr)));
}

function orderAt(k: Kernel, p: Process, addr: number): number {
  return k.core.map.folioOrder(k.core.map.head[pfnAt(k, p, addr)]);
}

describe('dmirror mTHP (model extension)', () => {
  for (const [order, minor] of [2, 3, 4, 5, 6, 7, 8].flatMap((o) => [
    [o, 0],
    [o, 2],
  ])) {
    const kind = minor ? 'coherent' : 'private';
    it(`order ${order}, ${kind} device: MIGRATE_TO_DEV and MIGRATE_TO_SYS move whole folios, cpages counts pages`, () => {
      const { k, mod, p, fd } = setup(order, 1 << order, minor);
      const size = 2 * (PAGE_SIZE << order);
      const buf = buffer(p, size);
      expect(orderAt(k, p, buf.ptr)).toBe(order);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, size / PAGE_SIZE)).toBe(0);
      expect(buf.cpages).toBe(size / PAGE_SIZE);
      const dev = mod.devices[minor];
      for (let off = 0; off < size; off += PAGE_SIZE) {
        const pfn = pfnAt(k, p, buf.ptr + off);
        expect(k.core.pgmapOf(pfn)?.owner).toBe(dev);
        expect(k.core.map.folioOrder(k.core.map.head[pfn])).toBe(order);
      }
      expect(mod.check()).toEqual([]);
      expect(mod.checkFreeLists()).toEqual([]);
      // SNAPSHOT_ORDER (model extension): every page reports its device folio's order.
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT_ORDER, buf, size / PAGE_SIZE)).toBe(0);
      expect([...p.readBytes(buf.mirror, size / PAGE_SIZE)]).toEqual(new Array(size / PAGE_SIZE).fill(order));
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, size / PAGE_SIZE)).toBe(0);
      for (let off = 0; off < size; off += PAGE_SIZE) expect(orderAt(k, p, buf.ptr + off)).toBe(order);
      expect(intsEqual(p, buf.ptr, size / 4, (i) => i)).toBe(true);
      expect(dev.calloc - dev.cfree).toBe(0);
      expect(mod.checkFreeLists()).toEqual([]);
      expect(k.check()).toEqual([]);
    });
  }

  it('FAIL_ALLOC of order 6: the order-6 source lands as order-4 device folios (declared 6 and 4)', () => {
    const { k, p, fd, mod } = setup(6, (1 << 6) | (1 << 4));
    const size = PAGE_SIZE << 6;
    const buf = buffer(p, size);
    const flags = { ...buf };
    // HMM_DMIRROR_FLAGS takes the flags in cmd.npages.
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_FLAGS, flags, hmmDmirrorFlagFailAllocOrder(6))).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, size / PAGE_SIZE)).toBe(0);
    for (let off = 0; off < size; off += PAGE_SIZE) expect(orderAt(k, p, buf.ptr + off)).toBe(4);
    expect(intsEqual(p, buf.ptr, size / 4, (i) => i)).toBe(true);
    expect(mod.checkFreeLists()).toEqual([]);
    expect(k.check()).toEqual([]);
  });

  it('a CPU read of one page of a device mTHP faults the whole folio back', () => {
    const { k, p, fd, mod } = setup(5, 1 << 5);
    const size = 2 * (PAGE_SIZE << 5);
    const buf = buffer(p, size);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, size / PAGE_SIZE)).toBe(0);
    const dev = mod.devices[0];
    expect(p.readI32(buf.ptr + 7 * PAGE_SIZE)).toBe((7 * PAGE_SIZE) / 4);
    for (let off = 0; off < PAGE_SIZE << 5; off += PAGE_SIZE) {
      const pfn = pfnAt(k, p, buf.ptr + off);
      expect(k.core.pgmapOf(pfn)?.owner).not.toBe(dev);
      expect(orderAt(k, p, buf.ptr + off)).toBe(5);
    }
    expect(k.core.pgmapOf(pfnAt(k, p, buf.ptr + (PAGE_SIZE << 5)))?.owner).toBe(dev);
    expect(intsEqual(p, buf.ptr, size / 4, (i) => i)).toBe(true);
    expect(k.check()).toEqual([]);
  });

  it('a device with declared orders still serves base pages (small sources), carving its PMD-order slots', () => {
    const { k, p, fd, mod } = setup(4, 1 << 4);
    // A 16 KiB mapping is too small for the only mTHP size on (64 KiB): base pages.
    const ptr = p.mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    fillInts(p, ptr, PAGE_SIZE, (i) => i);
    const buf = { ptr, mirror: p.malloc(4 * PAGE_SIZE), size: 4 * PAGE_SIZE, cpages: 0, faults: 0 };
    expect(orderAt(k, p, buf.ptr)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 4)).toBe(0);
    expect(buf.cpages).toBe(4);
    for (let off = 0; off < 4 * PAGE_SIZE; off += PAGE_SIZE)
      expect(k.core.pgmapOf(pfnAt(k, p, buf.ptr + off))?.owner).toBe(mod.devices[0]);
    expect(mod.check()).toEqual([]);
    expect(mod.checkFreeLists()).toEqual([]);
    expect(intsEqual(p, buf.ptr, PAGE_SIZE, (i) => i)).toBe(true);
  });

  it('without declared orders the device behaves as lib/test_hmm.c: base pages on the device', () => {
    const { k, p, fd } = setup(4, 0);
    const size = PAGE_SIZE << 4;
    const buf = buffer(p, size);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, size / PAGE_SIZE)).toBe(0);
    for (let off = 0; off < size; off += PAGE_SIZE) expect(orderAt(k, p, buf.ptr + off)).toBe(0);
    expect(intsEqual(p, buf.ptr, size / 4, (i) => i)).toBe(true);
    expect(k.check()).toEqual([]);
  });

  it('SNAPSHOT_ORDER reports the CPU folio order too, and 0xff for a page with nothing mapped', () => {
    const { p, fd } = setup(3, 1 << 3);
    const size = 2 * (PAGE_SIZE << 3);
    const buf = buffer(p, size);
    expect(p.munmap(buf.ptr + size - PAGE_SIZE, PAGE_SIZE)).toBe(0);
    const { ptr } = buf;
    const probe = { ...buf, ptr: ptr + size - 2 * PAGE_SIZE };
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT_ORDER, { ...buf, ptr }, 1)).toBe(0);
    expect(p.readBytes(buf.mirror, 1)[0]).toBe(3);
    // A hole inside the VMA (never faulted) has no page: 0xff.
    const hole = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT_ORDER, { ...probe, ptr: hole }, 1)).toBe(0);
    expect(p.readBytes(buf.mirror, 1)[0]).toBe(0xff);
  });

  it('a configuration naming orders outside 2..8 is refused at load', () => {
    for (const bad of [1 << 1, 1 << 9, 1, -4, 1.5]) {
      const k = new Kernel({ ramBytes: 64 << 20 });
      expect(() => installDmirror(k, { coherent: false, mthpOrders: { 0: bad } })).toThrow(/outside 2\.\.8/);
    }
  });
});
