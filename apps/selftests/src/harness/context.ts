/**
 * The per-test context: the port of `struct __test_metadata *_metadata` as seen by a test body,
 * its fixture setup and teardown.
 */

import { Checks } from './checks.js';
import { KSFT_FAIL, KSFT_SKIP, REASON_MAX, SIGABRT } from './constants.js';
import { AssertAbort, ExitRequest, KilledAbort, SkipReturn, signalOf, TimeoutAbort } from './errors.js';
import { type Location, resolveWhere, type Where } from './location.js';
import type { Console } from './output.js';

/** Models the harness's command-line state visible to tests (argv, ksft_debug_enabled, extensions). */
export interface RunOptions {
  /** argv[0] as given to runMain(). */
  readonly argv0: string;
  /** The full argv given to runMain(). */
  readonly argv: readonly string[];
  /** Models ksft_debug_enabled (set by `-d`). */
  readonly debug: boolean;
  /** Extension: the value of `--seed N`, if given. */
  readonly seed?: number;
  /** Extension: the value of `--json FILE`, if given. */
  readonly json?: string;
  /** Extension: the value of `--junit FILE`, if given (a JUnit XML report is written there). */
  readonly junit?: string;
}

/**
 * Models the MAP_SHARED parts of struct __test_metadata (kselftest_harness.h): state shared by the
 * test and every (emulated) process it forks. Owned by the runner.
 */
export interface SharedMetadata {
  /** Models _metadata->exit_code. */
  exitCode: number;
  /** Models _metadata->results->reason (the SKIP() text). */
  reason: string;
  /** Models `*_metadata->no_teardown == false` having been reached (setup completed). */
  setupCompleted: boolean;
  /** Models the test-and-set of *_metadata->no_teardown by the first teardown_fn() caller. */
  teardownClaimed: boolean;
  /** Models the group SIGKILL of __wait_for_test() after a timeout. */
  timedOut: boolean;
  /** Set by the runner when the test has been reported; the context is dead afterwards. */
  finished: boolean;
}

/** Models the fresh shared state of __run_test() (kselftest_harness.h "reset test struct"). */
export function newSharedMetadata(): SharedMetadata {
  return {
    exitCode: 0,
    reason: '',
    setupCompleted: false,
    teardownClaimed: false,
    timedOut: false,
    finished: false,
  };
}

/** Models the per-test fields __run_test() fills into struct __test_metadata; built by the runner. */
export interface ContextInit {
  readonly name: string;
  readonly fullName: string;
  readonly fixtureName: string;
  readonly variantName: string;
  readonly file: string;
  readonly timeoutSeconds: number;
  readonly deadline: number;
  readonly now: () => number;
  readonly console: Console;
  readonly options: RunOptions;
  readonly shared: SharedMetadata;
  readonly isChild?: boolean;
}

/** Models the status word filled in by waitpid() for an emulated child (WIFEXITED() and friends). */
export interface ChildStatus {
  /** Models WIFEXITED(status). */
  readonly exited: boolean;
  /** Models WEXITSTATUS(status) (0 when signalled). */
  readonly exitStatus: number;
  /** Models WIFSIGNALED(status). */
  readonly signaled: boolean;
  /** Models WTERMSIG(status) (0 when exited). */
  readonly termsig: number;
}

function exitedWith(code: number): ChildStatus {
  return { exited: true, exitStatus: code & 0xff, signaled: false, termsig: 0 };
}

function killedBy(signo: number): ChildStatus {
  return { exited: false, exitStatus: 0, signaled: true, termsig: signo };
}

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function';
}

/**
 * Models `struct __test_metadata *_metadata` (tools/testing/selftests/kselftest_harness.h): the
 * object passed as first argument to FIXTURE_SETUP, TEST_F bodies and FIXTURE_TEARDOWN.
 *
 * Call its methods as `ctx.METHOD(...)` (they use `this`). Never catch the errors they throw
 * (AssertAbort, TimeoutAbort, SkipReturn, ExitRequest): they model process deaths and exits.
 */
