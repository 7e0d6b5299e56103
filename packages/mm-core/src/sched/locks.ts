/**
 * Lock primitives with the kernel's semantics and their owners recorded (what lockdep knows):
 * spinlocks (page-table locks, driver spinlocks), mutexes (driver mutexes) and reader-writer
 * semaphores (mmap_lock). Sleeping acquisitions are generators that block the task; spinlocks
 * are taken atomically, because no preemption point is allowed while one is held (the
 * scheduler enforces it), so a spinlock found held by another task was leaked.
 *
 * Misuse is reported as the kernel would report it: a recursive lock or a cycle of waiters is a
 * deadlock, an unlock by a task that does not hold the lock is a bad unlock.
 */
import { LockFinding } from './findings.js';
import type { Scheduler } from './scheduler.js';
import type { HeldLock, KGen, Task, WaitCond } from './task.js';

function removeHeld(t: Task, lock: object, mode?: HeldLock['mode']): boolean {
  const held = t.held;
  for (let i = held.length - 1; i >= 0; i--) {
    const h = held[i];
    if (h.lock === lock && (mode === undefined || h.mode === mode)) {
      // Locks are mostly released in reverse order: the last one is a pop.
      if (i === held.length - 1) held.pop();
      else held.splice(i, 1);
      return true;
    }
  }
  return false;
}

function who(t: Task | null): string {
  return t ? `${t.name} (task ${t.id}${t.done ? ', exited' : ''})` : 'nobody';
}

/** Models spinlock_t (raw spinlock with lockdep): atomic acquire, owner recorded. */
export class SpinLock {
  owner: Task | null = null;
  /** The site that took it. */
  site = '';
  /**
   * The held_locks record of the holder: one per lock, reused by every acquisition (only one
   * task holds a spinlock at a time), so taking a page-table lock per page allocates nothing.
   */
  private readonly rec: { name: string; mode: 'x'; spin: true; site: string; lock: SpinLock };
  constructor(readonly name: string) {
    this.rec = { name, mode: 'x', spin: true, site: '', lock: this };
  }

  /** Models spin_lock(). A lock held by another task was leaked: it would spin forever. */
  lock(s: Scheduler, site: string): void {
    const t = s.current;
    if (this.owner) this.spinsForever(this.owner, t, site);
    this.owner = t;
    this.site = site;
    this.rec.site = site;
    t.held.push(this.rec);
    t.spinDepth++;
  }

  /**
   * The finding of a spin_lock() of a held lock (out of line, so that the per-page lock path
   * stays small enough for V8 to inline).
   */
  private spinsForever(owner: Task, t: Task, site: string): never {
    if (owner === t)
      throw new LockFinding('deadlock', `recursive spin_lock of ${this.name} by ${who(t)} at ${site}`, [
        `  first taken at ${this.site}`,
        `  held: ${t.heldSummary()}`,
      ]);
    throw new LockFinding(
      'deadlock',
      `${who(t)} spins forever on ${this.name} at ${site}: held by ${who(owner)} since ${this.site}`,
      [`  ${t.name} holds: ${t.heldSummary()}`, `  ${owner.name} holds: ${owner.heldSummary()}`],
    );
  }

  /** Models spin_trylock(). */
  trylock(s: Scheduler, site: string): boolean {
    if (this.owner) return false;
    this.lock(s, site);
    return true;
  }

  /** Models spin_unlock(). */
  unlock(s: Scheduler, site: string): void {
    const t = s.current;
    if (this.owner !== t) this.badUnlock(t, site);
    this.owner = null;
    // The lock taken last is released first (the common case): a pop.
    const held = t.held;
    if (held.length > 0 && held[held.length - 1] === this.rec) held.pop();
    else removeHeld(t, this);
    t.spinDepth--;
  }

  /** The finding of a spin_unlock() by a task that does not hold the lock (out of line). */
  private badUnlock(t: Task, site: string): never {
    throw new LockFinding(
      'bad-unlock',
      `bad unlock balance: ${who(t)} releases ${this.name} at ${site}, held by ${who(this.owner)}`,
      [`  held: ${t.heldSummary()}`],
    );
  }

  /** Models spin_is_locked(). */
  get locked(): boolean {
    return this.owner !== null;
  }
}

/**
 * Models struct mutex: a sleeping lock with an owner. Sleeping waiters queue in arrival order
 * (the wait_list) and the first of them takes the lock once it is free; a task that is not yet
 * waiting may take a free lock first (the kernel's fast path and optimistic spinning steal it;
 * the hand-off to a starving waiter is not modelled).
 */
