import { describe, expect, it } from 'vitest';
import {
  EACCES,
  EBADF,
  EEXIST,
  EINVAL,
  ENODEV,
  HPAGE_PMD_NR,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import { entryKind } from '../pgtable/entry.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { pteIndex, pteTableOf, ptHi, ptLo } from './pgtable.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function pteKind(k: Kernel, p: Process, addr: number): string {
  const t = pteTableOf(k.core, p.mm, addr, false);
  if (t < 0) return 'none';
  const i = pteIndex(addr);
  return entryKind(ptLo(k.core, t, i), ptHi(k.core, t, i), 'pte', k.core.zeroPfn, k.core.hugeZeroPfn);
}

describe('mmap(2) validation', () => {
  it('returns the kernel errnos for bad arguments', () => {
    const k = machine();
    const p = k.spawn();
    expect(p.mmap(0, 0, RW, ANON)).toBe(-EINVAL);
    expect(p.mmap(0, 4096, RW, MAP_ANONYMOUS)).toBe(-EINVAL); // no MAP_PRIVATE/MAP_SHARED
    expect(p.mmap(0, 4096, RW, ANON | 0x0c)).toBe(-EINVAL); // unknown map type
    expect(p.mmap(0, 4096, RW, ANON, -1, 100)).toBe(-EINVAL); // unaligned offset
    expect(p.mmap(0x10001000 + 1, 4096, RW, ANON | MAP_FIXED)).toBe(-EINVAL);
    expect(p.mmap(0, 4096, RW, MAP_PRIVATE)).toBe(-EBADF); // file mapping without a file
    expect(p.mmap(0, 4096, RW, MAP_SHARED, 42)).toBe(-EBADF);
    expect(p.mmap(0, 1.5, RW, ANON)).toBe(-EINVAL);
    expect(k.check()).toEqual([]);
  });

  it('checks the file access mode against the mapping', () => {
    const k = machine();
    const p = k.spawn();
    const ro = p.open('/tmp/f', O_RDONLY | O_CREAT);
    expect(ro).toBeGreaterThanOrEqual(3);
    expect(p.mmap(0, 4096, RW, MAP_SHARED, ro)).toBe(-EACCES);
    expect(p.mmap(0, 4096, PROT_READ, MAP_SHARED, ro)).toBeGreaterThan(0);
    expect(p.mmap(0, 4096, RW, MAP_PRIVATE, ro)).toBeGreaterThan(0);
    const wo = p.open('/tmp/f', O_WRONLY);
    expect(p.mmap(0, 4096, PROT_READ, MAP_SHARED, wo)).toBe(-EACCES);
    const proc = p.open('/proc/meminfo', O_RDONLY);
    expect(p.mmap(0, 4096, PROT_READ, MAP_PRIVATE, proc)).toBe(-ENODEV);
    expect(p.mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_HUGETLB, ro)).toBe(-EINVAL);
    expect(k.check()).toEqual([]);
  });

  it('MAP_FIXED replaces, MAP_FIXED_NOREPLACE refuses with -EEXIST', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.writeI32(a + PAGE_SIZE, 1234);
    expect(p.mmap(a + PAGE_SIZE, PAGE_SIZE, RW, ANON | MAP_FIXED_NOREPLACE)).toBe(-EEXIST);
    expect(p.readI32(a + PAGE_SIZE)).toBe(1234);
    expect(p.mmap(a + PAGE_SIZE, PAGE_SIZE, RW, ANON | MAP_FIXED)).toBe(a + PAGE_SIZE);
    expect(p.readI32(a + PAGE_SIZE)).toBe(0);
    // vma_merge_new_range(): the new page joins both neighbours again (same flags, linear pgoff,
    // no anon_vma of its own): one VMA, as /proc/self/maps shows in Linux.
    expect(p.vmas.length).toBe(1);
    const free = a + 64 * PAGE_SIZE;
    expect(p.mmap(free, PAGE_SIZE, RW, ANON | MAP_FIXED_NOREPLACE)).toBe(free);
    expect(k.check()).toEqual([]);
  });

  it('allocates top-down and reuses a just-unmapped range of the same size', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 5 * PAGE_SIZE, RW, ANON);
    const b = p.mmap(0, 5 * PAGE_SIZE, RW, ANON);
    expect(b).toBe(a - 5 * PAGE_SIZE);
    expect(p.munmap(b, 5 * PAGE_SIZE)).toBe(0);
    expect(p.mmap(0, 5 * PAGE_SIZE, RW, ANON)).toBe(b);
    expect(p.munmap(a, 5 * PAGE_SIZE)).toBe(0);
    // A hint that is free is honoured.
    expect(p.mmap(a, 5 * PAGE_SIZE, RW, ANON)).toBe(a);
    expect(k.check()).toEqual([]);
  });

  it('PMD-aligns anonymous mappings whose length is a multiple of PMD_SIZE', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(0, 3 * PAGE_SIZE, RW, ANON);
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    expect(a % PMD_SIZE).toBe(0);
  });

  it('MAP_POPULATE prefaults: own pages for a private writable mapping, zero pages for a read-only one (populate_vma_page_range())', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON | MAP_POPULATE);
    for (let i = 0; i < 4; i++) expect(pteKind(k, p, a + i * PAGE_SIZE)).toBe('present');
    const r = p.mmap(0, 4 * PAGE_SIZE, PROT_READ, ANON | MAP_POPULATE);
    for (let i = 0; i < 4; i++) expect(pteKind(k, p, r + i * PAGE_SIZE)).toBe('zero');
    expect(k.check()).toEqual([]);
  });

  it('MAP_HUGETLB maps pool pages, unmaps them and gives them back', () => {
    const k = machine();
    const p = k.spawn();
    const free0 = k.core.hugetlb.free.length;
    const a = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    expect(a % PMD_SIZE).toBe(0);
    p.writeI32(a + 100, 7);
    expect(k.core.hugetlb.free.length).toBe(free0 - 1);
    expect(p.readI32(a + 100)).toBe(7);
    expect(p.munmap(a, PMD_SIZE)).toBe(0);
    expect(k.core.hugetlb.free.length).toBe(free0);
    const s = p.mmap(0, PMD_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB);
    p.writeI32(s, 9);
    const pid = p.fork();
    expect(k.task(pid)!.readI32(s)).toBe(9);
    k.task(pid)!.writeI32(s, 10);
    expect(p.readI32(s)).toBe(10);
    k.task(pid)!.exit(0);
    p.exit(0);
    expect(k.core.hugetlb.free.length).toBe(free0);
    expect(k.check()).toEqual([]);
  });
});

