/**
 * Bug zoo regression F6: MADV_COLD/PAGEOUT racing with a migration to device: VM_BUG_ON in madvise_cold_or_pageout_pte_range
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F6.hmm replays it in
 * the shell). Finding: kernel VM_BUG_ON (modelled): VM_BUG_ON(thp_migration_supported() && !pmd_is_migration_entry(orig_pmd)) in madvise_cold_or_pageout_pte_range (mm/madvise.c)
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 1,
  threads: 3,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r0 1024 thp prot 3', 'p0.t0 write r0 0+1024 seed 5572'] as string[],
  ops: [
    'p0.t0 dm0 to-dev r0 512+512',
    'p0.t1 dm1 to-sys r0 512+1',
    'p0.t2 madvise r0 512+1 cold',
    'p0.t1 dm0 to-dev r0 0+1',
  ] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:6x2.5x2.4x5.5x6.4x5.5x7.4';

describe('bug zoo: F6', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F6'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F6')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
