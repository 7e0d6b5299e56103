import { EAGAIN, EINVAL, EOVERFLOW } from '../constants.js';
import type { Core } from '../core.js';
import { ModelBug } from '../errors.js';
import { waitEvent } from '../sched/locks.js';
import type { KGen, KMaybe } from '../sched/task.js';
import {
  MMU_NOTIFY_RELEASE,
  type MmStruct,
  type MmuIntervalNotifier,
  type MmuNotifier,
  type MmuNotifierRange,
  mmuNotifierRangeBlockable,
} from './types.js';

/**
 * Models ULONG_MAX as a range end (exit_mmap()'s unmap_vmas() and mn_itree_release() use
 * [0, ULONG_MAX)): 2^64, which is the double nearest to 2^64 - 1.
 */
export const ULONG_MAX = 2 ** 64;

/** Models the names of enum mmu_notifier_event, indexed by event. */
export const MMU_NOTIFY_EVENT_NAMES: readonly string[] = [
  'MMU_NOTIFY_UNMAP',
  'MMU_NOTIFY_CLEAR',
  'MMU_NOTIFY_PROTECTION_VMA',
  'MMU_NOTIFY_PROTECTION_PAGE',
  'MMU_NOTIFY_SOFT_DIRTY',
  'MMU_NOTIFY_RELEASE',
  'MMU_NOTIFY_MIGRATE',
  'MMU_NOTIFY_EXCLUSIVE',
];

function overlaps(sub: MmuIntervalNotifier, range: MmuNotifierRange): boolean {
  return sub.end > range.start && sub.start < range.end;
}

/**
 * Models lockdep's __mmu_notifier_invalidate_range_start_map, per task (Task.mmuNotifierDepth):
 * how many ->invalidate callbacks the task is inside. Taking the map again there (a nested
 * invalidation, a read_begin or a remove from a callback) is lockdep's "possible recursive
 * locking" WARN.
 */
function callbackDepth(mm: MmStruct): number {
  return mm.host ? mm.host.current.mmuNotifierDepth : 0;
}

/**
 * Calls sub's ->invalidate inside lockdep's map: its result when the callback finished without
 * sleeping, else a generator that finishes it (and leaves the map when it ends).
 */
function invokeInvalidate(
  sub: MmuIntervalNotifier,
  range: MmuNotifierRange,
  seq: number,
): KGen<boolean> | boolean {
  const t = sub.mm.host?.current;
  if (t) t.mmuNotifierDepth++;
  let r: KGen<boolean> | boolean;
  try {
    r = sub.ops.invalidate(sub, range, seq);
  } catch (e) {
    if (t) t.mmuNotifierDepth--;
    throw e;
  }
  if (typeof r !== 'boolean') return finishInvalidate(t, r);
  if (t) t.mmuNotifierDepth--;
  return r;
}

function* finishInvalidate(t: { mmuNotifierDepth: number } | undefined, r: KGen<boolean>): KGen<boolean> {
  try {
    return yield* r;
  } finally {
    if (t) t.mmuNotifierDepth--;
  }
}

/** Models lock_map_acquire(&__mmu_notifier_invalidate_range_start_map) from `site`. */
function lockMapAcquire(mm: MmStruct, site: string): void {
  if (callbackDepth(mm) > 0)
    mm.host?.warn(
      `${site}: possible recursive locking detected (__mmu_notifier_invalidate_range_start_map) from an mmu_interval_notifier ->invalidate callback`,
    );
}

/**
 * Models mmu_notifier_invalidate_range_start() (mm/mmu_notifier.c): first the interval
 * notifiers (mn_itree_inv_start_range(): active_invalidate_ranges++, the mm's invalidate_seq
 * becomes odd when an interval overlaps, and every overlapping subscription, in the interval
 * tree's order, gets ->invalidate(range, seq), which may sleep on the driver's lock), then the
 * hlist notifiers' ->invalidate_range_start(). The CPU TLB is flushed for the range (the model
 * couples the secondary-MMU invalidation with the CPU TLB shootdown).
 */
export function* mmuNotifierInvalidateRangeStart(range: MmuNotifierRange): KGen {
  const rest = invalidateRangeStartNoWait(range);
  if (rest) yield* rest;
}

/**
 * {@link mmuNotifierInvalidateRangeStart} that runs without a generator: null when every callback
 * finished without sleeping, else the generator that goes on from the first one that sleeps
 * (see KMaybe: start it at once).
 */
