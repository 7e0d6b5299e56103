/**
 * Bug zoo regression F28: migrate_vma_split_folio() takes its folio reference after dropping the PTE lock: the folio can be freed first
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F28.hmm replays it in
 * the shell). Finding: kernel VM_BUG_ON (modelled): VM_BUG_ON_FOLIO(folio_ref_zero_or_close_to_overflow(folio)) in folio_get() in migrate_vma_split_folio (mm/migrate_device.c)
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 1,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r0 512 thp prot 3', 'p0.t0 write r0 0+512 seed 57439'] as string[],
  ops: [
    'p0.t1 madvise r0 0+512 dontneed',
    'p0.t0 madvise r0 507+5 dontneed',
    'p0.t0 dm0 to-dev r0 468+2',
  ] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:5.4.5x6.4x2';

describe('bug zoo: F28', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F28'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F28')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
