/**
 * Bug zoo regression R3: collection trylocks the fault folio it already holds locked and skips it (migrate_vma_collect_huge_pmd)
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (R3.hmm replays it in
 * the shell). Finding: user read at 0x7e0002000000 faulted 10000 times without progress
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 3,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r1 1024 thp prot 3'] as string[],
  ops: ['p0.t1 gpu migrate r1 0+512'] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:';

describe('bug zoo: R3', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['R3'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('R3')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
