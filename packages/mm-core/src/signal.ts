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
