/**
 * VMA merging as Linux v6.19 does it (mm/vma.c), one test per rule, each naming the kernel
 * function the behaviour comes from. Layouts are read from the model's VMA list and, where
 * noted, from /proc/self/maps.
 */
import { describe, expect, it } from 'vitest';
import {
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import type { Process } from '../process.js';
import { machine } from '../testing/helpers.js';
import { mergeableNeighbours } from '../testing/layout.js';
import { VM_IO, VM_SOFTDIRTY } from './types.js';
import { splitVma } from './vma.js';
import { vmaMergeNewRange, vmasMergeable, vmgMmapState } from './vma-merge.js';

const P = PAGE_SIZE;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const FIX = ANON | MAP_FIXED;
const X = 0x4000_0000;
const Y = 0x5000_0000;
const Z = 0x6000_0000;

/** The VMAs of p overlapping [lo, hi), as [start, end] pairs. */
function layout(p: Process, lo = X, hi = X + 64 * P): [number, number][] {
  return p.mm.vmas.filter((v) => v.end > lo && v.start < hi).map((v) => [v.start, v.end]);
}

function fill(p: Process, a: number, pages: number, seed: number): void {
  for (let i = 0; i < pages; i++) p.writeI32(a + i * P, seed + i);
}

function expectFilled(p: Process, a: number, pages: number, seed: number): void {
  for (let i = 0; i < pages; i++) expect(p.readI32(a + i * P)).toBe(seed + i);
}

/** The text of /proc/self/maps as p reads it. */
function procMaps(p: Process): string {
  const fd = p.open('/proc/self/maps', O_RDONLY);
  const buf = new Uint8Array(1 << 16);
  const n = p.pread(fd, buf, buf.length, 0);
  p.close(fd);
  return new TextDecoder().decode(buf.subarray(0, n));
}

function clean(k: Kernel, p: Process): void {
  expect(k.check()).toEqual([]);
  expect(mergeableNeighbours(p.mm)).toEqual([]);
}

describe('vma_merge_new_range(): new mappings (__mmap_region())', () => {
  it('two adjacent anonymous RW mmaps are one VMA, one line of /proc/self/maps', () => {
    const k = machine();
    const p = k.spawn();
    expect(p.mmap(X, 4 * P, RW, FIX)).toBe(X);
    expect(p.mmap(X + 4 * P, 4 * P, RW, FIX)).toBe(X + 4 * P);
    expect(layout(p)).toEqual([[X, X + 8 * P]]);
    const lines = procMaps(p).split('\n');
    expect(lines).toContain(`${X.toString(16)}-${(X + 8 * P).toString(16)} rw-p 00000000 00:00 0 `);
    expect(lines.filter((l) => l.startsWith(X.toString(16)))).toHaveLength(1);
    // The top-down allocator places the next mapping right below: it joins too.
    const below = p.mmap(0, 2 * P, RW, ANON);
    const above = p.mmap(0, 2 * P, RW, ANON);
    expect(above).toBe(below - 2 * P);
    expect(layout(p, above, below + 2 * P)).toEqual([[above, below + 2 * P]]);
    clean(k, p);
  });

  it('a mapping filling the gap between two compatible VMAs joins both (prev grows, next goes)', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 2 * P, RW, FIX);
    p.mmap(X + 4 * P, 2 * P, RW, FIX);
    fill(p, X, 2, 10);
    expect(layout(p)).toHaveLength(2);
    p.mmap(X + 2 * P, 2 * P, RW, FIX);
    expect(layout(p)).toEqual([[X, X + 6 * P]]);
    expectFilled(p, X, 2, 10);
    // MAP_FIXED over the middle: detached first, the new range then joins both sides again.
    expect(p.mmap(X + 2 * P, P, RW, FIX)).toBe(X + 2 * P);
    expect(layout(p)).toEqual([[X, X + 6 * P]]);
    clean(k, p);
  });

  it('can_vma_merge_right(): prev and next with different anon_vmas: only prev grows', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 2 * P, RW, FIX);
    p.mmap(X + 4 * P, 2 * P, RW, FIX);
    fill(p, X, 2, 1);
    fill(p, X + 4 * P, 2, 5);
    expect(p.mm.vmas.find((v) => v.start === X)!.anonVma).not.toBe(
      p.mm.vmas.find((v) => v.start === X + 4 * P)!.anonVma,
    );
    p.mmap(X + 2 * P, 2 * P, RW, FIX);
    expect(layout(p)).toEqual([
      [X, X + 4 * P],
      [X + 4 * P, X + 6 * P],
    ]);
    expectFilled(p, X, 2, 1);
    expectFilled(p, X + 4 * P, 2, 5);
    clean(k, p);
  });

  it('is_mergeable_vma(): other flags or another open file stay apart; the same file at linear offsets merges', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 2 * P, RW, FIX);
    p.mmap(X + 2 * P, 2 * P, PROT_READ, FIX);
    expect(layout(p)).toHaveLength(2);
    const fd = p.open('/tmp/merge', O_CREAT | O_RDWR);
    expect(p.ftruncate(fd, 32 * P)).toBe(0);
    p.mmap(Y, 4 * P, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    p.mmap(Y + 4 * P, 4 * P, RW, MAP_SHARED | MAP_FIXED, fd, 4 * P);
    expect(layout(p, Y, Y + 64 * P)).toEqual([[Y, Y + 8 * P]]);
    // can_vma_merge_after(): the offset must continue prev's.
    p.mmap(Y + 8 * P, 4 * P, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    expect(layout(p, Y, Y + 64 * P)).toHaveLength(2);
    // Another open() of the same file is another struct file: vm_file differs.
    const fd2 = p.open('/tmp/merge', O_RDWR);
    p.mmap(Z, 4 * P, RW, MAP_SHARED | MAP_FIXED, fd, 0);
    p.mmap(Z + 4 * P, 4 * P, RW, MAP_SHARED | MAP_FIXED, fd2, 4 * P);
    expect(layout(p, Z, Z + 64 * P)).toHaveLength(2);
    // Shared anonymous mappings each have their own shmem file: never merged.
    p.mmap(Z + 16 * P, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED);
    p.mmap(Z + 18 * P, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED);
    expect(layout(p, Z + 16 * P, Z + 20 * P)).toHaveLength(2);
    clean(k, p);
  });

  it('is_mergeable_vma(): VM_SOFTDIRTY is ignored', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 2 * P, RW, FIX);
    p.mm.vmaLookup(X)!.flags |= VM_SOFTDIRTY;
    p.mmap(X + 2 * P, 2 * P, RW, FIX);
    expect(layout(p)).toEqual([[X, X + 4 * P]]);
  });

  it('VM_SPECIAL ranges never merge', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 2 * P, RW, FIX);
    const v = p.mm.vmaLookup(X)!;
    v.flags |= VM_IO;
    const vmg = vmgMmapState(p.mm, X + 2 * P, X + 4 * P, v.flags, (X + 2 * P) / P, null, null);
    expect(k.core.sched.runSync(vmaMergeNewRange(k.core, vmg), 'test')).toBeNull();
    expect(vmg.state).toBe('nomerge');
    expect(layout(p)).toEqual([[X, X + 2 * P]]);
  });
});

