/**
 * Port of tools/testing/selftests/mm/madv_populate.c (v6.19: 16 results, plus the 5 soft-dirty
 * results when softdirty_supported(), i.e. when a new mapping carries VM_SOFTDIRTY): MADV_POPULATE_READ
 * and MADV_POPULATE_WRITE fault in a range (ENOMEM across holes, EINVAL when the protection
 * forbids the access), checked through /proc/self/pagemap.
 */

import { ENOMEM, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@hmm-model/mm-core';
import { MAP_FAILED } from '@hmm-model/selftests';
import type { ProgramEnv } from '../program.js';
import {
  clear_softdirty,
  pagemap_is_populated,
  pagemap_is_softdirty,
  softdirty_supported,
} from '../vmutil.js';

/** Models MADV_POPULATE_READ (include/uapi/asm-generic/mman-common.h), as the test is compiled against it. */
export const MADV_POPULATE_READ = 22;
/** Models MADV_POPULATE_WRITE (include/uapi/asm-generic/mman-common.h). */
export const MADV_POPULATE_WRITE = 23;

/** Models SIZE (madv_populate.c): 2 MiB of private anonymous memory per test. */
const SIZE = 2 * 1024 * 1024;
/** Models EINVAL as the test compares errno with it. */
const EINVAL = 22;
const ANON_PRIV = MAP_ANONYMOUS | MAP_PRIVATE;

/** The program's `static size_t pagesize` and the process it runs in. */
interface Globals {
  readonly env: ProgramEnv;
  readonly pagesize: number;
}

/** Models sense_support(): SKIP the whole program when either advice is refused on one page. */
function sense_support(g: Globals): void {
  const { libc, ksft } = g.env;
  const addr = libc.mmap(0, g.pagesize, PROT_READ | PROT_WRITE, ANON_PRIV, 0, 0);
  if (!addr) ksft.exit_fail_msg('mmap failed\n');

  let ret = libc.madvise(addr, g.pagesize, MADV_POPULATE_READ);
  if (ret) ksft.exit_skip('MADV_POPULATE_READ is not available\n');

  ret = libc.madvise(addr, g.pagesize, MADV_POPULATE_WRITE);
  if (ret) ksft.exit_skip('MADV_POPULATE_WRITE is not available\n');

  libc.munmap(addr, g.pagesize);
}

/** Models `addr = mmap(0, SIZE, prot, ...); if (addr == MAP_FAILED) ksft_exit_fail_msg("mmap failed\n");`. */
function mapSize(g: Globals, prot: number): number {
  const addr = g.env.libc.mmap(0, SIZE, prot, ANON_PRIV, 0, 0);
  if (addr === MAP_FAILED) g.env.ksft.exit_fail_msg('mmap failed\n');
  return addr;
}

/** Models test_prot_read(): POPULATE_READ works on PROT_READ, POPULATE_WRITE is EINVAL. */
function test_prot_read(g: Globals): void {
  const { libc, ksft } = g.env;
  ksft.print_msg('[RUN] test_prot_read\n');

  const addr = mapSize(g, PROT_READ);

  let ret = libc.madvise(addr, SIZE, MADV_POPULATE_READ);
  ksft.test_result(!ret, 'MADV_POPULATE_READ with PROT_READ\n');

  ret = libc.madvise(addr, SIZE, MADV_POPULATE_WRITE);
  ksft.test_result(ret === -1 && libc.errno === EINVAL, 'MADV_POPULATE_WRITE with PROT_READ\n');

  libc.munmap(addr, SIZE);
}

/** Models test_prot_write(): POPULATE_READ is EINVAL on PROT_WRITE, POPULATE_WRITE works. */
function test_prot_write(g: Globals): void {
  const { libc, ksft } = g.env;
  ksft.print_msg('[RUN] test_prot_write\n');

  const addr = mapSize(g, PROT_WRITE);

  let ret = libc.madvise(addr, SIZE, MADV_POPULATE_READ);
  ksft.test_result(ret === -1 && libc.errno === EINVAL, 'MADV_POPULATE_READ with PROT_WRITE\n');

  ret = libc.madvise(addr, SIZE, MADV_POPULATE_WRITE);
  ksft.test_result(!ret, 'MADV_POPULATE_WRITE with PROT_WRITE\n');

  libc.munmap(addr, SIZE);
}

/** Models test_holes(): ENOMEM for a hole in the middle, at the end and at the beginning. */
function test_holes(g: Globals): void {
  const { libc, ksft } = g.env;
  const ps = g.pagesize;
  ksft.print_msg('[RUN] test_holes\n');

  const addr = mapSize(g, PROT_READ | PROT_WRITE);
  let ret = libc.munmap(addr + ps, ps);
  if (ret) ksft.exit_fail_msg('munmap failed\n');

  const enomem = (r: number): boolean => r === -1 && libc.errno === ENOMEM;

  /* Hole in the middle */
  ret = libc.madvise(addr, SIZE, MADV_POPULATE_READ);
  ksft.test_result(enomem(ret), 'MADV_POPULATE_READ with holes in the middle\n');
  ret = libc.madvise(addr, SIZE, MADV_POPULATE_WRITE);
  ksft.test_result(enomem(ret), 'MADV_POPULATE_WRITE with holes in the middle\n');

  /* Hole at end */
  ret = libc.madvise(addr, 2 * ps, MADV_POPULATE_READ);
  ksft.test_result(enomem(ret), 'MADV_POPULATE_READ with holes at the end\n');
  ret = libc.madvise(addr, 2 * ps, MADV_POPULATE_WRITE);
  ksft.test_result(enomem(ret), 'MADV_POPULATE_WRITE with holes at the end\n');

  /* Hole at beginning */
  ret = libc.madvise(addr + ps, ps, MADV_POPULATE_READ);
  ksft.test_result(enomem(ret), 'MADV_POPULATE_READ with holes at the beginning\n');
  ret = libc.madvise(addr + ps, ps, MADV_POPULATE_WRITE);
  ksft.test_result(enomem(ret), 'MADV_POPULATE_WRITE with holes at the beginning\n');

  libc.munmap(addr, SIZE);
}

/**
 * Models the range_is_*() helpers: open /proc/self/pagemap, test each page of [start, start +
 * size) with `pred` until one fails.
 */
function rangeAll(
  g: Globals,
  start: number,
  size: number,
  pred: (fd: number, addr: number) => boolean,
): boolean {
  const { libc, ksft } = g.env;
  const fd = libc.open('/proc/self/pagemap', 0 /* O_RDONLY */);
  let ret = true;
  if (fd < 0) ksft.exit_fail_msg('opening pagemap failed\n');
  for (; size > 0 && ret; size -= g.pagesize, start += g.pagesize) if (!pred(fd, start)) ret = false;
  libc.close(fd);
  return ret;
}

/** Models range_is_populated(start, size). */
function range_is_populated(g: Globals, start: number, size: number): boolean {
  return rangeAll(g, start, size, (fd, a) => pagemap_is_populated(g.env, fd, a));
}

/** Models range_is_not_populated(start, size). */
function range_is_not_populated(g: Globals, start: number, size: number): boolean {
  return rangeAll(g, start, size, (fd, a) => !pagemap_is_populated(g.env, fd, a));
}

/** Models range_is_softdirty(start, size). */
function range_is_softdirty(g: Globals, start: number, size: number): boolean {
  return rangeAll(g, start, size, (fd, a) => pagemap_is_softdirty(g.env, fd, a));
}

/** Models range_is_not_softdirty(start, size). */
function range_is_not_softdirty(g: Globals, start: number, size: number): boolean {
  return rangeAll(g, start, size, (fd, a) => !pagemap_is_softdirty(g.env, fd, a));
}

/** Models test_populate_read(): nothing populated, MADV_POPULATE_READ, everything populated. */
function test_populate_read(g: Globals): void {
  const { libc, ksft } = g.env;
  ksft.print_msg('[RUN] test_populate_read\n');

  const addr = mapSize(g, PROT_READ | PROT_WRITE);
  ksft.test_result(range_is_not_populated(g, addr, SIZE), 'range initially not populated\n');

  const ret = libc.madvise(addr, SIZE, MADV_POPULATE_READ);
  ksft.test_result(!ret, 'MADV_POPULATE_READ\n');
  ksft.test_result(range_is_populated(g, addr, SIZE), 'range is populated\n');

  libc.munmap(addr, SIZE);
}

/** Models test_populate_write(): nothing populated, MADV_POPULATE_WRITE, everything populated. */
function test_populate_write(g: Globals): void {
  const { libc, ksft } = g.env;
  ksft.print_msg('[RUN] test_populate_write\n');

  const addr = mapSize(g, PROT_READ | PROT_WRITE);
  ksft.test_result(range_is_not_populated(g, addr, SIZE), 'range initially not populated\n');

  const ret = libc.madvise(addr, SIZE, MADV_POPULATE_WRITE);
  ksft.test_result(!ret, 'MADV_POPULATE_WRITE\n');
  ksft.test_result(range_is_populated(g, addr, SIZE), 'range is populated\n');

  libc.munmap(addr, SIZE);
}

/** Models test_softdirty(): POPULATE_READ leaves the range clean, POPULATE_WRITE makes it soft-dirty. */
function test_softdirty(g: Globals): void {
  const { libc, ksft } = g.env;
  ksft.print_msg('[RUN] test_softdirty\n');

  const addr = mapSize(g, PROT_READ | PROT_WRITE);

  /* Clear any softdirty bits. */
  clear_softdirty(g.env);
  ksft.test_result(range_is_not_softdirty(g, addr, SIZE), 'range is not softdirty\n');

  /* Populating READ should set softdirty. */
  let ret = libc.madvise(addr, SIZE, MADV_POPULATE_READ);
  ksft.test_result(!ret, 'MADV_POPULATE_READ\n');
  ksft.test_result(range_is_not_softdirty(g, addr, SIZE), 'range is not softdirty\n');

  /* Populating WRITE should set softdirty. */
  ret = libc.madvise(addr, SIZE, MADV_POPULATE_WRITE);
  ksft.test_result(!ret, 'MADV_POPULATE_WRITE\n');
  ksft.test_result(range_is_softdirty(g, addr, SIZE), 'range is softdirty\n');

  libc.munmap(addr, SIZE);
}

/** Models main() of madv_populate.c (v6.19). */
export function madv_populate_main(env: ProgramEnv): number {
  const { ksft } = env;
  let nr_tests = 16;

  const g: Globals = { env, pagesize: env.libc.sysconfPageSize() };

  if (softdirty_supported(env)) nr_tests += 5;

  ksft.print_header();
  ksft.set_plan(nr_tests);

  sense_support(g);
  test_prot_read(g);
  test_prot_write(g);
  test_holes(g);
  test_populate_read(g);
  test_populate_write(g);
  if (softdirty_supported(env)) test_softdirty(g);

  const err = ksft.get_fail_cnt();
  if (err) ksft.exit_fail_msg(`${err} out of ${ksft.test_num()} tests failed\n`);
  return ksft.exit_pass();
}
