import { MODEL_FIXES, oomSysctls } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { shellScript } from './emit.js';
import { scheduleFor } from './explore.js';
import { generateScenario } from './generate.js';
import { parseReproducer } from './reproducer.js';
import { runScenario } from './run.js';

/** The 24 MiB survey's runs (seed, run) in which OOM kills of other processes met in-flight kernel work. */
const RUNS: readonly [number, number][] = [
  [1, 13],
  [1, 59],
  [2, 96],
];

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
      const sc = generateScenario((seed + i * 7919) >>> 0, {
        ops: 1000,
        procs: 3,
        threads: 2,
        oomKillAllocatingTask: 0,
      });
      let kills = 0;
      const r = runScenario(
        { ...sc, checkEvery: 1000 },
        {
          bugs: [],
          schedule: scheduleFor('random', seed, i, 2),
          ramBytes: 24 << 20,
          inspect: (w) => (kills = w.kernel.core.vmstat.oom_kill),
        },
      );
      expect(r.finding?.message ?? null).toBeNull();
      expect(kills).toBeGreaterThan(0);
    },
  );

  it('K21 on a 24 MiB machine with vm.oom_kill_allocating_task=1: with the fix off an eviction livelocks (seed 1 run 69); with every fix on the run is clean', () => {
    const seed = 1;
    const i = 69;
    const sc = {
      ...generateScenario((seed + i * 7919) >>> 0, { ops: 1000, procs: 3, threads: 2 }),
      checkEvery: 1000,
    };
    const opts = { bugs: [], schedule: scheduleFor('random', seed, i, 2), ramBytes: 24 << 20 };
    const v619 = runScenario(sc, {
      ...opts,
      fixes: MODEL_FIXES.map((f) => f.id).filter((id) => id !== 'K21'),
    });
    expect(v619.finding?.message).toMatch(
      /^dmirror_device_evict_chunk: a __GFP_NOFAIL allocation of order 0 got no page in 10000 passes of reclaim and OOM kills \(the OOM killer's victim: pid \d+, which the OOM reaper gave up on\)$/,
    );
    expect(runScenario(sc, opts).finding?.message ?? null).toBeNull();
  });
});
