/**
 * The parts of tools/testing/selftests/mm/vm_util.c (v6.19) the ported binaries link with:
 * pagemap_get_entry() and the page_entry_is() checks (with the PAGEMAP_SCAN cross-check when the
 * kernel has it), check_for_pattern(), __get_smap_entry(), check_vmflag() and
 * softdirty_supported(). Failures end the program through ksft_exit_fail_msg(), as in C.
 */

import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@hmm-model/mm-core';
import { PM_PRESENT, PM_SWAP, strerror } from '@hmm-model/selftests';
import { fmtPtr } from './printf.js';
import type { ProgramEnv } from './program.js';
import { readWholeFile } from './program.js';

/** Models PM_SOFT_DIRTY (vm_util.h): bit 55 of a pagemap entry. */
export const PM_SOFT_DIRTY = 1n << 55n;

/** Models SMAP_FILE_PATH (vm_util.c). */
export const SMAP_FILE_PATH = '/proc/self/smaps';

/** Models the PAGE_IS_* categories (include/uapi/linux/fs.h). */
export const PAGE_IS_WPALLOWED = 1 << 0;
export const PAGE_IS_WRITTEN = 1 << 1;
export const PAGE_IS_FILE = 1 << 2;
export const PAGE_IS_PRESENT = 1 << 3;
export const PAGE_IS_SWAPPED = 1 << 4;
export const PAGE_IS_PFNZERO = 1 << 5;
export const PAGE_IS_HUGE = 1 << 6;
export const PAGE_IS_SOFT_DIRTY = 1 << 7;

/** Models sizeof(struct pm_scan_arg) (include/uapi/linux/fs.h): twelve __u64 fields. */
const PM_SCAN_ARG_SIZE = 96;
/** Models sizeof(struct page_region): start, end, categories. */
const PAGE_REGION_SIZE = 24;

/** Models PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg) (include/uapi/linux/fs.h). */
export const PAGEMAP_SCAN = (0xc0000000 | (PM_SCAN_ARG_SIZE << 16) | ('f'.charCodeAt(0) << 8) | 16) >>> 0;

/** Per-program static state of vm_util.c (pagemap_scan_supported()'s `static int supported`). */
const scanSupported = new WeakMap<ProgramEnv, boolean>();

/** Models pagemap_get_entry(fd, start) (vm_util.c). */
export function pagemap_get_entry(env: ProgramEnv, fd: number, start: number): bigint {
  const pfn = Math.floor(start / env.libc.sysconfPageSize());
  const buf = new Uint8Array(8);
  const ret = env.libc.pread(fd, buf, 8, pfn * 8);
  if (ret !== 8) env.ksft.exit_fail_msg('reading pagemap failed\n');
  return new DataView(buf.buffer).getBigUint64(0, true);
}

/**
 * Models __pagemap_scan_get_categories(fd, start, r): ioctl(PAGEMAP_SCAN) for the page at
 * `start` with a struct pm_scan_arg on the stack and the result vector at `vec`.
 */
function pagemap_scan_ioctl(env: ProgramEnv, fd: number, start: number, vec: bigint): number {
  const { libc, proc } = env;
  const arg = libc.stackAlloc(PM_SCAN_ARG_SIZE + PAGE_REGION_SIZE);
  const anyof =
    PAGE_IS_WPALLOWED |
    PAGE_IS_WRITTEN |
    PAGE_IS_FILE |
    PAGE_IS_PRESENT |
    PAGE_IS_SWAPPED |
    PAGE_IS_PFNZERO |
    PAGE_IS_HUGE |
    PAGE_IS_SOFT_DIRTY;
  const fields: bigint[] = [
    BigInt(PM_SCAN_ARG_SIZE), // size
    0n, // flags
    BigInt(start), // start
    BigInt(start + libc.sysconfPageSize()), // end
    0n, // walk_end
    vec, // vec
    1n, // vec_len
    0n, // max_pages
    0n, // category_inverted
    0n, // category_mask
    BigInt(anyof), // category_anyof_mask
    BigInt(anyof), // return_mask
  ];
  for (const [i, v] of fields.entries()) proc.writeU64(arg + i * 8, BigInt.asUintN(64, v));
  return libc.ioctl(fd, PAGEMAP_SCAN, arg);
}

