/**
 * Models the points where the kernel may schedule (cond_resched(), lock waits) with a seeded,
 * deterministic scheduler: other simulated tasks run only at explicit preemption points inside
 * long kernel operations, one step at a time. A seed reproduces an interleaving exactly.
 */
export interface SchedTask {
  readonly name: string;
  /** Preemption points left before the task's next step runs. */
  countdown: number;
  /** The task's body; each `yield` ends a step. */
  readonly body: Iterator<unknown>;
  done: boolean;
  running: boolean;
}

/** Models a small seeded PRNG (xorshift32) for interleavings and selftest randomness. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** Next 32-bit unsigned value. */
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** Uniform integer in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
}

/** Models the run queue: tasks stepped at preemption points. */
export class Scheduler {
  readonly rng: Rng;
  private readonly tasks: SchedTask[] = [];
  /** Extra hooks run at every preemption point (e.g. a test timeout check). */
  readonly hooks = new Set<(where: string) => void>();
  preemptions = 0;
  private depth = 0;

  constructor(seed = 1) {
    this.rng = new Rng(seed);
  }

  /** Reseeds the interleaving choices. */
  reseed(seed: number): void {
    (this as { rng: Rng }).rng = new Rng(seed);
  }

  /** Models kthread_run()/pthread_create(): a task whose first step runs after `delay` preemption points. */
  spawn(name: string, body: Iterator<unknown>, delay = 0): SchedTask {
    const t: SchedTask = { name, countdown: delay, body, done: false, running: false };
    this.tasks.push(t);
    return t;
  }

  private step(t: SchedTask): void {
    t.running = true;
    this.depth++;
    try {
      const r = t.body.next();
      if (r.done) t.done = true;
    } finally {
      this.depth--;
      t.running = false;
    }
    if (t.done) this.tasks.splice(this.tasks.indexOf(t), 1);
  }

  /** Models cond_resched(): count down each waiting task; run those that reach zero. */
  preempt(where: string): void {
    this.preemptions++;
    for (const h of this.hooks) h(where);
    if (this.depth > 4) return;
    for (const t of [...this.tasks]) {
      if (t.running || t.done) continue;
      if (t.countdown > 0) {
        t.countdown--;
        continue;
      }
      this.step(t);
    }
  }

  /** Runs other tasks until `until()` holds or nothing can make progress (a sleep). */
  blockOn(until: () => boolean): void {
    let guard = 0;
    while (!until() && guard++ < 1_000_000) {
      const ready = this.tasks.filter((t) => !t.running && !t.done);
      if (ready.length === 0) return;
      for (const t of ready) {
        t.countdown = 0;
        this.step(t);
        if (until()) return;
      }
    }
  }

  /** Models pthread_join(): run a task to completion. */
  join(t: SchedTask): void {
    while (!t.done) {
      if (t.running) throw new Error(`join of running task ${t.name}`);
      t.countdown = 0;
      this.step(t);
    }
  }

  /** Number of unfinished tasks. */
  get pending(): number {
    return this.tasks.length;
  }
}
