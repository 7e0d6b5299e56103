/**
 * Models the scheduler (kernel/sched) as a deterministic interleaving engine: tasks run one at
 * a time and switch only at their yields (named preemption points, or waits). A strategy picks
 * who runs at each decision; the choices are recorded so that any run can be replayed.
 *
 * Synchronous callers (tests, the shell, the selftests) call {@link Scheduler.runSync}: their
 * kernel path becomes a task and the scheduler runs until it is done, letting other tasks run
 * at its preemption points as the strategy decides.
 */
import { ModelBug } from '../errors.js';
import { LivelockFinding, LockFinding } from './findings.js';
import { encodeTrace } from './schedule.js';
import { CooperativeStrategy, type SchedContext, type Strategy } from './strategy.js';
import { type KGen, type KYield, RESCHED, Task, type TaskKind, type WaitCond } from './task.js';

/** Models the arguments of kthread_run()/clone() the model needs: options of {@link Scheduler.spawn}. */
export interface SpawnOptions {
  readonly kind?: TaskKind;
  /** The user thread the task runs for. */
  readonly owner?: unknown;
  /** Preemption points to let pass before the first step (cooperative strategy only). */
  readonly delay?: number;
  /** A label for reports. */
  readonly label?: string;
}

/** Model-only: a hook run at every preemption point (a test timeout, a sampling checker). */
export type PreemptHook = (site: string, task: Task) => void;

/**
 * Models the run queue and pick_next_task(): tasks, the current task, the strategy and the
 * recorded trace of choices.
 */
export class Scheduler {
  /** Models the boot CPU's idle task: "current" whenever no task is stepping. */
  readonly boot = new Task(0, 'swapper/0', 'boot', null);
  /** Models `current`. */
  current: Task = this.boot;
  private live: Task[] = [];
  private nextId = 1;
  private strat: Strategy = new CooperativeStrategy();
  /** Task ids chosen at each decision with more than one runnable task. */
  readonly trace: number[] = [];
  /** Steps run (generator resumptions). */
  steps = 0;
  /** Preemption points reached. */
  preemptions = 0;
  /** Sites reached, with counts (for coverage reports), in the order first reached. */
  get sites(): ReadonlyMap<string, number> {
    const view = this.siteView;
    for (const [site, c] of this.siteCounters) view.set(site, c.n);
    return view;
  }
  private readonly siteView = new Map<string, number>();
  /** A counter per site reached: one object, so that a point only increments it. */
  private readonly siteCounters = new Map<string, { n: number }>();
  /**
   * The site of the last point counted and its counter: a per-page loop reaches one site many
   * times in a row, and comparing the (interned) site string is cheaper than a map lookup per
   * point.
   */
  private runSite = '';
  private runCounter: { n: number } = { n: 0 };
  private countSite(site: string): void {
    if (site !== this.runSite) {
      let c = this.siteCounters.get(site);
      if (c === undefined) this.siteCounters.set(site, (c = { n: 0 }));
      this.runSite = site;
      this.runCounter = c;
    }
    this.runCounter.n++;
  }
  /** Whether to count sites (off by default: costs a map update per preemption point). */
  countSites = false;
  /** Hooks run at every preemption point; an exception is thrown into the task at that point. */
  readonly hooks = new Set<PreemptHook>();
  /**
   * Model-only: hooks that watch time rather than interleavings (a test's timeout, a UI's time
   * slice). They run at the preemption points that are taken, like {@link Scheduler.hooks}, but do
   * not make {@link Scheduler.needResched} true, so per-page points a lone task skips stay skipped.
   */
  readonly watchdogs = new Set<PreemptHook>();
  /** Bound on consecutive steps in which no task finishes or notes progress (a livelock finding beyond it). */
  maxStepsWithoutProgress = 5_000_000;
  /**
   * Set when a historical bug is switched on (Kernel `bugs`): a spinlock leaked by the bug makes
   * later preemption points of the same path run straight through instead of being a model bug.
   */
  leakedSpinlocksPossible = false;
  private last: Task | null = null;
  private how: SchedContext['how'] = 'start';
  private sinceProgress = 0;

  /** True while the strategy is the cooperative one (see {@link Scheduler.needResched}). */
  private coop = true;
  /** The condition of the innermost {@link Scheduler.runUntil} (null outside one). */
  private until: (() => boolean) | null = null;
  /** Nesting of {@link Scheduler.runSync} paths run inline inside a task (their points are skipped). */
  private inlineDepth = 0;
  /** The site of the last {@link Scheduler.preempt} that returned true (what RESCHED stands for). */
  private pendingSite = '';
  /**
   * Set when {@link Scheduler.preempt} made the decision the task's RESCHED yield hands over:
   * the yield is already accounted for, and `handoff` (if not null) is the task to run next.
   */
  private decided = false;
  private handoff: Task | null = null;

