import { describe, expect, it } from 'vitest';
import { ModelBug } from '../errors.js';
import { LivelockFinding, LockFinding } from './findings.js';
import { Mutex, SpinLock, waitEvent } from './locks.js';
import { drive, Scheduler } from './scheduler.js';
import { CooperativeStrategy, RandomStrategy } from './strategy.js';
import { type KGen, RESCHED } from './task.js';

/** A task body that logs `name:i` before each of its `n` preemption points and returns `ret`. */
function* steps(log: string[], name: string, n: number, ret: unknown = name): KGen<unknown> {
  for (let i = 0; i < n; i++) {
    log.push(`${name}${i}`);
    yield `${name}: point ${i}`;
  }
  log.push(`${name}$`);
  return ret;
}

describe('Scheduler: spawn, runUntil, join, runAll', () => {
  it('spawn creates ready tasks in id order; join runs until that task is done and keeps its result', () => {
    const s = new Scheduler();
    const log: string[] = [];
    const a = s.spawn('a', steps(log, 'a', 2, 42));
    const b = s.spawn('b', steps(log, 'b', 5, 'B'));
    expect([a.id, b.id]).toEqual([1, 2]);
    expect([a.state, b.state]).toEqual(['ready', 'ready']);
    expect(s.pending).toBe(2);
    expect(s.tasks).toEqual([a, b]);
    s.join(a);
    expect(a.done).toBe(true);
    expect(a.result).toBe(42);
    expect(a.error).toBeUndefined();
    expect(b.done).toBe(false);
    expect(s.tasks).toEqual([b]);
    s.runAll();
    expect(b.result).toBe('B');
    expect(s.pending).toBe(0);
    // Every log line of both tasks, each task's own lines in order.
    expect(log.filter((l) => l.startsWith('a'))).toEqual(['a0', 'a1', 'a$']);
    expect(log.filter((l) => l.startsWith('b'))).toEqual(['b0', 'b1', 'b2', 'b3', 'b4', 'b$']);
    // A task's steps are its yields plus the final resumption.
    expect(a.steps).toBe(3);
    expect(b.steps).toBe(6);
    expect(s.steps).toBe(9);
    expect(s.preemptions).toBe(7);
  });

  it('runUntil stops as soon as the predicate holds and can be resumed', () => {
    const s = new Scheduler();
    const log: string[] = [];
    const a = s.spawn('a', steps(log, 'a', 10));
    s.runUntil(() => log.length >= 3);
    expect(log).toEqual(['a0', 'a1', 'a2']);
    expect(a.site).toBe('a: point 2');
    expect(a.state).toBe('ready');
    s.runUntil(() => false); // returns when nothing is left to run
    expect(a.done).toBe(true);
    expect(log).toHaveLength(11);
  });

  it('a task that throws ends with the error; the others go on', () => {
    const s = new Scheduler();
    const log: string[] = [];
    let cleaned = false;
    const bad = s.spawn(
      'bad',
      (function* (): KGen {
        try {
          yield 'bad: before';
          throw new RangeError('boom');
        } finally {
          cleaned = true;
        }
      })(),
    );
    const good = s.spawn('good', steps(log, 'g', 3, 7));
    s.runAll();
    expect(bad.done).toBe(true);
    expect(bad.error).toBeInstanceOf(RangeError);
    expect((bad.error as Error).message).toBe('boom');
    expect(bad.result).toBeUndefined();
    expect(cleaned).toBe(true);
    expect(good.result).toBe(7);
    expect(good.error).toBeUndefined();
  });

  it('current is the stepping task inside a step and the boot task outside', () => {
    const s = new Scheduler();
    const seen: string[] = [];
    s.spawn(
      'x',
      (function* (): KGen {
        seen.push(s.current.name, String(s.inTask));
        yield 'x';
        seen.push(s.current.name);
      })(),
    );
    expect(s.current).toBe(s.boot);
    expect(s.inTask).toBe(false);
    s.runAll();
    expect(seen).toEqual(['x', 'true', 'x']);
    expect(s.current).toBe(s.boot);
  });
});

