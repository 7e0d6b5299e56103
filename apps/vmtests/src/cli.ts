#!/usr/bin/env node
/**
 * The run_vmtests.sh bin: `run_vmtests.sh [-a] [-h] [-n] [-t "CATEGORIES"]` runs the ported mm
 * selftests on a simulated machine, with the script's output and exit code. VMTESTS_DEBUG_VM=1
 * also runs mm-core's invariant checker after every syscall.
 */

import { exitAllowingModelGaps, KERNEL_FAILING_RUNS, MODEL_GAP_RUNS } from './model-gaps.js';
import { runVmtests } from './run-vmtests.js';

// Models SIGPIPE: a reader that goes away (`| head`) ends the program with 128 + SIGPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(128 + 13);
    throw error;
  });
}

const argv0 = process.env.RUN_VMTESTS_ARGV0 ?? './run_vmtests.sh';
const ran: string[] = [];
const failed: string[] = [];
const code = runVmtests(
  [argv0, ...process.argv.slice(2)],
  { stdout: process.stdout, stderr: process.stderr, env: process.env },
  {
    machine: { debugVm: process.env.VMTESTS_DEBUG_VM === '1' },
    ran,
    failed,
  },
);
// Model-only (model-gaps.ts): with VMTESTS_ALLOW_MODEL_GAPS=1 the documented model gaps may fail.
if (process.env.VMTESTS_ALLOW_MODEL_GAPS === '1') {
  const allowed = exitAllowingModelGaps(code, ran, failed);
  if (allowed !== code) {
    process.stderr.write(
      `run_vmtests (model): exit ${code} -> 0: only the documented model gaps and runs v6.19 fails too failed (VMTESTS_ALLOW_MODEL_GAPS=1):\n`,
    );
    for (const t of failed) process.stderr.write(`  ${t}: ${MODEL_GAP_RUNS[t] ?? KERNEL_FAILING_RUNS[t]}\n`);
  }
  process.exitCode = allowed;
} else process.exitCode = code;