  constructor(strategy?: Strategy) {
    if (strategy) {
      this.strat = strategy;
      this.coop = strategy instanceof CooperativeStrategy;
    }
  }

  /** The strategy in use. */
  get strategy(): Strategy {
    return this.strat;
  }

  /**
   * Models need_resched() as cond_resched() reads it, for preemption points in per-page loops:
   * true when stopping here can matter — another task exists (runnable, blocked or delayed), a
   * hook or the site counter watches preemption points, or the strategy is not the cooperative
   * one (random, PCT and replay strategies count and choose at every point). A lone task under
   * the cooperative strategy would be picked again at once, so a hot loop may skip the point
   * (`if (sched.condResched('site')) yield RESCHED`) exactly as cond_resched() costs nothing when no
   * other task wants the CPU. Whenever another task or a checker could act, the point is taken.
   */
  needResched(): boolean {
    return this.live.length > 1 || this.hooks.size > 0 || this.countSites || !this.coop;
  }

  /**
   * Models a preemption point as the running task reaches it (preempt_schedule() behind
   * preempt_enable(), or cond_resched() when need_resched() holds): true when the task must
   * yield {@link RESCHED} to the scheduler, false when it keeps the CPU and goes on.
   *
   * The decision is the one {@link Scheduler.runUntil} would make after the task yielded the
   * site: the same counts, hooks, strategy call and recorded choice, in the same order. Making
   * it here saves unwinding and resuming the task's generator stack when the strategy keeps the
   * task on the CPU. Where the decision needs the scheduler loop (outside a task, with hooks or
   * watchdogs, at the livelock bound, when the run's condition holds) the task yields and
   * runUntil() takes over; inside a {@link Scheduler.runSync} path run inline the point is
   * skipped, as a yield there would be.
   */
  preempt(site: string): boolean {
    const t = this.current;
    if (t === this.boot) {
      this.pendingSite = site;
      return true;
    }
    if (this.inlineDepth > 0) return false;
    const until = this.until;
    if (until === null || this.hooks.size > 0 || this.watchdogs.size > 0) {
      this.pendingSite = site;
      return true;
    }
    // What step() does when the task's generator returns a preemption point.
    t.steps++;
    this.steps++;
    this.last = t;
    const at = this.reachPoint(t, site);
    if (at !== true) {
      if (at !== false) throw at;
      return false;
    }
    // What runUntil() does next: the run's condition, then the choice.
    this.decided = true;
    this.handoff = null;
    if (until()) return true;
    const runnable = this.live.length > 1 ? this.runnable() : null;
    let next = t;
    if (runnable !== null && runnable.length > 1) {
      next = this.strat.pick(runnable, this.context());
      this.trace.push(next.id);
    }
    this.handoff = next;
    if (next !== t || this.sinceProgress + 1 > this.maxStepsWithoutProgress) return true;
    this.sinceProgress++;
    this.decided = false;
    this.handoff = null;
    return false;
  }

  /**
   * Task t reached the preemption point `site` (for step() and preempt() alike): count it and
   * tell the strategy. True when the scheduler may switch here; false when a spinlock is held
   * and a historical bug that leaks one is switched on (the path goes on with it held, lockdep
   * reports the leak at the return to user space); otherwise a point inside a spinlock section
   * is a mistake in the model, returned to be thrown into the task there.
   */
  private reachPoint(t: Task, site: string): boolean | ModelBug {
    this.how = 'preempt';
    t.site = site;
    this.preemptions++;
    if (this.countSites) this.countSite(site);
    if (t.spinDepth > 0)
      return this.leakedSpinlocksPossible
        ? false
        : new ModelBug(`preemption point '${site}' reached with a spinlock held (${t.heldSummary()})`);
    this.strat.onPreempt?.(t);
    return true;
  }

  /** Models cond_resched() in a per-page loop: {@link Scheduler.preempt} when {@link Scheduler.needResched}. */
  condResched(site: string): boolean {
    return this.needResched() && this.preempt(site);
  }

  /** Replaces the strategy and clears the recorded trace (a new run's schedule starts here). */
  setStrategy(s: Strategy): void {
    this.strat = s;
    this.coop = s instanceof CooperativeStrategy;
    this.trace.length = 0;
    for (const t of this.live) s.onSpawn?.(t);
  }

  /** The schedule of the run so far: the strategy and the trace that replays it. */
  schedule(): { strategy: string; trace: string } {
    return { strategy: this.strat.describe(), trace: `trace:${encodeTrace(this.trace)}` };
  }

