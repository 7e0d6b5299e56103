/**
 * Bug zoo regression F23: closing the dmirror file does not evict its device pages: use-after-free (CVE-2026-46280)
 * Written by `pnpm bugs --write` from the explorer's minimal reproducer (F23.hmm replays it in
 * the shell). Finding: kernel VM_BUG_ON (modelled): use-after-free: the device page's zone_device_data names a dmirror freed by dmirror_fops_release() in dmirror_devmem_fault (lib/test_hmm.c)
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../ops.js';
import { runScenario, type Scenario } from '../run.js';
import { zooEntry } from '../zoo.js';

const text = {
  procs: 3,
  threads: 2,
  checkEvery: 32,
  prelude: ['p0.t0 mmap r2 512 thp prot 3'] as string[],
  ops: ['p0.t1 dm0 to-dev r2 313+1', 'p0.t0 dm0 close'] as string[],
};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = 'trace:3x10';

describe('bug zoo: F23', () => {
  it('with the switch on, the reproducer finds the bug', () => {
    const r = runScenario(scenario, { schedule, bugs: ['F23'] });
    expect(r.finding).not.toBeNull();
    if (r.finding) expect(zooEntry('F23')?.matches(r.finding), r.finding.message).toBe(true);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