export class TestContext extends Checks {
  /** Models _metadata->name: the bare test name used in messages. */
  readonly name: string;
  /** Models the `fixture.variant.test` name of __run_test(). */
  readonly fullName: string;
  /** Models the fixture name (`global` for TEST()). */
  readonly fixtureName: string;
  /** Models the variant name ("" when the fixture has no variants). */
  readonly variantName: string;
  /** Models `__FILE__` used in messages. */
  readonly file: string;
  /** Models _metadata->timeout, in seconds. */
  readonly timeoutSeconds: number;
  /** Time (on the harness clock, ms) after which checkTimeout() kills the test. */
  readonly deadline: number;
  /** Command-line options, including the `--seed` / `--json` extensions. */
  readonly options: RunOptions;
  /** Extension: the `--seed N` value (undefined when not given). */
  readonly seed: number | undefined;
  /** True for a context handed to an emulated forked child by runChild(). */
  readonly isChild: boolean;
  /**
   * Models the preemption of a test by the __wait_for_test() timeout: a bound checkTimeout() to
   * install as the model's preemption-point callback.
   */
  readonly onPreempt: () => void;

  protected readonly defaultFile: string;
  readonly #now: () => number;
  readonly #console: Console;
  readonly #shared: SharedMetadata;
  readonly #init: ContextInit;
  #aborted = false;
  #gone = false;

  constructor(init: ContextInit) {
    super();
    this.#init = init;
    this.name = init.name;
    this.fullName = init.fullName;
    this.fixtureName = init.fixtureName;
    this.variantName = init.variantName;
    this.file = init.file;
    this.defaultFile = init.file;
    this.timeoutSeconds = init.timeoutSeconds;
    this.deadline = init.deadline;
    this.options = init.options;
    this.seed = init.options.seed;
    this.isChild = init.isChild ?? false;
    this.#now = init.now;
    this.#console = init.console;
    this.#shared = init.shared;
    this.onPreempt = () => this.checkTimeout();
  }

  /** Models _metadata->exit_code (shared with forked children). */
  get exitCode(): number {
    return this.#shared.exitCode;
  }
  set exitCode(code: number) {
    this.guard();
    this.#shared.exitCode = code;
  }

  /** Models _metadata->results->reason: the last SKIP() reason ("" if none). */
  get skipReason(): string {
    return this.#shared.reason;
  }

  /** Models _metadata->aborted: an ASSERT_* failed in this (emulated) process. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** Models `_metadata->exit_code = KSFT_FAIL` done by a forked child sharing _metadata. */
  markFailed(): void {
    this.exitCode = KSFT_FAIL;
  }

  /**
   * Models the __wait_for_test() timeout (kselftest_harness.h): throws {@link TimeoutAbort} once
   * the harness clock is past {@link deadline}. Call it at the model's preemption points.
   */
  checkTimeout(): void {
    this.guard();
    if (this.#now() > this.deadline) {
      this.#shared.timedOut = true;
      throw new TimeoutAbort();
    }
  }

  /**
   * Models SKIP(statement, fmt, ...) (kselftest_harness.h): prints `#      SKIP      <reason>` on
   * stderr, records the reason and sets exit code 4. Like the C macro with `return` as statement,
   * the caller must `return` right after it (`return ctx.SKIP('...')`).
   */
  SKIP(reason: string): void {
    this.guard();
    this.#shared.reason = reason.length >= REASON_MAX ? reason.slice(0, REASON_MAX - 1) : reason;
    this.#console.err(`#      SKIP      ${this.#shared.reason}`);
    this.#shared.exitCode = KSFT_SKIP;
  }

  /**
   * Models SKIP(return, fmt, ...) (kselftest_harness.h) as a throw: SKIP() then leave the current
   * setup / body / teardown function at once (nested helpers included).
   */
  SKIP_RETURN(reason: string): never {
    this.SKIP(reason);
    throw new SkipReturn();
  }

