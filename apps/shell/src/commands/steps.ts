/**
 * Long commands in bounded steps: the shell's program does a big `write`, `check`, `migrate` or
 * `dread` as a loop of user accesses (at most {@link ACCESS_STEP_BYTES} each) or ioctls (at most
 * {@link IOCTL_STEP_BYTES} of range each), as a C program with a big buffer would. Between steps
 * the interactive shell shows progress and may deliver Ctrl-C (SIGINT, which kills the process);
 * the machine is consistent at every step boundary.
 */
import { type Process, SIGINT } from '@hmm-model/mm-core';
import { fmtSize } from '../format.js';
import { type CommandResult, fail } from '../result.js';
import type { Session } from '../session.js';
import { signalName } from '../signals.js';
import type { CommandSteps, Progress } from './types.js';

/** Bytes of one user access step (CPU loads or stores of `write`, `read`, `check`). */
export const ACCESS_STEP_BYTES = 16 << 20;
/** Bytes of range one dmirror or nouveau ioctl covers (`migrate`, `dread`, `dwrite`, `gmigrate`). */
export const IOCTL_STEP_BYTES = 64 << 20;
/** Pages `fault` touches between two progress points. */
export const FAULT_STEP_PAGES = 4096;

/** Runs a command's steps to the end (script mode, tests, the synchronous `run`). */
export function drive(steps: CommandSteps): CommandResult {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** A progress point. */
export function progress(done: number, total: number, unit: Progress['unit'] = 'bytes'): Progress {
  return { done, total, unit };
}

/** Text of a progress point: "312 MiB of 1 GiB (30 %)". */
export function progressText(p: Progress): string {
  const pct = p.total ? Math.floor((100 * p.done) / p.total) : 100;
  return p.unit === 'bytes'
    ? `${fmtSize(p.done)} of ${fmtSize(p.total)} (${pct} %)`
    : `${p.done} of ${p.total} pages (${pct} %)`;
}

/**
 * After a step: the failed result to end the command with when its process is gone (killed by
 * Ctrl-C's SIGINT, or otherwise) or was interrupted by a Ctrl-C it ignored (init), or null to go on.
 */
export function stopped(
  s: Session,
  proc: Process,
  cmd: string,
  done: number,
  total: number,
  unit: Progress['unit'] = 'bytes',
): CommandResult | null {
  const at = progressText({ done, total, unit });
  if (proc.state === 'running') {
    if (s.interruptedPid !== proc.pid) return null;
    // Global init ignored the SIGINT (sig_task_ignored()): it lives; the shell stops here.
    return fail(
      cmd,
      signalName(SIGINT),
      `interrupted by Ctrl-C after ${at}: process ${proc.pid} is init, which ignores ${signalName(SIGINT)} (sig_task_ignored()), so it lives and the shell stopped the command here (what was done stays done)`,
    );
  }
  if (s.interruptedPid === proc.pid)
    return fail(
      cmd,
      signalName(SIGINT),
      `interrupted by Ctrl-C after ${at}: process ${proc.pid} killed by ${signalName(SIGINT)} (what was done stays done; \`invariants\` checks the machine)`,
    );
  return fail(cmd, 'ESRCH', `process ${proc.pid} exited after ${at}`, 3);
}
