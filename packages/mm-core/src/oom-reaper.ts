/**
 * The OOM reaper (mm/oom_kill.c): after the OOM killer has chosen a victim, the oom_reaper
 * kthread unmaps the victim's private memory without waiting for the victim to exit, so that the
 * memory comes back even when the victim is stuck in the kernel.
 *
 * It runs under mmap_read_trylock() (never waiting for the lock), skips an mm that exit_mmap()
 * has already torn down (MMF_OOM_SKIP), marks the mm unstable (MMF_UNSTABLE) and zaps every
 * private VMA under a non-blockable mmu-notifier range. A notifier that cannot act without
 * sleeping refuses the range (-EAGAIN) and that VMA is left for the next attempt.
 *
 * Model differences: time is not modelled, so OOM_REAPER_DELAY (the reaper starts 2 s after the
 * kill) and schedule_timeout_idle(HZ/10) between attempts are preemption points (another task
 * may run there, as much as the schedule says). Each victim's reaping is a task of its own
 * ({@link queueOomReaper}) rather than an item on the oom_reaper kthread's list.
 */

import type { Core } from './core.js';
import { mmapReadTrylock, mmapReadUnlock } from './mm/locking.js';
import { mmuNotifierInvalidateRangeEnd, mmuNotifierInvalidateRangeStartNonblock } from './mm/notifier.js';
import {
  MMU_NOTIFY_CLEAR,
  type MmStruct,
  type MmuNotifierRange,
  VM_HUGETLB,
  VM_PFNMAP,
  VM_SHARED,
} from './mm/types.js';
import { zapRange } from './mm/zap.js';
import { type KGen, RESCHED, type Task } from './sched/task.js';

/** Models MAX_OOM_REAP_RETRIES (mm/oom_kill.c): attempts of oom_reap_task_mm() per victim. */
export const MAX_OOM_REAP_RETRIES = 10;

/**
 * Models __oom_reap_task_mm() (mm/oom_kill.c), with the mmap_lock held for read: set
 * MMF_UNSTABLE, then from the top of the address space down (mas_for_each_rev(): less contention
 * with the exiting victim, which unmaps from the bottom) zap every VMA that is neither hugetlb
 * nor VM_PFNMAP and is anonymous or private (shared file pages are not the victim's to free),
 * each under an MMU_NOTIFY_CLEAR range started with mmu_notifier_invalidate_range_start_nonblock().
 * A VMA whose range a notifier refuses is skipped. True when every such VMA was zapped.
 */
export function* oomReapTaskMmVmas(core: Core, mm: MmStruct): KGen<boolean> {
  let ret = true;
  mm.unstable = true;
  // The VMAs cannot change under the mmap_lock held for read: a snapshot, highest first.
  const vmas = [...mm.vmas].reverse();
  for (const vma of vmas) {
    if (vma.flags & (VM_HUGETLB | VM_PFNMAP)) continue;
    if (!vma.isAnonymous && vma.flags & VM_SHARED) continue;
    const range: MmuNotifierRange = {
      mm,
      start: vma.start,
      end: vma.end,
      event: MMU_NOTIFY_CLEAR,
      owner: null,
      nonblock: true,
    };
    if (mmuNotifierInvalidateRangeStartNonblock(range)) {
      ret = false;
      continue;
    }
    try {
      yield* zapRange(core, vma, vma.start, vma.end);
    } finally {
      mmuNotifierInvalidateRangeEnd(range);
    }
  }
  return ret;
}

/**
 * Models oom_reap_task_mm() (mm/oom_kill.c): false when the mmap_lock cannot be had for read
 * without waiting (try again later); true without reaping when MMF_OOM_SKIP is set (exit_mmap()
 * got there first: checked under the lock, which orders it against exit_mmap()'s write-lock
 * cycle); else the result of __oom_reap_task_mm().
 */
export function* oomReapTaskMm(core: Core, mm: MmStruct): KGen<boolean> {
  if (!mmapReadTrylock(core, mm, 'oom_reap_task_mm')) return false;
  try {
    if (mm.oomSkip) return true;
    return yield* oomReapTaskMmVmas(core, mm);
  } finally {
    mmapReadUnlock(core, mm, 'oom_reap_task_mm');
  }
}

/** What {@link oomReapTask} did: how many attempts it made and whether the last one reaped all. */
export interface OomReapResult {
  readonly attempts: number;
  readonly reaped: boolean;
}

/**
 * Models oom_reap_task() (mm/oom_kill.c), the oom_reaper kthread's work for one victim mm: up to
 * MAX_OOM_REAP_RETRIES attempts of oom_reap_task_mm() with schedule_timeout_idle(HZ/10) between
 * them, then MMF_OOM_SKIP: the OOM killer no longer waits for this mm.
 */
export function* oomReapTask(core: Core, mm: MmStruct): KGen<OomReapResult> {
  // queue_oom_reaper(): the reaper starts OOM_REAPER_DELAY after the kill.
  if (core.sched.preempt('queue_oom_reaper: OOM_REAPER_DELAY')) yield RESCHED;
  let attempts = 0;
  let reaped = false;
  while (attempts++ < MAX_OOM_REAP_RETRIES) {
    reaped = yield* oomReapTaskMm(core, mm);
    if (reaped) break;
    if (core.sched.preempt('oom_reap_task: schedule_timeout_idle(HZ/10)')) yield RESCHED;
  }
  // Reaped or not (the kernel's pr_info("oom_reaper: unable to reap pid:...") is `reaped: false`),
  // the OOM killer stops waiting for this mm.
  mm.oomSkip = true;
  return { attempts: Math.min(attempts, MAX_OOM_REAP_RETRIES), reaped };
}

/**
 * Models queue_oom_reaper() (mm/oom_kill.c): the reaper's work on `mm`, as a kernel task of its
 * own, recorded in `core.oomReapers` (finished ones are dropped) so that whoever runs the machine
 * can wait for it. Returns the task, or null when the mm was queued before (MMF_OOM_REAP_QUEUED:
 * an mm is reaped once).
 */
export function queueOomReaper(core: Core, mm: MmStruct): Task | null {
  if (mm.oomReapQueued) return null;
  mm.oomReapQueued = true;
  const q = core.oomReapers;
  for (let i = q.length - 1; i >= 0; i--) if (q[i].done && q[i].error === undefined) q.splice(i, 1);
  const t = core.sched.spawn(`oom_reaper (mm ${mm.id})`, oomReapTask(core, mm), { kind: 'kthread' });
  q.push(t);
  return t;
}
