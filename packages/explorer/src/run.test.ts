import { KernelBug, ScheduleSyntaxError } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { scheduleFor } from './explore.js';
import { generateScenario } from './generate.js';
import { parseOp } from './op.js';
import { runScenario, type Scenario } from './run.js';

const small = (seed: number) => generateScenario(seed, { ops: 30 });

function scenario(prelude: string[], ops: string[]): Scenario {
  return { procs: 2, threads: 2, prelude: prelude.map(parseOp), ops: ops.map(parseOp) };
}

describe('explorer runs', () => {
  it('a run of 10,000 operations is no livelock: each finished operation is progress, not only a thread that ends', () => {
    // Run 3 of `pnpm fuzz --seed 20261204 --ops-per-run 10000` went 500,000 steps without a
    // thread ending (a false livelock before every operation counted as progress); its threads
    // have about 1,700 operations each. Since the threads of an OOM-killed process start no new
    // operation, run 3 ends at 494,943 steps; run 4 (589,650) is as long.
    const seed = 20261204;
    const sc = {
      ...generateScenario((seed + 4 * 7919) >>> 0, { ops: 10000, procs: 3, threads: 2 }),
      checkEvery: 1000,
    };
    const r = runScenario(sc, { schedule: scheduleFor('random', seed, 4, 2) });
    expect(r.finding?.message ?? null).toBeNull();
    expect(r.steps).toBeGreaterThan(500_000);
  });

  it('a generated scenario runs clean under the cooperative, random and PCT strategies', () => {
    for (const schedule of ['coop', 'random:seed=5,p=0.5', 'pct:seed=9,d=3,k=500']) {
      const r = runScenario(small(3), { schedule, checkEvery: 8 });
      expect(r.finding?.message ?? null).toBeNull();
      expect(r.opsDone).toBeGreaterThan(0);
      expect(r.checks).toBeGreaterThan(2);
    }
  });

  it('the trace of a run replays it exactly (same operations, same results, same trace)', () => {
    const sc = small(11);
    const a = runScenario(sc, { schedule: 'random:seed=77,p=0.5' });
    const b = runScenario(sc, { schedule: a.trace });
    expect(b.log).toEqual(a.log);
    expect(b.steps).toBe(a.steps);
    expect(b.trace).toBe(a.trace);
    expect(a.trace).toMatch(/^trace:/);
  });

  it("a store racing another thread's munmap() takes a SIGSEGV the program catches: the process goes on", () => {
    const sc = scenario(
      ['p0.t0 mmap r0 1024 prot 3', 'p0.t0 write r0 0+1024 seed 1'],
      [
        'p0.t0 write r0 0+1024 seed 2',
        'p0.t1 munmap r0 512+512',
        'p0.t0 mmap r1 512 prot 3',
        'p0.t0 write r1 0+8 seed 3',
      ],
    );
    let caught = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const r = runScenario(sc, { schedule: `random:seed=${seed},p=0.5` });
      expect(r.finding?.message ?? null).toBeNull();
      if (!r.log.includes('p0.t0 write r0 0+1024 seed 2 -> signal 11 (handled)')) continue;
      caught++;
      // The thread's next operations ran (nothing is skipped: the process is alive).
      expect(r.log).toContain('p0.t0 write r1 0+8 seed 3 -> 0');
      expect(r.opsDone).toBe(6); // 2 prelude + 4
    }
    expect(caught).toBeGreaterThan(0);
  });

  it('a switched-on bug is reported as the kernel reports it; the fixed model is clean', () => {
    const sc = scenario(
      ['p0.t0 mmap r0 512 thp prot 3', 'p0.t0 write r0 0+512 seed 1'],
      ['p0.t0 dm0 to-dev r0 0+512'],
    );
    const bad = runScenario(sc, { schedule: 'coop', bugs: ['F10'] });
    expect(bad.finding?.message).toMatch(/WARN: remove_migration_pmd: .*softleaf_is_migration_young/);
    expect(runScenario(sc, { schedule: 'coop' }).finding).toBeNull();
  });

  it('a modelled oops is a KernelBug finding naming the kernel function', () => {
    const sc = scenario(
      ['p0.t0 mmap r0 512 thp prot 3', 'p0.t0 write r0 0+512 seed 1', 'p0.t0 dm0 to-dev r0 0+512'],
      ['p0.t0 munmap r0 0+512'],
    );
    const r = runScenario(sc, { schedule: 'coop', bugs: ['F15'] });
    expect(r.finding).toBeInstanceOf(KernelBug);
    expect((r.finding as KernelBug).fn).toBe('pmdp_huge_get_and_clear_full');
  });

  it('a malformed schedule string is a one-line ScheduleSyntaxError', () => {
    for (const schedule of ['pct:seed=x', 'lottery', 'trace:1x']) {
      let err: unknown = null;
      try {
        runScenario(small(1), { schedule });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ScheduleSyntaxError);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});
