import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  EOVERFLOW,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { ModelBug } from '../errors.js';
import type { Kernel } from '../kernel.js';
import { Mutex, waitEvent } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import { machine } from '../testing/helpers.js';
import {
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierRegister,
  mmuNotifierUnregister,
  ULONG_MAX,
  withInvalidation,
  withInvalidationSync,
} from './notifier.js';
import {
  MMU_NOTIFY_CLEAR,
  MMU_NOTIFY_RELEASE,
  MMU_NOTIFY_UNMAP,
  type MmStruct,
  MmuIntervalNotifier,
  MmuNotifier,
  type MmuNotifierRange,
} from './types.js';

const P = PAGE_SIZE;

/** An interval notifier over [start, end) that records its ranges and sets the sequence. */
function mirror(mm: MmStruct, start: number, end: number, onInvalidate?: (r: MmuNotifierRange) => void) {
  const seen: [number, number, number][] = [];
  const sub = new MmuIntervalNotifier(mm, start, end, {
    *invalidate(s, r, cur) {
      seen.push([r.event, r.start, r.end]);
      mmuIntervalSetSeq(s, cur);
      onInvalidate?.(r);
      return true;
    },
  });
  return { sub, seen };
}

function invalidate(k: Kernel, mm: MmStruct, start: number, end: number, body: () => void = () => {}): void {
  k.core.sched.runSync(
    withInvalidationSync(mm, start, end, MMU_NOTIFY_CLEAR, null, body),
    'test invalidation',
  );
}

describe('mmu interval notifier sequence (mm/mmu_notifier.c)', () => {
  it('moves only for invalidations that hit an interval; read_retry sees exactly those', () => {
    const k = machine();
    const p = k.spawn();
    const mm = p.mm;
    const { sub, seen } = mirror(mm, 0x10000, 0x20000);
    expect(mmuIntervalNotifierInsert(sub)).toBe(0);
    const seq0 = mm.notifierSeq;
    expect(seq0 % 2).toBe(0);
    // Not under invalidation: the subscription starts at invalidate_seq - 1.
    expect(sub.seq).toBe(seq0 - 1);
    const begin = k.core.sched.runSync(mmuIntervalReadBegin(k.core, sub), 'read_begin');
    invalidate(k, mm, 0x30000, 0x40000);
    expect(mm.notifierSeq).toBe(seq0);
    expect(mmuIntervalReadRetry(sub, begin)).toBe(false);
    let during = 0;
    invalidate(k, mm, 0x1f000, 0x21000, () => {
      during = mm.notifierSeq;
    });
    expect(during).toBe(seq0 + 1);
    expect(mm.notifierSeq).toBe(seq0 + 2);
    expect(mmuIntervalReadRetry(sub, begin)).toBe(true);
    expect(seen).toEqual([[MMU_NOTIFY_CLEAR, 0x1f000, 0x21000]]);
    expect(k.core.warnings).toEqual([]);
  });

  it('calls overlapping subscriptions in interval-tree (start) order', () => {
    const k = machine();
    const p = k.spawn();
    const order: string[] = [];
    const b = mirror(p.mm, 0x50000, 0x60000, () => order.push('b'));
    const a = mirror(p.mm, 0x10000, 0x60000, () => order.push('a'));
    expect(mmuIntervalNotifierInsert(b.sub)).toBe(0);
    expect(mmuIntervalNotifierInsert(a.sub)).toBe(0);
    invalidate(k, p.mm, 0, 0x100000);
    expect(order).toEqual(['a', 'b']);
  });

  it('an insert while the sequence is odd is deferred to the last invalidate_range_end()', () => {
    const k = machine();
    const p = k.spawn();
    const mm = p.mm;
    const first = mirror(mm, 0, 0x100000);
    mmuIntervalNotifierInsert(first.sub);
    const late = mirror(mm, 0, 0x100000);
    invalidate(k, mm, 0x1000, 0x2000, () => {
      expect(mmuIntervalNotifierInsert(late.sub)).toBe(0);
      expect(late.sub.seq).toBe(mm.notifierSeq);
      expect(mm.notifiers.has(late.sub)).toBe(false);
      // A nested invalidation started now does not reach the deferred subscription.
      k.core.sched.runSync(
        withInvalidationSync(mm, 0x3000, 0x4000, MMU_NOTIFY_CLEAR, null, () => {}),
        'nested',
      );
    });
    expect(late.seen).toEqual([]);
    expect(first.seen.length).toBe(2);
    expect(mm.notifiers.has(late.sub)).toBe(true);
    // Its first read_begin does not wait: the invalidations it could not see are over.
    const s = k.core.sched.runSync(mmuIntervalReadBegin(k.core, late.sub), 'read_begin');
    expect(s).not.toBe(mm.notifierSeq);
    invalidate(k, mm, 0x5000, 0x6000);
    expect(late.seen).toEqual([[MMU_NOTIFY_CLEAR, 0x5000, 0x6000]]);
  });

  it('an insert during an invalidation that hit no interval makes the sequence odd and enters the tree', () => {
    const k = machine();
    const p = k.spawn();
    const mm = p.mm;
    const sub = mirror(mm, 0x10000, 0x20000).sub;
    const seq0 = mm.notifierSeq;
    invalidate(k, mm, 0x1000, 0x2000, () => {
      expect(mm.notifierSeq).toBe(seq0);
      expect(mmuIntervalNotifierInsert(sub)).toBe(0);
      expect(mm.notifierSeq).toBe(seq0 + 1);
      expect(sub.seq).toBe(seq0 + 1);
      expect(mm.notifiers.has(sub)).toBe(true);
    });
    expect(mm.notifierSeq).toBe(seq0 + 2);
  });
});

