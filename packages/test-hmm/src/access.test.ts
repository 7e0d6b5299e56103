import {
  EFAULT,
  EPERM,
  MADV_FREE,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDWR,
  O_TMPFILE,
  PAGE_SIZE,
  PG_dirty,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  walkPfn,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { dmirrorOf, fillInts, hmmBuffer, hmmDmirrorCmd, hmmOpen, intsEqual, machine } from './test-util.js';
import {
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from './uapi.js';

const SIZE = 4 << 20;
const NPAGES = SIZE / PAGE_SIZE;
const NINTS = SIZE / 4;

describe('HMM_DMIRROR_READ', () => {
  it('anon_read: one fault pass, zero page and pte_none read as zeros', () => {
    const { k, p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, SIZE);
    const skip = (2 * PAGE_SIZE) / 4;
    p.writeInts(
      buf.ptr + 2 * PAGE_SIZE,
      Int32Array.from({ length: NINTS - skip }, (_, i) => i + skip),
    );
    expect(p.mprotect(buf.ptr, SIZE, PROT_READ)).toBe(0);
    expect(p.readI32(buf.ptr + PAGE_SIZE)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, NPAGES)).toBe(0);
    expect(buf.cpages).toBe(NPAGES);
    expect(buf.faults).toBe(1);
    expect(intsEqual(p, buf.mirror, NINTS, (i) => (i < skip ? 0 : i))).toBe(true);
    // Everything is mirrored now: a second READ needs no fault pass.
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, NPAGES)).toBe(0);
    expect(buf.faults).toBe(0);
    expect(k.core.warnings).toEqual([]);
  });

  it('anon_read_prot: PROT_NONE gives -EFAULT and leaves the user buffer alone', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, SIZE);
    fillInts(p, buf.ptr, NINTS, (i) => i);
    fillInts(p, buf.mirror, NINTS, (i) => -i);
    expect(p.mprotect(buf.ptr, SIZE, PROT_NONE)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, NPAGES)).toBe(-EFAULT);
    expect(p.mprotect(buf.ptr, SIZE, PROT_READ)).toBe(0);
    expect(intsEqual(p, buf.ptr, NINTS, (i) => i)).toBe(true);
    expect(intsEqual(p, buf.mirror, NINTS, (i) => -i)).toBe(true);
  });

  it('invalidations (munmap, mprotect) erase mirror entries, one page past the end too', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 8 * PAGE_SIZE);
    fillInts(p, buf.ptr, 8 * 1024, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 8)).toBe(0);
    const dm = dmirrorOf(p, fd);
    expect(dm.pt.size).toBe(8);
    expect(p.mprotect(buf.ptr + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(0);
    // [start, end] inclusive: pages 2 and 3 are gone.
    expect(dm.entries().map((e) => (e.addr - buf.ptr) / PAGE_SIZE)).toEqual([0, 1, 4, 5, 6, 7]);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 8)).toBe(0);
    expect(buf.faults).toBe(1);
    expect(intsEqual(p, buf.mirror, 8 * 1024, (i) => i)).toBe(true);
  });

  it('file_read: a shared read-only tmpfs mapping', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const file = p.open('/tmp', O_TMPFILE | O_RDWR);
    expect(p.ftruncate(file, SIZE)).toBe(0);
    const data = Int32Array.from({ length: NINTS }, (_, i) => i);
    expect(p.pwrite(file, new Uint8Array(data.buffer), SIZE, 0)).toBe(SIZE);
    const ptr = p.mmap(0, SIZE, PROT_READ, MAP_SHARED, file, 0);
    const buf = { ptr, mirror: p.malloc(SIZE), size: SIZE, cpages: 0, faults: 0 };
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, NPAGES)).toBe(0);
    expect([buf.cpages, buf.faults]).toEqual([NPAGES, 1]);
    expect(intsEqual(p, buf.mirror, NINTS, (i) => i)).toBe(true);
  });
});

