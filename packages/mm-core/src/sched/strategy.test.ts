import { describe, expect, it } from 'vitest';
import { LivelockFinding } from './findings.js';
import { Mutex, spinRetry, waitEvent } from './locks.js';
import { Scheduler } from './scheduler.js';
import { CooperativeStrategy, PctStrategy, RandomStrategy, Rng, type Strategy } from './strategy.js';
import type { KGen, Task } from './task.js';

/** Spawns one task per name, each with `n` preemption points, and records who ran each step. */
function runLogged(strategy: Strategy, names: readonly string[], n: number): string[] {
  const s = new Scheduler(strategy);
  const ran: string[] = [];
  for (const name of names)
    s.spawn(
      name,
      (function* (): KGen {
        for (let i = 0; i < n; i++) {
          ran.push(name);
          yield `${name}: ${i}`;
        }
        ran.push(name);
      })(),
    );
  s.runAll();
  return ran;
}

/** The maximal runs of equal names: ['a','a','b','a'] -> ['a','b','a']. */
function blocks(ran: readonly string[]): string[] {
  return ran.filter((x, i) => i === 0 || ran[i - 1] !== x);
}

/** Task names in PCT priority order (highest first) for `count` tasks spawned under PctStrategy(seed, 1). */
function pctOrder(seed: number, count: number): string[] {
  const names = Array.from({ length: count }, (_, i) => `t${i}`);
  return blocks(runLogged(new PctStrategy(seed, 1, 100), names, 3));
}

describe('Rng', () => {
  it('is a deterministic xorshift32; seed 0 is replaced by a fixed non-zero seed', () => {
    const a = new Rng(12345);
    const b = new Rng(12345);
    const xs = Array.from({ length: 20 }, () => a.next());
    expect(Array.from({ length: 20 }, () => b.next())).toEqual(xs);
    expect(new Set(xs).size).toBe(20);
    expect(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32)).toBe(true);
    expect(new Rng(0).next()).toBe(new Rng(0x9e3779b9).next());
    expect(new Rng(1).next()).not.toBe(new Rng(2).next());
  });

  it('below(n) is in [0, n) and covers it; below(0) is 0', () => {
    const r = new Rng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const v = r.below(6);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(6);
      seen.add(v);
    }
    expect(seen.size).toBe(6);
    expect(r.below(0)).toBe(0);
  });
});

describe('RandomStrategy', () => {
  it('p=0 never preempts a task that could continue; p=1 switches at random', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const ran = runLogged(new RandomStrategy(seed, 0), ['a', 'b', 'c'], 4);
      expect(blocks(ran)).toHaveLength(3);
    }
    const switched = runLogged(new RandomStrategy(3, 1), ['a', 'b', 'c'], 10);
    expect(blocks(switched).length).toBeGreaterThan(6);
  });
});

describe('PctStrategy', () => {
  it('with d=1 is a strict-priority schedule: each task runs to completion, in a seeded order', () => {
    const orders = new Set<string>();
    for (let seed = 1; seed <= 20; seed++) {
      const ran = runLogged(new PctStrategy(seed, 1, 100), ['a', 'b', 'c', 'd'], 5);
      const order = blocks(ran);
      expect([...order].sort()).toEqual(['a', 'b', 'c', 'd']);
      orders.add(order.join(''));
    }
    expect(orders.size).toBeGreaterThan(3);
  });

  it('with depth d, at most d - 1 change points preempt the running task, which then runs last', () => {
    const names = ['a', 'b', 'c', 'd'];
    let sawAll = 0;
    for (let seed = 1; seed <= 40; seed++) {
      // k = 20 < the 24 steps of the run: every change point falls inside it.
      const ran = runLogged(new PctStrategy(seed, 2, 20), names, 5);
      const order = blocks(ran);
      const preemptions = order.length - names.length;
      expect(preemptions).toBeLessThanOrEqual(1);
      if (preemptions === 1) {
        sawAll++;
        // The demoted task has the lowest priority: its second block is the last one.
        const twice = names.find((n) => order.filter((x) => x === n).length === 2)!;
        expect(order.at(-1)).toBe(twice);
      }
      const ran3 = blocks(runLogged(new PctStrategy(seed, 3, 20), names, 5));
      expect(ran3.length - names.length).toBeLessThanOrEqual(2);
    }
    expect(sawAll).toBeGreaterThan(20);
  });

  it('the highest-priority runnable task runs: a blocked one gives way, and takes over when woken', () => {
    const seed = 4;
    const [high, , low] = pctOrder(seed, 3);
    const s = new Scheduler(new PctStrategy(seed, 1, 100));
    const m = new Mutex('m');
    const log: string[] = [];
    let lowHolds = false;
    const bodies: Record<string, () => KGen> = {
      [low]: function* () {
        yield* m.lock(s, 'low');
        lowHolds = true;
        for (let i = 0; i < 3; i++) {
          log.push(`low ${i}`);
          yield 'low: holding';
        }
        m.unlock(s, 'low');
        log.push('low unlocked');
        yield 'low: after unlock';
        log.push('low done');
      },
      [high]: function* () {
        yield* waitEvent('low holds m', () => lowHolds);
        yield* m.lock(s, 'high');
        log.push('high locked');
        m.unlock(s, 'high');
      },
    };
    for (const name of ['t0', 't1', 't2'])
      s.spawn(
        name,
        bodies[name]?.() ??
          (function* (): KGen {
            log.push('mid');
          })(),
      );
    s.runAll();
    // The middle task runs when the high one first waits; the low one runs only while the
    // high one sleeps, and is preempted by it right after the unlock.
    expect(log).toEqual(['mid', 'low 0', 'low 1', 'low 2', 'low unlocked', 'high locked', 'low done']);
  });
});