export class Mutex {
  owner: Task | null = null;
  site = '';
  /** Models the wait_list: sleeping waiters, first come first served. */
  private readonly waiters: Task[] = [];
  /** The held_locks record of the owner, reused by every acquisition (one owner at a time). */
  private readonly rec: { name: string; mode: 'x'; spin: false; site: string; lock: Mutex };
  constructor(readonly name: string) {
    this.rec = { name, mode: 'x', spin: false, site: '', lock: this };
  }

  private waitFor(t: Task): WaitCond {
    return new MutexWait(this, t);
  }

  /** MutexWait's condition: the lock is free and `t` is the first waiter. */
  readyFor(t: Task): boolean {
    return this.owner === null && this.waiters[0] === t;
  }

  /** MutexWait's holders: the owner, then the waiters queued ahead of `t`. */
  holdersFor(t: Task): Task[] {
    const out = this.owner ? [this.owner] : [];
    for (const w of this.waiters) {
      if (w === t) break;
      out.push(w);
    }
    return out;
  }

  /** Models mutex_lock(): sleeps while another task holds it. */
  *lock(s: Scheduler, site: string): KGen {
    const t = s.current;
    if (this.owner === t)
      throw new LockFinding('deadlock', `recursive mutex_lock of ${this.name} by ${who(t)} at ${site}`, [
        `  first taken at ${this.site}`,
      ]);
    if (this.owner) {
      this.waiters.push(t);
      const c = this.waitFor(t);
      try {
        while (this.owner || this.waiters[0] !== t) yield c;
      } finally {
        // Also when a finding is thrown into the waiter: no ghost stays queued.
        this.waiters.splice(this.waiters.indexOf(t), 1);
      }
    }
    this.take(s.current, site);
  }

  private take(t: Task, site: string): void {
    this.owner = t;
    this.site = site;
    this.rec.site = site;
    t.held.push(this.rec);
  }

  /** Models mutex_trylock(). */
  trylock(s: Scheduler, site: string): boolean {
    if (this.owner) return false;
    this.take(s.current, site);
    return true;
  }

  /** Models mutex_unlock(). */
  unlock(s: Scheduler, site: string): void {
    const t = s.current;
    if (this.owner !== t)
      throw new LockFinding(
        'bad-unlock',
        `bad unlock balance: ${who(t)} releases ${this.name} at ${site}, held by ${who(this.owner)}`,
      );
    this.owner = null;
    removeHeld(t, this);
  }

  /** Models mutex_is_locked(). */
  get locked(): boolean {
    return this.owner !== null;
  }
}

interface RwWaiter {
  readonly t: Task;
  readonly mode: 'r' | 'w';
}

/** A task's read holds of one {@link RwSem}. */
interface ReadHolds {
  n: number;
  /** The held_locks record of its first hold, reused by every first hold. */
  readonly rec: { name: string; mode: 'r'; spin: false; site: string; lock: RwSem };
}

/**
 * Models struct rw_semaphore (kernel/locking/rwsem.c) with FIFO waiters: a reader waits while
 * a writer holds the lock or a writer queued before it; a writer waits for every holder and
 * every waiter queued before it. So a task that takes the read lock again while a writer
 * waits deadlocks, as in the kernel.
 */
export class RwSem {
  /**
   * Read holds per task. A task's entry stays at 0 when it lets go (a V8 Map delete costs about
   * ten sets, and this lock is taken per page on rmap paths); nReaders counts tasks above 0.
   * The entry of the task that last took or released a read hold is kept at hand, so taking
   * and releasing the lock per page costs no Map lookup.
   */
  private readonly readCount = new Map<Task, ReadHolds>();
  private lastReader: Task | null = null;
  private lastHolds: ReadHolds | null = null;
  private nReaders = 0;
  writer: Task | null = null;
  private readonly queue: RwWaiter[] = [];
  constructor(readonly name: string) {}

  /** The tasks holding it for read, with their read-hold counts. */
  get readers(): ReadonlyMap<Task, number> {
    const out = new Map<Task, number>();
    for (const [t, h] of this.readCount) if (h.n > 0) out.set(t, h.n);
    return out;
  }

  /** t's read-hold record (created at 0 on first use). */
  private holdsOf(t: Task): ReadHolds {
    if (this.lastReader === t) return this.lastHolds!;
    let h = this.readCount.get(t);
    if (h === undefined) {
      h = { n: 0, rec: { name: this.name, mode: 'r', spin: false, site: '', lock: this } };
      this.readCount.set(t, h);
    }
    this.lastReader = t;
    this.lastHolds = h;
    return h;
  }

  /**
   * Counts a read hold of t and records it in t's held locks: the first hold reuses the task's
   * record (no allocation per acquisition), a nested one gets its own.
   */
  private addReader(t: Task, site: string): void {
    const h = this.holdsOf(t);
    let rec: HeldLock;
    if (h.n === 0) {
      this.nReaders++;
      h.rec.site = site;
      rec = h.rec;
    } else rec = { name: this.name, mode: 'r', spin: false, site, lock: this };
    h.n++;
    t.held.push(rec);
  }

