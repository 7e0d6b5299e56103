/**
 * Bug zoo regression F14: pagemap over a device-private PMD: a stale WARN in pagemap_pmd_range_thp()
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F14.hmm replays it in
 * the shell). Finding: WARN: pagemap_pmd_range_thp: VM_WARN_ON_ONCE(!pmd_is_migration_entry(pmd))
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 3,
  threads: 2,
  checkEvery: 32,
  prelude: [] as string[],
  ops: ['p0.t0 dm0 to-dev r0 512+512', 'p0.t1 mmap r0 1024 thp prot 3', 'p0.t0 pagemap r0 590+1'] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:3x2';

describe('bug zoo: F14', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F14'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F14')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
