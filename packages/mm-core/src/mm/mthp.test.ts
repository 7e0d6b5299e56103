/**
 * Multi-size THP for anonymous memory: the per-size sysfs controls, the fault path's order
 * choice (alloc_anon_folio()), and PTE-mapped large folios through zap, COW, fork, mprotect,
 * mremap, madvise, pagemap and the split_huge_pages debugfs file.
 */
import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  ESRCH,
  HPAGE_PMD_ORDER,
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_RDONLY,
  O_WRONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { ThpSizeMode } from '../core.js';
import type { Kernel } from '../kernel.js';
import { _PAGE_RW, entryPfn } from '../pgtable/entry.js';
import { PG_anon_exclusive, PG_deferred_split, PG_partially_mapped } from '../phys/memmap.js';
import { PM_MMAP_EXCLUSIVE, smaps } from '../proc.js';
import type { Process } from '../process.js';
import { machine, ptePfn } from '../testing/helpers.js';
import { pteIndex, pteTableOf, ptHi, ptLo, ptSet, readPmd } from './pgtable.js';

const pteTableOfAddr = (k: Kernel, p: Process, a: number) => pteTableOf(k.core, p.mm, a, false);
const pteIndexOf = pteIndex;
const ptLoOf = (k: Kernel, t: number, i: number) => ptLo(k.core, t, i);
const ptHiOf = (k: Kernel, t: number, i: number) => ptHi(k.core, t, i);
const ptSetOf = (k: Kernel, t: number, i: number, lo: number, hi: number) => ptSet(k.core, t, i, lo, hi);

import {
  highestOrder,
  nextOrder,
  THP_ORDERS_ALL_ANON,
  thpAnonSysfsOrders,
  thpVmaAllowableOrders,
  thpVmaSuitableOrders,
} from './thp-orders.js';
import { thpSizeDir } from './thp-sysfs.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const K64 = 64 * 1024;

function readText(p: Process, path: string): string {
  const fd = p.open(path, O_RDONLY);
  expect(fd).toBeGreaterThanOrEqual(0);
  const buf = new Uint8Array(8192);
  const n = p.pread(fd, buf, buf.length, 0);
  p.close(fd);
  return new TextDecoder().decode(buf.subarray(0, Math.max(n, 0)));
}

function writeText(p: Process, path: string, text: string): number {
  const fd = p.open(path, O_WRONLY);
  expect(fd).toBeGreaterThanOrEqual(0);
  const b = new TextEncoder().encode(text);
  const r = p.pwrite(fd, b, b.length, 0);
  p.close(fd);
  return r;
}

/** A machine whose top-level THP mode is "never" and whose per-size settings are `sizes`. */
function mthpMachine(
  sizes: Record<number, ThpSizeMode>,
  thp: 'always' | 'madvise' | 'never' = 'never',
): Kernel {
  return machine(thp, { thpAnon: sizes });
}

/** An anonymous region of `len` bytes aligned to `align` (over-map, then trim). */
function aligned(p: Process, len: number, align: number): number {
  const raw = p.mmap(0, len + align, RW, ANON);
  const a = Math.ceil(raw / align) * align;
  if (a > raw) expect(p.munmap(raw, a - raw)).toBe(0);
  if (raw + len + align > a + len) expect(p.munmap(a + len, raw + len + align - (a + len))).toBe(0);
  return a;
}

function folioOf(k: Kernel, p: Process, addr: number): number {
  const pfn = ptePfn(k, p, addr);
  return pfn < 0 ? -1 : k.core.map.head[pfn];
}

function orderAt(k: Kernel, p: Process, addr: number): number {
  return k.core.map.folioOrder(folioOf(k, p, addr));
}

