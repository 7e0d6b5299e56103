/**
 * The shared part of hmm-tests.c: constants, struct hmm_buffer, the fixtures' data, the helpers
 * (hmm_open(), hmm_dmirror_cmd(), hmm_buffer_free(), hmm_create_file(), hmm_random()) and the
 * per-test environment (the process the test runs in). Line numbers passed to the checks are the
 * C `__LINE__` of the same check in hmm-tests.c, so a failure prints what a kernel run prints.
 */

import {
  EINTR,
  type EventCounts,
  type Kernel,
  O_EXCL,
  O_RDWR,
  O_TMPFILE,
  type Process,
  type Rng,
  type Task,
} from '@hmm-model/mm-core';
import type { ChildStatus, Fixture, TestContext } from './harness/index.js';
import { ptr, u64, unsigned } from './harness/index.js';
import { type Libc, MAP_FAILED } from './libc.js';
import {
  CMD_ADDR,
  CMD_CPAGES,
  CMD_FAULTS,
  CMD_NPAGES,
  CMD_PTR,
  HMM_DMIRROR_CMD_SIZE,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
} from './uapi.js';
import type { HugetlbSettings } from './vmutil.js';

/** Models TWOMEG (hmm-tests.c). */
export const TWOMEG = 1 << 21;
/** Models HMM_BUFFER_SIZE (hmm-tests.c): 1024 pages of 4 KiB. */
export const HMM_BUFFER_SIZE = 1024 << 12;
/** Models HMM_PATH_MAX (hmm-tests.c). */
export const HMM_PATH_MAX = 64;
/** Models NTIMES (hmm-tests.c). */
export const NTIMES = 10;
/** Models INT_MAX (limits.h). */
export const INT_MAX = 2 ** 31 - 1;
/** Models sizeof(struct hmm_buffer) on x86-64 (two pointers, unsigned long, int, two u64). */
export const SIZEOF_HMM_BUFFER = 48;

/** Models the device enum of hmm-tests.c. */
export const HMM_PRIVATE_DEVICE_ONE = 0;
export const HMM_PRIVATE_DEVICE_TWO = 1;
export const HMM_COHERENCE_DEVICE_ONE = 2;
export const HMM_COHERENCE_DEVICE_TWO = 3;

/** Models ALIGN(x, a) (hmm-tests.c): round x up to a multiple of the power of two a. */
export function ALIGN(x: number, a: number): number {
  return Math.floor((x + (a - 1)) / a) * a;
}

/** Models ffs(3). */
export function ffs(x: number): number {
  if (x === 0) return 0;
  let n = 1;
  while ((x & 1) === 0) {
    x >>>= 1;
    n++;
  }
  return n;
}

/** Models hmm_is_coherent_type() (hmm-tests.c). */
export function hmm_is_coherent_type(devNum: number): boolean {
  return devNum >= HMM_COHERENCE_DEVICE_ONE;
}

/** State of the whole run that tests reach (the machine and the helpers' static data). */
export interface SuiteState {
  readonly kernel: Kernel;
  /** Models the static struct hugetlb_settings of hugepage_settings.c. */
  readonly hugetlb: HugetlbSettings;
  /** Figures of every benchmark_thp_migration run so far (for `--json`). */
  readonly benchmarks: BenchmarkRun[];
}

/** One row of the benchmark table, as written by `--json`. */
export interface BenchmarkRow {
  readonly label: string;
  readonly size: number;
  readonly thp: BenchmarkResults;
  readonly regular: BenchmarkResults;
  /** Model-only extension (JSON only): per-iteration samples, event counts and the memcpy reference. */
  readonly model?: BenchmarkModelRow;
}

/** Model-only: wall-clock and host CPU milliseconds of each timed iteration of one leg. */
export interface BenchmarkSamples {
  readonly wallMs: number[];
  readonly cpuMs: number[];
}

/** Model-only: what one configuration (THP or base pages) of a benchmark row measured. */
export interface BenchmarkModeSamples {
  readonly s2d: BenchmarkSamples;
  readonly d2s: BenchmarkSamples;
  /** Kernel events (core.events) of the last timed MIGRATE_TO_DEV and MIGRATE_TO_SYS. */
  events: { s2d: EventCounts; d2s: EventCounts } | null;
}

/** Model-only: the samples of one row, and a memcpy of the row's size measured right after it. */
export interface BenchmarkModelRow {
  readonly thp: BenchmarkModeSamples;
  readonly regular: BenchmarkModeSamples;
  /** Uint8Array.prototype.set() of `size` bytes between two host buffers (the physical reference). */
  readonly memcpy: BenchmarkSamples;
}

