/**
 * The OOM killer (mm/oom_kill.c) as far as the model needs it: which process an allocation that
 * cannot get memory kills, when it waits for an earlier victim instead, and the panic when none
 * can be killed.
 *
 * out_of_memory() is the kernel's: a dying allocating task is left to exit (task_will_free_mem()),
 * then `vm.oom_kill_allocating_task` ({@link oomSysctls}; the model's machines boot with 1, the
 * kernel's default is 0) kills the allocating task, else select_bad_process() picks the process
 * with the highest oom_badness(), and gives up the search (kills nothing, the allocation retries)
 * while an earlier victim has not been reaped or exited (MMF_OOM_SKIP). With none left the kernel
 * panics. It runs only after direct reclaim (mm/direct-reclaim.ts) freed nothing; there is no
 * oom_score_adj (always 0), no memcg or cpuset constraint, no core dumps. A victim that does not
 * exit at once gets the OOM reaper (oom-reaper.ts).
 */
import { EINVAL, PAGE_SIZE, SIGKILL } from './constants.js';
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
  /** Models tsk_is_oom_victim(): signal->oom_mm, set by mark_oom_victim() and kept until the task is freed. */
  oomVictim: boolean;
  /** Models task->mm != NULL (find_lock_task_mm() succeeds): false once exit_mm() has dropped it. */
  readonly hasMm: boolean;
  /** Models oom_task_origin() (signal->oom_flag_origin, set by swapoff(2)): the OOM killer's first choice. */
  oomFlagOrigin?: boolean;
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
  if (oomUnkillableTask(t) || !t.hasMm) return OOM_BADNESS_NONE;
  const r = t.mm.rss;
  return (
    r.MM_FILEPAGES +
    r.MM_ANONPAGES +
    r.MM_SHMEMPAGES +
    r.MM_SWAPENTS +
    Math.floor(t.mm.pgtablesBytes / PAGE_SIZE)
  );
}

/** Models LONG_MAX as oom_evaluate_task() scores an oom_task_origin() task. */
export const OOM_BADNESS_ORIGIN = Number.MAX_VALUE;

/**
 * Models set_current_oom_origin() / clear_current_oom_origin() (include/linux/oom.h) for the
 * running task's process (nothing for a kernel thread).
 */
export function setCurrentOomOrigin(core: Core, on: boolean): void {
  const current = oomCurrent(core);
  if (current) current.oomFlagOrigin = on;
}

/** Models oc->chosen == (void *)-1UL: select_bad_process() gave up because an earlier victim may still free memory. */
export const OOM_SCAN_ABORT = 'abort';

/**
 * Models select_bad_process() / oom_evaluate_task() (mm/oom_kill.c): over every process in
 * creation order (for_each_process()), skip unkillable ones; an OOM victim ends the search
 * ({@link OOM_SCAN_ABORT}: "Don't allow any other task to have access to the reserves") unless
 * its mm has MMF_OOM_SKIP (reaped, or exit_mmap() ran), which is skipped; a task with
 * oom_task_origin() (swapoff(2)'s) scores LONG_MAX; else keep the highest
 * badness, a later task with equal points replacing the chosen one (`points < chosen_points`
 * skips). Null when nothing can be chosen.
 */
export function selectBadProcess(tasks: Iterable<OomTask>): OomTask | null | typeof OOM_SCAN_ABORT {
  let chosen: OomTask | null = null;
  let chosenPoints = OOM_BADNESS_NONE;
  for (const t of tasks) {
    if (oomUnkillableTask(t)) continue;
    if (t.oomVictim) {
      if (t.mm.oomSkip) continue;
      return OOM_SCAN_ABORT;
    }
    // oom_task_origin(): "marked to be killed first if it triggers an oom" (points = LONG_MAX).
    const points = t.oomFlagOrigin ? OOM_BADNESS_ORIGIN : oomBadness(t);
    if (points === OOM_BADNESS_NONE || points < chosenPoints) continue;
    chosen = t;
    chosenPoints = points;
  }
  return chosen;
}

/**
 * Models task_will_free_mem() (mm/oom_kill.c): the task still has its mm, is dying
 * (__task_will_free_mem(): SIGNAL_GROUP_EXIT, which a fatal signal sets when it is sent, or
 * exiting), and the OOM reaper has not given up on that mm (MMF_OOM_SKIP). The kernel also
 * requires every other process sharing the mm to be dying; the model's processes never share an
 * mm (threads are of one process, and a driver's mmget() is not a process).
 */