describe('order masks (highest_order, next_order, thp_vma_allowable_orders)', () => {
  it('THP_ORDERS_ALL_ANON is orders 2..PMD_ORDER; the iterators walk a mask from the top', () => {
    for (let o = 0; o <= 10; o++)
      expect((THP_ORDERS_ALL_ANON >> o) & 1).toBe(o >= 2 && o <= HPAGE_PMD_ORDER ? 1 : 0);
    expect(highestOrder(0b10110000)).toBe(7);
    expect(nextOrder(0b10110000, 7)).toEqual([0b00110000, 5]);
    expect(nextOrder(0b10000, 4)).toEqual([0, -1]);
  });

  it('sysfs masks: always, madvise with VM_HUGEPAGE, inherit following the top-level mode', () => {
    const k = mthpMachine({ 2: 'always', 3: 'madvise', 4: 'inherit' }, 'madvise');
    const core = k.core;
    const hp = 0x20000000; // VM_HUGEPAGE
    // PMD order defaults to inherit: with the top-level "madvise" it needs VM_HUGEPAGE.
    expect(thpAnonSysfsOrders(core, 0)).toBe(1 << 2);
    expect(thpAnonSysfsOrders(core, hp)).toBe((1 << 2) | (1 << 3) | (1 << 4) | (1 << 9));
    core.thpMode = 'always';
    expect(thpAnonSysfsOrders(core, 0)).toBe((1 << 2) | (1 << 4) | (1 << 9));
    core.thpMode = 'never';
    expect(thpAnonSysfsOrders(core, hp)).toBe((1 << 2) | (1 << 3));
  });

  it('thp_vma_suitable_orders keeps the orders whose aligned block fits in the VMA', () => {
    const k = mthpMachine({ 2: 'always', 4: 'always', 8: 'always' });
    const p = k.spawn();
    const a = aligned(p, 2 * K64, 4 * PMD_SIZE);
    const vma = p.mm.vmaLookup(a)!;
    const all = thpVmaAllowableOrders(k.core, vma, vma.flags, 'pagefault', (1 << 9) - 1);
    expect(all).toBe((1 << 2) | (1 << 4) | (1 << 8));
    expect(thpVmaSuitableOrders(vma, a + K64, all)).toBe((1 << 2) | (1 << 4));
  });
});

describe('/sys/kernel/mm/transparent_hugepage (enabled_store, anon_enabled_store)', () => {
  it('every anonymous size 16kB..2048kB has enabled with the v6.19 defaults', () => {
    const k = machine('madvise');
    const p = k.spawn();
    for (let o = 2; o < HPAGE_PMD_ORDER; o++)
      expect(readText(p, `${thpSizeDir(o)}/enabled`)).toBe('always inherit madvise [never]\n');
    expect(readText(p, `${thpSizeDir(HPAGE_PMD_ORDER)}/enabled`)).toBe('always [inherit] madvise never\n');
    expect(thpSizeDir(2)).toBe('/sys/kernel/mm/transparent_hugepage/hugepages-16kB');
    expect(thpSizeDir(HPAGE_PMD_ORDER)).toBe('/sys/kernel/mm/transparent_hugepage/hugepages-2048kB');
    expect(p.open('/sys/kernel/mm/transparent_hugepage/hugepages-8kB/enabled', O_RDONLY)).toBeLessThan(0);
  });

  it('a store takes the four words (one trailing newline allowed); anything else is -EINVAL, unchanged', () => {
    const k = machine('madvise');
    const p = k.spawn();
    const f = `${thpSizeDir(4)}/enabled`;
    expect(writeText(p, f, 'always\n')).toBe(7);
    expect(readText(p, f)).toBe('[always] inherit madvise never\n');
    expect(writeText(p, f, 'madvise')).toBe(7);
    expect(readText(p, f)).toBe('always inherit [madvise] never\n');
    for (const bad of ['', ' always', 'always\n\n', 'Always', 'defer', 'always inherit'])
      if (bad !== '') expect(writeText(p, f, bad)).toBe(-EINVAL);
    expect(writeText(p, f, '')).toBe(0);
    expect(readText(p, f)).toBe('always inherit [madvise] never\n');
    expect(writeText(p, f, 'inherit')).toBe(7);
    expect(readText(p, f)).toBe('always [inherit] madvise never\n');
    expect(writeText(p, f, 'never')).toBe(5);
    expect(readText(p, f)).toBe('always inherit madvise [never]\n');
  });

  it('the top-level enabled is writable (enabled_store) and still read as before', () => {
    const k = machine('madvise');
    const p = k.spawn();
    const f = '/sys/kernel/mm/transparent_hugepage/enabled';
    expect(readText(p, f)).toBe('always [madvise] never\n');
    expect(writeText(p, f, 'always\n')).toBe(7);
    expect(k.core.thpMode).toBe('always');
    expect(writeText(p, f, 'inherit')).toBe(-EINVAL);
    expect(readText(p, f)).toBe('[always] madvise never\n');
  });

  it('hugepages-2048kB/enabled "never" stops PMD THPs even with the top-level "always"', () => {
    const k = machine('always');
    const p = k.spawn();
    expect(writeText(p, `${thpSizeDir(HPAGE_PMD_ORDER)}/enabled`, 'never')).toBe(5);
    const a = aligned(p, PMD_SIZE, PMD_SIZE);
    p.writeI32(a, 1);
    expect(k.core.vmstat.thp_fault_alloc).toBe(0);
    expect(orderAt(k, p, a)).toBe(0);
    expect(writeText(p, `${thpSizeDir(HPAGE_PMD_ORDER)}/enabled`, 'always')).toBe(6);
    k.core.thpMode = 'never';
    const b = aligned(p, PMD_SIZE, PMD_SIZE);
    p.writeI32(b, 1);
    expect(k.core.vmstat.thp_fault_alloc).toBe(1);
    expect(readText(p, `${thpSizeDir(HPAGE_PMD_ORDER)}/stats/anon_fault_alloc`)).toBe('1\n');
  });

  it('thpAnon options outside orders 2..9 or with unknown modes are refused at machine creation', () => {
    expect(() => machine('never', { thpAnon: { 1: 'always' } })).toThrow(RangeError);
    expect(() => machine('never', { thpAnon: { 10: 'always' } })).toThrow(RangeError);
    expect(() => machine('never', { thpAnon: { 4: 'sometimes' as ThpSizeMode } })).toThrow(RangeError);
  });
});

