/**
 * Source locations for harness messages: the `__FILE__:__LINE__` part of TH_LOG() and the
 * Expected lines, taken from an explicit argument or from the JS stack of the caller.
 */

/** Models the optional trailing arguments of a check: __LINE__, __FILE__ and the `{ ... }` handler. */
export interface CheckOptions {
  /** The C `__LINE__` to print; when absent the caller's JS line is used. */
  readonly line?: number;
  /** The C `__FILE__` to print; defaults to the harness's file name. */
  readonly file?: string;
  /**
   * Models the optional statement after ASSERT_* / EXPECT_* (OPTIONAL_HANDLER in
   * kselftest_harness.h): runs only on failure, after the Expected line and before an ASSERT aborts.
   */
  readonly onFail?: () => void;
}

/** Models `__LINE__` (a number) or the full {@link CheckOptions} passed after a check's operands. */
export type Where = number | CheckOptions;

/** Models the macro boundary for `__LINE__`: the function whose frame (and all above it) is cut from a stack. */
export type StackBoundary = (...args: never[]) => unknown;

/**
 * Models `__LINE__` of a macro invocation (kselftest_harness.h __TH_LOG()): the line number of the
 * frame that called `boundary`, read from a V8 stack trace (source-mapped when the runtime maps
 * stacks). Returns 0 when no line can be found.
 */
export function callerLine(boundary: StackBoundary): number {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  if (!(limit >= 1)) Error.stackTraceLimit = 10;
  try {
    Error.captureStackTrace(holder, boundary);
  } finally {
    Error.stackTraceLimit = limit;
  }
  const frames = (holder.stack ?? '').split('\n').slice(1);
  for (const frame of frames) {
    const m = /:(\d+):\d+\)?\s*$/.exec(frame);
    if (m) return Number(m[1]);
  }
  return 0;
}

/** Models the resolved `__FILE__`/`__LINE__` pair of one message. */
export interface Location {
  readonly file: string;
  readonly line: number;
  readonly onFail?: () => void;
}

/** Models expansion of `__FILE__`/`__LINE__` at a call site: resolves a {@link Where} argument. */
export function resolveWhere(
  where: Where | undefined,
  defaultFile: string,
  boundary: StackBoundary,
): Location {
  if (typeof where === 'number') return { file: defaultFile, line: where };
  const line = where?.line ?? callerLine(boundary);
  return { file: where?.file ?? defaultFile, line, onFail: where?.onFail };
}
