import { MAX_OOM_REAP_RETRIES, oomReapTask, PMD_SIZE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { svmmMigrateToVram } from './migrate.js';
import { firstMismatch, pmdKind, rig, thpWindow } from './testing.js';

describe('the OOM reaper and an svmm (nouveau_svmm_invalidate_range_start(), non-blockable)', () => {
  it('every attempt is refused (-EAGAIN): nothing is reaped, the VRAM THP stays mapped, and MMF_OOM_SKIP ends it', () => {
    const r = rig({});
    const w = thpWindow(r.p);
    svmmMigrateToVram(r.svmm, w, w + PMD_SIZE);
    expect(pmdKind(r.k, r.p, w)).toBe('device-private-write');
    const mm = r.p.mm;
    const res = r.k.core.sched.runSync(oomReapTask(r.k.core, mm), 'oom_reaper');
    expect(res).toEqual({ attempts: MAX_OOM_REAP_RETRIES, reaped: false });
    expect(mm.oomSkip).toBe(true);
    expect(mm.activeInvalidations).toBe(0);
    expect(pmdKind(r.k, r.p, w)).toBe('device-private-write');
    // MMF_UNSTABLE is set, but the data comes back: migrate_to_ram() replaces an existing entry,
    // and check_stable_address_space() guards faults on empty ones.
    expect(mm.unstable).toBe(true);
    expect(firstMismatch(r.p, w, 0, PMD_SIZE / 4)).toBe(-1);
    expect(r.k.check()).toEqual([]);
  });
});