describe('munmap(2)', () => {
  it('validates alignment and length', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    expect(p.munmap(a + 1, PAGE_SIZE)).toBe(-EINVAL);
    expect(p.munmap(a, 0)).toBe(-EINVAL);
    expect(p.munmap(a, -5)).toBe(-EINVAL);
    // Unmapping a hole is not an error.
    expect(p.munmap(a + 100 * PAGE_SIZE, PAGE_SIZE)).toBe(0);
  });

  it('splits a VMA when unmapping its middle and keeps both sides', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 8; i++) p.writeI32(a + i * PAGE_SIZE, i + 1);
    expect(p.munmap(a + 2 * PAGE_SIZE, 3 * PAGE_SIZE)).toBe(0);
    expect(p.vmas.map((v) => [v.start - a, v.end - a])).toEqual([
      [0, 2 * PAGE_SIZE],
      [5 * PAGE_SIZE, 8 * PAGE_SIZE],
    ]);
    expect(p.readI32(a + PAGE_SIZE)).toBe(2);
    expect(p.readI32(a + 5 * PAGE_SIZE)).toBe(6);
    expect(p.mm.rss.MM_ANONPAGES).toBe(5);
    expect(() => p.readI32(a + 3 * PAGE_SIZE)).toThrow(/signal 11/);
    expect(k.check()).toEqual([]);
  });

  it('unmapping part of a THP splits the huge PMD and keeps the rest mapped', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE);
    for (let off = 0; off < 2 * PMD_SIZE; off += PAGE_SIZE) p.writeI32(a + off, off);
    expect(pmdKind(k, p, a)).toBe('huge');
    const splits = k.core.vmstat.thp_split_pmd;
    expect(p.munmap(a + PMD_SIZE / 2, PMD_SIZE / 4)).toBe(0);
    expect(k.core.vmstat.thp_split_pmd).toBe(splits + 1);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge');
    expect(p.mm.rss.MM_ANONPAGES).toBe(2 * HPAGE_PMD_NR - HPAGE_PMD_NR / 4);
    expect(p.readI32(a + PMD_SIZE / 2 - PAGE_SIZE)).toBe(PMD_SIZE / 2 - PAGE_SIZE);
    expect(p.readI32(a + (3 * PMD_SIZE) / 4)).toBe((3 * PMD_SIZE) / 4);
    expect(k.core.vmstat.thp_deferred_split_page).toBe(1);
    // A whole, aligned PMD goes without a split.
    expect(p.munmap(a + PMD_SIZE, PMD_SIZE)).toBe(0);
    expect(k.core.vmstat.thp_split_pmd).toBe(splits + 1);
    expect(k.check()).toEqual([]);
    p.exit(0);
    expect(k.check()).toEqual([]);
  });

  it('unmapping a range across several VMAs removes all of them and frees page tables', () => {
    const k = machine();
    const p = k.spawn();
    const tables0 = p.mm.pgtablesBytes;
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const b = p.mmap(a - 4 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_READ, ANON);
    expect(b).toBe(a - 4 * PAGE_SIZE);
    p.writeI32(a, 1);
    p.readI32(b);
    expect(p.mm.pgtablesBytes).toBeGreaterThan(tables0);
    expect(p.munmap(b, 8 * PAGE_SIZE)).toBe(0);
    expect(p.vmas.length).toBe(0);
    expect(p.mm.pgtablesBytes).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('free_pgtables() frees only the tables inside the gap: an emptied PTE table the rest of the VMA covers stays', () => {
    // unmap_region() passes prev->vm_end and next->vm_start as floor and ceiling; a table that
    // also covers a remaining VMA is kept even when it maps nothing (with the mmap_lock
    // downgraded a fault there may be about to fill it).
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 16 * PAGE_SIZE, RW, ANON);
    p.writeI32(a, 1);
    const tables = p.mm.pgtablesBytes;
    expect(pteKind(k, p, a)).not.toBe('none');
    expect(p.munmap(a, PAGE_SIZE)).toBe(0);
    expect(p.mm.pgtablesBytes).toBe(tables);
    expect(pteTableOf(k.core, p.mm, a + PAGE_SIZE, false)).toBeGreaterThanOrEqual(0);
    expect(k.check()).toEqual([]);
    // The last VMA of the range gone, the gap is the whole address space: every table goes.
    expect(p.munmap(a + PAGE_SIZE, 15 * PAGE_SIZE)).toBe(0);
    expect(p.mm.pgtablesBytes).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('a shared anonymous mapping split by munmap keeps its pages', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * PAGE_SIZE, 100 + i);
    expect(p.munmap(a + 3 * PAGE_SIZE, PAGE_SIZE)).toBe(0);
    expect(k.check()).toEqual([]);
    expect(p.readI32(a)).toBe(100);
    expect(p.readI32(a + 2 * PAGE_SIZE)).toBe(102);
    const pid = p.fork();
    const c = k.task(pid)!;
    c.writeI32(a + PAGE_SIZE, -1);
    expect(p.readI32(a + PAGE_SIZE)).toBe(-1);
    expect(k.check()).toEqual([]);
  });

  it('tmpfs files: shared mappings see pwrite data and vice versa', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/data', O_RDWR | O_CREAT);
    expect(p.ftruncate(fd, 3 * PAGE_SIZE)).toBe(0);
    const a = p.mmap(0, 3 * PAGE_SIZE, RW, MAP_SHARED, fd);
    p.writeI32(a + PAGE_SIZE, 77);
    const buf = new Uint8Array(4);
    expect(p.pread(fd, buf, 4, PAGE_SIZE)).toBe(4);
    expect(new DataView(buf.buffer).getInt32(0, true)).toBe(77);
    expect(p.pwrite(fd, new Uint8Array([1, 0, 0, 0]), 4, 2 * PAGE_SIZE)).toBe(4);
    expect(p.readI32(a + 2 * PAGE_SIZE)).toBe(1);
    expect(p.close(fd)).toBe(0);
    expect(p.readI32(a + PAGE_SIZE)).toBe(77);
    expect(k.check()).toEqual([]);
  });
});
