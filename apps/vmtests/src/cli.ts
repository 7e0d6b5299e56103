#!/usr/bin/env node
/**
 * The run_vmtests.sh bin: `run_vmtests.sh [-a] [-h] [-n] [-t "CATEGORIES"]` runs the ported mm
 * selftests on a simulated machine, with the script's output and exit code. VMTESTS_DEBUG_VM=1
 * also runs mm-core's invariant checker after every syscall.
 */

import { runVmtests } from './run-vmtests.js';

// Models SIGPIPE: a reader that goes away (`| head`) ends the program with 128 + SIGPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(128 + 13);
    throw error;
  });
}

const argv0 = process.env.RUN_VMTESTS_ARGV0 ?? './run_vmtests.sh';
process.exitCode = runVmtests(
  [argv0, ...process.argv.slice(2)],
  { stdout: process.stdout, stderr: process.stderr, env: process.env },
  { machine: { debugVm: process.env.VMTESTS_DEBUG_VM === '1' } },
);