export function taskWillFreeMem(t: OomTask): boolean {
  if (!t.hasMm) return false;
  if (t.fatalSignal === 0 && t.state === 'running') return false;
  return !t.mm.oomSkip;
}

/** Models mark_oom_victim() (mm/oom_kill.c): signal->oom_mm (tsk_is_oom_victim()) and TIF_MEMDIE. */
export function markOomVictim(t: OomTask): void {
  t.oomVictim = true;
}

/**
 * Models oom_kill_process() and __oom_kill_process() (mm/oom_kill.c): a victim that will free its
 * memory anyway (task_will_free_mem()) is only marked and gets the reaper; one whose mm is gone
 * ("OOM victim ... is already exiting. Skip killing the task") is left alone; else SIGKILL
 * (do_send_sig_info() with force, which global init never receives: callers never pass it),
 * count OOM_KILL, mark_oom_victim(). A victim with a thread in the kernel exits when that thread
 * returns to user space. One in user space exits at once: `inline`, in the caller's task (a user
 * fault, which holds nothing), or else in a task of its own (the kernel path that allocates may
 * hold locks the victim's exit takes, and the victim exits in its own context in the kernel too),
 * listed in `core.oomExits`: what that exit throws (out_of_memory()'s panic in its eviction, say)
 * is the task's error, which whoever runs the machine reports (Process.run(), the explorer).
 * Every kill queues the OOM reaper on its mm (queue_oom_reaper(), {@link queueOomReaper}); after
 * an inline exit it finds MMF_OOM_SKIP unless another user still holds the mm.
 */
export function* oomKillProcess(core: Core, victim: OomTask, inline = true): KGen {
  if (taskWillFreeMem(victim)) {
    markOomVictim(victim);
    queueOomReaper(core, victim.mm);
    return;
  }
  if (!victim.hasMm) return;
  core.vmstat.oom_kill++;
  markOomVictim(victim);
  if (victim.inKernel === 0 && victim.state === 'running' && inline) {
    // The victim's exit runs here; queue_oom_reaper() comes first, as at every kill: another
    // user of the mm (a driver's mmget(): nouveau's GPU fault worker) leaves exit_mmap() to the
    // last mmput(), and then the reaper is what brings the memory back.
    queueOomReaper(core, victim.mm);
    yield* victim.exitGen(0, SIGKILL);
    return;
  }
  const exiting = victim.fatalSignal !== 0 || victim.state !== 'running';
  victim.fatalSignal ||= SIGKILL;
  if (victim.inKernel === 0 && !exiting) {
    const q = core.oomExits;
    for (let i = q.length - 1; i >= 0; i--) if (q[i].done && q[i].error === undefined) q.splice(i, 1);
    q.push(
      core.sched.spawn(`oom victim ${victim.pid} exits`, victim.exitGen(0, SIGKILL), {
        kind: 'kthread',
        owner: victim,
      }),
    );
  }
  // queue_oom_reaper(): the victim's memory comes back even if it is stuck in the kernel.
  queueOomReaper(core, victim.mm);
}

/** Models the vm.* sysctls of mm/oom_kill.c the model has (vm_oom_kill_table). */
export interface OomSysctls {
  /**
   * Models sysctl_oom_kill_allocating_task: non-zero, the task whose allocation failed is the
   * victim rather than the process select_bad_process() picks. The kernel's default is 0; the
   * model's machines boot with 1 (a user fault that runs out of memory kills its own process,
   * which the explorer's oracle and the tests rely on).
   */
  oom_kill_allocating_task: number;
}

/** Models the machine the OOM killer walks: its task table (for_each_process()). */
export interface OomHost {
  readonly core: Core;
  readonly tasks: ReadonlyMap<number, object>;
}

interface OomState {
  readonly sysctl: OomSysctls;
  host: OomHost | undefined;
}

const oomStates = new WeakMap<Core, OomState>();

function oomState(core: Core): OomState {
  let s = oomStates.get(core);
  if (!s) {
    s = { sysctl: { oom_kill_allocating_task: 1 }, host: undefined };
    oomStates.set(core, s);
  }
  return s;
}

/** Models the vm.* OOM-killer sysctl variables of a machine; mutable, as the kernel's are. */
export function oomSysctls(core: Core): OomSysctls {
  return oomState(core).sysctl;
}

