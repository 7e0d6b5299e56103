/**
 * A TypeScript port of the kselftest harness (tools/testing/selftests/kselftest_harness.h and
 * kselftest.h), byte-compatible in its output, options and exit codes (newest form: `-d`, skip
 * hint, TAP header suppressed by KSFT_TAP_LEVEL). Generic: it knows nothing about the memory model.
 *
 * ```ts
 * const harness = new Harness({ file: 'hmm-tests.c' });
 * const hmm = harness.FIXTURE<HmmSelf, HmmVariant>('hmm', () => ({ fd: -1 }));
 * hmm.FIXTURE_VARIANT_ADD('hmm_device_private', { device_number: 0 });
 * hmm.FIXTURE_SETUP((_metadata, self, variant) => { ... });
 * hmm.FIXTURE_TEARDOWN((_metadata, self, variant) => { ... });
 * hmm.TEST_F('open_close', (_metadata, self, variant) => {
 *   _metadata.ASSERT_EQ(ret, 0, 'ret', '0', 123);      // 123: optional C line number
 *   _metadata.EXPECT_EQ(u64(i), u64(npages), 'i', 'npages'); // unsigned operands print %llu
 * });
 * hmm.TEST_F_TIMEOUT('benchmark_thp_migration', 120, async (_metadata) => { ... });
 * process.exitCode = await harness.runMain(['hmm-tests', ...process.argv.slice(2)]);
 * ```
 *
 * Semantics worth knowing:
 * - Run order: fixtures in registration order (`global`, holding TEST()s, first), then variants,
 *   then tests. Each test gets a fresh `self` from the FIXTURE() factory.
 * - ASSERT_* failure: prints the Expected line, marks FAIL, runs the teardown once (only if setup
 *   completed) and aborts the test via AssertAbort -> `# <test>: Test terminated by assertion`.
 *   EXPECT_* failure: marks FAIL, returns false, continues -> `# <test>: Test failed`.
 * - SKIP(reason) prints the SKIP line and sets exit code 4; the caller must `return` right after
 *   (`return ctx.SKIP('...')`). SKIP_RETURN(reason) throws to leave the current function at once.
 *   A SKIP (or any non-zero exit code) in setup skips body and teardown.
 * - Timeouts (default 30 s; TEST_F_TIMEOUT overrides) are cooperative: JS cannot preempt a test.
 *   The clock covers setup, body and teardown. `ctx.checkTimeout()` (also as the bound callback
 *   `ctx.onPreempt`, to install as the model's preemption hook) throws TimeoutAbort once the
 *   harness clock passes `ctx.deadline`; a test that finishes late is also reported as timed out;
 *   an async test is additionally raced against a real timer (HarnessIO.watchdog). A timed-out
 *   test prints `# <test>: Test terminated by timeout`, FAIL, and its teardown does not run.
 * - A JS exception escaping a test is a FAIL reported as
 *   `# <test>: Test terminated by unhandled exception: <Name>: <message>`; an error carrying a
 *   numeric `signo` is reported like death by that signal.
 * - Never catch AssertAbort / TimeoutAbort / SkipReturn / ExitRequest in test code (the runner
 *   still reports a swallowed assertion or timeout, but the test's later behaviour differs from C).
 * - Emulated forked children: `ctx.runChild(fn)` / `ctx.runChildAsync(fn)` share the exit code
 *   and return a waitpid-like status; `ctx.markFailed()` sets the shared exit code to FAIL.
 */

export { Checks } from './checks.js';
export {
  KSFT_FAIL,
  KSFT_PASS,
  KSFT_SKIP,
  KSFT_XFAIL,
  KSFT_XPASS,
  REASON_MAX,
  SIGABRT,
  SIGKILL,
  TEST_NAME_MAX,
  TEST_TIMEOUT_DEFAULT,
} from './constants.js';
export {
  type ChildStatus,
  type ContextInit,
  newSharedMetadata,
  type RunOptions,
  type SharedMetadata,
  TestContext,
} from './context.js';
export {
  CInt,
  type CompareOp,
  type CValue,
  compareC,
  formatCValue,
  isCValue,
  ptr,
  signed,
  stringify,
  truthOperand,
  u32,
  u64,
  unsigned,
} from './cvalue.js';
export {
  AssertAbort,
  describeError,
  ExitRequest,
  HarnessAbort,
  KilledAbort,
  SkipReturn,
  signalOf,
  TimeoutAbort,
} from './errors.js';
export type { Outcome } from './execute.js';
export { type Filter, isFilterOpt, matchesRunName, testEnabled } from './filter.js';
export {
  type Counts,
  countLines,
  countResult,
  type ListedFixture,
  listLines,
  resultLine,
  runLine,
  statusLine,
  testPassed,
  usageLines,
} from './format.js';
export {
  type ArgEvent,
  type ErrorEvent,
  getopt,
  LONG_OPTIONS,
  type LongEvent,
  type LongName,
  type OptEvent,
} from './getopt.js';
export { failureMessage, junitXml, type TestReport, xmlEscape } from './junit.js';
export { type CheckOptions, callerLine, type Location, type StackBoundary, type Where } from './location.js';
export { type ParsedArgs, parseArgs, runMain } from './main.js';
export {
  type Capture,
  type CapturedLine,
  Console,
  captureIO,
  type HarnessIO,
  type LineWriter,
  type OutputSink,
  type TextStream,
} from './output.js';
export {
  type ErasedFn,
  Fixture,
  type FixtureRecord,
  type GlobalTestFn,
  Harness,
  type HarnessConfig,
  type MaybePromise,
  type SetupFn,
  type TeardownFn,
  type TestFn,
  type TestOptions,
  type TestRecord,
  type VariantRecord,
} from './registry.js';
export { fullNameOf, type RunSettings, runTests, variantsOf, waitForTest } from './runner.js';