describe('spinRetry()', () => {
  /** Seeds for which the second of two tasks has the higher PCT priority. */
  function seedsWithSecondHigher(): number[] {
    const out: number[] = [];
    for (let seed = 1; seed <= 30; seed++) if (pctOrder(seed, 2)[0] === 't1') out.push(seed);
    return out;
  }

  /** A holder owning `m` across `n` preemption points, then a higher-priority task busy-waiting for it. */
  function holderAndSpinner(seed: number, spin: (s: Scheduler) => KGen, n = 20) {
    const s = new Scheduler(new PctStrategy(seed, 1, 100));
    s.maxStepsWithoutProgress = 10_000;
    const m = new Mutex('devmem folio lock');
    const holder = s.spawn(
      't0',
      (function* (): KGen<string> {
        yield* m.lock(s, 'holder');
        for (let i = 0; i < n; i++) yield 'holder: migrating';
        m.unlock(s, 'holder');
        return 'holder done';
      })(),
    );
    s.runUntil(() => m.locked);
    let tries = 0;
    const spinner = s.spawn(
      't1',
      (function* (): KGen<string> {
        while (!m.trylock(s, 'spinner')) {
          tries++;
          yield* spin(s);
        }
        m.unlock(s, 'spinner');
        return 'spinner done';
      })(),
    );
    return { s, holder, spinner, tries: () => tries };
  }

  it('under PCT, a high-priority spinner does not starve the low-priority holder', () => {
    const seeds = seedsWithSecondHigher();
    expect(seeds.length).toBeGreaterThan(3);
    for (const seed of seeds) {
      const r = holderAndSpinner(seed, (s) => spinRetry(s, 'do_huge_pmd_device_private: retry'));
      r.s.runAll();
      expect(r.holder.result).toBe('holder done');
      expect(r.spinner.result).toBe('spinner done');
      // One retry per step of the holder: the holder ran between every two tries.
      expect(r.tries()).toBeGreaterThanOrEqual(20);
      expect(r.tries()).toBeLessThanOrEqual(22);
    }
  });

  it("named or not, a third task's steps do not stand in for the holder's progress", () => {
    // PCT priorities spinner (t1) > busy third task (t2) > holder (t0): the spinner must wait for
    // the holder itself (named), or for every other task (unnamed), not for whichever other task
    // runs next.
    const seeds: number[] = [];
    for (let seed = 1; seed <= 200; seed++)
      if (pctOrder(seed, 3).slice(0, 3).join() === 't1,t2,t0') seeds.push(seed);
    expect(seeds.length).toBeGreaterThan(2);
    for (const named of [true, false])
      for (const seed of seeds) {
        const r = holderAndSpinner(seed, (s) => spinRetry(s, 'retry', named ? r.holder : null), 20);
        const third = r.s.spawn(
          't2',
          (function* (): KGen<string> {
            for (let i = 0; i < 500; i++) yield 'third: own work';
            return 'third done';
          })(),
        );
        r.s.runAll();
        expect(r.spinner.result).toBe('spinner done');
        expect(third.result).toBe('third done');
        // At most one try per step of the holder: the holder ran between every two tries.
        expect(r.tries()).toBeLessThanOrEqual(22);
      }
  });

  it('two tasks retrying against each other do not starve a third that neither names', () => {
    // PCT priorities a > b > c: a and b each retry until c has run 30 steps (as try_to_unuse()
    // retries until an exiting mm's zap has freed its swap). Before every other task had to step,
    // a and b counted each other's steps as progress and c never ran (a livelock finding).
    const seeds: number[] = [];
    for (let seed = 1; seed <= 200; seed++)
      if (pctOrder(seed, 3).slice(0, 3).join() === 't0,t1,t2') seeds.push(seed);
    expect(seeds.length).toBeGreaterThan(2);
    for (const seed of seeds) {
      const s = new Scheduler(new PctStrategy(seed, 1, 100));
      s.maxStepsWithoutProgress = 20_000;
      let cSteps = 0;
      const retrier = (name: string) =>
        s.spawn(
          name,
          (function* (): KGen<string> {
            while (cSteps < 30) yield* spinRetry(s, `${name}: retry`);
            return `${name} done`;
          })(),
        );
      const a = retrier('t0');
      const b = retrier('t1');
      const c = s.spawn(
        't2',
        (function* (): KGen<string> {
          for (; cSteps < 30; cSteps++) yield 'c: freeing';
          return 'c done';
        })(),
      );
      s.runAll();
      expect([a.result, b.result, c.result]).toEqual(['t0 done', 't1 done', 'c done']);
    }
  });

  it('a plain preemption point in the same loop would starve the holder (a livelock finding)', () => {
    const seed = seedsWithSecondHigher()[0];
    const r = holderAndSpinner(seed, function* () {
      yield 'busy loop';
    });
    expect(() => r.s.runAll()).toThrow(LivelockFinding);
    expect(r.holder.done).toBe(false);
  });

  it('waits until another task has run a step: tries and the other task alternate', () => {
    const s = new Scheduler(new CooperativeStrategy());
    const log: string[] = [];
    s.spawn(
      'other',
      (function* (): KGen {
        for (let i = 0; i < 3; i++) {
          log.push(`o${i}`);
          yield 'other';
        }
      })(),
    );
    s.runSync(
      (function* (): KGen {
        for (let i = 0; i < 3; i++) {
          log.push(`try${i}`);
          yield* spinRetry(s, 'spin');
        }
      })(),
      'spinner',
    );
    expect(log).toEqual(['try0', 'o0', 'try1', 'o1', 'try2', 'o2']);
  });

  it.each([
    ['coop', () => new CooperativeStrategy()],
    ['random', () => new RandomStrategy(3, 0.5)],
    ['pct', () => new PctStrategy(3, 3, 10)],
  ])('a lone spinner retries instead of being reported as a deadlock (%s)', (_n, make) => {
    const s = new Scheduler(make());
    let sleeperWoke = false;
    let go = false;
    // Another task sleeps until the spinner is done: only the spinner can run.
    const sleeper = s.spawn(
      'sleeper',
      (function* (): KGen {
        yield* waitEvent('spinner done', () => go);
        sleeperWoke = true;
      })(),
    );
    let tries = 0;
    const spinner = s.spawn(
      'spinner',
      (function* (): KGen<number> {
        while (tries < 5) {
          tries++;
          yield* spinRetry(s, 'retry');
        }
        go = true;
        return tries;
      })(),
    );
    s.runAll();
    expect(spinner.result).toBe(5);
    expect(sleeperWoke).toBe(true);
    expect(sleeper.error).toBeUndefined();
  });

  it('a spinner that never succeeds is a livelock, not a deadlock', () => {
    const s = new Scheduler();
    s.maxStepsWithoutProgress = 200;
    let t: Task | null = null;
    t = s.spawn(
      'spinner',
      (function* (): KGen {
        for (;;) yield* spinRetry(s, 'forever');
      })(),
    );
    expect(() => s.runAll()).toThrow(LivelockFinding);
    expect(t.state).toBe('blocked');
    expect(t.wait?.retry).toBe(true);
    expect(t.wait?.sleeping).toBe(false);
    expect(t.site).toBe('forever (spinning until the other CPUs make progress)');
  });
});
