/**
 * The page allocator's slow path behind a fault that ran out of memory (mm/page_alloc.c
 * __alloc_pages_slowpath()), for the faults the kernel takes on a process's behalf: GUP's
 * faultin_page() (pins, MADV_POPULATE_*), hmm_range_fault()'s hmm_vma_fault(), swapoff's
 * unuse_pte_range() swap-in.
 *
 * The model's fault handlers allocate without the slow path and return VM_FAULT_OOM when the
 * allocation fails; the caller then runs what the allocator would have run before failing:
 * direct reclaim, then __alloc_pages_may_oom() -> out_of_memory(). An order-0 allocation (every
 * allocation these faults make that the allocator retries: a THP allocation is
 * __GFP_NORETRY-light and falls back to small pages) keeps retrying while the OOM killer makes
 * progress, and fails only when the allocating task is itself the victim (tsk_is_oom_victim():
 * its allocations already took what they could of the reserves, ALLOC_OOM in allocPages(), and
 * the slow path's `goto nopage` ends them).
 */
import type { Core } from '../core.js';
import { oomCurrent, oomTasks, outOfMemory } from '../oom.js';
import { spinRetry } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import { fatalSignalPending } from '../signal.js';
import { tryToFreePages } from './direct-reclaim.js';

/**
 * Model-only: an order-0 allocation would fail now (no free page, or the zone's failure hook
 * says so): a VM_FAULT_OOM then stands for an allocation that ran out of memory (the allocator's
 * OOM killer is the caller's to run), not one a handler failed with memory to spare.
 */
function memoryShort(core: Core): boolean {
  return core.zone.nrFree <= core.zone.minFree || core.zone.failHook?.(0) === true;
}

/**
 * Model-only: whether the VM_FAULT_OOM of a fault the running task began with `short` allocation
 * failures (Task.allocShortFailures) stands for an allocation that ran out of memory: memory is
 * short now, or an allocation of the fault failed for lack of it (even if the handler gave the
 * memory back, as a device THP's small-page fallback does). A handler that failed with memory to
 * spare (test_hmm's HMM_DMIRROR_FLAG_FAIL_ALLOC) never reached the allocator's slow path.
 */
export function faultRanOutOfMemory(core: Core, short: number): boolean {
  return memoryShort(core) || core.sched.current.allocShortFailures !== short;
}

/**
 * Models __alloc_pages_slowpath() after the allocation of a fault taken on a process's behalf
 * failed (VM_FAULT_OOM; `short` as for {@link faultRanOutOfMemory}): true when the fault should
 * be retried, false when it fails (the caller returns -ENOMEM).
 *
 * - A handler that failed with memory to spare: no slow path, the fault fails.
 * - __alloc_pages_direct_reclaim(): try_to_free_pages(); retry when it freed memory.
 * - A task with a fatal signal pending, or already an OOM victim, fails (the kernel's `goto
 *   nopage` for a victim whose share of the reserves, ALLOC_OOM, is used up; GUP then stops on
 *   the signal).
 * - __alloc_pages_may_oom(): out_of_memory() for the running task's process (oomCurrent(); null
 *   for a kernel thread). When it chose the allocating process, the fault fails (the victim's
 *   allocations fail; the process dies on its way back to user space). Otherwise (another process
 *   was killed, or the killer waits for an earlier victim) the allocator retries: the task spins
 *   once (spinRetry(): the victim's exit and the reaper run on the other CPUs), then the fault is
 *   retried. The victim exits in a task of its own: the caller holds the mmap_lock.
 *
 * The caller bounds its retries (a livelock finding). May throw out_of_memory()'s panic.
 */
export function* faultOomSlowpath(core: Core, addr: number, via: string, short: number): KGen<boolean> {
  if (!faultRanOutOfMemory(core, short)) return false;
  if ((yield* tryToFreePages(core)).progress > 0) return true;
  const current = oomCurrent(core);
  // A kernel thread (null) has no signals and is never a victim.
  if (current !== null && (fatalSignalPending(core) || current.oomVictim)) return false;
  const victim = yield* outOfMemory(core, current, oomTasks(core), addr, via, false);
  if (victim !== null && victim === current) return false;
  yield* spinRetry(core.sched, `${via}: allocation retry after the OOM kill`);
  return true;
}
