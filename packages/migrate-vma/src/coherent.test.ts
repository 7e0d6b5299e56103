/**
 * Device-coherent memory: migrate_vma to coherent pages (present PTEs the CPU can use),
 * SELECT_DEVICE_COHERENT owner filtering, and migrate_device_coherent_folio() when a long-term
 * pin wants the page back in system memory (kernel-mechanics.md §2.2c, §2.7, §2.9).
 */
import {
  FOLL_LONGTERM,
  FOLL_PIN,
  FOLL_WRITE,
  getUserPages,
  MADV_NOHUGEPAGE,
  MEMORY_DEVICE_COHERENT,
  PAGE_SIZE,
  PMD_SIZE,
  putUserPages,
} from '@hmm-model/mm-core';
import { memremapPages, zoneDeviceFolioInit } from '@hmm-model/zone-device';
import { describe, expect, it } from 'vitest';
import { migrateDeviceInit } from './device.js';
import {
  badPattern,
  entryPfnAt,
  fillPattern,
  machine,
  pteKind,
  thpWindow,
  vmaAt,
} from './testing/harness.js';
import { migrateVmaFinalize, migrateVmaPages, migrateVmaSetup } from './testing/sync.js';
import {
  MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_SYSTEM,
  migratePfn,
  migratePfnToPage,
  newMigrateVma,
} from './types.js';

describe('device-coherent memory', () => {
  it('migrates to coherent pages, filters by owner, and leaves them for a long-term pin', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const core = k.core;
    migrateDeviceInit(core);
    const owner = { name: 'coherent' };
    const free: number[] = [];
    const pgmap = memremapPages(core, {
      type: MEMORY_DEVICE_COHERENT,
      owner,
      name: 'coh',
      nrPages: 512,
      ops: { folioFree: (head) => free.push(head) },
    });
    if (typeof pgmap === 'number') throw new Error(`memremap ${pgmap}`);
    for (let pfn = pgmap.endPfn - 1; pfn >= pgmap.startPfn; pfn--) free.push(pfn);
    const w = thpWindow(p);
    expect(p.madvise(w, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
    fillPattern(p, w, 2 * PAGE_SIZE);
    const vma = vmaAt(p, w);
    const mig = newMigrateVma({
      vma,
      start: w,
      end: w + 2 * PAGE_SIZE,
      flags: MIGRATE_VMA_SELECT_SYSTEM,
      pgmapOwner: owner,
    });
    expect(migrateVmaSetup(core, mig)).toBe(0);
    for (let i = 0; i < 2; i++) {
      const c = free.pop()!;
      zoneDeviceFolioInit(core, c, pgmap, 0);
      core.frames.copy(c, migratePfnToPage(mig.src[i]), 1);
      mig.dst[i] = migratePfn(c);
    }
    migrateVmaPages(core, mig);
    migrateVmaFinalize(core, mig);
    const c0 = entryPfnAt(k, p, w);
    expect(c0).toBeGreaterThanOrEqual(pgmap.startPfn);
    expect(pteKind(k, p, w)).toBe('present');
    expect(check()).toEqual([]);
    expect(badPattern(p, w, 2 * PAGE_SIZE)).toBe(-1);
    const select = (o: unknown) => {
      const m = newMigrateVma({
        vma,
        start: w,
        end: w + PAGE_SIZE,
        flags: MIGRATE_VMA_SELECT_DEVICE_COHERENT,
        pgmapOwner: o,
      });
      expect(migrateVmaSetup(core, m)).toBe(0);
      const n = m.cpages;
      migrateVmaFinalize(core, m);
      return n;
    };
    expect(select({})).toBe(0);
    expect(select(owner)).toBe(1);
    expect(check()).toEqual([]);
    const pins = core.sched.runSync(
      getUserPages(core, p.mm, w, 1, FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE),
      'gup',
    ) as number[];
    expect(pins).toHaveLength(1);
    expect(pins[0]).toBeLessThan(pgmap.startPfn);
    expect(free).toContain(c0);
    expect(badPattern(p, w, 2 * PAGE_SIZE)).toBe(-1);
    putUserPages(core, pins, FOLL_PIN);
    expect(check()).toEqual([]);
  });
});