describe('mTHP anonymous faults (alloc_anon_folio, do_anonymous_page)', () => {
  it('defaults: only order-0 pages below the PMD order', () => {
    const k = machine('always');
    const p = k.spawn();
    const a = aligned(p, K64 * 4, PMD_SIZE);
    p.writeI32(a, 1);
    expect(orderAt(k, p, a)).toBe(0);
  });

  it('a write maps the highest enabled order at once: every PTE, refcount and mapcount per page', () => {
    const k = mthpMachine({ 2: 'always', 4: 'always' });
    const p = k.spawn();
    const a = aligned(p, 4 * K64, PMD_SIZE);
    const rss = p.mm.rss.MM_ANONPAGES;
    p.writeI32(a + K64 + 5 * PAGE_SIZE, 42);
    const head = folioOf(k, p, a + K64);
    const m = k.core.map;
    expect(m.folioOrder(head)).toBe(4);
    for (let i = 0; i < 16; i++) {
      expect(ptePfn(k, p, a + K64 + i * PAGE_SIZE)).toBe(head + i);
      expect(m.mapcount[head + i]).toBe(1);
      expect(m.flags[head + i] & PG_anon_exclusive).not.toBe(0);
    }
    // The 64K block before it stays unpopulated (pte_none).
    expect(ptePfn(k, p, a)).toBe(0);
    expect(m.refcount[head]).toBe(16);
    expect(m.largeMapcount[head]).toBe(16);
    expect(m.entireMapcount[head]).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES - rss).toBe(16);
    expect(k.core.mthpStats.anon_fault_alloc[4]).toBe(1);
    expect(p.readI32(a + K64 + 5 * PAGE_SIZE)).toBe(42);
    expect(p.readI32(a + K64)).toBe(0);
  });

  it('an order whose aligned block leaves the VMA, or holds a non-none PTE, is skipped', () => {
    const k = mthpMachine({ 2: 'always', 4: 'always' });
    const p = k.spawn();
    const a = aligned(p, K64, PMD_SIZE);
    expect(p.munmap(a + K64 - PAGE_SIZE, PAGE_SIZE)).toBe(0);
    p.writeI32(a, 1);
    // 64K would cross the VMA's end; 16K fits.
    expect(orderAt(k, p, a)).toBe(2);
    const b = aligned(p, K64, PMD_SIZE);
    expect(p.readI32(b + 3 * PAGE_SIZE)).toBe(0); // the zero page fills one PTE
    p.writeI32(b + 8 * PAGE_SIZE, 1);
    expect(orderAt(k, p, b + 8 * PAGE_SIZE)).toBe(2);
    p.writeI32(b, 1);
    // The 16K block around b holds the zero-page PTE at b + 3 pages.
    expect(orderAt(k, p, b)).toBe(0);
  });

  it('an allocation failure falls back order by order, counting anon_fault_fallback', () => {
    const k = mthpMachine({ 2: 'always', 3: 'always', 5: 'always' });
    const p = k.spawn();
    const a = aligned(p, 2 * K64, PMD_SIZE);
    k.core.zone.failHook = (order) => order === 5 || order === 3;
    p.writeI32(a, 1);
    k.core.zone.failHook = undefined;
    expect(orderAt(k, p, a)).toBe(2);
    expect(k.core.mthpStats.anon_fault_fallback[5]).toBe(1);
    expect(k.core.mthpStats.anon_fault_fallback[3]).toBe(1);
    expect(k.core.mthpStats.anon_fault_alloc[2]).toBe(1);
    const pp = k.spawn();
    expect(readText(pp, `${thpSizeDir(5)}/stats/anon_fault_fallback`)).toBe('1\n');
  });

  it('a failed PMD allocation falls back to the highest enabled mTHP order (THP_FAULT_FALLBACK)', () => {
    const k = mthpMachine({ 8: 'always', 4: 'always' }, 'always');
    const p = k.spawn();
    const a = aligned(p, PMD_SIZE, PMD_SIZE);
    k.core.zone.failHook = (order) => order === HPAGE_PMD_ORDER;
    p.writeI32(a + PMD_SIZE - PAGE_SIZE, 3);
    k.core.zone.failHook = undefined;
    expect(k.core.vmstat.thp_fault_fallback).toBe(1);
    expect(k.core.mthpStats.anon_fault_fallback[HPAGE_PMD_ORDER]).toBe(1);
    expect(orderAt(k, p, a + PMD_SIZE - PAGE_SIZE)).toBe(8);
    expect(k.core.mthpStats.anon_fault_alloc[8]).toBe(1);
    expect(p.readI32(a + PMD_SIZE - PAGE_SIZE)).toBe(3);
  });

  it('"madvise" sizes need MADV_HUGEPAGE; "inherit" follows the top-level mode', () => {
    const k = mthpMachine({ 3: 'madvise', 2: 'inherit' }, 'madvise');
    const p = k.spawn();
    const a = aligned(p, K64, PMD_SIZE);
    p.writeI32(a, 1);
    expect(orderAt(k, p, a)).toBe(0);
    const b = aligned(p, K64, PMD_SIZE);
    expect(p.madvise(b, K64, MADV_HUGEPAGE)).toBe(0);
    p.writeI32(b, 1);
    expect(orderAt(k, p, b)).toBe(3);
  });
});

