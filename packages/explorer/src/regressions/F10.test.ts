/**
 * Bug zoo regression F10: remove_migration_pmd() overwrites the migration entry with the device-private one, then tests it
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F10.hmm replays it in
 * the shell). Finding: WARN: remove_migration_pmd: VM_WARN_ON_ONCE(!softleaf_is_migration(entry)) in softleaf_is_migration_young()
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 3,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r0 1024 thp prot 3', 'p0.t0 write r0 0+1 seed 46024'] as string[],
  ops: ['p0.t0 dm0 to-dev r0 0+512'] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:';

describe('bug zoo: F10', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F10'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F10')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