describe('Scheduler.runSync()', () => {
  it('returns the kernel path result and rethrows its error', () => {
    const s = new Scheduler();
    const log: string[] = [];
    expect(s.runSync(steps(log, 's', 3, 'done'), 'sync')).toBe('done');
    expect(s.pending).toBe(0);
    expect(() =>
      s.runSync(
        (function* (): KGen {
          yield 'p';
          throw new TypeError('bad path');
        })(),
        'failing',
      ),
    ).toThrow(TypeError);
    expect(drive(s, steps(log, 'd', 1, 5))).toBe(5);
  });

  it('lets other tasks run at its preemption points (cooperative: one step each, in id order)', () => {
    const s = new Scheduler();
    const log: string[] = [];
    s.spawn('o', steps(log, 'o', 5));
    s.spawn('p', steps(log, 'p', 5));
    s.runSync(steps(log, 'm', 3), 'main');
    expect(log).toEqual(['m0', 'o0', 'p0', 'm1', 'o1', 'p1', 'm2', 'o2', 'p2', 'm$']);
    s.runAll();
  });

  it('a spawn delay lets that many of the owner’s preemption points pass first', () => {
    const s = new Scheduler();
    const log: string[] = [];
    s.spawn('o', steps(log, 'o', 9));
    s.spawn('p', steps(log, 'p', 3), { delay: 2 });
    s.runSync(steps(log, 'm', 5), 'main');
    // The guests' own points do not count: p starts at main's third point.
    expect(log.slice(0, 12)).toEqual([
      'm0',
      'o0',
      'm1',
      'o1',
      'm2',
      'o2',
      'p0',
      'm3',
      'o3',
      'p1',
      'm4',
      'o4',
    ]);
    s.runAll();
  });

  it('nested inside a task, runs the path inline: no other task runs in between, no new task', () => {
    const s = new Scheduler();
    const log: string[] = [];
    const other = s.spawn('o', steps(log, 'o', 4));
    let pendingInside = -1;
    const outer = s.spawn(
      'outer',
      (function* (): KGen<unknown> {
        log.push('outer');
        yield 'outer: before';
        pendingInside = s.pending;
        const r = s.runSync(steps(log, 'n', 3, 'inner'), 'nested');
        log.push(`got ${r}`);
        return r;
      })(),
    );
    s.runAll();
    expect(outer.result).toBe('inner');
    expect(other.done).toBe(true);
    expect(pendingInside).toBe(2);
    const i = log.indexOf('n0');
    expect(log.slice(i, i + 5)).toEqual(['n0', 'n1', 'n2', 'n$', 'got inner']);
    // The inline path's yields are not preemption points of the scheduler.
    expect(s.preemptions).toBe(1 + 4);
  });

  it('nested, a path that would have to wait is a model bug', () => {
    const s = new Scheduler();
    const m = new Mutex('m');
    const holder = s.spawn(
      'holder',
      (function* (): KGen {
        yield* m.lock(s, 'holder');
        yield* waitEvent('forever', () => false);
      })(),
    );
    s.runUntil(() => holder.state === 'blocked');
    const t = s.spawn(
      'outer',
      (function* (): KGen<unknown> {
        return s.runSync(m.lock(s, 'nested'), 'take m');
      })(),
    );
    s.runUntil(() => t.done);
    expect(t.error).toBeInstanceOf(ModelBug);
    expect((t.error as Error).message).toBe('synchronous take m inside task outer would wait for mutex m');
  });
});

