import { describe, expect, it } from 'vitest';
import { blocked, runCatching, spawnUntil } from '../testing/sched.js';
import { LockFinding } from './findings.js';
import { Mutex, RwSem, SpinLock, waitEvent } from './locks.js';
import { Scheduler } from './scheduler.js';
import {
  CooperativeStrategy,
  PctStrategy,
  RandomStrategy,
  ReplayStrategy,
  type Strategy,
} from './strategy.js';
import type { KGen, Task } from './task.js';

describe('Mutex', () => {
  it.each<[string, () => Strategy]>([
    ['coop', () => new CooperativeStrategy()],
    ['random', () => new RandomStrategy(7, 0.6)],
    ['pct', () => new PctStrategy(7, 3, 50)],
  ])('excludes: never two owners in the critical section (%s)', (_n, make) => {
    const s = new Scheduler(make());
    const m = new Mutex('dmirror->mutex');
    let inside = 0;
    let maxInside = 0;
    let counter = 0;
    for (let i = 0; i < 4; i++)
      s.spawn(
        `w${i}`,
        (function* (): KGen {
          for (let r = 0; r < 3; r++) {
            yield* m.lock(s, `w${i}`);
            expect(m.owner).toBe(s.current);
            inside++;
            maxInside = Math.max(maxInside, inside);
            const v = counter;
            yield 'w: inside';
            counter = v + 1;
            inside--;
            m.unlock(s, `w${i}`);
            yield 'w: outside';
          }
        })(),
      );
    s.runAll();
    expect(maxInside).toBe(1);
    expect(counter).toBe(12);
    expect(m.locked).toBe(false);
  });

  it('a contended lock sleeps; the owner and the held list are lockdep’s view', () => {
    const s = new Scheduler();
    const m = new Mutex('m');
    const a = spawnUntil(s, 'a', m.lock(s, 'a: mutex_lock'), (t) => t.done);
    expect(m.owner).toBe(a);
    expect(m.site).toBe('a: mutex_lock');
    expect(a.held).toEqual([{ name: 'm', mode: 'x', spin: false, site: 'a: mutex_lock', lock: m }]);
    const b = spawnUntil(s, 'b', m.lock(s, 'b: mutex_lock'), blocked);
    expect(b.wait?.what).toBe('mutex m');
    expect(b.wait?.sleeping).toBe(true);
    expect(b.wait?.holders()).toEqual([a]);
    expect(m.trylock(s, 'boot')).toBe(false);
  });

  it('waiters get the lock in FIFO order, whatever the strategy picks among the runnable', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const s = new Scheduler(new RandomStrategy(seed, 0.5));
      const m = new Mutex('m');
      const order: string[] = [];
      const gate = { open: false };
      const holder = s.spawn(
        'holder',
        (function* (): KGen {
          yield* m.lock(s, 'holder');
          yield* waitEvent('gate', () => gate.open);
          m.unlock(s, 'holder');
        })(),
      );
      s.runUntil(() => holder.state === 'blocked');
      // Waiters queue in the order 3, 1, 2 (ids 4, 2, 3).
      const w: Record<string, Task> = {};
      const waiter = (name: string): KGen =>
        (function* () {
          yield* m.lock(s, name);
          order.push(name);
          yield `${name}: holding`;
          m.unlock(s, name);
        })();
      const q = ['w3', 'w1', 'w2'];
      w.w1 = s.spawn(
        'w1',
        (function* (): KGen {
          yield* waitEvent('w3 queued', () => w.w3?.state === 'blocked');
          yield* waiter('w1');
        })(),
      );
      w.w2 = s.spawn(
        'w2',
        (function* (): KGen {
          yield* waitEvent('w1 queued', () => w.w1.state === 'blocked' && w.w1.site === 'mutex m');
          yield* waiter('w2');
        })(),
      );
      w.w3 = s.spawn('w3', waiter('w3'));
      s.runUntil(() => q.every((n) => w[n].state === 'blocked' && w[n].site === 'mutex m'));
      gate.open = true;
      s.runAll();
      expect(order).toEqual(q);
    }
  });

  it('a task not yet waiting may take a free lock before the woken waiter (the kernel allows stealing)', () => {
    for (const [pick, expected] of [
      [3, ['newcomer', 'waiter']],
      [2, ['waiter', 'newcomer']],
    ] as const) {
      const s = new Scheduler();
      const m = new Mutex('m');
      const order: string[] = [];
      const gate = { open: false };
      spawnUntil(
        s,
        'owner',
        (function* (): KGen {
          yield* m.lock(s, 'owner');
          yield* waitEvent('gate', () => gate.open);
          m.unlock(s, 'owner');
        })(),
        blocked,
      );
      const take = (name: string): KGen =>
        (function* () {
          yield* m.lock(s, name);
          order.push(name);
          m.unlock(s, name);
        })();
      const waiter = spawnUntil(s, 'waiter', take('waiter'), blocked);
      expect(waiter.wait?.what).toBe('mutex m');
      spawnUntil(
        s,
        'newcomer',
        (function* (): KGen {
          yield* waitEvent('m free', () => !m.locked);
          yield* take('newcomer');
        })(),
        blocked,
      );
      // After the unlock both can run: the strategy decides (here, a replayed choice).
      s.setStrategy(new ReplayStrategy([pick]));
      gate.open = true;
      s.runAll();
      expect(order).toEqual(expected);
      expect(s.trace).toEqual([pick]);
    }
  });

  it('recursive lock is a deadlock; unlock by a non-owner or twice is a bad unlock', () => {
    const s = new Scheduler();
    const m = new Mutex('dmirror->mutex');
    const rec = spawnUntil(
      s,
      'rec',
      (function* (): KGen {
        yield* m.lock(s, 'first');
        yield* m.lock(s, 'second');
      })(),
      (t) => t.done,
    );
    expect(rec.error).toBeInstanceOf(LockFinding);
    expect((rec.error as LockFinding).summary).toBe(
      'deadlock: recursive mutex_lock of dmirror->mutex by rec (task 1) at second',
    );
    const other = spawnUntil(
      s,
      'other',
      (function* (): KGen {
        m.unlock(s, 'other: mutex_unlock');
      })(),
      (t) => t.done,
    );
    expect((other.error as LockFinding).category).toBe('bad-unlock');
    expect((other.error as LockFinding).summary).toBe(
      'bad-unlock: bad unlock balance: other (task 2) releases dmirror->mutex at other: mutex_unlock, held by rec (task 1, exited)',
    );
    const twice = spawnUntil(
      s,
      'twice',
      (function* (): KGen {
        const n = new Mutex('n');
        yield* n.lock(s, 'lock');
        n.unlock(s, 'unlock 1');
        n.unlock(s, 'unlock 2');
      })(),
      (t) => t.done,
    );
    expect((twice.error as LockFinding).summary).toBe(
      'bad-unlock: bad unlock balance: twice (task 3) releases n at unlock 2, held by nobody',
    );
  });
});

