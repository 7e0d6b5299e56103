/**
 * Port of tools/testing/selftests/mm/mremap_test.c (v6.19 text: 15 remap cases, the 2 expand
 * merges and 9 further cases; the 3 1 GiB timing cases run only with `-t 0` or `-t` >= 1024, as
 * the C option decides). Output, `rand()` patterns (glibc's generator), exit code (only the
 * remap cases count as failures, as in C) and the unbuffered-stderr / block-buffered-stdout order
 * of a piped run are the C binary's. The program never calls ksft_print_header(): no TAP header,
 * and stdout stays fully buffered when it is a pipe.
 *
 * `mremap move multiple invalid vmas` needs userfaultfd(2), which the model does not have: the
 * port is the C file's `#ifndef __NR_userfaultfd` build, which reports the kernel's own
 * `SKIP ... - missing uffd` (without a newline, as in C).
 */

import {
  EEXIST,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { ExitRequest, MAP_FAILED, strerror } from '@hmm-model/selftests';
import { fmtHashX, fmtWidth } from '../printf.js';
import type { ProgramEnv } from '../program.js';
import {
  _1GB,
  _1MB,
  _2GB,
  _2MB,
  _4MB,
  _5MB,
  big,
  type Config,
  type Globals,
  get_source_mapping,
  MapsFile,
  PMD,
  PUD,
  parse_args,
  small,
  u32mul,
} from './mremap-test-common.js';
import {
  mremap_expand_merge,
  mremap_expand_merge_offset,
  mremap_move_1mb_from_start,
  mremap_move_multi_invalid_vmas,
  mremap_move_multiple_vmas,
  mremap_move_multiple_vmas_split,
  mremap_move_within_range,
  mremap_shrink_multiple_vmas,
} from './mremap-test-misc.js';
import { copyUser, fillRand, memcmpUser } from './user-mem.js';

const EXPECT_SUCCESS = 0;
const EXPECT_FAILURE = 1;
const NON_OVERLAPPING = 0;
const OVERLAPPING = 1;
/** Models VALIDATION_DEFAULT_THRESHOLD (4 MB). */
const VALIDATION_DEFAULT_THRESHOLD = 4;
/** Models VALIDATION_NO_THRESHOLD: verify the entire region. */
const VALIDATION_NO_THRESHOLD = 0;

/** Models struct test (mremap_test.c). */
interface Test {
  readonly name: string;
  readonly config: Config;
  readonly expect_failure: number;
}

/** Models MAKE_TEST(source_align, destination_align, size, overlaps, should_fail, test_name). */
function MAKE_TEST(
  src: number,
  dst: number,
  size: number,
  overlaps: number,
  fail: number,
  name: string,
): Test {
  return {
    name,
    config: {
      src_alignment: src,
      dest_alignment: dst,
      region_size: size,
      overlapping: overlaps,
      dest_preamble_size: 0,
    },
    expect_failure: fail,
  };
}

/** Models get_sqrt(val) (mremap_test.c), binary search as written (`high = mid - 1` every round). */
function get_sqrt(val: number): number {
  let low = 1;
  let high = 2 ** 20;
  while (low <= high) {
    const mid = low + Math.floor((high - low) / 2);
    const temp = mid * mid;
    if (temp === val) return mid;
    if (temp < val) low = mid + 1;
    high = mid - 1;
  }
  return low;
}

/** Models is_remap_region_valid(addr, size): false only when a MAP_FIXED_NOREPLACE probe says EEXIST. */
function is_remap_region_valid(g: Globals, addr: number, size: number): boolean {
  const { libc } = g.env;
  let ret = true;
  /* Use MAP_FIXED_NOREPLACE flag to ensure region is not mapped */
  const remap_addr = libc.mmap(
    addr,
    size,
    PROT_READ | PROT_WRITE,
    MAP_FIXED_NOREPLACE | MAP_ANONYMOUS | MAP_SHARED,
    -1,
    0,
  );
  if (remap_addr === MAP_FAILED) {
    if (libc.errno === EEXIST) ret = false;
  } else {
    libc.munmap(remap_addr, size);
  }
  return ret;
}

/**
 * Models the chunked verification of remap_region(): compare `len` bytes at `addr` with the
 * random array, get_sqrt(len) chunks by memcmp(), byte by byte only in a chunk that differs, then
 * the remainder; prints the first mismatch as C does. Returns whether all matched.
 */
function verifyAgainstRand(g: Globals, addr: number, rand_addr: number, len: number, what: string): boolean {
  const { proc, ksft } = g.env;
  const report = (t: number): false => {
    ksft.print_msg(`${what} after remap doesn't match at offset ${t}\n`);
    ksft.print_msg(
      `Expected: ${fmtHashX(proc.readU8(rand_addr + t))}\t Got: ${fmtHashX(proc.readU8(addr + t))}\n`,
    );
    return false;
  };
  const num_chunks = get_sqrt(len);
  const chunk_size = Math.floor(len / num_chunks);
  for (let i = 0; i < num_chunks; ++i) {
    const shift = i * chunk_size;
    if (!memcmpUser(g.env, addr + shift, rand_addr + shift, chunk_size)) continue;
    /* brute force iteration only over mismatch segment */
    const a = proc.readBytes(addr + shift, chunk_size);
    const b = proc.readBytes(rand_addr + shift, chunk_size);
    for (let t = 0; t < chunk_size; ++t) if (a[t] !== b[t]) return report(shift + t);
  }
  /*
   * if threshold is not divisible by num_chunks, then check the
   * last chunk
   */
  for (let t = num_chunks * chunk_size; t < len; ++t) {
    if (proc.readU8(addr + t) !== proc.readU8(rand_addr + t)) return report(t);
  }
  return true;
}

/**
 * Models remap_region(c, threshold_mb, rand_addr): map the source, copy the pattern in, pick the
 * destination (after an optional preamble mapping), mremap(MREMAP_MAYMOVE | MREMAP_FIXED) and
 * verify; returns the time of the mremap() call in ns, or -1. The labels of the C cleanup
 * (clean_up_dest, clean_up_dest_preamble, clean_up_src) end the three nested helpers.
 */
function remap_region(g: Globals, c: Config, threshold_mb: number, rand_addr: number): number {
  const threshold =
    threshold_mb === VALIDATION_NO_THRESHOLD
      ? c.region_size
      : Math.min(u32mul(threshold_mb, _1MB), c.region_size);

  const src_addr = get_source_mapping(g, c);
  if (!src_addr) return -1;
  const ret = remapFromSource(g, c, threshold, src_addr, rand_addr);
  // clean_up_src:
  g.env.libc.munmap(src_addr, c.region_size);
  return ret;
}

/** remap_region() from the pattern copy to `clean_up_src:`. */
function remapFromSource(
  g: Globals,
  c: Config,
  threshold: number,
  src_addr: number,
  rand_addr: number,
): number {
  const { libc, ksft } = g.env;

  /* Set byte pattern for source block. */
  copyUser(g.env, src_addr, rand_addr, threshold);

  /* Mask to zero out lower bits of address for alignment */
  const align_mask = ~(big(c.dest_alignment) - 1n);
  /* Offset of destination address from the end of the source region */
  const offset = c.overlapping ? -c.dest_alignment : c.dest_alignment;
  let addr = BigInt.asUintN(64, (big(src_addr) + big(c.region_size) + BigInt(offset)) & align_mask);

  /* Remap after the destination block preamble. */
  addr += big(c.dest_preamble_size);

  /* See comment in get_source_mapping() */
  if ((addr & big(c.dest_alignment)) === 0n) addr |= big(c.dest_alignment);

  /* Don't destroy existing mappings unless expected to overlap */
  while (!is_remap_region_valid(g, small(addr), c.region_size) && !c.overlapping) {
    /* Check for unsigned overflow */
    const tmp_addr = BigInt.asUintN(64, addr + big(c.dest_alignment));
    if (tmp_addr < addr) {
      ksft.print_msg("Couldn't find a valid region to remap to\n");
      return -1;
    }
    addr += big(c.dest_alignment);
  }

  let dest_preamble_addr = 0;
  if (c.dest_preamble_size) {
    dest_preamble_addr = libc.mmap(
      small(addr) - c.dest_preamble_size,
      c.dest_preamble_size,
      PROT_READ | PROT_WRITE,
      MAP_FIXED_NOREPLACE | MAP_ANONYMOUS | MAP_SHARED,
      -1,
      0,
    );
    if (dest_preamble_addr === MAP_FAILED) {
      ksft.print_msg(`Failed to map dest preamble region: ${strerror(libc.errno)}\n`);
      return -1;
    }

    /* Set byte pattern for the dest preamble block. */
    copyUser(g.env, dest_preamble_addr, rand_addr, c.dest_preamble_size);
  }

  const ret = remapAndVerify(g, c, threshold, src_addr, small(addr), dest_preamble_addr, rand_addr);
  // clean_up_dest_preamble:
  if (c.dest_preamble_size && dest_preamble_addr) libc.munmap(dest_preamble_addr, c.dest_preamble_size);
  return ret;
}

/** remap_region() from the timed mremap() to `clean_up_dest_preamble:`. */
function remapAndVerify(
  g: Globals,
  c: Config,
  threshold: number,
  src_addr: number,
  addr: number,
  dest_preamble_addr: number,
  rand_addr: number,
): number {
  const { libc, ksft } = g.env;
  const t_start = g.env.monotonicNs();
  const dest_addr = libc.mremap(src_addr, c.region_size, c.region_size, MREMAP_MAYMOVE | MREMAP_FIXED, addr);
  const t_end = g.env.monotonicNs();

  if (dest_addr === MAP_FAILED) {
    ksft.print_msg(`mremap failed: ${strerror(libc.errno)}\n`);
    return -1;
  }

  /*
   * Verify byte pattern after remapping. Employ an algorithm with a
   * square root time complexity in threshold: divide the range into
   * chunks, if memcmp() returns non-zero, only then perform an
   * iteration in that chunk to find the mismatch index.
   */
  let ret = -1;
  if (
    verifyAgainstRand(g, dest_addr, rand_addr, threshold, 'Data') &&
    /* Verify the dest preamble byte pattern after remapping */
    (!c.dest_preamble_size ||
      verifyAgainstRand(g, dest_preamble_addr, rand_addr, c.dest_preamble_size, 'Preamble data'))
  ) {
    ret = t_end - t_start;
  }

  /*
   * Since the destination address is specified using MREMAP_FIXED, subsequent
   * mremap will unmap any previous mapping at the address range specified by
   * dest_addr and region_size. This significantly affects the remap time of
   * subsequent tests. So we clean up mappings after each test.
   */
  // clean_up_dest:
  libc.munmap(dest_addr, c.region_size);
  return ret;
}

/** Models run_mremap_test_case(test_case, &failures, threshold_mb, rand_addr). Returns the new failure count. */
function run_mremap_test_case(
  g: Globals,
  test_case: Test,
  failures: number,
  threshold_mb: number,
  rand_addr: number,
): number {
  const { ksft } = g.env;
  const remap_time = remap_region(g, test_case.config, threshold_mb, rand_addr);

  if (remap_time < 0) {
    if (test_case.expect_failure) {
      ksft.test_result_xfail(`${test_case.name}\n\tExpected mremap failure\n`);
    } else {
      ksft.test_result_fail(`${test_case.name}\n`);
      failures += 1;
    }
  } else if (
    threshold_mb === VALIDATION_NO_THRESHOLD ||
    test_case.config.region_size <= u32mul(threshold_mb, _1MB)
  ) {
    /*
     * Comparing mremap time is only applicable if entire region
     * was faulted in.
     */
    ksft.test_result_pass(`${test_case.name}\n\tmremap time: ${fmtWidth(remap_time, 12)}ns\n`);
  } else {
    ksft.test_result_pass(`${test_case.name}\n`);
  }
  return failures;
}

/** Models MAX_TEST, the number of remap cases. */
const MAX_TEST = 15;

/** Models main() of mremap_test.c. */
export function mremap_test_main(env: ProgramEnv): number {
  const { libc, ksft, stdio, rand } = env;
  const g: Globals = { env, mmapMinAddr: 0 };
  let failures = 0;

  /* hard-coded test configs */
  const max_test_variable_region_size = _2GB;
  const max_test_constant_region_size = _2MB;
  const dest_preamble_size = 10 * _4MB;

  const num_expand_tests = 2;
  const num_misc_tests = 9;

  const opts = { threshold_mb: VALIDATION_DEFAULT_THRESHOLD, pattern_seed: env.time() >>> 0 };

  if (parse_args(g, env.argv, opts) < 0) throw new ExitRequest(1 /* EXIT_FAILURE */);
  const { threshold_mb, pattern_seed } = opts;

  ksft.print_msg(`Test configs:\n\tthreshold_mb=${threshold_mb}\n\tpattern_seed=${pattern_seed}\n\n`);

  /*
   * set preallocated random array according to test configs; see the
   * functions for the logic of setting the size
   */
  let rand_size = !threshold_mb
    ? Math.max(max_test_variable_region_size, max_test_constant_region_size)
    : Math.max(
        Math.min(u32mul(threshold_mb, _1MB), max_test_variable_region_size),
        max_test_constant_region_size,
      );
  rand_size = Math.max(dest_preamble_size, rand_size);

  const rand_addr = libc.mmap(0, rand_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (rand_addr === MAP_FAILED) {
    stdio.perror('mmap', libc.errno);
    ksft.exit_fail_msg('cannot mmap rand_addr\n');
  }

  /* fill stream of random bytes */
  rand.srand(pattern_seed);
  fillRand(env, rand_addr, rand_size);

  const page_size = libc.sysconfPageSize();
  const PTE = page_size;

  const test_cases: Test[] = [
    /* Expected mremap failures */
    MAKE_TEST(
      page_size,
      page_size,
      page_size,
      OVERLAPPING,
      EXPECT_FAILURE,
      'mremap - Source and Destination Regions Overlapping',
    ),
    MAKE_TEST(
      page_size,
      page_size / 4,
      page_size,
      NON_OVERLAPPING,
      EXPECT_FAILURE,
      'mremap - Destination Address Misaligned (1KB-aligned)',
    ),
    MAKE_TEST(
      page_size / 4,
      page_size,
      page_size,
      NON_OVERLAPPING,
      EXPECT_FAILURE,
      'mremap - Source Address Misaligned (1KB-aligned)',
    ),
    /* Src addr PTE aligned */
    MAKE_TEST(
      PTE,
      PTE,
      PTE * 2,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '8KB mremap - Source PTE-aligned, Destination PTE-aligned',
    ),
    /* Src addr 1MB aligned */
    MAKE_TEST(
      _1MB,
      PTE,
      _2MB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '2MB mremap - Source 1MB-aligned, Destination PTE-aligned',
    ),
    MAKE_TEST(
      _1MB,
      _1MB,
      _2MB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '2MB mremap - Source 1MB-aligned, Destination 1MB-aligned',
    ),
    /* Src addr PMD aligned */
    MAKE_TEST(
      PMD,
      PTE,
      _4MB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '4MB mremap - Source PMD-aligned, Destination PTE-aligned',
    ),
    MAKE_TEST(
      PMD,
      _1MB,
      _4MB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '4MB mremap - Source PMD-aligned, Destination 1MB-aligned',
    ),
    MAKE_TEST(
      PMD,
      PMD,
      _4MB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '4MB mremap - Source PMD-aligned, Destination PMD-aligned',
    ),
    /* Src addr PUD aligned */
    MAKE_TEST(
      PUD,
      PTE,
      _2GB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '2GB mremap - Source PUD-aligned, Destination PTE-aligned',
    ),
    MAKE_TEST(
      PUD,
      _1MB,
      _2GB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '2GB mremap - Source PUD-aligned, Destination 1MB-aligned',
    ),
    MAKE_TEST(
      PUD,
      PMD,
      _2GB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '2GB mremap - Source PUD-aligned, Destination PMD-aligned',
    ),
    MAKE_TEST(
      PUD,
      PUD,
      _2GB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '2GB mremap - Source PUD-aligned, Destination PUD-aligned',
    ),
    /* Src and Dest addr 1MB aligned. 5MB mremap. */
    MAKE_TEST(
      _1MB,
      _1MB,
      _5MB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '5MB mremap - Source 1MB-aligned, Destination 1MB-aligned',
    ),
    /* Src and Dest addr 1MB aligned. 5MB mremap. */
    MAKE_TEST(
      _1MB,
      _1MB,
      _5MB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '5MB mremap - Source 1MB-aligned, Dest 1MB-aligned with 40MB Preamble',
    ),
  ];
  test_cases[14].config.dest_preamble_size = 10 * _4MB;

  const perf_test_cases: Test[] = [
    MAKE_TEST(
      page_size,
      page_size,
      _1GB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '1GB mremap - Source PTE-aligned, Destination PTE-aligned',
    ),
    /*
     * mremap 1GB region - Page table level aligned time
     * comparison.
     */
    MAKE_TEST(
      PMD,
      PMD,
      _1GB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '1GB mremap - Source PMD-aligned, Destination PMD-aligned',
    ),
    MAKE_TEST(
      PUD,
      PUD,
      _1GB,
      NON_OVERLAPPING,
      EXPECT_SUCCESS,
      '1GB mremap - Source PUD-aligned, Destination PUD-aligned',
    ),
  ];

  const run_perf_tests = threshold_mb === VALIDATION_NO_THRESHOLD || u32mul(threshold_mb, _1MB) >= _1GB;

  ksft.set_plan(MAX_TEST + (run_perf_tests ? perf_test_cases.length : 0) + num_expand_tests + num_misc_tests);

  for (const test_case of test_cases)
    failures = run_mremap_test_case(g, test_case, failures, threshold_mb, rand_addr);

  const mapsFd = libc.open('/proc/self/maps', 0 /* O_RDONLY */);
  if (mapsFd < 0) {
    const errno = libc.errno;
    libc.munmap(rand_addr, rand_size);
    ksft.exit_fail_msg(`Failed to read /proc/self/maps: ${strerror(errno)}\n`);
  }
  const maps = new MapsFile(env, mapsFd);

  mremap_expand_merge(g, maps, page_size);
  mremap_expand_merge_offset(g, maps, page_size);

  mremap_move_within_range(g, pattern_seed, rand_addr);
  mremap_move_1mb_from_start(g, pattern_seed, rand_addr);
  mremap_shrink_multiple_vmas(g, page_size, /* inplace= */ true);
  mremap_shrink_multiple_vmas(g, page_size, /* inplace= */ false);
  mremap_move_multiple_vmas(g, pattern_seed, page_size, /* dontunmap= */ false);
  mremap_move_multiple_vmas(g, pattern_seed, page_size, /* dontunmap= */ true);
  mremap_move_multiple_vmas_split(g, pattern_seed, page_size, /* dontunmap= */ false);
  mremap_move_multiple_vmas_split(g, pattern_seed, page_size, /* dontunmap= */ true);
  mremap_move_multi_invalid_vmas(g);

  libc.close(mapsFd);

  if (run_perf_tests) {
    ksft.print_msg('\nmremap HAVE_MOVE_PMD/PUD optimization time comparison for 1GB region:\n');
    for (const test_case of perf_test_cases)
      failures = run_mremap_test_case(g, test_case, failures, threshold_mb, rand_addr);
  }

  libc.munmap(rand_addr, rand_size);

  if (failures > 0) return ksft.exit_fail();
  return ksft.exit_pass();
}