describe('PTE-mapped large folios', () => {
  function setup(order = 4): { k: Kernel; p: Process; a: number; head: number } {
    const k = mthpMachine({ [order]: 'always' });
    const p = k.spawn();
    const a = aligned(p, 2 * K64, PMD_SIZE);
    for (let i = 0; i < 1 << order; i++) p.writeI32(a + i * PAGE_SIZE, 1000 + i);
    const head = folioOf(k, p, a);
    expect(k.core.map.folioOrder(head)).toBe(order);
    return { k, p, a, head };
  }

  it('munmap of part queues the folio for deferred split (split_deferred); all of it frees it', () => {
    const { k, p, a, head } = setup();
    const m = k.core.map;
    expect(p.munmap(a + 4 * PAGE_SIZE, 2 * PAGE_SIZE)).toBe(0);
    expect(m.flags[head] & PG_deferred_split).not.toBe(0);
    expect(m.flags[head] & PG_partially_mapped).not.toBe(0);
    expect(m.largeMapcount[head]).toBe(14);
    expect(m.refcount[head]).toBe(14);
    expect(k.core.mthpStats.split_deferred[4]).toBe(1);
    // Not PMD-sized: THP_DEFERRED_SPLIT_PAGE stays.
    expect(k.core.vmstat.thp_deferred_split_page).toBe(0);
    expect(p.readI32(a + 6 * PAGE_SIZE)).toBe(1006);
    expect(p.munmap(a, K64)).toBe(0);
    // The last mapping's reference freed the folio (free_frozen_pages()).
    expect(m.refcount[head]).toBe(0);
    expect(m.folioOrder(head)).toBe(0);
  });

  it('munmap of the whole folio zaps it in one batch: no deferred split', () => {
    const { k, p, a, head } = setup();
    expect(p.madvise(a, K64, MADV_DONTNEED)).toBe(0);
    expect(k.core.mthpStats.split_deferred[4]).toBe(0);
    expect(k.core.map.refcount[head]).toBe(0);
    expect(p.readI32(a)).toBe(0);
  });

  it('fork shares every page; a COW copies one page; after the child exits the parent reuses the folio', () => {
    const { k, p, a, head } = setup();
    const m = k.core.map;
    const child = k.task(p.fork())!;
    expect(m.largeMapcount[head]).toBe(32);
    expect(m.refcount[head]).toBe(32);
    const cow = k.core.vmstat.cow_faults;
    child.writeI32(a + 3 * PAGE_SIZE, 7);
    expect(k.core.vmstat.cow_faults - cow).toBe(1);
    expect(folioOf(k, child, a + 3 * PAGE_SIZE)).not.toBe(head);
    expect(p.readI32(a + 3 * PAGE_SIZE)).toBe(1003);
    // The parent shares the folio with the child: its write copies too.
    p.writeI32(a, 5);
    expect(k.core.vmstat.cow_faults - cow).toBe(2);
    child.exit(0);
    p.waitpid(child.pid);
    // Only this mm maps the folio and every reference is a mapping: reuse in place.
    p.writeI32(a + 9 * PAGE_SIZE, 9);
    expect(k.core.vmstat.cow_faults - cow).toBe(2);
    expect(folioOf(k, p, a + 9 * PAGE_SIZE)).toBe(head);
    expect(m.flags[head + 9] & PG_anon_exclusive).not.toBe(0);
    expect(p.readI32(a + 9 * PAGE_SIZE)).toBe(9);
  });

  it('a large folio with a single page mapped is copied on a write fault (to free it)', () => {
    const { k, p, a, head } = setup(2);
    const child = k.task(p.fork())!;
    expect(p.munmap(a + PAGE_SIZE, 3 * PAGE_SIZE)).toBe(0);
    child.exit(0);
    p.waitpid(child.pid);
    const cow = k.core.vmstat.cow_faults;
    p.writeI32(a, 77);
    expect(k.core.vmstat.cow_faults - cow).toBe(1);
    expect(folioOf(k, p, a)).not.toBe(head);
    expect(p.readI32(a)).toBe(77);
  });

  it('mprotect of part and mremap to an unaligned address keep the data and the mappings', () => {
    const { k, p, a } = setup();
    expect(p.mprotect(a + 2 * PAGE_SIZE, 3 * PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.mprotect(a + 2 * PAGE_SIZE, 3 * PAGE_SIZE, RW)).toBe(0);
    const dst = p.mmap(0, 4 * K64, PROT_NONE, ANON);
    const to = dst + 3 * PAGE_SIZE;
    expect(p.mremap(a, K64, K64, MREMAP_MAYMOVE | MREMAP_FIXED, to)).toBe(to);
    for (let i = 0; i < 16; i++) expect(p.readI32(to + i * PAGE_SIZE)).toBe(1000 + i);
    p.writeI32(to + 2 * PAGE_SIZE, 3);
    expect(k.core.map.folioOrder(folioOf(k, p, to))).toBe(4);
    expect(p.mmap(a, K64, RW, ANON | MAP_FIXED)).toBe(a);
  });

  it('MADV_FREE of part of the folio splits it first; MADV_PAGEOUT swaps the pieces out', () => {
    const { k, p, a, head } = setup();
    expect(p.madvise(a, 4 * PAGE_SIZE, MADV_FREE)).toBe(0);
    expect(k.core.map.folioOrder(k.core.map.head[head + 8])).toBe(0);
    for (let i = 0; i < 16; i++) expect(p.readI32(a + i * PAGE_SIZE)).toBe(1000 + i);
    const q = setup();
    const out = q.k.core.vmstat.pswpout;
    expect(q.p.madvise(q.a, K64, MADV_PAGEOUT)).toBe(0);
    // The whole folio was written to 16 consecutive swap slots (folio_alloc_swap() of order 4).
    expect(q.k.core.mthpStats.swpout[4]).toBe(1);
    expect(q.k.core.vmstat.pswpout - out).toBe(16);
    expect(q.k.core.vmstat.thp_swpout).toBe(0);
    expect(q.p.mm.rss.MM_SWAPENTS).toBe(16);
    for (let i = 0; i < 16; i++) expect(q.p.readI32(q.a + i * PAGE_SIZE)).toBe(1000 + i);
  });

  it('pagemap reports PM_MMAP_EXCLUSIVE per page; smaps/meminfo AnonHugePages count PMD-mapped only', () => {
    const { k, p, a } = setup();
    const fd = p.open('/proc/self/pagemap', O_RDONLY);
    const buf = new Uint8Array(8 * 16);
    expect(p.pread(fd, buf, buf.length, (a / PAGE_SIZE) * 8)).toBe(buf.length);
    const dv = new DataView(buf.buffer);
    for (let i = 0; i < 16; i++)
      expect(dv.getBigUint64(i * 8, true) & PM_MMAP_EXCLUSIVE).toBe(PM_MMAP_EXCLUSIVE);
    p.close(fd);
    // smaps_pte_entry() counts PTE-mapped pages in Rss and Anonymous, never in AnonHugePages.
    const e = smaps(k.core, p.mm).find((x) => x.start <= a && a < x.end)!;
    expect(e.anonymous).toBeGreaterThanOrEqual(K64);
    expect(e.anonHugePages).toBe(0);
    expect(k.core.vmstat.nr_anon_transparent_hugepages).toBe(0);
    expect(readText(p, '/proc/meminfo')).toMatch(/AnonHugePages:\s+0 kB/);
  });
});

describe('/sys/kernel/debug/split_huge_pages (split_huge_pages_write, split_huge_pages_pid)', () => {
  const path = '/sys/kernel/debug/split_huge_pages';

  it('splits an mTHP to a lower order, then to order 0, keeping the data', () => {
    const k = mthpMachine({ 4: 'always' });
    const p = k.spawn();
    const a = aligned(p, K64, PMD_SIZE);
    for (let i = 0; i < 16; i++) p.writeI32(a + i * PAGE_SIZE, i + 1);
    const head = folioOf(k, p, a);
    const line = `${p.pid},0x${a.toString(16)},0x${(a + K64).toString(16)},2`;
    expect(writeText(p, path, line)).toBe(line.length);
    for (let i = 0; i < 16; i += 4) {
      expect(k.core.map.head[head + i]).toBe(head + i);
      expect(k.core.map.folioOrder(head + i)).toBe(2);
    }
    expect(k.core.mthpStats.split[4]).toBe(1);
    expect(writeText(p, path, `${p.pid},0x${a.toString(16)},0x${(a + K64).toString(16)}\n`)).toBeGreaterThan(
      0,
    );
    for (let i = 0; i < 16; i++) expect(k.core.map.folioOrder(head + i)).toBe(0);
    expect(k.core.mthpStats.split[2]).toBe(4);
    for (let i = 0; i < 16; i++) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i + 1);
  });

  it('splits a PMD-mapped THP to an mTHP order (THP_SPLIT_PAGE counted)', () => {
    const k = machine('always');
    const p = k.spawn();
    const a = aligned(p, PMD_SIZE, PMD_SIZE);
    for (let i = 0; i < 512; i += 37) p.writeI32(a + i * PAGE_SIZE, i);
    const [pmdT, lo, hi] = readPmd(k.core, p.mm, a);
    expect(pmdT).toBeGreaterThanOrEqual(0);
    expect(k.core.map.folioOrder(entryPfn(lo, hi))).toBe(HPAGE_PMD_ORDER);
    const line = `${p.pid},0x${a.toString(16)},0x${(a + PMD_SIZE).toString(16)},5`;
    expect(writeText(p, path, line)).toBe(line.length);
    expect(k.core.vmstat.thp_split_page).toBe(1);
    expect(k.core.map.folioOrder(folioOf(k, p, a + 100 * PAGE_SIZE))).toBe(5);
    for (let i = 0; i < 512; i += 37) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i);
  });

  it('an in-folio offset splits an anonymous THP non-uniformly (folio_split()): order 1 is skipped, four order-0 folios at the page', () => {
    const k = machine('always');
    const p = k.spawn();
    const a = aligned(p, PMD_SIZE, PMD_SIZE);
    for (let i = 0; i < 512; i += 3) p.writeI32(a + i * PAGE_SIZE, i + 1);
    const [, lo, hi] = readPmd(k.core, p.mm, a);
    const head = entryPfn(lo, hi);
    expect(k.core.map.folioOrder(head)).toBe(HPAGE_PMD_ORDER);
    const line = `${p.pid},0x${a.toString(16)},0x${(a + PAGE_SIZE).toString(16)},0,256`;
    expect(writeText(p, path, line)).toBe(line.length);
    expect(k.core.vmstat.thp_split_page).toBe(1);
    const orders: [number, number][] = [];
    for (let i = 0; i < 512; i += k.core.map.folioNrPages(head + i)) {
      expect(k.core.map.head[head + i]).toBe(head + i);
      orders.push([i, k.core.map.folioOrder(head + i)]);
    }
    // __split_unmapped_folio(): halves down to order 2, then order 2 straight to order 0.
    expect(orders).toEqual([
      [0, 8],
      [256, 0],
      [257, 0],
      [258, 0],
      [259, 0],
      [260, 2],
      [264, 3],
      [272, 4],
      [288, 5],
      [320, 6],
      [384, 7],
    ]);
    for (let i = 0; i < 512; i += 3) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i + 1);
  });

  it('"1" splits every THP of the machine to order 0 (split_huge_pages_all)', () => {
    const k = mthpMachine({ 4: 'always' }, 'always');
    const p = k.spawn();
    const a = aligned(p, PMD_SIZE, PMD_SIZE);
    const b = aligned(p, K64, PMD_SIZE);
    for (let i = 0; i < 512; i += 5) p.writeI32(a + i * PAGE_SIZE, i);
    p.writeI32(b + 3 * PAGE_SIZE, 99);
    expect(orderAt(k, p, b)).toBe(4);
    expect(writeText(p, path, '1\n')).toBe(2);
    expect(k.core.vmstat.thp_split_page).toBe(1);
    expect(k.core.mthpStats.split[4]).toBe(1);
    expect(orderAt(k, p, b)).toBe(0);
    expect(orderAt(k, p, a + 7 * PAGE_SIZE)).toBe(0);
    for (let i = 0; i < 512; i += 5) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i);
    expect(p.readI32(b + 3 * PAGE_SIZE)).toBe(99);
  });

  it('bad input: -EINVAL for malformed lines, -ESRCH for an unknown pid; order 1 splits nothing', () => {
    const k = mthpMachine({ 4: 'always' });
    const p = k.spawn();
    const a = aligned(p, K64, PMD_SIZE);
    p.writeI32(a, 1);
    expect(writeText(p, path, 'hello')).toBe(-EINVAL);
    expect(writeText(p, path, `${p.pid},${a}`)).toBe(-EINVAL);
    expect(writeText(p, path, `${p.pid},0x${a.toString(16)}`)).toBe(-EINVAL);
    expect(writeText(p, path, `9999,0x${a.toString(16)},0x${(a + K64).toString(16)}`)).toBe(-ESRCH);
    const line = `${p.pid},0x${a.toString(16)},0x${(a + K64).toString(16)},1`;
    expect(writeText(p, path, line)).toBe(line.length);
    expect(orderAt(k, p, a)).toBe(4);
    // Anonymous folios cannot be split to order 1: every page of the range retries the split,
    // and __folio_split() returns -EINVAL at folio_split_supported(), before its `out:` label
    // counts MTHP_STAT_SPLIT_FAILED (v6.19).
    expect(k.core.mthpStats.split_failed[4]).toBe(0);
    expect(k.core.mthpStats.split[4]).toBe(0);
  });
});