export function invalidateRangeStartNoWait(range: MmuNotifierRange): KGen | null {
  const mm = range.mm;
  lockMapAcquire(mm, 'mmu_notifier_invalidate_range_start');
  if (mm.events) mm.events.mmuInvalidations++;
  mm.tlb.flushRange(range.start, range.end);
  mm.activeInvalidations++;
  if (mm.notifierObservers.size) for (const o of [...mm.notifierObservers]) o.start(range);
  const hit = itreeHits(mm, range);
  if (hit) {
    const seq = mm.notifierSeq;
    for (let k = 0; k < hit.length; k++) {
      const sub = hit[k];
      if (!mm.notifiers.has(sub)) continue;
      const r = invokeInvalidate(sub, range, seq);
      if (typeof r !== 'boolean') return finishInvalidateStart(range, hit, k, seq, r);
      invalidated(mm, r);
    }
  }
  return hlistStartNoWait(range);
}

/** The rest of {@link invalidateRangeStartNoWait} from hit[k], whose callback sleeps in `pending`. */
function* finishInvalidateStart(
  range: MmuNotifierRange,
  hit: readonly MmuIntervalNotifier[],
  k: number,
  seq: number,
  pending: KGen<boolean>,
): KGen {
  const mm = range.mm;
  invalidated(mm, yield* pending);
  for (let j = k + 1; j < hit.length; j++) {
    const sub = hit[j];
    if (!mm.notifiers.has(sub)) continue;
    const r = invokeInvalidate(sub, range, seq);
    invalidated(mm, typeof r === 'boolean' ? r : yield* r);
  }
  const rest = hlistStartNoWait(range);
  if (rest) yield* rest;
}

/** mn_itree_invalidate(): every range the model sends is blockable, so a failed callback WARNs. */
function invalidated(mm: MmStruct, ok: boolean): void {
  if (!ok) mm.host?.warn('mn_itree_invalidate: ->invalidate failed on a blockable range (WARN_ON)');
}

/**
 * mn_hlist_invalidate_range_start(): the hlist notifiers' ->invalidate_range_start(), every one
 * of them even after a failure. A failure ("callback failed with %d in %sblockable context") is
 * the kernel's WARN unless it is -EAGAIN on a non-blockable range; after one, every subscription
 * with ->invalidate_range_end() gets it (those whose start succeeded expect their end). Returns
 * 0 or the last failure when no callback slept, else the generator that goes on from the first
 * that sleeps (KMaybe: start it at once; its caller must allow sleeping, see
 * {@link hlistInvalidateRangeStart}).
 */
function hlistStart(range: MmuNotifierRange): number | KGen {
  const subs = [...range.mm.notifierList];
  let ret = 0;
  for (let k = 0; k < subs.length; k++) {
    const r = subs[k].ops.invalidateRangeStart?.(subs[k], range);
    if (typeof r === 'object') return finishHlistStart(range, subs, k, r, ret);
    if (r) ret = hlistFailed(range, r);
  }
  if (ret) hlistEnds(subs, range);
  return ret;
}

/** {@link hlistStart} on a blockable range: null when no callback slept, else what goes on. */
function hlistStartNoWait(range: MmuNotifierRange): KGen | null {
  if (!range.mm.notifierList.size) return null;
  const r = hlistStart(range);
  return typeof r === 'number' ? null : r;
}

/**
 * {@link hlistStart} on a non-blockable range: 0 or the last failure. A callback that would sleep
 * here is a ModelBug (the kernel's might_sleep() splat).
 */
function hlistInvalidateRangeStart(range: MmuNotifierRange): number {
  if (!range.mm.notifierList.size) return 0;
  const r = hlistStart(range);
  if (typeof r !== 'number')
    throw new ModelBug(
      'mn_hlist_invalidate_range_start: an ->invalidate_range_start callback may sleep on a non-blockable range',
    );
  return r;
}

/** The rest of {@link hlistStart} from subs[k], whose callback sleeps in `pending`. */
function* finishHlistStart(
  range: MmuNotifierRange,
  subs: readonly MmuNotifier[],
  k: number,
  pending: KGen<number>,
  failed: number,
): KGen {
  let ret = failed;
  const first = yield* pending;
  if (first) ret = hlistFailed(range, first);
  for (let j = k + 1; j < subs.length; j++) {
    const r = subs[j].ops.invalidateRangeStart?.(subs[j], range);
    const v = typeof r === 'object' ? yield* r : r;
    if (v) ret = hlistFailed(range, v);
  }
  if (ret) hlistEnds(subs, range);
}

