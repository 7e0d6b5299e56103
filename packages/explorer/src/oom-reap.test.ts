import type { MmStruct, OomReapResult, Task } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { parseOp } from './op.js';
import { runScenario, type Scenario } from './run.js';

/** p1 (a child of p0) has a THP-backed region; one of its threads migrates it while p0 OOM-kills it. */
const sc: Scenario = {
  procs: 2,
  threads: 2,
  prelude: ['p0.t0 fork', 'p1.t0 mmap r0 1024 thp prot 3', 'p1.t0 write r0 0+1024 seed 1'].map(parseOp),
  ops: [
    'p1.t0 dm0 to-dev r0 0+512',
    'p0.t0 oom p1',
    'p1.t1 write r0 512+8 seed 2',
    'p1.t1 read r0 0+1024',
    'p0.t0 read r0 0+8',
  ].map(parseOp),
};

describe("the `oom` operation queues the OOM reaper (oom_reap_task()) on the victim's mm", () => {
  it('runs clean in every schedule; the reaper reaps a victim still in the kernel, and the victim starts nothing new', () => {
    let reapedInKernel = 0;
    let skippedAfterKill = 0;
    for (let seed = 1; seed <= 40; seed++) {
      let reaper: Task | null = null;
      let victim: MmStruct | null = null;
      let victimInKernel = false;
      const r = runScenario(sc, {
        schedule: `random:seed=${seed},p=0.5`,
        afterOp: (w, op) => {
          // The victim's mm, seen while p1 lives (its slot is emptied once it has exited).
          if (op.k !== 'oom') {
            if (w.slots[1] && !reaper) victim = w.slots[1].proc.mm;
            return;
          }
          const q = w.kernel.core.oomReapers;
          reaper = q[q.length - 1] ?? null;
          victimInKernel = (w.slots[1]?.proc.inKernel ?? 0) > 0;
        },
      });
      expect(r.finding?.message ?? null).toBeNull();
      expect(reaper).not.toBeNull();
      const task = reaper as unknown as Task;
      // The run waited for the reaper; it always ends by setting MMF_OOM_SKIP.
      expect(task.done).toBe(true);
      expect((victim as unknown as MmStruct).oomSkip).toBe(true);
      const res = task.result as OomReapResult;
      if (victimInKernel && res.reaped && (victim as unknown as MmStruct).unstable) reapedInKernel++;
      if (r.log.some((l) => /^p1\.t1 (write|read) .* -> skipped$/.test(l))) skippedAfterKill++;
    }
    // Some schedules kill p1 while its migration is in the kernel: the reaper then zaps its
    // memory (MMF_UNSTABLE) before it exits; and p1's other thread starts no operation after
    // the kill (a thread with SIGKILL pending never returns to user space).
    expect(reapedInKernel).toBeGreaterThan(0);
    expect(skippedAfterKill).toBeGreaterThan(0);
  });
});
