/**
 * Execution of one test inside its emulated processes: the port of the TEST_F wrapper
 * (grandchild: setup, body, teardown) and of the test child of __run_test() in
 * kselftest_harness.h. Produces the wait status that __wait_for_test() then interprets.
 */

import { SIGABRT } from './constants.js';
import type { SharedMetadata, TestContext } from './context.js';
import { AssertAbort, ExitRequest, SkipReturn, signalOf, TimeoutAbort } from './errors.js';
import type { ErasedFn, FixtureRecord, TestRecord } from './registry.js';

/** Models the wait status of the test child as seen by __wait_for_test() (kselftest_harness.h). */
export type Outcome =
  | { readonly kind: 'exited'; readonly code: number }
  | { readonly kind: 'signaled'; readonly signo: number }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'exception'; readonly error: unknown };

/** How one setup / body / teardown call ended. */
type End =
  | { readonly kind: 'return' }
  | { readonly kind: 'exit'; readonly code: number }
  | { readonly kind: 'abort' }
  | { readonly kind: 'signal'; readonly signo: number }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'exception'; readonly error: unknown };

const RETURN: End = { kind: 'return' };
const TIMEOUT: End = { kind: 'timeout' };
const TIMER_MAX_MS = 2 ** 31 - 1;

/** Models the state __run_test() (kselftest_harness.h) hands to the test child: context, metadata, clock. */
export interface Execution {
  readonly fixture: FixtureRecord;
  readonly variantData: unknown;
  readonly test: TestRecord;
  readonly ctx: TestContext;
  readonly shared: SharedMetadata;
  readonly now: () => number;
  readonly watchdog: boolean;
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function';
}

/**
 * Models the SIGKILL of __wait_for_test() for async code: settles with the promise, or rejects
 * with TimeoutAbort when the real timer for the remaining time fires first.
 */
function withWatchdog(ex: Execution, p: PromiseLike<unknown>): Promise<unknown> {
  if (!ex.watchdog) return Promise.resolve(p);
  const ms = Math.min(TIMER_MAX_MS, Math.max(0, ex.ctx.deadline - ex.now()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ex.shared.timedOut = true;
      reject(new TimeoutAbort());
    }, ms);
    Promise.resolve(p).then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function endOfThrow(error: unknown): End {
  if (error instanceof TimeoutAbort) return TIMEOUT;
  if (error instanceof AssertAbort) return { kind: 'abort' };
  if (error instanceof SkipReturn) return RETURN;
  if (error instanceof ExitRequest) return { kind: 'exit', code: error.code & 0xff };
  const signo = signalOf(error);
  if (signo !== undefined) return { kind: 'signal', signo };
  return { kind: 'exception', error };
}

/** Runs one setup / body / teardown function and reports how it ended. */
async function runPhase(ex: Execution, fn: ErasedFn, self: object): Promise<End> {
  let end: End = RETURN;
  try {
    const result = fn(ex.ctx, self, ex.variantData);
    if (isThenable(result)) await withWatchdog(ex, result);
  } catch (error) {
    end = endOfThrow(error);
  }
  if (ex.shared.timedOut) return TIMEOUT;
  if (ex.now() > ex.ctx.deadline) {
    ex.shared.timedOut = true;
    return TIMEOUT;
  }
  // An ASSERT whose AssertAbort was swallowed by test code still killed the process.
  if (end.kind === 'return' && ex.ctx.aborted) return { kind: 'abort' };
  return end;
}

/** Models teardown_fn(): runs the teardown once, only if setup completed (no_teardown). */
async function teardownOnce(ex: Execution, self: object): Promise<End> {
  const { fixture, shared } = ex;
  if (!fixture.teardown || !shared.setupCompleted || shared.teardownClaimed) return RETURN;
  shared.teardownClaimed = true;
  return runPhase(ex, fixture.teardown, self);
}

/** Models the TEST_F grandchild: setup, body, teardown (kselftest_harness.h __TEST_F_IMPL). */
async function grandchild(ex: Execution, self: object): Promise<End> {
  const { fixture, shared } = ex;
  const setupEnd = fixture.setup ? await runPhase(ex, fixture.setup, self) : RETURN;
  if (setupEnd.kind !== 'return') return setupEnd;
  // "Let setup failure terminate early": _exit(0) without body or teardown.
  if (shared.exitCode !== 0) return RETURN;
  shared.setupCompleted = true;
  const bodyEnd = await runPhase(ex, ex.test.body, self);
  if (fixture.teardownParent || (bodyEnd.kind !== 'return' && bodyEnd.kind !== 'abort')) return bodyEnd;
  // Normal end: teardown_fn(false, ...). ASSERT end: __bail() runs it before abort().
  const tdEnd = await teardownOnce(ex, self);
  if (bodyEnd.kind === 'abort') return tdEnd.kind === 'return' || tdEnd.kind === 'abort' ? bodyEnd : tdEnd;
  return tdEnd;
}

function toOutcome(end: End, exitCode: number): Outcome {
  switch (end.kind) {
    case 'return':
      return { kind: 'exited', code: exitCode & 0xff };
    case 'exit':
      return { kind: 'exited', code: end.code };
    case 'abort':
      return { kind: 'signaled', signo: SIGABRT };
    case 'signal':
      return { kind: 'signaled', signo: end.signo };
    case 'timeout':
      return { kind: 'timeout' };
    case 'exception':
      return { kind: 'exception', error: end.error };
  }
}

/**
 * Models the test child of __run_test() (kselftest_harness.h): for TEST() it runs the body and
 * `_exit(exit_code)`; for TEST_F() it runs the grandchild, merges its exit status into
 * _metadata->exit_code, runs a FIXTURE_TEARDOWN_PARENT and forwards a deadly signal.
 */
export async function executeTest(ex: Execution): Promise<Outcome> {
  let self: object;
  try {
    self = ex.fixture.create();
  } catch (error) {
    return { kind: 'exception', error };
  }
  if (ex.fixture.isGlobal) {
    return toOutcome(await runPhase(ex, ex.test.body, self), ex.shared.exitCode);
  }
  const gc = await grandchild(ex, self);
  if (gc.kind === 'timeout') return { kind: 'timeout' };
  if (gc.kind === 'exit' && gc.code !== 0) ex.shared.exitCode = gc.code;
  if (ex.fixture.teardownParent) {
    const tdEnd = await teardownOnce(ex, self);
    if (tdEnd.kind !== 'return') return toOutcome(tdEnd, ex.shared.exitCode);
  }
  if (gc.kind === 'return' || gc.kind === 'exit') return { kind: 'exited', code: ex.shared.exitCode & 0xff };
  return toOutcome(gc, ex.shared.exitCode);
}