  private holders(): Task[] {
    return this.writer ? [this.writer] : [...this.readers.keys()];
  }

  private canRead(t: Task): boolean {
    if (this.writer) return false;
    for (const w of this.queue) {
      if (w.t === t) return true;
      if (w.mode === 'w') return false;
    }
    return true;
  }

  private canWrite(t: Task): boolean {
    if (this.writer || this.nReaders) return false;
    return this.queue.length === 0 || this.queue[0].t === t;
  }

  private waitFor(t: Task, mode: 'r' | 'w'): WaitCond {
    return new RwSemWait(this, t, mode);
  }

  /** RwSemWait's condition: `t` may take the lock in `mode` now. */
  readyFor(t: Task, mode: 'r' | 'w'): boolean {
    return mode === 'r' ? this.canRead(t) : this.canWrite(t);
  }

  /** RwSemWait's holders: the holders, then the waiters queued ahead of `t`. */
  holdersFor(t: Task): Task[] {
    const out = this.holders();
    for (const w of this.queue) {
      if (w.t === t) break;
      out.push(w.t);
    }
    return out;
  }

  private dequeue(t: Task): void {
    const i = this.queue.findIndex((w) => w.t === t);
    if (i >= 0) this.queue.splice(i, 1);
  }

  /** Models down_read(). */
  *downRead(s: Scheduler, site: string): KGen {
    const t = s.current;
    if (this.writer === t)
      throw new LockFinding(
        'deadlock',
        `${who(t)} takes ${this.name} for read at ${site} while holding it for write`,
      );
    if (!this.canRead(t)) {
      this.queue.push({ t, mode: 'r' });
      const c = this.waitFor(t, 'r');
      try {
        while (!this.canRead(t)) yield c;
      } finally {
        // Also when a finding is thrown into the waiter: no ghost stays queued.
        this.dequeue(t);
      }
    }
    this.addReader(t, site);
  }

  /**
   * {@link RwSem.downRead} when it does not sleep: true when the read lock was taken at once,
   * false when the caller must go on with `yield* downRead()` (which then queues and waits).
   */
  downReadNoWait(s: Scheduler, site: string): boolean {
    const t = s.current;
    if (this.writer === t || !this.canRead(t)) return false;
    this.addReader(t, site);
    return true;
  }

  /** Models down_read_trylock(). */
  tryDownRead(s: Scheduler, site: string): boolean {
    const t = s.current;
    if (this.writer || this.queue.length) return false;
    this.addReader(t, site);
    return true;
  }

  /** Models up_read(). */
  upRead(s: Scheduler, site: string): void {
    const t = s.current;
    const h = this.holdsOf(t);
    const n = h.n;
    if (n === 0) this.badUpRead(t, site);
    h.n = n - 1;
    if (n === 1) this.nReaders--;
    // The first hold's record released while it is the task's last lock (the common case): a pop.
    const held = t.held;
    if (n === 1 && held.length > 0 && held[held.length - 1] === h.rec) held.pop();
    else removeHeld(t, this, 'r');
  }

  /** The finding of an up_read() without a read hold (out of line, as SpinLock's). */
  private badUpRead(t: Task, site: string): never {
    throw new LockFinding(
      'bad-unlock',
      `bad unlock balance: ${who(t)} up_read(${this.name}) at ${site} without holding it`,
    );
  }

  /** Models down_write(). */
  *downWrite(s: Scheduler, site: string): KGen {
    const t = s.current;
    if (this.writer === t || (this.readCount.get(t)?.n ?? 0) > 0)
      throw new LockFinding('deadlock', `${who(t)} takes ${this.name} for write at ${site} while holding it`);
    if (!this.canWrite(t)) {
      this.queue.push({ t, mode: 'w' });
      const c = this.waitFor(t, 'w');
      try {
        while (!this.canWrite(t)) yield c;
      } finally {
        this.dequeue(t);
      }
    }
    this.writer = t;
    t.held.push({ name: this.name, mode: 'w', spin: false, site, lock: this });
  }

  /** Models up_write(). */
  upWrite(s: Scheduler, site: string): void {
    const t = s.current;
    if (this.writer !== t)
      throw new LockFinding(
        'bad-unlock',
        `bad unlock balance: ${who(t)} up_write(${this.name}) at ${site}, writer is ${who(this.writer)}`,
      );
    this.writer = null;
    removeHeld(t, this, 'w');
  }

