/**
 * Scheduling strategies: who runs at each scheduling decision. A decision happens after every
 * step (a task reached a preemption point, blocked or finished) when more than one task can
 * run. Strategies are deterministic given their parameters, so a strategy plus the trace of
 * its choices reproduces a run exactly.
 */
import type { Task } from './task.js';

/** Model-only: a small seeded PRNG (xorshift32) for interleavings and selftest randomness. */
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

/** Model-only: encodes a trace of task ids with run-length compression (`2x5.3.2x12`). */
export function encodeTrace(choices: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < choices.length; ) {
    let j = i + 1;
    while (j < choices.length && choices[j] === choices[i]) j++;
    parts.push(j - i > 1 ? `${choices[i]}x${j - i}` : `${choices[i]}`);
    i = j;
  }
  return parts.join('.');
}

/** Model-only: what a strategy knows at a decision. */
export interface SchedContext {
  /** The task that ran the previous step (null before the first). */
  readonly last: Task | null;
  /** How the previous step ended. */
  readonly how: 'preempt' | 'block' | 'done' | 'start';
  /** Global step count so far. */
  readonly step: number;
}

/**
 * Models the scheduler's policy (pick_next_task()) as a pluggable, seeded choice among the
 * runnable tasks (never empty, sorted by id).
 */
export interface Strategy {
  /** Called for every task created, before its first decision. */
  onSpawn?(t: Task): void;
  /** Called at every preemption point a task reaches (before the decision). */
  onPreempt?(t: Task): void;
  /** Picks the next task to run. */
  pick(runnable: readonly Task[], ctx: SchedContext): Task;
  /** The strategy's description (`name:params`), part of a replayable schedule. */
  describe(): string;
}

/**
 * Models pick_next_task() as the default, cooperative policy (what synchronous callers and the
 * ported selftests expect):
 * the task that runs keeps the CPU; at each of its preemption points every other ready task
 * whose spawn delay has passed runs one step, in id order; a blocked task gives the CPU to the
 * lowest-id runnable task.
 */
export class CooperativeStrategy implements Strategy {
  private round: Task[] = [];
  private owner: Task | null = null;
  /** The task running its one step of the owner's round (it does not take the CPU). */
  private guest: Task | null = null;

  onSpawn(t: Task): void {
    // A synchronous caller's task takes the CPU (it is the code that is running).
    if (t.label === 'sync') {
      this.owner = t;
      this.round = [];
    }
  }

  onPreempt(t: Task): void {
    // A guest of the round (the last one included) leaves the CPU to the owner.
    if (t === this.guest || (t !== this.owner && this.round.length)) return;
    this.owner = t;
  }

  pick(runnable: readonly Task[], ctx: SchedContext): Task {
    const last = ctx.last;
    if (ctx.how === 'preempt' && last && this.round.length === 0 && last === this.owner) {
      // A new round at the owner's preemption point: delays count down, expired tasks queue.
      for (const t of runnable) {
        if (t === last) continue;
        if (t.delay > 0) t.delay--;
        else this.round.push(t);
      }
    }
    this.guest = null;
    while (this.round.length) {
      const t = this.round.shift()!;
      if (runnable.includes(t)) {
        this.guest = t;
        return t;
      }
    }
    if (this.owner && runnable.includes(this.owner)) return this.owner;
    if (last && ctx.how === 'preempt' && runnable.includes(last)) return last;
    // The owner blocked or finished: run someone else (the lowest id not delayed, else any).
    const t = runnable.find((x) => x.delay === 0) ?? runnable[0];
    this.owner = t;
    return t;
  }

  describe(): string {
    return 'coop';
  }
}

/**
 * Models pick_next_task() as a seeded random choice: at every decision, switch to a uniformly
 * chosen runnable task with probability p.
 */
export class RandomStrategy implements Strategy {
  private readonly rng: Rng;
  constructor(
    readonly seed: number,
    /** Probability of a context switch at a preemption point. */
    readonly p = 0.5,
  ) {
    this.rng = new Rng(seed);
  }

  pick(runnable: readonly Task[], ctx: SchedContext): Task {
    const last = ctx.last;
    const keep = last !== null && ctx.how === 'preempt' && runnable.includes(last);
    if (keep && this.rng.next() / 2 ** 32 >= this.p) return last;
    return runnable[this.rng.below(runnable.length)];
  }

  describe(): string {
    return `random:seed=${this.seed},p=${this.p}`;
  }
}

