/**
 * A selftest binary as a process of the simulated machine: exec (a fresh process with the
 * selftests' libc), main(), and its end as the shell sees it: exit(code) after stdio is flushed,
 * or death by a signal (a fault the model delivers) with the stdout buffer lost and status
 * 128 + signo. A JavaScript exception from the model is not a kernel behaviour: it is reported
 * on stderr as a model error and the program ends with status 1.
 */

import { type Kernel, mapsText, O_RDONLY, type Process, SignalDelivered } from '@hmm-model/mm-core';
import { describeError, ExitRequest, Libc } from '@hmm-model/selftests';
import { GlibcRandom } from './glibc-rand.js';
import { Ksft } from './ksft.js';
import { type ProgramIO, Stdio } from './stdio.js';

/** Models what a test program reaches: its process, libc, stdio, kselftest state and clocks. */
export interface ProgramEnv {
  /** argv, argv[0] included (e.g. `./mremap_test`). */
  readonly argv: readonly string[];
  readonly kernel: Kernel;
  readonly proc: Process;
  readonly libc: Libc;
  readonly stdio: Stdio;
  readonly ksft: Ksft;
  /** Models the rand()/srand() state of the program's libc. */
  readonly rand: GlibcRandom;
  /** Models time(NULL). */
  time(): number;
  /** Models clock_gettime(CLOCK_MONOTONIC) in nanoseconds. */
  monotonicNs(): number;
}

/** Models main(argc, argv): returns main's return value, or ends the program by throwing ExitRequest. */
export type ProgramMain = (env: ProgramEnv) => number;

/** How a program ended, as waitpid() reports it and as `$?` shows it. */
export interface ProgramResult {
  /** `$?`: the exit code (0..255), or 128 + signal number. */
  readonly status: number;
  /** The signal that killed the program, if any. */
  readonly signal?: number;
}

/**
 * Models a shell starting `argv` on the machine and waiting for it: a fresh process (exec), the
 * program's main(), then exit() or its death.
 */
export function runProgram(
  kernel: Kernel,
  main: ProgramMain,
  argv: readonly string[],
  io: ProgramIO,
): ProgramResult {
  const stdio = new Stdio(io);
  const proc = kernel.spawn();
  let result: ProgramResult;
  try {
    const libc = new Libc(proc, kernel);
    const env: ProgramEnv = {
      argv,
      kernel,
      proc,
      libc,
      stdio,
      ksft: new Ksft(stdio, io.env ?? {}),
      rand: new GlibcRandom(1),
      time: io.time ?? (() => Math.floor(Date.now() / 1000)),
      monotonicNs: io.monotonicNs ?? (() => Math.round(performance.now() * 1e6)),
    };
    const code = main(env);
    stdio.flush();
    result = { status: code & 0xff };
  } catch (error) {
    if (error instanceof ExitRequest) {
      stdio.flush();
      result = { status: error.code & 0xff };
    } else if (error instanceof SignalDelivered && error.pid === proc.pid) {
      stdio.discard();
      result = { status: 128 + error.signo, signal: error.signo };
    } else {
      stdio.flush();
      const [first, ...rest] = describeError(error).split('\n');
      stdio.eprintf(`${argv[0]}: model error: ${first}\n`);
      for (const line of rest) stdio.eprintf(`${line}\n`);
      result = { status: 1 };
    }
  }
  if (proc.state === 'running') proc.exit(result.status);
  return result;
}

/** Models dump_maps() of the selftests: `system("cat /proc/<pid>/maps")` writing to descriptor 1. */
export function dump_maps(env: ProgramEnv): void {
  env.stdio.writeFd1(mapsText(env.proc.mm));
}

/**
 * Models fopen(path, "r") + reading to EOF with getline()/fgets(): the whole text, or null with
 * errno set when the file cannot be opened.
 */
export function readWholeFile(libc: Libc, path: string): string | null {
  const fd = libc.open(path, O_RDONLY);
  if (fd < 0) return null;
  const chunks: Uint8Array[] = [];
  for (let pos = 0; ; ) {
    const buf = new Uint8Array(4096);
    const n = libc.pread(fd, buf, buf.length, pos);
    if (n <= 0) break;
    chunks.push(buf.subarray(0, n));
    pos += n;
  }
  libc.close(fd);
  return chunks.map((c) => new TextDecoder().decode(c)).join('');
}

/** Models MFD_CLOEXEC (include/uapi/linux/memfd.h). */
export const MFD_CLOEXEC = 0x0001;

/**
 * Models memfd_create(name, flags) through libc: an unlinked shmem file of the internal mount
 * (its huge pages follow shmem_enabled), opened read-write; MFD_HUGETLB is -ENOSYS (the model
 * has no hugetlbfs files). Returns the descriptor or -1 with errno.
 */
export function memfd_create(libc: Libc, name: string, flags: number): number {
  const r = libc.proc.memfdCreate(name, flags);
  if (r < 0) {
    libc.errno = -r;
    return -1;
  }
  return r;
}

/** Models MFD_HUGETLB (include/uapi/linux/memfd.h). */
export const MFD_HUGETLB = 0x0004;
/** Models MFD_HUGE_SHIFT (include/uapi/linux/memfd.h). */
export const MFD_HUGE_SHIFT = 26;
/**
 * Models usleep(usec) (glibc: nanosleep(2)): the program sleeps and the kernel threads due
 * meanwhile run (the model's khugepaged, Kernel.nanosleep()). Returns 0.
 */
export function usleep(env: ProgramEnv, usec: number): number {
  env.kernel.nanosleep(usec * 1000);
  return 0;
}
