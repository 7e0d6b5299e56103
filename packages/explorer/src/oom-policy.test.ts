import { MODEL_FIXES, oomSysctls } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { shellScript } from './emit.js';
import { scheduleFor } from './explore.js';
import { generateScenario } from './generate.js';
import { parseReproducer } from './reproducer.js';
import { runScenario } from './run.js';

/**
 * The 24 MiB survey's runs (seed, run) in which OOM kills of other processes met in-flight kernel
 * work (1 59 and 2 96 until session 26, whose GPU jobs changed those runs: 1 64 and 2 89 now).
 */
const RUNS: readonly [number, number][] = [
  [1, 13],
  [1, 64],
  [2, 89],
];

/**
 * Run i of the survey with `seed` (the generator and schedule its tools used) on a `mib` MiB
 * machine, with the given vm.oom_kill_allocating_task (absent: the model's 1) and fix switches
 * (absent: every one).
 * Returns the finding's message (null when clean) and the machine's OOM kills.
 */
function surveyRun(
  seed: number,
  i: number,
  oomKillAllocatingTask?: number,
  fixes?: readonly string[],
  mib = 24,
): { finding: string | null; kills: number } {
  const sc = generateScenario((seed + i * 7919) >>> 0, {
    ops: 1000,
    procs: 3,
    threads: 2,
    ...(oomKillAllocatingTask !== undefined ? { oomKillAllocatingTask } : {}),
  });
  let kills = 0;
  const r = runScenario(
    { ...sc, checkEvery: 1000 },
    {
      bugs: [],
      ...(fixes ? { fixes } : {}),
      schedule: scheduleFor('random', seed, i, 2),
      ramBytes: mib << 20,
      inspect: (w) => (kills = w.kernel.core.vmstat.oom_kill),
    },
  );
  return { finding: r.finding?.message ?? null, kills };
}

describe('vm.oom_kill_allocating_task=0 on an explorer machine (pnpm fuzz --oom-kill-allocating-task 0)', () => {
  it('the scenario carries the setting: the machine boots with it and a reproducer keeps it', () => {
    const sc = generateScenario(11, { ops: 50, ramMiB: 24, oomKillAllocatingTask: 0 });
    expect(sc.oomKillAllocatingTask).toBe(0);
    let policy = -1;
    const r = runScenario(sc, {
      schedule: 'coop',
      inspect: (w) => (policy = oomSysctls(w.kernel.core).oom_kill_allocating_task),
    });
    expect(policy).toBe(0);
    const text = shellScript({ scenario: sc, trace: r.trace, bugs: [], finding: { message: 'x' } }, 'oom');
    expect(text).toMatch(/^explore machine procs=\d threads=\d ram=24M oom-kill-allocating-task=0$/m);
    expect(parseReproducer(text).scenario.oomKillAllocatingTask).toBe(0);
    // Without it the machine keeps the model's 1 and the script says nothing.
    const plain = generateScenario(11, { ops: 20 });
    runScenario(plain, {
      schedule: 'coop',
      inspect: (w) => (policy = oomSysctls(w.kernel.core).oom_kill_allocating_task),
    });
    expect(policy).toBe(1);
    expect(
      shellScript({ scenario: plain, trace: 'coop', bugs: [], finding: { message: 'x' } }, 'p'),
    ).not.toMatch(/oom-kill/);
    expect(() => parseReproducer('explore machine oom-kill-allocating-task=2\nexplore run\n')).toThrow(
      /^explore machine: oom-kill-allocating-task must be 0 or 1, got '2'$/,
    );
  });

  it.each(RUNS)(
    'seed %i run %i: user faults OOM-kill other processes, whose in-flight work and exits the run waits for; clean',
    (seed, i) => {
      const r = surveyRun(seed, i, 0);
      expect(r.finding).toBeNull();
      expect(r.kills).toBeGreaterThan(0);
    },
  );

  it('K21 on a 24 MiB machine with vm.oom_kill_allocating_task=1: with the fix off an eviction livelocks (seed 2 run 33; seed 1 run 69 until the GPU jobs of session 26 changed it); with every fix on the run is clean', () => {
    const v619 = surveyRun(
      2,
      33,
      undefined,
      MODEL_FIXES.map((f) => f.id).filter((id) => id !== 'K21'),
    );
    expect(v619.finding).toMatch(
      /^dmirror_device_evict_chunk: a __GFP_NOFAIL allocation of order 0 got no page in 10000 passes of reclaim and OOM kills \(the OOM killer's victim: pid \d+, which the OOM reaper gave up on\)$/,
    );
    expect(surveyRun(2, 33).finding).toBeNull();
  });

  it('a user fault that runs out of memory goes through out_of_memory() with either policy; the reaper then meets a dmirror snapshot in flight, whose notifier only trylocks (seed 2 run 67, 24 MiB): clean', () => {
    const r = surveyRun(2, 67);
    expect(r.finding).toBeNull();
    expect(r.kills).toBeGreaterThan(0);
  });

  it("an OOM victim's exit that panics is the run's finding (seed 3 run 133, 16 MiB, policy 0: the process whose GPU fault still holds its mm has exited, and a victim's eviction finds nothing killable). Before, the exit's panic was a WARN and the run went on to the deadlock its held folio lock left", () => {
    const r = surveyRun(3, 133, 0, undefined, 16);
    expect(r.finding).toMatch(/^kernel panic \(modelled\): System is deadlocked on memory in out_of_memory/);
    expect(r.finding).toMatch(/invoked oom-killer \(dmirror_device_evict_chunk at 0x0\)/);
    expect(r.kills).toBeGreaterThan(1);
  });
});
