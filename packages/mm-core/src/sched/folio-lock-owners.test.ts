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
});
