import { describe, expect, it } from 'vitest';
import {
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_RDONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { SignalDelivered } from '../errors.js';
import { Kernel } from '../kernel.js';
import { _PAGE_SWP_EXCLUSIVE, entryPresent } from '../pgtable/entry.js';
import { PG_swapcache } from '../phys/memmap.js';
import type { Process } from '../process.js';
import { machine } from '../testing/helpers.js';
import { meminfoKb, pageout, pteAt, swapCountAt, swapEntryAt } from '../testing/swap.js';
import { DEFAULT_SWAP_BYTES, swpEntryOffset } from './swapfile.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const KiB = 1024;
const MiB = 1 << 20;

/** Reads the /proc/self/pagemap entry of addr through p (8 bytes at addr / 4096 * 8). */
function pagemap(p: Process, addr: number): bigint {
  const fd = p.open('/proc/self/pagemap', O_RDONLY);
  const buf = new Uint8Array(8);
  expect(p.pread(fd, buf, 8, (addr / PAGE_SIZE) * 8)).toBe(8);
  p.close(fd);
  return new DataView(buf.buffer).getBigUint64(0, true);
}

/** Fills n pages from addr with a per-page pattern (salted). */
function fill(p: Process, addr: number, n: number, salt = 0): void {
  for (let i = 0; i < n; i++) {
    const v = new Int32Array(PAGE_SIZE / 4);
    for (let j = 0; j < v.length; j++) v[j] = (i * 7919 + j * 31 + salt) | 0;
    p.writeInts(addr + i * PAGE_SIZE, v);
  }
}

/** The index of the first int that differs from {@link fill}'s pattern, or -1. */
function badFill(p: Process, addr: number, n: number, salt = 0): number {
  for (let i = 0; i < n; i++) {
    const v = p.readInts(addr + i * PAGE_SIZE, PAGE_SIZE / 4);
    for (let j = 0; j < v.length; j++) if (v[j] !== ((i * 7919 + j * 31 + salt) | 0)) return i * 1024 + j;
  }
  return -1;
}

describe('swap area (sys_swapon(), si_swapinfo())', () => {
  it('a machine boots with a 1 GiB swap area: /proc/meminfo SwapTotal = SwapFree = total_swap_pages', () => {
    const k = machine();
    const p = k.spawn();
    expect(DEFAULT_SWAP_BYTES).toBe(1 << 30);
    // The header page is not a slot (si->pages = maxpages - 1).
    expect(meminfoKb(p, 'SwapTotal')).toBe((1024 * MiB) / KiB - 4);
    expect(meminfoKb(p, 'SwapFree')).toBe((1024 * MiB) / KiB - 4);
    expect(meminfoKb(p, 'SwapCached')).toBe(0);
  });

  it('swapBytes: 0 boots without swap: SwapTotal 0, and reclaim keeps every anonymous page', () => {
    const k = machine('madvise', { swapBytes: 0 });
    const p = k.spawn();
    expect(meminfoKb(p, 'SwapTotal')).toBe(0);
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    fill(p, a, 4);
    // folio_alloc_swap() fails: every folio goes back to the LRU, still mapped.
    expect(pageout(k, p, a, 4 * PAGE_SIZE)).toBe(0);
    expect(pagemap(p, a) >> 63n).toBe(1n);
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expect(badFill(p, a, 4)).toBe(-1);
    expect(k.check()).toEqual([]);
  });

  it('without swap, a fault that cannot get memory still ends in the OOM killer (out_of_memory())', () => {
    const k = machine('madvise', { swapBytes: 0 });
    const init = k.spawn();
    const c = k.task(init.fork());
    if (!c) throw new Error('fork failed');
    const a = c.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    k.core.zone.failHook = () => true;
    expect(() => c.writeI32(a, 1)).toThrow(SignalDelivered);
    k.core.zone.failHook = undefined;
    expect(c.state).not.toBe('running');
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(k.core.vmstat.pswpout).toBe(0);
    expect(init.waitpid(c.pid)).toBe(c.pid);
    expect(k.check()).toEqual([]);
  });

  it('refuses swap sizes sys_swapon() could not set up', () => {
    for (const bad of [-4096, 4096, 4097, 1.5, Number.NaN, 128 * 2 ** 30])
      expect(() => new Kernel({ ramBytes: 64 << 20, swapBytes: bad })).toThrow(RangeError);
    const k = new Kernel({ ramBytes: 64 << 20, swapBytes: 8192 });
    expect(k.core.swapInfo[0].pages).toBe(1);
  });
});

describe('MADV_PAGEOUT reclaim (reclaim_pages() -> shrink_folio_list() -> pageout()) and swap-in (do_swap_page())', () => {
  it('swaps anonymous pages out to swap PTEs and reads the same bytes back on fault', () => {
    const k = machine();
    const p = k.spawn();
    const n = 16;
    const a = p.mmap(0, n * PAGE_SIZE, RW, ANON);
    fill(p, a, n);
    const free = k.core.zone.nrFree;
    const swapFree = meminfoKb(p, 'SwapFree');
    expect(pageout(k, p, a, n * PAGE_SIZE)).toBe(n);
    // Every page was written (PSWPOUT) and freed; its PTE is a swap entry now.
    expect(k.core.vmstat.pswpout).toBe(n);
    expect(k.core.zone.nrFree).toBe(free + n);
    expect(meminfoKb(p, 'SwapFree')).toBe(swapFree - n * 4);
    expect(meminfoKb(p, 'SwapCached')).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    expect(p.mm.rss.MM_SWAPENTS).toBe(n);
    for (let i = 0; i < n; i++) expect(swapCountAt(k, p, a + i * PAGE_SIZE)).toBe(1);
    // Reads fault every page back in (major faults, PSWPIN).
    const maj = k.core.vmstat.pgmajfault;
    expect(badFill(p, a, n)).toBe(-1);
    expect(k.core.vmstat.pswpin).toBe(n);
    expect(k.core.vmstat.pgmajfault).toBe(maj + n);
    expect(p.mm.rss.MM_ANONPAGES).toBe(n);
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('reports a swapped page in /proc/self/pagemap with PM_SWAP (bit 62), the swap type in bits 0-4 and the offset in bits 5-54', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 3 * PAGE_SIZE, RW, ANON);
    fill(p, a, 3);
    pageout(k, p, a, 3 * PAGE_SIZE);
    const offsets = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const e = pagemap(p, a + i * PAGE_SIZE);
      expect(e >> 63n).toBe(0n);
      expect((e >> 62n) & 1n).toBe(1n);
      expect(e & 31n).toBe(0n);
      const off = Number((e >> 5n) & ((1n << 50n) - 1n));
      // Slot 0 is the swap header, never handed out.
      expect(off).toBeGreaterThan(0);
      expect(off).toBe(swpEntryOffset(swapEntryAt(k, p, a + i * PAGE_SIZE)));
      offsets.add(off);
    }
    expect(offsets.size).toBe(3);
    // After swap-in the entry is present again.
    p.readI32(a);
    expect(pagemap(p, a) >> 63n).toBe(1n);
  });

  it('marks the swap PTE of a PageAnonExclusive page exclusive, and swap-in maps it writable without a copy', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 11);
    pageout(k, p, a, PAGE_SIZE);
    const [lo] = pteAt(k, p, a);
    expect(entryPresent(lo)).toBe(false);
    expect(lo & _PAGE_SWP_EXCLUSIVE).toBe(_PAGE_SWP_EXCLUSIVE);
    // A read fault: exclusive -> mapped writable; the folio stays in the swap cache.
    expect(p.readI32(a)).toBe(11);
    const pfn = pagemap(p, a) & ((1n << 55n) - 1n);
    expect(meminfoKb(p, 'SwapCached')).toBe(4);
    const cow = k.core.vmstat.cow_faults;
    const faults = k.core.vmstat.pgfault;
    p.writeI32(a, 12);
    expect(k.core.vmstat.pgfault).toBe(faults);
    expect(k.core.vmstat.cow_faults).toBe(cow);
    expect(pagemap(p, a) & ((1n << 55n) - 1n)).toBe(pfn);
    expect(k.check()).toEqual([]);
  });

  it('writes a swap-cache page again when it was dirtied through its writable PTE (try_to_unmap_one() moves pte_dirty() to the folio)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 1);
    pageout(k, p, a, PAGE_SIZE);
    expect(p.readI32(a)).toBe(1);
    const head = k.core.map.head[Number(pagemap(p, a) & ((1n << 55n) - 1n))];
    expect(k.core.map.flags[head] & PG_swapcache).toBe(PG_swapcache);
    // The PTE is writable and clean; the store sets its dirty bit (no fault).
    p.writeI32(a, 2);
    const out = k.core.vmstat.pswpout;
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(1);
    expect(k.core.vmstat.pswpout).toBe(out + 1);
    expect(p.readI32(a)).toBe(2);
    expect(k.check()).toEqual([]);
  });

  it('frees a clean swap-cache page without writing it again', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 5);
    pageout(k, p, a, PAGE_SIZE);
    expect(p.readI32(a)).toBe(5);
    const out = k.core.vmstat.pswpout;
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(1);
    expect(k.core.vmstat.pswpout).toBe(out);
    expect(meminfoKb(p, 'SwapCached')).toBe(0);
    expect(p.readI32(a)).toBe(5);
    expect(k.check()).toEqual([]);
  });

  it('a write fault on a swap entry drops the swap cache (should_try_to_free_swap()) and frees the slot', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 3);
    const swapFree = meminfoKb(p, 'SwapFree');
    pageout(k, p, a, PAGE_SIZE);
    expect(meminfoKb(p, 'SwapFree')).toBe(swapFree - 4);
    p.writeI32(a + 4, 4);
    expect(meminfoKb(p, 'SwapCached')).toBe(0);
    expect(meminfoKb(p, 'SwapFree')).toBe(swapFree);
    expect(p.readI32(a)).toBe(3);
    expect(p.readI32(a + 4)).toBe(4);
    expect(k.check()).toEqual([]);
  });
});

