/**
 * hmm-tests.c, last group (C lines 2753-2950): the THP migration throughput benchmark
 * (benchmark_thp_migration, TEST_F_TIMEOUT 120) with get_time_ms(), hmm_buffer_alloc(),
 * print_benchmark_results() and run_migration_benchmark(). The table goes to stdout exactly as
 * the C printf()s format it; `--json FILE` also writes the figures of every run as JSON.
 */

import { writeFileSync } from 'node:fs';
import {
  eventsSince,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import {
  type BenchmarkModeSamples,
  type BenchmarkResults,
  type BenchmarkRow,
  type BenchmarkRun,
  type BenchmarkSamples,
  type Fixtures,
  HmmBuffer,
  hmm_buffer_free,
  hmm_migrate_dev_to_sys,
  hmm_migrate_sys_to_dev,
  INT_MAX,
  SIZEOF_HMM_BUFFER,
  type SuiteState,
  TWOMEG,
} from './common.js';
import type { TestContext } from './harness/index.js';
import { type Libc, MAP_FAILED, SIZEOF_INT } from './libc.js';
import { read_pmd_pagesize } from './vmutil.js';

/**
 * Models printf("%.<prec>f", x) (glibc): the exact decimal value of the double rounded
 * half-to-even, with glibc's spellings of infinities and NaNs ("inf", "-nan").
 */
export function cFixed(x: number, prec: number): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const neg = bits >> 63n === 1n;
  if (Number.isNaN(x)) return neg ? '-nan' : 'nan';
  if (!Number.isFinite(x)) return neg ? '-inf' : 'inf';
  const expBits = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  let e: number;
  if (expBits === 0) e = -1074;
  else {
    mant |= 1n << 52n;
    e = expBits - 1075;
  }
  let num = mant * 10n ** BigInt(prec);
  let den = 1n;
  if (e >= 0) num <<= BigInt(e);
  else den <<= BigInt(-e);
  let q = num / den;
  const twice = 2n * (num % den);
  if (twice > den || (twice === den && (q & 1n) === 1n)) q += 1n;
  let s = q.toString();
  if (prec > 0) {
    s = s.padStart(prec + 1, '0');
    s = `${s.slice(0, s.length - prec)}.${s.slice(s.length - prec)}`;
  }
  return (neg ? '-' : '') + s;
}

/** Models get_time_ms() (hmm-tests.c): wall-clock milliseconds as a double. */
function get_time_ms(): number {
  return performance.now();
}

/** Model-only: host CPU time of this process in milliseconds (user + system). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Model-only: empty sample lists for one configuration. */
function emptyModeSamples(): BenchmarkModeSamples {
  return { s2d: { wallMs: [], cpuMs: [] }, d2s: { wallMs: [], cpuMs: [] }, events: null };
}

/**
 * Model-only: the physical reference of a row, a memcpy (Uint8Array.prototype.set) of `size`
 * bytes between two host buffers touched beforehand, `runs` times.
 */
function measureMemcpy(size: number, runs: number): BenchmarkSamples {
  const src = new Uint8Array(size).fill(0x5a);
  const dst = new Uint8Array(size).fill(1);
  const out: BenchmarkSamples = { wallMs: [], cpuMs: [] };
  for (let i = 0; i < runs; i++) {
    const c = cpuMs();
    const t = get_time_ms();
    dst.set(src);
    out.wallMs.push(get_time_ms() - t);
    out.cpuMs.push(cpuMs() - c);
  }
  return out;
}

/** Models hmm_buffer_alloc() (hmm-tests.c): no NULL checks; the mirror is filled with 0xFF. */
function hmm_buffer_alloc(libc: Libc, size: number): HmmBuffer {
  const buffer = new HmmBuffer(libc.malloc(SIZEOF_HMM_BUFFER));

  buffer.fd = -1;
  buffer.size = size;
  buffer.mirror = libc.malloc(size);
  libc.memset(buffer.mirror, 0xff, size);
  return buffer;
}

