import { describe, expect, it } from 'vitest';
import { HostMemoryPool } from './hostpool.js';
import {
  MAX_PHYS_PFN,
  MEMMAP_BYTES_PER_PAGE,
  MemMap,
  PAGES_PER_SECTION,
  PG_present_section,
  PG_zone_device,
  SECTION_CLEAN,
  SECTION_DEFERRED,
  SECTION_HAS_MEM_MAP,
} from './memmap.js';

const SEC = PAGES_PER_SECTION;

describe('sparse memmap (mm/sparse.c, memmap_init_range)', () => {
  it('a released memmap is reused by the next one of the same capacity, all zero', () => {
    const pool = new HostMemoryPool();
    const a = new MemMap(pool);
    a.ensure(4 * SEC);
    a.initRange(SEC + 5, 10, PG_zone_device);
    a.refcount[SEC + 7] = 3;
    const refcount = a.refcount;
    a.release();
    expect(a.capacity).toBe(0);
    expect(a.valid(SEC + 7)).toBe(false);
    const b = new MemMap(pool);
    b.ensure(4 * SEC);
    // The same host arrays, cleared where the last machine wrote them.
    expect(b.refcount).toBe(refcount);
    expect(b.refcount[SEC + 7]).toBe(0);
    expect(b.flags[SEC + 5]).toBe(0);
    expect(b.head[SEC + 6]).toBe(0);
    expect(b.valid(SEC + 5)).toBe(false);
    expect(b.touchedSections).toBe(0);
    b.release();
    // Without a pool nothing is kept.
    const c = new MemMap();
    c.ensure(4 * SEC);
    expect(c.refcount).not.toBe(refcount);
  });

  it('grows in whole sections and keeps the contents of initialised sections', () => {
    const m = new MemMap();
    m.initRange(10, 5, 0);
    m.refcount[12] = 7;
    m.ensure(1 << 17);
    expect(m.capacity).toBeGreaterThanOrEqual(1 << 17);
    expect(m.capacity % SEC).toBe(0);
    expect(m.refcount[12]).toBe(7);
    expect(m.head[13]).toBe(13);
    expect(m.valid(12)).toBe(true);
    expect(m.valid(9)).toBe(false);
    expect(m.valid(-1)).toBe(false);
    expect(m.valid(m.capacity)).toBe(false);
  });

  it('leaves pfns of never-initialised sections without a struct page (all fields zero)', () => {
    const m = new MemMap();
    m.initRange(0, 8, 0);
    m.ensure(4 * SEC);
    const p = 3 * SEC + 5;
    expect(m.valid(p)).toBe(false);
    expect(m.flags[p]).toBe(0);
    expect(m.head[p]).toBe(0);
    expect(m.touchedSections).toBe(1);
  });

  it('initialises a range: present flags, own head, extra flags, section has a mem map', () => {
    const m = new MemMap();
    m.initRange(SEC - 4, 8, PG_zone_device);
    for (let p = SEC - 4; p < SEC + 4; p++) {
      expect(m.flags[p]).toBe(PG_present_section | PG_zone_device);
      expect(m.head[p]).toBe(p);
    }
    expect(m.sectionState[0] & SECTION_HAS_MEM_MAP).toBeTruthy();
    expect(m.sectionState[1] & SECTION_HAS_MEM_MAP).toBeTruthy();
    expect(m.touchedSections).toBe(2);
  });

  it('re-initialising a touched section clears every stale field', () => {
    const m = new MemMap();
    m.initRange(100, 4, 0);
    m.refcount[101] = 3;
    m.mapcount[101] = 2;
    m.order[101] = 9;
    m.mapping[101] = 5;
    m.index[101] = 77;
    m.priv[101] = 1.5;
    m.pgmap[101] = 4;
    m.next[101] = 9;
    m.head[101] = 100;
    m.initRange(100, 4, 0);
    expect([
      m.refcount[101],
      m.mapcount[101],
      m.order[101],
      m.mapping[101],
      m.index[101],
      m.priv[101],
      m.pgmap[101],
      m.next[101],
    ]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(m.head[101]).toBe(101);
  });

  it('removeRange tears the struct pages down and the section loses its mem map when empty', () => {
    const m = new MemMap();
    m.initRange(2 * SEC, SEC, PG_zone_device);
    m.refcount[2 * SEC + 1] = 1;
    m.pgmap[2 * SEC + 1] = 3;
    m.removeRange(2 * SEC, SEC);
    expect(m.valid(2 * SEC + 1)).toBe(false);
    expect(m.refcount[2 * SEC + 1]).toBe(0);
    expect(m.pgmap[2 * SEC + 1]).toBe(0);
    expect(m.sectionState[2] & SECTION_HAS_MEM_MAP).toBe(0);
  });

  it('a section torn down whole is not cleared again when initialised, and reads as new', () => {
    const m = new MemMap();
    m.initRange(2 * SEC, 2 * SEC, PG_zone_device);
    const p = 3 * SEC + 7;
    m.refcount[p] = 2;
    m.priv[p] = 99;
    m.head[p] = p - 1;
    m.removeRange(2 * SEC, 2 * SEC);
    expect(m.sectionState[3] & SECTION_CLEAN).toBeTruthy();
    m.initRange(2 * SEC, 2 * SEC, 0);
    expect(m.sectionState[3] & SECTION_CLEAN).toBe(0);
    expect([m.refcount[p], m.priv[p], m.head[p], m.flags[p]]).toEqual([0, 0, p, PG_present_section]);
    // Written again after the initialisation: a second teardown clears it.
    m.refcount[p] = 5;
    m.head[p] = 0;
    m.removeRange(2 * SEC, 2 * SEC);
    m.initRange(2 * SEC, SEC + 8, 0);
    expect([m.refcount[p], m.head[p]]).toEqual([0, p]);
  });

  it('a section torn down in part stays to be cleared', () => {
    const m = new MemMap();
    m.initRange(0, 2 * SEC, 0);
    m.refcount[5] = 1;
    m.removeRange(0, 64);
    expect(m.sectionState[0] & SECTION_CLEAN).toBe(0);
    m.refcount[100] = 3;
    m.removeRange(64, SEC - 64);
    expect(m.sectionState[0] & SECTION_CLEAN).toBe(0);
    m.initRange(0, SEC, 0);
    expect([m.refcount[5], m.refcount[100]]).toEqual([0, 0]);
  });

  it('removing part of a section keeps the rest valid', () => {
    const m = new MemMap();
    m.initRange(0, 64, 0);
    m.removeRange(0, 32);
    expect(m.valid(10)).toBe(false);
    expect(m.valid(40)).toBe(true);
    expect(m.sectionState[0] & SECTION_HAS_MEM_MAP).toBeTruthy();
  });

  it('deferred sections are valid but not initialised until initRange', () => {
    const m = new MemMap();
    m.deferRange(SEC, 2 * SEC);
    expect(m.valid(SEC + 7)).toBe(true);
    expect(m.deferred(SEC + 7)).toBe(true);
    expect(m.flags[SEC + 7]).toBe(0);
    expect(m.deferred(3 * SEC)).toBe(false);
    expect(m.touchedSections).toBe(0);
    m.initRange(SEC, SEC, 0);
    expect(m.deferred(SEC + 7)).toBe(false);
    expect(m.sectionState[1] & SECTION_DEFERRED).toBe(0);
    expect(m.head[SEC + 7]).toBe(SEC + 7);
    expect(m.deferred(2 * SEC)).toBe(true);
  });

  it('refuses pfns beyond MAX_PHYSMEM_BITS with a RangeError', () => {
    const m = new MemMap();
    expect(() => m.ensure(MAX_PHYS_PFN + 1)).toThrow(/MAX_PHYSMEM_BITS/);
    expect(m.capacity).toBe(0);
  });

  it('addresses a terabyte of pfns while writing only the sections used', () => {
    const m = new MemMap();
    const tib = 2 ** 28;
    m.ensure(tib);
    m.initRange(tib - SEC, SEC, 0);
    expect(m.capacity).toBeGreaterThanOrEqual(tib);
    expect(m.touchedSections).toBe(1);
    // Growing again copies the one touched section.
    m.refcount[tib - 1] = 5;
    m.ensure(tib + 4 * SEC);
    expect(m.refcount[tib - 1]).toBe(5);
    expect(m.head[tib - 2]).toBe(tib - 2);
  });

  it('costs less per page than the kernel struct page', () => {
    expect(MEMMAP_BYTES_PER_PAGE).toBeLessThanOrEqual(64);
  });
});
