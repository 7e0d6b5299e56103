/**
 * What the dmirror's mirror is told, through the ioctls: mmu-notifier events of the CPU paths
 * and of the driver's own migrations (README audit table, driver rows), and hmm_range_fault()'s
 * owner path for device-private THPs.
 */
import {
  EFAULT,
  MADV_FREE,
  MADV_HUGEPAGE,
  NotifierRecorder,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import {
  dmirrorOf,
  fillInts,
  type HmmBuffer,
  hmmBuffer,
  hmmDmirrorCmd,
  hmmOpen,
  machine,
} from './test-util.js';
import {
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from './uapi.js';

const P = PAGE_SIZE;

/** A PMD-aligned MADV_HUGEPAGE window with a PMD-sized mirror buffer. */
function thpWindow(p: Parameters<typeof hmmBuffer>[0]): HmmBuffer {
  const buf = hmmBuffer(p, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, PMD_SIZE);
  buf.ptr = Math.ceil(buf.ptr / PMD_SIZE) * PMD_SIZE;
  expect(p.madvise(buf.ptr, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  return buf;
}

describe('the mirror after CPU paths (dmirror_interval_invalidate())', () => {
  it('READ after MADV_FREE faults once, as on Linux (madvise_free_single_vma() sends MMU_NOTIFY_CLEAR)', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 4 * P);
    fillInts(p, buf.ptr, P, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 4)).toBe(0);
    expect(buf.faults).toBe(1);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 4)).toBe(0);
    expect(buf.faults).toBe(0);
    expect(p.madvise(buf.ptr, 4 * P, MADV_FREE)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 4)).toBe(0);
    expect(buf.faults).toBe(1);
    expect(buf.cpages).toBe(4);
    expect(p.readInts(buf.mirror, P)).toEqual(Int32Array.from({ length: P }, (_, i) => i));
  });

  it('mprotect(PROT_READ) drops the mirror (PROTECTION_VMA): the next READ faults', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 2 * P);
    fillInts(p, buf.ptr, 2 * (P / 4), (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 2)).toBe(0);
    expect(p.mprotect(buf.ptr, 2 * P, PROT_READ)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 2)).toBe(0);
    expect(buf.faults).toBe(1);
  });
});

describe("hmm_range_fault()'s owner path for device-private THPs (hmm_vma_handle_absent_pmd())", () => {
  it('SNAPSHOT through another device reads HMM_DMIRROR_PROT_ERROR for all 512 pages; through the owner, PMD entries', () => {
    const { p } = machine();
    const fd0 = hmmOpen(p, 0);
    const fd1 = hmmOpen(p, 1);
    const buf = thpWindow(p);
    fillInts(p, buf.ptr, PMD_SIZE / 4, (i) => i);
    expect(hmmDmirrorCmd(p, fd0, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 512)).toBe(0);
    expect(buf.cpages).toBe(512);
    expect(hmmDmirrorCmd(p, fd1, HMM_DMIRROR_SNAPSHOT, buf, 512)).toBe(0);
    expect([...p.readBytes(buf.mirror, 512)].every((b) => b === HMM_DMIRROR_PROT_ERROR)).toBe(true);
    expect(hmmDmirrorCmd(p, fd0, HMM_DMIRROR_SNAPSHOT, buf, 512)).toBe(0);
    const own = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD;
    expect([...p.readBytes(buf.mirror, 512)].every((b) => b === own)).toBe(true);
  });

  it('a WRITE through the owner of a read-only device THP: hmm_range_fault() reports it read-only, the driver warns and fails with -EFAULT', () => {
    const { k, p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = thpWindow(p);
    fillInts(p, buf.ptr, PMD_SIZE / 4, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 512)).toBe(0);
    expect(p.mprotect(buf.ptr, PMD_SIZE, PROT_READ)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_WRITE, buf, 512)).toBe(-EFAULT);
    expect(k.core.warnings.map((w) => w.message)).toContain(
      'dmirror_do_fault: write requested but page is read-only',
    );
    // Nothing was faulted back: the THP is still on the device, now read-only.
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT, buf, 1)).toBe(0);
    expect(p.readBytes(buf.mirror, 1)[0]).toBe(
      HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_PMD | HMM_DMIRROR_PROT_READ,
    );
  });
});

describe('driver-started invalidations (audit table, driver rows)', () => {
  it('MIGRATE_TO_DEV / MIGRATE_TO_SYS: MMU_NOTIFY_MIGRATE over the range with owner = the device', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 4 * P);
    fillInts(p, buf.ptr, P, (i) => i);
    const r = new NotifierRecorder();
    r.attach(p.mm);
    const mdevice = dmirrorOf(p, fd).mdevice;
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 4)).toBe(0);
    const migrate = r.events.filter((e) => e.name === 'MMU_NOTIFY_MIGRATE');
    expect(migrate.map((e) => [e.start - buf.ptr, e.end - buf.ptr])).toEqual([[0, 4 * P]]);
    expect(migrate[0].owner).toBe(mdevice);
    expect(r.unpaired()).toEqual([]);
    r.clear();
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, 4)).toBe(0);
    expect(r.events.map((e) => [e.name, e.start - buf.ptr, e.end - buf.ptr, e.owner === mdevice])).toEqual([
      ['MMU_NOTIFY_MIGRATE', 0, 4 * P, true],
    ]);
  });

  it('a CPU fault on a device page: MMU_NOTIFY_MIGRATE of the page with owner = the device (dmirror_devmem_fault())', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 4 * P);
    fillInts(p, buf.ptr, P, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 4)).toBe(0);
    const r = new NotifierRecorder();
    r.attach(p.mm);
    expect(p.readI32(buf.ptr + 2 * P)).toBe(2 * (P / 4));
    expect(r.events.map((e) => [e.name, e.start - buf.ptr, e.end - buf.ptr])).toEqual([
      ['MMU_NOTIFY_MIGRATE', 2 * P, 3 * P],
    ]);
    expect(r.events[0].owner).toBe(dmirrorOf(p, fd).mdevice);
  });

  it('EXCLUSIVE: MMU_NOTIFY_EXCLUSIVE per page (make_device_exclusive(), owner NULL as test_hmm passes)', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 2 * P);
    fillInts(p, buf.ptr, P / 2, (i) => i);
    const r = new NotifierRecorder();
    r.attach(p.mm);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_EXCLUSIVE, buf, 2)).toBe(0);
    expect(r.events.map((e) => [e.name, e.start - buf.ptr, e.end - buf.ptr, e.owner])).toEqual([
      ['MMU_NOTIFY_EXCLUSIVE', 0, P, null],
      ['MMU_NOTIFY_EXCLUSIVE', P, 2 * P, null],
    ]);
  });

  it('close: the eviction unmaps each device page under MMU_NOTIFY_CLEAR (migrate_device_range() -> try_to_migrate())', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 2 * P);
    fillInts(p, buf.ptr, P / 2, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 2)).toBe(0);
    const r = new NotifierRecorder();
    r.attach(p.mm);
    expect(p.close(fd)).toBe(0);
    // One try_to_migrate() per device page, in the chunk's pfn order.
    const got = r.ranges().map(([n, s, e]) => [n, s - buf.ptr, e - buf.ptr]);
    expect(got.sort((a, b) => Number(a[1]) - Number(b[1]))).toEqual([
      ['MMU_NOTIFY_CLEAR', 0, P],
      ['MMU_NOTIFY_CLEAR', P, 2 * P],
    ]);
    expect(p.readI32(buf.ptr + P)).toBe(P / 4);
  });
});
