import type { Core } from './core.js';

/**
 * Models fatal_signal_pending(current) (include/linux/sched/signal.h): the process of the task
 * running kernel code has a fatal signal pending — SIGKILL, or a signal whose default action is
 * to terminate and that the process does not handle (complete_signal() turns it into a group
 * SIGKILL). The model's processes install no handlers, so every terminating signal counts.
 * Long kernel loops check it where the kernel does (__get_user_pages() per page, __mm_populate(),
 * a user access taking the signal at the next interrupt) and stop with -EINTR.
 */
export function fatalSignalPending(core: Core): boolean {
  const owner: unknown = core.sched.current.owner;
  if (owner === null || typeof owner !== 'object') return false;
  const proc: unknown = 'process' in owner ? (owner as { process: unknown }).process : owner;
  if (proc === null || typeof proc !== 'object' || !('fatalSignal' in proc)) return false;
  return (proc as { fatalSignal: number }).fatalSignal !== 0;
}

/**
 * Models is_global_init() (include/linux/sched.h): the task is pid 1 of the initial pid
 * namespace. The model has one pid namespace and `Kernel.allocPid()` counts from 1 without
 * reuse, so the first process spawned on a Kernel is global init.
 */
export function isGlobalInit(t: { readonly pid: number }): boolean {
  return t.pid === 1;
}

/**
 * Models sig_task_ignored() (kernel/signal.c), which prepare_signal() asks before queueing a
 * signal kill() sends: SIGKILL and SIGSTOP may never be sent to global init, and init (its
 * signal struct is SIGNAL_UNKILLABLE) ignores every other signal whose handler is SIG_DFL. The
 * model's processes install no handlers, so global init ignores every signal sent to it and no
 * other process ignores one. kill() still returns 0: the signal is dropped, not refused.
 */
export function sigTaskIgnored(t: { readonly pid: number }, _sig: number): boolean {
  return isGlobalInit(t);
}
