/**
 * Port of tools/testing/selftests/mm/cow.c (v6.19, built without liburing: the two io_uring
 * cases are not compiled, as `#ifdef LOCAL_CONFIG_HAVE_LIBURING` leaves them out): COW, GUP and
 * anon-exclusive semantics of private mappings. The anonymous cases run for a base page
 * (present and swapped out), for every detected THP size (PMD-mapped, swapped-out, PTE-mapped,
 * single PTE, partially mremap()ed or shared), and for every hugetlb size; the anon-THP cases
 * collapse with MADV_COLLAPSE before or after fork(); the non-anonymous cases use the shared
 * zeropage, memfd, tmpfile, the huge zeropage and hugetlb memfds. THP sizes come from
 * detect_thp_sizes(): the PMD size plus every `hugepages-<size>kB/enabled` file.
 *
 * As in v6.19, run_with_huge_zeropage(), run_with_memfd(), run_with_tmpfile() and
 * run_with_memfd_hugetlb() pass the pointer itself to FORCE_READ() (commit 5bbc2b785e63 changed
 * the macro to take a value; cow.c's calls were fixed only after v6.19, bce1dabd310e), so those
 * reads touch no memory: the huge-zeropage cases find no THP populated and SKIP.
 */

import {
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDONLY,
  O_RDWR,
  O_TMPFILE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { KSFT_FAIL, KSFT_PASS, KSFT_SKIP, MAP_FAILED, read_pmd_pagesize } from '@hmm-model/selftests';
import { MFD_HUGE_SHIFT, MFD_HUGETLB, memfd_create, type ProgramEnv } from '../program.js';
import {
  THP_ALWAYS,
  THP_INHERIT,
  THP_NEVER,
  ThpSettingsState,
  thp_current_settings,
  thp_pop_settings,
  thp_push_settings,
  thp_read_settings,
  thp_restore_settings,
  thp_save_settings,
  thp_supported_orders,
  thpSettingsCopy,
} from '../thp-settings.js';
import {
  detect_huge_zeropage,
  detect_hugetlb_page_sizes,
  log_test_result,
  log_test_start,
  pagemap_is_populated,
  sz2ord,
} from '../vmutil.js';
import {
  ANON_TEST_CASES,
  ANON_THP_TEST_CASES,
  ctz,
  do_run_with_thp,
  do_test_ro_pin,
  RoPinTest,
  run_with_base_page,
  run_with_base_page_swap,
  run_with_hugetlb,
  run_with_thp_variant,
  self,
  type TestCase,
  ThpRun,
} from './cow-anon.js';
import { type CowGlobals, memcmp } from './cow-common.js';

/** Models detect_thp_sizes(sizes, max): the PMD size and every supported mTHP order, smallest first. */
export function detect_thp_sizes(g: CowGlobals, max: number): number[] {
  const sizes: number[] = [];
  /* thp not supported at all. */
  if (!g.pmdsize) return sizes;
  let orders = 2 ** sz2ord(g.pmdsize, g.pagesize);
  orders |= thp_supported_orders(g.thp);
  for (let i = 0; orders && sizes.length < max; i++) {
    if (!(orders & (2 ** i))) continue;
    orders &= ~(2 ** i);
    const kb = (g.pagesize >> 10) * 2 ** i;
    sizes.push(kb * 1024);
    g.env.ksft.print_msg(`[INFO] detected THP size: ${kb} KiB\n`);
  }
  return sizes;
}

/** Models run_anon_test_case(): every memory kind for one case. */
function run_anon_test_case(g: CowGlobals, tc: TestCase): void {
  run_with_base_page(g, tc.fn, tc.desc);
  run_with_base_page_swap(g, tc.fn, tc.desc);
  for (const size of g.thpsizes) {
    const settings = thpSettingsCopy(thp_current_settings(g.thp));
    settings.hugepages[sz2ord(g.pmdsize, g.pagesize)] = THP_NEVER;
    settings.hugepages[sz2ord(size, g.pagesize)] = THP_ALWAYS;
    thp_push_settings(g.thp, settings);
    if (size === g.pmdsize) {
      run_with_thp_variant(g, tc.fn, tc.desc, ThpRun.THP_RUN_PMD, size);
      run_with_thp_variant(g, tc.fn, tc.desc, ThpRun.THP_RUN_PMD_SWAPOUT, size);
    }
    for (const run of [
      ThpRun.THP_RUN_PTE,
      ThpRun.THP_RUN_PTE_SWAPOUT,
      ThpRun.THP_RUN_SINGLE_PTE,
      ThpRun.THP_RUN_SINGLE_PTE_SWAPOUT,
      ThpRun.THP_RUN_PARTIAL_MREMAP,
      ThpRun.THP_RUN_PARTIAL_SHARED,
    ])
      run_with_thp_variant(g, tc.fn, tc.desc, run, size);
    thp_pop_settings(g.thp);
  }
  for (const size of g.hugetlbsizes) run_with_hugetlb(g, tc.fn, tc.desc, size);
}

/** Models tests_per_anon_test_case(). */
function tests_per_anon_test_case(g: CowGlobals): number {
  let tests = 2 + g.hugetlbsizes.length;
  tests += 6 * g.thpsizes.length;
  if (g.pmdsize) tests += 2;
  return tests;
}

/** Models run_anon_thp_test_cases(). */
function run_anon_thp_test_cases(g: CowGlobals): void {
  if (!g.pmdsize) return;
  g.env.ksft.print_msg('[INFO] Anonymous THP tests\n');
  for (const tc of ANON_THP_TEST_CASES) {
    log_test_start(g.env, tc.desc);
    do_run_with_thp(g, tc.fn, ThpRun.THP_RUN_PMD, g.pmdsize);
  }
}

/** Models `typedef void (*non_anon_test_fn)(char *mem, const char *smem, size_t size)`. */
type NonAnonTestFn = (g: CowGlobals, mem: number, smem: number, size: number) => void;

/** Models test_cow(): writing the private mapping must leave the other mapping unchanged. */
const test_cow: NonAnonTestFn = (g, mem, smem, size) => {
  const { libc } = g.env;
  const p = self(g);
  const old = libc.malloc(size);
  /* Backup the original content. */
  p.proc.writeBytes(old, p.proc.readBytes(smem, size));
  /* Modify the page. */
  libc.memset(mem, 0xff, size);
  /* See if we still read the old values via the other mapping. */
  if (!memcmp(p, smem, old, size)) {
    log_test_result(g.env, KSFT_PASS);
  } else {
    g.env.ksft.print_msg('Other mapping modified\n');
    log_test_result(g.env, KSFT_FAIL);
  }
  libc.free(old);
};

const test_ro_pin: NonAnonTestFn = (g, mem, _smem, size) =>
  do_test_ro_pin(g, mem, size, RoPinTest.RO_PIN_TEST, false);
const test_ro_fast_pin: NonAnonTestFn = (g, mem, _smem, size) =>
  do_test_ro_pin(g, mem, size, RoPinTest.RO_PIN_TEST, true);

/** Models ksft_perror(msg) + log_test_result(result). */
function perrorResult(g: CowGlobals, msg: string, result: number): void {
  g.env.ksft.perror(msg, g.env.libc.errno);
  log_test_result(g.env, result);
}

/** Models FORCE_READ(*p): a one-byte load that faults the page in. */
function forceRead(g: CowGlobals, addr: number): void {
  g.env.proc.readU8(addr);
}

/** Models run_with_zeropage(fn, desc). */
function run_with_zeropage(g: CowGlobals, fn: NonAnonTestFn, desc: string): void {
  const { libc } = g.env;
  log_test_start(g.env, `${desc} ... with shared zeropage`);
  const mem = libc.mmap(0, g.pagesize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem === MAP_FAILED) {
    perrorResult(g, 'mmap() failed', KSFT_FAIL);
    return;
  }
  const smem = libc.mmap(0, g.pagesize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (smem === MAP_FAILED) {
    perrorResult(g, 'mmap() failed', KSFT_FAIL);
  } else {
    /* Read from the page to populate the shared zeropage. */
    forceRead(g, mem);
    forceRead(g, smem);
    fn(g, mem, smem, g.pagesize);
  }
  libc.munmap(mem, g.pagesize);
  if (smem !== MAP_FAILED) libc.munmap(smem, g.pagesize);
}

/** Models run_with_huge_zeropage(fn, desc) (v6.19: FORCE_READ(mem) reads the pointer only). */
function run_with_huge_zeropage(g: CowGlobals, fn: NonAnonTestFn, desc: string): void {
  const { libc } = g.env;
  const pmdsize = g.pmdsize;
  log_test_start(g.env, `${desc} ... with huge zeropage`);
  if (!g.has_huge_zeropage) {
    g.env.ksft.print_msg('Huge zeropage not enabled\n');
    log_test_result(g.env, KSFT_SKIP);
    return;
  }
  /* For alignment purposes, we need twice the thp size. */
  const mmap_size = 2 * pmdsize;
  const mmap_mem = libc.mmap(0, mmap_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mmap_mem === MAP_FAILED) {
    perrorResult(g, 'mmap() failed', KSFT_FAIL);
    return;
  }
  const mmap_smem = libc.mmap(0, mmap_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ((): void => {
    if (mmap_smem === MAP_FAILED) {
      perrorResult(g, 'mmap() failed', KSFT_FAIL);
      return;
    }
    /* We need a THP-aligned memory area. */
    const mem = Math.floor((mmap_mem + pmdsize) / pmdsize) * pmdsize;
    const smem = Math.floor((mmap_smem + pmdsize) / pmdsize) * pmdsize;
    if (libc.madvise(mem, pmdsize, MADV_HUGEPAGE)) {
      perrorResult(g, 'madvise()', KSFT_FAIL);
      return;
    }
    if (libc.madvise(smem, pmdsize, MADV_HUGEPAGE)) {
      perrorResult(g, 'madvise()', KSFT_FAIL);
      return;
    }
    /* FORCE_READ(mem); FORCE_READ(smem): v6.19 reads the pointers, not the memory. */
    if (
      !pagemap_is_populated(g.env, g.pagemap_fd, mem + g.pagesize) ||
      !pagemap_is_populated(g.env, g.pagemap_fd, smem + g.pagesize)
    ) {
      g.env.ksft.test_result_skip('Did not get THPs populated\n');
      return;
    }
    fn(g, mem, smem, pmdsize);
  })();
  libc.munmap(mmap_mem, mmap_size);
  if (mmap_smem !== MAP_FAILED) libc.munmap(mmap_smem, mmap_size);
}

/** Models fallocate(fd, 0, 0, len) through libc. */
function fallocate(g: CowGlobals, fd: number, len: number): number {
  const r = g.env.proc.fallocate(fd, 0, 0, len);
  if (r < 0) {
    g.env.libc.errno = -r;
    return -1;
  }
  return 0;
}

/**
 * The common body of run_with_memfd(), run_with_tmpfile() and run_with_memfd_hugetlb() once the
 * file exists: fallocate() it, map it private read-write and shared read-only, run the test
 * (v6.19: FORCE_READ(mem) faults nothing in first), unmap. `mmapSkip` is how a failing private
 * mapping or fallocate() is reported (the hugetlb variant SKIPs: "need more free huge pages").
 */
function run_with_file(g: CowGlobals, fn: NonAnonTestFn, fd: number, size: number, hugetlb: boolean): void {
  const { libc } = g.env;
  /* File consists of a single page filled with zeroes. */
  if (fallocate(g, fd, size)) {
    if (hugetlb) perrorResult(g, 'need more free huge pages', KSFT_SKIP);
    else perrorResult(g, 'fallocate() failed', KSFT_FAIL);
    return;
  }
  /* Create a private mapping of the memfd. */
  const mem = libc.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (mem === MAP_FAILED) {
    if (hugetlb) perrorResult(g, 'need more free huge pages', KSFT_SKIP);
    else perrorResult(g, 'mmap() failed', KSFT_FAIL);
    return;
  }
  const smem = libc.mmap(0, size, PROT_READ, MAP_SHARED, fd, 0);
  if (smem === MAP_FAILED) {
    perrorResult(g, 'mmap() failed', KSFT_FAIL);
  } else {
    /* Fault the page in: FORCE_READ(mem); FORCE_READ(smem) read the pointers in v6.19. */
    fn(g, mem, smem, size);
  }
  libc.munmap(mem, size);
  if (smem !== MAP_FAILED) libc.munmap(smem, size);
}

/** Models run_with_memfd(fn, desc). */
function run_with_memfd(g: CowGlobals, fn: NonAnonTestFn, desc: string): void {
  log_test_start(g.env, `${desc} ... with memfd`);
  const fd = memfd_create(g.env.libc, 'test', 0);
  if (fd < 0) {
    perrorResult(g, 'memfd_create() failed', KSFT_FAIL);
    return;
  }
  run_with_file(g, fn, fd, g.pagesize, false);
  g.env.libc.close(fd);
}

/** Models glibc tmpfile(): open(P_tmpdir, O_TMPFILE | O_RDWR | O_EXCL, 0600). */
function tmpfile(g: CowGlobals): number {
  return g.env.libc.open('/tmp', O_TMPFILE | O_RDWR, 0o600);
}

/** Models run_with_tmpfile(fn, desc). */
function run_with_tmpfile(g: CowGlobals, fn: NonAnonTestFn, desc: string): void {
  log_test_start(g.env, `${desc} ... with tmpfile`);
  const fd = tmpfile(g);
  if (fd < 0) {
    perrorResult(g, 'tmpfile() failed', KSFT_FAIL);
    return;
  }
  run_with_file(g, fn, fd, g.pagesize, false);
  // fclose(file)
  g.env.libc.close(fd);
}

/** Models run_with_memfd_hugetlb(fn, desc, hugetlbsize). */
function run_with_memfd_hugetlb(g: CowGlobals, fn: NonAnonTestFn, desc: string, hugetlbsize: number): void {
  log_test_start(g.env, `${desc} ... with memfd hugetlb (${Math.floor(hugetlbsize / 1024)} kB)`);
  const flags = MFD_HUGETLB | (ctz(hugetlbsize) << MFD_HUGE_SHIFT);
  const fd = memfd_create(g.env.libc, 'test', flags);
  if (fd < 0) {
    perrorResult(g, 'memfd_create() failed', KSFT_SKIP);
    return;
  }
  run_with_file(g, fn, fd, hugetlbsize, true);
  g.env.libc.close(fd);
}

/** Models non_anon_test_cases[]. */
const NON_ANON_TEST_CASES: readonly { desc: string; fn: NonAnonTestFn }[] = [
  { desc: 'Basic COW', fn: test_cow },
  { desc: 'R/O longterm GUP pin', fn: test_ro_pin },
  { desc: 'R/O longterm GUP-fast pin', fn: test_ro_fast_pin },
];

/** Models run_non_anon_test_case(). */
function run_non_anon_test_case(g: CowGlobals, tc: { desc: string; fn: NonAnonTestFn }): void {
  run_with_zeropage(g, tc.fn, tc.desc);
  run_with_memfd(g, tc.fn, tc.desc);
  run_with_tmpfile(g, tc.fn, tc.desc);
  if (g.pmdsize) run_with_huge_zeropage(g, tc.fn, tc.desc);
  for (const size of g.hugetlbsizes) run_with_memfd_hugetlb(g, tc.fn, tc.desc, size);
}

/** Models tests_per_non_anon_test_case(). */
function tests_per_non_anon_test_case(g: CowGlobals): number {
  let tests = 3 + g.hugetlbsizes.length;
  if (g.pmdsize) tests += 1;
  return tests;
}

/** Models main() of cow.c (v6.19). */
export function cow_main(env: ProgramEnv): number {
  const { ksft, libc } = env;
  ksft.print_header();
  const g: CowGlobals = {
    env,
    thp: { env, thp: new ThpSettingsState() },
    pagesize: libc.sysconfPageSize(),
    pagemap_fd: -1,
    pmdsize: read_pmd_pagesize(libc),
    thpsizes: [],
    hugetlbsizes: [],
    gup_fd: -1,
    has_huge_zeropage: false,
    children: [],
  };
  if (g.pmdsize) {
    /* Only if THP is supported. */
    const default_settings = thp_read_settings(g.thp);
    default_settings.hugepages[sz2ord(g.pmdsize, g.pagesize)] = THP_INHERIT;
    thp_save_settings(g.thp);
    thp_push_settings(g.thp, default_settings);
    ksft.print_msg(`[INFO] detected PMD size: ${Math.floor(g.pmdsize / 1024)} KiB\n`);
    g.thpsizes = detect_thp_sizes(g, 20);
  }
  g.hugetlbsizes = detect_hugetlb_page_sizes(env, 10);
  g.has_huge_zeropage = detect_huge_zeropage(env);

  ksft.set_plan(
    ANON_TEST_CASES.length * tests_per_anon_test_case(g) +
      ANON_THP_TEST_CASES.length * (g.pmdsize ? 1 : 0) +
      NON_ANON_TEST_CASES.length * tests_per_non_anon_test_case(g),
  );

  g.gup_fd = libc.open('/sys/kernel/debug/gup_test', O_RDWR);
  g.pagemap_fd = libc.open('/proc/self/pagemap', O_RDONLY);
  if (g.pagemap_fd < 0) ksft.exit_fail_msg('opening pagemap failed\n');

  ksft.print_msg('[INFO] Anonymous memory tests in private mappings\n');
  for (const tc of ANON_TEST_CASES) run_anon_test_case(g, tc);
  run_anon_thp_test_cases(g);
  ksft.print_msg('[RUN] Non-anonymous memory tests in private mappings\n');
  for (const tc of NON_ANON_TEST_CASES) run_non_anon_test_case(g, tc);

  if (g.pmdsize) {
    /* Only if THP is supported. */
    thp_restore_settings(g.thp);
  }
  return ksft.finished();
}
