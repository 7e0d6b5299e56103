import {
  type Core,
  entryPfn,
  entryPresent,
  folioGet,
  type Kernel,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  type MmStruct,
  mmapReadLock,
  mmapReadUnlock,
  PAGE_SIZE,
  PG_anon,
  PG_lru,
  PG_swapcache,
  PROT_READ,
  PROT_WRITE,
  type Process,
  pmdIndex,
  pmdTableOf,
  pteIndex,
  ptHi,
  ptLo,
  reclaimPages,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { badPattern, fillPattern, machine, pteKind, vmaAt } from './testing/harness.js';
import { MIGRATE_PFN_MIGRATE, MIGRATE_VMA_SELECT_SYSTEM } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/**
 * What MADV_PAGEOUT does until madvise.ts calls reclaimPages(): isolate the present anonymous
 * folios mapped once in [a, a + len) (madvise_cold_or_pageout_pte_range() skips every
 * non-present entry, device-private ones included) and reclaim them. Returns pages reclaimed.
 */
function pageout(k: Kernel, mm: MmStruct, a: number, len: number): number {
  const core: Core = k.core;
  const m = core.map;
  const n = core.sched.runSync(
    (function* () {
      yield* mmapReadLock(core, mm, 'madvise_lock');
      try {
        const list: number[] = [];
        for (let x = a; x < a + len; x += PAGE_SIZE) {
          const pmdT = pmdTableOf(core, mm, x, false);
          if (pmdT < 0) continue;
          const lo = ptLo(core, pmdT, pmdIndex(x));
          if (!entryPresent(lo)) continue;
          const t = entryPfn(lo, ptHi(core, pmdT, pmdIndex(x)));
          const plo = ptLo(core, t, pteIndex(x));
          if (!entryPresent(plo)) continue;
          const head = m.head[entryPfn(plo, ptHi(core, t, pteIndex(x)))];
          if (!(m.flags[head] & PG_lru) || !(m.flags[head] & PG_anon) || m.mapcount[head] !== 1) continue;
          m.flags[head] &= ~PG_lru;
          folioGet(core, head);
          list.push(head);
        }
        return yield* reclaimPages(core, list);
      } finally {
        mmapReadUnlock(core, mm, 'madvise_unlock');
      }
    })(),
    'pageout',
  );
  k.afterSyscall('pageout');
  return n;
}

/** The pfn field of the PTE at addr (a page or a device-private page). */
function pteTarget(k: Kernel, mm: MmStruct, addr: number): number {
  const t = pmdTableOf(k.core, mm, addr, false);
  const pt = entryPfn(ptLo(k.core, t, pmdIndex(addr)), ptHi(k.core, t, pmdIndex(addr)));
  return entryPfn(ptLo(k.core, pt, pteIndex(addr)), ptHi(k.core, pt, pteIndex(addr)));
}

/** Four small pages with the int pattern at a PMD-unaligned place (no THP). */
function fourPages(p: Process): number {
  const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
  fillPattern(p, a, 4 * PAGE_SIZE);
  return a;
}

describe('swap and device memory', () => {
  it('migrate_vma_collect_pmd() skips a swap entry (src 0, not collected); the page stays in swap', () => {
    const { k, p, dev, check } = machine();
    const a = fourPages(p);
    expect(pageout(k, p.mm, a + PAGE_SIZE, 2 * PAGE_SIZE)).toBe(2);
    expect(pteKind(k, p, a + PAGE_SIZE)).toBe('swap');
    const { r, mig } = dev.toDevice(vmaAt(p, a), a, a + 4 * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
    expect(r).toBe(0);
    expect(mig.cpages).toBe(2);
    expect(mig.src[1]).toBe(0);
    expect(mig.src[2]).toBe(0);
    expect(mig.src[0] & MIGRATE_PFN_MIGRATE).toBe(MIGRATE_PFN_MIGRATE);
    expect(pteKind(k, p, a)).toBe('device-private-write');
    expect(pteKind(k, p, a + PAGE_SIZE)).toBe('swap');
    expect(pteKind(k, p, a + 2 * PAGE_SIZE)).toBe('swap');
    expect(p.mm.rss.MM_SWAPENTS).toBe(2);
    expect(badPattern(p, a, 4 * PAGE_SIZE)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('never swaps a device-private page: reclaim skips device-private entries and keeps a device folio handed to it', () => {
    const { k, p, dev, check } = machine();
    const a = fourPages(p);
    const { mig } = dev.toDevice(vmaAt(p, a), a, a + 4 * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
    expect(mig.cpages).toBe(4);
    expect(pageout(k, p.mm, a, 4 * PAGE_SIZE)).toBe(0);
    for (let i = 0; i < 4; i++) expect(pteKind(k, p, a + i * PAGE_SIZE)).toBe('device-private-write');
    // A device folio is never on an LRU; handed to reclaim anyway it is kept untouched.
    const dpfn = pteTarget(k, p.mm, a);
    const refs = k.core.map.refcount[dpfn];
    folioGet(k.core, dpfn);
    expect(k.core.sched.runSync(reclaimPages(k.core, [dpfn]), 'reclaim')).toBe(0);
    expect(k.core.map.refcount[dpfn]).toBe(refs);
    expect(k.core.map.flags[dpfn] & PG_lru).toBe(0);
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expect(badPattern(p, a, 4 * PAGE_SIZE)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('migrates a swap-cache folio to device memory only after folio_free_swap() drops it from the swap cache', () => {
    const { k, p, dev, check } = machine();
    const a = fourPages(p);
    expect(pageout(k, p.mm, a, PAGE_SIZE)).toBe(1);
    // A read fault maps the page back and leaves it in the swap cache.
    expect(p.readI32(a + 4)).toBe(1);
    const pfn = pteTarget(k, p.mm, a);
    expect(k.core.map.flags[pfn] & PG_swapcache).toBe(PG_swapcache);
    const { r, mig } = dev.toDevice(vmaAt(p, a), a, a + 4 * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
    expect(r).toBe(0);
    // Collected (the swap cache's reference is expected: migrate_vma_check_page()), then
    // __migrate_device_pages() frees the swap cache (no swap PTE holds the slot) and migrates it.
    expect(mig.cpages).toBe(4);
    expect(mig.src[0] & MIGRATE_PFN_MIGRATE).toBe(MIGRATE_PFN_MIGRATE);
    expect(pteKind(k, p, a)).toBe('device-private-write');
    expect(k.core.vmstat.nr_swapcached).toBe(0);
    expect(badPattern(p, a, 4 * PAGE_SIZE)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('keeps a swap-cache folio whose slot a swap PTE of another process still holds out of device memory', () => {
    const { k, p, dev, check } = machine();
    const a = fourPages(p);
    expect(pageout(k, p.mm, a, PAGE_SIZE)).toBe(1);
    const cpid = p.fork();
    expect(cpid).toBeGreaterThan(0);
    // The parent reads it back: the child's swap PTE still holds the slot.
    expect(p.readI32(a + 4)).toBe(1);
    const { r, mig } = dev.toDevice(vmaAt(p, a), a, a + 4 * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
    expect(r).toBe(0);
    expect(mig.src[0] & MIGRATE_PFN_MIGRATE).toBe(0);
    expect(pteKind(k, p, a)).toBe('present');
    // The other pages are shared with the child since fork: migrated read-only.
    expect(pteKind(k, p, a + PAGE_SIZE)).toBe('device-private-read');
    const c = k.task(cpid);
    if (!c) throw new Error('no child');
    expect(badPattern(c, a, 4 * PAGE_SIZE)).toBe(-1);
    expect(badPattern(p, a, 4 * PAGE_SIZE)).toBe(-1);
    expect(check()).toEqual([]);
  });
});
