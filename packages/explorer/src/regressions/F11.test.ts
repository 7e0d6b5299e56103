/**
 * Bug zoo regression F11: migrate_vma_insert_huge_pmd_page() aborts on an unstable address space without unlocking the PMD lock
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F11.hmm replays it in
 * the shell). Finding: ioctl returned to user space with a lock held by p0.t1
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 3,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r1 512 prot 3', 'p0.t0 fork'] as string[],
  ops: [
    'p0.t0 mmap r1 1024 prot 3',
    'p0.t0 fork',
    'p0.t1 fork',
    'p1.t0 dm2 to-dev r0 994+30',
    'p0.t0 mmap r0 1024 prot 3',
    'p0.t1 dm0 to-dev r0 0+512',
    'p0.t0 dm0 to-dev r2 512+512',
    'p1.t0 oom p1',
    'p0.t1 oom p2',
    'p0.t1 mmap r0 1024 thp prot 3',
    'p0.t1 fork',
    'p0.t0 dm0 to-dev r2 512+512',
    'p0.t0 mmap r0 512 prot 3',
    'p0.t1 fork',
    'p0.t1 dm0 to-dev r1 512+512',
    'p0.t1 dm0 to-dev r1 502+21',
    'p1.t0 mmap r0 512 prot 3',
    'p0.t1 dm0 to-dev r1 491+54',
    'p0.t0 mmap r2 1024 prot 3',
    'p0.t1 fork',
    'p1.t0 dm0 to-dev r0 0+512',
    'p0.t0 fork',
    'p0.t0 dm3 to-dev r0 0+512',
    'p2.t0 oom p0',
  ] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:5.4.5x2.4x2.7.4x3.5x3.6x2.7.5x2';

describe('bug zoo: F11', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F11'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F11')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
