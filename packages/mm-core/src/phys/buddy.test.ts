import { describe, expect, it } from 'vitest';
import { MAX_PAGE_ORDER } from '../constants.js';
import { allocFolio, folioPut } from '../folio.js';
import { installMmCoreChecker } from '../invariants.js';
import { Kernel } from '../kernel.js';
import { ALLOC_NO_WATERMARKS, ALLOC_OOM, BuddyZone } from './buddy.js';
import { MemMap, PAGES_PER_SECTION, PG_buddy } from './memmap.js';

function zone(pages: number): { map: MemMap; z: BuddyZone } {
  const map = new MemMap();
  map.initRange(0, pages, 0);
  const z = new BuddyZone(map, 0, pages);
  z.freeAll();
  return { map, z };
}

describe('buddy allocator (mm/page_alloc.c)', () => {
  it('hands every page to the free lists as maximal blocks', () => {
    const { z } = zone(4096);
    expect(z.nrFree).toBe(4096);
    const info = z.buddyinfo();
    expect(info[MAX_PAGE_ORDER]).toBe(4);
    expect(info.slice(0, MAX_PAGE_ORDER).every((n) => n === 0)).toBe(true);
  });

  it('the min watermark (__zone_watermark_ok()): an allocation stops at it, ALLOC_OOM at half of it (min -= min / 2), ALLOC_NO_WATERMARKS at nothing', () => {
    const { z } = zone(1024);
    z.minFree = 101;
    const drain = (flags: number): number => {
      let n = 0;
      while (z.alloc(0, flags) >= 0) n++;
      return n;
    };
    expect(drain(0)).toBe(1024 - 101);
    expect(z.lastFailShort).toBe(true);
    expect(drain(ALLOC_OOM)).toBe(50);
    expect(z.nrFree).toBe(51);
    expect(drain(ALLOC_NO_WATERMARKS)).toBe(51);
    expect(z.nrFree).toBe(0);
  });

  it('handles a zone size that is not a multiple of the largest block', () => {
    const { z } = zone(1024 + 512 + 3);
    expect(z.nrFree).toBe(1539);
    const info = z.buddyinfo();
    expect(info[10]).toBe(1);
    expect(info[9]).toBe(1);
    expect(info[1]).toBe(1);
    expect(info[0]).toBe(1);
  });

  it('splits a large block on allocation (expand) and coalesces on free', () => {
    const { z, map } = zone(1024);
    const p = z.alloc(0);
    expect(p).toBe(0);
    // 1024 = 1 + 1 + 2 + 4 + ... + 512: one free block of each order below 10.
    const info = z.buddyinfo();
    for (let o = 0; o < 10; o++) expect(info[o]).toBe(1);
    expect(info[10]).toBe(0);
    expect(map.flags[1] & PG_buddy).toBeTruthy();
    expect(map.order[512]).toBe(9);
    const q = z.alloc(0);
    expect(q).toBe(1);
    z.free(p, 0);
    expect(z.buddyinfo()[0]).toBe(1);
    z.free(q, 0);
    expect(z.buddyinfo()[10]).toBe(1);
    expect(z.nrFree).toBe(1024);
    expect(map.flags[0] & PG_buddy).toBeTruthy();
    expect(map.flags[1] & PG_buddy).toBe(0);
  });

  it('serves each order from the smallest block that fits', () => {
    const { z } = zone(2048);
    const a = z.alloc(9);
    expect(a % 512).toBe(0);
    // a's buddy is now a free order-9 block: an order-3 request is carved from it rather
    // than from the untouched order-10 block.
    const b = z.alloc(3);
    expect(b).toBe(a ^ 512);
    expect(z.buddyinfo()[10]).toBe(1);
    const c = z.alloc(9);
    expect(c % 512).toBe(0);
    expect(z.buddyinfo()[10]).toBe(0);
    expect(z.nrFree).toBe(2048 - 512 - 8 - 512);
  });

  it('fragmentation makes an order-9 allocation fail for real', () => {
    const { z } = zone(2048);
    const pages: number[] = [];
    for (;;) {
      const p = z.alloc(0);
      if (p < 0) break;
      pages.push(p);
    }
    expect(pages.length).toBe(2048);
    expect(z.nrFree).toBe(0);
    // Free every other page: half the memory is free but no two buddies are.
    for (let i = 0; i < pages.length; i += 2) z.free(pages[i], 0);
    expect(z.nrFree).toBe(1024);
    expect(z.canAlloc(1)).toBe(false);
    expect(z.alloc(9)).toBe(-1);
    const one = z.alloc(0);
    expect(one).toBeGreaterThanOrEqual(0);
    z.free(one, 0);
    // Freeing the rest coalesces back to maximal blocks.
    for (let i = 1; i < pages.length; i += 2) z.free(pages[i], 0);
    expect(z.nrFree).toBe(2048);
    expect(z.buddyinfo()[10]).toBe(2);
  });

  it('failHook injects allocation failures per order', () => {
    const { z } = zone(1024);
    z.failHook = (order) => order === 9;
    expect(z.alloc(9)).toBe(-1);
    expect(z.alloc(0)).toBeGreaterThanOrEqual(0);
    z.failHook = undefined;
    expect(z.alloc(9)).toBeGreaterThanOrEqual(0);
  });

  it('rejects orders outside 0..MAX_PAGE_ORDER and unaligned zones', () => {
    const { z } = zone(1024);
    expect(z.alloc(-1)).toBe(-1);
    expect(z.alloc(MAX_PAGE_ORDER + 1)).toBe(-1);
    expect(() => new BuddyZone(new MemMap(), 3, 8)).toThrow(RangeError);
  });

  it('forEachFree reports exactly the free blocks', () => {
    const { z } = zone(1024);
    z.alloc(0);
    z.alloc(2);
    let pages = 0;
    let blocks = 0;
    z.forEachFree((_p, o) => {
      blocks++;
      pages += 1 << o;
    });
    expect(pages).toBe(z.nrFree);
    expect(blocks).toBe(z.buddyinfo().reduce((a, b) => a + b, 0));
  });

  it('a THP fault fails over to 4 KiB pages when injection fails order 9 in a kernel', () => {
    const k = new Kernel({ ramBytes: 256 << 20, checkInvariants: true });
    installMmCoreChecker(k);
    k.core.zone.failHook = (o) => o === 9;
    expect(allocFolio(k.core, 9, false)).toBe(-1);
    const f = allocFolio(k.core, 0, true);
    expect(f).toBeGreaterThan(0);
    folioPut(k.core, f);
    k.core.zone.failHook = undefined;
    expect(k.check()).toEqual([]);
  });

  it('defers whole sections at boot: free and counted, struct pages untouched', () => {
    const map = new MemMap();
    const z = new BuddyZone(map, 0, 4 * PAGES_PER_SECTION);
    z.freeAll();
    expect(z.nrFree).toBe(4 * PAGES_PER_SECTION);
    expect(z.deferredChunks).toBe(4);
    expect(z.buddyinfo()[MAX_PAGE_ORDER]).toBe(4 * (PAGES_PER_SECTION >> MAX_PAGE_ORDER));
    expect(map.touchedSections).toBe(0);
    expect(map.valid(5)).toBe(true);
    expect(z.canAlloc(MAX_PAGE_ORDER)).toBe(true);
    const p = z.alloc(0);
    // The highest section is initialised first; its top block is split.
    expect(p).toBe(4 * PAGES_PER_SECTION - 1024);
    expect(z.deferredChunks).toBe(3);
    expect(map.touchedSections).toBe(1);
    expect(z.nrFree).toBe(4 * PAGES_PER_SECTION - 1);
  });

  it('serves deferred memory in the order of an eagerly built free list, then fails for real', () => {
    const map = new MemMap();
    const n = 3 * PAGES_PER_SECTION;
    const z = new BuddyZone(map, 0, n);
    z.freeAll();
    const got: number[] = [];
    for (;;) {
      const p = z.alloc(MAX_PAGE_ORDER);
      if (p < 0) break;
      got.push(p);
    }
    // memblock_free_all() frees blocks in ascending order, so the list head is the highest block.
    const want = Array.from({ length: n >> MAX_PAGE_ORDER }, (_, i) => n - (i + 1) * 1024);
    expect(got).toEqual(want);
    expect(z.nrFree).toBe(0);
    expect(z.canAlloc(0)).toBe(false);
    expect(z.alloc(0)).toBe(-1);
    z.free(got[40], MAX_PAGE_ORDER);
    expect(z.alloc(0)).toBe(got[40]);
  });

  it('keeps an unaligned zone end on the free lists from the start', () => {
    const map = new MemMap();
    const z = new BuddyZone(map, 0, PAGES_PER_SECTION + 512 + 3);
    z.freeAll();
    expect(z.deferredChunks).toBe(1);
    const info = z.buddyinfo();
    expect([info[0], info[1], info[9], info[10]]).toEqual([1, 1, 1, PAGES_PER_SECTION >> MAX_PAGE_ORDER]);
    // An order-9 request takes the tail block rather than growing into the deferred section.
    expect(z.alloc(9)).toBe(PAGES_PER_SECTION);
    expect(z.deferredChunks).toBe(1);
  });

  it('fragmentation still fails large allocations once every section is in use', () => {
    const map = new MemMap();
    const n = 2 * PAGES_PER_SECTION;
    const z = new BuddyZone(map, 0, n);
    z.freeAll();
    const pages: number[] = [];
    for (let p = z.alloc(0); p >= 0; p = z.alloc(0)) pages.push(p);
    expect(pages.length).toBe(n);
    for (let i = 0; i < pages.length; i += 2) z.free(pages[i], 0);
    expect(z.nrFree).toBe(n / 2);
    expect(z.alloc(1)).toBe(-1);
    expect(z.alloc(9)).toBe(-1);
  });
});
