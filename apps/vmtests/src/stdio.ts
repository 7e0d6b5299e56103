/**
 * glibc stdio as a selftest binary sees it: `printf()` into the stdout FILE (line buffered on a
 * terminal or after `setvbuf(stdout, NULL, _IOLBF, 0)`, fully buffered in 4096-byte blocks on a
 * pipe), `fprintf(stderr)` unbuffered, `write(1)` of a child that shares the descriptor
 * (`system("cat ...")`), the flush at `exit()` and the loss of unflushed output when the process
 * dies of a signal. The byte order of a `2>&1` capture therefore matches a real run, including
 * lines cut by a block flush and output that does not end in a newline.
 */

import type { TextStream } from '@hmm-model/selftests';
import { strerror } from '@hmm-model/selftests';

/** Models BUFSIZ for a pipe (glibc sizes the buffer from st_blksize: 4096 on a pipe). */
export const PIPE_BUF_SIZE = 4096;

/** Models the buffering mode of a FILE (setvbuf(3): _IOFBF, _IOLBF, _IONBF). */
export type BufferMode = 'full' | 'line' | 'none';

/** Models the environment a program is started with: its descriptors 1 and 2 and getenv(). */
export interface ProgramIO {
  /** Descriptor 1. */
  readonly stdout: TextStream;
  /** Descriptor 2 (the same stream for a `2>&1` capture). */
  readonly stderr: TextStream;
  /** getenv() source (KSFT_TAP_LEVEL). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Whether descriptor 1 is a terminal (isatty(1)): stdout then starts line buffered. */
  readonly stdoutIsTty?: boolean;
  /** Models time(2): seconds since the epoch (default: the host clock). */
  readonly time?: () => number;
  /** Models clock_gettime(CLOCK_MONOTONIC) in nanoseconds (default: the host's performance.now()). */
  readonly monotonicNs?: () => number;
}

/** Models the stdio state of one process (the stdout FILE buffer and the stderr stream). */
export class Stdio {
  readonly #io: ProgramIO;
  #mode: BufferMode;
  #pending = '';

  constructor(io: ProgramIO) {
    this.#io = io;
    this.#mode = io.stdoutIsTty ? 'line' : 'full';
  }

  /** The buffering mode of stdout now. */
  get mode(): BufferMode {
    return this.#mode;
  }

  /** Models setvbuf(stdout, NULL, mode, 0) (done by ksft_print_header() with _IOLBF). */
  setvbuf(mode: BufferMode): void {
    this.flush();
    this.#mode = mode;
  }

  /**
   * Models printf()/fputs() to stdout: the text goes into the FILE buffer and reaches descriptor
   * 1 as glibc's _IO_new_file_xsputn() writes it (whole lines when line buffered, 4096-byte
   * blocks when fully buffered). Text is ASCII here, so characters are bytes.
   */
  printf(text: string): void {
    if (text.length === 0) return;
    if (this.#mode === 'none') {
      this.#io.stdout.write(text);
      return;
    }
    this.#pending += text;
    if (this.#mode === 'line') {
      const nl = this.#pending.lastIndexOf('\n');
      if (nl >= 0) {
        this.#io.stdout.write(this.#pending.slice(0, nl + 1));
        this.#pending = this.#pending.slice(nl + 1);
      }
      return;
    }
    // Fully buffered: a full buffer is written when more data arrives, then whole blocks go
    // out directly and the remainder stays buffered.
    if (this.#pending.length > PIPE_BUF_SIZE) {
      const rest = this.#pending.length - PIPE_BUF_SIZE;
      const direct = rest - (rest % PIPE_BUF_SIZE);
      this.#io.stdout.write(this.#pending.slice(0, PIPE_BUF_SIZE + direct));
      this.#pending = this.#pending.slice(PIPE_BUF_SIZE + direct);
    }
  }

  /** Models fprintf(stderr, ...): stderr is unbuffered. */
  eprintf(text: string): void {
    if (text.length) this.#io.stderr.write(text);
  }

  /** Models perror(3): `<msg>: <strerror(errno)>` on stderr. */
  perror(msg: string, errno: number): void {
    this.eprintf(`${msg}: ${strerror(errno)}\n`);
  }

  /**
   * Models output written to descriptor 1 by another program sharing it (the `cat` that
   * system(3) runs): it bypasses this process's FILE buffer, which system() does not flush.
   */
  writeFd1(text: string): void {
    if (text.length) this.#io.stdout.write(text);
  }

  /** Models fflush(stdout). */
  flush(): void {
    if (this.#pending.length) {
      this.#io.stdout.write(this.#pending);
      this.#pending = '';
    }
  }

  /** Models death by a signal: what is still in the stdout buffer is never written. */
  discard(): void {
    this.#pending = '';
  }
}
