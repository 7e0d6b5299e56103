import { describe, expect, it } from 'vitest';
import {
  EFAULT,
  EINVAL,
  ENOMEM,
  HPAGE_PMD_NR,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function fill(p: Process, a: number, pages: number, seed: number): void {
  for (let i = 0; i < pages; i++) p.writeI32(a + i * PAGE_SIZE, seed + i);
}

function expectFilled(p: Process, a: number, pages: number, seed: number): void {
  for (let i = 0; i < pages; i++) {
    const v = p.readI32(a + i * PAGE_SIZE);
    if (v !== seed + i) throw new Error(`page ${i}: ${v} != ${seed + i}`);
  }
}

describe('mremap(2)', () => {
  it('validates flags and ranges', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    expect(p.mremap(a, PAGE_SIZE, PAGE_SIZE, 0x80)).toBe(-EINVAL);
    expect(p.mremap(a, PAGE_SIZE, PAGE_SIZE, MREMAP_FIXED, a + PMD_SIZE)).toBe(-EINVAL);
    expect(p.mremap(a, PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP)).toBe(-EINVAL);
    expect(p.mremap(a + 1, PAGE_SIZE, PAGE_SIZE, 0)).toBe(-EINVAL);
    expect(p.mremap(a, PAGE_SIZE, 0, 0)).toBe(-EINVAL);
    expect(p.mremap(a + 64 * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, 0)).toBe(-EFAULT);
    // check_prep_vma(): a same-size call without MREMAP_FIXED/DONTUNMAP checks only that addr is
    // mapped (the range may run past the VMA) and returns addr.
    expect(p.mremap(a, 8 * PAGE_SIZE, 8 * PAGE_SIZE, 0)).toBe(a);
    // Overlapping FIXED move.
    expect(p.mremap(a, 2 * PAGE_SIZE, 2 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, a + PAGE_SIZE)).toBe(
      -EINVAL,
    );
  });

  it('shrinks in place and grows in place when the space is free', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    fill(p, a, 8, 1);
    expect(p.mremap(a, 8 * PAGE_SIZE, 4 * PAGE_SIZE, 0)).toBe(a);
    expect(p.vmas[0].end).toBe(a + 4 * PAGE_SIZE);
    expect(p.mm.rss.MM_ANONPAGES).toBe(4);
    expect(p.mremap(a, 4 * PAGE_SIZE, 6 * PAGE_SIZE, 0)).toBe(a);
    expect(p.readI32(a + 5 * PAGE_SIZE)).toBe(0);
    expectFilled(p, a, 4, 1);
    expect(k.check()).toEqual([]);
  });

  it('cannot grow into a neighbour without MREMAP_MAYMOVE; moves with it', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.mmap(a + 4 * PAGE_SIZE, PAGE_SIZE, RW, ANON | MAP_FIXED);
    fill(p, a, 4, 10);
    expect(p.mremap(a, 4 * PAGE_SIZE, 8 * PAGE_SIZE, 0)).toBe(-ENOMEM);
    const b = p.mremap(a, 4 * PAGE_SIZE, 8 * PAGE_SIZE, MREMAP_MAYMOVE);
    expect(b).toBeGreaterThan(0);
    expect(b).not.toBe(a);
    expectFilled(p, b, 4, 10);
    expect(p.readI32(b + 6 * PAGE_SIZE)).toBe(0);
    expect(() => p.readI32(a)).toThrow(/signal 11/);
    expect(k.check()).toEqual([]);
  });

  it('MREMAP_FIXED moves to the given address, replacing what was there', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const t = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    fill(p, a, 4, 100);
    fill(p, t, 4, 200);
    expect(p.mremap(a, 4 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, t)).toBe(t);
    expectFilled(p, t, 4, 100);
    expect(p.mm.rss.MM_ANONPAGES).toBe(4);
    expect(p.vmas.length).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('MREMAP_DONTUNMAP leaves the old range mapped but empty', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    fill(p, a, 4, 7);
    const b = p.mremap(a, 4 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    expect(b).toBeGreaterThan(0);
    expectFilled(p, b, 4, 7);
    expect(p.readI32(a)).toBe(0);
    expect(p.vmas.length).toBe(2);
    expect(k.check()).toEqual([]);
    // Since Linux 5.13 shared mappings may use DONTUNMAP too: the old range refaults from the
    // page cache.
    const s = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.writeI32(s, 66);
    const s2 = p.mremap(s, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    expect(s2).toBeGreaterThan(0);
    expect(p.readI32(s2)).toBe(66);
    expect(p.readI32(s)).toBe(66);
    expect(k.check()).toEqual([]);
  });

  it('moves an aligned THP whole (no split) with its deposited table', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    fill(p, a, HPAGE_PMD_NR, 1000);
    const t = p.mmap(0, PMD_SIZE, RW, ANON);
    expect(t % PMD_SIZE).toBe(0);
    const splits = k.core.vmstat.thp_split_pmd;
    expect(p.mremap(a, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, t)).toBe(t);
    expect(k.core.vmstat.thp_split_pmd).toBe(splits);
    expect(pmdKind(k, p, t)).toBe('huge');
    expect(p.mm.deposits.has(t)).toBe(true);
    expect(p.mm.deposits.has(a)).toBe(false);
    expectFilled(p, t, HPAGE_PMD_NR, 1000);
    expect(k.check()).toEqual([]);
  });

  it('an aligned THP moves whole onto a range that once held a page table', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    fill(p, a, 4, 5);
    // A small mapping faulted in the destination's 2 MiB leaves a PTE table there ...
    const t = p.mmap(0, PMD_SIZE, RW, ANON);
    const small = p.mmap(t, PAGE_SIZE, RW, ANON | MAP_FIXED);
    p.writeI32(small, 1);
    // ... that MADV_DONTNEED does not free.
    p.madvise(t, PAGE_SIZE, 4);
    expect(p.mremap(a, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, t)).toBe(t);
    expectFilled(p, t, 4, 5);
    expect(k.check()).toEqual([]);
  });

  it('an unaligned move splits the THP and moves it page by page', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    fill(p, a, HPAGE_PMD_NR, 3);
    const t = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    expect(t % PMD_SIZE).toBe(0);
    const dst = t + PAGE_SIZE;
    const splits = k.core.vmstat.thp_split_pmd;
    expect(p.mremap(a, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, dst)).toBe(dst);
    expect(k.core.vmstat.thp_split_pmd).toBe(splits + 1);
    expectFilled(p, dst, HPAGE_PMD_NR, 3);
    expect(k.check()).toEqual([]);
  });

  it('MREMAP_FIXED into a lower part of the same VMA splits a THP moved to an unaligned address', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PMD_SIZE, RW, ANON);
    p.madvise(a, 4 * PMD_SIZE, MADV_HUGEPAGE);
    fill(p, a + 2 * PMD_SIZE, HPAGE_PMD_NR, 9);
    expect(pmdKind(k, p, a + 2 * PMD_SIZE)).toBe('huge');
    // Unmapping the destination splits the VMA: the source now lives in the upper piece.
    const dst = a + PAGE_SIZE;
    expect(p.mremap(a + 2 * PMD_SIZE, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, dst)).toBe(dst);
    expectFilled(p, dst, HPAGE_PMD_NR, 9);
    expect(k.check()).toEqual([]);
  });

  it('moving half of a THP keeps both halves correct', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    fill(p, a, HPAGE_PMD_NR, 50);
    const half = PMD_SIZE / 2;
    const b = p.mremap(a + half, half, half, MREMAP_MAYMOVE);
    expect(b).toBeGreaterThan(0);
    expectFilled(p, a, HPAGE_PMD_NR / 2, 50);
    expectFilled(p, b, HPAGE_PMD_NR / 2, 50 + HPAGE_PMD_NR / 2);
    expect(k.check()).toEqual([]);
    // Moved anonymous pages stay reachable through rmap; fork + COW still work.
    const c = k.task(p.fork())!;
    c.writeI32(b, -1);
    expect(p.readI32(b)).toBe(50 + HPAGE_PMD_NR / 2);
    expect(k.check()).toEqual([]);
  });

  it('moves shared file mappings too', () => {
    const k = machine();
    const p = k.spawn();
    const s = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.writeI32(s + PAGE_SIZE, 31);
    const c = k.task(p.fork())!;
    const b = p.mremap(s, 2 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_MAYMOVE);
    expect(p.readI32(b + PAGE_SIZE)).toBe(31);
    c.writeI32(s + PAGE_SIZE, 32);
    expect(p.readI32(b + PAGE_SIZE)).toBe(32);
    expect(k.check()).toEqual([]);
  });
});