/** A failed ->invalidate_range_start(): the kernel's WARN unless it is -EAGAIN on a non-blockable range. Returns it. */
function hlistFailed(range: MmuNotifierRange, r: number): number {
  if (mmuNotifierRangeBlockable(range) || r !== -EAGAIN)
    range.mm.host?.warn(
      `mn_hlist_invalidate_range_start: callback failed with ${r} in ${mmuNotifierRangeBlockable(range) ? '' : 'non-'}blockable context (WARN_ON)`,
    );
  return r;
}

/** After a failure, every subscription's ->invalidate_range_end() (those whose start succeeded expect it). */
function hlistEnds(subs: readonly MmuNotifier[], range: MmuNotifierRange): void {
  for (const sub of subs) sub.ops.invalidateRangeEnd?.(sub, range);
}

function byStart(a: MmuIntervalNotifier, b: MmuIntervalNotifier): number {
  return a.start - b.start;
}

/**
 * The interval part of mn_itree_inv_start_range(): the subscriptions overlapping the range, in the
 * interval tree's order (a snapshot: callbacks may remove subscriptions), with invalidate_seq made
 * odd when there is one; null when none overlaps.
 */
function itreeHits(mm: MmStruct, range: MmuNotifierRange): MmuIntervalNotifier[] | null {
  let hit: MmuIntervalNotifier[] | null = null;
  for (const sub of mm.notifiers) if (overlaps(sub, range)) (hit ??= []).push(sub);
  if (hit) {
    if (hit.length > 1 && !inStartOrder(hit)) hit.sort(byStart);
    mm.notifierSeq |= 1;
  }
  return hit;
}

/** Whether the subscriptions are already in the interval tree's order (the usual case: no sort). */
function inStartOrder(hit: readonly MmuIntervalNotifier[]): boolean {
  for (let i = 1; i < hit.length; i++) if (hit[i].start < hit[i - 1].start) return false;
  return true;
}

/**
 * Models mn_itree_inv_end(): when the last active invalidation ends and the sequence is odd,
 * invalidate_seq becomes even again, the deferred inserts enter the tree, and waiters in
 * read_begin() wake.
 */
function itreeInvEnd(mm: MmStruct): void {
  mm.activeInvalidations--;
  if (mm.activeInvalidations !== 0 || !(mm.notifierSeq & 1)) return;
  mm.notifierSeq++;
  for (const sub of mm.notifiersDeferred) mm.notifiers.add(sub);
  mm.notifiersDeferred.clear();
}

/**
 * Models mmu_notifier_invalidate_range_end(): mn_itree_inv_end() (see above), then the hlist
 * notifiers' ->invalidate_range_end().
 */
export function mmuNotifierInvalidateRangeEnd(range: MmuNotifierRange): void {
  const mm = range.mm;
  mm.tlb.flushRange(range.start, range.end);
  itreeInvEnd(mm);
  if (mm.notifierList.size) for (const sub of [...mm.notifierList]) sub.ops.invalidateRangeEnd?.(sub, range);
  if (mm.notifierObservers.size) for (const o of [...mm.notifierObservers]) o.end(range);
}

/**
 * Models mmu_notifier_invalidate_range_start_nonblock() (include/linux/mmu_notifier.h, the OOM
 * reaper's start): the range is not blockable, so no callback may sleep. Returns 0, after which
 * the caller must end the range as usual, or -EAGAIN, after which it must not.
 *
 * __mmu_notifier_invalidate_range_start() runs the interval notifiers first (mn_itree_invalidate():
 * a callback that refuses ends the interval part, mn_itree_inv_end(), and returns -EAGAIN), then
 * the hlist ones (mn_hlist_invalidate_range_start()). When an hlist callback refuses after the
 * interval part went through, v6.19 returns -EAGAIN without ending the interval part: the mm's
 * active_invalidate_ranges never comes back to zero, so invalidate_seq, once odd, stays odd, and
 * every mmu_interval_read_begin() of a subscription hit since waits for ever (finding K20, see
 * the README). Fix switch K20 ends the interval part there too.
 */
