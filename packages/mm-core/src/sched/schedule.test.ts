import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Mutex, RwSem } from './locks.js';
import { decodeTrace, encodeTrace, parseSchedule, ScheduleSyntaxError } from './schedule.js';
import { Scheduler } from './scheduler.js';
import {
  CooperativeStrategy,
  PctStrategy,
  PrefixStrategy,
  RandomStrategy,
  ReplayStrategy,
  type Strategy,
} from './strategy.js';
import type { KGen } from './task.js';

/**
 * A small concurrent program: three workers share a mutex and an rwsem and log what they do
 * between preemption points. Returns the interleaving, the results and the recorded schedule.
 */
function program(strategy: Strategy) {
  const s = new Scheduler(strategy);
  const m = new Mutex('m');
  const sem = new RwSem('sem');
  const log: string[] = [];
  let counter = 0;
  function* worker(name: string, writer: boolean): KGen<number> {
    for (let round = 0; round < 3; round++) {
      if (writer) yield* sem.downWrite(s, `${name}: down_write`);
      else yield* sem.downRead(s, `${name}: down_read`);
      log.push(`${name} sem ${round}`);
      yield `${name}: under sem`;
      yield* m.lock(s, `${name}: lock`);
      const seen = counter;
      yield `${name}: under m`;
      counter = seen + 1;
      m.unlock(s, `${name}: unlock`);
      if (writer) sem.upWrite(s, `${name}: up_write`);
      else sem.upRead(s, `${name}: up_read`);
      log.push(`${name} done ${round}`);
      yield `${name}: between rounds`;
    }
    return counter;
  }
  const tasks = [
    s.spawn('r1', worker('r1', false)),
    s.spawn('w', worker('w', true)),
    s.spawn('r2', worker('r2', false)),
  ];
  s.runAll();
  return {
    log,
    results: tasks.map((t) => t.result),
    errors: tasks.map((t) => t.error),
    counter,
    schedule: s.schedule(),
    trace: [...s.trace],
  };
}