describe('mmu interval notifier bad input', () => {
  it('insert: an empty or overflowing range is -EOVERFLOW, a second insert is -EINVAL with a WARN', () => {
    const k = machine();
    const p = k.spawn();
    const ops = {
      *invalidate(): KGen<boolean> {
        return true;
      },
    };
    expect(mmuIntervalNotifierInsert(new MmuIntervalNotifier(p.mm, 0x1000, 0x1000, ops))).toBe(-EOVERFLOW);
    expect(mmuIntervalNotifierInsert(new MmuIntervalNotifier(p.mm, 0x2000, 0x1000, ops))).toBe(-EOVERFLOW);
    expect(mmuIntervalNotifierInsert(new MmuIntervalNotifier(p.mm, 0x1000, ULONG_MAX * 2, ops))).toBe(
      -EOVERFLOW,
    );
    expect(mmuIntervalNotifierInsert(new MmuIntervalNotifier(p.mm, 0.5, 0x1000, ops))).toBe(-EINVAL);
    expect(p.mm.notifiers.size).toBe(0);
    const sub = new MmuIntervalNotifier(p.mm, 0, ULONG_MAX, ops);
    expect(mmuIntervalNotifierInsert(sub)).toBe(0);
    expect(mmuIntervalNotifierInsert(sub)).toBe(-EINVAL);
    expect(p.mm.notifiers.size).toBe(1);
    expect(k.core.warnings.map((w) => w.message)).toEqual([
      'mmu_interval_notifier_insert: subscription already inserted',
    ]);
  });

  it('insert on an mm without users is a WARN and -EINVAL', () => {
    const k = machine();
    const p = k.spawn();
    const mm = p.mm;
    p.exit(0);
    expect(mm.users).toBe(0);
    expect(mmuIntervalNotifierInsert(mirror(mm, 0, P).sub)).toBe(-EINVAL);
    expect(k.core.warnings.at(-1)?.message).toMatch(/mm_users/);
  });

  it('remove twice: the kernel WARN, the other subscriptions untouched', () => {
    const k = machine();
    const p = k.spawn();
    const a = mirror(p.mm, 0, P);
    const b = mirror(p.mm, 0, P);
    mmuIntervalNotifierInsert(a.sub);
    mmuIntervalNotifierInsert(b.sub);
    mmuIntervalNotifierRemove(a.sub);
    mmuIntervalNotifierRemove(a.sub);
    expect(k.core.warnings.map((w) => w.message)).toEqual([
      'mmu_interval_notifier_remove: WARN_ON(RB_EMPTY_NODE(&interval_sub->interval_tree.rb))',
    ]);
    expect([...p.mm.notifiers]).toEqual([b.sub]);
    invalidate(k, p.mm, 0, P);
    expect(a.seen).toEqual([]);
    expect(b.seen.length).toBe(1);
  });

  it('removing a deferred insert drops it before it enters the tree', () => {
    const k = machine();
    const p = k.spawn();
    const hit = mirror(p.mm, 0, P);
    mmuIntervalNotifierInsert(hit.sub);
    const late = mirror(p.mm, 0, P);
    invalidate(k, p.mm, 0, P, () => {
      mmuIntervalNotifierInsert(late.sub);
      mmuIntervalNotifierRemove(late.sub);
    });
    expect(p.mm.notifiers.has(late.sub)).toBe(false);
    expect(p.mm.notifiersDeferred.size).toBe(0);
    expect(k.core.warnings).toEqual([]);
  });

  it('re-entrant: an invalidation or a remove from inside ->invalidate is a lockdep WARN, nothing corrupted', () => {
    const k = machine();
    const p = k.spawn();
    const mm = p.mm;
    const seqs: number[] = [];
    let nested = false;
    const self = mirror(mm, 0, 4 * P, () => {
      if (nested) return;
      nested = true;
      k.core.sched.runSync(
        withInvalidationSync(mm, 2 * P, 3 * P, MMU_NOTIFY_CLEAR, null, () => seqs.push(mm.notifierSeq)),
        'nested',
      );
      mmuIntervalNotifierRemove(self.sub);
    });
    mmuIntervalNotifierInsert(self.sub);
    const seq0 = mm.notifierSeq;
    invalidate(k, mm, 0, P);
    expect(seqs).toEqual([seq0 + 1]);
    expect(mm.notifierSeq).toBe(seq0 + 2);
    expect(mm.activeInvalidations).toBe(0);
    expect(mm.notifiers.size).toBe(0);
    // The nested invalidation re-enters the callback, as the kernel's would.
    expect(self.seen).toEqual([
      [MMU_NOTIFY_CLEAR, 0, P],
      [MMU_NOTIFY_CLEAR, 2 * P, 3 * P],
    ]);
    expect(k.core.warnings.map((w) => w.message.split(':')[0])).toEqual([
      'mmu_notifier_invalidate_range_start',
      'mmu_interval_notifier_remove',
    ]);
  });
});

