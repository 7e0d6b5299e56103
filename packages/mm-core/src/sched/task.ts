/**
 * Tasks: the schedulable entities of the model (user threads in the kernel, kernel threads,
 * driver work). Kernel code that can be preempted or can sleep is written as generator
 * functions ({@link KGen}); a task is one such generator stack. A `yield` of a string is a
 * preemption point named after its kernel site; a `yield` of a {@link WaitCond} means the task
 * sleeps (or spins) until the condition holds. Everything else runs atomically.
 */

/**
 * Models what a kernel path does when it may schedule: reach a preemption point (cond_resched(),
 * or a window where another CPU can act), named after its site, or wait (a wait-queue entry).
 */
export type KYield = string | WaitCond;

/**
 * Models the return into schedule() from a preemption point whose site the scheduler already
 * has ({@link Scheduler.preempt}): what a task yields when `preempt()` returned true.
 */
export const RESCHED = '\u0000resched';

/**
 * Models a kernel code path that may call schedule(): a generator whose yields are preemption points
 * and waits, returning the path's result. Callers compose them with `yield*`.
 */
export type KGen<T = void> = Generator<KYield, T, undefined>;

/**
 * Model-only: what a hot kernel path (the page fault) returns: its result when it ran to the end
 * without reaching a preemption point that switches or a wait, else the generator that goes on
 * from there. It costs no generator when nothing schedules. Rules: the path's code up to the
 * returned generator is exactly what runs before the first yield; the caller starts the
 * generator at once (`if (typeof r !== 'number') r = yield* r`), with nothing in between; a
 * caller outside a task wraps it in a generator for Scheduler.runSync(). T is a primitive.
 */
export type KMaybe<T> = T | KGen<T>;

/**
 * Model-only: the rest of a KMaybe path after a preemption point that switched: yields
 * {@link RESCHED}, then runs `rest(...args)` to its end. Called only on that slow path, so the
 * fast path makes no closure.
 */
export function* reschedThen<A extends unknown[], T>(rest: (...args: A) => KMaybe<T>, ...args: A): KGen<T> {
  yield RESCHED;
  const r = rest(...args);
  return isKGen(r) ? yield* r : r;
}

/** Model-only: whether a {@link KMaybe} is the generator (the path did not finish). */
export function isKGen<T>(r: KMaybe<T>): r is KGen<T> {
  return typeof r === 'object' && r !== null;
}

/**
 * Models a wait queue entry (wait_event(), rwsem/mutex slow paths, spin loops): the condition a
 * blocked task waits for, and for reports the tasks that hold what it waits for.
 */
export interface WaitCond {
  /** What is waited for, e.g. "mmap_lock (write) of mm 3". */
  readonly what: string;
  /** True when the waiting task `t` may proceed (it re-checks after resuming). */
  ready(t: Task): boolean;
  /** Tasks holding what is waited for (for the wait-for graph of a deadlock report). */
  holders(): readonly Task[];
  /** False for spinning waits (spinlocks): sleeping while holding a spinlock is a kernel bug. */
  readonly sleeping: boolean;
  /**
   * A busy retry ({@link spinRetry}): the task may also run when no other task can (it retries
   * alone rather than deadlock).
   */
  readonly retry?: boolean;
}

/** Models struct held_lock (lockdep): one lock a task holds, with the kernel site that took it. */
export interface HeldLock {
  /** The lock's name (class and instance), e.g. "PMD lock of table 0x41a03". */
  readonly name: string;
  /** 'r' read (shared), 'w' write (exclusive), 'x' plain exclusive lock. */
  readonly mode: 'r' | 'w' | 'x';
  /** Spinlock (non-sleeping) or sleeping lock. */
  readonly spin: boolean;
  /** The site that took it. */
  readonly site: string;
  /** Identity of the lock object. */
  readonly lock: object;
}

/** Models the kinds of task_struct the model schedules. */
export type TaskKind = 'user' | 'kthread' | 'driver' | 'boot';

let noTaskIds = 0;

/**
 * Models a task_struct as the scheduler sees it: a generator stack, its state, the locks it
 * holds (lockdep's held_locks) and what it waits for.
 */
export class Task {
  /** 'ready' (runnable), 'blocked' (waiting on `wait`), 'done'. */
  state: 'ready' | 'blocked' | 'done' = 'ready';
  /** The condition a blocked task waits for. */
  wait: WaitCond | null = null;
  /** The preemption point the task last stopped at (or where it blocked). */
  site = 'start';
  /** Models current->held_locks, in acquisition order. */
  readonly held: HeldLock[] = [];
  /** Spinlocks held (preemption disabled while non-zero). */
  spinDepth = 0;
  /** The generator's return value once done. */
  result: unknown = undefined;
  /** The exception that ended the task, if any. */
  error: unknown = undefined;
  /** Steps run. */
  steps = 0;
  /**
   * Model-only: allocations of this task that failed for lack of memory (BuddyZone.lastFailShort),
   * where the kernel's allocator would have reclaimed or OOM-killed: a fault handler's
   * VM_FAULT_OOM after one stands for that (cpu.ts), even if the handler gave the memory back.
   */
  allocShortFailures = 0;
  /**
   * Model-only: non-zero while the task runs work the kernel runs in a kernel thread of its own
   * (nouveau's GPU fault worker): the allocator's OOM path then sees a kernel thread as `current`.
   */
  kthreadWork = 0;
  /** Preemption points (of any task) to let pass before this task's first step (spawn delay). */
  delay = 0;
  /** Ops-level label for reports (e.g. "madvise(MADV_FREE)"). */
  label = '';
  /**
   * Models lockdep's hold count of __mmu_notifier_invalidate_range_start_map for this task: how
   * many mmu_interval_notifier ->invalidate callbacks it is inside (mm/notifier.ts).
   */
  mmuNotifierDepth = 0;

  constructor(
    /** Per-scheduler id in creation order (0 is the boot task). */
    readonly id: number,
    readonly name: string,
    readonly kind: TaskKind,
    /** The generator stack (absent for the boot task). */
    readonly gen: KGen<unknown> | null,
    /** The user thread this task runs for (a Thread/Process of the process layer), if any. */
    readonly owner: unknown = null,
  ) {}

  /** True once the generator returned or threw. */
  get done(): boolean {
    return this.state === 'done';
  }

  /** A one-line description of the locks held, for reports. */
  heldSummary(): string {
    if (this.held.length === 0) return 'no locks held';
    return this.held.map((h) => `${h.name} (${h.mode}, at ${h.site})`).join('; ');
  }
}

/** Model-only: a task object for code that runs outside any scheduler (unit tests of helpers). */
export function detachedTask(name = 'detached'): Task {
  return new Task(-1 - noTaskIds++, name, 'boot', null);
}