/** Models struct benchmark_results (hmm-tests.c): times in ms, throughputs in "GB/s" (GiB/s). */
export interface BenchmarkResults {
  sys_to_dev_time: number;
  dev_to_sys_time: number;
  throughput_s2d: number;
  throughput_d2s: number;
}

/** One run of benchmark_thp_migration (one variant). */
export interface BenchmarkRun {
  readonly test: string;
  readonly page_size: number;
  readonly thp_size: number;
  readonly iterations: number;
  readonly rows: BenchmarkRow[];
}

/**
 * Models the test's grandchild process of kselftest_harness.h (where setup, body and teardown
 * run) with its libc and its hmm_random() source.
 */
export interface TestEnv {
  readonly suite: SuiteState;
  readonly kernel: Kernel;
  readonly proc: Process;
  readonly libc: Libc;
  /** Models /dev/urandom as read by hmm_random(): a PRNG seeded from `--seed` and the test name. */
  readonly rng: Rng;
  /** Threads (scheduler tasks) the test started; joined when the test process goes away. */
  readonly tasks: Task[];
}

/** Models FIXTURE_VARIANT(hmm) (hmm-tests.c). */
export interface HmmVariant {
  readonly device_number: number;
}

/** Models FIXTURE_VARIANT(hmm2) (hmm-tests.c). */
export interface Hmm2Variant {
  readonly device_number0: number;
  readonly device_number1: number;
}

/** The per-test process, set by the fixture setup. */
class WithEnv {
  #t: TestEnv | null = null;
  /** The process this test runs in (set by FIXTURE_SETUP). */
  get t(): TestEnv {
    if (!this.#t) throw new Error('fixture setup did not run');
    return this.#t;
  }
  set t(env: TestEnv) {
    this.#t = env;
  }
}

/** Models FIXTURE(hmm) (hmm-tests.c): zero-initialised data. */
export class HmmSelf extends WithEnv {
  fd = 0;
  page_size = 0;
  page_shift = 0;
}

/** Models FIXTURE(hmm2) (hmm-tests.c). */
export class Hmm2Self extends WithEnv {
  fd0 = 0;
  fd1 = 0;
  page_size = 0;
  page_shift = 0;
}

/** The two fixtures, for the files that register tests. */
export interface Fixtures {
  readonly hmm: Fixture<HmmSelf, HmmVariant>;
  readonly hmm2: Fixture<Hmm2Self, Hmm2Variant>;
}

/** Models struct hmm_buffer (hmm-tests.c); `addr` is the struct's own malloc()ed address. */
export class HmmBuffer {
  readonly addr: number;
  ptr = 0;
  mirror = 0;
  size = 0;
  fd = -1;
  cpages = 0;
  faults = 0;
  constructor(addr: number) {
    this.addr = addr;
  }

