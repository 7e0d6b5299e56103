/**
 * The cases of the mremap_test.c port (v6.19) that are not remap cases: the two expand merges and
 * the nine cases of v6.12 … v6.17 (move within a range, 1 MiB from a 1.25 MiB-aligned start,
 * shrink and move across several VMAs, the uffd one). A C `goto out_unmap` is a helper that
 * returns early; the cleanup after it runs in C order.
 */

import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { MAP_FAILED, strerror } from '@hmm-model/selftests';
import { schar } from '../printf.js';
import {
  big,
  type Config,
  checkSrcPattern,
  type Globals,
  get_source_mapping,
  is_range_mapped,
  type MapsFile,
  result,
  SIZE_KB,
  SIZE_MB,
  small,
} from './mremap-test-common.js';
import { copyUser } from './user-mem.js';

const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/**
 * Models mremap_expand_merge(): three pages, the middle one unmapped, the first expanded in place
 * over the hole; the two parts must merge into one mapping.
 */
export function mremap_expand_merge(g: Globals, maps: MapsFile, page_size: number): void {
  const { libc, ksft } = g.env;
  const test_name = 'mremap expand merge';

  const start = libc.mmap(0, 3 * page_size, RW, PRIV_ANON, -1, 0);
  if (start === MAP_FAILED) {
    ksft.print_msg(`mmap failed: ${strerror(libc.errno)}\n`);
    result(g, false, test_name);
    return;
  }

  libc.munmap(start + page_size, page_size);
  const remap = libc.mremap(start, page_size, 2 * page_size, 0, 0);
  if (remap === MAP_FAILED) {
    ksft.print_msg(`mremap failed: ${strerror(libc.errno)}\n`);
    libc.munmap(start, page_size);
    libc.munmap(start + 2 * page_size, page_size);
    result(g, false, test_name);
    return;
  }

  const success = is_range_mapped(g, maps, start, start + 3 * page_size);
  libc.munmap(start, 3 * page_size);
  result(g, success, test_name);
}

/**
 * Models mremap_expand_merge_offset(): three pages, the last one unmapped, the second expanded
 * in place; the mapping must be one VMA again.
 */
export function mremap_expand_merge_offset(g: Globals, maps: MapsFile, page_size: number): void {
  const { libc, ksft } = g.env;
  const test_name = 'mremap expand merge offset';

  const start = libc.mmap(0, 3 * page_size, RW, PRIV_ANON, -1, 0);
  if (start === MAP_FAILED) {
    ksft.print_msg(`mmap failed: ${strerror(libc.errno)}\n`);
    result(g, false, test_name);
    return;
  }

  /* Unmap final page to ensure we have space to expand. */
  libc.munmap(start + 2 * page_size, page_size);
  const remap = libc.mremap(start + page_size, page_size, 2 * page_size, 0, 0);
  if (remap === MAP_FAILED) {
    ksft.print_msg(`mremap failed: ${strerror(libc.errno)}\n`);
    libc.munmap(start, 2 * page_size);
    result(g, false, test_name);
    return;
  }

  const success = is_range_mapped(g, maps, start, start + 3 * page_size);
  libc.munmap(start, 3 * page_size);
  result(g, success, test_name);
}

/**
 * Models mremap_move_within_range(): inside one 20 MiB mapping, move the upper 1 MiB of a 2 MiB
 * block down by 2 MiB; the lower 1 MiB must keep its pattern.
 */
export function mremap_move_within_range(g: Globals, pattern_seed: number, rand_addr: number): void {
  const { libc, stdio } = g.env;
  const test_name = 'mremap mremap move within range';

  const size = SIZE_MB(20);
  const ptr = libc.mmap(0, size, RW, PRIV_ANON, -1, 0);
  const body = (): boolean => {
    if (ptr === MAP_FAILED) {
      stdio.perror('mmap', libc.errno);
      return false;
    }
    libc.memset(ptr, 0, size);

    const src = small(big(ptr + SIZE_MB(6)) & ~big(SIZE_MB(2) - 1));

    /* Set byte pattern for source block. */
    copyUser(g.env, src, rand_addr, SIZE_MB(2));

    const dest = src - SIZE_MB(2);

    const new_ptr = libc.mremap(
      src + SIZE_MB(1),
      SIZE_MB(1),
      SIZE_MB(1),
      MREMAP_MAYMOVE | MREMAP_FIXED,
      dest + SIZE_MB(1),
    );
    if (new_ptr === MAP_FAILED) {
      stdio.perror('mremap', libc.errno);
      return false;
    }

    /* Verify byte pattern after remapping */
    return checkSrcPattern(g, src, pattern_seed);
  };
  const success = body();
  // out:
  if (libc.munmap(ptr, size) === -1) stdio.perror('munmap', libc.errno);
  result(g, success, test_name);
}

