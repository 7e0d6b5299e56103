#!/usr/bin/env node
/**
 * The test_hmm.sh binary: `test_hmm.sh [smoke [<spm_addr_dev0> <spm_addr_dev1>]]`, the port of
 * tools/testing/selftests/mm/test_hmm.sh on a simulated machine. Exits 0, as the script does.
 */

import { runTestHmmSh } from './test-hmm-sh.js';

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(128 + 13);
    throw error;
  });
}

const argv0 = process.env.TEST_HMM_SH_ARGV0 ?? './test_hmm.sh';
process.exitCode = await runTestHmmSh([argv0, ...process.argv.slice(2)]);