describe('swap entries across fork, munmap, mremap and mprotect', () => {
  it('fork shares a swap entry (copy_nonpresent_pte(): swap_duplicate(), exclusive marker cleared); both sides fault it in and COW', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    fill(p, a, 2);
    pageout(k, p, a, 2 * PAGE_SIZE);
    const c = k.task(p.fork());
    if (!c) throw new Error('fork failed');
    expect(swapCountAt(k, p, a)).toBe(2);
    expect(swapEntryAt(k, c, a)).toBe(swapEntryAt(k, p, a));
    expect(pteAt(k, p, a)[0] & _PAGE_SWP_EXCLUSIVE).toBe(0);
    expect(pteAt(k, c, a)[0] & _PAGE_SWP_EXCLUSIVE).toBe(0);
    expect(c.mm.rss.MM_SWAPENTS).toBe(2);
    // The child reads first: one folio in the swap cache, mapped read-only (not exclusive).
    expect(badFill(c, a, 2)).toBe(-1);
    expect(swapCountAt(k, p, a)).toBe(1);
    const cpfn = pagemap(c, a) & ((1n << 55n) - 1n);
    // The parent finds the same folio in the swap cache.
    expect(p.readI32(a)).toBe(fillValue(0, 0));
    expect(pagemap(p, a) & ((1n << 55n) - 1n)).toBe(cpfn);
    expect(k.core.vmstat.pswpin).toBe(2);
    // Writes COW: each side keeps its own data.
    p.writeI32(a, -1);
    expect(c.readI32(a)).toBe(fillValue(0, 0));
    c.writeI32(a + PAGE_SIZE, -2);
    expect(p.readI32(a + PAGE_SIZE)).toBe(fillValue(1, 0));
    expect(p.readI32(a)).toBe(-1);
    expect(c.readI32(a + PAGE_SIZE)).toBe(-2);
    expect(k.check()).toEqual([]);
    c.exit(0);
    p.waitpid(c.pid);
    p.exit(0);
    expect(meminfoKb(k.spawn(), 'SwapFree')).toBe(meminfoKb(k.spawn(), 'SwapTotal'));
    expect(k.check()).toEqual([]);
  });

  it('munmap frees the slots of swap PTEs (zap_nonpresent_ptes() -> free_swap_and_cache_nr()), part by part', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    fill(p, a, 8);
    const swapFree = meminfoKb(p, 'SwapFree');
    pageout(k, p, a, 8 * PAGE_SIZE);
    expect(meminfoKb(p, 'SwapFree')).toBe(swapFree - 32);
    expect(p.munmap(a + 2 * PAGE_SIZE, 4 * PAGE_SIZE)).toBe(0);
    expect(meminfoKb(p, 'SwapFree')).toBe(swapFree - 16);
    expect(p.mm.rss.MM_SWAPENTS).toBe(4);
    expect(badFill(p, a, 2)).toBe(-1);
    expect(p.readI32(a + 6 * PAGE_SIZE)).toBe(fillValue(6, 0));
    expect(p.munmap(a, 8 * PAGE_SIZE)).toBe(0);
    expect(meminfoKb(p, 'SwapFree')).toBe(swapFree);
    expect(meminfoKb(p, 'SwapCached')).toBe(0);
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('exit frees every slot the process held (exit_mmap() zaps swap PTEs; check_mm() finds no MM_SWAPENTS left)', () => {
    const k = machine();
    const p = k.spawn();
    const c = k.task(p.fork());
    if (!c) throw new Error('fork failed');
    const a = c.mmap(0, 32 * PAGE_SIZE, RW, ANON);
    fill(c, a, 32);
    pageout(k, c, a, 16 * PAGE_SIZE);
    // Half swapped out, some of those swapped back in (left in the swap cache).
    c.readI32(a);
    c.readI32(a + PAGE_SIZE);
    expect(meminfoKb(p, 'SwapCached')).toBe(8);
    c.exit(0);
    p.waitpid(c.pid);
    expect(meminfoKb(p, 'SwapFree')).toBe(meminfoKb(p, 'SwapTotal'));
    expect(meminfoKb(p, 'SwapCached')).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('mremap moves swap PTEs with the mapping; the data reads back at the new address', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    fill(p, a, 4, 5);
    pageout(k, p, a, 4 * PAGE_SIZE);
    const e = swapEntryAt(k, p, a + PAGE_SIZE);
    const target = p.mmap(0, 16 * PAGE_SIZE, RW, ANON);
    expect(p.mremap(a, 4 * PAGE_SIZE, 16 * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, target)).toBe(target);
    const b = target;
    expect(swapEntryAt(k, p, b + PAGE_SIZE)).toBe(e);
    expect(p.mm.rss.MM_SWAPENTS).toBe(4);
    expect(badFill(p, b, 4, 5)).toBe(-1);
    expect(k.check()).toEqual([]);
  });

  it('mprotect leaves swap PTEs alone; swap-in maps with the VMA protection (read-only after PROT_READ)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    fill(p, a, 2);
    pageout(k, p, a, 2 * PAGE_SIZE);
    const e = swapEntryAt(k, p, a);
    expect(p.mprotect(a, 2 * PAGE_SIZE, PROT_READ)).toBe(0);
    expect(swapEntryAt(k, p, a)).toBe(e);
    expect(badFill(p, a, 2)).toBe(-1);
    expect(pteAt(k, p, a)[0] & 2).toBe(0);
    expect(p.mprotect(a, 2 * PAGE_SIZE, RW)).toBe(0);
    p.writeI32(a, 9);
    expect(p.readI32(a)).toBe(9);
    expect(p.readI32(a + 4)).toBe(fillValue(0, 1));
    expect(k.check()).toEqual([]);
  });
});

