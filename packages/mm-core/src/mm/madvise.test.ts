import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  ENOMEM,
  HPAGE_PMD_NR,
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CREAT,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { SignalDelivered } from '../errors.js';
import { installMmCoreChecker } from '../invariants.js';
import { Kernel } from '../kernel.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { hugetlbFreePages } from './hugetlb.js';
import { VM_HUGEPAGE, VM_NOHUGEPAGE } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** A PMD-aligned private anonymous region of `n` PMDs. */
function thpRegion(p: Process, n = 1): number {
  const a = p.mmap(0, n * PMD_SIZE, RW, ANON);
  expect(a % PMD_SIZE).toBe(0);
  return a;
}

describe('madvise(2)', () => {
  it('validates advice, alignment and holes', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    expect(p.madvise(a, PAGE_SIZE, 12345)).toBe(-EINVAL);
    expect(p.madvise(a + 1, PAGE_SIZE, MADV_NORMAL)).toBe(-EINVAL);
    expect(p.madvise(a, -1, MADV_NORMAL)).toBe(-EINVAL);
    expect(p.madvise(a, 0, MADV_DONTNEED)).toBe(0);
    expect(p.madvise(a + 64 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)).toBe(-ENOMEM);
    p.writeI32(a, 1);
    // Partly unmapped: applied to the mapped part, then -ENOMEM.
    expect(p.madvise(a, 8 * PAGE_SIZE, MADV_DONTNEED)).toBe(-ENOMEM);
    expect(p.readI32(a)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('MADV_HUGEPAGE / MADV_NOHUGEPAGE set VMA flags and decide THP faults', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p, 2);
    p.writeI32(a, 1);
    expect(pmdKind(k, p, a)).toBe('table'); // THP mode "madvise" without the advice
    expect(p.madvise(a + PMD_SIZE, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(p.vmas.length).toBe(2);
    expect(p.vmas[1].flags & VM_HUGEPAGE).toBe(VM_HUGEPAGE);
    p.writeI32(a + PMD_SIZE, 1);
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge');
    expect(p.madvise(a + PMD_SIZE, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
    expect(p.vmas[1].flags & (VM_HUGEPAGE | VM_NOHUGEPAGE)).toBe(VM_NOHUGEPAGE);
    // The existing THP stays; the advice only affects new faults.
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge');
    expect(k.check()).toEqual([]);
  });

  it('MADV_NOHUGEPAGE beats THP mode "always"', () => {
    const k = new Kernel({ ramBytes: 256 << 20, thp: 'always', checkInvariants: true });
    installMmCoreChecker(k);
    const p = k.spawn();
    const a = thpRegion(p, 2);
    expect(p.madvise(a, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
    p.writeI32(a, 1);
    p.writeI32(a + PMD_SIZE, 1);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge');
    expect(k.check()).toEqual([]);
  });

  it('MADV_DONTNEED zaps private anonymous memory (reads back zero) and keeps shared memory', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const s = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    for (let i = 0; i < 4; i++) {
      p.writeI32(a + i * PAGE_SIZE, i + 1);
      p.writeI32(s + i * PAGE_SIZE, i + 1);
    }
    expect(p.madvise(a + PAGE_SIZE, 2 * PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    expect(p.madvise(s, 4 * PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    expect([0, 1, 2, 3].map((i) => p.readI32(a + i * PAGE_SIZE))).toEqual([1, 0, 0, 4]);
    expect([0, 1, 2, 3].map((i) => p.readI32(s + i * PAGE_SIZE))).toEqual([1, 2, 3, 4]);
    expect(k.check()).toEqual([]);
  });

  it('MADV_DONTNEED on a private file mapping drops the private copies', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/f', O_RDWR | O_CREAT);
    p.pwrite(fd, new Uint8Array([7, 0, 0, 0]), 4, 0);
    p.ftruncate(fd, PAGE_SIZE);
    const a = p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE, fd);
    p.writeI32(a, 9);
    expect(p.madvise(a, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    expect(p.readI32(a)).toBe(7);
    expect(k.check()).toEqual([]);
  });

  it('MADV_DONTNEED of a whole THP frees it; of part of one splits the PMD', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p, 2);
    p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE);
    p.writeI32(a, 1);
    p.writeI32(a + PMD_SIZE + PAGE_SIZE, 2);
    const free0 = k.core.zone.nrFree;
    expect(p.madvise(a, PMD_SIZE, MADV_DONTNEED)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('none');
    // The THP and its deposited table are both freed.
    expect(k.core.zone.nrFree).toBe(free0 + HPAGE_PMD_NR + 1);
    expect(p.madvise(a + PMD_SIZE, PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('table');
    expect(p.readI32(a + PMD_SIZE + PAGE_SIZE)).toBe(2);
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR - 1);
    expect(k.check()).toEqual([]);
  });

  it('MADV_FREE is accepted on private anonymous memory only and keeps data until reclaim', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    p.writeI32(a + 4 * PAGE_SIZE, 5);
    expect(p.madvise(a, PMD_SIZE, MADV_FREE)).toBe(0);
    expect(p.readI32(a + 4 * PAGE_SIZE)).toBe(5);
    const s = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    expect(p.madvise(s, PAGE_SIZE, MADV_FREE)).toBe(-EINVAL);
    expect(k.check()).toEqual([]);
  });

  it('MADV_COLLAPSE turns 4 KiB pages into one THP with the same data', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    for (let i = 0; i < HPAGE_PMD_NR; i += 3) p.writeI32(a + i * PAGE_SIZE, i + 1);
    p.readI32(a + PAGE_SIZE); // a zero-page PTE
    expect(pmdKind(k, p, a)).toBe('table');
    const coll = k.core.vmstat.thp_collapse_alloc;
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(k.core.vmstat.thp_collapse_alloc).toBe(coll + 1);
    expect(pmdKind(k, p, a)).toBe('huge');
    for (let i = 0; i < HPAGE_PMD_NR; i++)
      if (p.readI32(a + i * PAGE_SIZE) !== (i % 3 === 0 ? i + 1 : 0)) throw new Error(`data lost at ${i}`);
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    p.writeI32(a + PAGE_SIZE, 123);
    expect(p.readI32(a + PAGE_SIZE)).toBe(123);
    expect(k.check()).toEqual([]);
  });

  it('MADV_COLLAPSE refuses NOHUGEPAGE, shared and too-small ranges', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    p.writeI32(a, 1);
    p.madvise(a, PMD_SIZE, MADV_NOHUGEPAGE);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(-EINVAL);
    const s = p.mmap(0, PMD_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    expect(p.madvise(s, PMD_SIZE, MADV_COLLAPSE)).toBe(-EINVAL);
    expect(k.check()).toEqual([]);
  });

  it('MADV_COLLAPSE of a PROT_NONE range keeps it inaccessible', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    p.writeI32(a, 1);
    expect(p.mprotect(a, PMD_SIZE, PROT_NONE)).toBe(0);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(k.check()).toEqual([]);
    expect(() => p.readI32(a)).toThrow(SignalDelivered);
  });

  it('MADV_COLLAPSE of a read-only range maps the THP read-only', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    p.writeI32(a, 1);
    expect(p.mprotect(a, PMD_SIZE, PROT_READ)).toBe(0);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(k.check()).toEqual([]);
    expect(p.readI32(a)).toBe(1);
    expect(() => p.writeI32(a, 2)).toThrow(SignalDelivered);
  });
});

describe('madvise(2) on hugetlb (madvise_dontneed_free_valid_vma())', () => {
  it('MADV_DONTNEED aligns the end down to the huge page size and needs an aligned start', () => {
    const k = machine();
    const p = k.spawn();
    const h = p.mmap(0, 2 * PMD_SIZE, RW, ANON | MAP_HUGETLB);
    expect(h % PMD_SIZE).toBe(0);
    p.writeI32(h, 1);
    p.writeI32(h + PMD_SIZE, 2);
    const free = hugetlbFreePages(k.core);
    // An unaligned start: madvise_dontneed_free_valid_vma() is false, -EINVAL, nothing zapped.
    expect(p.madvise(h + PAGE_SIZE, PMD_SIZE, MADV_DONTNEED)).toBe(-EINVAL);
    expect(p.madvise(h + PMD_SIZE / 2, PMD_SIZE, MADV_DONTNEED)).toBe(-EINVAL);
    expect(hugetlbFreePages(k.core)).toBe(free);
    // Less than one huge page from an aligned start: the end aligns down to the start, 0, nothing zapped.
    expect(p.madvise(h, PMD_SIZE / 2, MADV_DONTNEED)).toBe(0);
    expect(pmdKind(k, p, h)).toBe('huge');
    expect(p.readI32(h)).toBe(1);
    // 1.5 huge pages from the start: only the first huge page is zapped (back to the pool).
    expect(p.madvise(h, PMD_SIZE + PMD_SIZE / 2, MADV_DONTNEED)).toBe(0);
    expect(pmdKind(k, p, h)).toBe('none');
    expect(pmdKind(k, p, h + PMD_SIZE)).toBe('huge');
    expect(hugetlbFreePages(k.core)).toBe(free + 1);
    expect(k.check()).toEqual([]);
    expect(p.readI32(h)).toBe(0); // a fresh zeroed huge page
    expect(p.readI32(h + PMD_SIZE)).toBe(2);
    // The whole mapping, with an end past it.
    expect(p.madvise(h, 4 * PMD_SIZE, MADV_DONTNEED)).toBe(-ENOMEM);
    expect(hugetlbFreePages(k.core)).toBe(free + 2);
    expect(k.check()).toEqual([]);
  });

  it('a range starting in a normal VMA zaps the hugetlb VMA that follows up to its aligned-down end', () => {
    const k = machine();
    const p = k.spawn();
    const h = p.mmap(0, 2 * PMD_SIZE, RW, ANON | MAP_HUGETLB);
    const a = p.mmap(h - 2 * PAGE_SIZE, 2 * PAGE_SIZE, RW, ANON | MAP_FIXED_NOREPLACE);
    expect(a).toBe(h - 2 * PAGE_SIZE);
    p.writeI32(a, 7);
    p.writeI32(h, 1);
    p.writeI32(h + PMD_SIZE, 2);
    expect(p.madvise(a, 2 * PAGE_SIZE + PMD_SIZE + PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    expect(p.readI32(a)).toBe(0);
    expect(p.readI32(h)).toBe(0);
    expect(p.readI32(h + PMD_SIZE)).toBe(2);
    expect(k.check()).toEqual([]);
  });

  it('MADV_FREE on hugetlb is -EINVAL (madvise_dontneed_free_valid_vma() takes only MADV_DONTNEED)', () => {
    const k = machine();
    const p = k.spawn();
    const h = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    p.writeI32(h, 1);
    expect(p.madvise(h, PMD_SIZE, MADV_FREE)).toBe(-EINVAL);
    expect(p.readI32(h)).toBe(1);
    expect(k.check()).toEqual([]);
  });
});
