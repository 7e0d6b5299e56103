/**
 * Bug zoo regression R1: fork() copies a device-private PMD as a migration entry (copy_huge_pmd)
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (R1.hmm replays it in
 * the shell). Finding: user write at 0x7e0000000000 faulted 10000 times without progress
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 3,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r0 1024 thp prot 3', 'p0.t0 write r0 0+1024 seed 50731'] as string[],
  ops: [
    'p0.t1 fork',
    'p1.t0 dm0 to-dev r0 0+512',
    'p0.t1 write r0 512+512 seed 10952',
    'p0.t1 fork',
    'p0.t1 write r0 0+512 seed 35422',
    'p2.t1 exit',
  ] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:4x7.5x2.4x2.6.5x2.6.5x3.4x3.5.4x6.5x3';

describe('bug zoo: R1', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['R1'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('R1')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
