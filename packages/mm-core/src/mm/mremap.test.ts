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

describe('mremap(2) across several VMAs (remap_move(), Linux 6.17+)', () => {
  const P = PAGE_SIZE;
  const X = 0x4000_0000;
  const Z = 0x6000_0000;
  const MOVE = MREMAP_MAYMOVE | MREMAP_FIXED;
  const spans = (p: Process, lo: number, hi: number) =>
    p.mm.vmas.filter((v) => v.end > lo && v.start < hi).map((v) => [v.start, v.end, v.flags & 7]);

  /** Three VMAs told apart by their protections: [X, X+4P) RW, [X+4P, X+8P) R, [X+8P, X+12P) RW. */
  function three(): { k: ReturnType<typeof machine>; p: Process } {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 12 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    fill(p, X, 12, 100);
    expect(p.mprotect(X + 4 * P, 4 * P, PROT_READ)).toBe(0);
    expect(spans(p, X, X + 12 * P)).toHaveLength(3);
    return { k, p };
  }

  it('moves a range spanning three VMAs, splitting the first and the last', () => {
    const { k, p } = three();
    expect(p.mremap(X + 2 * P, 8 * P, 8 * P, MOVE, Z)).toBe(Z);
    expect(spans(p, Z, Z + 8 * P)).toEqual([
      [Z, Z + 2 * P, 3],
      [Z + 2 * P, Z + 6 * P, 1],
      [Z + 6 * P, Z + 8 * P, 3],
    ]);
    expect(spans(p, X, X + 12 * P)).toEqual([
      [X, X + 2 * P, 3],
      [X + 10 * P, X + 12 * P, 3],
    ]);
    expectFilled(p, Z, 8, 102);
    expectFilled(p, X, 2, 100);
    expectFilled(p, X + 10 * P, 2, 110);
    expect(k.check()).toEqual([]);
  });

  it('keeps the gaps between the VMAs, and what is mapped in the gaps of the destination', () => {
    const k = machine();
    const p = k.spawn();
    const fix = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    p.mmap(X, 2 * P, RW, fix);
    p.mmap(X + 4 * P, 2 * P, RW, fix);
    fill(p, X, 2, 1);
    fill(p, X + 4 * P, 2, 5);
    // Something mapped where the gap lands: only each piece's destination is unmapped first.
    p.mmap(Z + 2 * P, 2 * P, PROT_READ, fix);
    expect(p.mremap(X, 7 * P, 7 * P, MOVE, Z)).toBe(Z);
    expect(spans(p, Z, Z + 8 * P)).toEqual([
      [Z, Z + 2 * P, 3],
      [Z + 2 * P, Z + 4 * P, 1],
      [Z + 4 * P, Z + 6 * P, 3],
    ]);
    expect(spans(p, X, X + 8 * P)).toEqual([]);
    expectFilled(p, Z, 2, 1);
    expectFilled(p, Z + 4 * P, 2, 5);
    expect(k.check()).toEqual([]);
  });

  it('with MREMAP_DONTUNMAP: every piece moves, the source VMAs stay (empty)', () => {
    const { k, p } = three();
    expect(p.mremap(X, 12 * P, 12 * P, MOVE | MREMAP_DONTUNMAP, Z)).toBe(Z);
    expectFilled(p, Z, 12, 100);
    expect(spans(p, X, X + 12 * P)).toHaveLength(3);
    expect(p.readI32(X)).toBe(0);
    expect(p.readI32(X + 9 * P)).toBe(0);
    // dontunmap_complete(): a wholly moved VMA left its anon_vma.
    expect(p.mm.vmaLookup(X)!.anonVma).toBeNull();
    expect(k.check()).toEqual([]);
  });

  it('with MREMAP_DONTUNMAP and the range ending inside the first and last VMAs: the pieces move, no source VMA is split', () => {
    // remap_move() -> mremap_to() -> move_vma() per VMA: with MREMAP_DONTUNMAP nothing is
    // unmapped, so the first and last VMAs keep their ranges (only the moved pages leave them);
    // dontunmap_complete() drops the anon_vma only of the wholly moved middle VMA.
    const { k, p } = three();
    const before = spans(p, X, X + 12 * P);
    expect(p.mremap(X + 2 * P, 8 * P, 8 * P, MOVE | MREMAP_DONTUNMAP, Z)).toBe(Z);
    expect(spans(p, X, X + 12 * P)).toEqual(before);
    expect(spans(p, Z, Z + 8 * P)).toEqual([
      [Z, Z + 2 * P, 3],
      [Z + 2 * P, Z + 6 * P, 1],
      [Z + 6 * P, Z + 8 * P, 3],
    ]);
    expectFilled(p, Z, 8, 102);
    expectFilled(p, X, 2, 100);
    expectFilled(p, X + 10 * P, 2, 110);
    for (const i of [2, 3, 4, 7, 8, 9]) expect(p.readI32(X + i * P)).toBe(0);
    expect(p.mm.vmaLookup(X)!.anonVma).not.toBeNull();
    expect(p.mm.vmaLookup(X + 4 * P)!.anonVma).toBeNull();
    expect(p.mm.vmaLookup(X + 8 * P)!.anonVma).not.toBeNull();
    expect(k.check()).toEqual([]);
  });

  it('refuses a range that starts in a hole (-EFAULT) and changes nothing', () => {
    const { k, p } = three();
    p.munmap(X, P);
    const before = JSON.stringify(spans(p, 0, 2 ** 47));
    expect(p.mremap(X, 8 * P, 8 * P, MOVE, Z)).toBe(-EFAULT);
    expect(p.mremap(X - 4 * P, 4 * P, 4 * P, MOVE, Z)).toBe(-EFAULT);
    expect(JSON.stringify(spans(p, 0, 2 ** 47))).toBe(before);
    expect(k.check()).toEqual([]);
  });

  it('resizing across VMAs is not allowed (check_prep_vma(): -EFAULT)', () => {
    const { p } = three();
    expect(p.mremap(X, 8 * P, 10 * P, MOVE, Z)).toBe(-EFAULT);
    expect(p.mremap(X, 8 * P, 9 * P, MREMAP_MAYMOVE)).toBe(-EFAULT);
    // Without MREMAP_FIXED a same-size move goes through check_prep_vma() too.
    expect(p.mremap(X, 8 * P, 8 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, Z)).toBe(-EFAULT);
    expect(spans(p, Z, Z + 12 * P)).toEqual([]);
  });

  it('shrinking a range that spans several VMAs and a hole unmaps all of its tail (shrink_vma())', () => {
    const { k, p } = three();
    p.munmap(X + 6 * P, P);
    expect(p.mremap(X + P, 10 * P, 2 * P, 0)).toBe(X + P);
    expect(spans(p, X, X + 12 * P)).toEqual([
      [X, X + 3 * P, 3],
      [X + 11 * P, X + 12 * P, 3],
    ]);
    expectFilled(p, X, 3, 100);
    // A shrink that moves: the tail goes, the kept part (one VMA) moves.
    expect(p.mremap(X, 12 * P, P, MREMAP_MAYMOVE | MREMAP_FIXED, Z)).toBe(Z);
    expect(spans(p, X, X + 12 * P)).toEqual([]);
    expectFilled(p, Z, 1, 100);
    expect(k.check()).toEqual([]);
  });
});