/** Models pagemap_scan_get_categories(fd, start): the categories of the page, 0 when none. */
function pagemap_scan_get_categories(env: ProgramEnv, fd: number, start: number): number {
  const r = env.libc.stackAlloc(PM_SCAN_ARG_SIZE + PAGE_REGION_SIZE) + PM_SCAN_ARG_SIZE;
  const ret = pagemap_scan_ioctl(env, fd, start, BigInt(r));
  if (ret < 0) env.ksft.exit_fail_msg(`PAGEMAP_SCAN failed: ${strerror(env.libc.errno)}\n`);
  if (ret === 0) return 0;
  return Number(env.proc.readU64(r + 16));
}

/**
 * Models pagemap_scan_supported(fd, start): PAGEMAP_SCAN with an invalid vector must fail with
 * EFAULT on a kernel that has it (any other error: not supported). Cached for the program.
 */
function pagemap_scan_supported(env: ProgramEnv, fd: number, start: number): boolean {
  const cached = scanSupported.get(env);
  if (cached !== undefined) return cached;
  const ret = pagemap_scan_ioctl(env, fd, start, 2n ** 64n - 1n);
  if (ret === 0) env.ksft.exit_fail_msg('PAGEMAP_SCAN succeeded unexpectedly\n');
  const supported = env.libc.errno === 14; // EFAULT
  scanSupported.set(env, supported);
  return supported;
}

/** Models page_entry_is() (vm_util.c): the pagemap bit, cross-checked with PAGEMAP_SCAN when supported. */
function page_entry_is(
  env: ProgramEnv,
  fd: number,
  start: number,
  desc: string,
  pagemapFlags: bigint,
  pagescanFlags: number,
): boolean {
  const m = (pagemap_get_entry(env, fd, start) & pagemapFlags) !== 0n;
  if (pagemap_scan_supported(env, fd, start)) {
    const s = (pagemap_scan_get_categories(env, fd, start) & pagescanFlags) !== 0;
    if (m === s) return m;
    env.ksft.exit_fail_msg(`read and ioctl return unmatched results for ${desc}: ${+m} ${+s}`);
  }
  return m;
}

/** Models pagemap_is_softdirty(fd, start) (vm_util.c). */
export function pagemap_is_softdirty(env: ProgramEnv, fd: number, start: number): boolean {
  return page_entry_is(env, fd, start, 'soft-dirty', PM_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY);
}

/** Models pagemap_is_populated(fd, start) (vm_util.c): present or swapped. */
export function pagemap_is_populated(env: ProgramEnv, fd: number, start: number): boolean {
  return page_entry_is(env, fd, start, 'populated', PM_PRESENT | PM_SWAP, PAGE_IS_PRESENT | PAGE_IS_SWAPPED);
}

/** Models clear_softdirty() (vm_util.c): write "4" to /proc/self/clear_refs. */
export function clear_softdirty(env: ProgramEnv): void {
  const { libc } = env;
  const fd = libc.open('/proc/self/clear_refs', 1 /* O_WRONLY */);
  if (fd < 0) env.ksft.exit_fail_msg('opening clear_refs failed\n');
  const ctrl = libc.stackAlloc(1);
  env.proc.writeU8(ctrl, '4'.charCodeAt(0));
  const ret = libc.pwrite(fd, ctrl, 1, 0);
  libc.close(fd);
  if (ret !== 1) env.ksft.exit_fail_msg('writing clear_refs failed\n');
}