/**
 * Models a write to /proc/sys/vm/oom_kill_allocating_task (proc_dointvec(): one integer, any int
 * value): 0, or -EINVAL for anything else.
 */
export function oomKillAllocatingTaskWrite(core: Core, text: string): number {
  const m = /^\s*([+-]?\d+)\s*$/.exec(text);
  if (!m) return -EINVAL;
  const v = Number(m[1]);
  if (!Number.isSafeInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) return -EINVAL;
  oomState(core).sysctl.oom_kill_allocating_task = v;
  return 0;
}

function isOomTask(t: object): t is OomTask {
  return 'oomVictim' in t && 'exitGen' in t;
}

/**
 * Models `current` as out_of_memory() sees it for an allocation by the running task: the process
 * a user thread or a process's own task belongs to, or null for a kernel thread (and for a task
 * marked as running a kernel thread's work, Task.kthreadWork: nouveau's GPU fault worker).
 */
export function oomCurrent(core: Core): OomTask | null {
  const t = core.sched.current;
  if (t.kthreadWork > 0) return null;
  const owner = t.owner;
  if (typeof owner !== 'object' || owner === null) return null;
  if (isOomTask(owner)) return owner;
  const proc = 'process' in owner ? owner.process : null;
  return typeof proc === 'object' && proc !== null && isOomTask(proc) ? proc : null;
}

/** Models for_each_process() as the OOM killer walks it: every process of the machine, in creation order. */
export function oomTasks(core: Core): OomTask[] {
  const host = oomState(core).host;
  return host ? [...host.tasks.values()].filter(isOomTask) : [];
}

/** Model-only: hands the machine's task table to {@link oomTasks} (the Kernel does, at boot). */
export function registerOomHost(host: OomHost): void {
  oomState(host.core).host = host;
}

/**
 * Models out_of_memory() (mm/oom_kill.c) for an allocation of `current` (null: a kernel thread)
 * that failed at `addr` (a user fault that got VM_FAULT_OOM, a page MAP_POPULATE faults in, a
 * driver's __GFP_NOFAIL allocation): a `current` that will free its memory anyway
 * (task_will_free_mem()) is marked and gets the reaper, and nothing is killed; with
 * vm.oom_kill_allocating_task, `current` is killed if it still has its mm and is not global
 * init; else select_bad_process() picks among `tasks`, or gives up while an earlier victim may
 * still free memory. Returns the victim (`current` in the first case), or null when nothing was
 * killed and the allocation should retry. With no killable process the kernel prints "Out of
 * memory and no killable processes..." and panics ("System is deadlocked on memory"): a
 * {@link KernelBug} of kind 'panic' is thrown and the machine is left as it is.
 */
export function* outOfMemory(
  core: Core,
  current: OomTask | null,
  tasks: Iterable<OomTask>,
  addr = 0,
  /** What allocated: a user fault (the default), or e.g. __mm_populate() for MAP_POPULATE. */
  via = 'user fault',
  /** Whether a victim in user space exits in the caller's task ({@link oomKillProcess}). */
  inline = true,
): KGen<OomTask | null> {
  if (current && taskWillFreeMem(current)) {
    markOomVictim(current);
    queueOomReaper(core, current.mm);
    return current;
  }
  if (
    oomSysctls(core).oom_kill_allocating_task !== 0 &&
    current?.hasMm &&
    !oomUnkillableTask(current) &&
    // K21 (fix switch; v6.19 kills such a victim again, to no effect, for as long as it allocates).
    !(current.oomVictim && current.mm.oomSkip && core.fixed('K21'))
  ) {
    // "Out of memory (oom_kill_allocating_task)"
    yield* oomKillProcess(core, current, inline);
    return current;
  }
  const victim = selectBadProcess(tasks);
  if (victim === OOM_SCAN_ABORT) return null;
  if (!victim)
    throw new KernelBug({
      kind: 'panic',
      what: 'System is deadlocked on memory',
      fn: 'out_of_memory',
      file: 'mm/oom_kill.c',
      why: 'out of memory and no killable processes (global init is never an OOM victim)',
      dump: [
        `${current ? `pid ${current.pid}` : 'a kernel thread'} invoked oom-killer (${via} at 0x${addr.toString(16)}), oom_score_adj=0`,
        'Out of memory and no killable processes...',
      ].join('\n'),
    });
  yield* oomKillProcess(core, victim, inline);
  return victim;
}
