/**
 * The OOM killer (mm/oom_kill.c) as far as the model needs it: which process a failed user
 * fault kills, and the panic when none can be killed.
 *
 * The model's policy is the kernel's with `vm.oom_kill_allocating_task = 1`: the task whose
 * fault could not get memory (VM_FAULT_OOM) is the victim, unless it is unkillable (global
 * init); then select_bad_process() picks the process with the highest oom_badness(), and with
 * none left the kernel panics. It runs only after direct reclaim (mm/direct-reclaim.ts) freed
 * nothing; there is no oom_score_adj (always 0), no memcg or cpuset constraint. A victim that
 * does not exit at once gets the OOM reaper (oom-reaper.ts).
 */
import { PAGE_SIZE, SIGKILL } from './constants.js';
import type { Core } from './core.js';
import { KernelBug } from './kernel-bug.js';
import type { MmStruct } from './mm/types.js';
import { queueOomReaper } from './oom-reaper.js';
import type { KGen } from './sched/task.js';
import { isGlobalInit } from './signal.js';

/** What the OOM killer sees of a task (a `Process` is one). */
export interface OomTask {
  readonly pid: number;
  readonly state: 'running' | 'zombie' | 'reaped';
  readonly mm: MmStruct;
  /** A fatal signal is pending (the task is already dying). */
  fatalSignal: number;
  /** Syscalls of the task's threads in the kernel (a SIGKILL then only marks it). */
  readonly inKernel: number;
  /** Models do_exit() with a terminating signal. */
  exitGen(code: number, signal?: number): KGen;
}

/** Models LONG_MIN as oom_badness() returns it for a task that must not be chosen. */
export const OOM_BADNESS_NONE = Number.NEGATIVE_INFINITY;

/**
 * Models oom_unkillable_task() (mm/oom_kill.c): global init and kernel threads are never OOM
 * victims. The model has no kernel threads with an mm, so this is is_global_init().
 */
export function oomUnkillableTask(t: { readonly pid: number }): boolean {
  return isGlobalInit(t);
}

/**
 * Models oom_badness() (mm/oom_kill.c): get_mm_rss() + MM_SWAPENTS + page-table pages
 * (mm_pgtables_bytes() / PAGE_SIZE), with oom_score_adj 0; LONG_MIN ({@link OOM_BADNESS_NONE})
 * for an unkillable task or one whose mm is gone (find_lock_task_mm() fails after exit_mm()).
 */
export function oomBadness(t: OomTask): number {
  if (oomUnkillableTask(t) || t.state !== 'running') return OOM_BADNESS_NONE;
  const r = t.mm.rss;
  return (
    r.MM_FILEPAGES +
    r.MM_ANONPAGES +
    r.MM_SHMEMPAGES +
    r.MM_SWAPENTS +
    Math.floor(t.mm.pgtablesBytes / PAGE_SIZE)
  );
}

/**
 * Models select_bad_process() / oom_evaluate_task() (mm/oom_kill.c): over every process in
 * creation order (for_each_process()), skip unkillable ones and keep the highest badness; a
 * later task with equal points replaces the chosen one (`points < chosen_points` skips). Null
 * when nothing can be chosen. Simplified: a task already dying (a pending fatal signal) is
 * skipped, where the kernel aborts the selection and lets the allocation retry until it exits.
 */
export function selectBadProcess(tasks: Iterable<OomTask>): OomTask | null {
  let chosen: OomTask | null = null;
  let chosenPoints = OOM_BADNESS_NONE;
  for (const t of tasks) {
    if (oomUnkillableTask(t) || t.state !== 'running' || t.fatalSignal !== 0) continue;
    const points = oomBadness(t);
    if (points === OOM_BADNESS_NONE || points < chosenPoints) continue;
    chosen = t;
    chosenPoints = points;
  }
  return chosen;
}

/**
 * Models __oom_kill_process() (mm/oom_kill.c): SIGKILL to the victim (do_send_sig_info() with
 * force, which global init never receives: callers never pass it), count OOM_KILL. A victim with
 * a thread in the kernel exits when that thread returns to user space. One in user space exits at
 * once: `inline`, in the caller's task (a user fault, which holds nothing), or else in a task of
 * its own (the kernel path that allocates may hold locks the victim's exit takes, and the victim
 * exits in its own context in the kernel too). Unless it exited inline, queue_oom_reaper() queues
 * the OOM reaper on its mm ({@link queueOomReaper}).
 */
export function* oomKillProcess(core: Core, victim: OomTask, inline = true): KGen {
  core.vmstat.oom_kill++;
  if (victim.inKernel === 0 && inline) {
    // The victim's exit runs here, whole: a reaper queued now would find MMF_OOM_SKIP.
    yield* victim.exitGen(0, SIGKILL);
    return;
  }
  victim.fatalSignal ||= SIGKILL;
  if (victim.inKernel === 0)
    core.sched.spawn(`oom victim ${victim.pid} exits`, victimExit(core, victim), {
      kind: 'kthread',
      owner: victim,
    });
  // queue_oom_reaper(): the victim's memory comes back even if it is stuck in the kernel.
  queueOomReaper(core, victim.mm);
}

/**
 * Model-only: the exit of an OOM victim in a task of its own. Nobody joins that task, so what its
 * exit throws is recorded as a WARN (the explorer reports every WARN it does not know).
 */
function* victimExit(core: Core, victim: OomTask): KGen {
  try {
    yield* victim.exitGen(0, SIGKILL);
  } catch (e) {
    core.warn(`exit of OOM victim pid ${victim.pid} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Models out_of_memory() (mm/oom_kill.c) for an allocation of `current` that failed at `addr`
 * (a user fault that got VM_FAULT_OOM, or a page MAP_POPULATE faults in): with the model's
 * oom_kill_allocating_task policy, `current` is killed when it may be; global init is not
 * ("oom_unkillable_task(current)"), so select_bad_process() picks another process among `tasks`.
 * Returns the process killed. With no killable process the kernel prints "Out of memory and no
 * killable processes..." and panics ("System is deadlocked on memory"): a {@link KernelBug} of
 * kind 'panic' is thrown and the machine is left as it is.
 */
export function* outOfMemory(
  core: Core,
  current: OomTask,
  tasks: Iterable<OomTask>,
  addr = 0,
  /** What allocated: a user fault (the default), or e.g. __mm_populate() for MAP_POPULATE. */
  via = 'user fault',
  /** Whether a victim in user space exits in the caller's task ({@link oomKillProcess}). */
  inline = true,
): KGen<OomTask> {
  if (!oomUnkillableTask(current) && current.state === 'running') {
    // "Out of memory (oom_kill_allocating_task)"
    yield* oomKillProcess(core, current, inline);
    return current;
  }
  const victim = selectBadProcess(tasks);
  if (!victim)
    throw new KernelBug({
      kind: 'panic',
      what: 'System is deadlocked on memory',
      fn: 'out_of_memory',
      file: 'mm/oom_kill.c',
      why: 'out of memory and no killable processes (global init is never an OOM victim)',
      dump: [
        `pid ${current.pid} invoked oom-killer (${via} at 0x${addr.toString(16)}), oom_score_adj=0`,
        'Out of memory and no killable processes...',
      ].join('\n'),
    });
  yield* oomKillProcess(core, victim, inline);
  return victim;
}