/**
 * Models mremap_move_1mb_from_start(): from a source at a 1 MiB + 256 KiB alignment, move its
 * second MiB onto a destination whose first MiB was unmapped; the source's first MiB keeps its
 * pattern.
 */
export function mremap_move_1mb_from_start(g: Globals, pattern_seed: number, rand_addr: number): void {
  const { libc, stdio } = g.env;
  const test_name = 'mremap move 1mb from start at 1MB+256KB aligned src';
  let src = 0;
  let dest = 0;

  /* Config to reuse get_source_mapping() to do an aligned mmap. */
  const c: Config = {
    src_alignment: SIZE_MB(1) + SIZE_KB(256),
    dest_alignment: 0,
    region_size: SIZE_MB(6),
    overlapping: 0,
    dest_preamble_size: 0,
  };

  const body = (): boolean => {
    src = get_source_mapping(g, c);
    if (!src) return false;

    c.src_alignment = SIZE_MB(1) + SIZE_KB(256);
    dest = get_source_mapping(g, c);
    if (!dest) return false;

    /* Set byte pattern for source block. */
    copyUser(g.env, src, rand_addr, SIZE_MB(2));

    /*
     * Unmap the beginning of dest so that the aligned address
     * falls on no mapping.
     */
    libc.munmap(dest, SIZE_MB(1));

    const new_ptr = libc.mremap(
      src + SIZE_MB(1),
      SIZE_MB(1),
      SIZE_MB(1),
      MREMAP_MAYMOVE | MREMAP_FIXED,
      dest + SIZE_MB(1),
    );
    if (new_ptr === MAP_FAILED) {
      stdio.perror('mremap', libc.errno);
      return false;
    }

    /* Verify byte pattern after remapping */
    return checkSrcPattern(g, src, pattern_seed);
  };
  const success = body();
  // out:
  if (src && libc.munmap(src, c.region_size) === -1) stdio.perror('munmap src', libc.errno);
  if (dest && libc.munmap(dest, c.region_size) === -1) stdio.perror('munmap dest', libc.errno);
  result(g, success, test_name);
}

/** Models the `out_unmap:` cleanup of the multiple-VMA cases. */
function unmapBoth(g: Globals, tgt_ptr: number, tgtSize: number, ptr: number, size: number): void {
  const { libc, stdio } = g.env;
  if (libc.munmap(tgt_ptr, tgtSize)) stdio.perror('munmap tgt', libc.errno);
  if (libc.munmap(ptr, size)) stdio.perror('munmap src', libc.errno);
}

/**
 * Models is_multiple_vma_range_ok(pattern_seed, ptr, page_size): pages 0, 2, 4-5, 6, 8, 10 hold
 * the rand() stream in order.
 */
function is_multiple_vma_range_ok(g: Globals, pattern_seed: number, ptr: number, page_size: number): boolean {
  const { proc, ksft, rand } = g.env;
  rand.srand(pattern_seed);
  for (let i = 0; i <= 10; i += 2) {
    const size = i === 4 ? 2 * page_size : page_size;
    const buf = proc.readBytes(ptr + i * page_size, size);
    for (let j = 0; j < size; j++) {
      const chr = schar(rand.rand());
      if (chr !== schar(buf[j])) {
        ksft.print_msg(`page ${i} offset ${j} corrupted, expected ${chr} got ${schar(buf[j])}\n`);
        return false;
      }
    }
  }
  return true;
}

/**
 * Models mremap_move_multiple_vmas(): an 11-page range of five VMAs with gaps moved whole with
 * MREMAP_FIXED (optionally MREMAP_DONTUNMAP), next to itself, and over a PROT_NONE mapping.
 */