/** Models a FILE read with fgets(): the lines of a text and a read position. */
export class LineReader {
  readonly #lines: string[];
  #at = 0;
  constructor(text: string) {
    this.#lines = text.split(/(?<=\n)/);
  }
  /** Models fgets(buf, len, fp): the next line (with its newline), at most len - 1 characters. */
  fgets(len: number): string | null {
    if (this.#at >= this.#lines.length) return null;
    const line = this.#lines[this.#at];
    if (line.length <= len - 1) {
      this.#at++;
      return line;
    }
    this.#lines[this.#at] = line.slice(len - 1);
    return line.slice(0, len - 1);
  }
}

/** Models MAX_LINE_LENGTH (vm_util.c). */
export const MAX_LINE_LENGTH = 500;

/** Models check_for_pattern(fp, pattern, buf, len): the first line starting with `pattern`, or null. */
export function check_for_pattern(fp: LineReader, pattern: string, len = MAX_LINE_LENGTH): string | null {
  for (let buf = fp.fgets(len); buf !== null; buf = fp.fgets(len)) if (buf.startsWith(pattern)) return buf;
  return null;
}

/**
 * Models __get_smap_entry(addr, pattern, buf, len) (vm_util.c): in /proc/self/smaps, the block of
 * the VMA starting at `addr`, then the next line starting with `pattern`; returns the text after
 * the pattern without the newline, or null.
 */
export function __get_smap_entry(env: ProgramEnv, addr: number, pattern: string): string | null {
  const addrPattern = `${addr.toString(16).padStart(8, '0')}-`;
  const text = readWholeFile(env.libc, SMAP_FILE_PATH);
  if (text === null) env.ksft.exit_fail_msg(`__get_smap_entry: Failed to open file ${SMAP_FILE_PATH}\n`);
  const fp = new LineReader(text);
  if (check_for_pattern(fp, addrPattern) === null) return null;
  const buf = check_for_pattern(fp, pattern);
  if (buf === null) return null;
  const nl = buf.indexOf('\n');
  return (nl >= 0 ? buf.slice(0, nl) : buf).slice(pattern.length);
}

/** Models check_vmflag(addr, flag) (vm_util.c): is `flag` among the VMA's VmFlags mnemonics? */
export function check_vmflag(env: ProgramEnv, addr: number, flag: string): boolean {
  const flags = __get_smap_entry(env, addr, 'VmFlags:');
  if (flags === null) env.ksft.exit_fail_msg(`check_vmflag: No VmFlags for ${fmtPtr(addr)}\n`);
  return flags.split(' ').some((f) => f.length > 0 && f === flag);
}

/**
 * Models softdirty_supported() (vm_util.c): a new private anonymous mapping carries VM_SOFTDIRTY
 * (`sd`) exactly when the kernel has CONFIG_MEM_SOFT_DIRTY.
 */
export function softdirty_supported(env: ProgramEnv): boolean {
  const { libc } = env;
  const pagesize = libc.sysconfPageSize();
  const addr = libc.mmap(0, pagesize, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, 0, 0);
  if (!addr) env.ksft.exit_fail_msg('mmap failed\n');
  const supported = check_vmflag(env, addr, 'sd');
  libc.munmap(addr, pagesize);
  return supported;
}

/** Models PMD_SIZE_FILE_PATH (vm_util.h). */
const PMD_SIZE_FILE_PATH = '/sys/kernel/mm/transparent_hugepage/hpage_pmd_size';

/** Models read_pmd_pagesize() (vm_util.c): strtoul() of hpage_pmd_size, 0 when it cannot be read. */
export function read_pmd_pagesize(env: ProgramEnv): number {
  const { libc } = env;
  const fd = libc.open(PMD_SIZE_FILE_PATH, 0 /* O_RDONLY */);
  if (fd === -1) return 0;
  const buf = new Uint8Array(19);
  const num_read = libc.read(fd, buf, 19);
  libc.close(fd);
  if (num_read < 1) return 0;
  const m = /^\s*(\d+)/.exec(new TextDecoder().decode(buf.subarray(0, num_read)));
  return m ? Number(m[1]) : 0;
}
