import type { Core } from '../core.js';
import { waitEvent } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import type { MmStruct, MmuIntervalNotifier, MmuNotifierRange } from './types.js';

function overlaps(sub: MmuIntervalNotifier, range: MmuNotifierRange): boolean {
  return sub.end > range.start && sub.start < range.end;
}

/**
 * Models mmu_notifier_invalidate_range_start() for interval notifiers
 * (mm/mmu_notifier.c, mn_itree_inv_start_range()): active_invalidate_ranges++, the mm's
 * invalidate_seq becomes odd when an interval overlaps, and every overlapping subscription gets
 * ->invalidate(range, seq) (which may sleep on the driver's lock). The CPU TLB is flushed for the
 * range (the model couples the secondary-MMU invalidation with the CPU TLB shootdown).
 */
export function* mmuNotifierInvalidateRangeStart(range: MmuNotifierRange): KGen {
  const mm = range.mm;
  if (mm.events) mm.events.mmuInvalidations++;
  mm.tlb.flushRange(range.start, range.end);
  mm.activeInvalidations++;
  let any = false;
  for (const sub of mm.notifiers) {
    if (overlaps(sub, range)) {
      any = true;
      break;
    }
  }
  if (!any) return;
  mm.notifierSeq |= 1;
  const seq = mm.notifierSeq;
  for (const sub of [...mm.notifiers]) {
    if (!overlaps(sub, range) || !mm.notifiers.has(sub)) continue;
    yield* sub.ops.invalidate(sub, range, seq);
  }
}

/**
 * Models mmu_notifier_invalidate_range_end() (mn_itree_inv_end()): when the last active
 * invalidation ends, invalidate_seq becomes even again and waiters in read_begin() wake.
 */
export function mmuNotifierInvalidateRangeEnd(range: MmuNotifierRange): void {
  const mm = range.mm;
  mm.tlb.flushRange(range.start, range.end);
  mm.activeInvalidations--;
  if (mm.activeInvalidations === 0 && mm.notifierSeq & 1) mm.notifierSeq++;
}

/**
 * The common kernel pattern: mmu_notifier_range_init(), invalidate_range_start(), the body,
 * invalidate_range_end(). The end runs even if the body throws (a finding unwinding the task).
 */
export function* withInvalidation<T>(
  mm: MmStruct,
  start: number,
  end: number,
  event: number,
  owner: unknown,
  body: () => KGen<T>,
): KGen<T> {
  const range: MmuNotifierRange = { mm, start, end, event, owner };
  yield* mmuNotifierInvalidateRangeStart(range);
  try {
    return yield* body();
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
}

/** {@link withInvalidation} around a body that does not sleep. */
export function* withInvalidationSync<T>(
  mm: MmStruct,
  start: number,
  end: number,
  event: number,
  owner: unknown,
  body: () => T,
): KGen<T> {
  const range: MmuNotifierRange = { mm, start, end, event, owner };
  yield* mmuNotifierInvalidateRangeStart(range);
  try {
    return body();
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
}

/**
 * Models mmu_interval_notifier_insert(): not under invalidation, the subscription starts at
 * invalidate_seq - 1 (odd, never equal to the mm's sequence); while invalidations run (whose
 * ranges are unknown to it) the mm's sequence is made odd and the subscription starts at it, so
 * its first read_begin() waits for them to end.
 */
export function mmuIntervalNotifierInsert(sub: MmuIntervalNotifier): void {
  const mm = sub.mm;
  if (mm.activeInvalidations) {
    mm.notifierSeq |= 1;
    sub.seq = mm.notifierSeq;
  } else sub.seq = mm.notifierSeq - 1;
  mm.notifiers.add(sub);
}

/** Models mmu_interval_notifier_remove(). */
export function mmuIntervalNotifierRemove(sub: MmuIntervalNotifier): void {
  sub.mm.notifiers.delete(sub);
}

/**
 * Models mmu_interval_read_begin(): when the subscription was hit by the invalidation still
 * running (its sequence equals the mm's odd one), sleep until that invalidation ends; return the
 * subscription's sequence to compare against later.
 */
export function* mmuIntervalReadBegin(core: Core, sub: MmuIntervalNotifier): KGen<number> {
  const mm = sub.mm;
  const seq = sub.seq;
  if (seq === mm.notifierSeq) {
    yield* waitEvent(
      `mmu_interval_read_begin: invalidation of mm ${mm.id} in progress`,
      () => mm.notifierSeq !== seq,
      () => core.sched.tasks.filter((t) => t.state === 'ready'),
    );
  }
  return seq;
}

/** Models mmu_interval_read_retry(): true if an invalidation hit the subscription since read_begin. */
export function mmuIntervalReadRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  return sub.seq !== seq;
}

/** Models mmu_interval_check_retry() (same test, without the memory barrier). */
export function mmuIntervalCheckRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  return sub.seq !== seq;
}

/** Models mmu_interval_set_seq(): called by ->invalidate() under the driver's lock. */
export function mmuIntervalSetSeq(sub: MmuIntervalNotifier, seq: number): void {
  sub.seq = seq;
}
