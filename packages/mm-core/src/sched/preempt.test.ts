import { describe, expect, it } from 'vitest';
import { ModelBug } from '../errors.js';
import { SpinLock, waitEvent } from './locks.js';
import { Scheduler } from './scheduler.js';
import { CooperativeStrategy, PctStrategy, RandomStrategy, type Strategy } from './strategy.js';
import { type KGen, RESCHED } from './task.js';

/**
 * A task body with `n` preemption points, written either as a plain yield of the site (the
 * scheduler decides after the generator stack unwinds) or as Scheduler.preempt() (it decides at
 * the point). Logs `name:i` before each point; every third point of task b waits for a flag that
 * task a sets, so that tasks block and unblock too.
 */
function* body(
  s: Scheduler,
  inline: boolean,
  log: string[],
  name: string,
  n: number,
  flag: { up: boolean },
): KGen<number> {
  for (let i = 0; i < n; i++) {
    log.push(`${name}${i}`);
    const site = `${name}: point ${i % 4}`;
    if (inline) {
      if (s.preempt(site)) yield RESCHED;
    } else yield site;
    if (name === 'a' && i === 5) flag.up = true;
    if (name === 'b' && i % 3 === 2) yield* waitEvent('flag', () => flag.up);
  }
  return n;
}

/** Runs three tasks under `strategy`; returns what the run observed. */
function run(inline: boolean, strategy: () => Strategy) {
  const s = new Scheduler(strategy());
  s.countSites = true;
  const log: string[] = [];
  const flag = { up: false };
  const tasks = [
    s.spawn('a', body(s, inline, log, 'a', 12, flag)),
    s.spawn('b', body(s, inline, log, 'b', 9, flag)),
    s.spawn('c', body(s, inline, log, 'c', 15, flag)),
  ];
  s.runAll();
  return {
    log: log.join(' '),
    trace: s.schedule().trace,
    steps: s.steps,
    preemptions: s.preemptions,
    sites: [...s.sites].sort(),
    perTask: tasks.map((t) => [t.steps, t.result, t.site]),
  };
}

describe('Scheduler.preempt(): the decision at the preemption point', () => {
  const strategies: [string, () => Strategy][] = [
    ['coop', () => new CooperativeStrategy()],
    ['random p=0.2', () => new RandomStrategy(7, 0.2)],
    ['random p=0.5', () => new RandomStrategy(11, 0.5)],
    ['pct d=3', () => new PctStrategy(5, 3, 40)],
  ];
  for (const [name, strategy] of strategies)
    it(`makes the same choices, counts and trace as a yield of the site (${name})`, () => {
      const viaYield = run(false, strategy);
      const viaPreempt = run(true, strategy);
      expect(viaPreempt).toEqual(viaYield);
      // The run interleaves (not a strategy that never switches) and the tasks all finish.
      expect(viaYield.perTask.map((p) => p[1])).toEqual([12, 9, 15]);
      expect(viaYield.steps).toBeGreaterThan(36);
    });

  it('a lone task keeps the CPU without yielding; the site is still counted', () => {
    const s = new Scheduler(new RandomStrategy(3, 0.9));
    s.countSites = true;
    let yields = 0;
    const t = s.spawn(
      'lone',
      (function* () {
        for (let i = 0; i < 5; i++) if (s.preempt('lone: point')) yield RESCHED;
        yields = -1;
      })(),
    );
    s.runAll();
    expect(t.done).toBe(true);
    expect(yields).toBe(-1);
    expect(s.preemptions).toBe(5);
    expect(s.sites.get('lone: point')).toBe(5);
    // One resumption of the generator, five points accounted as steps.
    expect(s.steps).toBe(6);
    expect(s.trace).toEqual([]);
  });

  it('outside a task it asks for the yield, and the scheduler that resumes the task records the site', () => {
    const s = new Scheduler();
    expect(s.preempt('boot: point')).toBe(true);
    const t = s.spawn(
      'x',
      (function* () {
        yield RESCHED;
      })(),
    );
    s.runUntil(() => t.site !== 'start');
    expect(t.site).toBe('boot: point');
  });

  it('inside a synchronous path run inline it is skipped, like a yield there', () => {
    const s = new Scheduler(new RandomStrategy(1, 1));
    const other = s.spawn(
      'other',
      (function* () {
        yield 'other: point';
      })(),
    );
    let inner = 0;
    const t = s.spawn(
      'outer',
      (function* () {
        inner = s.runSync(
          (function* () {
            let n = 0;
            for (let i = 0; i < 3; i++) if (s.preempt('inline: point')) yield RESCHED;
            n = 3;
            return n;
          })(),
          'inline',
        );
      })(),
    );
    s.runAll();
    expect(inner).toBe(3);
    expect(t.done && other.done).toBe(true);
    expect(s.sites.get('inline: point')).toBeUndefined();
  });

  it('stops the run where runUntil()’s condition holds, and the run resumes from there', () => {
    const s = new Scheduler(new RandomStrategy(9, 0));
    const log: string[] = [];
    const t = s.spawn(
      'a',
      (function* () {
        for (let i = 0; i < 6; i++) {
          log.push(`a${i}`);
          if (s.preempt('a: point')) yield RESCHED;
        }
      })(),
    );
    s.spawn(
      'b',
      (function* () {
        yield 'b: point';
      })(),
    );
    s.runUntil(() => log.length >= 2);
    expect(log).toEqual(['a0', 'a1']);
    expect(t.site).toBe('a: point');
    s.runAll();
    expect(log).toHaveLength(6);
  });

  it('with a spinlock held it throws the model bug into the task at the point', () => {
    const s = new Scheduler();
    const lock = new SpinLock('test spinlock');
    const t = s.spawn(
      'spin',
      (function* () {
        lock.lock(s, 'spin: lock');
        if (s.preempt('spin: point')) yield RESCHED;
      })(),
    );
    s.runAll();
    expect(t.error).toBeInstanceOf(ModelBug);
    expect(String((t.error as Error).message)).toContain(
      "preemption point 'spin: point' reached with a spinlock held",
    );
  });
});