describe('RwSem', () => {
  it('readers share it; a writer waits for all of them, then excludes readers', () => {
    const s = new Scheduler();
    const sem = new RwSem('mmap_lock of mm 1');
    const release: Record<string, boolean> = {};
    const reader = (name: string): KGen =>
      (function* () {
        yield* sem.downRead(s, name);
        yield* waitEvent(`${name} may release`, () => release[name] === true);
        sem.upRead(s, name);
      })();
    const r1 = spawnUntil(s, 'r1', reader('r1'), blocked);
    const r2 = spawnUntil(s, 'r2', reader('r2'), blocked);
    expect([...sem.readers.keys()]).toEqual([r1, r2]);
    expect(r1.held.map((h) => `${h.name}/${h.mode}`)).toEqual(['mmap_lock of mm 1/r']);
    const w = spawnUntil(
      s,
      'w',
      (function* (): KGen {
        yield* sem.downWrite(s, 'w');
        yield* waitEvent('w may release', () => release.w === true);
        sem.upWrite(s, 'w');
      })(),
      blocked,
    );
    expect(w.wait?.what).toBe('mmap_lock of mm 1 (write)');
    expect(w.wait?.holders()).toEqual([r1, r2]);
    release.r1 = true;
    s.runUntil(() => r1.done);
    expect(sem.writer).toBeNull(); // r2 still reads
    release.r2 = true;
    s.runUntil(() => sem.writer === w);
    expect(w.held.map((h) => `${h.name}/${h.mode}`)).toEqual(['mmap_lock of mm 1/w']);
    const r3 = spawnUntil(s, 'r3', reader('r3'), (t) => t.wait?.what === 'mmap_lock of mm 1 (read)');
    expect(r3.wait?.holders()).toEqual([w]);
    release.w = true;
    release.r3 = true;
    s.runAll();
    expect(r3.error).toBeUndefined();
    expect(sem.locked).toBe(false);
  });

  it('is writer-fair: a waiting writer blocks new readers, and the order is FIFO', () => {
    const s = new Scheduler(new RandomStrategy(3, 0.5));
    const sem = new RwSem('sem');
    const order: string[] = [];
    const reader = (name: string, n: number): KGen =>
      (function* () {
        yield* sem.downRead(s, name);
        order.push(`+${name}`);
        for (let i = 0; i < n; i++) yield `${name}: reading`;
        order.push(`-${name}`);
        sem.upRead(s, name);
      })();
    const r1 = spawnUntil(s, 'r1', reader('r1', 5), (t) => sem.readers.has(t));
    const w = spawnUntil(
      s,
      'w',
      (function* (): KGen {
        yield* sem.downWrite(s, 'w');
        order.push('+w');
        yield 'w: writing';
        order.push('-w');
        sem.upWrite(s, 'w');
      })(),
      blocked,
    );
    const r2 = spawnUntil(s, 'r2', reader('r2', 1), blocked);
    // r2 waits although only a reader holds the lock: the writer queued first.
    expect(r2.wait?.what).toBe('sem (read)');
    expect(r2.wait?.holders()).toEqual([r1, w]);
    const trial = s.spawn(
      'try',
      (function* (): KGen<boolean> {
        return sem.tryDownRead(s, 'try');
      })(),
    );
    s.join(trial);
    expect(trial.result).toBe(false);
    s.runAll();
    expect(order).toEqual(['+r1', '-r1', '+w', '-w', '+r2', '-r2']);
  });

  it('readers queued together behind a writer enter together', () => {
    const s = new Scheduler();
    const sem = new RwSem('sem');
    const inside = new Set<string>();
    let together = 0;
    const w = spawnUntil(s, 'w', sem.downWrite(s, 'w'), (t) => t.done);
    for (const n of ['a', 'b'])
      spawnUntil(
        s,
        n,
        (function* (): KGen {
          yield* sem.downRead(s, n);
          inside.add(n);
          yield `${n}: reading`;
          together = Math.max(together, inside.size);
          inside.delete(n);
          sem.upRead(s, n);
        })(),
        blocked,
      );
    // The writer task is done but still owns the lock: release it as that task would.
    sem.writer = null;
    w.held.length = 0;
    s.runAll();
    expect(together).toBe(2);
  });

  it('downgrade_write lets queued readers in and keeps a queued writer out', () => {
    const s = new Scheduler();
    const sem = new RwSem('mmap_lock');
    const log: string[] = [];
    const gate = { open: false };
    const holder = spawnUntil(
      s,
      'munmap',
      (function* (): KGen {
        yield* sem.downWrite(s, 'munmap: detach');
        yield* waitEvent('gate', () => gate.open);
        sem.downgradeWrite(s, 'munmap: downgrade');
        log.push('downgraded');
        yield* waitEvent('reader in', () => log.includes('reader'));
        expect(log).not.toContain('writer');
        sem.upRead(s, 'munmap: zap done');
      })(),
      blocked,
    );
    spawnUntil(
      s,
      'reader',
      (function* (): KGen {
        yield* sem.downRead(s, 'fault');
        log.push('reader');
        sem.upRead(s, 'fault');
      })(),
      blocked,
    );
    spawnUntil(
      s,
      'writer',
      (function* (): KGen {
        yield* sem.downWrite(s, 'mmap');
        log.push('writer');
        sem.upWrite(s, 'mmap');
      })(),
      blocked,
    );
    gate.open = true;
    s.runAll();
    expect(holder.error).toBeUndefined();
    expect(log).toEqual(['downgraded', 'reader', 'writer']);
  });

  it('taking it again while holding it, or read again behind a waiting writer, deadlocks', () => {
    const s = new Scheduler();
    const sem = new RwSem('mmap_lock');
    const rw = spawnUntil(
      s,
      'rw',
      (function* (): KGen {
        yield* sem.downWrite(s, 'w');
        yield* sem.downRead(s, 'r');
      })(),
      (t) => t.done,
    );
    expect((rw.error as LockFinding).summary).toBe(
      'deadlock: rw (task 1) takes mmap_lock for read at r while holding it for write',
    );
    const sem2 = new RwSem('sem2');
    const wr = spawnUntil(
      s,
      'wr',
      (function* (): KGen {
        yield* sem2.downRead(s, 'r');
        yield* sem2.downWrite(s, 'w');
      })(),
      (t) => t.done,
    );
    expect((wr.error as LockFinding).summary).toBe(
      'deadlock: wr (task 2) takes sem2 for write at w while holding it',
    );
    // Recursive read with a writer queued in between: the kernel's rwsem deadlock.
    const sem3 = new RwSem('sem3');
    const gate = { open: false };
    s.spawn(
      'reader',
      (function* (): KGen {
        yield* sem3.downRead(s, 'first');
        yield* waitEvent('writer queued', () => gate.open);
        yield* sem3.downRead(s, 'again');
      })(),
    );
    s.spawn(
      'writer',
      (function* (): KGen {
        yield* sem3.downWrite(s, 'w');
      })(),
    );
    s.runUntil(() => sem3.readers.size === 1);
    s.runUntil(() => s.tasks.every((t) => t.state === 'blocked') || s.pending === 0);
    gate.open = true;
    const f = runCatching(s) as LockFinding;
    expect(f).toBeInstanceOf(LockFinding);
    expect(f.category).toBe('deadlock');
    expect(f.summary).toContain('reader waits for sem3 (read)');
    expect(f.message).toContain('task 4 writer waits for sem3 (write)');
  });

  it('unlocks by a task that does not hold it are bad unlocks', () => {
    const s = new Scheduler();
    const sem = new RwSem('sem');
    const t = spawnUntil(
      s,
      't',
      (function* (): KGen {
        sem.upRead(s, 'up_read');
      })(),
      (x) => x.done,
    );
    expect((t.error as LockFinding).summary).toBe(
      'bad-unlock: bad unlock balance: t (task 1) up_read(sem) at up_read without holding it',
    );
    const u = spawnUntil(
      s,
      'u',
      (function* (): KGen {
        yield* sem.downRead(s, 'r');
        sem.upWrite(s, 'up_write');
      })(),
      (x) => x.done,
    );
    expect((u.error as LockFinding).summary).toBe(
      'bad-unlock: bad unlock balance: u (task 2) up_write(sem) at up_write, writer is nobody',
    );
  });
});

