import { describe, expect, it } from 'vitest';
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER } from './constants.js';
import {
  allocFolio,
  dumpFolio,
  folioAddNewAnonRmap,
  folioAddRmapPmd,
  folioAddRmapPtes,
  folioGet,
  folioLock,
  folioMapcount,
  folioMapped,
  folioPut,
  folioRefCount,
  folioRemoveRmapPmd,
  folioRemoveRmapPtes,
  folioTestAnon,
  folioTestLarge,
  folioTestLocked,
  folioTryGet,
  folioTrylock,
  folioUnlock,
  splitFolioMeta,
} from './folio.js';
import { folioLockWait } from './mm/locking.js';
import { PG_anon_exclusive, PG_head, PG_large_rmappable, PG_locked, PG_tail } from './phys/memmap.js';
import { machine } from './testing/helpers.js';

describe('folio operations (include/linux/mm.h, mm/rmap.c)', () => {
  it('allocates a zeroed small folio with refcount 1 and frees it on the last put', () => {
    const k = machine();
    const c = k.core;
    const before = c.zone.nrFree;
    const f = allocFolio(c, 0, true);
    expect(f).toBeGreaterThan(0);
    expect(folioRefCount(c, f)).toBe(1);
    expect(folioTestLarge(c, f)).toBe(false);
    expect(c.frames.page(f).every((b) => b === 0)).toBe(true);
    expect(c.zone.nrFree).toBe(before - 1);
    folioGet(c, f);
    expect(folioTryGet(c, f)).toBe(true);
    folioPut(c, f, 2);
    expect(c.zone.nrFree).toBe(before - 1);
    folioPut(c, f);
    expect(c.zone.nrFree).toBe(before);
    expect(folioTryGet(c, f)).toBe(false);
    expect(() => folioPut(c, f)).toThrow(/refcount underflow/);
  });

  it('builds a compound folio: head, tails, order', () => {
    const k = machine();
    const c = k.core;
    const m = c.map;
    const f = allocFolio(c, HPAGE_PMD_ORDER, false);
    expect(f % HPAGE_PMD_NR).toBe(0);
    expect(m.flags[f] & PG_head).toBeTruthy();
    expect(m.flags[f] & PG_large_rmappable).toBeTruthy();
    expect(m.folioOrder(f)).toBe(HPAGE_PMD_ORDER);
    expect(m.folioNrPages(f)).toBe(HPAGE_PMD_NR);
    for (let i = 1; i < HPAGE_PMD_NR; i++) {
      if (!(m.flags[f + i] & PG_tail) || m.head[f + i] !== f) throw new Error(`bad tail ${i}`);
    }
    expect(m.folioOf(f + 77)).toBe(f);
    expect(dumpFolio(c, f + 3)).toMatch(/head:0x[0-9a-f]+ order:9 refcount:1/);
    folioPut(c, f);
    expect(m.flags[f + 1] & PG_tail).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('tracks PTE and PMD mapcounts, entire and large mapcount, AnonExclusive', () => {
    const k = machine();
    const c = k.core;
    const m = c.map;
    const f = allocFolio(c, HPAGE_PMD_ORDER, true);
    folioAddNewAnonRmap(c, f, 99, 1000, true);
    expect(folioTestAnon(c, f)).toBe(true);
    expect(m.entireMapcount[f]).toBe(1);
    expect(folioMapcount(c, f)).toBe(1);
    expect(m.flags[f] & PG_anon_exclusive).toBeTruthy();
    expect(m.index[f + 5]).toBe(1005);
    expect(c.vmstat.nr_anon_transparent_hugepages).toBe(1);
    // PTE-map it as well (what a PMD split does), then drop the PMD mapping.
    folioGet(c, f, HPAGE_PMD_NR - 1);
    folioAddRmapPtes(c, f, f, HPAGE_PMD_NR, true);
    expect(folioMapcount(c, f)).toBe(HPAGE_PMD_NR + 1);
    folioRemoveRmapPmd(c, f);
    expect(c.vmstat.nr_anon_transparent_hugepages).toBe(0);
    expect(m.entireMapcount[f]).toBe(0);
    expect(folioMapcount(c, f)).toBe(HPAGE_PMD_NR);
    folioRemoveRmapPtes(c, f, f + 1, 2);
    expect(m.mapcount[f + 1]).toBe(0);
    expect(m.flags[f + 1] & PG_anon_exclusive).toBe(0);
    expect(m.flags[f + 3] & PG_anon_exclusive).toBeTruthy();
    expect(() => folioRemoveRmapPtes(c, f, f + 1, 1)).toThrow(/mapcount underflow/);
    folioRemoveRmapPtes(c, f, f + 3, HPAGE_PMD_NR - 3);
    folioRemoveRmapPtes(c, f, f, 1);
    expect(folioMapped(c, f)).toBe(false);
    folioPut(c, f, HPAGE_PMD_NR);
    expect(c.vmstat.nr_anon_pages).toBe(0);
    expect(() => folioRemoveRmapPmd(c, f)).toThrow(/underflow/);
  });

  it('folioAddRmapPmd on a non-anon folio leaves the anon THP counter alone', () => {
    const k = machine();
    const c = k.core;
    const f = allocFolio(c, HPAGE_PMD_ORDER, false);
    folioAddRmapPmd(c, f, false);
    expect(c.vmstat.nr_anon_transparent_hugepages).toBe(0);
    folioRemoveRmapPmd(c, f);
    folioPut(c, f);
  });

  it('refuses to free a mapped or locked folio', () => {
    const k = machine();
    const c = k.core;
    const f = allocFolio(c, 0, false);
    folioAddRmapPtes(c, f, f, 1, false);
    expect(() => folioPut(c, f)).toThrow(/freeing a mapped folio/);
    c.map.refcount[f] = 1;
    folioRemoveRmapPtes(c, f, f, 1);
    folioLock(c, f);
    expect(folioTestLocked(c, f)).toBe(true);
    expect(folioTrylock(c, f)).toBe(false);
    expect(() => folioLock(c, f)).toThrow(/folioLockWait/);
    // A task that sleeps on it waits for a holder that will never run: a deadlock finding.
    expect(() => c.sched.runSync(folioLockWait(c, f, 'test'), 'locker')).toThrow(
      /deadlock:[\s\S]*waits for folio lock/,
    );
    expect(() => folioPut(c, f)).toThrow(/locked/);
    c.map.refcount[f] = 1;
    folioUnlock(c, f);
    expect(() => folioUnlock(c, f)).toThrow(/folio not locked in folio_unlock/);
    folioPut(c, f);
    expect(k.check()).toEqual([]);
  });

  it('splitFolioMeta turns a THP into small folios keeping per-page state', () => {
    const k = machine();
    const c = k.core;
    const m = c.map;
    const f = allocFolio(c, HPAGE_PMD_ORDER, false);
    folioAddNewAnonRmap(c, f, 7, 0, true);
    folioGet(c, f, HPAGE_PMD_NR - 1);
    folioAddRmapPtes(c, f, f, HPAGE_PMD_NR, true);
    folioRemoveRmapPmd(c, f);
    m.flags[f] |= PG_locked;
    const heads = splitFolioMeta(c, f, 0);
    expect(heads.length).toBe(HPAGE_PMD_NR);
    for (const h of heads) {
      if (m.head[h] !== h || m.flags[h] & (PG_tail | PG_head)) throw new Error(`bad split head ${h}`);
      if (!(m.flags[h] & PG_locked) || m.mapcount[h] !== 1) throw new Error(`lost state ${h}`);
    }
    expect(m.refcount[f + 1]).toBe(0);
    // The caller hands each piece its references, then unlocks, unmaps and frees them.
    for (const h of heads) {
      m.refcount[h] = 1;
      folioUnlock(c, h);
      folioRemoveRmapPtes(c, h, h, 1);
      folioPut(c, h);
    }
    expect(c.vmstat.nr_anon_pages).toBe(0);
    expect(k.check()).toEqual([]);
    expect(() => splitFolioMeta(c, allocFolio(c, 0, false), 0)).toThrow(/split to an order/);
  });
});
