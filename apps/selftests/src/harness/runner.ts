/**
 * The run loop: the port of test_harness_run(), __run_test() and __wait_for_test() from
 * kselftest_harness.h. Prints exactly the harness's lines through an injectable {@link Console}.
 */

import {
  KSFT_FAIL,
  KSFT_PASS,
  KSFT_SKIP,
  KSFT_XFAIL,
  KSFT_XPASS,
  SIGABRT,
  TEST_NAME_MAX,
} from './constants.js';
import { newSharedMetadata, type RunOptions, TestContext } from './context.js';
import { describeError } from './errors.js';
import { executeTest, type Outcome } from './execute.js';
import { type Filter, testEnabled } from './filter.js';
import {
  type Counts,
  countLines,
  countResult,
  resultLine,
  runLine,
  statusLine,
  testPassed,
} from './format.js';
import type { TestReport } from './junit.js';
import { type CapturedLine, Console, type HarnessIO, type OutputSink } from './output.js';
import type { FixtureRecord, Harness, TestRecord, VariantRecord } from './registry.js';

/** Models the parsed command line that test_harness_run() works from. */
export interface RunSettings {
  /** Filter options in command-line order. */
  readonly filters: readonly Filter[];
  readonly options: RunOptions;
  /**
   * Extension (`--junit`): when given, one {@link TestReport} per case is appended here, with
   * the lines the case printed. The printed output is the same either way.
   */
  readonly reports?: TestReport[];
}

/** Models `struct __fixture_variant_metadata no_variant = { .name = "" }` (kselftest_harness.h). */
const NO_VARIANT: VariantRecord = { name: '', data: undefined };

/** Models the `f->variant ?: &no_variant` loop of test_harness_run() (kselftest_harness.h). */
export function variantsOf(f: FixtureRecord): readonly VariantRecord[] {
  return f.variants.length ? f.variants : [NO_VARIANT];
}

/** Models the test_name of __run_test() (kselftest_harness.h): `f.v.t`, or `f.t` without variant. */
export function fullNameOf(f: string, v: string, t: string): string {
  const name = `${f}${v ? '.' : ''}${v}.${t}`;
  return name.length >= TEST_NAME_MAX ? name.slice(0, TEST_NAME_MAX - 1) : name;
}

/**
 * Models __wait_for_test() (kselftest_harness.h): turns the child's wait status into the test's
 * exit code, printing the parent-side diagnostic on stderr. A JS exception that escaped the test
 * (no C equivalent) is a FAIL reported as `# <test>: Test terminated by unhandled exception: ...`.
 */
export function waitForTest(outcome: Outcome, test: TestRecord, console: Console): number {
  const n = test.name;
  switch (outcome.kind) {
    case 'timeout':
      console.err(`# ${n}: Test terminated by timeout`);
      return KSFT_FAIL;
    case 'exited': {
      const code = outcome.code;
      if (code === KSFT_SKIP || code === KSFT_XPASS || code === KSFT_XFAIL) return code;
      if (test.termsig !== -1) {
        console.err(`# ${n}: Test exited normally instead of by signal (code: ${code})`);
        return KSFT_FAIL;
      }
      if (code === KSFT_PASS) return KSFT_PASS;
      console.err(`# ${n}: Test failed`);
      return KSFT_FAIL;
    }
    case 'signaled':
      if (outcome.signo === SIGABRT) {
        console.err(`# ${n}: Test terminated by assertion`);
        return KSFT_FAIL;
      }
      if (outcome.signo === test.termsig) return KSFT_PASS;
      console.err(`# ${n}: Test terminated unexpectedly by signal ${outcome.signo}`);
      return KSFT_FAIL;
    case 'exception': {
      const [first, ...rest] = describeError(outcome.error).split('\n');
      console.err(`# ${n}: Test terminated by unhandled exception: ${first}`);
      for (const line of rest) console.err(`# ${line}`);
      return KSFT_FAIL;
    }
  }
}

interface RunState {
  readonly harness: Harness;
  readonly settings: RunSettings;
  readonly console: Console;
  readonly now: () => number;
  readonly watchdog: boolean;
  readonly counts: Counts;
  resultNo: number;
  /** Lines of the running case while a report is being recorded. */
  recording: CapturedLine[] | null;
}

