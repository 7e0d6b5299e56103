import { describe, expect, it } from 'vitest';
import { ModelBug } from '../errors.js';
import { allocFolio, folioTrylock, folioUnlock } from '../folio.js';
import { KernelBug } from '../kernel-bug.js';
import { LockFinding } from '../sched/findings.js';
import type { KGen } from '../sched/task.js';
import { machine } from '../testing/helpers.js';
import {
  assertPtlHeld,
  folioLockWait,
  folioWaitLocked,
  mmapReadLock,
  mmapReadUnlock,
  mmapWriteDowngrade,
  mmapWriteLock,
  mmapWriteUnlock,
  pmdLock,
  ptlockFree,
  ptlockOf,
  ptlUnlock,
} from './locking.js';

describe('mm lock rules (mm/locking.ts)', () => {
  it('mmap_lock is the mm’s rwsem: write excludes a fault’s read until downgraded', () => {
    const k = machine();
    const core = k.core;
    const p = k.spawn();
    const mm = p.mm;
    const log: string[] = [];
    const writer = k.sched.spawn(
      'munmap',
      (function* (): KGen {
        yield* mmapWriteLock(core, mm, 'munmap');
        log.push('write');
        yield 'munmap: detach';
        mmapWriteDowngrade(core, mm, 'munmap');
        log.push('downgrade');
        yield 'munmap: zap';
        mmapReadUnlock(core, mm, 'munmap');
        log.push('unlock');
      })(),
    );
    k.sched.runUntil(() => mm.mmapLock.writer === writer);
    const fault = k.sched.spawn(
      'fault',
      (function* (): KGen {
        yield* mmapReadLock(core, mm, 'handle_mm_fault');
        log.push('fault');
        mmapReadUnlock(core, mm, 'handle_mm_fault');
      })(),
    );
    k.sched.runAll();
    expect(fault.error).toBeUndefined();
    expect(log.indexOf('fault')).toBeGreaterThan(log.indexOf('downgrade'));
    expect(mm.mmapLock.locked).toBe(false);
    expect(mm.mmapLock.name).toBe(`mmap_lock of mm ${mm.id}`);
    // Unlocking what one does not hold is lockdep's bad unlock.
    expect(() =>
      k.sched.runSync(
        (function* (): KGen {
          mmapWriteUnlock(core, mm, 'stray');
        })(),
        'stray',
      ),
    ).toThrow(LockFinding);
  });

  it('split page-table locks: one spinlock per table page, asserted held, never freed held', () => {
    const k = machine();
    const core = k.core;
    const table = 0x41a03;
    expect(ptlockOf(core, table)).toBe(ptlockOf(core, table));
    expect(ptlockOf(core, table).name).toBe('ptl of table 0x41a03');
    const errors: unknown[] = [];
    k.sched.runSync(
      (function* (): KGen {
        const l = pmdLock(core, table, 'pmd_lock');
        assertPtlHeld(core, table, 'zap_huge_pmd');
        try {
          ptlockFree(core, table);
        } catch (e) {
          errors.push(e);
        }
        ptlUnlock(core, l, 'spin_unlock');
        try {
          assertPtlHeld(core, table, 'zap_huge_pmd');
        } catch (e) {
          errors.push(e);
        }
      })(),
      'walker',
    );
    expect(errors[0]).toBeInstanceOf(KernelBug);
    expect((errors[0] as KernelBug).fn).toBe('pagetable_dtor');
    expect((errors[0] as Error).message).toContain('freeing page table 0x41a03 with its lock held');
    expect(errors[1]).toBeInstanceOf(ModelBug);
    expect((errors[1] as Error).message).toBe('zap_huge_pmd: ptl of table 0x41a03 not held by walker');
    ptlockFree(core, table);
    expect(core.ptlocks.has(table)).toBe(false);
  });

  it('folio_wait_locked: the waiter is woken by the unlock even if the pfn is locked again before it runs', () => {
    const k = machine();
    const core = k.core;
    const head = allocFolio(core, 0, true);
    const order: string[] = [];
    // The migration unlocks the folio and, in the same step, the pfn is locked again (the folio
    // freed and reallocated, or locked by another migration): folio_wake_bit() woke the waiter.
    const holder = k.sched.spawn(
      'migrate',
      (function* (): KGen {
        expect(folioTrylock(core, head)).toBe(true);
        yield 'migrate: copying';
        folioUnlock(core, head);
        expect(folioTrylock(core, head)).toBe(true);
        order.push('relocked');
        yield 'migrate: next';
        yield 'migrate: still holding';
        order.push('migrate unlocks');
        folioUnlock(core, head);
      })(),
    );
    k.sched.runUntil(() => core.folioLockOwners.get(head) === holder);
    const waiter = k.sched.spawn(
      'fault',
      (function* (): KGen {
        yield* folioWaitLocked(core, head, 'migration entry');
        order.push('fault woken');
      })(),
    );
    k.sched.runUntil(() => waiter.state === 'blocked');
    k.sched.runAll();
    expect(order).toEqual(['relocked', 'fault woken', 'migrate unlocks']);
    expect(core.folioLockOwners.unlocks(head)).toBe(2);
  });

  it('folio lock: a contended folio_lock sleeps until the unlock; locking it twice is a self-deadlock', () => {
    const k = machine();
    const core = k.core;
    const head = allocFolio(core, 0, true);
    const order: string[] = [];
    const holder = k.sched.spawn(
      'migrate',
      (function* (): KGen {
        yield* folioLockWait(core, head, 'migrate_vma_collect');
        order.push('migrate locked');
        yield 'migrate: copying';
        order.push('migrate unlocks');
        folioUnlock(core, head);
      })(),
    );
    k.sched.runUntil(() => core.folioLockOwners.get(head) === holder);
    const waiter = k.sched.spawn(
      'fault',
      (function* (): KGen {
        yield* folioWaitLocked(core, head, 'migration entry');
        order.push('fault saw it unlocked');
        yield* folioLockWait(core, head, 'do_swap_page');
        order.push('fault locked');
        folioUnlock(core, head);
      })(),
    );
    k.sched.runUntil(() => waiter.state === 'blocked');
    expect(waiter.wait?.what).toBe(`migration entry (folio 0x${head.toString(16)} unlock)`);
    expect(waiter.wait?.holders()).toEqual([holder]);
    k.sched.runAll();
    expect(order).toEqual(['migrate locked', 'migrate unlocks', 'fault saw it unlocked', 'fault locked']);
    const self = k.sched.spawn(
      'self',
      (function* (): KGen {
        expect(folioTrylock(core, head)).toBe(true);
        yield* folioLockWait(core, head, 'again');
      })(),
    );
    k.sched.runAll();
    expect(self.error).toBeInstanceOf(KernelBug);
    expect((self.error as KernelBug).fn).toBe('folio_lock');
    expect((self.error as Error).message).toContain('folio already locked by the same task at again');
  });
});
