/**
 * The scenarios of the kernel's VMA merge selftest (tools/testing/selftests/mm/merge.c, v6.19),
 * replayed on the model: each test maps over a PROT_NONE carve-out as the selftest's fixture
 * does, changes protections, forks or moves ranges with mremap(), and then asks where the VMA
 * around an address starts and ends. The selftest asks PROCMAP_QUERY; here the answer is read
 * from /proc/self/maps as the process sees it. Each test names the kernel function whose rule
 * decides the outcome (mm/vma.c: vma_merge_existing_range(), vma_merge_new_range(),
 * is_mergeable_anon_vma(), vma_is_fork_child(), copy_vma(); mm/mremap.c: move_vma()).
 *
 * Not replayed: handle_uprobe_upon_merged_vma (no uprobes/perf_event_open in the model; the
 * selftest SKIPs without the uprobe PMU) and the KSM half of ksm_merge (no KSM: prctl
 * PR_SET_MEMORY_MERGE does not exist in the model, where the selftest SKIPs on EINVAL); the
 * first half of ksm_merge (two adjacent R/W mappings merge, and again after munmap) is below.
 */
import { describe, expect, it } from 'vitest';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_RDONLY,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import type { Process } from '../process.js';
import { machine } from '../testing/helpers.js';
import { mergeableNeighbours } from '../testing/layout.js';

const P = PAGE_SIZE;
const RW = PROT_READ | PROT_WRITE;
const FIX = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const MOVE = MREMAP_MAYMOVE | MREMAP_FIXED;