  /** True while a task's step is executing (kernel code is running in a task). */
  get inTask(): boolean {
    return this.current !== this.boot;
  }

  /** Tasks not yet done, in creation order. */
  get tasks(): readonly Task[] {
    return this.live;
  }

  /** Number of unfinished tasks. */
  get pending(): number {
    return this.live.length;
  }

  /** Models kthread_run()/clone(): a new task running `gen`. */
  spawn(name: string, gen: KGen<unknown>, opts: SpawnOptions = {}): Task {
    const t = new Task(this.nextId++, name, opts.kind ?? 'kthread', gen, opts.owner ?? null);
    t.delay = opts.delay ?? 0;
    t.label = opts.label ?? '';
    this.live.push(t);
    this.strat.onSpawn?.(t);
    return t;
  }

  /** What the strategy knows at a decision (a scratch object: strategies read it during pick()). */
  private context(): SchedContext {
    const c = this.ctx;
    c.last = this.last;
    c.how = this.how;
    c.step = this.steps;
    return c;
  }
  private readonly ctx: { last: Task | null; how: SchedContext['how']; step: number } = {
    last: null,
    how: 'start',
    step: 0,
  };

  /**
   * The runnable tasks, in creation order: the live list itself when every task is ready, else
   * a scratch array (valid until the next call; filled by index, never emptied, so that its
   * backing store is kept).
   */
  private runnable(): readonly Task[] {
    const live = this.live;
    let ready = 0;
    for (const t of live) if (t.state === 'ready') ready++;
    if (ready === live.length) return live;
    const out = this.runnableScratch;
    let n = 0;
    for (const t of live)
      if (t.state === 'ready' || (t.state === 'blocked' && t.wait?.ready(t))) out[n++] = t;
    if (n > 0) {
      if (out.length !== n) out.length = n;
      return out;
    }
    // Busy retries run again when nothing else can (see spinRetry()).
    const retrying: Task[] = [];
    for (const t of live) if (t.state === 'blocked' && t.wait?.retry) retrying.push(t);
    return retrying;
  }
  private readonly runnableScratch: Task[] = [];

  /**
   * Model-only: a task made progress short of ending (the explorer calls it when an operation
   * finishes). The livelock bound counts the steps since the last progress, so that a long run
   * of many operations per task is not taken for a livelock before its first task ends.
   */
  noteProgress(): void {
    this.sinceProgress = 0;
  }

  private finish(t: Task): void {
    t.state = 'done';
    t.wait = null;
    const i = this.live.indexOf(t);
    if (i >= 0) this.live.splice(i, 1);
    this.sinceProgress = 0;
  }

  /** Resumes t's generator once, optionally throwing `inject` into it at its yield. */
  private step(t: Task, inject?: unknown): void {
    for (;;) {
      this.current = t;
      t.state = 'ready';
      t.wait = null;
      let r: IteratorResult<KYield, unknown>;
      try {
        r = inject === undefined ? t.gen!.next() : t.gen!.throw(inject);
      } catch (e) {
        this.current = this.boot;
        t.error = e;
        this.last = t;
        this.how = 'done';
        this.finish(t);
        return;
      }
      inject = undefined;
      this.current = this.boot;
      if (this.decided) {
        // The task yielded RESCHED after preempt() accounted for the point and decided.
        this.decided = false;
        if (r.done || r.value !== RESCHED) throw new ModelBug(`task ${t.name} did not yield after preempt()`);
        return;
      }
      t.steps++;
      this.steps++;
      this.last = t;
      if (r.done) {
        t.result = r.value;
        this.how = 'done';
        this.finish(t);
        return;
      }
      let y = r.value;
      if (y === RESCHED) y = this.pendingSite;
      if (typeof y === 'string') {
        const at = this.reachPoint(t, y);
        if (at !== true) {
          if (at !== false) inject = at;
          continue;
        }
        for (const h of this.hooks) {
          try {
            h(y, t);
          } catch (e) {
            inject = e;
            break;
          }
        }
        if (inject !== undefined) continue;
        for (const h of this.watchdogs) {
          try {
            h(y, t);
          } catch (e) {
            inject = e;
            break;
          }
        }
        if (inject !== undefined) continue;
        return;
      }
      this.how = 'block';
      t.state = 'blocked';
      t.wait = y;
      t.site = y.what;
      if (y.sleeping && t.spinDepth > 0) {
        inject = new LockFinding(
          'sleep-in-atomic',
          `BUG: sleeping function called from invalid context: ${t.name} waits for ${y.what}`,
          [`  held: ${t.heldSummary()}`],
        );
        continue;
      }
      return;
    }
  }

