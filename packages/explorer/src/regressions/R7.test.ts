/**
 * Bug zoo regression R7: device-private large folios are put on the deferred-split queue
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (R7.hmm replays it in
 * the shell). Finding: invariants violated at the end
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 3,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r1 1024 thp prot 3', 'p0.t0 write r1 0+1 seed 19318', 'p0.t0 fork'] as string[],
  ops: ['p0.t0 gpu migrate r1 0+512', 'p0.t0 mmap r1 512 prot 3'] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:';

describe('bug zoo: R7', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['R7'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('R7')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
