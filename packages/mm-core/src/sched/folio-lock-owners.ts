import { type HostMemoryPool, takeArray } from '../phys/hostpool.js';
import { PAGES_PER_SECTION, PFN_SECTION_SHIFT } from '../phys/memmap.js';
import type { Task } from './task.js';

/**
 * Models lockdep's record of folio lock holders (who set PG_locked): head pfn -> task. Kept per
 * memory section as a typed array of task ids (a section's array exists once a folio in it was
 * locked), because 4 KiB migrations lock and unlock two folios per page and a Map keyed by pfn
 * costs ~150 ns per set and delete in V8. An entry means something only while its folio is
 * locked. The same array counts each pfn's unlocks (its second half): the wake-ups of
 * folio_wake_bit() that a waiter sleeping on the folio's PG_locked gets ({@link
 * FolioLockOwners.unlocks}).
 */
export class FolioLockOwners {
  /**
   * The arrays by section number, a dense array (holes up to the highest section used): a 4 KiB
   * migration's destination pages are spread over many sections, and an array index is cheaper
   * than a Map lookup per lock.
   */
  private readonly sections: (Int32Array | undefined)[] = [];
  /** Where a section's unlock counts start in its array. */
  private static readonly UNLOCKS = PAGES_PER_SECTION;
  private readonly tasks = new Map<number, Task>();
  /**
   * The sections of the last two lookups (-1: none) and their arrays: locks come in runs of
   * neighbours, often alternating between a source and a destination section (migration).
   */
  private lastNr = -1;
  private lastArr: Int32Array | undefined = undefined;
  private prevNr = -1;
  private prevArr: Int32Array | undefined = undefined;
  /** The task of the last set(): its entry in `tasks` is known to be there. */
  private lastTask: Task | null = null;
  /** `tasks` is pruned when it grows past this (doubling: the scans cost O(1) per set() amortized). */
  private pruneAt = 64;
  constructor(
    private readonly locked: (head: number) => boolean,
    /** Where the section arrays come from and go back to at {@link FolioLockOwners.release}. */
    private readonly pool?: HostMemoryPool,
  ) {}

  /** The array of section nr, or undefined when none exists yet (no lock was taken there). */
  private section(nr: number): Int32Array | undefined {
    if (nr === this.lastNr) return this.lastArr;
    const a = nr === this.prevNr ? this.prevArr : this.sections[nr];
    if (a !== undefined) this.remember(nr, a);
    return a;
  }

  /** Makes section nr (array a) the last lookup, the previous last the one before. */
  private remember(nr: number, a: Int32Array): void {
    this.prevNr = this.lastNr;
    this.prevArr = this.lastArr;
    this.lastNr = nr;
    this.lastArr = a;
  }

  /** Records t as the holder of the lock of the folio at head (just taken, or inherited). */
  set(head: number, t: Task): void {
    const nr = head >>> PFN_SECTION_SHIFT;
    let a = this.section(nr);
    if (!a) {
      a = takeArray(this.pool, Int32Array, 2 * PAGES_PER_SECTION);
      const sections = this.sections;
      while (sections.length < nr) sections.push(undefined);
      sections[nr] = a;
      this.remember(nr, a);
    }
    a[head - nr * PAGES_PER_SECTION] = t.id + 1;
    if (this.lastTask !== t) {
      if (this.tasks.get(t.id) !== t) {
        this.tasks.set(t.id, t);
        if (this.tasks.size > this.pruneAt) this.prune();
      }
      this.lastTask = t;
    }
  }

  /** Tasks recorded (for tests: the record does not grow with every task that ever locked a folio). */
  get taskCount(): number {
    return this.tasks.size;
  }

  /**
   * Drops the tasks no locked folio names: a campaign or a shell session runs a task per syscall,
   * and the record would otherwise keep every one of them (and its generator) alive.
   */
  private prune(): void {
    const named = new Set<number>();
    this.sections.forEach((a, nr) => {
      if (!a) return;
      for (let i = 0; i < FolioLockOwners.UNLOCKS; i++)
        if (a[i] > 0 && this.locked(nr * PAGES_PER_SECTION + i)) named.add(a[i] - 1);
    });
    for (const id of this.tasks.keys()) if (!named.has(id) && id !== this.lastTask?.id) this.tasks.delete(id);
    this.pruneAt = Math.max(64, 2 * this.tasks.size);
  }

  /** The holder of the folio lock at head, or undefined when the folio is not locked. */
  get(head: number): Task | undefined {
    if (!this.locked(head)) return undefined;
    const nr = head >>> PFN_SECTION_SHIFT;
    const id = this.section(nr)?.[head - nr * PAGES_PER_SECTION] ?? 0;
    return id > 0 ? this.tasks.get(id - 1) : undefined;
  }

  /** Forgets the holder at folio_unlock(), and counts the unlock (folio_wake_bit()). */
  forget(head: number): void {
    const nr = head >>> PFN_SECTION_SHIFT;
    const a = this.section(nr);
    if (!a) return;
    const i = head - nr * PAGES_PER_SECTION;
    a[i] = 0;
    a[FolioLockOwners.UNLOCKS + i]++;
  }

  /**
   * Models the wake-ups a waiter on the folio's PG_locked gets: how many times the folio at head
   * was unlocked (wrapping; compare for equality only). A waiter that does not want the lock
   * (folio_wait_locked(), migration_entry_wait_on_locked()) returns at the next unlock even if
   * somebody locked the folio (or a new folio at that pfn) again before it ran.
   */
  unlocks(head: number): number {
    const nr = head >>> PFN_SECTION_SHIFT;
    const a = this.section(nr);
    return a ? a[FolioLockOwners.UNLOCKS + head - nr * PAGES_PER_SECTION] : 0;
  }

  /** Model-only: the machine is discarded; the section arrays go back to the pool. */
  release(): void {
    if (this.pool) for (const a of this.sections) if (a) this.pool.give(a);
    this.sections.length = 0;
    this.lastNr = this.prevNr = -1;
    this.lastArr = this.prevArr = undefined;
    this.tasks.clear();
    this.lastTask = null;
  }
}
