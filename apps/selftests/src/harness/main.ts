/**
 * The entry point: the port of TEST_HARNESS_MAIN / test_harness_run() option handling
 * (test_harness_argv_check() in kselftest_harness.h).
 */

import { writeFileSync } from 'node:fs';
import { KSFT_FAIL, KSFT_PASS, KSFT_SKIP } from './constants.js';
import type { RunOptions } from './context.js';
import { type Filter, isFilterOpt } from './filter.js';
import { listLines, usageLines } from './format.js';
import { getopt } from './getopt.js';
import { junitXml, type TestReport } from './junit.js';
import { Console, type HarnessIO } from './output.js';
import type { Harness } from './registry.js';
import { runTests } from './runner.js';

/** Models the result of test_harness_argv_check(): either an exit code or what to run. */
export type ParsedArgs =
  | { readonly kind: 'exit'; readonly code: number }
  | { readonly kind: 'run'; readonly filters: readonly Filter[]; readonly options: RunOptions };

function parseSeed(text: string): number | undefined {
  if (!/^-?(0x[0-9a-f]+|\d+)$/i.test(text)) return undefined;
  const neg = text.startsWith('-');
  const value = Number(neg ? text.slice(1) : text);
  if (!Number.isSafeInteger(value)) return undefined;
  return neg ? -value : value;
}

/**
 * Models test_harness_argv_check() (kselftest_harness.h): scans the options left to right; `-h`
 * prints the usage and gives 4, `-l` lists the tests and gives 4, a bad option prints glibc's
 * message and the usage and gives 1. Output goes to `console` (stderr). Also accepts the
 * extensions `--seed N`, `--json FILE` and `--junit FILE`.
 */
export function parseArgs(
  harness: Harness,
  argv: readonly string[],
  console: Console,
  env: Readonly<Record<string, string | undefined>>,
): ParsedArgs {
  const argv0 = argv[0] ?? '';
  const optstring = `${harness.debugOption ? 'd' : ''}hlF:f:V:v:t:T:r:`;
  const usage = (code: number): ParsedArgs => {
    for (const line of usageLines(argv0, harness.debugOption)) console.err(line);
    return { kind: 'exit', code };
  };
  const filters: Filter[] = [];
  let debug = false;
  let seed: number | undefined;
  let json: string | undefined;
  let junit: string | undefined;
  for (const ev of getopt(argv, optstring, env.POSIXLY_CORRECT !== undefined)) {
    if (ev.kind === 'error') {
      console.err(ev.message);
      return usage(KSFT_FAIL);
    }
    if (ev.kind === 'long') {
      if (ev.name === 'json') {
        json = ev.arg;
        continue;
      }
      if (ev.name === 'junit') {
        junit = ev.arg;
        continue;
      }
      seed = parseSeed(ev.arg);
      if (seed === undefined) {
        console.err(`${argv0}: invalid argument '${ev.arg}' for '--seed'`);
        return usage(KSFT_FAIL);
      }
      continue;
    }
    if (ev.opt === 'h') return usage(KSFT_SKIP);
    if (ev.opt === 'l') {
      for (const line of listLines(harness.fixtures)) console.err(line);
      return { kind: 'exit', code: KSFT_SKIP };
    }
    if (ev.opt === 'd') debug = true;
    else if (isFilterOpt(ev.opt) && ev.arg !== undefined) filters.push({ opt: ev.opt, name: ev.arg });
  }
  const options: RunOptions = { argv0, argv: [...argv], debug, seed, json, junit };
  return { kind: 'run', filters, options };
}

/**
 * Models TEST_HARNESS_MAIN / test_harness_run() (kselftest_harness.h): parses `argv` (argv[0]
 * is the program name used in messages), then lists, prints usage or runs the selected tests;
 * with `--junit FILE` it also writes a JUnit XML report of the run there. Resolves to the process exit code (0 pass, 1 fail or bad usage, 4 for `-h`/`-l`); it never
 * calls process.exit().
 */
export async function runMain(
  harness: Harness,
  argv: readonly string[],
  io: HarnessIO = {},
): Promise<number> {
  const console = new Console(io);
  const parsed = parseArgs(harness, argv, console, io.env ?? process.env);
  if (parsed.kind === 'exit') return parsed.code;
  const junit = parsed.options.junit;
  const reports: TestReport[] | undefined = junit === undefined ? undefined : [];
  const code = await runTests(harness, { filters: parsed.filters, options: parsed.options, reports }, io);
  if (junit !== undefined && reports) {
    try {
      writeFileSync(junit, junitXml(harness.file.replace(/\.c$/, ''), reports));
    } catch (error) {
      console.err(`${parsed.options.argv0}: cannot write ${junit}: ${(error as Error).message}`);
      return KSFT_FAIL;
    }
  }
  return code === KSFT_PASS ? KSFT_PASS : KSFT_FAIL;
}