describe('mmu_notifier_release() at exit', () => {
  it('interval notifiers get RELEASE then UNMAP of [0, ULONG_MAX) and stay until removed', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.writeI32(a, 1);
    const m = mirror(p.mm, a, a + 4 * P);
    mmuIntervalNotifierInsert(m.sub);
    const seq0 = p.mm.notifierSeq;
    p.exit(0);
    expect(m.seen).toEqual([
      [MMU_NOTIFY_RELEASE, 0, ULONG_MAX],
      [MMU_NOTIFY_UNMAP, 0, ULONG_MAX],
    ]);
    expect(p.mm.notifierSeq).toBe(seq0 + 4);
    expect(p.mm.notifiers.has(m.sub)).toBe(true);
    mmuIntervalNotifierRemove(m.sub);
    expect(k.core.warnings).toEqual([]);
  });

  it('hlist subscriptions see start/end pairs, then ->release once and are unhashed', () => {
    const k = machine();
    const p = k.spawn();
    const log: string[] = [];
    const sub = new MmuNotifier({
      invalidateRangeStart: (_s, r) => {
        log.push(`start ${r.event}`);
        return 0;
      },
      invalidateRangeEnd: (_s, r) => {
        log.push(`end ${r.event}`);
      },
      release: () => log.push('release'),
    });
    expect(mmuNotifierRegister(sub, p.mm)).toBe(0);
    expect(mmuNotifierRegister(sub, p.mm)).toBe(-EINVAL);
    k.core.sched.runSync(
      withInvalidation(p.mm, 0, P, MMU_NOTIFY_CLEAR, null, function* () {
        log.push('body');
      }),
      'inv',
    );
    const a = p.mmap(0, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(a).toBeGreaterThan(0);
    p.exit(0);
    expect(log).toEqual([`start ${MMU_NOTIFY_CLEAR}`, 'body', `end ${MMU_NOTIFY_CLEAR}`, 'release']);
    expect(p.mm.notifierList.size).toBe(0);
    mmuNotifierUnregister(sub, p.mm);
    mmuNotifierUnregister(sub, p.mm);
    expect(log.filter((l) => l === 'release').length).toBe(1);
    expect(mmuNotifierRegister(new MmuNotifier({}), p.mm)).toBe(-EINVAL);
  });

  it('an hlist ->invalidate_range_start() may sleep on a blockable range (the callbacks after it wait); on a non-blockable one that is a model bug', () => {
    const k = machine();
    const p = k.spawn();
    const sched = k.core.sched;
    const m = new Mutex('driver lock');
    const gate = { open: false };
    const log: string[] = [];
    const sleeper = new MmuNotifier({
      invalidateRangeStart: () =>
        (function* (): KGen<number> {
          gate.open = true;
          yield* m.lock(sched, 'sleeper');
          log.push('sleeper');
          m.unlock(sched, 'sleeper');
          return 0;
        })(),
    });
    const second = new MmuNotifier({
      invalidateRangeStart: () => {
        log.push('second');
        return 0;
      },
    });
    expect(mmuNotifierRegister(sleeper, p.mm)).toBe(0);
    expect(mmuNotifierRegister(second, p.mm)).toBe(0);
    sched.spawn(
      'holder',
      (function* (): KGen {
        yield* m.lock(sched, 'holder');
        yield* waitEvent('holder: the callback has started', () => gate.open);
        log.push('holder unlocks');
        m.unlock(sched, 'holder');
      })(),
    );
    sched.spawn(
      'invalidator',
      withInvalidation(p.mm, 0, P, MMU_NOTIFY_CLEAR, null, function* () {
        log.push('body');
      }),
    );
    sched.runAll();
    expect(log).toEqual(['holder unlocks', 'sleeper', 'second', 'body']);
    const range: MmuNotifierRange = {
      mm: p.mm,
      start: 0,
      end: P,
      event: MMU_NOTIFY_CLEAR,
      owner: null,
      nonblock: true,
    };
    expect(() => mmuNotifierInvalidateRangeStartNonblock(range)).toThrow(ModelBug);
  });
});