describe('HMM_DMIRROR_WRITE', () => {
  it('anon_write: device writes land in CPU memory', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, SIZE);
    fillInts(p, buf.mirror, NINTS, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_WRITE, buf, NPAGES)).toBe(0);
    expect([buf.cpages, buf.faults]).toEqual([NPAGES, 1]);
    expect(intsEqual(p, buf.ptr, NINTS, (i) => i)).toBe(true);
  });

  it('anon_write_prot: -EPERM on a read-only VMA, then works after mprotect', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, SIZE, PROT_READ);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 1)).toBe(0);
    expect([buf.cpages, buf.faults]).toEqual([1, 1]);
    fillInts(p, buf.mirror, NINTS, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_WRITE, buf, NPAGES)).toBe(-EPERM);
    expect(intsEqual(p, buf.ptr, NINTS, () => 0)).toBe(true);
    expect(p.mprotect(buf.ptr, SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_WRITE, buf, NPAGES)).toBe(0);
    expect([buf.cpages, buf.faults]).toEqual([NPAGES, 1]);
    expect(intsEqual(p, buf.ptr, NINTS, (i) => i)).toBe(true);
  });

  it('anon_write_huge: a THP window', () => {
    const { k, p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, PMD_SIZE);
    buf.ptr = Math.ceil(buf.ptr / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(buf.ptr, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    fillInts(p, buf.mirror, PMD_SIZE / 4, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_WRITE, buf, PMD_SIZE / PAGE_SIZE)).toBe(0);
    expect([buf.cpages, buf.faults]).toEqual([512, 1]);
    expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, (i) => i)).toBe(true);
    expect(k.core.vmstat.thp_fault_alloc).toBeGreaterThan(0);
  });

  it('anon_write_child_shared: a child writes through a MAP_SHARED mapping', () => {
    const { k, p } = machine();
    const ptr = p.mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    const mirror = p.malloc(SIZE);
    fillInts(p, ptr, NINTS, (i) => i);
    fillInts(p, mirror, NINTS, (i) => -i);
    const c = k.task(p.fork())!;
    const fd = hmmOpen(c, 0);
    const buf = { ptr, mirror, size: SIZE, cpages: 0, faults: 0 };
    expect(hmmDmirrorCmd(c, fd, HMM_DMIRROR_WRITE, buf, NPAGES)).toBe(0);
    expect([buf.cpages, buf.faults]).toEqual([NPAGES, 1]);
    c.exit(0);
    expect(intsEqual(p, ptr, NINTS, (i) => -i)).toBe(true);
  });
});

