import { describe, expect, it } from 'vitest';
import { PAGES_PER_SECTION } from '../phys/memmap.js';
import { FolioLockOwners } from './folio-lock-owners.js';
import { Scheduler } from './scheduler.js';
import { CooperativeStrategy } from './strategy.js';

describe('FolioLockOwners (lockdep view of PG_locked)', () => {
  const s = new Scheduler(new CooperativeStrategy());
  const a = s.spawn('a', (function* () {})());
  const b = s.spawn('b', (function* () {})());
  const locked = new Set<number>();
  const owners = new FolioLockOwners((h) => locked.has(h));

  it('names the holder only while the folio is locked, per pfn and across sections', () => {
    const far = 5 * PAGES_PER_SECTION + 17;
    locked.add(3).add(far);
    owners.set(3, a);
    owners.set(far, b);
    expect(owners.get(3)).toBe(a);
    expect(owners.get(far)).toBe(b);
    expect(owners.get(4)).toBeUndefined();
    // folio_unlock(): the owner is forgotten, and a stale entry never names a holder.
    locked.delete(3);
    owners.forget(3);
    expect(owners.get(3)).toBeUndefined();
    locked.delete(far);
    expect(owners.get(far)).toBeUndefined();
    // Relocked by the other task: the new holder.
    locked.add(far);
    owners.set(far, a);
    expect(owners.get(far)).toBe(a);
  });

  it('does not keep every task that ever locked a folio, only those a locked folio names', () => {
    const sched = new Scheduler(new CooperativeStrategy());
    const held = new Set<number>();
    const o = new FolioLockOwners((h) => held.has(h));
    // A task that keeps its folio locked, then 1,000 tasks that each lock and unlock one.
    const keeper = sched.spawn('keeper', (function* () {})());
    held.add(7);
    o.set(7, keeper);
    for (let i = 0; i < 1000; i++) {
      const t = sched.spawn(`t${i}`, (function* () {})());
      held.add(100 + i);
      o.set(100 + i, t);
      held.delete(100 + i);
      o.forget(100 + i);
    }
    expect(o.taskCount).toBeLessThan(200);
    expect(o.get(7)).toBe(keeper);
    // A folio whose lock was never forgotten (a leaked lock) still names its holder.
    const leaker = sched.spawn('leaker', (function* () {})());
    held.add(5 * PAGES_PER_SECTION + 3);
    o.set(5 * PAGES_PER_SECTION + 3, leaker);
    for (let i = 0; i < 1000; i++) o.set(100 + i, sched.spawn(`u${i}`, (function* () {})()));
    expect(o.get(5 * PAGES_PER_SECTION + 3)).toBe(leaker);
    expect(o.get(7)).toBe(keeper);
  });
});
