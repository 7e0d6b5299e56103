import { ERRNO_NAMES } from '@hmm-model/mm-core';

/** A JSON value as `--json` mode prints it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * A shell error: the errno the model returned (or the signal, or a shell-level reason such as
 * a usage error) and a sentence saying why, e.g. `migrate: EINVAL — range not covered by a
 * readable VMA`.
 */
export interface ShellError {
  /** The positive errno, when the model returned one. */
  readonly errno?: number;
  /** The errno name (EINVAL), signal name (SIGSEGV) or shell reason (usage, mismatch, ...). */
  readonly name: string;
  /** Why, in words. */
  readonly why: string;
}

/** The structured result of one shell command, shared by the Ink UI, script and JSON modes. */
export interface CommandResult {
  readonly ok: boolean;
  /** Plain-text output lines (no ANSI codes). */
  readonly lines: readonly string[];
  /** Machine-readable data for `--json`. */
  readonly data?: { [key: string]: Json };
  readonly error?: ShellError;
  /** A number the command produced that `name = command` assigns (an address, a pid). */
  readonly value?: number;
  /** The shell should stop (quit). */
  readonly quit?: boolean;
  /** The UI should clear its transcript. */
  readonly clear?: boolean;
}

/** Builds a successful result. */
export function ok(lines: readonly string[], data?: { [key: string]: Json }, value?: number): CommandResult {
  return { ok: true, lines, data, value };
}

/** Builds a failed result whose text is `cmd: NAME — why`. */
export function fail(
  cmd: string,
  name: string,
  why: string,
  errno?: number,
  lines: readonly string[] = [],
): CommandResult {
  return { ok: false, lines: [...lines, `${cmd}: ${name} — ${why}`], error: { errno, name, why } };
}

/** Builds a failed result from a raw-syscall return value (-errno) and a reason. */
export function failErrno(
  cmd: string,
  ret: number,
  why: string,
  lines: readonly string[] = [],
): CommandResult {
  const errno = -ret;
  return fail(cmd, errnoName(errno), why, errno, lines);
}

/** Models strerrorname_np(): the name of an errno (EINVAL), or E<number> for unknown ones. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `E${errno}`;
}

/** Thrown by argument parsers; the dispatcher turns it into a `usage` error. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