  /** Models downgrade_write(): the writer becomes a reader without letting a writer in between. */
  downgradeWrite(s: Scheduler, site: string): void {
    const t = s.current;
    this.upWrite(s, site);
    this.addReader(t, site);
  }

  /** True when any task holds it. */
  get locked(): boolean {
    return this.writer !== null || this.nReaders > 0;
  }
}

/** Models wait_event(): a sleeping wait for an arbitrary condition, with the tasks that can end it. */
export function* waitEvent(
  what: string,
  cond: () => boolean,
  holders: () => readonly Task[] = () => [],
): KGen {
  if (cond()) return;
  const c: WaitCond = { what, ready: cond, holders, sleeping: true };
  while (!cond()) yield c;
}

/**
 * Models a busy retry (cpu_relax() in a loop, a fault returning 0 so the access repeats): a path
 * that found something locked by another CPU and retries at once. The task spins until the
 * holder (when the caller knows it, e.g. a folio lock's owner) has run a step, or, with no holder
 * known, until every other task that could run has run a step (or stopped being able to): each
 * task is a CPU of its own, and all the other CPUs keep running while this one spins. Without
 * this, a strict-priority schedule (PCT) would let the spinner starve the holder, which real CPUs
 * do not. Waiting only for "some other task" let a third task's steps stand in for the unknown
 * holder's, so two tasks retrying against each other could starve a low-priority third that the
 * retry waited for (found by pnpm fuzz --strategy pct: try_to_unuse() retrying against an exiting
 * mm's zap). If no other task can run, the spinner retries at once.
 */
export function* spinRetry(sched: Scheduler, site: string, holder: Task | null = null): KGen {
  const me = sched.current;
  const h = holder !== me ? holder : null;
  const c = new SpinWait(
    sched,
    me,
    h,
    `${site} (spinning until ${h ? h.name : 'the other CPUs'} make${h ? 's' : ''} progress)`,
  );
  yield c;
}

/*
 * The wait conditions of the lock slow paths are classes, not object literals with arrow
 * functions: the scheduler calls ready() on every step, and a closure made per wait would make
 * that call site see a new function each time (the optimizing compiler then throws its code
 * away and compiles it again, over and over).
 */

/** Models a mutex waiter (struct mutex_waiter on the wait_list). */
class MutexWait implements WaitCond {
  readonly what: string;
  readonly sleeping = true;
  constructor(
    private readonly lock: Mutex,
    private readonly t: Task,
  ) {
    this.what = `mutex ${lock.name}`;
  }
  ready(): boolean {
    return this.lock.readyFor(this.t);
  }
  holders(): readonly Task[] {
    return this.lock.holdersFor(this.t);
  }
}

/** Models an rwsem waiter (struct rwsem_waiter, reader or writer). */
class RwSemWait implements WaitCond {
  readonly what: string;
  readonly sleeping = true;
  constructor(
    private readonly lock: RwSem,
    private readonly t: Task,
    private readonly mode: 'r' | 'w',
  ) {
    this.what = `${lock.name} (${mode === 'r' ? 'read' : 'write'})`;
  }
  ready(): boolean {
    return this.lock.readyFor(this.t, this.mode);
  }
  holders(): readonly Task[] {
    return this.lock.holdersFor(this.t);
  }
}

/**
 * Models a busy retry's wait (see spinRetry()): ready once the holder has run a step (or ended),
 * or with no holder known, once every other task that could run when the spin began has run a
 * step since, ended, or is blocked (a task blocked on a lock that is free again still counts as
 * able to run: it is woken and must step first).
 */
class SpinWait implements WaitCond {
  readonly sleeping = false;
  readonly retry = true;
  private readonly mark: number;
  /** With no holder: the other live tasks and their step counts when the spin began. */
  private readonly others: Task[] = [];
  private readonly marks: number[] = [];
  constructor(
    sched: Scheduler,
    me: Task,
    private readonly holder: Task | null,
    readonly what: string,
  ) {
    this.mark = holder ? holder.steps : 0;
    if (!holder)
      for (const t of sched.tasks)
        if (t !== me) {
          this.others.push(t);
          this.marks.push(t.steps);
        }
  }
  ready(): boolean {
    const h = this.holder;
    if (h) return h.steps > this.mark || h.state === 'done';
    const others = this.others;
    for (let i = 0; i < others.length; i++) {
      const t = others[i];
      if (t.steps > this.marks[i] || t.state === 'done') continue;
      // A blocked task holds nobody up unless its wait is over (a spinner's wait never counts:
      // two spinners would otherwise each wait for the other).
      if (t.state === 'blocked' && (t.wait === null || t.wait.retry || !t.wait.ready(t))) continue;
      return false;
    }
    return true;
  }
  holders(): readonly Task[] {
    return this.holder ? [this.holder] : [];
  }
}
