#!/usr/bin/env node
/**
 * The hmm-tests binary: `hmm-tests [-h|-l|-d] [-t|-T|-v|-V|-f|-F|-r name] [--no-coherent]
 * [--seed N] [--json FILE]`. Runs the port of tools/testing/selftests/mm/hmm-tests.c on a
 * simulated machine and exits with the harness's exit code.
 */

import { runHmmTests } from './hmm-tests.js';

const argv0 = process.env.HMM_TESTS_ARGV0 ?? './hmm-tests';
process.exitCode = await runHmmTests([argv0, ...process.argv.slice(2)]);
