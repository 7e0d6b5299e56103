/**
 * Port of tools/testing/selftests/mm/mremap_dontunmap.c (torvalds/linux 1605ce99, the v6.19
 * text): MREMAP_DONTUNMAP moves the page tables and leaves the source mapped (empty for private
 * anonymous memory, still backed for shmem). 5 results. A failed BUG_ON() prints what the C macro
 * prints: the maps, then `Bail out! [FAIL]\t<function>:<line>\t<description>:<strerror(errno)>`,
 * with the C file's line of the BUG_ON (GCC gives a multi-line invocation the macro name's line).
 */

import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { MAP_FAILED, strerror } from '@hmm-model/selftests';
import { dump_maps, MFD_CLOEXEC, memfd_create, type ProgramEnv } from '../program.js';

/** Models EINVAL as the test compares errno with it. */
const EINVAL = 22;
const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** The globals of mremap_dontunmap.c and the program they live in. */
interface Globals {
  readonly env: ProgramEnv;
  page_size: number;
  page_buffer: number;
}

/** Models the BUG_ON(condition, description) macro of mremap_dontunmap.c at C line `line` of `func`. */
function BUG_ON(g: Globals, condition: boolean, func: string, line: number, description: string): void {
  if (!condition) return;
  dump_maps(g.env);
  g.env.ksft.exit_fail_msg(`[FAIL]\t${func}:${line}\t${description}:${strerror(g.env.libc.errno)}\n`);
}

/** Models kernel_support_for_mremap_dontunmap(): 0, or the errno of a one-page DONTUNMAP move. */
function kernel_support_for_mremap_dontunmap(g: Globals): number {
  const { libc } = g.env;
  const f = 'kernel_support_for_mremap_dontunmap';
  let ret = 0;
  const num_pages = 1;
  const source_mapping = libc.mmap(0, num_pages * g.page_size, PROT_NONE, PRIV_ANON, -1, 0);
  BUG_ON(g, source_mapping === MAP_FAILED, f, 48, 'mmap');

  // This simple remap should only fail if MREMAP_DONTUNMAP isn't
  // supported.
  const dest_mapping = libc.mremap(
    source_mapping,
    num_pages * g.page_size,
    num_pages * g.page_size,
    MREMAP_DONTUNMAP | MREMAP_MAYMOVE,
    0,
  );
  if (dest_mapping === MAP_FAILED) {
    ret = libc.errno;
  } else {
    BUG_ON(
      g,
      libc.munmap(dest_mapping, num_pages * g.page_size) === -1,
      f,
      58,
      'unable to unmap destination mapping',
    );
  }

  BUG_ON(
    g,
    libc.munmap(source_mapping, num_pages * g.page_size) === -1,
    f,
    62,
    'unable to unmap source mapping',
  );
  return ret;
}

/**
 * Models check_region_contains_byte(addr, size, byte): memset(page_buffer, byte) then memcmp()
 * of each page against it; 0, or memcmp()'s result for the first page that differs.
 */
function check_region_contains_byte(g: Globals, addr: number, size: number, byte: number): number {
  const { libc, proc } = g.env;
  const f = 'check_region_contains_byte';
  BUG_ON(g, size % g.page_size !== 0, f, 71, 'check_region_contains_byte expects page multiples');
  BUG_ON(g, addr % g.page_size !== 0, f, 73, 'check_region_contains_byte expects page alignment');

  libc.memset(g.page_buffer, byte, g.page_size);

  const num_pages = size / g.page_size;

  // Compare each page checking that it contains our expected byte.
  for (let i = 0; i < num_pages; ++i) {
    const ret = memcmp(
      proc.readBytes(addr + i * g.page_size, g.page_size),
      proc.readBytes(g.page_buffer, g.page_size),
    );
    if (ret) return ret;
  }
  return 0;
}