describe('vma_merge_existing_range(): mprotect() making neighbours identical', () => {
  for (const faulted of [false, true]) {
    it(`restoring the middle's protection merges prev, middle and next (${faulted ? 'faulted' : 'unfaulted'})`, () => {
      const k = machine();
      const p = k.spawn();
      p.mmap(X, 6 * P, RW, FIX);
      if (faulted) fill(p, X, 6, 100);
      expect(p.mprotect(X + 2 * P, 2 * P, PROT_READ)).toBe(0);
      expect(layout(p)).toHaveLength(3);
      expect(p.mprotect(X + 2 * P, 2 * P, RW)).toBe(0);
      expect(layout(p)).toEqual([[X, X + 6 * P]]);
      if (faulted) expectFilled(p, X, 6, 100);
      clean(k, p);
    });
  }

  it('left side: the start of a VMA joins prev (prev grows, middle shrinks)', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 4 * P, RW, FIX);
    p.mmap(X + 4 * P, 4 * P, PROT_READ, FIX);
    fill(p, X, 4, 7);
    expect(p.mprotect(X + 4 * P, 2 * P, RW)).toBe(0);
    expect(layout(p)).toEqual([
      [X, X + 6 * P],
      [X + 6 * P, X + 8 * P],
    ]);
    const right = p.mm.vmaLookup(X + 6 * P)!;
    expect(right.pgoff).toBe((X + 6 * P) / P);
    p.writeI32(X + 5 * P, 55);
    expect(p.readI32(X + 5 * P)).toBe(55);
    expectFilled(p, X, 4, 7);
    clean(k, p);
  });

  it('right side: the end of a VMA joins next (next grows down, its pgoff with it)', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 4 * P, PROT_READ, FIX);
    p.mmap(X + 4 * P, 4 * P, RW, FIX);
    fill(p, X + 4 * P, 4, 40);
    expect(p.mprotect(X + 2 * P, 2 * P, RW)).toBe(0);
    expect(layout(p)).toEqual([
      [X, X + 2 * P],
      [X + 2 * P, X + 8 * P],
    ]);
    expect(p.mm.vmaLookup(X + 2 * P)!.pgoff).toBe((X + 2 * P) / P);
    p.writeI32(X + 2 * P, 9);
    expect(p.readI32(X + 2 * P)).toBe(9);
    expectFilled(p, X + 4 * P, 4, 40);
    clean(k, p);
  });

  it('dup_anon_vma(): an unfaulted VMA made identical to a faulted neighbour takes its anon_vma (either side)', () => {
    const k = machine();
    const p = k.spawn();
    // Faulted prev, unfaulted middle.
    p.mmap(X, 4 * P, RW, FIX);
    p.mmap(X + 4 * P, 4 * P, PROT_READ, FIX);
    fill(p, X, 4, 1);
    const av = p.mm.vmaLookup(X)!.anonVma;
    expect(p.mprotect(X + 4 * P, 4 * P, RW)).toBe(0);
    expect(layout(p)).toEqual([[X, X + 8 * P]]);
    expect(p.mm.vmaLookup(X + 4 * P)!.anonVma).toBe(av);
    fill(p, X + 4 * P, 4, 5);
    expectFilled(p, X, 8, 1);
    // Unfaulted middle, faulted next.
    p.mmap(Y, 4 * P, PROT_READ, FIX);
    p.mmap(Y + 4 * P, 4 * P, RW, FIX);
    fill(p, Y + 4 * P, 4, 20);
    const av2 = p.mm.vmaLookup(Y + 4 * P)!.anonVma;
    expect(p.mprotect(Y, 4 * P, RW)).toBe(0);
    expect(layout(p, Y, Y + 8 * P)).toEqual([[Y, Y + 8 * P]]);
    expect(p.mm.vmaLookup(Y)!.anonVma).toBe(av2);
    expect(p.mm.vmaLookup(Y)!.pgoff).toBe(Y / P);
    expectFilled(p, Y + 4 * P, 4, 20);
    clean(k, p);
  });

  it('is_mergeable_anon_vma(): two different anon_vmas never merge, even at linear offsets', () => {
    const k = machine();
    const p = k.spawn();
    // B is faulted at X+4P, moved away (keeping its pgoff), A faulted at X, B moved back.
    p.mmap(X + 4 * P, 4 * P, RW, FIX);
    fill(p, X + 4 * P, 4, 30);
    expect(p.mremap(X + 4 * P, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, Z)).toBe(Z);
    p.mmap(X, 4 * P, RW, FIX);
    fill(p, X, 4, 10);
    expect(p.mremap(Z, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, X + 4 * P)).toBe(X + 4 * P);
    expect(layout(p)).toEqual([
      [X, X + 4 * P],
      [X + 4 * P, X + 8 * P],
    ]);
    expect(p.mprotect(X + 4 * P, 4 * P, PROT_READ)).toBe(0);
    expect(p.mprotect(X + 4 * P, 4 * P, RW)).toBe(0);
    expect(layout(p)).toHaveLength(2);
    expectFilled(p, X, 4, 10);
    expectFilled(p, X + 4 * P, 4, 30);
    clean(k, p);
  });

  it("find_mergeable_anon_vma(): a first fault reuses a compatible neighbour's anon_vma, so mprotect() can merge later", () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 4 * P, RW, FIX);
    fill(p, X, 4, 1);
    // Differs only in VM_EXEC (anon_vma_compatible() ignores the access flags).
    p.mmap(X + 4 * P, 4 * P, RW | PROT_EXEC, FIX);
    expect(layout(p)).toHaveLength(2);
    fill(p, X + 4 * P, 4, 5);
    expect(p.mm.vmaLookup(X + 4 * P)!.anonVma).toBe(p.mm.vmaLookup(X)!.anonVma);
    expect(p.mprotect(X + 4 * P, 4 * P, RW)).toBe(0);
    expect(layout(p)).toEqual([[X, X + 8 * P]]);
    expectFilled(p, X, 8, 1);
    clean(k, p);
  });

  it('can_merge_remove_vma(): a VMA with vm_ops->close is not removed by a merge', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 4 * P, RW, FIX);
    p.mmap(X + 4 * P, 4 * P, PROT_READ, FIX);
    p.mm.vmaLookup(X + 4 * P)!.vmOps = { name: 'drv', close() {} };
    expect(p.mprotect(X + 4 * P, 4 * P, RW)).toBe(0);
    expect(layout(p)).toHaveLength(2);
    expect(p.mm.vmaLookup(X + 4 * P)!.flags & PROT_WRITE).toBeTruthy();
  });

  it('madvise_update_vma() -> vma_modify_flags(): MADV_HUGEPAGE splits a part off and merges it back', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 6 * P, RW, FIX);
    expect(p.madvise(X + 2 * P, 2 * P, MADV_HUGEPAGE)).toBe(0);
    expect(layout(p)).toHaveLength(3);
    expect(p.madvise(X, 6 * P, MADV_HUGEPAGE)).toBe(0);
    expect(layout(p)).toEqual([[X, X + 6 * P]]);
    expect(p.madvise(X + 4 * P, 2 * P, MADV_NOHUGEPAGE)).toBe(0);
    expect(layout(p)).toHaveLength(2);
    clean(k, p);
  });
});