describe('schedule strings: parse and describe', () => {
  it.each([
    ['coop', CooperativeStrategy],
    ['random:seed=17,p=0.5', RandomStrategy],
    ['random:seed=0,p=0', RandomStrategy],
    ['random:seed=4294967295,p=1', RandomStrategy],
    ['random:seed=3,p=0.125', RandomStrategy],
    ['pct:seed=3,d=3,k=2000', PctStrategy],
    ['pct:seed=9,d=1,k=1', PctStrategy],
    ['trace:2x5.3.2x12', ReplayStrategy],
    ['trace:', ReplayStrategy],
  ])('%s parses and describes itself back', (str, cls) => {
    const st = parseSchedule(str);
    expect(st).toBeInstanceOf(cls);
    expect(st.describe()).toBe(str);
    expect(parseSchedule(st.describe()).describe()).toBe(str);
  });

  it('fills in defaults, in any parameter order, and ignores surrounding blanks', () => {
    expect(parseSchedule('random').describe()).toBe('random:seed=1,p=0.5');
    expect(parseSchedule('random:p=0.25,seed=8').describe()).toBe('random:seed=8,p=0.25');
    expect(parseSchedule('pct:k=50').describe()).toBe('pct:seed=1,d=3,k=50');
    expect(parseSchedule('  coop\n').describe()).toBe('coop');
    const r = parseSchedule('trace:1.1.2x3.1') as ReplayStrategy;
    expect(r.choices).toEqual([1, 1, 2, 2, 2, 1]);
    expect(r.describe()).toBe('trace:1x2.2x3.1');
  });

  it('every random or PCT strategy describes itself as a string that parses back to it', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 1e9 }),
        (seed, p, d, k) => {
          for (const st of [new RandomStrategy(seed, p), new PctStrategy(seed, d, k)]) {
            const again = parseSchedule(st.describe());
            expect(again.describe()).toBe(st.describe());
          }
          expect((parseSchedule(new RandomStrategy(seed, p).describe()) as RandomStrategy).p).toBe(p);
        },
      ),
      { numRuns: 300, seed: 11 },
    );
  });

  it.each([
    ['', "unknown schedule '' (expected coop, random:seed=N,p=X, pct:seed=N,d=N,k=N or trace:...)"],
    ['fifo', "unknown schedule 'fifo' (expected coop, random:seed=N,p=X, pct:seed=N,d=N,k=N or trace:...)"],
    [
      'Random:seed=1',
      "unknown schedule 'Random' (expected coop, random:seed=N,p=X, pct:seed=N,d=N,k=N or trace:...)",
    ],
    ['coop:seed=1', "'coop' takes no parameters"],
    ['random:seed=abc', "bad parameter 'seed=abc' (expected name=number)"],
    ['random:seed=', "bad parameter 'seed=' (expected name=number)"],
    ['random:seed=1,,p=0.5', "bad parameter '' (expected name=number)"],
    ['random: seed=1', "bad parameter ' seed=1' (expected name=number)"],
    ['random:seed=1.5', "parameter 'seed' must be an integer in [0, 4294967295]"],
    ['random:seed=-1', "parameter 'seed' must be an integer in [0, 4294967295]"],
    ['random:seed=4294967296', "parameter 'seed' must be an integer in [0, 4294967295]"],
    ['random:p=1.5', "parameter 'p' must be in [0, 1]"],
    ['random:p=-0.1', "parameter 'p' must be in [0, 1]"],
    ['random:p=2e0', "parameter 'p' must be in [0, 1]"],
    ['random:p=0.1.2', "parameter 'p' is not a number"],
    ['random:d=3', "unknown parameter 'd' (allowed: seed, p)"],
    ['pct:p=0.5', "unknown parameter 'p' (allowed: seed, d, k)"],
    ['pct:d=0', "parameter 'd' must be an integer in [1, 64]"],
    ['pct:d=-2', "parameter 'd' must be an integer in [1, 64]"],
    ['pct:d=65', "parameter 'd' must be an integer in [1, 64]"],
    ['pct:d=2.5', "parameter 'd' must be an integer in [1, 64]"],
    ['pct:k=0', "parameter 'k' must be an integer in [1, 1000000000]"],
    ['trace:1x', "bad trace element '1x' (expected ID or IDxCOUNT)"],
    ['trace:x3', "bad trace element 'x3' (expected ID or IDxCOUNT)"],
    ['trace:1..2', "bad trace element '' (expected ID or IDxCOUNT)"],
    ['trace:1.a', "bad trace element 'a' (expected ID or IDxCOUNT)"],
    ['trace:-1', "bad trace element '-1' (expected ID or IDxCOUNT)"],
    ['trace:1x0', "bad repeat count in '1x0'"],
    ['trace:1x9999999.1x9999999.1x9999999.1x9999999.1x9999999.1x9999999', 'trace too long'],
  ])('%j is rejected: %s', (str, msg) => {
    let err: unknown;
    try {
      parseSchedule(str);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ScheduleSyntaxError);
    expect((err as Error).name).toBe('ScheduleSyntaxError');
    expect((err as Error).message).toBe(msg);
    expect((err as Error).message).not.toContain('\n');
  });

  it('a value that is not a string is a syntax error, not a crash', () => {
    expect(() => parseSchedule(17 as unknown as string)).toThrow(
      new ScheduleSyntaxError('schedule must be a string'),
    );
  });

  it('encodeTrace compresses runs; decodeTrace inverts it', () => {
    expect(encodeTrace([])).toBe('');
    expect(encodeTrace([2, 2, 2, 2, 2, 3, 2])).toBe('2x5.3.2');
    expect(decodeTrace('2x5.3.2')).toEqual([2, 2, 2, 2, 2, 3, 2]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 999_999 }), { maxLength: 200 }), (ids) => {
        expect(decodeTrace(encodeTrace(ids))).toEqual(ids);
      }),
      { numRuns: 200, seed: 3 },
    );
  });
});