/** Models memcmp(3): the difference of the first differing bytes (as unsigned char), or 0. */
function memcmp(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** Models mremap_dontunmap_simple(): the pages move, the source stays mapped and empty. */
function mremap_dontunmap_simple(g: Globals): void {
  const { libc, ksft } = g.env;
  const f = 'mremap_dontunmap_simple';
  const num_pages = 5;
  const size = num_pages * g.page_size;

  const source_mapping = libc.mmap(0, size, RW, PRIV_ANON, -1, 0);
  BUG_ON(g, source_mapping === MAP_FAILED, f, 102, 'mmap');

  libc.memset(source_mapping, 'a'.charCodeAt(0), size);

  // Try to just move the whole mapping anywhere (not fixed).
  const dest_mapping = libc.mremap(source_mapping, size, size, MREMAP_DONTUNMAP | MREMAP_MAYMOVE, 0);
  BUG_ON(g, dest_mapping === MAP_FAILED, f, 110, 'mremap');

  // Validate that the pages have been moved, we know they were moved if
  // the dest_mapping contains a's.
  BUG_ON(
    g,
    check_region_contains_byte(g, dest_mapping, size, 'a'.charCodeAt(0)) !== 0,
    f,
    114,
    'pages did not migrate',
  );
  BUG_ON(
    g,
    check_region_contains_byte(g, source_mapping, size, 0) !== 0,
    f,
    117,
    'source should have no ptes',
  );

  BUG_ON(g, libc.munmap(dest_mapping, size) === -1, f, 121, 'unable to unmap destination mapping');
  BUG_ON(g, libc.munmap(source_mapping, size) === -1, f, 123, 'unable to unmap source mapping');
  ksft.test_result_pass(`${f}\n`);
}

/** Models mremap_dontunmap_simple_shmem(): on shmem the source still shows the same pages. */
function mremap_dontunmap_simple_shmem(g: Globals): void {
  const { libc, ksft } = g.env;
  const f = 'mremap_dontunmap_simple_shmem';
  const num_pages = 5;
  const size = num_pages * g.page_size;

  const mem_fd = memfd_create(libc, 'memfd', MFD_CLOEXEC);
  BUG_ON(g, mem_fd < 0, f, 134, 'memfd_create');

  BUG_ON(g, libc.ftruncate(mem_fd, size) < 0, f, 136, 'ftruncate');

  const source_mapping = libc.mmap(0, size, RW, MAP_SHARED, mem_fd, 0);
  BUG_ON(g, source_mapping === MAP_FAILED, f, 142, 'mmap');

  BUG_ON(g, libc.close(mem_fd) < 0, f, 144, 'close');

  libc.memset(source_mapping, 'a'.charCodeAt(0), size);

  // Try to just move the whole mapping anywhere (not fixed).
  const dest_mapping = libc.mremap(source_mapping, size, size, MREMAP_DONTUNMAP | MREMAP_MAYMOVE, 0);
  if (dest_mapping === MAP_FAILED && libc.errno === EINVAL) {
    // Old kernel which doesn't support MREMAP_DONTUNMAP on shmem.
    BUG_ON(g, libc.munmap(source_mapping, size) === -1, f, 154, 'unable to unmap source mapping');
    return;
  }

  BUG_ON(g, dest_mapping === MAP_FAILED, f, 159, 'mremap');

  // Validate that the pages have been moved, we know they were moved if
  // the dest_mapping contains a's.
  BUG_ON(
    g,
    check_region_contains_byte(g, dest_mapping, size, 'a'.charCodeAt(0)) !== 0,
    f,
    163,
    'pages did not migrate',
  );

  // Because the region is backed by shmem, we will actually see the same
  // memory at the source location still.
  BUG_ON(
    g,
    check_region_contains_byte(g, source_mapping, size, 'a'.charCodeAt(0)) !== 0,
    f,
    169,
    'source should have no ptes',
  );

  BUG_ON(g, libc.munmap(dest_mapping, size) === -1, f, 173, 'unable to unmap destination mapping');
  BUG_ON(g, libc.munmap(source_mapping, size) === -1, f, 175, 'unable to unmap source mapping');
  ksft.test_result_pass(`${f}\n`);
}

/** Models mremap_dontunmap_simple_fixed(): DONTUNMAP with MREMAP_FIXED over an existing mapping. */
function mremap_dontunmap_simple_fixed(g: Globals): void {
  const { libc, ksft } = g.env;
  const f = 'mremap_dontunmap_simple_fixed';
  const num_pages = 5;
  const size = num_pages * g.page_size;

  // Since we want to guarantee that we can remap to a point, we will
  // create a mapping up front.
  const dest_mapping = libc.mmap(0, size, RW, PRIV_ANON, -1, 0);
  BUG_ON(g, dest_mapping === MAP_FAILED, f, 192, 'mmap');
  libc.memset(dest_mapping, 'X'.charCodeAt(0), size);

  const source_mapping = libc.mmap(0, size, RW, PRIV_ANON, -1, 0);
  BUG_ON(g, source_mapping === MAP_FAILED, f, 198, 'mmap');
  libc.memset(source_mapping, 'a'.charCodeAt(0), size);

  const remapped_mapping = libc.mremap(
    source_mapping,
    size,
    size,
    MREMAP_FIXED | MREMAP_DONTUNMAP | MREMAP_MAYMOVE,
    dest_mapping,
  );
  BUG_ON(g, remapped_mapping === MAP_FAILED, f, 205, 'mremap');
  BUG_ON(
    g,
    remapped_mapping !== dest_mapping,
    f,
    206,
    'mremap should have placed the remapped mapping at dest_mapping',
  );

  // The dest mapping will have been unmap by mremap so we expect the Xs
  // to be gone and replaced with a's.
  BUG_ON(
    g,
    check_region_contains_byte(g, dest_mapping, size, 'a'.charCodeAt(0)) !== 0,
    f,
    211,
    'pages did not migrate',
  );

  // And the source mapping will have had its ptes dropped.
  BUG_ON(
    g,
    check_region_contains_byte(g, source_mapping, size, 0) !== 0,
    f,
    216,
    'source should have no ptes',
  );

  BUG_ON(g, libc.munmap(dest_mapping, size) === -1, f, 220, 'unable to unmap destination mapping');
  BUG_ON(g, libc.munmap(source_mapping, size) === -1, f, 222, 'unable to unmap source mapping');
  ksft.test_result_pass(`${f}\n`);
}

/** Models mremap_dontunmap_partial_mapping(): DONTUNMAP of the last 5 pages of a 10-page mapping. */
function mremap_dontunmap_partial_mapping(g: Globals): void {
  const { libc, ksft } = g.env;
  const f = 'mremap_dontunmap_partial_mapping';
  const ps = g.page_size;
  /*
   *  source mapping:
   *  --------------
   *  | aaaaaaaaaa |
   *  --------------
   *  to become:
   *  --------------
   *  | aaaaa00000 |
   *  --------------
   *  With the destination mapping containing 5 pages of As.
   *  ---------
   *  | aaaaa |
   *  ---------
   */
  const num_pages = 10;
  const source_mapping = libc.mmap(0, num_pages * ps, RW, PRIV_ANON, -1, 0);
  BUG_ON(g, source_mapping === MAP_FAILED, f, 249, 'mmap');
  libc.memset(source_mapping, 'a'.charCodeAt(0), num_pages * ps);

  // We will grab the last 5 pages of the source and move them.
  const dest_mapping = libc.mremap(
    source_mapping + 5 * ps,
    5 * ps,
    5 * ps,
    MREMAP_DONTUNMAP | MREMAP_MAYMOVE,
    0,
  );
  BUG_ON(g, dest_mapping === MAP_FAILED, f, 257, 'mremap');

  // We expect the first 5 pages of the source to contain a's and the
  // final 5 pages to contain zeros.
  BUG_ON(
    g,
    check_region_contains_byte(g, source_mapping, 5 * ps, 'a'.charCodeAt(0)) !== 0,
    f,
    261,
    'first 5 pages of source should have original pages',
  );
  BUG_ON(
    g,
    check_region_contains_byte(g, source_mapping + 5 * ps, 5 * ps, 0) !== 0,
    f,
    263,
    'final 5 pages of source should have no ptes',
  );

  // Finally we expect the destination to have 5 pages worth of a's.
  BUG_ON(
    g,
    check_region_contains_byte(g, dest_mapping, 5 * ps, 'a'.charCodeAt(0)) !== 0,
    f,
    268,
    'dest mapping should contain ptes from the source',
  );

  BUG_ON(g, libc.munmap(dest_mapping, 5 * ps) === -1, f, 271, 'unable to unmap destination mapping');
  BUG_ON(g, libc.munmap(source_mapping, num_pages * ps) === -1, f, 273, 'unable to unmap source mapping');
  ksft.test_result_pass(`${f}\n`);
}

/** Models mremap_dontunmap_partial_mapping_overwrite(): DONTUNMAP|FIXED over half of a bigger mapping. */
function mremap_dontunmap_partial_mapping_overwrite(g: Globals): void {
  const { libc, ksft } = g.env;
  const f = 'mremap_dontunmap_partial_mapping_overwrite';
  const ps = g.page_size;
  /*
   *  source mapping:
   *  ---------
   *  |aaaaa|
   *  ---------
   *  dest mapping initially:
   *  -----------
   *  |XXXXXXXXXX|
   *  ------------
   *  Source to become:
   *  ---------
   *  |00000|
   *  ---------
   *  With the destination mapping containing 5 pages of As.
   *  ------------
   *  |aaaaaXXXXX|
   *  ------------
   */
  const source_mapping = libc.mmap(0, 5 * ps, RW, PRIV_ANON, -1, 0);
  BUG_ON(g, source_mapping === MAP_FAILED, f, 302, 'mmap');
  libc.memset(source_mapping, 'a'.charCodeAt(0), 5 * ps);

  const dest_mapping = libc.mmap(0, 10 * ps, RW, PRIV_ANON, -1, 0);
  BUG_ON(g, dest_mapping === MAP_FAILED, f, 308, 'mmap');
  libc.memset(dest_mapping, 'X'.charCodeAt(0), 10 * ps);

  // We will grab the last 5 pages of the source and move them.
  const remapped_mapping = libc.mremap(
    source_mapping,
    5 * ps,
    5 * ps,
    MREMAP_DONTUNMAP | MREMAP_MAYMOVE | MREMAP_FIXED,
    dest_mapping,
  );
  BUG_ON(g, remapped_mapping === MAP_FAILED, f, 316, 'mremap');
  BUG_ON(g, dest_mapping !== remapped_mapping, f, 317, 'expected to remap to dest_mapping');

  BUG_ON(
    g,
    check_region_contains_byte(g, source_mapping, 5 * ps, 0) !== 0,
    f,
    319,
    'first 5 pages of source should have no ptes',
  );

  // Finally we expect the destination to have 5 pages worth of a's.
  BUG_ON(
    g,
    check_region_contains_byte(g, dest_mapping, 5 * ps, 'a'.charCodeAt(0)) !== 0,
    f,
    323,
    'dest mapping should contain ptes from the source',
  );

  // Finally the last 5 pages shouldn't have been touched.
  BUG_ON(
    g,
    check_region_contains_byte(g, dest_mapping + 5 * ps, 5 * ps, 'X'.charCodeAt(0)) !== 0,
    f,
    327,
    'dest mapping should have retained the last 5 pages',
  );

  BUG_ON(g, libc.munmap(dest_mapping, 10 * ps) === -1, f, 331, 'unable to unmap destination mapping');
  BUG_ON(g, libc.munmap(source_mapping, 5 * ps) === -1, f, 333, 'unable to unmap source mapping');
  ksft.test_result_pass(`${f}\n`);
}

/** Models main() of mremap_dontunmap.c. */
export function mremap_dontunmap_main(env: ProgramEnv): number {
  const { libc, ksft } = env;
  ksft.print_header();

  const g: Globals = { env, page_size: libc.sysconfPageSize(), page_buffer: 0 };

  // test for kernel support for MREMAP_DONTUNMAP skipping the test if
  // not.
  if (kernel_support_for_mremap_dontunmap(g) !== 0) {
    ksft.print_msg('No kernel support for MREMAP_DONTUNMAP\n');
    ksft.finished();
  }

  ksft.set_plan(5);

  // Keep a page sized buffer around for when we need it.
  g.page_buffer = libc.mmap(0, g.page_size, RW, PRIV_ANON, -1, 0);
  BUG_ON(g, g.page_buffer === MAP_FAILED, 'main', 357, 'unable to mmap a page.');

  mremap_dontunmap_simple(g);
  mremap_dontunmap_simple_shmem(g);
  mremap_dontunmap_simple_fixed(g);
  mremap_dontunmap_partial_mapping(g);
  mremap_dontunmap_partial_mapping_overwrite(g);

  BUG_ON(g, libc.munmap(g.page_buffer, g.page_size) === -1, 'main', 365, 'unable to unmap page buffer');

  return ksft.finished();
}
