import type { MmStruct, MmuIntervalNotifier, MmuNotifierRange } from './types.js';

/**
 * Models mmu_notifier_invalidate_range_start() for interval notifiers
 * (mm/mmu_notifier.c, mn_itree_invalidate): every subscription overlapping [start, end) gets
 * ->invalidate(); its sequence becomes odd until range_end. The TLB is flushed for the range
 * (the model couples the secondary-MMU invalidation with the CPU TLB shootdown).
 */
export function mmuNotifierInvalidateRangeStart(range: MmuNotifierRange): void {
  const mm = range.mm;
  mm.tlb.flushRange(range.start, range.end);
  for (const sub of [...mm.notifiers]) {
    if (sub.end <= range.start || sub.start >= range.end) continue;
    if (!mm.notifiers.has(sub)) continue;
    sub.seq = (sub.seq | 1) + 2;
    sub.ops.invalidate(sub, range, sub.seq);
  }
}

/** Models mmu_notifier_invalidate_range_end(): subscriptions' sequences become even again. */
export function mmuNotifierInvalidateRangeEnd(range: MmuNotifierRange): void {
  const mm = range.mm;
  mm.tlb.flushRange(range.start, range.end);
  for (const sub of mm.notifiers) {
    if (sub.end <= range.start || sub.start >= range.end) continue;
    if (sub.seq & 1) sub.seq++;
  }
}

/** Convenience: start and end an invalidation around fn (the common kernel pattern). */
export function withInvalidation<T>(
  mm: MmStruct,
  start: number,
  end: number,
  event: number,
  owner: unknown,
  fn: () => T,
): T {
  const range: MmuNotifierRange = { mm, start, end, event, owner };
  mmuNotifierInvalidateRangeStart(range);
  try {
    return fn();
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
}

/** Models mmu_interval_notifier_insert(). */
export function mmuIntervalNotifierInsert(sub: MmuIntervalNotifier): void {
  sub.mm.notifiers.add(sub);
}

/** Models mmu_interval_notifier_remove(). */
export function mmuIntervalNotifierRemove(sub: MmuIntervalNotifier): void {
  sub.mm.notifiers.delete(sub);
}

/** Models mmu_interval_read_begin(): the sequence to compare against later. */
export function mmuIntervalReadBegin(sub: MmuIntervalNotifier): number {
  return sub.seq;
}

/** Models mmu_interval_read_retry(): true if an invalidation happened since read_begin. */
export function mmuIntervalReadRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  return sub.seq !== seq;
}

/** Models mmu_interval_set_seq(). */
export function mmuIntervalSetSeq(sub: MmuIntervalNotifier, seq: number): void {
  sub.seq = seq;
}