/** The selftest's fixture: a process and a 30-page PROT_NONE carve-out to map over. */
function fixture(): { k: Kernel; p: Process; carveout: number } {
  const k = machine();
  const p = k.spawn();
  const carveout = p.mmap(0, 30 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
  expect(carveout).toBeGreaterThan(0);
  return { k, p, carveout };
}

/** The [start, end) of the line of p's /proc/self/maps that contains addr (PROCMAP_QUERY's answer), or null. */
function query(p: Process, addr: number): [number, number] | null {
  const fd = p.open('/proc/self/maps', O_RDONLY);
  const buf = new Uint8Array(1 << 16);
  const n = p.pread(fd, buf, buf.length, 0);
  p.close(fd);
  for (const line of new TextDecoder().decode(buf.subarray(0, n)).split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (!m) continue;
    const [lo, hi] = [Number.parseInt(m[1], 16), Number.parseInt(m[2], 16)];
    if (lo <= addr && addr < hi) return [lo, hi];
  }
  return null;
}

/** A successful mmap()/mremap() result (an address, not a negative errno). */
function ok(addr: number): number {
  expect(addr).toBeGreaterThan(0);
  return addr;
}

/** The invariants hold and no two neighbours Linux would have merged are apart. */
function clean(k: Kernel, ...ps: Process[]): void {
  expect(k.check()).toEqual([]);
  for (const p of ps) expect(mergeableNeighbours(p.mm)).toEqual([]);
}

describe('merge.c: mprotect() making a faulted VMA identical to unfaulted neighbours (vma_merge_existing_range())', () => {
  it('mprotect_unfaulted_left: the faulted right part made RO joins the unfaulted RO left part (dup_anon_vma() into prev)', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + P, 10 * P, RW, FIX | MAP_NORESERVE));
    expect(p.mprotect(ptr, 5 * P, PROT_READ)).toBe(0);
    p.writeU8(ptr + 5 * P, 0x78);
    expect(p.mprotect(ptr + 5 * P, 5 * P, PROT_READ)).toBe(0);
    expect(query(p, ptr)).toEqual([ptr, ptr + 10 * P]);
    expect(p.readU8(ptr + 5 * P)).toBe(0x78);
    clean(k, p);
  });

  it('mprotect_unfaulted_right: the faulted left part made RO joins the unfaulted RO right part (dup_anon_vma() into next)', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + P, 10 * P, RW, FIX | MAP_NORESERVE));
    expect(p.mprotect(ptr + 5 * P, 5 * P, PROT_READ)).toBe(0);
    p.writeU8(ptr, 0x78);
    expect(p.mprotect(ptr, 5 * P, PROT_READ)).toBe(0);
    expect(query(p, ptr)).toEqual([ptr, ptr + 10 * P]);
    expect(p.readU8(ptr)).toBe(0x78);
    clean(k, p);
  });

  it('mprotect_unfaulted_both: a faulted middle made RO joins unfaulted RO parts on both sides', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + 2 * P, 9 * P, RW, FIX | MAP_NORESERVE));
    expect(p.mprotect(ptr, 3 * P, PROT_READ)).toBe(0);
    expect(p.mprotect(ptr + 6 * P, 3 * P, PROT_READ)).toBe(0);
    p.writeU8(ptr + 3 * P, 0x78);
    expect(p.mprotect(ptr + 3 * P, 3 * P, PROT_READ)).toBe(0);
    expect(query(p, ptr)).toEqual([ptr, ptr + 9 * P]);
    expect(p.readU8(ptr + 3 * P)).toBe(0x78);
    clean(k, p);
  });

  it('mprotect_faulted_left_unfaulted_right: faulted prev (same anon_vma) and unfaulted next merge with the middle', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + 2 * P, 9 * P, RW, FIX | MAP_NORESERVE));
    expect(p.mprotect(ptr + 6 * P, 3 * P, PROT_READ)).toBe(0);
    p.writeU8(ptr, 0x78);
    expect(p.mprotect(ptr, 3 * P, PROT_READ)).toBe(0);
    expect(p.mprotect(ptr + 3 * P, 3 * P, PROT_READ)).toBe(0);
    expect(query(p, ptr)).toEqual([ptr, ptr + 9 * P]);
    clean(k, p);
  });

  it('mprotect_unfaulted_left_faulted_right: unfaulted prev and faulted next (same anon_vma) merge with the middle', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + 2 * P, 9 * P, RW, FIX | MAP_NORESERVE));
    expect(p.mprotect(ptr, 3 * P, PROT_READ)).toBe(0);
    p.writeU8(ptr + 3 * P, 0x78);
    expect(p.mprotect(ptr + 6 * P, 3 * P, PROT_READ)).toBe(0);
    expect(p.mprotect(ptr + 3 * P, 3 * P, PROT_READ)).toBe(0);
    expect(query(p, ptr)).toEqual([ptr, ptr + 9 * P]);
    clean(k, p);
  });
});

describe("merge.c: fork (is_mergeable_anon_vma(): a fork child's anon_vma is not shared with a neighbour)", () => {
  it('forked_target_vma: in the child, a new mapping next to the forked faulted VMA stays apart (vma_merge_new_range(), vma_is_fork_child(prev))', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + P, 5 * P, RW, FIX));
    p.writeU8(ptr, 0x78);
    const c = k.task(p.fork()) as Process;
    // "unCOWing everything does not cause the AVC to go away."
    for (let i = 0; i < 5; i++) c.writeU8(ptr + i * P, 0x78);
    ok(c.mmap(ptr + 5 * P, 5 * P, RW, FIX));
    expect(query(c, ptr)).toEqual([ptr, ptr + 5 * P]);
    // The parent's VMA is no fork child: the same mapping there merges.
    ok(p.mmap(ptr + 5 * P, 5 * P, RW, FIX));
    expect(query(p, ptr)).toEqual([ptr, ptr + 10 * P]);
    clean(k, p, c);
  });

  it('forked_source_vma: in the child, the forked faulted VMA made RWX does not take its unfaulted RWX neighbour (vma_merge_existing_range(), vma_is_fork_child(middle))', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + P, 5 * P, RW, FIX | MAP_NORESERVE));
    p.writeU8(ptr, 0x78);
    const c = k.task(p.fork()) as Process;
    for (let i = 0; i < 5; i++) c.writeU8(ptr + i * P, 0x78);
    const ptr2 = ok(c.mmap(carveout + 6 * P, 5 * P, RW | PROT_EXEC, FIX | MAP_NORESERVE));
    expect(query(c, ptr2)).toEqual([ptr2, ptr2 + 5 * P]);
    expect(c.mprotect(ptr, 5 * P, RW | PROT_EXEC)).toBe(0);
    expect(query(c, ptr2)).toEqual([ptr2, ptr2 + 5 * P]);
    expect(query(c, ptr)).toEqual([ptr, ptr + 5 * P]);
    clean(k, p, c);
  });
});

