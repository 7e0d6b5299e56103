import {
  ENOMEM,
  installMmCoreChecker,
  Kernel,
  KernelBug,
  MADV_NOHUGEPAGE,
  PAGE_SIZE,
  PMD_SIZE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { installDmirror } from './module.js';
import { fillInts, hmmBuffer, hmmDmirrorCmd, hmmOpen, intsEqual, thpMachine } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS } from './uapi.js';

const NPAGES = PMD_SIZE / PAGE_SIZE;
const fill = (i: number) => (i * 7) ^ 0x3c3c;

/** Fails the order-`order` allocations and, once, the `nth` order-0 allocation from now on. */
function failing(k: Kernel, nth: number, order = 9): () => number {
  let small = 0;
  k.core.zone.failHook = (o) => o >= order || (o === 0 && ++small === nth);
  return () => small;
}

/** 16 small pages of a private dmirror's memory, not yet faulted back. */
function smallDevicePages(fixes: string[]) {
  const k = new Kernel({ ramBytes: 512 << 20, fixes });
  installMmCoreChecker(k);
  installDmirror(k, { coherent: false });
  k.spawn();
  const p = k.spawn();
  const fd = hmmOpen(p, 0);
  const buf = hmmBuffer(p, 16 * PAGE_SIZE);
  expect(p.madvise(buf.ptr, 16 * PAGE_SIZE, MADV_NOHUGEPAGE)).toBe(0);
  fillInts(p, buf.ptr, (16 * PAGE_SIZE) / 4, fill);
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 16)).toBe(0);
  expect(buf.cpages).toBe(16);
  return { k, p, fd, buf };
}

describe('finding K16: dmirror_devmem_fault_alloc_and_copy() failing after earlier slots got pages', () => {
  it('v6.19: MIGRATE_TO_SYS finalizes slots migrate_vma_pages() never saw: migration entries stay on freed device pages', () => {
    const { k, p, fd, buf } = smallDevicePages([]);
    failing(k, 4);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, 16)).toBe(-ENOMEM);
    k.core.zone.failHook = undefined;
    const v = k.check().join('\n');
    expect(v).toMatch(/migration PTE outside an in-flight migration/);
    expect(v).toMatch(/refcount:0 .*zone_device/);
  });

  it('fixed: the whole range is restored, and the data reads back through device faults', () => {
    const { k, p, fd, buf } = smallDevicePages(['K16']);
    failing(k, 4);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, 16)).toBe(-ENOMEM);
    k.core.zone.failHook = undefined;
    expect(k.check()).toEqual([]);
    expect(intsEqual(p, buf.ptr, (16 * PAGE_SIZE) / 4, fill)).toBe(true);
    expect(k.check()).toEqual([]);
  });

  it("v6.19: the small-page fallback of a device THP's fault locks a failed allocation (NULL dereference)", () => {
    const { k, p, fd, buf } = thpMachine([], 0, false, fill);
    k.checkInvariants = false;
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
    failing(k, 101);
    let err: unknown;
    try {
      p.readInts(buf.ptr, 4);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelBug);
    expect((err as KernelBug).message).toMatch(
      /NULL pointer dereference.*dmirror_devmem_fault_alloc_and_copy.*lib\/test_hmm\.c/,
    );
  });

  it('fixed: the fallback failing part way gives the unit back whole, and the retried fault migrates it', () => {
    const { k, p, fd, buf } = thpMachine(['K16'], 0, false, fill);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
    expect(buf.cpages).toBe(NPAGES);
    // No 2 MiB system folio; the fallback's 101st page fails once, and memory is not short when
    // the fault looks (the access is retried).
    const small = failing(k, 101);
    try {
      expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, fill)).toBe(true);
    } finally {
      k.core.zone.failHook = undefined;
    }
    expect(small()).toBeGreaterThan(101 + NPAGES);
    expect(k.check()).toEqual([]);
  });
});