describe('HMM_DMIRROR_SNAPSHOT', () => {
  it('hmm2 snapshot without migrations: error, zero, read, write bytes', () => {
    const { p } = machine();
    const fd0 = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 7 * PAGE_SIZE, PROT_NONE, 7);
    const pg = (i: number) => buf.ptr + i * PAGE_SIZE;
    expect(p.munmap(pg(1), PAGE_SIZE)).toBe(0);
    expect(p.mprotect(pg(2), PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.readI32(pg(2))).toBe(0);
    expect(p.mprotect(pg(3), PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    p.writeI32(pg(3), 3);
    expect(p.mprotect(pg(3), PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.mprotect(pg(4), 3 * PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    p.writeI32(pg(4), 3);
    expect(hmmDmirrorCmd(p, fd0, HMM_DMIRROR_SNAPSHOT, buf, 7)).toBe(0);
    expect(buf.cpages).toBe(7);
    expect([...p.readBytes(buf.mirror, 5)]).toEqual([
      HMM_DMIRROR_PROT_ERROR,
      HMM_DMIRROR_PROT_ERROR,
      HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ,
      HMM_DMIRROR_PROT_READ,
      HMM_DMIRROR_PROT_WRITE,
    ]);
    // Untouched pages are pte_none: NONE.
    expect([...p.readBytes(buf.mirror + 5, 2)]).toEqual([0, 0]);
  });

  it('compound: hugetlb pages are reported at PMD level', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const ptr = p.mmap(0, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
    expect(ptr).toBeGreaterThan(0);
    fillInts(p, ptr, PMD_SIZE / 4, (i) => i);
    const buf = { ptr, mirror: p.malloc(512), size: PMD_SIZE, cpages: 0, faults: 0 };
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT, buf, 512)).toBe(0);
    expect(buf.cpages).toBe(512);
    expect(
      p.readBytes(buf.mirror, 512).every((b) => b === (HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD)),
    ).toBe(true);
    expect(p.mprotect(ptr, PMD_SIZE, PROT_READ)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT, buf, 512)).toBe(0);
    expect(
      p.readBytes(buf.mirror, 512).every((b) => b === (HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_PMD)),
    ).toBe(true);
  });

  it('a PMD-mapped THP is WRITE|PMD; the huge zero page is not is_zero_pfn (READ|PMD)', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 3 * PMD_SIZE, PROT_READ | PROT_WRITE, 1024);
    const a = Math.ceil(buf.ptr / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    p.writeI32(a, 1);
    expect(p.readI32(a + PMD_SIZE)).toBe(0);
    buf.ptr = a;
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT, buf, 1024)).toBe(0);
    const bytes = p.readBytes(buf.mirror, 1024);
    expect(bytes.subarray(0, 512).every((b) => b === (HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD))).toBe(
      true,
    );
    expect(bytes.subarray(512).every((b) => b === (HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_PMD))).toBe(true);
  });
});

describe('HMM_DMIRROR_EXCLUSIVE / CHECK_EXCLUSIVE', () => {
  it('exclusive: device-exclusive entries are revoked by CPU access', () => {
    const { k, p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, SIZE);
    fillInts(p, buf.ptr, NINTS, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_EXCLUSIVE, buf, NPAGES)).toBe(0);
    expect(buf.cpages).toBe(NPAGES);
    expect(intsEqual(p, buf.mirror, NINTS, (i) => i)).toBe(true);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_CHECK_EXCLUSIVE, buf, NPAGES)).toBe(-EPERM);
    const v = p.readInts(buf.ptr, NINTS);
    p.writeInts(
      buf.ptr,
      v.map((x) => x + 1),
    );
    expect(intsEqual(p, buf.ptr, NINTS, (i) => i + 1)).toBe(true);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_CHECK_EXCLUSIVE, buf, NPAGES)).toBe(0);
    expect(k.core.warnings).toEqual([]);
  });

  it('exclusive_mprotect: WRITE after mprotect(PROT_READ) is -EPERM', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, SIZE);
    fillInts(p, buf.ptr, NINTS, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_EXCLUSIVE, buf, NPAGES)).toBe(0);
    expect(p.mprotect(buf.ptr, SIZE, PROT_READ)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_WRITE, buf, NPAGES)).toBe(-EPERM);
  });

  it('make_device_exclusive() moves a dirty PTE’s dirty bit to the folio (a written lazy-free page is not clean)', () => {
    const { k, p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, PAGE_SIZE);
    fillInts(p, buf.ptr, PAGE_SIZE / 4, (i) => i);
    // MADV_FREE cleans the folio and the PTE; the CPU write dirties the PTE only.
    expect(p.madvise(buf.ptr, PAGE_SIZE, MADV_FREE)).toBe(0);
    fillInts(p, buf.ptr, PAGE_SIZE / 4, (i) => i + 7);
    const pfn = walkPfn(k.core, p.mm, buf.ptr, false);
    const head = k.core.map.head[pfn];
    expect(k.core.map.flags[head] & PG_dirty).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_EXCLUSIVE, buf, 1)).toBe(0);
    expect(k.core.map.flags[head] & PG_dirty).not.toBe(0);
    expect(intsEqual(p, buf.ptr, PAGE_SIZE / 4, (i) => i + 7)).toBe(true);
  });
});
