/**
 * The explorer's mTHP machine (issue 9): WorldOptions.mthp boots anonymous mTHP sizes
 * (thpsize_enabled_store()) and dmirror devices with mTHP orders (test-hmm's model extension);
 * generated mTHP scenarios reach device folios of orders 2..8 and replay from their reproducers.
 */
import { RAM_START_PFN } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { shellScript } from './emit.js';
import { generateScenario } from './generate.js';
import { DM_CMDS, describeOp, OpSyntaxError, parseOp } from './op.js';
import { parseReproducer } from './reproducer.js';
import { runScenario } from './run.js';
import { MTHP_ANON_SIZES, MTHP_DEVICE_ORDERS, World } from './world.js';

/** Orders (2..8) of the live large folios of the device pgmaps, and of system RAM. */
function largeOrders(w: World): { device: Set<number>; ram: Set<number> } {
  const core = w.kernel.core;
  const m = core.map;
  const device = new Set<number>();
  const ram = new Set<number>();
  for (const pg of core.pgmaps) {
    if (!pg) continue;
    for (let p = pg.startPfn; p < pg.endPfn; p++)
      if (m.head[p] === p && m.refcount[p] > 0) {
        const o = m.folioOrder(p);
        if (o >= 2 && o <= 8) device.add(o);
      }
  }
  for (let p = RAM_START_PFN; p < RAM_START_PFN + core.ramPages; p++)
    if (!m.deferred(p) && m.head[p] === p && m.refcount[p] > 0) {
      const o = m.folioOrder(p);
      if (o >= 2 && o <= 8) ram.add(o);
    }
  return { device, ram };
}

describe('WorldOptions.mthp', () => {
  it('boots with the anonymous mTHP sizes set through sysfs and the dmirror devices holding their orders', () => {
    const w = new World({ mthp: true });
    try {
      const o = w.kernel.core.thpAnonOrders;
      for (const [order, mode] of MTHP_ANON_SIZES) {
        const bit = 1 << order;
        expect({
          order,
          always: !!(o.always & bit),
          madvise: !!(o.madvise & bit),
          inherit: !!(o.inherit & bit),
        }).toEqual({
          order,
          always: mode === 'always',
          madvise: mode === 'madvise',
          inherit: mode === 'inherit',
        });
      }
      expect(w.dmirror.devices.map((d) => d.mthpOrders)).toEqual(
        [0, 1, 2, 3].map((d) => MTHP_DEVICE_ORDERS[d]),
      );
    } finally {
      w.dispose();
    }
    const plain = new World();
    try {
      expect(plain.dmirror.devices.map((d) => d.mthpOrders)).toEqual([0, 0, 0, 0]);
    } finally {
      plain.dispose();
    }
  });

  it('generated mTHP scenarios run clean and put folios of orders 2..8 on the devices and in RAM', () => {
    const device = new Set<number>();
    const ram = new Set<number>();
    for (let seed = 1; seed <= 15; seed++) {
      const sc = generateScenario(seed, { mthp: true, ops: 120 });
      expect(sc.mthp).toBe(true);
      const r = runScenario(sc, {
        schedule: `random:seed=${seed},p=0.2`,
        afterOp: (w, _op, quiescent) => {
          if (!quiescent) return;
          const got = largeOrders(w);
          for (const o of got.device) device.add(o);
          for (const o of got.ram) ram.add(o);
        },
      });
      expect(r.finding?.message ?? null).toBeNull();
    }
    // Device folios below the PMD order exist only with the extension (these seeds: 16, 64 and 256 KiB).
    expect(device.size).toBeGreaterThanOrEqual(2);
    // The boot settings fault in 16 KiB and 64 KiB folios; the mthp ops and fallbacks make others.
    expect(ram.has(2) && ram.has(4)).toBe(true);
    expect(ram.size).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it('without mthp the generator makes none of the mTHP operations (v6.19 scenarios unchanged)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const sc = generateScenario(seed, { ops: 80 });
      expect(sc.mthp).toBeUndefined();
      for (const op of sc.ops) {
        expect(op.k).not.toBe('mthp');
        if (op.k === 'dm') expect(['fail-order', 'snapshot-order']).not.toContain(DM_CMDS[op.b ?? 0]);
      }
    }
  });
});

describe('mTHP operations and reproducers', () => {
  it('the new operations round-trip through their text form, and bad ones are one-line errors', () => {
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 20; seed++)
      for (const op of generateScenario(seed, { mthp: true, ops: 60 }).ops) {
        const text = describeOp(op);
        expect(describeOp(parseOp(text))).toBe(text);
        kinds.add(op.k === 'dm' ? DM_CMDS[op.b ?? 0] : op.k);
      }
    expect([...kinds]).toEqual(expect.arrayContaining(['mthp', 'fail-order', 'snapshot-order']));
    expect(describeOp(parseOp('p0.t1 mthp 64kB madvise'))).toBe('p0.t1 mthp 64kB madvise');
    expect(parseOp('p0.t0 dm1 fail-order r0 0+16 order 4')).toMatchObject({ k: 'dm', a: 1, off2: 4, n: 16 });
    expect(() => parseOp('p0.t0 mthp 8kB always')).toThrow(OpSyntaxError);
    expect(() => parseOp('p0.t0 mthp 64kB sometimes')).toThrow(/unknown mTHP mode 'sometimes'/);
    expect(() => parseOp('p0.t0 dm0 fail-order r0 0+16')).toThrow(/order N/);
  });

  it('a reproducer of an mTHP scenario names the machine and replays on it', () => {
    const sc = generateScenario(3, { mthp: true, ops: 12 });
    const r = runScenario(sc, { schedule: 'random:seed=3,p=0.2' });
    const text = shellScript({ scenario: sc, trace: r.trace, bugs: [], finding: { message: 'none' } }, 'x');
    expect(text).toMatch(/^explore machine procs=3 threads=2 mthp$/m);
    const back = parseReproducer(text);
    expect(back.scenario.mthp).toBe(true);
    const again = runScenario(back.scenario, { schedule: back.schedule });
    expect(again.trace).toBe(r.trace);
    expect(again.opsDone).toBe(r.opsDone);
  });
});
