/**
 * Findings: what the concurrency machinery reports. A finding is an Error so that it unwinds
 * the task that hit it; the explorer catches it and records it. Kernel failures the model
 * reproduces (BUG_ON, VM_BUG_ON, an oops) are {@link KernelBug}s naming the kernel function;
 * lock misuse the kernel's lockdep or the scheduler would see is {@link LockFinding}.
 */

/** Model-only: the kinds of findings the explorer distinguishes. */
export type FindingKind =
  | 'kernel-bug'
  | 'deadlock'
  | 'lock-leak'
  | 'bad-unlock'
  | 'sleep-in-atomic'
  | 'livelock'
  | 'divergence'
  | 'invariant'
  | 'warning';

/** Model-only: a finding, something a kernel developer must look at (the base of lockdep-style and BUG reports). */
export class Finding extends Error {
  constructor(
    /** What kind of finding (the explorer's category). */
    readonly category: FindingKind,
    message: string,
    /** Extra lines for the report (stacks of held locks, dumps). */
    readonly details: readonly string[] = [],
  ) {
    super(details.length ? `${message}\n${details.join('\n')}` : message);
    this.name = 'Finding';
  }

  /** The first line, for one-line summaries. */
  get summary(): string {
    return `${this.category}: ${this.message.split('\n')[0]}`;
  }
}

/** Models lockdep and scheduler reports: deadlock, leaked lock, bad unlock, sleep in atomic. */
export class LockFinding extends Finding {
  constructor(
    kind: 'deadlock' | 'lock-leak' | 'bad-unlock' | 'sleep-in-atomic',
    message: string,
    details: readonly string[] = [],
  ) {
    super(kind, message, details);
    this.name = 'LockFinding';
  }
}

/**
 * Models the soft-lockup watchdog (kernel/watchdog.c) for retry loops: tasks kept running but none
 * finished within the scheduler's bound (maxStepsWithoutProgress).
 */
export class LivelockFinding extends Finding {
  constructor(message: string, details: readonly string[] = []) {
    super('livelock', message, details);
    this.name = 'LivelockFinding';
  }
}
