/**
 * Control-flow errors that stand in for the process deaths of the C harness. They are thrown by
 * {@link TestContext} methods and caught by the runner; test code must let them propagate.
 */

import { SIGABRT } from './constants.js';

/** Models the common base of the harness's non-local exits (kselftest_harness.h longjmp/abort/_exit). */
export class HarnessAbort extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * Models abort() after a failed ASSERT_* (__bail() in kselftest_harness.h). The runner reports it
 * as `# <test>: Test terminated by assertion`, exactly like SIGABRT.
 */
export class AssertAbort extends HarnessAbort {
  /** The signal number the C test process would have died with. */
  readonly signo = SIGABRT;
  constructor() {
    super('test aborted by failed ASSERT');
  }
}

/**
 * Models the SIGKILL sent to the test's process group when the timeout expires
 * (__wait_for_test() in kselftest_harness.h). Thrown by checkTimeout() and by every context
 * method once the test has been killed.
 */
export class TimeoutAbort extends HarnessAbort {
  constructor() {
    super('test killed by timeout');
  }
}

/**
 * Models a test process that no longer exists (kselftest_harness.h __run_test() has reaped it):
 * thrown when code leaked from a finished test keeps using that test's context.
 */
export class KilledAbort extends HarnessAbort {
  constructor() {
    super('test context used after its (emulated) process ended');
  }
}

/**
 * Models the `return` statement passed to SKIP(return, ...) (kselftest_harness.h): ends the
 * current setup/body/teardown function. Thrown by TestContext.SKIP_RETURN().
 */
export class SkipReturn extends HarnessAbort {
  constructor() {
    super('SKIP(return, ...)');
  }
}

/** Models exit()/_exit() called by test code (the child's exit status in kselftest_harness.h). */
export class ExitRequest extends HarnessAbort {
  readonly code: number;
  constructor(code: number) {
    super(`exit(${code})`);
    this.code = code;
  }
}

/**
 * Models WIFSIGNALED()/WTERMSIG() (kselftest_harness.h __wait_for_test()): returns the signal
 * number carried by an error (any object with a numeric `signo`, e.g. a modelled SIGBUS), or
 * undefined when the error does not stand for a signal.
 */
export function signalOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('signo' in error)) return undefined;
  const signo = (error as { signo: unknown }).signo;
  return typeof signo === 'number' && Number.isInteger(signo) && signo > 0 ? signo : undefined;
}

/** Models the description of an unexpected death (kselftest_harness.h diagnostics): `Name: message`. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const name = error.name || 'Error';
    return error.message ? `${name}: ${error.message}` : name;
  }
  try {
    return `thrown value: ${String(error)}`;
  } catch {
    return 'thrown value: <unprintable>';
  }
}