describe('merge.c: ksm_merge, the part without KSM (vma_merge_new_range())', () => {
  it('two adjacent R/W mappings are one VMA; after munmap of the second and of both, mapping them again merges again', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + P, P, RW, FIX));
    const ptr2 = ok(p.mmap(carveout + 2 * P, P, RW, FIX));
    expect(query(p, ptr)).toEqual([ptr, ptr + 2 * P]);
    expect(p.munmap(ptr2, P)).toBe(0);
    ok(p.mmap(carveout + 2 * P, P, RW, FIX));
    expect(query(p, ptr)).toEqual([ptr, ptr + 2 * P]);
    expect(p.munmap(ptr, 2 * P)).toBe(0);
    ok(p.mmap(carveout + P, P, RW, FIX));
    ok(p.mmap(carveout + 2 * P, P, RW, FIX));
    expect(query(p, ptr)).toEqual([ptr, ptr + 2 * P]);
    clean(k, p);
  });
});

describe('merge.c: mremap() moves next to and between compatible VMAs (copy_vma() -> vma_merge_copied_range())', () => {
  it('mremap_unfaulted_to_faulted: an unfaulted VMA moved right after a faulted one merges', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + P, 5 * P, RW, FIX));
    let ptr2 = ok(p.mmap(carveout + 7 * P, 5 * P, RW, FIX));
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr2 + 1000 * P));
    p.writeU8(ptr, 0x78);
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr + 5 * P));
    expect(query(p, ptr)).toEqual([ptr, ptr + 10 * P]);
    clean(k, p);
  });

  it('mremap_unfaulted_behind_faulted: an unfaulted VMA moved right before a faulted one merges', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + 6 * P, 5 * P, RW, FIX));
    let ptr2 = ok(p.mmap(carveout + 14 * P, 5 * P, RW, FIX));
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr2 + 1000 * P));
    p.writeU8(ptr, 0x78);
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, carveout + P));
    expect(query(p, ptr2)).toEqual([ptr2, ptr2 + 10 * P]);
    expect(p.readU8(ptr)).toBe(0x78);
    clean(k, p);
  });

  it('mremap_unfaulted_between_faulted: between two faulted VMAs of different anon_vmas it merges with prev only (can_vma_merge_right())', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + P, 5 * P, RW, FIX));
    let ptr2 = ok(p.mmap(carveout + 7 * P, 5 * P, RW, FIX));
    let ptr3 = ok(p.mmap(carveout + 14 * P, 5 * P, RW, FIX));
    ptr3 = ok(p.mremap(ptr3, 5 * P, 5 * P, MOVE, ptr3 + 2000 * P));
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr2 + 1000 * P));
    p.writeU8(ptr, 0x78);
    p.writeU8(ptr3, 0x79);
    ptr3 = ok(p.mremap(ptr3, 5 * P, 5 * P, MOVE, ptr + 10 * P));
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr + 5 * P));
    expect(query(p, ptr)).toEqual([ptr, ptr + 10 * P]);
    expect(query(p, ptr3)).toEqual([ptr3, ptr3 + 5 * P]);
    expect([p.readU8(ptr), p.readU8(ptr3)]).toEqual([0x78, 0x79]);
    clean(k, p);
  });

  it('mremap_unfaulted_between_faulted_unfaulted: between a faulted prev and an unfaulted next all three merge', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + P, 5 * P, RW, FIX));
    let ptr2 = ok(p.mmap(carveout + 7 * P, 5 * P, RW, FIX));
    let ptr3 = ok(p.mmap(carveout + 14 * P, 5 * P, RW, FIX));
    ptr3 = ok(p.mremap(ptr3, 5 * P, 5 * P, MOVE, ptr3 + 2000 * P));
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr2 + 1000 * P));
    p.writeU8(ptr, 0x78);
    ptr3 = ok(p.mremap(ptr3, 5 * P, 5 * P, MOVE, ptr + 10 * P));
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr + 5 * P));
    expect(query(p, ptr)).toEqual([ptr, ptr + 15 * P]);
    clean(k, p);
  });

  it('mremap_unfaulted_between_correctly_placed_faulted: the two halves of one faulted VMA (same anon_vma, linear pgoff) take the unfaulted middle', () => {
    const { k, p, carveout } = fixture();
    const ptr = ok(p.mmap(carveout + P, 15 * P, RW, FIX));
    p.writeU8(ptr, 0x78);
    expect(p.munmap(ptr + 5 * P, 5 * P)).toBe(0);
    let ptr2 = ok(p.mmap(carveout + 20 * P, 5 * P, RW, FIX));
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr + 5 * P));
    expect(query(p, ptr)).toEqual([ptr, ptr + 15 * P]);
    clean(k, p);
  });

  it('mremap_correct_placed_faulted: parts of one faulted VMA moved away and back in any order are one VMA again', () => {
    const { k, p, carveout } = fixture();
    let ptr = ok(p.mmap(carveout + P, 15 * P, RW, FIX));
    for (let i = 0; i < 15; i++) p.writeU8(ptr + i * P, i + 1);
    let ptr3 = ok(p.mremap(ptr + 10 * P, 5 * P, 5 * P, MOVE, ptr + 10 * P + 2000 * P));
    let ptr2 = ok(p.mremap(ptr + 5 * P, 5 * P, 5 * P, MOVE, ptr + 5 * P + 1000 * P));
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr + 5 * P));
    expect(query(p, ptr)).toEqual([ptr, ptr + 10 * P]);
    ptr = ok(p.mremap(ptr, 5 * P, 5 * P, MOVE, ptr + 1000 * P));
    ptr = ok(p.mremap(ptr, 5 * P, 5 * P, MOVE, carveout + P));
    expect(query(p, ptr)).toEqual([ptr, ptr + 10 * P]);
    ptr = ok(p.mremap(ptr, 5 * P, 5 * P, MOVE, ptr + 1000 * P));
    ptr3 = ok(p.mremap(ptr3, 5 * P, 5 * P, MOVE, ptr2 + 5 * P));
    expect(query(p, ptr2)).toEqual([ptr2, ptr2 + 10 * P]);
    ptr = ok(p.mremap(ptr, 5 * P, 5 * P, MOVE, carveout + P));
    expect(query(p, ptr)).toEqual([ptr, ptr + 15 * P]);
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr2 + 1000 * P));
    ptr2 = ok(p.mremap(ptr2, 5 * P, 5 * P, MOVE, ptr + 5 * P));
    expect(query(p, ptr)).toEqual([ptr, ptr + 15 * P]);
    ptr3 = ok(p.mremap(ptr3, 5 * P, 5 * P, MOVE, ptr3 + 1000 * P));
    ptr3 = ok(p.mremap(ptr3, 5 * P, 5 * P, MOVE, ptr + 10 * P));
    expect(query(p, ptr)).toEqual([ptr, ptr + 15 * P]);
    for (let i = 0; i < 15; i++) expect(p.readU8(ptr + i * P)).toBe(i + 1);
    clean(k, p);
  });
});