describe('preemption-point hooks and site counting', () => {
  it('countSites counts every preemption point by name, only when on', () => {
    const s = new Scheduler();
    const log: string[] = [];
    s.runSync(steps(log, 'a', 2), 'a');
    expect(s.sites.size).toBe(0);
    s.countSites = true;
    s.spawn('b', steps(log, 'b', 3));
    s.runSync(steps(log, 'a', 2), 'a');
    s.runAll();
    expect(Object.fromEntries(s.sites)).toEqual({
      'a: point 0': 1,
      'a: point 1': 1,
      'b: point 0': 1,
      'b: point 1': 1,
      'b: point 2': 1,
    });
  });

  it('countSites: a site reached many times in a row, then others, then again, counts every time; reading the counts mid-run is exact', () => {
    const s = new Scheduler();
    s.countSites = true;
    function* loop(sites: string[]): KGen<void> {
      for (const site of sites) if (s.preempt(site)) yield RESCHED;
    }
    const seq = ['loop', 'loop', 'loop', 'other', 'loop', 'loop', 'third', 'third'];
    const t = s.spawn('t', loop(seq));
    s.runUntil(() => t.site === 'other');
    // Three points at 'loop' so far, and one at 'other': counted when read.
    expect(s.sites.get('loop')).toBe(3);
    s.runAll();
    expect(Object.fromEntries(s.sites)).toEqual({ loop: 5, other: 1, third: 2 });
    expect([...s.sites.keys()]).toEqual(['loop', 'other', 'third']);
  });

  it('a hook sees each point; what it throws is thrown into the task at that point', () => {
    const s = new Scheduler();
    const seen: string[] = [];
    let unwound = false;
    s.hooks.add((site, t) => {
      seen.push(`${t.name}@${site}`);
      if (site === 'x: point 1') throw new Error('timeout');
    });
    const t = s.spawn(
      'x',
      (function* (): KGen {
        try {
          yield* steps([], 'x', 5);
        } finally {
          unwound = true;
        }
      })(),
    );
    s.runAll();
    expect(seen).toEqual(['x@x: point 0', 'x@x: point 1']);
    expect((t.error as Error).message).toBe('timeout');
    expect(unwound).toBe(true);
  });
});