/** Models __run_test() (kselftest_harness.h): RUN line, child, OK/FAIL line, TAP result line. */
async function runTest(st: RunState, f: FixtureRecord, v: VariantRecord, t: TestRecord): Promise<number> {
  const fullName = fullNameOf(f.name, v.name, t.name);
  st.console.out(runLine(fullName));
  if (st.settings.reports) st.recording = [];
  const shared = newSharedMetadata();
  const start = st.now();
  const ctx = new TestContext({
    name: t.name,
    fullName,
    fixtureName: f.name,
    variantName: v.name,
    file: st.harness.file,
    timeoutSeconds: t.timeout,
    deadline: start + t.timeout * 1000,
    now: st.now,
    console: st.console,
    options: st.settings.options,
    shared,
  });
  const outcome = await executeTest({
    fixture: f,
    variantData: v.data,
    test: t,
    ctx,
    shared,
    now: st.now,
    watchdog: st.watchdog,
  });
  shared.finished = true;
  let exitCode = waitForTest(outcome, t, st.console);
  const output = st.recording;
  st.recording = null;
  const passed = testPassed(exitCode);
  st.console.out(statusLine(passed, fullName));
  if (f.xfails.has(`${v.name}\0${t.name}`)) exitCode = passed ? KSFT_XPASS : KSFT_XFAIL;
  let diagnostic: string | null = null;
  if (shared.reason) diagnostic = shared.reason;
  else if (exitCode !== KSFT_PASS && exitCode !== KSFT_FAIL) diagnostic = 'unknown';
  countResult(st.counts, exitCode);
  if (st.settings.reports && output) {
    st.settings.reports.push({
      fixture: f.name,
      variant: v.name,
      test: t.name,
      fullName,
      exitCode,
      reason: shared.reason,
      seconds: (st.now() - start) / 1000,
      output,
    });
  }
  st.console.out(resultLine(++st.resultNo, exitCode, fullName, diagnostic));
  return exitCode;
}

/**
 * Models test_harness_run() after option checking (kselftest_harness.h): counts the enabled
 * tests, prints the TAP header (unless KSFT_TAP_LEVEL is set), runs every enabled test in
 * registration order and prints the PASSED/FAILED, skip-hint and Totals lines. Returns the
 * process exit code: 0 when nothing failed, 1 otherwise.
 */
export async function runTests(harness: Harness, settings: RunSettings, io: HarnessIO = {}): Promise<number> {
  const env = io.env ?? process.env;
  const holder: { st?: RunState } = {};
  const record = (stream: CapturedLine['stream'], sink: OutputSink) => (text: string) => {
    holder.st?.recording?.push({ stream, text });
    if (typeof sink === 'function') sink(text);
    else sink.write(`${text}\n`);
  };
  const console = new Console(
    settings.reports
      ? {
          ...io,
          stdout: record('stdout', io.stdout ?? process.stdout),
          stderr: record('stderr', io.stderr ?? process.stderr),
        }
      : io,
  );
  const enabled = (f: FixtureRecord, v: VariantRecord, t: TestRecord): boolean =>
    testEnabled(settings.filters, f.name, v.name, t.name);

  let testCount = 0;
  let caseCount = 0;
  for (const f of harness.fixtures) {
    for (const v of variantsOf(f)) {
      const before = testCount;
      for (const t of f.tests) if (enabled(f, v, t)) testCount++;
      if (testCount !== before) caseCount++;
    }
  }

  if (env.KSFT_TAP_LEVEL === undefined) console.out('TAP version 13');
  console.out(`1..${testCount}`);
  console.out(`# Starting ${testCount} tests from ${caseCount} test cases.`);

  const st: RunState = {
    harness,
    settings,
    console,
    now: io.now ?? (() => performance.now()),
    watchdog: io.watchdog ?? true,
    counts: { pass: 0, fail: 0, xfail: 0, xpass: 0, skip: 0, error: 0 },
    resultNo: 0,
    recording: null,
  };
  holder.st = st;
  let ran = 0;
  let passCount = 0;
  let failed = false;
  for (const f of harness.fixtures) {
    for (const v of variantsOf(f)) {
      for (const t of f.tests) {
        if (!enabled(f, v, t)) continue;
        ran++;
        if (testPassed(await runTest(st, f, v, t))) passCount++;
        else failed = true;
      }
    }
  }

  console.out(`# ${failed ? 'FAILED' : 'PASSED'}: ${passCount} / ${ran} tests passed.`);
  for (const line of countLines(st.counts, testCount, st.resultNo, harness.skipHint)) console.out(line);
  return failed ? KSFT_FAIL : KSFT_PASS;
}
