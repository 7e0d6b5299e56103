/**
 * Allocations that must not fail (__GFP_NOFAIL), from kernel code that runs for a process (a
 * driver's release or eviction path).
 */
import type { Core } from '../core.js';
import { allocFolio } from '../folio.js';
import { oomCurrent, oomTasks, outOfMemory } from '../oom.js';
import { ALLOC_NO_WATERMARKS } from '../phys/buddy.js';
import { LivelockFinding } from '../sched/findings.js';
import { spinRetry } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import { tryToFreePages } from './direct-reclaim.js';

/** Model-only: slow-path passes after which a __GFP_NOFAIL allocation that got nothing is a livelock finding. */
export const NOFAIL_PASS_BOUND = 10_000;

/**
 * Models alloc_pages(gfp | __GFP_NOFAIL, order) (mm/page_alloc.c __alloc_pages_slowpath()) by the
 * running task: the allocation; when it fails, direct reclaim (tryToFreePages()) and again if
 * that freed memory; else __alloc_pages_may_oom(): out_of_memory() for the running task's
 * process, or for a kernel thread (outOfMemory(): a dying process is left to exit and gets the
 * reaper, vm.oom_kill_allocating_task kills the allocating process, else select_bad_process(),
 * which waits while an earlier victim may still free memory), then the allocation from the
 * reserves (ALLOC_NO_WATERMARKS, __alloc_pages_cpuset_fallback()); and round again after a busy
 * retry (cond_resched(); goto retry), since __GFP_NOFAIL never returns NULL. Returns the folio's
 * head pfn. After {@link NOFAIL_PASS_BOUND} passes that got nothing (nothing to reclaim, the
 * victims freed nothing, the reserves are empty) the kernel would loop for ever: a
 * LivelockFinding naming `site` and what the OOM killer last did. With no process left to kill,
 * out_of_memory() panics.
 */
export function* allocFolioNoFail(core: Core, order: number, zeroed: boolean, site: string): KGen<number> {
  for (let pass = 0; ; pass++) {
    const pfn = allocFolio(core, order, zeroed);
    if (pfn >= 0) return pfn;
    if ((yield* tryToFreePages(core)).progress > 0) continue;
    const proc = oomCurrent(core);
    // The victim exits in a task of its own: this path may hold locks its exit takes (a driver's
    // eviction holds the device folios' locks, and the victim's release of its file evicts too).
    const victim = yield* outOfMemory(core, proc, oomTasks(core), 0, site, false);
    const reserve = allocFolio(core, order, zeroed, ALLOC_NO_WATERMARKS);
    if (reserve >= 0) return reserve;
    if (pass >= NOFAIL_PASS_BOUND)
      throw new LivelockFinding(
        `${site}: a __GFP_NOFAIL allocation of order ${order} got no page in ${pass} passes of reclaim and OOM kills` +
          (victim
            ? ` (the OOM killer's victim: pid ${victim.pid}${victim.mm.oomSkip ? ', which the OOM reaper gave up on' : ''})`
            : ''),
      );
    yield* spinRetry(core.sched, `${site}: __GFP_NOFAIL allocation, retry`);
  }
}
