/**
 * The device-migration invariant checker catches what it claims to (kernel-mechanics.md §9):
 * each test breaks one invariant on purpose and expects the report.
 */
import {
  allocFolio,
  folioGet,
  folioPut,
  folioTrylock,
  folioUnlock,
  PAGE_SIZE,
  PG_deferred_split,
  PMD_SIZE,
  pteIndex,
  pteTableOf,
  ptHi,
  ptLo,
  ptSet,
  SWP_MIG_YOUNG,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { checkMigrate } from './checker.js';
import { inflightMigrations, migrationEnd } from './inflight.js';
import { entryPfnAt, fillPattern, type Machine, machine, thpWindow, vmaAt } from './testing/harness.js';
import { migrateVmaFinalize, migrateVmaPages, migrateVmaSetup } from './testing/sync.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_VMA_SELECT_SYSTEM,
  migratePfn,
  migratePfnToPage,
  newMigrateVma,
} from './types.js';

function audit(mc: Machine): string {
  return checkMigrate(mc.k, { freeLists: () => [mc.dev.freeLists(), mc.dev2.freeLists()] }).join('\n');
}

function smallPages(mc: Machine, n: number): number {
  const w = thpWindow(mc.p);
  mc.p.madvise(w, PMD_SIZE, 15);
  fillPattern(mc.p, w, n * PAGE_SIZE);
  return w;
}

describe('installMigrateChecker', () => {
  it('reports a migration entry that survives its migration and the folio it left locked', () => {
    const mc = machine();
    const w = smallPages(mc, 2);
    const mig = newMigrateVma({
      vma: vmaAt(mc.p, w),
      start: w,
      end: w + 2 * PAGE_SIZE,
      flags: MIGRATE_VMA_SELECT_SYSTEM,
    });
    expect(migrateVmaSetup(mc.k.core, mig)).toBe(0);
    expect(audit(mc)).toBe('');
    migrationEnd(mc.k.core, mig);
    expect(audit(mc)).toMatch(/migration PTE survives outside any migration in flight/);
    expect(mc.k.check().join('\n')).toMatch(/locked at a syscall boundary/);
    mc.k.core.migrationsInFlight++;
    migrateVmaFinalize(mc.k.core, mig);
    mc.k.core.migrationsInFlight--;
    expect(mc.check()).toEqual([]);
  });

  it('reports a source with an unexpected reference and a bad compound destination while in flight', () => {
    const mc = machine();
    const w = smallPages(mc, 1);
    const mig = newMigrateVma({
      vma: vmaAt(mc.p, w),
      start: w,
      end: w + PAGE_SIZE,
      flags: MIGRATE_VMA_SELECT_SYSTEM,
    });
    migrateVmaSetup(mc.k.core, mig);
    const src = migratePfnToPage(mig.src[0]);
    folioGet(mc.k.core, src);
    expect(audit(mc)).toMatch(/source refcount 2, expected 1/);
    folioPut(mc.k.core, src);
    const d = mc.dev.alloc(0);
    mig.dst[0] = migratePfn(d) + MIGRATE_PFN_COMPOUND;
    expect(audit(mc)).toMatch(
      /COMPOUND destination is not the head of a PMD-order \(or declared mTHP-order\) folio/,
    );
    mig.dst[0] = migratePfn(d);
    expect(audit(mc)).toBe('');
    migrateVmaPages(mc.k.core, mig);
    migrateVmaFinalize(mc.k.core, mig);
    expect(inflightMigrations(mc.k.core)).toEqual([]);
    expect(mc.check()).toEqual([]);
  });

  it('reports device folios on a deferred-split queue, young device entries and free-list damage', () => {
    const mc = machine();
    const { k, p, dev } = mc;
    const w = smallPages(mc, 1);
    dev.toDevice(vmaAt(p, w), w, w + PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
    expect(audit(mc)).toBe('');
    const d = entryPfnAt(k, p, w);
    k.core.map.flags[d] |= PG_deferred_split;
    expect(audit(mc)).toMatch(/device-private folio on a deferred-split queue/);
    k.core.map.flags[d] &= ~PG_deferred_split;
    const t = pteTableOf(k.core, p.mm, w, false);
    const i = pteIndex(w);
    const lo = ptLo(k.core, t, i);
    ptSet(k.core, t, i, (lo | SWP_MIG_YOUNG) >>> 0, ptHi(k.core, t, i));
    expect(audit(mc)).toMatch(/device-private PTE carries young\/dirty bits/);
    ptSet(k.core, t, i, lo, ptHi(k.core, t, i));
    const stolen = dev.small.pop()!;
    expect(audit(mc)).toMatch(/is on no free list \(leaked\)/);
    dev.small.push(stolen, stolen);
    expect(audit(mc)).toMatch(/twice on the free lists/);
    dev.small.pop();
    dev.small.push(d);
    expect(audit(mc)).toMatch(/allocated but on the free lists/);
    dev.small.pop();
    dev.pgmap.refs++;
    expect(audit(mc)).toMatch(/pgmap holds \d+ page references but \d+ device pages are allocated/);
    dev.pgmap.refs--;
    expect(mc.check()).toEqual([]);
  });

  it('reports damage to a free device page deep in an unused stretch of the pgmap (the quiet-block fast path)', () => {
    const mc = machine();
    const m = mc.k.core.map;
    const { startPfn, endPfn } = mc.dev.pgmap;
    expect(audit(mc)).toBe('');
    // Free pages far from anything allocated, in the middle and at the very end of the pgmap.
    for (const pfn of [startPfn + Math.floor((endPfn - startPfn) / 2) + 5, endPfn - 1]) {
      expect(m.refcount[pfn]).toBe(0);
      m.mapcount[pfn] = 1;
      expect(audit(mc)).toMatch(/free device folio is mapped/);
      m.mapcount[pfn] = 0;
      m.mapping[pfn] = 3;
      expect(audit(mc)).toMatch(/free device folio is locked, anonymous or has a mapping/);
      m.mapping[pfn] = 0;
      m.refcount[pfn] = -1;
      expect(audit(mc)).toMatch(/negative refcount/);
      m.refcount[pfn] = 0;
      m.flags[pfn] |= PG_deferred_split;
      expect(audit(mc)).toMatch(/device-private folio on a deferred-split queue/);
      m.flags[pfn] &= ~PG_deferred_split;
      expect(audit(mc)).toBe('');
    }
  });

  it('still reports a stray locked folio on a big machine whose unused RAM is deferred', () => {
    // 64 GiB: all but the first sections stay deferred (never initialised) and are skipped.
    const mc = machine({ ramBytes: 64 * 2 ** 30 });
    const w = smallPages(mc, 2);
    const mig = newMigrateVma({
      vma: vmaAt(mc.p, w),
      start: w,
      end: w + 2 * PAGE_SIZE,
      flags: MIGRATE_VMA_SELECT_SYSTEM,
    });
    expect(migrateVmaSetup(mc.k.core, mig)).toBe(0);
    expect(audit(mc)).toBe('');
    const stray = allocFolio(mc.k.core, 0, false);
    expect(mc.k.core.map.deferred(stray)).toBe(false);
    expect(folioTrylock(mc.k.core, stray)).toBe(true);
    expect(audit(mc)).toMatch(/locked while only migrations hold folio locks/);
    folioUnlock(mc.k.core, stray);
    folioPut(mc.k.core, stray);
    migrateVmaFinalize(mc.k.core, mig);
    expect(mc.check()).toEqual([]);
  });
});
