/**
 * Bug zoo regression R5: a THP found in the middle of a PMD (after mremap) leaves a migration PTE behind
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (R5.hmm replays it in
 * the shell). Finding: invariants violated after p0.t0 dm0 to-dev r0 0+2
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 1,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r0 1024 thp prot 3', 'p0.t0 write r0 0+1 seed 13473'] as string[],
  ops: ['p0.t0 mremap r0 0+1 to r1 694 dontunmap', 'p0.t0 dm0 to-dev r0 0+2'] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:';

describe('bug zoo: R5', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['R5'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('R5')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
