/**
 * The shared part of the mremap_test.c port (v6.19): sizes, struct config, the program's static
 * state, /proc/self/maps as a re-readable FILE, get_mmap_min_addr(), is_range_mapped(),
 * get_source_mapping(), the result line of the cases that are not remap cases, and the options.
 */

import {
  EEXIST,
  EPERM,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { ExitRequest, getopt, KSFT_SKIP, MAP_FAILED, strerror } from '@hmm-model/selftests';
import { fmtHashX, schar } from '../printf.js';
import { type ProgramEnv, readWholeFile } from '../program.js';

/** Models the size enum of mremap_test.c. */
export const _1MB = 2 ** 20;
export const _2MB = 2 * 2 ** 20;
export const _4MB = 4 * 2 ** 20;
export const _5MB = 5 * 2 ** 20;
export const _1GB = 2 ** 30;
export const _2GB = 2 * 2 ** 30;
export const PMD = _2MB;
export const PUD = _1GB;

/** Models SIZE_MB(m). */
export const SIZE_MB = (m: number): number => m * 1024 * 1024;
/** Models SIZE_KB(k). */
export const SIZE_KB = (k: number): number => k * 1024;

/** Models `unsigned int * unsigned int` (the size enum's constants are unsigned int): the product mod 2^32. */
export const u32mul = (a: number, b: number): number => (a * b) % 2 ** 32;

/** Models a 64-bit value of the C code (pointers, unsigned long long) for bit operations. */
export const big = (v: number): bigint => BigInt.asUintN(64, BigInt(v));
/** Models converting a 64-bit value back to an address. */
export const small = (v: bigint): number => Number(BigInt.asUintN(64, v));

/** Models struct config (mremap_test.c). */
export interface Config {
  src_alignment: number;
  dest_alignment: number;
  region_size: number;
  overlapping: number;
  dest_preamble_size: number;
}

/** The program's static state: get_mmap_min_addr()'s cached value, and the process. */
export interface Globals {
  readonly env: ProgramEnv;
  mmapMinAddr: number;
}

/** Models `FILE *maps_fp` on /proc/self/maps: each rewind() + getline() loop reads the file anew. */
export class MapsFile {
  readonly #env: ProgramEnv;
  readonly fd: number;
  constructor(env: ProgramEnv, fd: number) {
    this.#env = env;
    this.fd = fd;
  }
  /** Models rewind(maps_fp) then getline() to EOF: the lines of the file now. */
  lines(): string[] {
    const { libc } = this.#env;
    let text = '';
    for (let pos = 0; ; ) {
      const buf = new Uint8Array(4096);
      const n = libc.pread(this.fd, buf, buf.length, pos);
      if (n <= 0) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
      pos += n;
    }
    return text.split(/(?<=\n)/).filter((l) => l.length > 0);
  }
}

/** Models get_mmap_min_addr(): /proc/sys/vm/mmap_min_addr, read once; exit(KSFT_SKIP) if unreadable. */
export function get_mmap_min_addr(g: Globals): number {
  const { libc, ksft } = g.env;
  if (g.mmapMinAddr) return g.mmapMinAddr;
  const text = readWholeFile(libc, '/proc/sys/vm/mmap_min_addr');
  if (text === null) {
    ksft.print_msg(`Failed to open /proc/sys/vm/mmap_min_addr: ${strerror(libc.errno)}\n`);
    throw new ExitRequest(KSFT_SKIP);
  }
  const m = /^\s*(\d+)/.exec(text);
  if (!m) {
    ksft.print_msg(`Failed to read /proc/sys/vm/mmap_min_addr: ${strerror(libc.errno)}\n`);
    throw new ExitRequest(KSFT_SKIP);
  }
  g.mmapMinAddr = Number(m[1]);
  return g.mmapMinAddr;
}

/** Models is_range_mapped(maps_fp, start, end): one line of /proc/self/maps covers [start, end). */
export function is_range_mapped(g: Globals, maps: MapsFile, start: number, end: number): boolean {
  for (const line of maps.lines()) {
    const m = /^\s*([0-9a-fA-F]+)-([0-9a-fA-F]+)/.exec(line);
    if (!m) g.env.ksft.exit_fail_msg('cannot parse /proc/self/maps\n');
    const first_val = Number.parseInt(m[1], 16);
    const second_val = Number.parseInt(m[2], 16);
    if (first_val <= start && second_val >= end) return true;
  }
  return false;
}

/**
 * Models get_source_mapping(c): the first address at or above mmap_min_addr + 40 MiB, stepping by
 * src_alignment, where a shared anonymous region maps with MAP_FIXED_NOREPLACE and whose
 * alignment is exactly src_alignment (not a multiple of it); 0 (NULL) on another mmap() error.
 */
export function get_source_mapping(g: Globals, c: Config): number {
  const { libc, ksft } = g.env;
  let mmap_min_addr = get_mmap_min_addr(g);
  /*
   * For some tests, we need to not have any mappings below the
   * source mapping. Add some headroom to mmap_min_addr for this.
   */
  mmap_min_addr += 10 * _4MB;

  // `retry: addr += c.src_alignment; if (addr < mmap_min_addr) goto retry;` from addr 0.
  let addr = Math.max(1, Math.ceil(mmap_min_addr / c.src_alignment)) * c.src_alignment;
  for (; ; addr += c.src_alignment) {
    const src_addr = libc.mmap(
      addr,
      c.region_size,
      PROT_READ | PROT_WRITE,
      MAP_FIXED_NOREPLACE | MAP_ANONYMOUS | MAP_SHARED,
      -1,
      0,
    );
    if (src_addr === MAP_FAILED) {
      if (libc.errno === EPERM || libc.errno === EEXIST) continue;
      break;
    }
    /*
     * Check that the address is aligned to the specified alignment.
     * Addresses which have alignments that are multiples of that
     * specified are not considered valid. For instance, 1GB address is
     * 2MB-aligned, however it will not be considered valid for a
     * requested alignment of 2MB. This is done to reduce coincidental
     * alignment in the tests.
     */
    const a = big(src_addr);
    const al = big(c.src_alignment);
    if ((a & (al - 1n)) !== 0n || (a & al) === 0n) {
      libc.munmap(src_addr, c.region_size);
      continue;
    }
    if (!src_addr) break;
    return src_addr;
  }
  ksft.print_msg(`Failed to map source region: ${strerror(libc.errno)}\n`);
  return 0;
}

/** Models the end of the cases that are not remap cases: `ksft_test_result_pass/fail("%s\n", name)`. */
export function result(g: Globals, success: boolean, name: string): void {
  if (success) g.env.ksft.test_result_pass(`${name}\n`);
  else g.env.ksft.test_result_fail(`${name}\n`);
}

/**
 * Models the pattern check of mremap_move_within_range() and mremap_move_1mb_from_start():
 * `srand(seed); for (i = 0; i < 1MB; i++)` compare src[i] with (char) rand(), printing every
 * mismatch (the loop does not stop). Returns whether all bytes matched.
 */
export function checkSrcPattern(g: Globals, src: number, pattern_seed: number): boolean {
  const { proc, ksft, rand } = g.env;
  let success = true;
  rand.srand(pattern_seed);
  const got = proc.readBytes(src, SIZE_MB(1));
  for (let i = 0; i < SIZE_MB(1); i++) {
    const c = schar(rand.rand());
    if (schar(got[i]) !== c) {
      ksft.print_msg(`Data at src at ${i} got corrupted due to unrelated mremap\n`);
      ksft.print_msg(`Expected: ${fmtHashX(c & 0xff)}\t Got: ${fmtHashX(got[i] & 0xff)}\n`);
      success = false;
    }
  }
  return success;
}

/** Models usage(cmd): the option summary on stderr. */
function usage(g: Globals, cmd: string): void {
  g.env.stdio.eprintf(
    `Usage: ${cmd} [[-t <threshold_mb>] [-p <pattern_seed>]]\n` +
      '-t\t only validate threshold_mb of the remapped region\n' +
      '  \t if 0 is supplied no threshold is used; all tests\n' +
      '  \t are run and remapped regions validated fully.\n' +
      '  \t The default threshold used is 4MB.\n' +
      '-p\t provide a seed to generate the random pattern for\n' +
      '  \t validating the remapped region.\n',
  );
}

/** Models atoi(3) as the value is stored in an unsigned int: leading blanks, a sign, digits; mod 2^32. */
function atoiU32(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d*)/.exec(s);
  if (!m?.[2]) return 0;
  const n = Number(BigInt.asIntN(32, BigInt(m[2])));
  return (m[1] === '-' ? -n : n) >>> 0;
}