  /** Models the forked child's own copy of the struct (same address, same contents). */
  clone(): HmmBuffer {
    const b = new HmmBuffer(this.addr);
    b.ptr = this.ptr;
    b.mirror = this.mirror;
    b.size = this.size;
    b.fd = this.fd;
    b.cpages = this.cpages;
    b.faults = this.faults;
    return b;
  }
}

/** Models `buffer = malloc(sizeof(*buffer)); ASSERT_NE(buffer, NULL);` at C line `line`. */
export function newBuffer(ctx: TestContext, libc: Libc, line: number): HmmBuffer {
  const addr = libc.malloc(SIZEOF_HMM_BUFFER);
  ctx.ASSERT_NE(ptr(addr), ptr(null), 'buffer', 'NULL', line);
  return new HmmBuffer(addr);
}

/** Models `ASSERT_NE(<p>, NULL)` for a malloc()ed pointer. */
export function assertNotNull(ctx: TestContext, p: number, text: string, line: number): void {
  ctx.ASSERT_NE(ptr(p), ptr(null), text, 'NULL', line);
}

/** Models `ASSERT_NE(<p>, MAP_FAILED)` for an mmap()/mremap() result. */
export function assertMapped(ctx: TestContext, p: number, text: string, line: number): void {
  ctx.ASSERT_NE(ptr(p), ptr(MAP_FAILED), text, 'MAP_FAILED', line);
}

/** Models hmm_open(unit) (hmm-tests.c): prints to stderr when the device cannot be opened. */
export function hmm_open(ctx: TestContext, libc: Libc, unit: number): number {
  const pathname = `/dev/hmm_dmirror${unit}`.slice(0, HMM_PATH_MAX - 1);
  const fd = libc.open(pathname, O_RDWR, 0);
  if (fd < 0) ctx.printErr(`could not open hmm dmirror driver (${pathname})`);
  return fd;
}

/**
 * Models hmm_dmirror_cmd() (hmm-tests.c): a struct hmm_dmirror_cmd on the stack with addr, ptr
 * and npages set, ioctl() retried on EINTR; on success cpages/faults are copied into the buffer
 * and 0 is returned, otherwise -errno.
 */
export function hmm_dmirror_cmd(
  libc: Libc,
  fd: number,
  request: number,
  buffer: HmmBuffer,
  npages: number,
): number {
  const cmd = libc.stackAlloc(HMM_DMIRROR_CMD_SIZE);
  const proc = libc.proc;
  proc.writeU64(cmd + CMD_ADDR, BigInt.asUintN(64, BigInt(buffer.ptr)));
  proc.writeU64(cmd + CMD_PTR, BigInt.asUintN(64, BigInt(buffer.mirror)));
  proc.writeU64(cmd + CMD_NPAGES, BigInt.asUintN(64, BigInt(npages)));
  for (;;) {
    const ret = libc.ioctl(fd, request, cmd);
    if (ret === 0) break;
    if (libc.errno === EINTR) continue;
    return -libc.errno;
  }
  buffer.cpages = Number(proc.readU64(cmd + CMD_CPAGES));
  buffer.faults = Number(proc.readU64(cmd + CMD_FAULTS));
  return 0;
}

/** Models hmm_migrate_sys_to_dev() (hmm-tests.c). */
export function hmm_migrate_sys_to_dev(libc: Libc, fd: number, buffer: HmmBuffer, npages: number): number {
  return hmm_dmirror_cmd(libc, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages);
}

/** Models hmm_migrate_dev_to_sys() (hmm-tests.c). */
export function hmm_migrate_dev_to_sys(libc: Libc, fd: number, buffer: HmmBuffer, npages: number): number {
  return hmm_dmirror_cmd(libc, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages);
}

/** Models hmm_buffer_free() (hmm-tests.c): munmap ptr (if set) for size bytes, free the mirror and the struct. */
export function hmm_buffer_free(libc: Libc, buffer: HmmBuffer | null): void {
  if (buffer === null) return;
  if (buffer.ptr) {
    libc.munmap(buffer.ptr, buffer.size);
    buffer.ptr = 0;
  }
  libc.free(buffer.mirror);
  libc.free(buffer.addr);
}

/** Models hmm_create_file() (hmm-tests.c): an O_TMPFILE in /tmp truncated to size, or -1. */
export function hmm_create_file(libc: Libc, size: number): number {
  const fd = libc.open('/tmp', O_TMPFILE | O_EXCL | O_RDWR, 0o600);
  if (fd >= 0) {
    let r: number;
    do {
      r = libc.ftruncate(fd, size);
    } while (r === -1 && libc.errno === EINTR);
    if (!r) return fd;
    libc.close(fd);
  }
  return -1;
}

/** Models hmm_random() (hmm-tests.c): 4 random bytes as an unsigned int. */
export function hmm_random(t: TestEnv): number {
  return t.rng.next() >>> 0;
}

/** The std prologue of most tests: a malloc()ed buffer with a `mirrorSize`-byte mirror and an mmap()ed ptr. */
export interface StdBuffer {
  readonly buffer: HmmBuffer;
  readonly npages: number;
  readonly size: number;
}

/**
 * Models the common prologue: `npages = ALIGN(HMM_BUFFER_SIZE, page_size) >> page_shift;
 * ASSERT_NE(npages, 0); size = npages << page_shift;` then {@link allocBuffer}. `lines` are the C
 * lines of ASSERT_NE(npages, 0), ASSERT_NE(buffer, NULL), ASSERT_NE(buffer->mirror, NULL) and
 * ASSERT_NE(buffer->ptr, MAP_FAILED).
 */
export function stdBuffer(
  ctx: TestContext,
  self: { page_size: number; page_shift: number; t: TestEnv },
  prot: number,
  flags: number,
  lines: readonly [number, number, number, number],
): StdBuffer {
  const npages = Math.floor(ALIGN(HMM_BUFFER_SIZE, self.page_size) / 2 ** self.page_shift);
  ctx.ASSERT_NE(u64(npages), 0, 'npages', '0', lines[0]);
  const size = npages * 2 ** self.page_shift;
  const buffer = allocBuffer(ctx, self.t.libc, size, size, prot, flags, -1, [lines[1], lines[2], lines[3]]);
  return { buffer, npages, size };
}

/**
 * Models `buffer = malloc(..); ASSERT_NE(buffer, NULL); buffer->fd = fd; buffer->size = size;
 * buffer->mirror = malloc(mirrorSize); ASSERT_NE(buffer->mirror, NULL); buffer->ptr =
 * mmap(NULL, size, prot, flags, buffer->fd, 0); ASSERT_NE(buffer->ptr, MAP_FAILED);`.
 */
export function allocBuffer(
  ctx: TestContext,
  libc: Libc,
  size: number,
  mirrorSize: number,
  prot: number,
  flags: number,
  fd: number,
  lines: readonly [number, number, number],
): HmmBuffer {
  const buffer = newBuffer(ctx, libc, lines[0]);
  buffer.fd = fd;
  buffer.size = size;
  buffer.mirror = libc.malloc(mirrorSize);
  assertNotNull(ctx, buffer.mirror, 'buffer->mirror', lines[1]);
  buffer.ptr = libc.mmap(0, size, prot, flags, buffer.fd, 0);
  assertMapped(ctx, buffer.ptr, 'buffer->ptr', lines[2]);
  return buffer;
}

/** The C type of the right-hand side of an int comparison: `int` (signed) or `unsigned long`. */
export type RhsType = 'int' | 'ulong';

/**
 * Models `for (i = from; i < to; ++i) ASSERT_EQ(ptr[i], <expected(i)>);` with `int *ptr = base`:
 * loads a page at a time and calls ASSERT_EQ (which prints and aborts) only for the first int
 * that differs. `expected` returns the C value (e.g. `-i` for an unsigned long `-i`).
 */
export function assertInts(
  ctx: TestContext,
  libc: Libc,
  base: number,
  from: number,
  to: number,
  expected: (i: number) => number,
  rhs: RhsType,
  aText: string,
  bText: string,
  line: number,
): void {
  libc.scanInts(base, from, to, (start, ints) => {
    for (let k = 0; k < ints.length; k++) {
      const e = expected(start + k);
      if (ints[k] !== e) ctx.ASSERT_EQ(ints[k], rhs === 'ulong' ? u64(e) : e, aText, bText, line);
    }
    return undefined;
  });
}

/**
 * Models `for (i = from; i < to; ++i) ASSERT_EQ(ptr[i]++, <expected(i)>);`: each page is loaded,
 * checked and stored back incremented (up to the failing int when a check fails).
 */
export function assertIntsPostInc(
  ctx: TestContext,
  libc: Libc,
  base: number,
  from: number,
  to: number,
  expected: (i: number) => number,
  aText: string,
  bText: string,
  line: number,
): void {
  libc.scanInts(base, from, to, (start, ints) => {
    const out = new Int32Array(ints.length);
    for (let k = 0; k < ints.length; k++) {
      const e = expected(start + k);
      if (ints[k] !== e) {
        if (k > 0) libc.proc.writeInts(base + start * 4, out.subarray(0, k));
        libc.setIntAt(base, start + k, ints[k] + 1);
        ctx.ASSERT_EQ(ints[k], u64(e), aText, bText, line);
      }
      out[k] = ints[k] + 1;
    }
    libc.proc.writeInts(base + start * 4, out);
    return undefined;
  });
}

/** Models `ASSERT_EQ(m[i], <expected>)` for `unsigned char *m` (m[i] printed as unsigned). */
export function assertByte(
  ctx: TestContext,
  m: number,
  expected: number,
  aText: string,
  bText: string,
  line: number,
): void {
  ctx.ASSERT_EQ(unsigned(m, 8), expected, aText, bText, line);
}

/** Models `ASSERT_EQ(<expected>, m[i])` (constant first, as in hmm_gup_test and hmm_cow_in_device). */
export function assertByteRev(
  ctx: TestContext,
  expected: number,
  m: number,
  aText: string,
  bText: string,
  line: number,
): void {
  ctx.ASSERT_EQ(expected, unsigned(m, 8), aText, bText, line);
}

/**
 * Models a fork() whose child runs `child` to its `_exit()` before the parent goes on (a valid
 * interleaving of the C program): the child is the kernel's new process, with its own libc and
 * a harness context sharing _metadata. Returns the pid in the parent, or -1 when fork() failed.
 * The child's end (exit status, SIGABRT from a failed ASSERT, a fatal fault) becomes the wait
 * status the parent's waitpid() collects.
 */
export function forkAndRun(
  ctx: TestContext,
  t: TestEnv,
  child: (cctx: TestContext, libc: Libc) => void,
): number {
  const pid = t.libc.fork();
  if (pid < 0) return pid;
  const proc = t.kernel.task(pid);
  if (!proc) throw new Error(`fork() returned pid ${pid} but no such task exists`);
  const libc = t.libc.forChild(proc);
  const status = ctx.runChild((cctx) => child(cctx, libc));
  settleChild(proc, status);
  return pid;
}

/** Models the end of a forked child as its process: exit(status) or death by the signal. */
function settleChild(proc: Process, status: ChildStatus): void {
  if (proc.state !== 'running') return;
  if (status.signaled) proc.doExit(0, status.termsig);
  else proc.exit(status.exitStatus);
}