describe('fork: vma_is_fork_child() in is_mergeable_anon_vma()', () => {
  it('a forked faulted VMA does not take an unfaulted neighbour in the child; the parent does', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 4 * P, RW, FIX);
    fill(p, X, 4, 1);
    p.mmap(X + 4 * P, 4 * P, PROT_READ, FIX);
    const c = k.task(p.fork())!;
    expect(c.mprotect(X + 4 * P, 4 * P, RW)).toBe(0);
    expect(layout(c)).toHaveLength(2);
    expect(p.mprotect(X + 4 * P, 4 * P, RW)).toBe(0);
    expect(layout(p)).toEqual([[X, X + 8 * P]]);
    // Parts of the same forked VMA share its anon_vma: they still merge in the child.
    expect(c.mprotect(X + P, P, PROT_READ)).toBe(0);
    expect(layout(c)).toHaveLength(4);
    expect(c.mprotect(X + P, P, RW)).toBe(0);
    expect(layout(c)).toHaveLength(2);
    expectFilled(c, X, 4, 1);
    clean(k, p);
    expect(mergeableNeighbours(c.mm)).toEqual([]);
  });

  it('vma_merge_copied_range(): a forked faulted VMA moved next to an unfaulted one stays apart; unforked it merges', () => {
    const k = machine();
    const p = k.spawn();
    // B faulted at X+4P and moved away (keeps pgoff X/P + 4); A unfaulted at X.
    p.mmap(X + 4 * P, 4 * P, RW, FIX);
    fill(p, X + 4 * P, 4, 50);
    expect(p.mremap(X + 4 * P, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, Z)).toBe(Z);
    p.mmap(X, 4 * P, RW, FIX);
    const c = k.task(p.fork())!;
    expect(c.mremap(Z, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, X + 4 * P)).toBe(X + 4 * P);
    expect(layout(c)).toHaveLength(2);
    expectFilled(c, X + 4 * P, 4, 50);
    // The parent's B is no fork child: unfaulted A takes its anon_vma (dup_anon_vma()).
    const av = p.mm.vmaLookup(Z)!.anonVma;
    expect(p.mremap(Z, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, X + 4 * P)).toBe(X + 4 * P);
    expect(layout(p)).toEqual([[X, X + 8 * P]]);
    expect(p.mm.vmaLookup(X)!.anonVma).toBe(av);
    expectFilled(p, X + 4 * P, 4, 50);
    fill(p, X, 4, 60);
    clean(k, p);
    expect(mergeableNeighbours(c.mm)).toEqual([]);
  });
});