describe('SpinLock', () => {
  it('records owner, site and preemption depth; trylock fails while held', () => {
    const s = new Scheduler();
    const l = new SpinLock('ptl of table 0x41a03');
    const seen: unknown[] = [];
    s.runSync(
      (function* (): KGen {
        const me = s.current;
        l.lock(s, 'pmd_lock');
        seen.push(l.owner === me, l.site, me.spinDepth, me.heldSummary(), l.trylock(s, 'again'));
        l.unlock(s, 'spin_unlock');
        seen.push(l.owner, me.spinDepth, me.held.length, l.trylock(s, 'trylock'), me.spinDepth);
        l.unlock(s, 'spin_unlock');
      })(),
      'walker',
    );
    expect(seen).toEqual([
      true,
      'pmd_lock',
      1,
      'ptl of table 0x41a03 (x, at pmd_lock)',
      false,
      null,
      0,
      0,
      true,
      1,
    ]);
    expect(l.locked).toBe(false);
  });

  it('recursive lock and a lock leaked by another task are deadlocks', () => {
    const s = new Scheduler();
    const l = new SpinLock('ptl');
    const rec = spawnUntil(
      s,
      'rec',
      (function* (): KGen {
        l.lock(s, 'first');
        l.lock(s, 'second');
      })(),
      (t) => t.done,
    );
    expect((rec.error as LockFinding).summary).toBe(
      'deadlock: recursive spin_lock of ptl by rec (task 1) at second',
    );
    expect((rec.error as LockFinding).details).toEqual([
      '  first taken at first',
      '  held: ptl (x, at first)',
    ]);
    const next = spawnUntil(
      s,
      'next',
      (function* (): KGen {
        l.lock(s, 'zap_pte_range');
      })(),
      (t) => t.done,
    );
    expect((next.error as LockFinding).summary).toBe(
      'deadlock: next (task 2) spins forever on ptl at zap_pte_range: held by rec (task 1, exited) since first',
    );
  });

  it('unlock by a non-owner and double unlock are bad unlocks', () => {
    const s = new Scheduler();
    const l = new SpinLock('ptl');
    spawnUntil(
      s,
      'owner',
      (function* (): KGen {
        l.lock(s, 'taken');
      })(),
      (t) => t.done,
    );
    const thief = spawnUntil(
      s,
      'thief',
      (function* (): KGen {
        l.unlock(s, 'not mine');
      })(),
      (t) => t.done,
    );
    expect((thief.error as LockFinding).category).toBe('bad-unlock');
    expect((thief.error as LockFinding).summary).toBe(
      'bad-unlock: bad unlock balance: thief (task 2) releases ptl at not mine, held by owner (task 1, exited)',
    );
    const twice = spawnUntil(
      s,
      'twice',
      (function* (): KGen {
        const m = new SpinLock('m');
        m.lock(s, 'a');
        m.unlock(s, 'b');
        m.unlock(s, 'c');
      })(),
      (t) => t.done,
    );
    expect((twice.error as LockFinding).summary).toBe(
      'bad-unlock: bad unlock balance: twice (task 3) releases m at c, held by nobody',
    );
  });
});
