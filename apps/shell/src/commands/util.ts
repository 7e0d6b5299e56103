import {
  type MmStruct,
  type Process,
  SIGSEGV,
  SignalDelivered,
  VM_EXEC,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_NOHUGEPAGE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
  vmaIsAccessible,
} from '@hmm-model/mm-core';
import { hex } from '../format.js';
import { type CommandResult, fail, type ShellError } from '../result.js';
import type { Session } from '../session.js';
import { signalName } from '../signals.js';

/** The current running process, or a failed result saying there is none. */
export function currentProc(s: Session, cmd: string): Process | CommandResult {
  const p = s.proc;
  if (p) return p;
  return fail(
    cmd,
    'ESRCH',
    s.currentPid === null
      ? 'no current process: every process has exited (`spawn` starts a new one)'
      : `process ${s.currentPid} is not running (\`ps\`, then \`switch <pid>\`)`,
    3,
  );
}

/** Type guard: is this a result (an error to return) rather than a process? */
export function isResult(x: Process | CommandResult): x is CommandResult {
  return 'ok' in x && 'lines' in x;
}

/** Models the perms column of /proc/pid/maps: rwxp / rw-s. */
export function permString(flags: number): string {
  return (
    (flags & VM_READ ? 'r' : '-') +
    (flags & VM_WRITE ? 'w' : '-') +
    (flags & VM_EXEC ? 'x' : '-') +
    (flags & VM_SHARED ? 's' : 'p')
  );
}

/** Short description of a VMA's THP/hugetlb flags. */
export function hugeFlags(flags: number): string[] {
  const out: string[] = [];
  if (flags & VM_HUGEPAGE) out.push('hugepage');
  if (flags & VM_NOHUGEPAGE) out.push('nohugepage');
  if (flags & VM_HUGETLB) out.push('hugetlb');
  return out;
}

/** The VMAs overlapping [start, end), and the first address in it that no VMA covers (or -1). */
export function coverage(mm: MmStruct, start: number, end: number): { vmas: Vma[]; hole: number } {
  const vmas = mm.vmas.filter((v) => v.end > start && v.start < end);
  let cursor = start;
  for (const v of vmas) {
    if (v.start > cursor) return { vmas, hole: cursor };
    cursor = v.end;
  }
  return { vmas, hole: cursor < end ? cursor : -1 };
}

/**
 * Models the check the CPU's fault path makes before a user access (access_error()): every
 * byte of [addr, addr + len) must be in a VMA allowing the access (a write: VM_WRITE; a read:
 * vma_is_accessible(), so write-only and execute-only VMAs are readable on x86). Returns why
 * not, or null.
 */
export function accessError(mm: MmStruct, addr: number, len: number, write: boolean): ShellError | null {
  const { vmas, hole } = coverage(mm, addr, addr + len);
  if (hole >= 0)
    return {
      name: signalName(SIGSEGV),
      why: `${hex(hole)} is not mapped (no VMA); the access was not performed (a C program would die here)`,
    };
  const bad = vmas.find((v) => (write ? !(v.flags & VM_WRITE) : !vmaIsAccessible(v)));
  if (bad)
    return {
      name: signalName(SIGSEGV),
      why: `${hex(Math.max(addr, bad.start))} is in a ${permString(bad.flags)} VMA: not ${
        write ? 'writable' : 'readable'
      }; the access was not performed`,
    };
  return null;
}

/** Runs a user access that may raise a signal; turns a delivered signal into a failed result. */
export function userAccess<T>(cmd: string, fn: () => T): T | CommandResult {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SignalDelivered) {
      return fail(cmd, signalName(e.signo), `${e.message}; the process was killed`);
    }
    throw e;
  }
}

/** Checks that a value is page aligned; returns the reason when not. */
export function notAligned(v: number, align: number, what: string): string | null {
  return v % align === 0 ? null : `${what} ${hex(v)} is not ${align === 4096 ? 'page' : hex(align)} aligned`;
}
