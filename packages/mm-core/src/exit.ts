/**
 * The global-init check of do_exit() (kernel/exit.c): when the last thread of global init exits
 * (exit(), exit_group(), or a fatal signal that got through, e.g. the SIGSEGV of a bad access,
 * which force_sig_info_to_task() lets through by clearing SIGNAL_UNKILLABLE), the kernel panics
 * "to get a useable coredump", before exit_mm() tears anything down.
 */
import { KernelBug } from './kernel-bug.js';
import { isGlobalInit } from './signal.js';

/**
 * Models the exit code do_exit() prints for global init: `tsk->signal->group_exit_code ?: code`.
 * A fatal signal makes the group exit code the signal number (do_group_exit(signr); no 0x80
 * core-dump bit: the model dumps no core); exit(n) / exit_group(n) pass `(n & 0xff) << 8`.
 */
export function initExitCode(code: number, signal: number): number {
  return signal ? signal & 0x7f : (code & 0xff) << 8;
}

/**
 * Models the panic of do_exit() (kernel/exit.c) for global init:
 * `if (unlikely(is_global_init(tsk))) panic("Attempted to kill init! exitcode=0x%08x\n", ...)`,
 * reached once the last thread of the group is dead (group_dead). Returns the {@link KernelBug}
 * of kind 'panic' to throw, or null for any other task. The dump is the call trace the kernel
 * prints: do_group_exit() from get_signal() for a fatal signal, from sys_exit_group() for exit.
 */
export function doExitInitPanic(t: { readonly pid: number }, code: number, signal: number): KernelBug | null {
  if (!isGlobalInit(t)) return null;
  const exitcode = initExitCode(code, signal).toString(16).padStart(8, '0');
  const what = `Attempted to kill init! exitcode=0x${exitcode}`;
  return new KernelBug({
    kind: 'panic',
    what,
    fn: 'do_exit',
    file: 'kernel/exit.c',
    why: signal
      ? `global init (pid ${t.pid}) was killed by signal ${signal}, and do_exit() panics when the last thread of global init exits`
      : `global init (pid ${t.pid}) called exit_group(${code & 0xff}), and do_exit() panics when the last thread of global init exits`,
    dump: [
      `CPU: 0 PID: ${t.pid} Comm: init`,
      'Call Trace:',
      ' panic',
      ' do_exit',
      ' do_group_exit',
      signal ? ' get_signal' : ' __x64_sys_exit_group',
    ].join('\n'),
  });
}
