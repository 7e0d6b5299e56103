import {
  EAGAIN,
  MAX_OOM_REAP_RETRIES,
  MMU_NOTIFY_UNMAP,
  ModelBug,
  mmuNotifierInvalidateRangeStartNonblock,
  oomReapTask,
  PAGE_SIZE,
  PMD_SIZE,
  waitEvent,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { gpuFaultGen } from './fault.js';
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

  it("a GPU fault's interval notifier on the reaper's range while svmm->mutex is held elsewhere: nouveau_svm_range_invalidate() refuses it (mutex_trylock() fails, -EAGAIN), it does not sleep", () => {
    const r = rig({});
    const w = thpWindow(r.p);
    const mm = r.p.mm;
    const sched = r.k.core.sched;
    // Another CPU holds svmm->mutex (a mapping of another fault, say) until told to let go.
    let letGo = false;
    const holder = sched.spawn(
      'svmm->mutex holder',
      (function* () {
        yield* r.svmm.mutex.lock(sched, 'test: holder');
        yield* waitEvent('test: holds svmm->mutex', () => letGo);
        r.svmm.mutex.unlock(sched, 'test: holder');
      })(),
    );
    sched.runUntil(() => r.svmm.mutex.owner === holder);
    // The GPU fault inserts its interval notifier, runs hmm_range_fault() and waits for the mutex.
    const before = mm.notifiers.size;
    const fault = sched.spawn('gpu fault', gpuFaultGen(r.svmm, w, false));
    sched.runUntil(() => fault.state === 'blocked');
    expect(mm.notifiers.size).toBe(before + 1);
    const range = { mm, start: w, end: w + PAGE_SIZE, event: MMU_NOTIFY_UNMAP, owner: null, nonblock: true };
    let ret: number | ModelBug;
    try {
      ret = mmuNotifierInvalidateRangeStartNonblock(range);
    } catch (e) {
      if (!(e instanceof ModelBug)) throw e;
      ret = e;
    }
    expect(ret).toBe(-EAGAIN);
    expect(mm.activeInvalidations).toBe(0);
    letGo = true;
    sched.runUntil(() => fault.done && holder.done);
    expect(fault.error).toBeUndefined();
    expect(fault.result).toBe(0);
    expect(r.k.check()).toEqual([]);
  });
});