  /** Models TH_LOG(fmt, ...) (kselftest_harness.h): `# <file>:<line>:<test>:<msg>` on stderr. */
  TH_LOG(message: string, where?: Where): void {
    this.guard();
    this.emitLog(resolveWhere(where, this.defaultFile, this.TH_LOG), message);
  }

  /** Models a test's own printf("%s\n", text) (stdout), e.g. benchmark tables. */
  print(text: string): void {
    this.guard();
    this.#console.out(text);
  }

  /** Models a test's own fprintf(stderr, "%s\n", text), e.g. `could not open hmm dmirror driver`. */
  printErr(text: string): void {
    this.guard();
    this.#console.err(text);
  }

  /** Models ksft_print_msg() (kselftest.h): `# <msg>` on stdout. */
  printMsg(message: string): void {
    this.guard();
    this.#console.out(`# ${message}`);
  }

  /** Models ksft_print_dbg_msg() (kselftest.h): like printMsg(), only when `-d` was given. */
  debug(message: string): void {
    this.guard();
    if (this.options.debug) this.#console.out(`# ${message}`);
  }

  /**
   * Models exit()/_exit() in test code (kselftest_harness.h child exit status): ends this emulated
   * process with `code`. In a TEST_F a non-zero code becomes the test's exit code; in a TEST() or
   * a runChild() child the code is the exit status itself.
   */
  exit(code: number): never {
    this.guard();
    throw new ExitRequest(code);
  }

  /**
   * Models fork() + waitpid() of a child that shares _metadata (kselftest_harness.h): runs `fn`
   * synchronously with a child context and returns its wait status. ASSERT_* failures in the
   * child mark the shared exit code FAIL and end only the child (status: signalled SIGABRT);
   * `child.exit(n)` gives exit status n; returning gives status 0; an error with a numeric
   * `signo` kills the child with that signal. Unlike C, the child never runs the fixture teardown.
   */
  runChild(fn: (child: TestContext) => void): ChildStatus {
    this.guard();
    const child = new TestContext({ ...this.#init, isChild: true });
    try {
      const result: unknown = fn(child);
      if (isThenable(result)) throw new TypeError('runChild() body returned a Promise; use runChildAsync()');
      return exitedWith(0);
    } catch (error) {
      return childStatusOf(error);
    } finally {
      child.#gone = true;
    }
  }

  /** Models fork() + waitpid() like {@link runChild}, for an async child body. */
  async runChildAsync(fn: (child: TestContext) => Promise<void>): Promise<ChildStatus> {
    this.guard();
    const child = new TestContext({ ...this.#init, isChild: true });
    try {
      await fn(child);
      return exitedWith(0);
    } catch (error) {
      return childStatusOf(error);
    } finally {
      child.#gone = true;
    }
  }

  protected guard(): void {
    if (this.#shared.timedOut) throw new TimeoutAbort();
    if (this.#shared.finished || this.#gone) throw new KilledAbort();
  }

  protected emitLog(loc: Location, message: string): void {
    this.#console.err(`# ${loc.file}:${loc.line}:${this.name}:${message}`);
  }

  protected recordFailure(isAssert: boolean, onFail: (() => void) | undefined): void {
    this.#shared.exitCode = KSFT_FAIL;
    if (onFail) onFail();
    if (isAssert) {
      this.#aborted = true;
      throw new AssertAbort();
    }
  }
}

function childStatusOf(error: unknown): ChildStatus {
  if (error instanceof AssertAbort) return killedBy(SIGABRT);
  if (error instanceof ExitRequest) return exitedWith(error.code);
  if (error instanceof SkipReturn) return exitedWith(0);
  if (error instanceof TimeoutAbort || error instanceof KilledAbort) throw error;
  const signo = signalOf(error);
  if (signo !== undefined) return killedBy(signo);
  throw error;
}