/** Models print_benchmark_results() (hmm-tests.c). */
function print_benchmark_results(
  ctx: TestContext,
  test_name: string,
  buffer_size: number,
  thp: BenchmarkResults,
  regular: BenchmarkResults,
): void {
  const s2d_improvement = ((regular.sys_to_dev_time - thp.sys_to_dev_time) / regular.sys_to_dev_time) * 100.0;
  const d2s_improvement = ((regular.dev_to_sys_time - thp.dev_to_sys_time) / regular.dev_to_sys_time) * 100.0;
  const throughput_s2d_improvement =
    ((thp.throughput_s2d - regular.throughput_s2d) / regular.throughput_s2d) * 100.0;
  const throughput_d2s_improvement =
    ((thp.throughput_d2s - regular.throughput_d2s) / regular.throughput_d2s) * 100.0;

  ctx.print(`\n=== ${test_name} (${cFixed(buffer_size / (1024.0 * 1024.0), 1)} MB) ===`);
  ctx.print('                     | With THP        | Without THP     | Improvement');
  ctx.print('---------------------------------------------------------------------');
  ctx.print(
    `Sys->Dev Migration   | ${cFixed(thp.sys_to_dev_time, 3)} ms        | ${cFixed(regular.sys_to_dev_time, 3)} ms        | ${cFixed(s2d_improvement, 1)}%`,
  );
  ctx.print(
    `Dev->Sys Migration   | ${cFixed(thp.dev_to_sys_time, 3)} ms        | ${cFixed(regular.dev_to_sys_time, 3)} ms        | ${cFixed(d2s_improvement, 1)}%`,
  );
  ctx.print(
    `S->D Throughput      | ${cFixed(thp.throughput_s2d, 2)} GB/s      | ${cFixed(regular.throughput_s2d, 2)} GB/s      | ${cFixed(throughput_s2d_improvement, 1)}%`,
  );
  ctx.print(
    `D->S Throughput      | ${cFixed(thp.throughput_d2s, 2)} GB/s      | ${cFixed(regular.throughput_d2s, 2)} GB/s      | ${cFixed(throughput_d2s_improvement, 1)}%`,
  );
}

/**
 * Models run_migration_benchmark() (hmm-tests.c): one warm-up round trip, then `iterations`
 * timed MIGRATE_TO_DEV / MIGRATE_TO_SYS pairs on an unaligned buffer with or without
 * MADV_HUGEPAGE. Returns 0, or the failing call's result (the buffer is then leaked, as in C).
 */
