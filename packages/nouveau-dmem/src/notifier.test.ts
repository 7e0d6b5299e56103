/** The driver rows of mm-core's mmu-notifier audit table for nouveau: what its own migrations send. */
import { NotifierRecorder, PAGE_SIZE, PMD_SIZE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { svmmMigrateToVram } from './migrate.js';
import { rig, thpWindow } from './testing.js';

describe('nouveau-started invalidations', () => {
  it('migrating to VRAM sends MMU_NOTIFY_MIGRATE with owner = drm->dev; the CPU fault back sends it for the THP', () => {
    const { drm, p, svmm } = rig();
    const w = thpWindow(p);
    const r = new NotifierRecorder();
    r.attach(p.mm);
    svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    const mig = r.events.filter((e) => e.name === 'MMU_NOTIFY_MIGRATE');
    expect(mig.map((e) => [e.start - w, e.end - w])).toEqual([[0, PMD_SIZE]]);
    expect(mig[0].owner).toBe(drm.dev);
    expect(r.unpaired()).toEqual([]);
    r.clear();
    p.readI32(w + 3 * PAGE_SIZE);
    expect(r.events.map((e) => [e.name, e.start - w, e.end - w, e.owner === drm.dev])).toEqual([
      ['MMU_NOTIFY_MIGRATE', 0, PMD_SIZE, true],
    ]);
  });
});
