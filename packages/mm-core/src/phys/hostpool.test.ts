import { describe, expect, it, vi } from 'vitest';
import { EntryStats, PT_LEVEL_PMD, PT_LEVEL_PTE } from '../entry-stats.js';
import { Kernel } from '../kernel.js';
import { SwapInfo } from '../mm/swapfile.js';
import { FolioLockOwners } from '../sched/folio-lock-owners.js';
import type { Task } from '../sched/task.js';
import { HostMemoryPool, ScratchBytes } from './hostpool.js';
import { PAGES_PER_SECTION } from './memmap.js';

describe('HostMemoryPool side arrays (model-only)', () => {
  it('hands a given-back array to the next taker of the same type and length, cleared', () => {
    const pool = new HostMemoryPool();
    const a = pool.take(Int32Array, 1000);
    a[7] = 42;
    pool.give(a);
    // Another length or type is another array.
    expect(pool.take(Int32Array, 999)).not.toBe(a);
    expect(pool.take(Uint32Array, 1000)).not.toBe(a);
    const b = pool.take(Int32Array, 1000);
    expect(b).toBe(a);
    expect(b[7]).toBe(0);
    // Empty again: a fresh one.
    expect(pool.take(Int32Array, 1000)).not.toBe(a);
  });

  it('keeps a bounded number per type and length', () => {
    const pool = new HostMemoryPool();
    const arrays = Array.from({ length: 100 }, () => new Uint8Array(16));
    for (const a of arrays) pool.give(a);
    const back = new Set<Uint8Array>();
    for (let i = 0; i < 100; i++) back.add(pool.take(Uint8Array, 16));
    // 64 come back from the pool; the rest are fresh.
    expect(arrays.filter((a) => back.has(a))).toHaveLength(64);
  });

  it('ScratchBytes: every take is zeroed, and the buffer is reused', () => {
    const s = new ScratchBytes();
    const a = s.take(100);
    a.fill(9);
    const b = s.take(50);
    expect(b.buffer).toBe(a.buffer);
    expect([...b].every((x) => x === 0)).toBe(true);
    const c = s.take(1000);
    expect(c.length).toBe(1000);
    expect([...c].every((x) => x === 0)).toBe(true);
  });
});

describe('a released machine gives its side arrays to the next one (model-only)', () => {
  it('folio lock owners: sections go back to the pool and the record forgets every holder', () => {
    const pool = new HostMemoryPool();
    const locked = new Set<number>();
    const owners = new FolioLockOwners((h) => locked.has(h), pool);
    const t = { id: 5 } as Task;
    const head = 3 * PAGES_PER_SECTION + 17;
    locked.add(head);
    owners.set(head, t);
    expect(owners.get(head)).toBe(t);
    const give = vi.spyOn(pool, 'give');
    owners.release();
    expect(give).toHaveBeenCalledTimes(1);
    const section = give.mock.calls[0][0];
    expect(section.length).toBe(2 * PAGES_PER_SECTION); // owners, then unlock counts
    expect(owners.get(head)).toBeUndefined();
    // The next machine's record takes the same array, cleared.
    const next = new FolioLockOwners((h) => locked.has(h), pool);
    const take = vi.spyOn(pool, 'take');
    const u = { id: 8 } as Task;
    next.set(head + 1, u);
    expect(take.mock.results[0].value).toBe(section);
    expect(section[17]).toBe(0);
    locked.add(head + 1);
    expect(next.get(head + 1)).toBe(u);
    expect(next.get(head)).toBeUndefined();
  });

  it('entry stats: the level tags go back and the next machine starts untagged', () => {
    const pool = new HostMemoryPool();
    const a = new EntryStats();
    a.pool = pool;
    a.tagTable(5000, PT_LEVEL_PMD);
    expect(a.tableLevel(5000)).toBe(PT_LEVEL_PMD);
    const give = vi.spyOn(pool, 'give');
    a.release();
    const level = give.mock.calls[0][0];
    // Grown in powers of two, so that the next machine asks for the same length.
    expect(level.length).toBe(8192);
    const b = new EntryStats();
    b.pool = pool;
    const take = vi.spyOn(pool, 'take');
    b.tagTable(6000, PT_LEVEL_PMD);
    expect(take.mock.results[0].value).toBe(level);
    expect(b.tableLevel(5000)).toBe(PT_LEVEL_PTE);
    expect(b.tableLevel(6000)).toBe(PT_LEVEL_PMD);
  });

  it('swap maps: taken from the pool at first use, given back at release, set up again like new', () => {
    const pool = new HostMemoryPool();
    const a = new SwapInfo(0, 4096, pool);
    const first = a.allocSlots(1);
    expect(first).toBeGreaterThan(0);
    const maps = [a.swapMap, a.table];
    a.release();
    expect(a.materialised).toBe(false);
    const b = new SwapInfo(0, 4096, pool);
    expect(b.materialised).toBe(false);
    // The same host arrays (swap_map and the swap table have one length: either may come back as either).
    expect(maps).toContain(b.swapMap);
    expect(maps).toContain(b.table);
    expect(b.swapMap[0]).not.toBe(0);
    // Header slot bad, every other slot free, as setup_swap_map() leaves them.
    expect(b.slotFree(1)).toBe(true);
    expect(b.allocSlots(1)).toBe(first);
  });

  it('Kernel.dispose() hands lock-owner sections, level tags and swap maps to the next boot', () => {
    const pool = new HostMemoryPool();
    const boot = () => new Kernel({ ramBytes: 64 << 20, hugetlbPages: 0, hostPool: pool });
    const k1 = boot();
    const p = k1.spawn();
    expect(p.pid).toBeGreaterThan(0);
    const si = k1.core.swapInfo[0];
    expect(si.allocSlots(1)).toBeGreaterThan(0);
    const maps = [si.swapMap, si.table];
    const give = vi.spyOn(pool, 'give');
    k1.dispose();
    const given = give.mock.calls.map((c) => c[0]);
    for (const m of maps) expect(given).toContain(m);
    // The page tables of the process tagged levels: that array went back too.
    expect(given.some((a) => a instanceof Uint8Array && a.length >= 4096)).toBe(true);
    const k2 = boot();
    expect(k2.core.swapInfo[0].allocSlots(1)).toBeGreaterThan(0);
    expect(maps).toContain(k2.core.swapInfo[0].swapMap);
    k2.dispose();
  });
});
