/**
 * The two output streams of a harness binary, made injectable so that tests can capture stdout,
 * stderr and a merged (2>&1) chronological stream byte for byte.
 */

/** Models one stdio stream of a kselftest binary (stdout / TH_LOG_STREAM): called once per line, no `\n`. */
export type LineWriter = (line: string) => void;

/** Models a stdio stream of a kselftest binary as a Node-style writable (e.g. process.stdout). */
export interface TextStream {
  write(chunk: string): unknown;
}

/** Models a stdio stream of a kselftest binary: a per-line callback or a writable stream. */
export type OutputSink = LineWriter | TextStream;

/**
 * Models the process environment of a kselftest binary (stdout, stderr, getenv(), the clock
 * used by __wait_for_test()). Every field is optional; defaults are process.stdout/stderr,
 * process.env and performance.now().
 */
export interface HarnessIO {
  /** printf() / ksft_print_msg() stream. */
  stdout?: OutputSink;
  /** fprintf(stderr) / TH_LOG_STREAM. */
  stderr?: OutputSink;
  /** getenv() source, e.g. for KSFT_TAP_LEVEL and POSIXLY_CORRECT. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Monotonic clock in milliseconds, used for per-test timeouts. */
  now?: () => number;
  /**
   * Arm a real timer for async test bodies, so a never-settling Promise still times out
   * (default true). Synchronous code can only be stopped at checkTimeout() calls.
   */
  watchdog?: boolean;
}

/** Models stdio writes of a kselftest binary: whole lines to stdout or stderr. */
export class Console {
  readonly #out: OutputSink;
  readonly #err: OutputSink;

  constructor(io: HarnessIO) {
    this.#out = io.stdout ?? process.stdout;
    this.#err = io.stderr ?? process.stderr;
  }

  /** Models printf("%s\n", text) (stdout). */
  out(text: string): void {
    emit(this.#out, text);
  }

  /** Models fprintf(stderr, "%s\n", text). */
  err(text: string): void {
    emit(this.#err, text);
  }
}

function emit(sink: OutputSink, text: string): void {
  if (typeof sink === 'function') {
    for (const line of text.split('\n')) sink(line);
  } else {
    sink.write(`${text}\n`);
  }
}

/** Models one line written to stdout or stderr (TH_LOG_STREAM) by a kselftest binary. */
export interface CapturedLine {
  readonly stream: 'stdout' | 'stderr';
  readonly text: string;
}

/** Models a `./test >out 2>err` plus `2>&1` capture of a kselftest binary, for tests. */
export interface Capture {
  /** Pass this to runMain(); it has env {} (so the TAP header prints) unless overridden. */
  readonly io: HarnessIO;
  /** Every line, in the order it was written. */
  readonly lines: readonly CapturedLine[];
  /** Everything written to stdout, each line ending in `\n`. */
  stdout(): string;
  /** Everything written to stderr, each line ending in `\n`. */
  stderr(): string;
  /** Both streams interleaved chronologically, as `2>&1` shows them. */
  merged(): string;
}

/**
 * Models shell redirection of a kselftest binary's stdout and stderr (kselftest_harness.h
 * output): returns a capture whose `io` can be passed to runMain(). `overrides` can replace env,
 * now or watchdog; the streams are always the capture's own.
 */
export function captureIO(overrides: Omit<HarnessIO, 'stdout' | 'stderr'> = {}): Capture {
  const lines: CapturedLine[] = [];
  const join = (which?: CapturedLine['stream']): string =>
    lines
      .filter((l) => which === undefined || l.stream === which)
      .map((l) => `${l.text}\n`)
      .join('');
  const io: HarnessIO = {
    env: {},
    ...overrides,
    stdout: (text) => lines.push({ stream: 'stdout', text }),
    stderr: (text) => lines.push({ stream: 'stderr', text }),
  };
  return {
    io,
    lines,
    stdout: () => join('stdout'),
    stderr: () => join('stderr'),
    merged: () => join(),
  };
}
