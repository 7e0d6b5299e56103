#!/usr/bin/env node
/**
 * The hmm-tests binary: `hmm-tests [-h|-l|-d] [-t|-T|-v|-V|-f|-F|-r name] [--coherent |
 * --no-coherent] [--seed N] [--json FILE] [--junit FILE]`. Runs the port of
 * tools/testing/selftests/mm/hmm-tests.c on a simulated machine (test_hmm loaded without the
 * coherent devices unless `--coherent`) and exits with the harness's exit code (0 all passed, 1 a
 * failure or a bad option, 4 for -h / -l).
 */

import { runHmmTests } from './hmm-tests.js';

// Models SIGPIPE: a reader that goes away (`| head`) ends the program like the C binary,
// with the shell's 128 + SIGPIPE status, instead of an unhandled EPIPE error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(128 + 13);
    throw error;
  });
}

const argv0 = process.env.HMM_TESTS_ARGV0 ?? './hmm-tests';
process.exitCode = await runHmmTests([argv0, ...process.argv.slice(2)]);