/** Models whether getopt(3) leaves optind < argc: a non-option argument remains (GNU permutation). */
function hasNonOption(argv: readonly string[], optstring: string): boolean {
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return i + 1 < argv.length;
    if (a.length < 2 || a[0] !== '-') return true;
    for (let j = 1; j < a.length; j++) {
      const at = optstring.indexOf(a[j]);
      if (at >= 0 && optstring[at + 1] === ':') {
        if (j + 1 === a.length) i++;
        break;
      }
    }
  }
  return false;
}

/** Models parse_args(): -t threshold_mb, -p pattern_seed; usage and -1 on anything else. */
export function parse_args(
  g: Globals,
  argv: readonly string[],
  opts: { threshold_mb: number; pattern_seed: number },
): number {
  const optstr = 't:p:';
  for (const ev of getopt(argv, optstr)) {
    if (ev.kind === 'opt' && ev.opt === 't') opts.threshold_mb = atoiU32(ev.arg ?? '');
    else if (ev.kind === 'opt' && ev.opt === 'p') opts.pattern_seed = atoiU32(ev.arg ?? '');
    else {
      // glibc getopt(3) prints its diagnostic first (`--name` is the invalid option '-').
      g.env.stdio.eprintf(ev.kind === 'error' ? `${ev.message}\n` : `${argv[0]}: invalid option -- '-'\n`);
      usage(g, argv[0]);
      return -1;
    }
  }
  if (hasNonOption(argv, optstr)) {
    usage(g, argv[0]);
    return -1;
  }
  return 0;
}