export function mremap_move_multiple_vmas(
  g: Globals,
  pattern_seed: number,
  page_size: number,
  dont_unmap: boolean,
): void {
  const { libc, stdio, proc, rand } = g.env;
  let mremap_flags = MREMAP_FIXED | MREMAP_MAYMOVE;
  const test_name = `mremap move multiple vmas${dont_unmap ? ' [dontunnmap]' : ''}`;
  const size = 11 * page_size;

  if (dont_unmap) mremap_flags |= MREMAP_DONTUNMAP;

  const ptr = libc.mmap(0, size, RW, PRIV_ANON, -1, 0);
  if (ptr === MAP_FAILED) {
    stdio.perror('mmap', libc.errno);
    result(g, false, test_name);
    return;
  }

  const tgt_ptr = libc.mmap(0, 2 * size, RW, PRIV_ANON, -1, 0);
  if (tgt_ptr === MAP_FAILED) {
    stdio.perror('mmap', libc.errno);
    result(g, false, test_name);
    return;
  }

  const body = (): boolean => {
    if (libc.munmap(tgt_ptr, 2 * size)) {
      stdio.perror('munmap', libc.errno);
      return false;
    }

    /*
     * Unmap so we end up with:
     *
     *  0   2   4 5 6   8   10 offset in buffer
     * |*| |*| |*****| |*| |*|
     * |*| |*| |*****| |*| |*|
     *  0   1   2 3 4   5   6  pattern offset
     */
    for (let i = 1; i < 10; i += 2) {
      if (i === 5) continue;
      if (libc.munmap(ptr + i * page_size, page_size)) {
        stdio.perror('munmap', libc.errno);
        return false;
      }
    }

    rand.srand(pattern_seed);

    /* Set up random patterns. */
    for (let i = 0; i <= 10; i += 2) {
      const buf = new Uint8Array(i === 4 ? 2 * page_size : page_size);
      rand.fillBytes(buf);
      proc.writeBytes(ptr + i * page_size, buf);
    }

    /* First, just move the whole thing. */
    if (libc.mremap(ptr, size, size, mremap_flags, tgt_ptr) === MAP_FAILED) {
      stdio.perror('mremap', libc.errno);
      return false;
    }
    /* Check move was ok. */
    if (!is_multiple_vma_range_ok(g, pattern_seed, tgt_ptr, page_size)) return false;

    /* Move next to itself. */
    if (libc.mremap(tgt_ptr, size, size, mremap_flags, tgt_ptr + size) === MAP_FAILED) {
      stdio.perror('mremap', libc.errno);
      return false;
    }
    /* Check that the move is ok. */
    if (!is_multiple_vma_range_ok(g, pattern_seed, tgt_ptr + size, page_size)) return false;

    /* Map a range to overwrite. */
    if (libc.mmap(tgt_ptr, size, PROT_NONE, PRIV_ANON | MAP_FIXED, -1, 0) === MAP_FAILED) {
      stdio.perror('mmap tgt', libc.errno);
      return false;
    }
    /* Move and overwrite. */
    if (libc.mremap(tgt_ptr + size, size, size, mremap_flags, tgt_ptr) === MAP_FAILED) {
      stdio.perror('mremap', libc.errno);
      return false;
    }
    /* Check that the move is ok. */
    return is_multiple_vma_range_ok(g, pattern_seed, tgt_ptr, page_size);
  };
  const success = body();
  unmapBoth(g, tgt_ptr, 2 * size, ptr, size);
  result(g, success, test_name);
}

/**
 * Models mremap_shrink_multiple_vmas(): a 10-page range of five one-page VMAs shrunk to its
 * first page, in place or moved with MREMAP_FIXED.
 */
export function mremap_shrink_multiple_vmas(g: Globals, page_size: number, inplace: boolean): void {
  const { libc, stdio } = g.env;
  const test_name = `mremap shrink multiple vmas${inplace ? ' [inplace]' : ''}`;
  const size = 10 * page_size;

  const ptr = libc.mmap(0, size, RW, PRIV_ANON, -1, 0);
  if (ptr === MAP_FAILED) {
    stdio.perror('mmap', libc.errno);
    result(g, false, test_name);
    return;
  }

  const tgt_ptr = libc.mmap(0, size, RW, PRIV_ANON, -1, 0);
  if (tgt_ptr === MAP_FAILED) {
    stdio.perror('mmap', libc.errno);
    result(g, false, test_name);
    return;
  }

  const body = (): boolean => {
    if (libc.munmap(tgt_ptr, size)) {
      stdio.perror('munmap', libc.errno);
      return false;
    }

    /*
     * Unmap so we end up with:
     *
     *  0   2   4   6   8   10 offset in buffer
     * |*| |*| |*| |*| |*| |*|
     * |*| |*| |*| |*| |*| |*|
     */
    for (let i = 1; i < 10; i += 2) {
      if (libc.munmap(ptr + i * page_size, page_size)) {
        stdio.perror('munmap', libc.errno);
        return false;
      }
    }

    /*
     * Shrink in-place across multiple VMAs and gaps so we end up with:
     *
     *  0
     * |*|
     * |*|
     */
    const res = inplace
      ? libc.mremap(ptr, size, page_size, 0, 0)
      : libc.mremap(ptr, size, page_size, MREMAP_MAYMOVE | MREMAP_FIXED, tgt_ptr);

    if (res === MAP_FAILED) {
      stdio.perror('mremap', libc.errno);
      return false;
    }
    return true;
  };
  const success = body();
  unmapBoth(g, tgt_ptr, size, ptr, size);
  result(g, success, test_name);
}

