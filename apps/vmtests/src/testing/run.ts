/**
 * Test-only helpers (excluded from the build): run one ported binary on a fresh machine with the
 * invariant checker on (CONFIG_DEBUG_VM), deterministic clocks and a `>out 2>err` / `2>&1`
 * capture, and the list of model gaps the tests expect.
 */

import { installMmCoreChecker, type Kernel } from '@hmm-model/mm-core';
import { BINARIES } from '../binaries.js';
import { type Ktap, parseKtap } from '../ktap.js';
import { bootVmtestsMachine } from '../machine.js';
import { runProgram } from '../program.js';
import type { ProgramIO } from '../stdio.js';

/** What one run of a binary printed and how it ended. */
export interface BinaryRun {
  readonly status: number;
  readonly signal?: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly merged: string;
  readonly ktap: Ktap;
}

/** The fixed time(NULL) the tests hand to the binaries. */
export const TEST_TIME = 1234;
/** Nanoseconds between two clock_gettime(CLOCK_MONOTONIC) calls in the tests. */
export const TEST_CLOCK_STEP_NS = 1000;

/** A `prog >out 2>&1` capture: both descriptors into one string, plus each on its own. */
export function capture(extra: Partial<ProgramIO> = {}): {
  io: ProgramIO;
  out: { merged: string; stdout: string; stderr: string };
} {
  const out = { merged: '', stdout: '', stderr: '' };
  const io: ProgramIO = {
    stdout: {
      write: (s: string) => {
        out.merged += s;
        out.stdout += s;
        return true;
      },
    },
    stderr: {
      write: (s: string) => {
        out.merged += s;
        out.stderr += s;
        return true;
      },
    },
    env: {},
    ...extra,
  };
  return { io, out };
}

/** Options of {@link runBinary}. */
export interface RunBinaryOptions {
  readonly debugVm?: boolean;
  readonly checkInterval?: number;
  /** Prepares the machine before the binary starts (the test box's admin: mounts, sysfs). */
  readonly setup?: (kernel: Kernel) => void;
  /** Looks at the machine after the binary ended (vmstat counters), before it is torn down. */
  readonly inspect?: (kernel: Kernel) => void;
}

/**
 * Runs `./<name> <args>` on a fresh machine with stdout and stderr piped. With `debugVm` (the
 * default) mm-core's invariant checker runs after every syscall, or after every
 * `checkInterval`-th one (a binary making hundreds of thousands of syscalls); without it (for
 * long runs) it runs once at the end. Either way it runs once more when the program has ended.
 */
export function runBinary(
  name: string,
  args: readonly string[] = [],
  opts: RunBinaryOptions = {},
): BinaryRun {
  const binary = BINARIES.get(name);
  if (!binary) throw new Error(`no ported binary ${name}`);
  let clock = 0;
  const { io, out } = capture({
    time: () => TEST_TIME,
    monotonicNs: () => (clock += TEST_CLOCK_STEP_NS),
  });
  const debugVm = opts.debugVm ?? true;
  const kernel = bootVmtestsMachine({ debugVm });
  kernel.checkInterval = opts.checkInterval ?? 1;
  try {
    opts.setup?.(kernel);
    const r = runProgram(kernel, binary.main, [`./${name}`, ...args], io);
    expectNoViolations(kernel.violations);
    expectNoViolations(debugVm ? kernel.check() : installedCheck(kernel));
    opts.inspect?.(kernel);
    return { ...r, ...out, ktap: parseKtap(out.stdout) };
  } finally {
    kernel.dispose();
  }
}

/** mm-core's invariant checker run once on the machine as it is now. */
function installedCheck(kernel: Kernel): string[] {
  installMmCoreChecker(kernel);
  return kernel.check();
}

function expectNoViolations(v: readonly string[]): void {
  if (v.length) throw new Error(`invariant violations:\n${v.join('\n')}`);
}

/**
 * Cases a v6.19 kernel passes that do not pass on the model today, per binary, with the mm-core
 * feature they need. Each test asserts that a listed case fails (or skips) exactly so; when the
 * feature lands, the case passes and its test fails on purpose: remove the entry then.
 */
export const MODEL_GAPS: Readonly<Record<string, Readonly<Record<string, string>>>> = {};
