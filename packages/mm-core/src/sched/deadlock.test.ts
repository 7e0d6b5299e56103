import { describe, expect, it } from 'vitest';
import { runCatching } from '../testing/sched.js';
import { LockFinding } from './findings.js';
import { Mutex, RwSem, SpinLock, waitEvent } from './locks.js';
import { Scheduler } from './scheduler.js';
import { RandomStrategy } from './strategy.js';
import type { KGen } from './task.js';

describe('deadlock reports', () => {
  it('an ABBA between two tasks names both tasks, what each holds and what each waits for', () => {
    const s = new Scheduler();
    const a = new Mutex('A');
    const b = new Mutex('B');
    const t1 = s.spawn(
      'migrate',
      (function* (): KGen {
        yield* a.lock(s, 'migrate: lock A');
        yield 'migrate: between';
        yield* b.lock(s, 'migrate: lock B');
      })(),
    );
    const t2 = s.spawn(
      'evict',
      (function* (): KGen {
        yield* b.lock(s, 'evict: lock B');
        yield 'evict: between';
        yield* a.lock(s, 'evict: lock A');
      })(),
    );
    const f = runCatching(s) as LockFinding;
    expect(f).toBeInstanceOf(LockFinding);
    expect(f.category).toBe('deadlock');
    expect(f.summary).toBe('deadlock: deadlock: migrate waits for mutex B, evict waits for mutex A');
    expect(f.details).toEqual([
      '  task 1 migrate waits for mutex B at mutex B',
      '    held: A (x, at migrate: lock A)',
      '    holder(s): 2 evict',
      '  task 2 evict waits for mutex A at mutex A',
      '    held: B (x, at evict: lock B)',
      '    holder(s): 1 migrate',
    ]);
    expect([t1.state, t2.state]).toEqual(['blocked', 'blocked']);
  });

  it('an ABBA through an rwsem and a mutex is found under every random schedule that reaches it', () => {
    let found = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const s = new Scheduler(new RandomStrategy(seed, 0.5));
      const mmap = new RwSem('mmap_lock');
      const m = new Mutex('devmem_lock');
      s.spawn(
        'fault',
        (function* (): KGen {
          yield* mmap.downRead(s, 'fault');
          yield 'fault: between';
          yield* m.lock(s, 'fault');
          m.unlock(s, 'fault');
          mmap.upRead(s, 'fault');
        })(),
      );
      s.spawn(
        'ioctl',
        (function* (): KGen {
          yield* m.lock(s, 'ioctl');
          yield 'ioctl: between';
          yield* mmap.downWrite(s, 'ioctl');
          mmap.upWrite(s, 'ioctl');
          m.unlock(s, 'ioctl');
        })(),
      );
      const f = runCatching(s);
      if (f === undefined) continue;
      found++;
      expect((f as LockFinding).summary).toMatch(
        /^deadlock: deadlock: (fault waits for mutex devmem_lock, ioctl waits for mmap_lock \(write\)|ioctl waits for mmap_lock \(write\), fault waits for mutex devmem_lock)$/,
      );
    }
    expect(found).toBeGreaterThan(0);
    expect(found).toBeLessThan(20);
  });

  it('finds the cycle when a waiter is blocked by several holders', () => {
    // A waits to write S, read-held by B (asleep on something else) and C; C waits for M held by A.
    const s = new Scheduler();
    const sem = new RwSem('S');
    const m = new Mutex('M');
    const gate = { open: false };
    s.spawn(
      'A',
      (function* (): KGen {
        yield* m.lock(s, 'A');
        yield* waitEvent('gate', () => gate.open);
        yield* sem.downWrite(s, 'A');
      })(),
    );
    s.spawn(
      'B',
      (function* (): KGen {
        yield* sem.downRead(s, 'B');
        yield* waitEvent('an event nobody sends', () => false);
      })(),
    );
    s.spawn(
      'C',
      (function* (): KGen {
        yield* sem.downRead(s, 'C');
        yield* waitEvent('gate', () => gate.open);
        yield* m.lock(s, 'C');
      })(),
    );
    s.runUntil(() => s.tasks.every((t) => t.state === 'blocked'));
    gate.open = true;
    const f = runCatching(s) as LockFinding;
    expect(f.category).toBe('deadlock');
    expect(f.summary).toBe('deadlock: deadlock: A waits for S (write), C waits for mutex M');
  });

  it('a lock held by a task that exited is reported with its holder marked exited', () => {
    const s = new Scheduler();
    const m = new Mutex('M');
    s.spawn('leaker', m.lock(s, 'leaker'));
    s.runAll();
    s.spawn('victim', m.lock(s, 'victim'));
    const f = runCatching(s) as LockFinding;
    expect(f.category).toBe('deadlock');
    expect(f.details).toContain('    holder(s): 1 leaker (exited)');
  });
});

describe('waiters that are killed', () => {
  it('a task thrown out of its wait (sleep in atomic) leaves no ghost in the lock queue', () => {
    const s = new Scheduler();
    const sem = new RwSem('mmap_lock');
    const m = new Mutex('M');
    const ptl = new SpinLock('ptl');
    const gate = { open: false };
    s.spawn(
      'holder',
      (function* (): KGen {
        yield* sem.downWrite(s, 'holder');
        yield* m.lock(s, 'holder');
        yield* waitEvent('gate', () => gate.open);
        m.unlock(s, 'holder');
        sem.upWrite(s, 'holder');
      })(),
    );
    s.runUntil(() => m.locked);
    const bad = (lock: (x: Scheduler) => KGen): KGen =>
      (function* () {
        ptl.lock(s, 'bad');
        try {
          yield* lock(s);
        } finally {
          ptl.unlock(s, 'bad');
        }
      })();
    const b1 = s.spawn(
      'bad1',
      bad((x) => sem.downRead(x, 'bad1')),
    );
    const b2 = s.spawn(
      'bad2',
      bad((x) => m.lock(x, 'bad2')),
    );
    s.runUntil(() => b1.done && b2.done);
    expect((b1.error as LockFinding).category).toBe('sleep-in-atomic');
    expect((b2.error as LockFinding).category).toBe('sleep-in-atomic');
    gate.open = true;
    s.runAll();
    // Later takers are not queued behind the dead waiters.
    s.runSync(
      (function* (): KGen {
        yield* sem.downWrite(s, 'later');
        yield* m.lock(s, 'later');
        m.unlock(s, 'later');
        sem.upWrite(s, 'later');
      })(),
      'later',
    );
    expect(sem.locked || m.locked).toBe(false);
  });
});