/**
 * Models mremap_move_multiple_vmas_split(): pages 2..9 of a 10-page range with a hole at page 5
 * (two VMAs) moved to a fresh range; the pattern must follow. As in C, a corrupted pattern is
 * printed but does not make the case fail.
 */
export function mremap_move_multiple_vmas_split(
  g: Globals,
  pattern_seed: number,
  page_size: number,
  dont_unmap: boolean,
): void {
  const { libc, stdio, proc, ksft, rand } = g.env;
  const test_name = `mremap move multiple vmas split${dont_unmap ? ' [dontunnmap]' : ''}`;
  let mremap_flags = MREMAP_FIXED | MREMAP_MAYMOVE;
  const size = 10 * page_size;

  if (dont_unmap) mremap_flags |= MREMAP_DONTUNMAP;

  const ptr = libc.mmap(0, size, RW, PRIV_ANON, -1, 0);
  if (ptr === MAP_FAILED) {
    stdio.perror('mmap', libc.errno);
    result(g, false, test_name);
    return;
  }

  const tgt_ptr = libc.mmap(0, size, RW, PRIV_ANON, -1, 0);
  if (tgt_ptr === MAP_FAILED) {
    stdio.perror('mmap', libc.errno);
    result(g, false, test_name);
    return;
  }

  const body = (): boolean => {
    if (libc.munmap(tgt_ptr, size)) {
      stdio.perror('munmap', libc.errno);
      return false;
    }

    /*
     * Unmap so we end up with:
     *
     *  0 1 2 3 4 5 6 7 8 9 10 offset in buffer
     * |**********| |*******|
     * |**********| |*******|
     *  0 1 2 3 4   5 6 7 8 9  pattern offset
     */
    if (libc.munmap(ptr + 5 * page_size, page_size)) {
      stdio.perror('munmap', libc.errno);
      return false;
    }

    /* Set up random patterns. */
    rand.srand(pattern_seed);
    for (let i = 0; i < 10; i++) {
      if (i === 5) continue;
      const buf = new Uint8Array(page_size);
      rand.fillBytes(buf);
      proc.writeBytes(ptr + i * page_size, buf);
    }

    /*
     * Move the below:
     *
     *      <------------->
     *  0 1 2 3 4 5 6 7 8 9 10 offset in buffer
     * |**********| |*******|
     * |**********| |*******|
     *  0 1 2 3 4   5 6 7 8 9  pattern offset
     *
     * Into:
     *
     * 0 1 2 3 4 5 6 7 offset in buffer
     * |*****| |*****|
     * |*****| |*****|
     * 2 3 4   5 6 7   pattern offset
     */
    if (
      libc.mremap(ptr + 2 * page_size, size - 3 * page_size, size - 3 * page_size, mremap_flags, tgt_ptr) ===
      MAP_FAILED
    ) {
      stdio.perror('mremap', libc.errno);
      return false;
    }

    /* Offset into random pattern. */
    rand.srand(pattern_seed);
    for (let i = 0; i < 2 * page_size; i++) rand.rand();

    /* Check pattern. */
    for (let i = 0; i < 7; i++) {
      if (i === 3) continue;
      const buf = proc.readBytes(tgt_ptr + i * page_size, page_size);
      for (let j = 0; j < page_size; j++) {
        const chr = schar(rand.rand());
        if (chr !== schar(buf[j])) {
          ksft.print_msg(`page ${i} offset ${j} corrupted, expected ${chr} got ${schar(buf[j])}\n`);
          // `goto out_unmap` without clearing success (as in C).
          return true;
        }
      }
    }
    return true;
  };
  const success = body();
  unmapBoth(g, tgt_ptr, size, ptr, size);
  result(g, success, test_name);
}

/**
 * Models mremap_move_multi_invalid_vmas() as built without __NR_userfaultfd (the model has no
 * userfaultfd(2)): the kernel's own skip line, without a newline.
 */
export function mremap_move_multi_invalid_vmas(g: Globals): void {
  const test_name = 'mremap move multiple invalid vmas';
  g.env.ksft.test_result_skip(`${test_name} - missing uffd`);
}
