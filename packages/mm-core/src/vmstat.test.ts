import { describe, expect, it } from 'vitest';
import {
  HPAGE_PMD_NR,
  MADV_COLLAPSE,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import type { Kernel } from './kernel.js';
import type { Process } from './process.js';
import { machine } from './testing/helpers.js';
import { VMSTAT_ITEMS, type Vmstat } from './vmstat.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function readText(p: Process, path: string): string {
  const fd = p.open(path, O_RDONLY);
  const buf = new Uint8Array(8192);
  const n = p.pread(fd, buf, buf.length, 0);
  p.close(fd);
  return new TextDecoder().decode(buf.subarray(0, n));
}

function delta(k: Kernel, fn: () => void): Partial<Vmstat> {
  const before = { ...k.core.vmstat };
  fn();
  const out: Partial<Vmstat> = {};
  for (const key of VMSTAT_ITEMS) {
    const d = k.core.vmstat[key] - before[key];
    if (d !== 0) out[key] = d;
  }
  return out;
}

describe('vmstat counters', () => {
  it('THP fault, huge zero page, split and deferred split move their counters', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE);
    const d1 = delta(k, () => p.writeI32(a, 1));
    expect(d1.thp_fault_alloc).toBe(1);
    expect(d1.nr_anon_pages).toBe(HPAGE_PMD_NR);
    expect(d1.nr_anon_transparent_hugepages).toBe(1);
    expect(d1.pgfault).toBe(1);
    expect(d1.nr_page_table_pages).toBeGreaterThanOrEqual(1); // the deposit (+ upper tables)
    const d2 = delta(k, () => p.readI32(a + PMD_SIZE));
    expect(d2.thp_zero_page_alloc).toBe(1);
    const d3 = delta(k, () => p.munmap(a + PAGE_SIZE, PAGE_SIZE));
    expect(d3.thp_split_pmd).toBe(1);
    expect(d3.thp_deferred_split_page).toBe(1);
    expect(d3.nr_anon_transparent_hugepages).toBe(-1);
    expect(d3.nr_anon_pages ?? 0).toBe(0); // still allocated, partially mapped
    const d4 = delta(k, () => p.munmap(a, 2 * PMD_SIZE));
    expect(d4.nr_anon_pages).toBe(-HPAGE_PMD_NR);
    expect(d4.pgfree).toBeGreaterThanOrEqual(HPAGE_PMD_NR);
    expect(k.check()).toEqual([]);
  });

  it('COW, zero-page faults, collapse and shmem move their counters', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    const d1 = delta(k, () => p.readI32(a));
    expect(d1.zero_page_faults).toBe(1);
    const d2 = delta(k, () => p.writeI32(a, 1));
    expect(d2.cow_faults).toBe(1);
    expect(d2.nr_anon_pages).toBe(1);
    const d3 = delta(k, () => p.madvise(a, PMD_SIZE, MADV_COLLAPSE));
    expect(d3.thp_collapse_alloc).toBe(1);
    expect(d3.nr_anon_pages).toBe(HPAGE_PMD_NR - 1);
    const s = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    const d4 = delta(k, () => p.writeI32(s, 1));
    expect(d4.nr_shmem).toBe(1);
    expect(d4.nr_file_pages).toBe(1);
    const d5 = delta(k, () => p.munmap(s, 2 * PAGE_SIZE));
    expect(d5.nr_shmem).toBe(-1);
    expect(k.check()).toEqual([]);
  });

  it('/proc/vmstat and /proc/meminfo render the counters', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    p.writeI32(a, 1);
    const vm = readText(p, '/proc/vmstat');
    expect(vm).toMatch(/^thp_fault_alloc 1$/m);
    expect(vm).toMatch(new RegExp(`^nr_free_pages ${k.core.zone.nrFree}$`, 'm'));
    const mi = readText(p, '/proc/meminfo');
    expect(mi).toMatch(/^AnonHugePages:\s+2048 kB$/m);
    expect(mi).toMatch(/^MemTotal:\s+262144 kB$/m);
    expect(readText(p, '/sys/kernel/mm/transparent_hugepage/enabled')).toBe('always [madvise] never\n');
  });
});
