import { describe, expect, it } from 'vitest';
import {
  HPAGE_PMD_NR,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CREAT,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SIGBUS,
  SIGSEGV,
} from '../constants.js';
import { SignalDelivered } from '../errors.js';
import type { Kernel } from '../kernel.js';
import { entryKind, entryPfn } from '../pgtable/entry.js';
import { PG_anon } from '../phys/memmap.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { mmuIntervalNotifierInsert } from './notifier.js';
import { pteIndex, pteTableOf, ptHi, ptLo } from './pgtable.js';
import { MmuIntervalNotifier } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function pte(k: Kernel, p: Process, addr: number): { kind: string; pfn: number } {
  const t = pteTableOf(k.core, p.mm, addr, false);
  if (t < 0) return { kind: 'none', pfn: -1 };
  const i = pteIndex(addr);
  const lo = ptLo(k.core, t, i);
  const hi = ptHi(k.core, t, i);
  return { kind: entryKind(lo, hi, 'pte', k.core.zeroPfn, k.core.hugeZeroPfn), pfn: entryPfn(lo, hi) };
}

function signalOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof SignalDelivered) return e.signo;
    throw e;
  }
  return 0;
}

/** A PMD-aligned private anonymous THP-eligible region. */
function thpRegion(p: Process, n = 1): number {
  const a = p.mmap(0, n * PMD_SIZE, RW, ANON);
  expect(a % PMD_SIZE).toBe(0);
  expect(p.madvise(a, n * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  return a;
}

describe('anonymous faults (do_anonymous_page, do_huge_pmd_anonymous_page)', () => {
  it('a read maps the shared zero page; a write then allocates a private page', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    const zf = k.core.vmstat.zero_page_faults;
    expect(p.readI32(a)).toBe(0);
    expect(pte(k, p, a)).toEqual({ kind: 'zero', pfn: k.core.zeroPfn });
    expect(k.core.vmstat.zero_page_faults).toBe(zf + 1);
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    const cow = k.core.vmstat.cow_faults;
    p.writeI32(a, 5);
    expect(pte(k, p, a).kind).toBe('present');
    expect(k.core.vmstat.cow_faults).toBe(cow + 1);
    expect(p.mm.rss.MM_ANONPAGES).toBe(1);
    expect(p.readI32(a)).toBe(5);
    // A direct write fault allocates without the zero page.
    p.writeI32(a + PAGE_SIZE, 6);
    expect(p.mm.rss.MM_ANONPAGES).toBe(2);
    expect(k.core.frames.page(k.core.zeroPfn).every((b) => b === 0)).toBe(true);
    expect(k.check()).toEqual([]);
  });

  it('a read in a THP-eligible range maps the huge zero page', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    expect(p.readI32(a + 12345 * 4)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge-zero');
    expect(k.core.vmstat.thp_zero_page_alloc).toBe(1);
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    // A second process shares the same huge zero folio.
    const q = k.spawn();
    const b = thpRegion(q);
    expect(q.readI32(b)).toBe(0);
    expect(k.core.vmstat.thp_zero_page_alloc).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('a write in a THP-eligible range allocates a THP', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    p.writeI32(a + PAGE_SIZE * 7, 77);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(k.core.vmstat.thp_fault_alloc).toBe(1);
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    expect(p.readI32(a + PAGE_SIZE * 7)).toBe(77);
    expect(k.core.vmstat.nr_anon_transparent_hugepages).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('a write to the huge zero page replaces it with a THP (do_huge_zero_wp_pmd)', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    expect(p.readI32(a)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge-zero');
    p.writeI32(a + 8, 1);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(k.core.vmstat.thp_fault_alloc).toBe(1);
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    expect(p.readI32(a + 8)).toBe(1);
    expect(p.readI32(a + PMD_SIZE - 4)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('without a THP the write to the huge zero page splits it and COWs one page', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    expect(p.readI32(a)).toBe(0);
    k.core.zone.failHook = (o) => o === 9;
    p.writeI32(a + PAGE_SIZE, 1);
    k.core.zone.failHook = undefined;
    expect(pmdKind(k, p, a)).toBe('table');
    expect(pte(k, p, a).kind).toBe('zero');
    expect(pte(k, p, a + PAGE_SIZE).kind).toBe('present');
    expect(p.mm.rss.MM_ANONPAGES).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('falls back to 4 KiB pages when no THP can be allocated', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    k.core.zone.failHook = (o) => o === 9;
    p.writeI32(a, 1);
    k.core.zone.failHook = undefined;
    expect(pmdKind(k, p, a)).toBe('table');
    expect(k.core.vmstat.thp_fault_fallback).toBe(1);
    expect(p.mm.rss.MM_ANONPAGES).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('THP mode "never" and unaligned ranges use 4 KiB pages; "always" needs no advice', () => {
    const k = machine('never');
    const p = k.spawn();
    const a = thpRegion(p);
    p.writeI32(a, 1);
    expect(pmdKind(k, p, a)).toBe('table');
    const k2 = machine('always');
    const q = k2.spawn();
    const b = q.mmap(0, PMD_SIZE, RW, ANON);
    q.writeI32(b, 1);
    expect(pmdKind(k2, q, b)).toBe('huge');
    const c = q.mmap(0, PMD_SIZE - PAGE_SIZE, RW, ANON);
    q.writeI32(c, 1);
    expect(pmdKind(k2, q, c)).toBe('table');
    expect(k.check()).toEqual([]);
    expect(k2.check()).toEqual([]);
  });
});

describe('COW after fork (do_wp_page, do_huge_pmd_wp_page)', () => {
  it('small pages: both sides keep their own data after writes', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * PAGE_SIZE, i);
    const c = k.task(p.fork())!;
    const shared = pte(k, p, a).pfn;
    expect(pte(k, c, a).pfn).toBe(shared);
    expect(k.core.map.refcount[shared]).toBe(2);
    c.writeI32(a, 100);
    p.writeI32(a + PAGE_SIZE, 200);
    expect([p.readI32(a), c.readI32(a)]).toEqual([0, 100]);
    expect([p.readI32(a + PAGE_SIZE), c.readI32(a + PAGE_SIZE)]).toEqual([200, 1]);
    // The parent's page is exclusive again once the child has its copy: reused, not copied.
    const cow = k.core.vmstat.cow_faults;
    p.writeI32(a, 1);
    expect(k.core.vmstat.cow_faults).toBe(cow);
    expect(pte(k, p, a).pfn).toBe(shared);
    expect(k.check()).toEqual([]);
  });

  it('THP: a write by either side splits the PMD and copies one page', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    for (let i = 0; i < HPAGE_PMD_NR; i++) p.writeI32(a + i * PAGE_SIZE, i);
    const c = k.task(p.fork())!;
    expect(pmdKind(k, c, a)).toBe('huge');
    expect(c.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    c.writeI32(a + 3 * PAGE_SIZE, -3);
    expect(pmdKind(k, c, a)).toBe('table');
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(p.readI32(a + 3 * PAGE_SIZE)).toBe(3);
    expect(c.readI32(a + 3 * PAGE_SIZE)).toBe(-3);
    expect(c.readI32(a + 4 * PAGE_SIZE)).toBe(4);
    p.writeI32(a + 4 * PAGE_SIZE, -4);
    expect(c.readI32(a + 4 * PAGE_SIZE)).toBe(4);
    expect(k.check()).toEqual([]);
  });

  it('THP: after the child exits the parent reuses the whole THP', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    p.writeI32(a, 1);
    const c = k.task(p.fork())!;
    c.exit(0);
    const splits = k.core.vmstat.thp_split_pmd;
    p.writeI32(a, 2);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(k.core.vmstat.thp_split_pmd).toBe(splits);
    expect(p.readI32(a)).toBe(2);
    expect(k.check()).toEqual([]);
  });

  it('huge zero page is shared across fork without refcounting', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRegion(p);
    p.readI32(a);
    p.writeI32(a + PMD_SIZE - 4, 0); // now a THP
    const b = thpRegion(p);
    p.readI32(b);
    const c = k.task(p.fork())!;
    expect(pmdKind(k, c, b)).toBe('huge-zero');
    c.writeI32(b, 9);
    expect(p.readI32(b)).toBe(0);
    expect(k.check()).toEqual([]);
  });
});

describe('file and shmem faults (do_read_fault, do_shared_fault, do_cow_fault)', () => {
  it('shared mappings map the page-cache page; private writes copy it', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/f', O_RDWR | O_CREAT);
    p.ftruncate(fd, 2 * PAGE_SIZE);
    p.pwrite(fd, new Uint8Array([1, 2, 3, 4]), 4, 0);
    const s = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, fd);
    const v = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, fd);
    expect(p.readI32(s)).toBe(0x04030201);
    expect(p.readI32(v)).toBe(0x04030201);
    const cache = k.tmpfs.get('/tmp/f')!.pages.get(0)!;
    expect(pte(k, p, s).pfn).toBe(cache);
    expect(pte(k, p, v).pfn).toBe(cache);
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(2);
    p.writeI32(v, 9);
    expect(pte(k, p, v).pfn).not.toBe(cache);
    expect(k.core.map.flags[pte(k, p, v).pfn] & PG_anon).toBe(PG_anon);
    expect(p.readI32(s)).toBe(0x04030201);
    p.writeI32(s, 7);
    expect(p.readI32(v)).toBe(9);
    const buf = new Uint8Array(4);
    p.pread(fd, buf, 4, 0);
    expect(buf[0]).toBe(7);
    // Private read of a page written later through the file sees the new data (no copy yet).
    p.pwrite(fd, new Uint8Array([5]), 1, PAGE_SIZE);
    expect(p.readU8(v + PAGE_SIZE)).toBe(5);
    expect(k.check()).toEqual([]);
  });

  it('access beyond EOF raises SIGBUS; truncation unmaps', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/f', O_RDWR | O_CREAT);
    p.ftruncate(fd, PAGE_SIZE);
    const s = p.mmap(0, 3 * PAGE_SIZE, RW, MAP_SHARED, fd);
    p.writeI32(s, 1);
    expect(k.check()).toEqual([]);
    const c = k.task(p.fork())!;
    expect(c.readI32(s)).toBe(1);
    expect(signalOf(() => c.readI32(s + PAGE_SIZE))).toBe(SIGBUS);
    const ranges: [number, number][] = [];
    mmuIntervalNotifierInsert(
      new MmuIntervalNotifier(p.mm, s, s + 3 * PAGE_SIZE, {
        *invalidate(_sub, r) {
          ranges.push([r.start - s, r.end - s]);
          return true;
        },
      }),
    );
    expect(p.ftruncate(fd, 0)).toBe(0);
    // unmap_mapping_range() tells mirrors (hmm_range_fault users) about the zap, twice:
    // shmem_setattr() unmaps before and after the truncate.
    expect(ranges).toEqual([
      [0, 3 * PAGE_SIZE],
      [0, 3 * PAGE_SIZE],
    ]);
    expect(k.check()).toEqual([]);
    expect(signalOf(() => p.readI32(s))).toBe(SIGBUS);
    expect(k.check()).toEqual([]);
  });
});

describe('bad accesses', () => {
  it('PROT_NONE and unmapped addresses raise SIGSEGV; write to read-only too', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, PROT_NONE, ANON);
    expect(signalOf(() => p.readI32(a))).toBe(SIGSEGV);
    const q = k.spawn();
    expect(signalOf(() => q.readI32(0x1000))).toBe(SIGSEGV);
    const r = k.spawn();
    const b = r.mmap(0, PAGE_SIZE, PROT_READ, ANON);
    expect(r.readI32(b)).toBe(0);
    expect(signalOf(() => r.writeI32(b, 1))).toBe(SIGSEGV);
    expect(r.state).not.toBe('running');
    expect(() => r.readI32(b)).toThrow(SignalDelivered);
    expect(k.check()).toEqual([]);
  });

  it('write-only and execute-only mappings are readable (x86 access_error)', () => {
    const k = machine();
    const p = k.spawn();
    const w = p.mmap(0, PAGE_SIZE, PROT_WRITE, ANON);
    expect(p.readI32(w)).toBe(0);
    p.writeI32(w, 3);
    expect(p.readI32(w)).toBe(3);
    const x = p.mmap(0, PAGE_SIZE, PROT_EXEC, ANON);
    expect(p.readI32(x)).toBe(0);
    expect(signalOf(() => p.writeI32(x, 1))).toBe(SIGSEGV);
    expect(k.check()).toEqual([]);
  });

  it('an access crossing into an unmapped page faults after the mapped part', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.munmap(a + PAGE_SIZE, PAGE_SIZE);
    expect(signalOf(() => p.writeBytes(a + PAGE_SIZE - 2, new Uint8Array(4)))).toBe(SIGSEGV);
    expect(k.check()).toEqual([]);
  });
});
