import type { Core } from '../core.js';
import { KernelBug } from '../kernel-bug.js';
import type { KGen } from '../sched/task.js';
import { khugepagedExit } from './khugepaged-state.js';
import { mmapReadLock, mmapReadUnlock, mmapWriteLock, mmapWriteUnlock } from './locking.js';
import { removeVma } from './mmap.js';
import { mmuNotifierRelease, ULONG_MAX, withInvalidation } from './notifier.js';
import { freeEmptyTables, freeTable } from './pgtable.js';
import { MMU_NOTIFY_UNMAP, type MmStruct } from './types.js';
import { zapRange } from './zap.js';

/**
 * Models exit_mmap() + check_mm(): mmu_notifier_release() (interval notifiers get an
 * MMU_NOTIFY_RELEASE invalidation, hlist ones ->release()); then with the mmap_lock held for
 * read, zap every VMA under one MMU_NOTIFY_UNMAP invalidation of [0, ULONG_MAX) (unmap_vmas(),
 * not sent when there is no VMA); then for write, free every page table and the PGD and remove
 * the VMAs. Interval subscriptions stay until their drivers remove them. Throws a model bug if
 * rss counters or page-table bytes are not back to zero.
 */
export function* exitMmap(core: Core, mm: MmStruct): KGen {
  const all = [...mm.vmas];
  yield* mmuNotifierRelease(mm);
  yield* mmapReadLock(core, mm, 'exit_mmap');
  try {
    if (all.length)
      yield* withInvalidation(mm, 0, ULONG_MAX, MMU_NOTIFY_UNMAP, null, function* () {
        for (const v of all) yield* zapRange(core, v, v.start, v.end);
      });
  } finally {
    mmapReadUnlock(core, mm, 'exit_mmap');
  }
  // MMF_OOM_SKIP: the memory is freed; the OOM killer and reaper leave this mm alone.
  mm.oomSkip = true;
  yield* mmapWriteLock(core, mm, 'exit_mmap');
  for (const v of all) removeVma(core, v);
  freeEmptyTables(core, mm, 0, 2 ** 47);
  if (mm.pgd >= 0) freeTable(core, mm, mm.pgd, true);
  mm.pgd = -1;
  mm.hugeZeroRef = false;
  mmapWriteUnlock(core, mm, 'exit_mmap');
  const r = mm.rss;
  if (
    r.MM_ANONPAGES ||
    r.MM_FILEPAGES ||
    r.MM_SHMEMPAGES ||
    r.MM_SWAPENTS ||
    mm.pgtablesBytes ||
    mm.deposits.size
  ) {
    throw new KernelBug(
      'check_mm',
      `Bad rss-counter state mm:${mm.id} anon=${r.MM_ANONPAGES} file=${r.MM_FILEPAGES} ` +
        `shmem=${r.MM_SHMEMPAGES} swapents=${r.MM_SWAPENTS} pgtables_bytes=${mm.pgtablesBytes} deposits=${mm.deposits.size}`,
    );
  }
}

/** Models mmget(): one more user of the address space. */
export function mmget(mm: MmStruct): void {
  mm.users++;
}

/** Models mmget_not_zero(): take a user reference unless the mm is already being torn down. */
export function mmgetNotZero(mm: MmStruct): boolean {
  if (mm.users <= 0) return false;
  mm.users++;
  return true;
}

/**
 * Models mmput(): drop a user reference; the last one tears the address space down (__mmput():
 * khugepaged_exit(), then exit_mmap(), then the mm leaves init_mm.mmlist).
 */
export function* mmput(core: Core, mm: MmStruct): KGen {
  mm.users--;
  if (mm.users !== 0) return;
  yield* khugepagedExit(core, mm);
  yield* exitMmap(core, mm);
  // __mmput(): off init_mm.mmlist once the address space is gone.
  core.mmlist.delete(mm);
}
