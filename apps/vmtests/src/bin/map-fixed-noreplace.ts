/**
 * Port of tools/testing/selftests/mm/map_fixed_noreplace.c (the kselftest/TAP form, unchanged
 * from v6.10 to v6.19): MAP_FIXED_NOREPLACE maps where nothing is mapped and fails with EEXIST on
 * any overlap. 9 results; every message, `%m` (errno as left by the last failing call: errno is
 * never reset in this version) and exit path as in C.
 */

import { MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_PRIVATE, PROT_NONE } from '@hmm-model/mm-core';
import { MAP_FAILED, strerror } from '@hmm-model/selftests';
import { fmtLx, fmtPtr } from '../printf.js';
import { dump_maps, type ProgramEnv } from '../program.js';

/** Models find_base_addr(size): map `size` bytes anywhere, unmap them, return the address. */
function find_base_addr(env: ProgramEnv, size: number): number {
  const { libc, ksft } = env;
  const flags = MAP_PRIVATE | MAP_ANONYMOUS;
  const addr = libc.mmap(0, size, PROT_NONE, flags, -1, 0);
  if (addr === MAP_FAILED) ksft.exit_fail_msg("Error: couldn't map the space we need for the test\n");
  if (libc.munmap(addr, size) !== 0) ksft.exit_fail_msg('Error: munmap failed\n');
  return addr;
}

/** Models main() of map_fixed_noreplace.c. */
export function map_fixed_noreplace_main(env: ProgramEnv): number {
  const { libc, ksft } = env;
  /** Models `ksft_print_msg("mmap() @ 0x%lx-0x%lx p=%p result=%m\n", addr, addr + size, p)`. */
  const report = (addr: number, size: number, p: number): void =>
    ksft.print_msg(
      `mmap() @ 0x${fmtLx(addr)}-0x${fmtLx(addr + size)} p=${fmtPtr(p)} result=${strerror(libc.errno)}\n`,
    );
  /** Models `dump_maps(); ksft_exit_fail_msg(msg);`. */
  const fail = (msg: string): never => {
    dump_maps(env);
    return ksft.exit_fail_msg(msg);
  };

  ksft.print_header();
  ksft.set_plan(9);

  const page_size = libc.sysconfPageSize();

  /* let's find a base addr that is free before we start the tests */
  let size = 5 * page_size;
  const base_addr = find_base_addr(env, size);

  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;

  /* Check we can map all the areas we need below */
  let addr = base_addr;
  size = 5 * page_size;
  let p = libc.mmap(addr, size, PROT_NONE, flags, -1, 0);
  if (p === MAP_FAILED) fail("Error: couldn't map the space we need for the test\n");
  if (libc.munmap(addr, 5 * page_size) !== 0) fail('Error: munmap failed!?\n');
  report(addr, size, p);
  ksft.test_result_pass('mmap() 5*PAGE_SIZE at base\n');

  addr = base_addr + page_size;
  size = 3 * page_size;
  p = libc.mmap(addr, size, PROT_NONE, flags, -1, 0);
  if (p === MAP_FAILED) fail('Error: first mmap() failed unexpectedly\n');
  report(addr, size, p);
  ksft.test_result_pass('mmap() 3*PAGE_SIZE at base+PAGE_SIZE\n');

  /*
   * Exact same mapping again:
   *   base |  free  | new
   *     +1 | mapped | new
   *     +2 | mapped | new
   *     +3 | mapped | new
   *     +4 |  free  | new
   */
  addr = base_addr;
  size = 5 * page_size;
  p = libc.mmap(addr, size, PROT_NONE, flags, -1, 0);
  if (p !== MAP_FAILED) fail("Error:1: mmap() succeeded when it shouldn't have\n");
  report(addr, size, p);
  ksft.test_result_pass('Second mmap() 5*PAGE_SIZE at base\n');

  /*
   * Second mapping contained within first:
   *
   *   base |  free  |
   *     +1 | mapped |
   *     +2 | mapped | new
   *     +3 | mapped |
   *     +4 |  free  |
   */
  addr = base_addr + 2 * page_size;
  size = page_size;
  p = libc.mmap(addr, size, PROT_NONE, flags, -1, 0);
  if (p !== MAP_FAILED) fail("Error:2: mmap() succeeded when it shouldn't have\n");
  report(addr, size, p);
  ksft.test_result_pass('mmap() 2*PAGE_SIZE at base+PAGE_SIZE\n');

  /*
   * Overlap end of existing mapping:
   *   base |  free  |
   *     +1 | mapped |
   *     +2 | mapped |
   *     +3 | mapped | new
   *     +4 |  free  | new
   */
  addr = base_addr + 3 * page_size;
  size = 2 * page_size;
  p = libc.mmap(addr, size, PROT_NONE, flags, -1, 0);
  if (p !== MAP_FAILED) fail("Error:3: mmap() succeeded when it shouldn't have\n");
  report(addr, size, p);
  ksft.test_result_pass('mmap() 2*PAGE_SIZE  at base+(3*PAGE_SIZE)\n');

  /*
   * Overlap start of existing mapping:
   *   base |  free  | new
   *     +1 | mapped | new
   *     +2 | mapped |
   *     +3 | mapped |
   *     +4 |  free  |
   */
  addr = base_addr;
  size = 2 * page_size;
  p = libc.mmap(addr, size, PROT_NONE, flags, -1, 0);
  if (p !== MAP_FAILED) fail("Error:4: mmap() succeeded when it shouldn't have\n");
  report(addr, size, p);
  ksft.test_result_pass('mmap() 2*PAGE_SIZE bytes at base\n');

  /*
   * Adjacent to start of existing mapping:
   *   base |  free  | new
   *     +1 | mapped |
   *     +2 | mapped |
   *     +3 | mapped |
   *     +4 |  free  |
   */
  addr = base_addr;
  size = page_size;
  p = libc.mmap(addr, size, PROT_NONE, flags, -1, 0);
  if (p === MAP_FAILED) fail("Error:5: mmap() failed when it shouldn't have\n");
  report(addr, size, p);
  ksft.test_result_pass('mmap() PAGE_SIZE at base\n');

  /*
   * Adjacent to end of existing mapping:
   *   base |  free  |
   *     +1 | mapped |
   *     +2 | mapped |
   *     +3 | mapped |
   *     +4 |  free  |  new
   */
  addr = base_addr + 4 * page_size;
  size = page_size;
  p = libc.mmap(addr, size, PROT_NONE, flags, -1, 0);
  if (p === MAP_FAILED) fail("Error:6: mmap() failed when it shouldn't have\n");
  report(addr, size, p);
  ksft.test_result_pass('mmap() PAGE_SIZE at base+(4*PAGE_SIZE)\n');

  addr = base_addr;
  size = 5 * page_size;
  if (libc.munmap(addr, size) !== 0) fail('Error: munmap failed!?\n');
  ksft.test_result_pass('Base Address unmap() successful\n');

  return ksft.finished();
}