describe('invariant checker for large PTE-mapped folios', () => {
  it('an mTHP passes; a page mapped twice in one mm, a stray partially-mapped flag and order-1 anon folios do not', () => {
    const k = mthpMachine({ 2: 'always' });
    const p = k.spawn();
    const a = aligned(p, K64, PMD_SIZE);
    p.writeI32(a, 1);
    const head = folioOf(k, p, a);
    expect(k.check()).toEqual([]);
    const m = k.core.map;
    // Map page 0 of the folio a second time in place of page 1 (counts adjusted to match).
    const t = pteTableOfAddr(k, p, a);
    const i = pteIndexOf(a);
    const lo1 = ptLoOf(k, t, i + 1);
    const hi1 = ptHiOf(k, t, i + 1);
    ptSetOf(k, t, i + 1, ptLoOf(k, t, i) & ~_PAGE_RW, ptHiOf(k, t, i));
    ptSetOf(k, t, i, ptLoOf(k, t, i) & ~_PAGE_RW, ptHiOf(k, t, i));
    m.mapcount[head]++;
    m.mapcount[head + 1]--;
    m.flags[head] &= ~PG_anon_exclusive;
    m.flags[head + 1] &= ~PG_anon_exclusive;
    const v = k.check().join('\n');
    expect(v).toMatch(/anonymous page mapped twice in one mm/);
    ptSetOf(k, t, i + 1, lo1, hi1);
    ptSetOf(k, t, i, ptLoOf(k, t, i) | _PAGE_RW, ptHiOf(k, t, i));
    m.mapcount[head]--;
    m.mapcount[head + 1]++;
    m.flags[head] |= PG_anon_exclusive;
    m.flags[head + 1] |= PG_anon_exclusive;
    expect(k.check()).toEqual([]);
    m.flags[head] |= PG_partially_mapped;
    expect(k.check().join('\n')).toMatch(/PG_partially_mapped without being on the deferred split queue/);
    m.flags[head] &= ~PG_partially_mapped;
    m.order[head] = 1;
    expect(k.check().join('\n')).toMatch(/anonymous folio of order 1/);
    m.order[head] = 2;
    expect(k.check()).toEqual([]);
  });
});

