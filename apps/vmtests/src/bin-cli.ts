#!/usr/bin/env node
/**
 * The vmtest bin: `vmtest <binary> [args...]` runs one ported selftest binary (e.g.
 * `vmtest mremap_test -t 0`) on a freshly booted simulated machine, with the binary's own output
 * and exit status (`vmtest -l` lists the binaries).
 */

import { BINARIES } from './binaries.js';
import { bootVmtestsMachine } from './machine.js';
import { runProgram } from './program.js';

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(128 + 13);
    throw error;
  });
}

const [name, ...args] = process.argv.slice(2);
if (name === undefined || name === '-l' || name === '-h') {
  const out = name === '-l' ? process.stdout : process.stderr;
  if (name !== '-l') out.write('usage: vmtest <binary> [args...]   (vmtest -l lists the binaries)\n');
  for (const b of BINARIES.values()) out.write(`${b.name}\t${b.source} (${b.version})\n`);
  process.exitCode = name === '-l' ? 0 : 2;
} else {
  const binary = BINARIES.get(name.replace(/^\.\//, ''));
  if (!binary) {
    process.stderr.write(`vmtest: ${name}: no such ported binary (vmtest -l lists them)\n`);
    process.exitCode = 127;
  } else {
    const kernel = bootVmtestsMachine({ debugVm: process.env.VMTESTS_DEBUG_VM === '1' });
    const r = runProgram(kernel, binary.main, [`./${binary.name}`, ...args], {
      stdout: process.stdout,
      stderr: process.stderr,
      env: process.env,
      stdoutIsTty: process.stdout.isTTY === true,
    });
    process.exitCode = r.status;
  }
}