export function mmuNotifierInvalidateRangeStartNonblock(range: MmuNotifierRange): number {
  const mm = range.mm;
  if (mmuNotifierRangeBlockable(range))
    throw new ModelBug('mmu_notifier_invalidate_range_start_nonblock: the range is blockable');
  lockMapAcquire(mm, 'mmu_notifier_invalidate_range_start_nonblock');
  if (!mm.hasItree && !mm.notifierList.size) return 0;
  if (mm.events) mm.events.mmuInvalidations++;
  mm.tlb.flushRange(range.start, range.end);
  if (mm.hasItree) {
    // mn_itree_invalidate(): mn_itree_inv_start_range(), then each overlapping subscription.
    mm.activeInvalidations++;
    const hit = itreeHits(mm, range);
    if (hit) {
      const seq = mm.notifierSeq;
      for (const sub of hit) {
        if (!mm.notifiers.has(sub)) continue;
        const r = invokeInvalidate(sub, range, seq);
        if (typeof r !== 'boolean')
          throw new ModelBug(
            `mn_itree_invalidate: an ->invalidate callback may sleep on a non-blockable range`,
          );
        if (!r) {
          // out_would_block: the caller is not allowed to call invalidate_range_end().
          itreeInvEnd(mm);
          return -EAGAIN;
        }
      }
    }
  }
  const ret = hlistInvalidateRangeStart(range);
  if (ret) {
    if (mm.hasItree && mm.host?.fixed?.('K20')) itreeInvEnd(mm);
    return ret;
  }
  if (mm.notifierObservers.size) for (const o of [...mm.notifierObservers]) o.start(range);
  return 0;
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
 * {@link withInvalidationSync} without a generator when no callback sleeps (KMaybe: a primitive
 * result, or the generator that goes on; start it at once).
 */
export function withInvalidationNoWait<T>(
  mm: MmStruct,
  start: number,
  end: number,
  event: number,
  owner: unknown,
  body: () => T,
): KMaybe<T> {
  const range: MmuNotifierRange = { mm, start, end, event, owner };
  const rest = invalidateRangeStartNoWait(range);
  if (rest) return finishWithInvalidation(range, rest, body);
  try {
    return body();
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
}

function* finishWithInvalidation<T>(range: MmuNotifierRange, rest: KGen, body: () => T): KGen<T> {
  yield* rest;
  try {
    return body();
  } finally {
    mmuNotifierInvalidateRangeEnd(range);
  }
}

/**
 * Models mmu_notifier_release() (__mmu_notifier_release(), called by exit_mmap() before the
 * pages are unmapped): mn_itree_release() invalidates every interval subscription with an
 * MMU_NOTIFY_RELEASE range over [0, ULONG_MAX) (they stay in the tree until their driver removes
 * them), then mn_hlist_release() calls each hlist subscription's ->release() and unhashes it.
 */
export function* mmuNotifierRelease(mm: MmStruct): KGen {
  const range: MmuNotifierRange = { mm, start: 0, end: ULONG_MAX, event: MMU_NOTIFY_RELEASE, owner: null };
  for (const o of [...mm.notifierObservers]) o.start(range);
  if (mm.notifiers.size || mm.notifiersDeferred.size) {
    mm.activeInvalidations++;
    const hit = [...mm.notifiers].sort((a, b) => a.start - b.start);
    if (hit.length) {
      mm.notifierSeq |= 1;
      const seq = mm.notifierSeq;
      for (const sub of hit) {
        if (!mm.notifiers.has(sub)) continue;
        const r = invokeInvalidate(sub, range, seq);
        if (!(typeof r === 'boolean' ? r : yield* r))
          mm.host?.warn('mn_itree_release: ->invalidate returned false (WARN_ON)');
      }
    }
    itreeInvEnd(mm);
  }
  for (const sub of [...mm.notifierList]) {
    sub.ops.release?.(sub, mm);
    mm.notifierList.delete(sub);
  }
  for (const o of [...mm.notifierObservers]) o.end(range);
}

/**
 * Models mmu_notifier_register() of an hlist subscription: 0, or -EINVAL (with the kernel's
 * BUG_ON as a WARN record) when the mm has no users left or the subscription is registered.
 */
export function mmuNotifierRegister(sub: MmuNotifier, mm: MmStruct): number {
  if (mm.users <= 0) {
    mm.host?.warn('mmu_notifier_register: BUG_ON(atomic_read(&mm->mm_users) <= 0)');
    return -EINVAL;
  }
  if (sub.mm) {
    mm.host?.warn('mmu_notifier_register: subscription already registered');
    return -EINVAL;
  }
  sub.mm = mm;
  mm.notifierList.add(sub);
  return 0;
}

/**
 * Models mmu_notifier_unregister(): ->release() if the subscription is still hashed (the mm
 * was not torn down yet), then unhash it. Unregistering twice is harmless, as in the kernel.
 */
export function mmuNotifierUnregister(sub: MmuNotifier, mm: MmStruct): void {
  if (mm.notifierList.has(sub)) {
    sub.ops.release?.(sub, mm);
    mm.notifierList.delete(sub);
  }
  sub.mm = null;
}

/**
 * Models mmu_interval_notifier_insert() (__mmu_interval_notifier_insert()): returns 0 or
 * -errno. A zero-length or overflowing range is -EOVERFLOW; an mm with no users left is a WARN
 * and -EINVAL; inserting a subscription twice is a WARN and -EINVAL (the kernel would corrupt
 * its tree). Not under invalidation, the subscription enters the tree at invalidate_seq - 1
 * (odd, never equal to the mm's sequence). While invalidations run (their ranges unknown to
 * it): if the mm's sequence is odd the insert is deferred to the last invalidate_range_end()
 * (so running and new invalidations do not call it); otherwise the sequence is made odd and the
 * subscription enters the tree now. Either way it starts at the mm's (odd) sequence, so its
 * first read_begin() waits for the invalidations to end.
 */
export function mmuIntervalNotifierInsert(sub: MmuIntervalNotifier): number {
  const mm = sub.mm;
  if (!Number.isInteger(sub.start) || !Number.isInteger(sub.end) || sub.start < 0) return -EINVAL;
  if (sub.end <= sub.start || sub.end > ULONG_MAX) return -EOVERFLOW;
  if (mm.users <= 0) {
    mm.host?.warn('mmu_interval_notifier_insert: WARN_ON(atomic_read(&mm->mm_users) <= 0)');
    return -EINVAL;
  }
  if (mm.notifiers.has(sub) || mm.notifiersDeferred.has(sub)) {
    mm.host?.warn('mmu_interval_notifier_insert: subscription already inserted');
    return -EINVAL;
  }
  mm.hasItree = true;
  if (mm.activeInvalidations) {
    if (mm.notifierSeq & 1) mm.notifiersDeferred.add(sub);
    else {
      mm.notifierSeq |= 1;
      mm.notifiers.add(sub);
    }
    sub.seq = mm.notifierSeq;
  } else {
    sub.seq = mm.notifierSeq - 1;
    mm.notifiers.add(sub);
  }
  return 0;
}

/**
 * Models mmu_interval_notifier_remove(): once it returns, ->invalidate is not called again. A
 * subscription not inserted (never, or removed already) is the kernel's
 * WARN_ON(RB_EMPTY_NODE()) and nothing else changes; one whose insert is still deferred leaves
 * the deferred list. Removing from inside an ->invalidate callback is lockdep's recursive
 * locking WARN (the kernel would then wait for its own invalidation to end). Simplified: the
 * kernel defers the tree removal to the last invalidate_range_end() and sleeps until then; the
 * model removes at once (a callback already running on another task finishes).
 */
export function mmuIntervalNotifierRemove(sub: MmuIntervalNotifier): void {
  const mm = sub.mm;
  lockMapAcquire(mm, 'mmu_interval_notifier_remove');
  if (mm.notifiersDeferred.delete(sub)) return;
  if (!mm.notifiers.delete(sub))
    mm.host?.warn('mmu_interval_notifier_remove: WARN_ON(RB_EMPTY_NODE(&interval_sub->interval_tree.rb))');
}

/**
 * Models mmu_interval_read_begin(): when the subscription was hit by the invalidation still
 * running (its sequence equals the mm's odd one), sleep until that invalidation ends; return the
 * subscription's sequence to compare against later.
 */
export function* mmuIntervalReadBegin(core: Core, sub: MmuIntervalNotifier): KGen<number> {
  const mm = sub.mm;
  const seq = sub.seq;
  lockMapAcquire(mm, 'mmu_interval_read_begin');
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