describe('collapse over mTHPs (collapse_huge_page)', () => {
  it('MADV_COLLAPSE of a PMD range filled with order-4 folios makes one PMD THP with the same data', () => {
    const k = mthpMachine({ 4: 'always' }, 'madvise');
    const p = k.spawn();
    const a = aligned(p, PMD_SIZE, PMD_SIZE);
    for (let i = 0; i < 512; i += 3) p.writeI32(a + i * PAGE_SIZE, i + 7);
    expect(orderAt(k, p, a)).toBe(4);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    const [pmdT, lo, hi] = readPmd(k.core, p.mm, a);
    expect(pmdT).toBeGreaterThanOrEqual(0);
    expect(k.core.map.folioOrder(entryPfn(lo, hi))).toBe(HPAGE_PMD_ORDER);
    for (let i = 0; i < 512; i++) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i % 3 === 0 ? i + 7 : 0);
  });
});

describe('deferred split of PMD-sized folios (__folio_remove_rmap at PMD level)', () => {
  it('the last PMD unmap queues the folio only when some but not all pages stay PTE-mapped', () => {
    const k = machine('always');
    const p = k.spawn();
    const a = aligned(p, PMD_SIZE, PMD_SIZE);
    p.writeI32(a, 1);
    const [, lo, hi] = readPmd(k.core, p.mm, a);
    const head = entryPfn(lo, hi);
    const child = k.task(p.fork())!;
    // The child's PMD is split: every page PTE-mapped there, the parent still maps the PMD.
    expect(child.mprotect(a, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(k.core.map.entireMapcount[head]).toBe(1);
    expect(p.munmap(a, PMD_SIZE)).toBe(0);
    // nr == 0: no page lost its last mapping.
    expect(k.core.vmstat.thp_deferred_split_page).toBe(0);
    expect(child.munmap(a + PAGE_SIZE, PAGE_SIZE)).toBe(0);
    expect(k.core.vmstat.thp_deferred_split_page).toBe(1);
    expect(k.core.mthpStats.split_deferred[HPAGE_PMD_ORDER]).toBe(1);
    expect(k.core.map.flags[head] & PG_partially_mapped).not.toBe(0);
  });
});

describe('sysfs and debugfs writes are C strings', () => {
  it('a store ends at the first NUL byte; split_huge_pages returns strlen() of its input', () => {
    const k = mthpMachine({ 4: 'always' });
    const p = k.spawn();
    const f = `${thpSizeDir(3)}/enabled`;
    const fd = p.open(f, O_WRONLY);
    const b = new TextEncoder().encode('always\0junk');
    expect(p.pwrite(fd, b, b.length, 0)).toBe(b.length);
    p.close(fd);
    expect(readText(p, f)).toBe('[always] inherit madvise never\n');
    const a = aligned(p, K64, PMD_SIZE);
    p.writeI32(a, 1);
    const line = new TextEncoder().encode(
      `${p.pid},0x${a.toString(16)},0x${(a + K64).toString(16)},2\0\xff\xff`,
    );
    const sfd = p.open('/sys/kernel/debug/split_huge_pages', O_WRONLY);
    expect(p.pwrite(sfd, line, line.length, 0)).toBe(line.indexOf(0));
    p.close(sfd);
    expect(orderAt(k, p, a)).toBe(2);
  });
});
