/**
 * Bug zoo regression F15: munmap racing with a PMD migration: the huge-PMD clear asserts on a non-present entry
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F15.hmm replays it in
 * the shell). Finding: kernel VM_BUG_ON (modelled): VM_BUG_ON(!pmd_present(*pmdp)) (book3s64 hash MMU) in pmdp_huge_get_and_clear_full (mm/)
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 3,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r0 1024 thp prot 3', 'p0.t0 fork'] as string[],
  ops: ['p1.t1 dm0 to-dev r0 512+512', 'p1.t1 exit'] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:';

describe('bug zoo: F15', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F15'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F15')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
