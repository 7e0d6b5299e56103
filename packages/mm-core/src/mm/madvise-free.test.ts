import { describe, expect, it } from 'vitest';
import {
  MADV_FREE,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { walkPfn } from '../cpu.js';
import type { Kernel } from '../kernel.js';
import { PG_dirty, PG_swapbacked, PG_swapcache } from '../phys/memmap.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { meminfoKb, pageout, pteAt, swapEntryAt } from '../testing/swap.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** The folio head mapped at addr of p (a CPU walk), or -1. */
function folioAt(k: Kernel, p: Process, addr: number): number {
  const pfn = walkPfn(k.core, p.mm, addr, false);
  return pfn < 0 ? -1 : k.core.map.head[pfn];
}

describe('MADV_FREE with swap (madvise_free_pte_range())', () => {
  it('frees swap entries (free_swap_and_cache_nr()): the slots return to SwapFree, MM_SWAPENTS drops, the pages read zero without a swap-in', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * PAGE_SIZE, 100 + i);
    const free0 = meminfoKb(p, 'SwapFree');
    expect(pageout(k, p, a, 4 * PAGE_SIZE)).toBe(4);
    expect(meminfoKb(p, 'SwapFree')).toBe(free0 - 16);
    expect(p.mm.rss.MM_SWAPENTS).toBe(4);
    // MADV_FREE of the middle two pages.
    expect(p.madvise(a + PAGE_SIZE, 2 * PAGE_SIZE, MADV_FREE)).toBe(0);
    expect(p.mm.rss.MM_SWAPENTS).toBe(2);
    expect(meminfoKb(p, 'SwapFree')).toBe(free0 - 8);
    expect(pteAt(k, p, a + PAGE_SIZE)).toEqual([0, 0]);
    expect(swapEntryAt(k, p, a)).toBeGreaterThanOrEqual(0);
    const pswpin = k.core.vmstat.pswpin;
    expect(p.readI32(a + PAGE_SIZE)).toBe(0);
    expect(p.readI32(a + 2 * PAGE_SIZE)).toBe(0);
    expect(k.core.vmstat.pswpin).toBe(pswpin);
    expect(p.readI32(a)).toBe(100);
    expect(p.readI32(a + 3 * PAGE_SIZE)).toBe(103);
    expect(k.check()).toEqual([]);
  });

  it('a swap entry shared with a child keeps its slot for the child (the count drops by one)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 9);
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(1);
    const c = k.task(p.fork());
    if (!c) throw new Error('fork failed');
    const used = meminfoKb(p, 'SwapTotal') - meminfoKb(p, 'SwapFree');
    expect(p.madvise(a, PAGE_SIZE, MADV_FREE)).toBe(0);
    expect(meminfoKb(p, 'SwapTotal') - meminfoKb(p, 'SwapFree')).toBe(used);
    expect(p.readI32(a)).toBe(0);
    expect(c.readI32(a)).toBe(9);
    expect(k.check()).toEqual([]);
  });

  it('marks present anonymous folios lazy-free (folio_mark_lazyfree(): PG_swapbacked and PG_dirty clear, PGLAZYFREE); reclaim discards the clean ones without swap I/O (PGLAZYFREED)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 3 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 3; i++) p.writeI32(a + i * PAGE_SIZE, 7 + i);
    expect(p.madvise(a, 3 * PAGE_SIZE, MADV_FREE)).toBe(0);
    expect(k.core.vmstat.pglazyfree).toBe(3);
    const m = k.core.map;
    for (let i = 0; i < 3; i++) {
      const f = folioAt(k, p, a + i * PAGE_SIZE);
      expect(m.flags[f] & (PG_swapbacked | PG_dirty)).toBe(0);
    }
    // Data stays until reclaim; a write redirties the page.
    expect(p.readI32(a)).toBe(7);
    p.writeI32(a + 2 * PAGE_SIZE, 42);
    expect(pageout(k, p, a, 3 * PAGE_SIZE)).toBe(2);
    expect(k.core.vmstat.pglazyfreed).toBe(2);
    expect(k.core.vmstat.pswpout).toBe(0);
    expect(p.readI32(a)).toBe(0);
    expect(p.readI32(a + PAGE_SIZE)).toBe(0);
    // The redirtied page was made swap-backed again (try_to_unmap_one()) and kept.
    expect(p.readI32(a + 2 * PAGE_SIZE)).toBe(42);
    expect(m.flags[folioAt(k, p, a + 2 * PAGE_SIZE)] & PG_swapbacked).toBe(PG_swapbacked);
    expect(k.check()).toEqual([]);
  });

  it('a page in the swap cache leaves it (folio_free_swap()) and becomes lazy-free; its slot is freed', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 5);
    const c = k.task(p.fork());
    if (!c) throw new Error('fork failed');
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(0); // shared with the child: not paged out by PAGEOUT's walk
    c.exit(0);
    expect(p.waitpid(c.pid)).toBe(c.pid);
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(1);
    // A read fault swaps it in and, without a write, leaves it in the swap cache.
    expect(p.readI32(a)).toBe(5);
    const f = folioAt(k, p, a);
    expect(k.core.map.flags[f] & PG_swapcache).toBe(PG_swapcache);
    expect(meminfoKb(p, 'SwapCached')).toBe(4);
    expect(p.madvise(a, PAGE_SIZE, MADV_FREE)).toBe(0);
    expect(k.core.map.flags[f] & (PG_swapcache | PG_swapbacked)).toBe(0);
    expect(meminfoKb(p, 'SwapCached')).toBe(0);
    expect(meminfoKb(p, 'SwapFree')).toBe(meminfoKb(p, 'SwapTotal'));
    expect(k.check()).toEqual([]);
  });

  it('a folio mapped by another mm is not made lazy-free (folio_maybe_mapped_shared()): the child still reads it after reclaim', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 3);
    const c = k.task(p.fork());
    if (!c) throw new Error('fork failed');
    expect(p.madvise(a, PAGE_SIZE, MADV_FREE)).toBe(0);
    const f = folioAt(k, p, a);
    expect(k.core.map.flags[f] & PG_swapbacked).toBe(PG_swapbacked);
    expect(k.core.vmstat.pglazyfree).toBe(0);
    expect(c.readI32(a)).toBe(3);
    expect(p.readI32(a)).toBe(3);
    expect(k.check()).toEqual([]);
  });

  it('a PTE-mapped THP covered only in part is split first, so only the pages in the range become lazy-free', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(a / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(h, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    for (let i = 0; i < 512; i++) p.writeI32(h + i * PAGE_SIZE, i + 1);
    expect(pmdKind(k, p, h)).toBe('huge');
    // mprotect of the last page splits the PMD: the THP stays one folio, mapped by 512 PTEs.
    expect(p.mprotect(h + PMD_SIZE - PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(k.core.map.folioNrPages(folioAt(k, p, h))).toBe(512);
    const splits = k.core.vmstat.thp_split_page;
    expect(p.madvise(h + 16 * PAGE_SIZE, 16 * PAGE_SIZE, MADV_FREE)).toBe(0);
    expect(k.core.vmstat.thp_split_page).toBe(splits + 1);
    expect(k.core.vmstat.pglazyfree).toBe(16);
    const m = k.core.map;
    for (let i = 0; i < 48; i++) {
      const f = folioAt(k, p, h + i * PAGE_SIZE);
      expect(m.folioNrPages(f)).toBe(1);
      expect(m.flags[f] & PG_swapbacked).toBe(i >= 16 && i < 32 ? 0 : PG_swapbacked);
    }
    expect(pageout(k, p, h + 16 * PAGE_SIZE, 16 * PAGE_SIZE)).toBe(16);
    expect(k.core.vmstat.pswpout).toBe(0);
    for (let i = 0; i < 512; i++) expect(p.readI32(h + i * PAGE_SIZE)).toBe(i >= 16 && i < 32 ? 0 : i + 1);
    expect(k.check()).toEqual([]);
  });
});
