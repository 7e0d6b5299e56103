import {
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type PreemptHook,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import {
  badPattern,
  entryPfnAt,
  fillPattern,
  type Machine,
  machine,
  pteKind,
  vmaAt,
} from './testing/harness.js';
import { migrateVmaFinalize, migrateVmaPages, migrateVmaSetup } from './testing/sync.js';
import { MIGRATE_VMA_SELECT_DEVICE_PRIVATE, MIGRATE_VMA_SELECT_SYSTEM, newMigrateVma } from './types.js';

const NPAGES = 16;

/**
 * NPAGES small pages straddling a PMD boundary (two PTE tables), filled with a pattern: the
 * range a 4 KiB migration walks table by table.
 */
function straddle(mc: Machine): number {
  const raw = mc.p.mmap(0, 3 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const w = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  expect(mc.p.madvise(w, 2 * PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
  const a = w + PMD_SIZE - (NPAGES / 2) * PAGE_SIZE;
  fillPattern(mc.p, a, NPAGES * PAGE_SIZE);
  return a;
}

function kinds(mc: Machine, p: Machine['p'], a: number): string[] {
  return Array.from({ length: NPAGES }, (_, i) => pteKind(mc.k, p, a + i * PAGE_SIZE));
}

describe('__migrate_device_finalize(): remove_migration_ptes() per slot', () => {
  it('restores every mapping of every slot when the rmap walk alternates between two mms and crosses a PTE table', () => {
    // After fork both mms map the pages (one anon_vma, two VMAs): each slot's walk visits the
    // parent's PTE and the child's, in two page tables each (the walk of one slot cannot stand
    // in for the next one's in another mm or PMD range).
    const mc = machine();
    const { k, p, dev } = mc;
    const a = straddle(mc);
    const child = k.task(p.fork())!;
    const run = dev.toDevice(vmaAt(p, a), a, a + NPAGES * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
    expect(run.r).toBe(0);
    expect(kinds(mc, p, a)).toEqual(Array(NPAGES).fill('device-private-read'));
    expect(kinds(mc, child, a)).toEqual(Array(NPAGES).fill('device-private-read'));
    const back = dev.toSystem(vmaAt(p, a), a, a + NPAGES * PAGE_SIZE);
    expect(back.r).toBe(0);
    expect(kinds(mc, p, a)).toEqual(Array(NPAGES).fill('present'));
    expect(kinds(mc, child, a)).toEqual(Array(NPAGES).fill('present'));
    // Both mms map the same new folio at each address, with the data that was copied back.
    for (let i = 0; i < NPAGES; i++) {
      const pa = a + i * PAGE_SIZE;
      const pfn = entryPfnAt(k, p, pa);
      expect(pfn).toBeGreaterThanOrEqual(0);
      expect(entryPfnAt(k, child, pa)).toBe(pfn);
      expect(k.core.map.mapcount[pfn]).toBe(2);
    }
    expect(badPattern(p, a, NPAGES * PAGE_SIZE)).toBe(-1);
    expect(badPattern(child, a, NPAGES * PAGE_SIZE)).toBe(-1);
    expect(mc.check()).toEqual([]);
  });

  it('restores the slots of one mm on both sides of a PMD boundary in a single migrate_vma call', () => {
    // One migrate_vma over both PTE tables (as dmirror's unaligned 512-page steps are): the walk
    // of the last slot before the boundary must not serve the first slot after it.
    const mc = machine();
    const { k, p, dev } = mc;
    const a = straddle(mc);
    const vma = vmaAt(p, a);
    dev.toDevice(vma, a, a + NPAGES * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
    expect(kinds(mc, p, a)).toEqual(Array(NPAGES).fill('device-private-write'));
    const mig = newMigrateVma({
      vma,
      start: a,
      end: a + NPAGES * PAGE_SIZE,
      flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
      pgmapOwner: dev,
    });
    expect(migrateVmaSetup(k.core, mig)).toBe(0);
    expect(mig.cpages).toBe(NPAGES);
    expect(dev.copyBack(mig)).toBe(0);
    migrateVmaPages(k.core, mig);
    migrateVmaFinalize(k.core, mig);
    expect(kinds(mc, p, a)).toEqual(Array(NPAGES).fill('present'));
    expect(badPattern(p, a, NPAGES * PAGE_SIZE)).toBe(-1);
    expect(mc.check()).toEqual([]);
  });

  it('takes its per-slot preemption point when another party could run, and still restores every slot', () => {
    // A preemption hook makes Scheduler.needResched() true: finalize yields after every slot
    // ('__migrate_device_finalize: next slot'), where the walk it kept must be forgotten.
    const mc = machine();
    const { k, p, dev } = mc;
    const a = straddle(mc);
    dev.toDevice(vmaAt(p, a), a, a + NPAGES * PAGE_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
    let slots = 0;
    const hook: PreemptHook = (site) => {
      if (site === '__migrate_device_finalize: next slot') slots++;
    };
    k.core.sched.hooks.add(hook);
    try {
      expect(dev.toSystem(vmaAt(p, a), a, a + NPAGES * PAGE_SIZE).r).toBe(0);
    } finally {
      k.core.sched.hooks.delete(hook);
    }
    // One point between consecutive slots of each migrate_vma step.
    expect(slots).toBeGreaterThanOrEqual(NPAGES - 2);
    expect(kinds(mc, p, a)).toEqual(Array(NPAGES).fill('present'));
    expect(badPattern(p, a, NPAGES * PAGE_SIZE)).toBe(-1);
    expect(mc.check()).toEqual([]);
  });
});