describe('merge.c: MREMAP_DONTUNMAP of a faulted VMA next to unfaulted ones (copy_vma(): dup_anon_vma() of the copied anon_vma)', () => {
  it('mremap_faulted_to_unfaulted_prev: moved after an unfaulted VMA, they merge', () => {
    const { k, p, carveout } = fixture();
    let a = ok(p.mmap(carveout + 4 * P, 3 * P, RW, FIX));
    p.writeU8(a, 0x78);
    a = ok(p.mremap(a, 3 * P, 3 * P, MOVE, carveout + 20 * P));
    const b = ok(p.mmap(carveout + P, 3 * P, RW, FIX));
    a = ok(p.mremap(a, 3 * P, 3 * P, MOVE | MREMAP_DONTUNMAP, carveout + 4 * P));
    expect(query(p, b)).toEqual([b, b + 6 * P]);
    expect(p.readU8(a)).toBe(0x78);
    // The old VMA stays, empty (dontunmap_complete()).
    expect(query(p, carveout + 20 * P)).toEqual([carveout + 20 * P, carveout + 23 * P]);
    expect(p.readU8(carveout + 20 * P)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('mremap_faulted_to_unfaulted_next: moved before an unfaulted VMA, they merge, and unmapping the old VMA is fine', () => {
    const { k, p, carveout } = fixture();
    let a = ok(p.mmap(carveout + P, 3 * P, RW, FIX));
    p.writeU8(a, 0x78);
    const old = ok(p.mremap(a, 3 * P, 3 * P, MOVE, carveout + 20 * P));
    ok(p.mmap(carveout + 4 * P, 3 * P, RW, FIX));
    a = ok(p.mremap(old, 3 * P, 3 * P, MOVE | MREMAP_DONTUNMAP, carveout + P));
    expect(query(p, a)).toEqual([a, a + 6 * P]);
    // "Then unmap VMA A to trigger the bug": the merged VMA's anon_vma must survive.
    expect(p.munmap(old, 3 * P)).toBe(0);
    expect(p.readU8(a)).toBe(0x78);
    p.writeU8(a + 5 * P, 0x79);
    expect(p.readU8(a + 5 * P)).toBe(0x79);
    expect(k.check()).toEqual([]);
  });

  it('mremap_faulted_to_unfaulted_prev_unfaulted_next: between two unfaulted VMAs, all three merge', () => {
    const { k, p, carveout } = fixture();
    let b = ok(p.mmap(carveout + 4 * P, 3 * P, RW, FIX));
    p.writeU8(b, 0x78);
    b = ok(p.mremap(b, 3 * P, 3 * P, MOVE, carveout + 20 * P));
    const a = ok(p.mmap(carveout + P, 3 * P, RW, FIX));
    ok(p.mmap(carveout + 7 * P, 3 * P, RW, FIX));
    b = ok(p.mremap(b, 3 * P, 3 * P, MOVE | MREMAP_DONTUNMAP, carveout + 4 * P));
    expect(query(p, a)).toEqual([a, a + 9 * P]);
    expect(p.readU8(b)).toBe(0x78);
    expect(k.check()).toEqual([]);
  });

  it('mremap_faulted_to_unfaulted_prev_faulted_next: between an unfaulted prev and the faulted rest of its own VMA, all three merge', () => {
    const { k, p, carveout } = fixture();
    const bc = ok(p.mmap(carveout + 4 * P, 6 * P, RW, FIX));
    p.writeU8(bc, 0x78);
    let b = ok(p.mremap(bc, 3 * P, 3 * P, MOVE, carveout + 20 * P));
    const a = ok(p.mmap(carveout + P, 3 * P, RW, FIX));
    b = ok(p.mremap(b, 3 * P, 3 * P, MOVE | MREMAP_DONTUNMAP, carveout + 4 * P));
    expect(query(p, a)).toEqual([a, a + 9 * P]);
    expect(p.readU8(b)).toBe(0x78);
    expect(k.check()).toEqual([]);
  });
});