describe('copy_vma(): mremap() moves', () => {
  it('an unfaulted VMA moved after a faulted one merges (its pgoff follows the destination)', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 4 * P, RW, FIX);
    fill(p, X, 4, 3);
    p.mmap(Z, 4 * P, RW, FIX);
    expect(p.mremap(Z, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, X + 4 * P)).toBe(X + 4 * P);
    expect(layout(p)).toEqual([[X, X + 8 * P]]);
    expect(layout(p, Z, Z + 4 * P)).toEqual([]);
    fill(p, X + 4 * P, 4, 7);
    expectFilled(p, X, 4, 3);
    expectFilled(p, X + 4 * P, 4, 7);
    clean(k, p);
  });

  it('a faulted part moved away and back into place is one VMA again', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 8 * P, RW, FIX);
    fill(p, X, 8, 200);
    expect(p.mremap(X + 4 * P, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, Z)).toBe(Z);
    expect(layout(p)).toEqual([[X, X + 4 * P]]);
    expect(p.mremap(Z, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, X + 4 * P)).toBe(X + 4 * P);
    expect(layout(p)).toEqual([[X, X + 8 * P]]);
    expectFilled(p, X, 8, 200);
    clean(k, p);
  });

  it('an unfaulted VMA moved onto its own end merges with itself', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 4 * P, RW, FIX);
    expect(p.mremap(X, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, X + 4 * P)).toBe(X + 4 * P);
    expect(layout(p)).toEqual([[X + 4 * P, X + 8 * P]]);
    expect(p.mm.vmaLookup(X + 4 * P)!.pgoff).toBe((X + 4 * P) / P);
    clean(k, p);
  });
});