describe('determinism and replay', () => {
  it('the same schedule string gives the same interleaving, results and trace', () => {
    for (const str of ['random:seed=42,p=0.5', 'pct:seed=7,d=3,k=60', 'coop']) {
      const a = program(parseSchedule(str));
      const b = program(parseSchedule(str));
      expect(b.log).toEqual(a.log);
      expect(b.trace).toEqual(a.trace);
      expect(b.results).toEqual(a.results);
      expect(a.errors).toEqual([undefined, undefined, undefined]);
      // The mutex keeps the read-modify-write atomic whatever the interleaving.
      expect(a.counter).toBe(9);
      expect(a.schedule.strategy).toBe(str);
    }
  });

  it('different seeds give different interleavings', () => {
    const logs = new Set<string>();
    for (let seed = 1; seed <= 8; seed++)
      logs.add(program(parseSchedule(`random:seed=${seed},p=0.5`)).log.join());
    expect(logs.size).toBeGreaterThan(1);
  });

  it('a trace: schedule replays a random run exactly', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const a = program(parseSchedule(`random:seed=${seed},p=0.7`));
      expect(a.trace.length).toBeGreaterThan(0);
      const replay = parseSchedule(a.schedule.trace) as ReplayStrategy;
      const b = program(replay);
      expect(b.log).toEqual(a.log);
      expect(b.results).toEqual(a.results);
      expect(b.trace).toEqual(a.trace);
      expect(replay.complete).toBe(true);
      expect(replay.divergedAt).toBe(-1);
      // Replaying the replay's own schedule is the same run again.
      expect(program(parseSchedule(b.schedule.trace)).log).toEqual(a.log);
    }
  });

  it('a trace naming a task that cannot run diverges there and the fallback takes over', () => {
    const a = program(parseSchedule('random:seed=5,p=0.7'));
    const bad = [...a.trace];
    bad[3] = 99;
    const replay = new ReplayStrategy(bad);
    const b = program(replay);
    expect(replay.divergedAt).toBe(3);
    expect(replay.complete).toBe(false);
    expect(b.trace.slice(0, 3)).toEqual(a.trace.slice(0, 3));
    expect(b.counter).toBe(9);
  });
});

describe('PrefixStrategy (bounded depth-first search)', () => {
  function* body(n: number): KGen {
    for (let i = 0; i < n; i++) yield 'p';
  }

  it('follows the prefix, then keeps the running task; records every decision', () => {
    const strat = new PrefixStrategy([2, 2, 1]);
    const s = new Scheduler(strat);
    const a = s.spawn('a', body(2));
    const b = s.spawn('b', body(2));
    s.runAll();
    expect(a.done && b.done).toBe(true);
    expect(strat.mismatch).toBe(false);
    expect(strat.decisions).toEqual([
      { runnable: [1, 2], chosen: 2, continuing: -1 },
      { runnable: [1, 2], chosen: 2, continuing: 2 },
      { runnable: [1, 2], chosen: 1, continuing: 2 }, // a preemption of b
      { runnable: [1, 2], chosen: 1, continuing: 1 },
      { runnable: [1, 2], chosen: 1, continuing: 1 },
    ]);
    expect(s.trace).toEqual([2, 2, 1, 1, 1]);
    expect(strat.describe()).toBe('prefix');
  });

  it('an empty prefix runs non-preemptively from the lowest id', () => {
    const strat = new PrefixStrategy([]);
    const s = new Scheduler(strat);
    const order: string[] = [];
    for (const n of ['a', 'b', 'c'])
      s.spawn(
        n,
        (function* (): KGen {
          order.push(n);
          yield 'x';
          order.push(n);
        })(),
      );
    s.runAll();
    expect(order).toEqual(['a', 'a', 'b', 'b', 'c', 'c']);
    expect(strat.decisions.every((d) => d.chosen === d.continuing || d.continuing === -1)).toBe(true);
  });

  it('a prefix choice that cannot run sets mismatch and falls back', () => {
    const strat = new PrefixStrategy([7]);
    const s = new Scheduler(strat);
    s.spawn('a', body(1));
    s.spawn('b', body(1));
    s.runAll();
    expect(strat.mismatch).toBe(true);
    expect(strat.decisions[0]).toEqual({ runnable: [1, 2], chosen: 1, continuing: -1 });
  });
});