/**
 * Models pick_next_task() as PCT (probabilistic concurrency testing, Burckhardt et al., ASPLOS
 * 2010), a strict-priority scheduler: tasks get random
 * distinct priorities; the highest-priority runnable task runs; at d - 1 change points chosen
 * uniformly among the first k steps the running task's priority drops below every other. Finds
 * a bug of depth d with probability at least 1 / (n k^(d-1)).
 */
export class PctStrategy implements Strategy {
  private readonly rng: Rng;
  private readonly prio = new Map<Task, number>();
  private readonly changes: number[];
  private nextLow: number;

  constructor(
    readonly seed: number,
    /** Bug depth d (at least 1). */
    readonly depth = 3,
    /** Expected number of steps k. */
    readonly steps = 2000,
  ) {
    this.rng = new Rng(seed);
    const changes: number[] = [];
    for (let i = 0; i < Math.max(0, depth - 1); i++) changes.push(1 + this.rng.below(Math.max(1, steps)));
    this.changes = changes.sort((a, b) => a - b);
    this.nextLow = depth - 1;
  }

  onSpawn(t: Task): void {
    // Initial priorities are d, d + 1, ... in random order: above every change-point priority.
    this.prio.set(t, this.depth + this.rng.below(1 << 20));
  }

  pick(runnable: readonly Task[], ctx: SchedContext): Task {
    if (ctx.last && this.changes.length && this.changes[0] <= ctx.step) {
      this.changes.shift();
      this.prio.set(ctx.last, this.nextLow--);
    }
    let best = runnable[0];
    let bp = -Infinity;
    for (const t of runnable) {
      const p = this.prio.get(t) ?? 0;
      if (p > bp) {
        bp = p;
        best = t;
      }
    }
    return best;
  }

  describe(): string {
    return `pct:seed=${this.seed},d=${this.depth},k=${this.steps}`;
  }
}

/** Model-only: one recorded decision of a {@link PrefixStrategy}. */
export interface Decision {
  /** Ids of the tasks that could run. */
  readonly runnable: readonly number[];
  /** Id of the task chosen. */
  readonly chosen: number;
  /** Id of the task that ran before and could have continued (a switch away from it is a preemption), or -1. */
  readonly continuing: number;
}

/**
 * Models pick_next_task() for bounded search: follows a fixed prefix of choices (task ids), then
 * runs non-preemptively (the last task keeps
 * the CPU while it can; otherwise the lowest id). Records every decision, so an explorer can
 * enumerate schedules depth-first with a bound on preemptions (CHESS-style bounded search).
 */
export class PrefixStrategy implements Strategy {
  readonly decisions: Decision[] = [];
  /** Set when a prefix choice named a task that could not run. */
  mismatch = false;
  private i = 0;
  constructor(readonly prefix: readonly number[]) {}

  pick(runnable: readonly Task[], ctx: SchedContext): Task {
    const last = ctx.last;
    const continuing = last && ctx.how === 'preempt' && runnable.includes(last) ? last.id : -1;
    let t: Task | undefined;
    if (this.i < this.prefix.length) {
      const want = this.prefix[this.i++];
      t = runnable.find((x) => x.id === want);
      if (!t) this.mismatch = true;
    }
    if (!t) t = continuing >= 0 ? last! : runnable[0];
    this.decisions.push({ runnable: runnable.map((x) => x.id), chosen: t.id, continuing });
    return t;
  }

  describe(): string {
    return 'prefix';
  }
}

/**
 * Models pick_next_task() replaying a recorded trace of choices (see schedule.ts); when the trace ends (or names a task
 * that cannot run, which makes the replay diverge) the fallback strategy takes over.
 */
export class ReplayStrategy implements Strategy {
  private i = 0;
  /** Decision index at which the trace stopped matching, or -1. */
  divergedAt = -1;
  constructor(
    readonly choices: readonly number[],
    readonly fallback: Strategy = new CooperativeStrategy(),
  ) {}

  onSpawn(t: Task): void {
    this.fallback.onSpawn?.(t);
  }

  onPreempt(t: Task): void {
    this.fallback.onPreempt?.(t);
  }

  pick(runnable: readonly Task[], ctx: SchedContext): Task {
    if (this.i < this.choices.length && this.divergedAt < 0) {
      const want = this.choices[this.i];
      const t = runnable.find((x) => x.id === want);
      if (t) {
        this.i++;
        return t;
      }
      this.divergedAt = this.i;
    }
    return this.fallback.pick(runnable, ctx);
  }

  /** True when every recorded choice was followed. */
  get complete(): boolean {
    return this.divergedAt < 0 && this.i >= this.choices.length;
  }

  /** The schedule string that replays the same choices (`trace:...`). */
  describe(): string {
    return `trace:${encodeTrace(this.choices)}`;
  }
}
