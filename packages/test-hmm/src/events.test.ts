import {
  ENOMEM,
  type EventCounts,
  eventsSince,
  Kernel,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { installDmirror } from './module.js';
import { fillInts, hmmBuffer, hmmDmirrorCmd, hmmOpen, intsEqual, machine } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_READ } from './uapi.js';

/** Events of migrating one 2 MiB window to the device and back, THP-backed or in base pages. */
function migrateWindow(huge: boolean): { s2d: EventCounts; d2s: EventCounts } {
  const { k, p } = machine(false);
  const fd = hmmOpen(p, 0);
  const buf = hmmBuffer(p, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, PMD_SIZE);
  buf.ptr = Math.ceil(buf.ptr / PMD_SIZE) * PMD_SIZE;
  expect(p.madvise(buf.ptr, PMD_SIZE, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)).toBe(0);
  fillInts(p, buf.ptr, PMD_SIZE / 4, (i) => i * 3);
  // Fault the mirror buffer in first: copy_to_user() then faults nothing.
  fillInts(p, buf.mirror, PMD_SIZE / 4, () => -1);
  let before = k.core.events.snapshot();
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 512)).toBe(0);
  const s2d = eventsSince(k.core.events, before);
  before = k.core.events.snapshot();
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, 512)).toBe(0);
  const d2s = eventsSince(k.core.events, before);
  expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, (i) => i * 3)).toBe(true);
  expect(k.check()).toEqual([]);
  return { s2d, d2s };
}

describe('kernel events of a dmirror migration (THP vs 4 KiB pages)', () => {
  it('a THP moves with one entry, one lock and one rmap walk where base pages need 512 of each', () => {
    const thp = migrateWindow(true);
    const base = migrateWindow(false);
    for (const d of ['s2d', 'd2s'] as const) {
      expect(thp[d].folioLocks).toBeLessThanOrEqual(4);
      expect(base[d].folioLocks).toBeGreaterThanOrEqual(1024);
      expect(thp[d].ptesWritten).toBeLessThan(8);
      expect(base[d].ptesWritten).toBeGreaterThanOrEqual(1024);
      expect(thp[d].rmapWalks).toBeLessThanOrEqual(2);
      expect(base[d].rmapWalks).toBeGreaterThanOrEqual(512);
    }
    // TLB flushes (migrate_vma_collect_pmd()): an anon-exclusive present PTE is cleared with
    // ptep_clear_flush(), one flush per page; a device-private PTE is not present, so its clear
    // flushes nothing (x86 ptep_clear_flush() flushes only an accessible entry), and the walk
    // ends with one flush_tlb_range() over the PMD: the way back costs no per-page flush.
    expect(base.s2d.tlbFlushes).toBeGreaterThanOrEqual(512);
    expect(thp.s2d.tlbFlushes).toBeLessThan(8);
    expect(base.d2s.tlbFlushes).toBeLessThan(8);
    expect(thp.d2s.tlbFlushes).toBeLessThan(8);
    // dmirror copies page by page either way (copy_highpage() per page): 512 commands per
    // 2 MiB, plus dmirror_do_read()'s 512 memcpys of the read-back on the way to the device.
    expect(thp.s2d.copyCommands).toBe(1024);
    expect(base.s2d.copyCommands).toBe(1024);
    expect(thp.s2d.copyBytes).toBe(2 * PMD_SIZE);
    expect(thp.d2s.copyCommands).toBe(512);
    expect(base.d2s.copyBytes).toBe(PMD_SIZE);
  });
});

describe('bounce buffers beyond the host limit', () => {
  it('READ of more than 4 GiB fails with -ENOMEM (dmirror_bounce_init), not a host error', () => {
    const k = new Kernel({ ramBytes: 8 * 2 ** 30 });
    installDmirror(k, { coherent: false });
    const p = k.spawn();
    const fd = hmmOpen(p, 0);
    const size = 5 * 2 ** 30;
    const ptr = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    expect(ptr).toBeGreaterThan(0);
    const buf = { ptr, mirror: ptr, size, cpages: 0, faults: 0 };
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, size / 4096)).toBe(-ENOMEM);
    expect(k.core.frames.bytesAllocated).toBeLessThan(64 << 20);
  });
});
