/**
 * Findings: what the concurrency machinery reports. A finding is an Error so that it unwinds
 * the task that hit it; the explorer catches it and records it. Kernel failures the model
 * reproduces (BUG_ON, VM_BUG_ON, an oops) are {@link KernelBug}s naming the kernel function;
 * lock misuse the kernel's lockdep or the scheduler would see is {@link LockFinding}.
 */

/** The kinds of findings the explorer distinguishes. */
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

/** A finding: something a kernel developer must look at. */
export class Finding extends Error {
  constructor(
    readonly kind: FindingKind,
    message: string,
    /** Extra lines for the report (stacks of held locks, dumps). */
    readonly details: readonly string[] = [],
  ) {
    super(details.length ? `${message}\n${details.join('\n')}` : message);
    this.name = 'Finding';
  }

  /** The first line, for one-line summaries. */
  get summary(): string {
    return `${this.kind}: ${this.message.split('\n')[0]}`;
  }
}

/**
 * Models a kernel BUG()/VM_BUG_ON()/oops the model reproduces: the kernel's own assertion (or
 * a NULL dereference the kernel would take), reported as the kernel would, naming the function.
 * Distinct from ModelBug (an inconsistency of the model itself).
 */
export class KernelBug extends Finding {
  constructor(
    /** The kernel function whose assertion fired, e.g. "madvise_free_huge_pmd". */
    readonly fn: string,
    /** What the kernel checked, e.g. "VM_BUG_ON(!pmd_is_migration_entry(orig_pmd))". */
    readonly check: string,
    details: readonly string[] = [],
  ) {
    super('kernel-bug', `kernel BUG (modelled) in ${fn}: ${check}`, details);
    this.name = 'KernelBug';
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

/** A retry loop that exceeded its bound without progress. */
export class LivelockFinding extends Finding {
  constructor(message: string, details: readonly string[] = []) {
    super('livelock', message, details);
    this.name = 'LivelockFinding';
  }
}

/** Throws a {@link KernelBug} for `fn` when `cond` holds (models BUG_ON/VM_BUG_ON at that site). */
export function kernelBugOn(cond: boolean, fn: string, check: string, dump?: () => string): void {
  if (cond) throw new KernelBug(fn, check, dump ? [dump()] : []);
}