describe('findings raised by the scheduler', () => {
  it('a preemption point with a spinlock held is a model bug thrown into the task', () => {
    const s = new Scheduler();
    const l = new SpinLock('ptl of table 0x1');
    const t = s.spawn(
      'bad',
      (function* (): KGen {
        l.lock(s, 'pmd_lock');
        yield 'walk: next PMD';
      })(),
    );
    s.runAll();
    expect(t.error).toBeInstanceOf(ModelBug);
    expect((t.error as Error).message).toBe(
      "preemption point 'walk: next PMD' reached with a spinlock held (ptl of table 0x1 (x, at pmd_lock))",
    );
  });

  it('sleeping with a spinlock held is a sleep-in-atomic finding', () => {
    const s = new Scheduler();
    const m = new Mutex('devmem_lock');
    const l = new SpinLock('ptl');
    const holder = s.spawn(
      'holder',
      (function* (): KGen {
        yield* m.lock(s, 'holder');
        yield 'holder: inside';
        m.unlock(s, 'holder');
      })(),
    );
    s.runUntil(() => m.locked);
    const t = s.spawn(
      'atomic',
      (function* (): KGen {
        l.lock(s, 'spin_lock');
        try {
          yield* m.lock(s, 'mutex_lock under ptl');
        } finally {
          l.unlock(s, 'spin_unlock');
        }
      })(),
    );
    s.runAll();
    expect(holder.error).toBeUndefined();
    expect(t.error).toBeInstanceOf(LockFinding);
    const f = t.error as LockFinding;
    expect(f.category).toBe('sleep-in-atomic');
    expect(f.summary).toBe(
      'sleep-in-atomic: BUG: sleeping function called from invalid context: atomic waits for mutex devmem_lock',
    );
    expect(f.details).toEqual(['  held: ptl (x, at spin_lock)']);
    expect(l.locked).toBe(false);
  });

  it('a task waiting on a condition nobody can satisfy is a deadlock', () => {
    const s = new Scheduler();
    const t = s.spawn(
      'waiter',
      waitEvent('completion of nothing', () => false),
    );
    let f: unknown;
    try {
      s.runAll();
    } catch (e) {
      f = e;
    }
    expect(f).toBeInstanceOf(LockFinding);
    const d = f as LockFinding;
    expect(d.category).toBe('deadlock');
    expect(d.summary).toBe('deadlock: deadlock: 1 task(s) wait for something no task can release');
    expect(d.details).toEqual([
      '  task 1 waiter waits for completion of nothing at completion of nothing',
      '    held: no locks held',
      '    holder(s): none',
    ]);
    expect(t.state).toBe('blocked');
  });

  it('runSync of a path that can never finish reports the deadlock instead of returning', () => {
    const s = new Scheduler();
    expect(() =>
      s.runSync(
        waitEvent('never', () => false),
        'stuck',
      ),
    ).toThrow(LockFinding);
  });

  it('a task that keeps yielding with no task finishing is a livelock past maxStepsWithoutProgress', () => {
    const s = new Scheduler();
    s.maxStepsWithoutProgress = 100;
    // A task that finishes within the bound is fine, and resets the count.
    const log: string[] = [];
    s.spawn('short', steps(log, 's', 60));
    s.runAll();
    s.spawn('short2', steps(log, 't', 60));
    s.runAll();
    const spinner = s.spawn(
      'spinner',
      (function* (): KGen {
        for (;;) yield 'hmm_range_fault: retry';
      })(),
    );
    let f: unknown;
    try {
      s.runAll();
    } catch (e) {
      f = e;
    }
    expect(f).toBeInstanceOf(LivelockFinding);
    const l = f as LivelockFinding;
    expect(l.category).toBe('livelock');
    expect(l.summary).toBe('livelock: no task made progress in 100 steps');
    expect(l.details).toEqual(['  task 3 spinner: ready at hmm_range_fault: retry']);
    expect(spinner.steps).toBe(100);
  });

  it('two tasks yielding forever under a random schedule are a livelock as well', () => {
    const s = new Scheduler(new RandomStrategy(5, 0.5));
    s.maxStepsWithoutProgress = 50;
    for (let i = 0; i < 2; i++)
      s.spawn(
        `ping${i}`,
        (function* (): KGen {
          for (;;) yield 'ping';
        })(),
      );
    expect(() => s.runAll()).toThrow(
      /^no task made progress in 50 steps\n {2}task 1 ping0: ready at ping\n {2}task 2 ping1: ready at ping$/,
    );
  });

  it('noteProgress() restarts the count: tasks that note progress run past the bound until they end', () => {
    const run = (note: boolean) => {
      const s = new Scheduler(new RandomStrategy(7, 0.5));
      s.maxStepsWithoutProgress = 50;
      // Two tasks of 40 "operations" of 5 steps each: 400 steps before either ends.
      const tasks = [0, 1].map((i) =>
        s.spawn(
          `worker${i}`,
          (function* (): KGen<string> {
            for (let op = 0; op < 40; op++) {
              for (let k = 0; k < 5; k++) yield 'operation step';
              if (note) s.noteProgress();
            }
            return 'done';
          })(),
        ),
      );
      s.runAll();
      return tasks.map((t) => t.result);
    };
    expect(run(true)).toEqual(['done', 'done']);
    expect(() => run(false)).toThrow(LivelockFinding);
  });
});

describe('setStrategy() and schedule()', () => {
  it('replacing the strategy clears the trace; schedule() prints strategy and trace', () => {
    const s = new Scheduler(new RandomStrategy(9, 1));
    const log: string[] = [];
    s.spawn('a', steps(log, 'a', 3));
    s.spawn('b', steps(log, 'b', 3));
    s.runAll();
    expect(s.trace.length).toBeGreaterThan(0);
    const sch = s.schedule();
    expect(sch.strategy).toBe('random:seed=9,p=1');
    expect(sch.trace).toMatch(/^trace:[12](x\d+)?(\.[12](x\d+)?)*$/);
    s.setStrategy(new CooperativeStrategy());
    expect(s.trace).toEqual([]);
    expect(s.schedule()).toEqual({ strategy: 'coop', trace: 'trace:' });
  });
});
