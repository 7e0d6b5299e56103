import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE } from './constants.js';
import { checkRamBytes, MAX_RAM_BYTES } from './core.js';
import { installMmCoreChecker } from './invariants.js';
import { Kernel } from './kernel.js';
import { PAGES_PER_SECTION } from './phys/memmap.js';

const GiB = 2 ** 30;

describe('machine sizes (sparse memmap, deferred struct page init)', () => {
  it('boots a 1 TiB machine with its RAM deferred, and memory works from the top down', () => {
    const k = new Kernel({ ramBytes: 1024 * GiB, checkInvariants: true });
    installMmCoreChecker(k);
    const c = k.core;
    expect(c.ramPages).toBe(2 ** 28);
    expect(c.zone.nrFree).toBe(c.ramPages - 1 - 4 * 512);
    // Boot initialised one section (zero page and the hugetlb pool), not 8192.
    expect(c.map.touchedSections).toBe(1);
    expect(c.zone.deferredChunks).toBe(c.ramPages / PAGES_PER_SECTION - 1);
    const p = k.spawn();
    const len = 64 << 20;
    const a = p.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    for (let off = 0; off < len; off += PAGE_SIZE) p.writeU8(a + off, off / PAGE_SIZE);
    for (let off = 0; off < len; off += PAGE_SIZE) expect(p.readU8(a + off)).toBe((off / PAGE_SIZE) & 0xff);
    expect(k.check()).toEqual([]);
    expect(c.map.touchedSections).toBeLessThanOrEqual(2);
  });

  it('rejects RAM sizes it cannot model', () => {
    expect(checkRamBytes(2 * GiB)).toBeUndefined();
    expect(checkRamBytes(MAX_RAM_BYTES)).toBeUndefined();
    expect(checkRamBytes(0)).toMatch(/not positive/);
    expect(checkRamBytes(-4 << 20)).toMatch(/not positive/);
    expect(checkRamBytes(Number.NaN)).toMatch(/not a whole number/);
    expect(checkRamBytes(5 << 20)).toMatch(/multiple of 4 MiB/);
    expect(checkRamBytes(MAX_RAM_BYTES + (4 << 20))).toMatch(/physical address space/);
    expect(() => new Kernel({ ramBytes: 1 << 20 })).toThrow(RangeError);
    expect(() => new Kernel({ ramBytes: 16 * 1024 * 1024 * GiB })).toThrow(/physical address space/);
  });
});
