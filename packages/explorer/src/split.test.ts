import { walkPfn } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { generateScenario } from './generate.js';
import { describeOp, type Op, OpSyntaxError, parseOp } from './op.js';
import { runScenario, type Scenario } from './run.js';
import { regionAddr, type World } from './world.js';

const P = (lines: readonly string[]): Op[] => lines.map(parseOp);

/** The order of the folio mapping page `page` of region 0 in process 0 (-1 when unmapped). */
function orderAt(w: World, page: number): number {
  const core = w.kernel.core;
  const slot = w.live(0);
  if (!slot) return -1;
  const pfn = walkPfn(core, slot.proc.mm, regionAddr(0, page), false);
  return pfn < 0 ? -1 : core.map.folioOrder(core.map.head[pfn]);
}

function run(
  lines: readonly string[],
  pages: readonly number[],
): { log: readonly string[]; orders: number[] } {
  const sc: Scenario = {
    threads: 1,
    procs: 1,
    prelude: P(['p0.t0 mmap r0 1024 thp prot 3', 'p0.t0 write r0 0+1024 seed 5', ...lines]),
    ops: [],
  };
  let orders: number[] = [];
  const r = runScenario(sc, { schedule: 'coop', inspect: (w) => (orders = pages.map((p) => orderAt(w, p))) });
  expect(r.finding?.message ?? null).toBeNull();
  return { log: r.log.slice(2), orders };
}

describe("the 'split' op: the debugfs split_huge_pages of a range of the process", () => {
  it('has a text form that parses back, and rejects malformed ones with one line', () => {
    for (const text of ['p0.t0 split r0 0+512 order 0', 'p1.t1 split r2 3+600 order 4 at 17'])
      expect(describeOp(parseOp(text))).toBe(text);
    expect(() => parseOp('p0.t0 split r0 0+512')).toThrow(OpSyntaxError);
    expect(() => parseOp('p0.t0 split r0 0+512')).toThrow(/expected 'order N' after a split range/);
    expect(() => parseOp('p0.t0 split r0 0+1 order 2 frob')).toThrow(/expected 'at PAGE' or nothing/);
  });

  it('splits the THPs of the range to the order (the next PMD stays whole); a migration to the device and back keeps the data', () => {
    const { log, orders } = run(
      ['p0.t0 split r0 0+512 order 2', 'p0.t0 dm0 to-dev r0 0+1024', 'p0.t0 dm0 to-sys r0 0+1024'],
      [0, 511, 512],
    );
    expect(log[0]).toMatch(/^p0\.t0 split r0 0\+512 order 2 -> \d+$/);
    // Back in RAM the first PMD's pages come from small folios (the collection split the mTHPs
    // again to migrate them page by page); the second is a whole THP again.
    expect(orders).toEqual([0, 0, 9]);
  });

  it('with an in-folio page it splits non-uniformly (folio_split()): order 0 at that page, the far half stays order 8', () => {
    const { orders } = run(
      ['p0.t0 split r0 0+512 order 0 at 100', 'p0.t0 read r0 0+1024'],
      [100, 256, 0, 512],
    );
    expect(orders).toEqual([0, 8, 6, 9]);
  });

  it('only splits to a lower order: order 9 leaves the THP whole', () => {
    const { orders } = run(['p0.t0 split r0 0+512 order 9'], [0]);
    expect(orders).toEqual([9]);
  });

  it('the generator mixes splits into the default mix, some non-uniform', () => {
    let uniform = 0;
    let at = 0;
    for (let seed = 1; seed <= 20; seed++)
      for (const op of generateScenario(seed, { ops: 200 }).ops)
        if (op.k === 'split') op.off2 === undefined ? uniform++ : at++;
    expect(uniform).toBeGreaterThan(0);
    expect(at).toBeGreaterThan(0);
  });
});
