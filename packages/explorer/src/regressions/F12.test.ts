/**
 * Bug zoo regression F12: migrate_vma_insert_huge_pmd_page()'s unlock-and-abort path leaks the preallocated page table
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F12.hmm replays it in
 * the shell). Finding: invariants violated at the end
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 1,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r0 512 thp prot 3'] as string[],
  ops: ['p0.t0 dm1 to-dev r0 0+512', 'p0.t1 write r0 492+1 seed 8684'] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:3x4.4x3';

describe('bug zoo: F12', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F12'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F12')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