describe('vma_merge_extend(): mremap() growing in place', () => {
  it('growing up to the next compatible VMA merges them; a next with another anon_vma stays', () => {
    const k = machine();
    const p = k.spawn();
    p.mmap(X, 4 * P, RW, FIX);
    fill(p, X, 4, 1);
    p.mmap(X + 6 * P, 4 * P, RW, FIX);
    expect(p.mremap(X, 4 * P, 6 * P, 0)).toBe(X);
    expect(layout(p)).toEqual([[X, X + 10 * P]]);
    expectFilled(p, X, 4, 1);
    p.mmap(Y, 4 * P, RW, FIX);
    fill(p, Y, 4, 1);
    p.mmap(Y + 6 * P, 4 * P, RW, FIX);
    fill(p, Y + 6 * P, 4, 9);
    expect(p.mremap(Y, 4 * P, 6 * P, 0)).toBe(Y);
    expect(layout(p, Y, Y + 10 * P)).toEqual([
      [Y, Y + 6 * P],
      [Y + 6 * P, Y + 10 * P],
    ]);
    clean(k, p);
  });
});

describe('VMAs Linux leaves mergeable but apart (Vma.mayStayApart)', () => {
  it('MREMAP_DONTUNMAP of a whole VMA: the old VMA keeps its range without anon_vma (dontunmap_complete()) and is marked', () => {
    const k = machine();
    const p = k.spawn();
    expect(p.mmap(Z, 2 * P, RW, FIX)).toBe(Z);
    fill(p, Z, 2, 9);
    const to = Z + 64 * P;
    expect(p.mremap(Z, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to)).toBe(to);
    const old = p.mm.vmaLookup(Z)!;
    expect([old.start, old.end, old.anonVma, old.mayStayApart]).toEqual([Z, Z + 2 * P, null, true]);
    expect(p.mm.vmaLookup(to)!.mayStayApart).toBe(false);
    expect(p.readI32(Z)).toBe(0);
    expectFilled(p, to, 2, 9);
    expect(k.check()).toEqual([]);
  });

  it('fork: a VM_WIPEONFORK child VMA of a faulted one starts without its anon_vma and is marked', () => {
    const k = machine();
    const p = k.spawn();
    expect(p.mmap(X, 4 * P, RW, FIX)).toBe(X);
    fill(p, X, 4, 1);
    expect(p.madvise(X + 2 * P, 2 * P, 18 /* MADV_WIPEONFORK */)).toBe(0);
    const child = k.task(p.fork()) as Process;
    const [lo, hi] = [child.mm.vmaLookup(X)!, child.mm.vmaLookup(X + 2 * P)!];
    expect([hi.anonVma, hi.mayStayApart]).toEqual([null, true]);
    expect(lo.mayStayApart).toBe(false);
    expect(child.readI32(X + 2 * P)).toBe(0);
    expectFilled(child, X, 2, 1);
    expect(k.check()).toEqual([]);
  });

  it('the layout check skips a pair with a marked VMA, and only such a pair', () => {
    const k = machine();
    const p = k.spawn();
    // Two mergeable neighbours made apart by hand (the model would have merged them).
    expect(p.mmap(X, 4 * P, RW, FIX)).toBe(X);
    const v = p.mm.vmaLookup(X)!;
    const upper = k.core.sched.runSync(splitVma(k.core, v, X + 2 * P), 'test');
    p.mm.insertVma(upper);
    expect(vmasMergeable(v, upper)).toBe(true);
    expect(mergeableNeighbours(p.mm)).toHaveLength(1);
    upper.mayStayApart = true;
    expect(mergeableNeighbours(p.mm)).toEqual([]);
  });
});
