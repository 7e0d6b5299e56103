import { describe, expect, it } from 'vitest';
import { generateScenario } from './generate.js';
import { describeOp, type Op, parseOp } from './op.js';
import { runScenario, type Scenario } from './run.js';

const P = (lines: readonly string[]): Op[] => lines.map(parseOp);

/** A process with 64 swapped-out pages, forked: both address spaces hold the swap entries. */
const PRELUDE = P([
  'p0.t0 mmap r0 512 prot 3',
  'p0.t0 write r0 0+64 seed 7',
  'p0.t0 madvise r0 0+64 pageout',
  'p0.t0 fork',
]);

function swapoffResults(sc: Scenario, schedules: number): Map<string, number> {
  const got = new Map<string, number>();
  for (let s = 1; s <= schedules; s++) {
    const r = runScenario(sc, { schedule: `random:seed=${s},p=0.5` });
    expect(r.finding?.message ?? null).toBeNull();
    for (const line of r.log)
      if (/ swap(off|on) /.test(line)) {
        const ret = line.slice(line.indexOf('->') + 3);
        got.set(ret, (got.get(ret) ?? 0) + 1);
      }
  }
  return got;
}

describe("the 'swap' op: swapoff(2) and swapon(2) of the machine's swap partition", () => {
  it('has a text form that parses back', () => {
    for (const text of ['p0.t0 swapoff', 'p1.t1 swapon']) expect(describeOp(parseOp(text))).toBe(text);
    expect(parseOp('p0.t0 swapon')).toEqual({ k: 'swap', p: 0, t: 0, b: 1 });
  });

  it('swapoff brings every swapped page of both processes back; swapon enables the partition again; the oracle checks the data', () => {
    const sc: Scenario = {
      threads: 1,
      procs: 2,
      prelude: [
        ...PRELUDE,
        ...P(['p0.t0 swapoff', 'p0.t0 swapoff', 'p0.t0 swapon', 'p1.t0 swapon', 'p0.t0 read r0 0+64']),
      ],
      ops: [],
    };
    let swapents = -1;
    const r = runScenario(sc, {
      schedule: 'coop',
      inspect: (w) => {
        swapents = 0;
        for (const s of [0, 1]) swapents += w.live(s)?.proc.mm.rss.MM_SWAPENTS ?? 0;
      },
    });
    expect(r.finding?.message ?? null).toBeNull();
    expect(swapents).toBe(0);
    // EINVAL (22): the area is off; EBUSY (16): it is on already.
    expect(r.log.filter((l) => / swap(off|on) /.test(l)).map((l) => l.split(' -> ')[1])).toEqual([
      '0',
      '-22',
      '0',
      '-16',
    ]);
  });

  it('a swapoff racing with a kill of its process ends with -EINTR in some schedules, and the machine stays consistent in all', () => {
    const got = swapoffResults(
      { threads: 1, procs: 2, prelude: PRELUDE, ops: P(['p1.t0 swapoff', 'p0.t0 kill p1']) },
      60,
    );
    expect(got.get('-4')).toBeGreaterThan(0);
  });

  it('a swapoff racing with reclaim, migration to a device and an exit stays consistent in every schedule', () => {
    const ops = P([
      'p0.t0 swapoff',
      'p1.t0 madvise r0 0+64 pageout',
      'p1.t0 dm0 to-dev r0 0+64',
      'p1.t0 exit',
      'p0.t0 swapon',
      'p0.t0 madvise r0 0+64 pageout',
    ]);
    const got = swapoffResults({ threads: 1, procs: 2, prelude: PRELUDE, ops }, 60);
    expect(got.get('0')).toBeGreaterThan(0);
  });

  it('the generator mixes swapoff and swapon into the default mix', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 40 && seen.size < 2; seed++)
      for (const op of generateScenario(seed, { ops: 200 }).ops) if (op.k === 'swap') seen.add(op.b ?? -1);
    expect([...seen].sort()).toEqual([0, 1]);
  });
});
