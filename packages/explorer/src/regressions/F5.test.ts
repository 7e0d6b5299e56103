/**
 * Bug zoo regression F5: MADV_FREE racing with a migration to device: VM_BUG_ON in madvise_free_huge_pmd
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F5.hmm replays it in
 * the shell). Finding: kernel VM_BUG_ON (modelled): VM_BUG_ON(thp_migration_supported() && !pmd_is_migration_entry(orig_pmd)) in madvise_free_huge_pmd (mm/huge_memory.c)
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 1,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r0 1024 thp prot 3', 'p0.t0 write r0 0+1024 seed 29365'] as string[],
  ops: [
    'p0.t0 madvise r0 0+256 free',
    'p0.t0 madvise r0 0+512 free',
    'p0.t1 dm0 to-dev r0 0+512',
  ] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:5x2.4x2.5x8.4';

describe('bug zoo: F5', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F5'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F5')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
