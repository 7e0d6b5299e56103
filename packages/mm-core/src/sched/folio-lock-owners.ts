import { PAGES_PER_SECTION } from '../phys/memmap.js';
import type { Task } from './task.js';

/**
 * Models lockdep's record of folio lock holders (who set PG_locked): head pfn -> task. Kept per
 * memory section as a typed array of task ids (a section's array exists once a folio in it was
 * locked), because 4 KiB migrations lock and unlock two folios per page and a Map keyed by pfn
 * costs ~150 ns per set and delete in V8. An entry means something only while its folio is
 * locked.
 */
export class FolioLockOwners {
  private readonly sections = new Map<number, Int32Array>();
  private readonly tasks = new Map<number, Task>();
  constructor(private readonly locked: (head: number) => boolean) {}

  /** Records t as the holder of the lock of the folio at head (just taken, or inherited). */
  set(head: number, t: Task): void {
    const nr = Math.floor(head / PAGES_PER_SECTION);
    let a = this.sections.get(nr);
    if (!a) {
      a = new Int32Array(PAGES_PER_SECTION);
      this.sections.set(nr, a);
    }
    a[head - nr * PAGES_PER_SECTION] = t.id + 1;
    if (this.tasks.get(t.id) !== t) this.tasks.set(t.id, t);
  }

  /** The holder of the folio lock at head, or undefined when the folio is not locked. */
  get(head: number): Task | undefined {
    if (!this.locked(head)) return undefined;
    const nr = Math.floor(head / PAGES_PER_SECTION);
    const id = this.sections.get(nr)?.[head - nr * PAGES_PER_SECTION] ?? 0;
    return id > 0 ? this.tasks.get(id - 1) : undefined;
  }

  /** Forgets the holder at folio_unlock(). */
  forget(head: number): void {
    const nr = Math.floor(head / PAGES_PER_SECTION);
    const a = this.sections.get(nr);
    if (a) a[head - nr * PAGES_PER_SECTION] = 0;
  }
}
