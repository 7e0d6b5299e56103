/**
 * Bug zoo regression F30: a split device THP, then freed: chunk->callocated underflows (CVE-2026-93233)
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F30.hmm replays it in
 * the shell). Finding: invariants violated after the verification reads
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 3,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r1 512 thp prot 3', 'p0.t0 write r1 0+1 seed 16533'] as string[],
  ops: ['p0.t1 fork', 'p1.t0 gpu migrate r1 0+512', 'p0.t1 dm2 write r1 495+1'] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:4x13';

describe('bug zoo: F30', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F30'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F30')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
