/**
 * The mm's lock rules, in one place (Documentation/mm/process_addrs.rst): which lock protects
 * what, and how each is taken.
 *
 * - mmap_lock (rw_semaphore per mm): write for VMA changes (mmap, munmap's detach, mprotect,
 *   mremap, fork's parent, MADV_* that change VMA flags); read for faults, GUP,
 *   hmm_range_fault's callers, migrate_vma_* callers, madvise advices that only touch pages,
 *   pagemap, and the zap after munmap's downgrade.
 * - page-table locks (split ptlocks, a spinlock per page-table page): the PMD lock of the PMD
 *   table page (pmd_lock()) for huge and non-present PMDs; the PTE lock of a PTE table page
 *   (pte_offset_map_lock()) for its PTEs. Never held across a preemption point.
 * - folio lock (PG_locked, sleeping): held across migration (collection to finalize), across
 *   a device-private fault's migrate_to_ram(), across a split.
 * - migration entries: a task meeting one sleeps until the folio it points to is unlocked
 *   (migration_entry_wait_on_locked()).
 */
import type { Core } from '../core.js';
import { ModelBug } from '../errors.js';
import { dumpFolio } from '../folio.js';
import { KernelBug } from '../kernel-bug.js';
import { PG_locked } from '../phys/memmap.js';
import { SpinLock, waitEvent } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import type { MmStruct } from './types.js';

/** Models mmap_read_lock(). */
export function* mmapReadLock(core: Core, mm: MmStruct, site: string): KGen {
  yield* mm.mmapLock.downRead(core.sched, site);
}

/** Models mmap_read_trylock(): false when a writer holds or anyone waits for the mmap_lock. */
export function mmapReadTrylock(core: Core, mm: MmStruct, site: string): boolean {
  return mm.mmapLock.tryDownRead(core.sched, site);
}

/** Models mmap_read_unlock(). */
export function mmapReadUnlock(core: Core, mm: MmStruct, site: string): void {
  mm.mmapLock.upRead(core.sched, site);
}

/** Models mmap_write_lock(). */
export function* mmapWriteLock(core: Core, mm: MmStruct, site: string): KGen {
  yield* mm.mmapLock.downWrite(core.sched, site);
}

/** Models mmap_write_unlock(). */
export function mmapWriteUnlock(core: Core, mm: MmStruct, site: string): void {
  mm.mmapLock.upWrite(core.sched, site);
}

/** Models mmap_write_downgrade(). */
export function mmapWriteDowngrade(core: Core, mm: MmStruct, site: string): void {
  mm.mmapLock.downgradeWrite(core.sched, site);
}

/** Models ptlock_ptr(): the split page-table lock of a page-table page. */
export function ptlockOf(core: Core, table: number): SpinLock {
  // Walks lock the same table page after page: the last lookup is kept (ptlockFree() drops it).
  if (core.lastPtlTable === table) return core.lastPtl!;
  let l = core.ptlocks.get(table);
  if (!l) {
    l = new SpinLock(`ptl of table 0x${table.toString(16)}`);
    core.ptlocks.set(table, l);
  }
  core.lastPtlTable = table;
  core.lastPtl = l;
  return l;
}

/** Models pmd_lock(): take the PMD lock of the PMD table `pmdT`; returns it for the unlock. */
export function pmdLock(core: Core, pmdT: number, site: string): SpinLock {
  const l = ptlockOf(core, pmdT);
  l.lock(core.sched, site);
  return l;
}

/** Models pte_offset_map_lock()'s lock: the PTE lock of PTE table `pteT`. */
export function pteLock(core: Core, pteT: number, site: string): SpinLock {
  const l = ptlockOf(core, pteT);
  l.lock(core.sched, site);
  return l;
}

/** Models spin_unlock(ptl). */
export function ptlUnlock(core: Core, l: SpinLock, site: string): void {
  l.unlock(core.sched, site);
}

/**
 * Models lockdep_assert_held(ptl) / assert_spin_locked(): the current task must hold the
 * page-table lock of `table`. A model bug otherwise (a path of the model forgot the lock).
 */
export function assertPtlHeld(core: Core, table: number, fn: string): void {
  const l = core.lastPtlTable === table ? core.lastPtl : core.ptlocks.get(table);
  if (!l || l.owner !== core.sched.current) ptlNotHeld(core, table, fn);
}

/** The model bug of {@link assertPtlHeld} (out of line, keeping the per-page check small). */
function ptlNotHeld(core: Core, table: number, fn: string): never {
  throw new ModelBug(`${fn}: ptl of table 0x${table.toString(16)} not held by ${core.sched.current.name}`);
}

/** Models pagetable_dtor(): a freed page-table page must not have its lock held. */
export function ptlockFree(core: Core, table: number): void {
  const l = core.ptlocks.get(table);
  if (!l) return;
  if (l.owner)
    throw new KernelBug('pagetable_dtor', `freeing page table 0x${table.toString(16)} with its lock held`, [
      `  held by ${l.owner.name} since ${l.site}`,
    ]);
  core.ptlocks.delete(table);
  if (core.lastPtlTable === table) {
    core.lastPtlTable = -1;
    core.lastPtl = null;
  }
}

/** Records the current task as owner of a folio lock just taken. */
export function folioLockTaken(core: Core, head: number): void {
  const t = core.sched.current;
  core.folioLockOwners.set(head, t);
}

/** Forgets a folio lock's owner at unlock (any task may unlock a folio, as in the kernel). */
export function folioLockDropped(core: Core, head: number): void {
  core.folioLockOwners.forget(head);
}

/** Models folio_lock(): sleep until the folio is unlocked, then lock it. */
export function* folioLockWait(core: Core, head: number, site: string): KGen {
  const m = core.map;
  const owner = core.folioLockOwners.get(head);
  if (owner === core.sched.current && m.flags[head] & PG_locked)
    throw new KernelBug('folio_lock', `folio already locked by the same task at ${site} (self-deadlock)`, [
      dumpFolio(core, head),
    ]);
  yield* waitEvent(
    `folio lock of 0x${head.toString(16)}`,
    () => !(m.flags[head] & PG_locked),
    () => {
      const o = core.folioLockOwners.get(head);
      return o ? [o] : [];
    },
  );
  m.flags[head] |= PG_locked;
  folioLockTaken(core, head);
  core.events.folioLocks++;
}

/**
 * Models migration_entry_wait_on_locked() / folio_wait_locked(): sleep until the folio `head`
 * (the one a migration entry points to) is unlocked. The caller then retries its fault.
 */
export function* folioWaitLocked(core: Core, head: number, what: string): KGen {
  const m = core.map;
  const owners = core.folioLockOwners;
  // Woken by the next folio_unlock() (folio_wake_bit()), not by finding the folio unlocked: the
  // folio, or a new one at its pfn, may be locked again before this task runs.
  const unlocks = owners.unlocks(head);
  yield* waitEvent(
    `${what} (folio 0x${head.toString(16)} unlock)`,
    () => !(m.flags[head] & PG_locked) || m.head[head] !== head || owners.unlocks(head) !== unlocks,
    () => {
      const o = core.folioLockOwners.get(head);
      return o ? [o] : [];
    },
  );
}
