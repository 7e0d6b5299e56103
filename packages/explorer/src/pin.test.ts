import { EINVAL, ENOENT, walkPfn } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { describeOp, parseOp } from './op.js';
import { runScenario, type Scenario } from './run.js';
import { ALL_FIXES, regionAddr } from './world.js';

/** A one-thread scenario of text-form ops after a prelude that maps and writes 4 pages of r0. */
function scenario(ops: string[], procs = 1): Scenario {
  return {
    threads: 1,
    procs,
    checkEvery: 2,
    prelude: ['p0.t0 mmap r0 4 prot 3', 'p0.t0 write r0 0+4 seed 5'].map(parseOp),
    ops: ops.map(parseOp),
  };
}

/** The result each op of the run logged (`<op> -> <ret>`), by op text. */
function results(sc: Scenario): string[] {
  const r = runScenario(sc, { schedule: 'coop' });
  expect(r.finding?.message ?? null).toBeNull();
  return r.log.filter((l) => !l.includes('mmap') && !l.includes('write r0 0+4 seed 5'));
}

describe("the 'pin' op: PIN_LONGTERM_TEST_START/STOP through gup_test", () => {
  it('has a text form: pin (read or write) and unpin', () => {
    for (const text of ['p1.t0 pin r2 7+9', 'p0.t1 pin r0 0+512 write', 'p2.t0 unpin'])
      expect(describeOp(parseOp(text))).toBe(text);
  });

  it('a long-term pinned page is not migrated to the device (the READ-back finds no entry) until it is unpinned', () => {
    const log = results(
      scenario([
        'p0.t0 pin r0 0+4 write',
        'p0.t0 dm0 to-dev r0 0+4',
        'p0.t0 read r0 0+4',
        'p0.t0 unpin',
        'p0.t0 dm0 to-dev r0 0+4',
        'p0.t0 read r0 0+4',
      ]),
    );
    expect(log).toEqual([
      'p0.t0 pin r0 0+4 write -> 0',
      `p0.t0 dm0 to-dev r0 0+4 -> ${-ENOENT}`,
      'p0.t0 read r0 0+4 -> 0',
      'p0.t0 unpin -> 0',
      'p0.t0 dm0 to-dev r0 0+4 -> 0',
      'p0.t0 read r0 0+4 -> 0',
    ]);
  });

  it('the pins are the machine’s one set: a second START is -EINVAL; a pin of device pages brings them back to RAM', () => {
    const log = results(
      scenario([
        'p0.t0 dm0 to-dev r0 0+4',
        'p0.t0 pin r0 0+2',
        'p0.t0 pin r0 2+2',
        'p0.t0 dm0 read r0 0+4',
        'p0.t0 unpin',
        'p0.t0 unpin',
      ]),
    );
    expect(log).toEqual([
      'p0.t0 dm0 to-dev r0 0+4 -> 0',
      'p0.t0 pin r0 0+2 -> 0',
      `p0.t0 pin r0 2+2 -> ${-EINVAL}`,
      'p0.t0 dm0 read r0 0+4 -> 0',
      'p0.t0 unpin -> 0',
      'p0.t0 unpin -> 0',
    ]);
  });

  it('fork() copies a pinned exclusive page at once (copy_present_page()); an unpinned one is shared copy-on-write', () => {
    for (const pinned of [true, false]) {
      let same: boolean | null = null;
      const sc = scenario(
        [...(pinned ? ['p0.t0 pin r0 0+1 write'] : []), 'p0.t0 fork', 'p1.t0 read r0 0+1'],
        2,
      );
      const r = runScenario(sc, {
        schedule: 'coop',
        afterOp: (w, op) => {
          if (op.k !== 'fork') return;
          const parent = w.live(0);
          const child = w.live(1);
          if (!parent || !child) return;
          const core = w.kernel.core;
          const at = regionAddr(0, 0);
          same = walkPfn(core, parent.proc.mm, at, false) === walkPfn(core, child.proc.mm, at, false);
        },
      });
      expect(r.finding?.message ?? null).toBeNull();
      expect(same).toBe(!pinned);
    }
  });

  it('K14: a long-term pin of a large device-coherent folio (mTHP extension) warns in v6.19; with K14 it is migrated whole', () => {
    const sc: Scenario = {
      threads: 1,
      procs: 1,
      checkEvery: 1000,
      mthp: true,
      prelude: [],
      ops: [
        'p0.t0 mmap r2 1024 prot 3',
        'p0.t0 write r2 512+512 seed 3',
        'p0.t0 dm2 to-dev r2 512+512',
        'p0.t0 pin r2 492+27',
        'p0.t0 read r2 490+40',
      ].map(parseOp),
    };
    const v619 = runScenario(sc, { schedule: 'coop', fixes: ALL_FIXES.filter((f) => f !== 'K14') });
    expect(v619.finding?.message).toBe('WARN: migrate_device_coherent_folio: large folio');
    let order = -1;
    const fixed = runScenario(sc, {
      schedule: 'coop',
      afterOp: (w, op) => {
        // The pinned pages are in RAM now, in one system folio of the device folio's order.
        if (op.k !== 'pin') return;
        const slot = w.live(0);
        if (!slot) return;
        const m = w.kernel.core.map;
        order = m.folioOrder(m.head[walkPfn(w.kernel.core, slot.proc.mm, regionAddr(2, 512), false)]);
      },
    });
    expect(fixed.finding?.message ?? null).toBeNull();
    expect(fixed.log).toContain('p0.t0 pin r2 492+27 -> 0');
    expect(order).toBeGreaterThan(0);
  });
});