/** The int at index j of page i written by {@link fill} with salt. */
function fillValue(i: number, j: number, salt = 0): number {
  return (i * 7919 + j * 31 + salt) | 0;
}

describe('THP swap-out (THP_SWAP: folio_alloc_swap() of a cluster, try_to_unmap(TTU_SPLIT_HUGE_PMD))', () => {
  it('swaps a PMD-mapped THP out whole into one cluster: the PMD becomes 512 swap PTEs; swap-in brings order-0 pages back', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    expect(a % PMD_SIZE).toBe(0);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    fill(p, a, 512);
    expect(k.core.vmstat.thp_fault_alloc).toBe(1);
    const splits = k.core.vmstat.thp_split_pmd;
    expect(pageout(k, p, a, PMD_SIZE)).toBe(512);
    expect(k.core.vmstat.thp_swpout).toBe(1);
    expect(k.core.vmstat.thp_swpout_fallback).toBe(0);
    expect(k.core.vmstat.thp_split_pmd).toBe(splits + 1);
    expect(k.core.vmstat.pswpout).toBe(512);
    expect(p.mm.rss.MM_SWAPENTS).toBe(512);
    expect(meminfoKb(p, 'AnonHugePages')).toBe(0);
    // One naturally aligned cluster of 512 slots.
    const first = swpEntryOffset(swapEntryAt(k, p, a));
    expect(first % 512).toBe(0);
    for (let i = 0; i < 512; i++)
      expect(swpEntryOffset(swapEntryAt(k, p, a + i * PAGE_SIZE))).toBe(first + i);
    // Swap-in of one page: an order-0 folio (no large swap-in without SWP_SYNCHRONOUS_IO).
    expect(p.readI32(a + 7 * PAGE_SIZE)).toBe(fillValue(7, 0));
    const pfn = Number(pagemap(p, a + 7 * PAGE_SIZE) & ((1n << 55n) - 1n));
    expect(k.core.map.folioOrder(k.core.map.head[pfn])).toBe(0);
    expect(p.mm.rss.MM_SWAPENTS).toBe(511);
    expect(badFill(p, a, 512)).toBe(-1);
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('splits the THP when no free cluster is left (THP_SWPOUT_FALLBACK) and swaps the pages one by one until swap is full', () => {
    // 2 MiB of swap: one cluster, holding the header slot, so 511 free slots and no free cluster.
    const k = machine('madvise', { swapBytes: 2 * MiB });
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    fill(p, a, 512, 3);
    expect(pageout(k, p, a, PMD_SIZE)).toBe(511);
    expect(k.core.vmstat.thp_swpout_fallback).toBe(1);
    expect(k.core.vmstat.thp_split_page).toBe(1);
    expect(k.core.vmstat.thp_swpout).toBe(0);
    expect(meminfoKb(p, 'SwapFree')).toBe(0);
    expect(p.mm.rss.MM_SWAPENTS).toBe(511);
    expect(p.mm.rss.MM_ANONPAGES).toBe(1);
    expect(badFill(p, a, 512, 3)).toBe(-1);
    expect(k.check()).toEqual([]);
  });
});
