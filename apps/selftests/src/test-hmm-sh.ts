/**
 * The port of tools/testing/selftests/mm/test_hmm.sh, the kernel's wrapper around hmm-tests: it
 * loads test_hmm (`modprobe test_hmm`, or with `spm_addr_dev0=<a> spm_addr_dev1=<b>` to create
 * the two device-coherent devices), runs `./hmm-tests`, unloads the module and exits 0.
 *
 * Faithful quirks of the script (v6.19):
 * - it always ends with `exit 0`, whatever hmm-tests returned, so a CI job that runs the wrapper
 *   never fails on a test failure;
 * - a single spm address prints "Missing module parameters. Make sure pass spm_addr_dev0 and
 *   spm_addr_dev1", then the usage, and exits 0 without running anything;
 * - the smoke banner reads "Analte" (a mangled "Note" in the script).
 * The requirement checks (root, modprobe, `modinfo test_hmm`) always pass on the model, which
 * has CONFIG_TEST_HMM=m and runs everything as root.
 */

import { Console, type HarnessIO } from './harness/index.js';
import { runHmmTests } from './hmm-tests.js';

/** Models `ksft_skip=4` of the script (unused by the model: the requirement checks pass). */
export const KSFT_SKIP_SH = 4;

/** Models the usage() function of test_hmm.sh: its lines on stdout, for `$0` = argv0. */
export function wrapperUsage(argv0: string): string[] {
  return [
    `Usage: ${argv0}`,
    'Example usage:',
    '',
    '# Shows help message',
    './test_hmm.sh',
    '',
    '# Smoke testing',
    './test_hmm.sh smoke',
    '',
    '# Smoke testing with SPM enabled',
    './test_hmm.sh smoke <spm_addr_dev0> <spm_addr_dev1>',
    '',
  ];
}

/**
 * Models the kernel parsing a `ulong` module parameter (param_set_ulong() -> kstrtoul(val, 0)):
 * decimal, 0x hex or 0 octal, nothing else. Returns undefined for a value modprobe rejects.
 */
export function parseModuleUlong(text: string): bigint | undefined {
  const t = text.trim();
  let v: bigint;
  if (/^0x[0-9a-f]+$/i.test(t)) v = BigInt(t);
  else if (/^0[0-7]*$/.test(t)) v = BigInt(`0o${t.slice(1) || '0'}`);
  else if (/^[1-9]\d*$/.test(t)) v = BigInt(t);
  else return undefined;
  return v < 1n << 64n ? v : undefined;
}

/** What load_driver() did: which test_hmm configuration the machine got. */
export type LoadedModule = { readonly loaded: false } | { readonly loaded: true; readonly coherent: boolean };

/**
 * Models load_driver() of test_hmm.sh: no argument loads test_hmm plainly; two arguments load it
 * with spm_addr_dev0/1 (hmm_dmirror_init() then creates the coherent devices only when both are
 * non-zero); a value the module rejects fails the modprobe (its error on stderr).
 */
export function loadDriver(args: readonly string[], console: Console): LoadedModule {
  if (args.length === 0) return { loaded: true, coherent: false };
  const [a, b] = args.map(parseModuleUlong);
  if (a === undefined || b === undefined) {
    console.err("modprobe: ERROR: could not insert 'test_hmm': Invalid argument");
    return { loaded: false };
  }
  return { loaded: true, coherent: a !== 0n && b !== 0n };
}

/**
 * Runs `test_hmm.sh <args>` (argv[0] is `$0`) on a fresh simulated machine and resolves to the
 * script's exit status, which is 0 whatever hmm-tests returned (the script ends with `exit 0`).
 * hmm-tests runs as `./hmm-tests` with no options, its output passed through unchanged.
 */
export async function runTestHmmSh(argv: readonly string[], io: HarnessIO = {}): Promise<number> {
  const console = new Console(io);
  const argv0 = argv[0] ?? './test_hmm.sh';
  // Models `run_test $@`: word splitting drops empty arguments.
  const args = argv.slice(1).filter((a) => a !== '');
  const usage = (): number => {
    for (const line of wrapperUsage(argv0)) console.out(line);
    return 0;
  };
  if (args[0] !== 'smoke') return usage();
  console.out('Running smoke test. Analte, this test provides basic coverage.');
  // Models run_smoke $2 $3 -> load_driver $1 $2: only the two words after `smoke` are passed on.
  const spm = args.slice(1, 3);
  if (spm.length === 1) {
    console.out('Missing module parameters. Make sure pass spm_addr_dev0 and spm_addr_dev1');
    return usage();
  }
  const mod = loadDriver(spm, console);
  // Models `$(dirname "${BASH_SOURCE[0]}")/hmm-tests`; its exit status is ignored.
  const dir = argv0.includes('/') ? argv0.slice(0, argv0.lastIndexOf('/')) || '/' : '.';
  const hmmTestsArgv0 = `${dir === '/' ? '' : dir}/hmm-tests`;
  const hmmArgs = [hmmTestsArgv0, mod.loaded && mod.coherent ? '--coherent' : '--no-coherent'];
  await runHmmTests(hmmArgs, io, undefined, mod.loaded);
  // unload_driver (`modprobe -r`), then the script's final `exit 0`.
  return 0;
}