function run_migration_benchmark(
  libc: Libc,
  fd: number,
  use_thp: number,
  buffer_size: number,
  iterations: number,
  results: BenchmarkResults,
  samples: BenchmarkModeSamples = emptyModeSamples(),
): number {
  const npages = Math.floor(buffer_size / libc.sysconfPageSize());
  let s2d_total = 0;
  let d2s_total = 0;
  let ret: number;

  const buffer = hmm_buffer_alloc(libc, buffer_size);

  /* Map memory */
  buffer.ptr = libc.mmap(0, buffer_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (buffer.ptr === MAP_FAILED) return -1;

  /* Apply THP hint if requested */
  if (use_thp) ret = libc.madvise(buffer.ptr, buffer_size, MADV_HUGEPAGE);
  else ret = libc.madvise(buffer.ptr, buffer_size, MADV_NOHUGEPAGE);

  if (ret) return ret;

  /* Initialize memory to make sure pages are allocated */
  libc.fillInts(buffer.ptr, 0, buffer_size / SIZEOF_INT, (i) => i & 0xff);

  /* Warmup iteration */
  ret = hmm_migrate_sys_to_dev(libc, fd, buffer, npages);
  if (ret) return ret;

  ret = hmm_migrate_dev_to_sys(libc, fd, buffer, npages);
  if (ret) return ret;

  /* Benchmark iterations */
  const events = libc.kernel.core.events;
  for (let i = 0; i < iterations; i++) {
    /* System to device migration */
    let ev = events.snapshot();
    let cpu = cpuMs();
    let start = get_time_ms();

    ret = hmm_migrate_sys_to_dev(libc, fd, buffer, npages);
    if (ret) return ret;

    let end = get_time_ms();
    s2d_total += end - start;
    samples.s2d.wallMs.push(end - start);
    samples.s2d.cpuMs.push(cpuMs() - cpu);
    const s2dEvents = eventsSince(events, ev);

    /* Device to system migration */
    ev = events.snapshot();
    cpu = cpuMs();
    start = get_time_ms();

    ret = hmm_migrate_dev_to_sys(libc, fd, buffer, npages);
    if (ret) return ret;

    end = get_time_ms();
    d2s_total += end - start;
    samples.d2s.wallMs.push(end - start);
    samples.d2s.cpuMs.push(cpuMs() - cpu);
    samples.events = { s2d: s2dEvents, d2s: eventsSince(events, ev) };
  }

  /* Calculate average times and throughput */
  results.sys_to_dev_time = s2d_total / iterations;
  results.dev_to_sys_time = d2s_total / iterations;
  results.throughput_s2d = buffer_size / (1024.0 * 1024.0 * 1024.0) / (results.sys_to_dev_time / 1000.0);
  results.throughput_d2s = buffer_size / (1024.0 * 1024.0 * 1024.0) / (results.dev_to_sys_time / 1000.0);

  /* Cleanup */
  hmm_buffer_free(libc, buffer);
  return 0;
}

function emptyResults(): BenchmarkResults {
  return { sys_to_dev_time: 0, dev_to_sys_time: 0, throughput_s2d: 0, throughput_d2s: 0 };
}

/** Writes every benchmark run of this process so far to `path` (the `--json FILE` extension). */
function writeJson(path: string, suite: SuiteState): void {
  writeFileSync(path, `${JSON.stringify({ benchmarks: suite.benchmarks }, null, 2)}\n`);
}

/** Registers benchmark_thp_migration. */
export function registerBenchmark({ hmm }: Fixtures): void {
  /*
   * Benchmark THP migration with different buffer sizes
   */
  hmm.TEST_F_TIMEOUT('benchmark_thp_migration', 120, (ctx, self) => {
    const { libc, suite } = self.t;
    let thp_size = read_pmd_pagesize(libc);
    const iterations = 5;

    if (!thp_size) thp_size = TWOMEG;

    ctx.print('\nHMM THP Migration Benchmark');
    ctx.print('---------------------------');
    ctx.print(`System page size: ${libc.sysconfPageSize()} bytes`);

    /* Test different buffer sizes */
    const test_sizes = [
      thp_size / 4 /* quarter THP */,
      thp_size / 2 /* half THP */,
      thp_size /* single THP */,
      thp_size * 2 /* two THPs */,
      thp_size * 4 /* four THPs */,
      thp_size * 8 /* eight THPs */,
      thp_size * 128 /* one twenty eight THPs */,
    ];

    const test_names = [
      'Small Buffer',
      'Half THP Size',
      'Single THP Size',
      'Two THP Size',
      'Four THP Size',
      'Eight THP Size',
      'One twenty eight THP Size',
    ];

    const run: BenchmarkRun = {
      test: ctx.fullName,
      page_size: libc.sysconfPageSize(),
      thp_size,
      iterations,
      rows: [],
    };
    suite.benchmarks.push(run);

    /* Run all tests */
    for (let i = 0; i < test_sizes.length; i++) {
      /* Skip test sizes exceeding INT_MAX to avoid overflow */
      if (test_sizes[i] > INT_MAX) break;

      const thp_results = emptyResults();
      const regular_results = emptyResults();
      const thp_samples = emptyModeSamples();
      const regular_samples = emptyModeSamples();

      /* Test with THP */
      ctx.ASSERT_EQ(
        run_migration_benchmark(libc, self.fd, 1, test_sizes[i], iterations, thp_results, thp_samples),
        0,
        'run_migration_benchmark(self->fd, 1, test_sizes[i], iterations, &thp_results)',
        '0',
        2939,
      );

      /* Test without THP */
      ctx.ASSERT_EQ(
        run_migration_benchmark(
          libc,
          self.fd,
          0,
          test_sizes[i],
          iterations,
          regular_results,
          regular_samples,
        ),
        0,
        'run_migration_benchmark(self->fd, 0, test_sizes[i], iterations, &regular_results)',
        '0',
        2943,
      );

      /* Print results */
      print_benchmark_results(ctx, test_names[i], test_sizes[i], thp_results, regular_results);
      const row: BenchmarkRow = {
        label: test_names[i],
        size: test_sizes[i],
        thp: thp_results,
        regular: regular_results,
        // Model-only: measured only when the figures are written out.
        model: ctx.options.json
          ? {
              thp: thp_samples,
              regular: regular_samples,
              memcpy: measureMemcpy(test_sizes[i], iterations + 1),
            }
          : undefined,
      };
      run.rows.push(row);
      if (ctx.options.json) writeJson(ctx.options.json, suite);
    }
    if (ctx.options.json) writeJson(ctx.options.json, suite);
  });
}