  /**
   * Runs tasks until `until()` holds or no task can run. Throws a deadlock finding when tasks
   * remain but all of them wait for something no runnable task can release.
   */
  runUntil(until: () => boolean): void {
    const outer = this.until;
    this.until = until;
    try {
      this.loop(until);
    } finally {
      this.until = outer;
      this.handoff = null;
    }
  }

  private loop(until: () => boolean): void {
    while (!until()) {
      let t: Task;
      if (this.handoff !== null) {
        // Chosen by preempt() at the point the last task yielded from.
        t = this.handoff;
        this.handoff = null;
      } else {
        const runnable = this.runnable();
        if (runnable.length === 0) {
          if (this.live.length) throw this.deadlock();
          return;
        }
        if (runnable.length === 1) t = runnable[0];
        else {
          t = this.strat.pick(runnable, this.context());
          this.trace.push(t.id);
        }
      }
      if (++this.sinceProgress > this.maxStepsWithoutProgress) {
        this.sinceProgress = 0;
        throw new LivelockFinding(
          `no task made progress in ${this.maxStepsWithoutProgress} steps`,
          this.live.map((x) => `  task ${x.id} ${x.name}: ${x.state} at ${x.site}`),
        );
      }
      this.step(t);
    }
  }

  /** Models pthread_join()/kthread_stop(): run until t is done. */
  join(t: Task): void {
    this.runUntil(() => t.done);
  }

  /** Runs every task to completion. */
  runAll(): void {
    this.runUntil(() => this.live.length === 0);
  }

  /**
   * Runs a kernel path to completion for a synchronous caller and returns its result (or
   * rethrows what it threw). Inside a task's step (a nested synchronous call) the path runs
   * inline and atomically: its preemption points are skipped, and it must not have to wait.
   */
  runSync<T>(gen: KGen<T>, name: string, owner: unknown = null): T {
    if (this.current !== this.boot) return this.driveInline(gen, name);
    const t = this.spawn(name, gen as KGen<unknown>, { kind: 'user', owner, label: 'sync' });
    this.runUntil(() => t.done);
    if (!t.done) throw this.deadlock();
    if (t.error !== undefined) throw t.error;
    return t.result as T;
  }

  private driveInline<T>(gen: KGen<T>, name: string): T {
    this.inlineDepth++;
    try {
      for (;;) {
        const r = gen.next();
        if (r.done) return r.value;
        const y = r.value;
        if (typeof y !== 'string' && !y.ready(this.current))
          throw new ModelBug(`synchronous ${name} inside task ${this.current.name} would wait for ${y.what}`);
      }
    } finally {
      this.inlineDepth--;
    }
  }

  /** Builds the deadlock report: every blocked task, what it waits for, who holds it, a cycle if any. */
  private deadlock(): LockFinding {
    const blocked = this.live.filter((t) => t.state === 'blocked');
    const lines: string[] = [];
    for (const t of blocked) {
      const w = t.wait as WaitCond;
      const holders = w.holders();
      lines.push(`  task ${t.id} ${t.name} waits for ${w.what} at ${t.site}`);
      lines.push(`    held: ${t.heldSummary()}`);
      lines.push(
        `    holder(s): ${holders.length ? holders.map((h) => `${h.id} ${h.name}${h.done ? ' (exited)' : ''}`).join(', ') : 'none'}`,
      );
    }
    const cycle = findCycle(blocked);
    const head = cycle
      ? `deadlock: ${cycle.map((t) => `${t.name} waits for ${(t.wait as WaitCond).what}`).join(', ')}`
      : `deadlock: ${blocked.length} task(s) wait for something no task can release`;
    return new LockFinding('deadlock', head, lines);
  }
}

/** A cycle in the wait-for graph (blocked task -> blocked holders of what it waits for), if any. */
function findCycle(blocked: readonly Task[]): Task[] | null {
  const next = (t: Task): Task[] => (t.wait ? t.wait.holders().filter((h) => h.state === 'blocked') : []);
  const done = new Set<Task>();
  const path: Task[] = [];
  const onPath = new Set<Task>();
  // Depth-first over every edge: a waiter may be held up by several holders.
  const visit = (t: Task): Task[] | null => {
    if (onPath.has(t)) return path.slice(path.indexOf(t));
    if (done.has(t)) return null;
    path.push(t);
    onPath.add(t);
    for (const h of next(t)) {
      const c = visit(h);
      if (c) return c;
    }
    path.pop();
    onPath.delete(t);
    done.add(t);
    return null;
  };
  for (const start of blocked) {
    const c = visit(start);
    if (c) return c;
  }
  return null;
}

/** Model-only: runs a kernel path for a caller that has a Core but no process (unit tests of mm paths). */
export function drive<T>(sched: Scheduler, gen: KGen<T>, name = 'drive'): T {
  return sched.runSync(gen, name);
}
