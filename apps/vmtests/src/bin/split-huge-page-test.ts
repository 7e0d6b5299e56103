/**
 * Port of tools/testing/selftests/mm/split_huge_page_test.c (v6.19): splitting PMD-mapped and
 * PTE-mapped THPs through /sys/kernel/debug/split_huge_pages (split_huge_pages_write(): "pid,
 * vaddr_start,vaddr_end[,new_order[,in_folio_offset]]" or "path,pgoff_start,pgoff_end[,new_order]"),
 * checked through /proc/self/smaps, /proc/self/status, /proc/self/pagemap and /proc/kpageflags.
 *
 * On the model: the anonymous cases run as on a kernel, and split_file_backed_thp() writes 2 MiB
 * to a huge=always tmpfs (one PMD-sized THP: shmem_write_begin()'s write_end covers the aligned
 * chunk) and splits it through the path form (split_huge_pages_in_file()). Every pagecache case
 * takes the C program's own skip ("No large pagecache folio generated"), as on a v6.19 kernel
 * whose run has no XFS image: /tmp is a tmpfs without huge=. A huge tmpfs directory given as
 * argv[1] skips too, as on the kernel: its 1 KiB writes make small folios under huge=always
 * (shmem_mapping_size_orders()), and the THPs shmem_enabled=force gives are counted in smaps'
 * ShmemPmdMapped, never in the FilePmdMapped that check_huge_file() reads.
 */

import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { ExitRequest, MAP_FAILED, PM_PRESENT, strerror } from '@hmm-model/selftests';
import { schar } from '../printf.js';
import type { ProgramEnv } from '../program.js';
import { readWholeFile } from '../program.js';
import {
  check_for_pattern,
  check_huge_anon,
  check_huge_file,
  LineReader,
  pagemap_get_entry,
  read_pmd_pagesize,
} from '../vmutil.js';

/** Models MADV_HUGEPAGE. */
const MADV_HUGEPAGE = 14;
/** Models MAP_SHARED. */
const MAP_SHARED = 0x01;
/** Models MREMAP_MAYMOVE / MREMAP_FIXED. */
const MREMAP_MAYMOVE = 1;
const MREMAP_FIXED = 2;
/** Models SEEK_SET. */
const SEEK_SET = 0;
/** Models O_WRONLY. */
const O_WRONLY = 1;
/** Models EXIT_FAILURE. */
const EXIT_FAILURE = 1;

const SPLIT_DEBUGFS = '/sys/kernel/debug/split_huge_pages';
const STATUS_FILE_PATH = '/proc/self/status';
/** Models INPUT_MAX: the debugfs input buffer (with its NUL). */
const INPUT_MAX = 80;

/** Models KPF_COMPOUND_HEAD / KPF_COMPOUND_TAIL / KPF_THP (include/uapi/linux/kernel-page-flags.h). */
const KPF_COMPOUND_HEAD = 1n << 15n;
const KPF_COMPOUND_TAIL = 1n << 16n;
const KPF_THP = 1n << 22n;
/** Models PFN_MASK of vm_util.h: bits 0-54 of a pagemap entry. */
const PFN_MASK = (1n << 55n) - 1n;

/** The program's globals (pagesize, pmd_pagesize, pmd_order, the two open proc files). */
interface G {
  readonly env: ProgramEnv;
  readonly pagesize: number;
  readonly pmd_pagesize: number;
  readonly pmd_order: number;
  readonly pagemap_fd: number;
  readonly kpageflags_fd: number;
  /** Models `int *expected_orders` (pmd_order + 1 entries). */
  readonly expected_orders: number[];
  /** mkdtemp()'s counter for the XXXXXX part (glibc's is random; the model's is deterministic). */
  temps: number;
}

/** Models pagemap_get_pfn(fd, start) (vm_util.c): the pfn of a present page, else -1. */
function pagemap_get_pfn(g: G, fd: number, start: number): number {
  const entry = pagemap_get_entry(g.env, fd, start);
  if (entry & PM_PRESENT) return Number(entry & PFN_MASK);
  return -1;
}

/** Models pageflags_get(pfn, kpageflags_fd, &flags) (vm_util.c): 0, or -1 on a short read. */
function pageflags_get(g: G, pfn: number, fd: number): { ret: number; flags: bigint } {
  const buf = new Uint8Array(8);
  const count = g.env.libc.pread(fd, buf, 8, pfn * 8);
  if (count !== 8) return { ret: -1, flags: 0n };
  return { ret: 0, flags: new DataView(buf.buffer).getBigUint64(0, true) };
}

/** Models rss_anon() (vm_util.c): RssAnon of /proc/self/status in kB, 0 when the line is missing. */
function rss_anon(g: G): number {
  const text = readWholeFile(g.env.libc, STATUS_FILE_PATH);
  if (text === null) g.env.ksft.exit_fail_msg(`rss_anon: Failed to open file ${STATUS_FILE_PATH}\n`);
  const buffer = check_for_pattern(new LineReader(text), 'RssAnon:');
  if (buffer === null) return 0;
  const m = /^RssAnon:\s*(\d{1,10}) kB/.exec(buffer);
  if (!m) g.env.ksft.exit_fail_msg('Reading status error\n');
  return Number(m[1]);
}

/** Models ksft_perror(msg): `# msg: strerror(errno) (errno)`. */
function ksft_perror(g: G, msg: string): void {
  const e = g.env.libc.errno;
  g.env.ksft.print_msg(`${msg}: ${strerror(e)} (${e})\n`);
}

/**
 * Models is_backed_by_folio(vaddr, order, pagemap_fd, kpageflags_fd): is the page at vaddr part
 * of a folio of exactly `order` (order 0: a page that is neither a compound head nor a tail)?
 */
function is_backed_by_folio(g: G, vaddr: number, order: number): boolean {
  const folio_head_flags = KPF_THP | KPF_COMPOUND_HEAD;
  const folio_tail_flags = KPF_THP | KPF_COMPOUND_TAIL;
  const nr_pages = 2 ** order;
  const pfn = pagemap_get_pfn(g, g.pagemap_fd, vaddr);
  /* non present page */
  if (pfn === -1) return false;
  let r = pageflags_get(g, pfn, g.kpageflags_fd);
  if (r.ret) g.env.ksft.exit_fail_msg('Failed to get folio info\n');
  /* check for order-0 pages */
  if (!order) return !(r.flags & (folio_head_flags | folio_tail_flags));
  /* non THP folio */
  if (!(r.flags & KPF_THP)) return false;
  const pfn_head = pfn - (pfn % nr_pages);
  r = pageflags_get(g, pfn_head, g.kpageflags_fd);
  if (r.ret) g.env.ksft.exit_fail_msg('Failed to get folio info\n');
  /* head PFN has no compound_head flag set */
  if ((r.flags & folio_head_flags) !== folio_head_flags) return false;
  /* check all tail PFN flags */
  for (let i = 1; i < nr_pages; i++) {
    r = pageflags_get(g, pfn_head + i, g.kpageflags_fd);
    if (r.ret) g.env.ksft.exit_fail_msg('Failed to get folio info\n');
    if ((r.flags & folio_tail_flags) !== folio_tail_flags) return false;
  }
  /* the PFN after this folio: if its flags cannot be obtained, assume the order is right */
  r = pageflags_get(g, pfn_head + nr_pages, g.kpageflags_fd);
  if (r.ret) return true;
  /* If we find another tail page, then the folio is larger. */
  return (r.flags & folio_tail_flags) !== folio_tail_flags;
}

/** Models vaddr_pageflags_get(): 0 with the flags, 1 for a non-present page, -1 on error. */
function vaddr_pageflags_get(g: G, vaddr: number): { status: number; flags: bigint } {
  const pfn = pagemap_get_pfn(g, g.pagemap_fd, vaddr);
  /* non-present PFN */
  if (pfn === -1) return { status: 1, flags: 0n };
  const r = pageflags_get(g, pfn, g.kpageflags_fd);
  if (r.ret) return { status: -1, flags: 0n };
  return { status: 0, flags: r.flags };
}

/**
 * Models gather_after_split_folio_orders(): walk [vaddr_start, vaddr_start + len) and count the
 * folios of each order (order-0 pages included); 0, or -1 for unhandled cases.
 */
function gather_after_split_folio_orders(g: G, vaddr_start: number, len: number, orders: number[]): number {
  const psize = g.pagesize;
  const nr_orders = orders.length;
  let cur_order = -1;
  let vaddr = vaddr_start;
  while (vaddr < vaddr_start + len) {
    let { status, flags: page_flags } = vaddr_pageflags_get(g, vaddr);
    if (status < 0) return -1;
    /* skip non present vaddr */
    if (status === 1) {
      vaddr += psize;
      continue;
    }
    /* all order-0 pages with possible false postive (non folio) */
    if (!(page_flags & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL))) {
      orders[0]++;
      vaddr += psize;
      continue;
    }
    /* skip non thp compound pages */
    if (!(page_flags & KPF_THP)) {
      vaddr += psize;
      continue;
    }
    /* vpn points to part of a THP at this point */
    if (page_flags & KPF_COMPOUND_HEAD) cur_order = 1;
    else {
      vaddr += psize;
      continue;
    }
    let next_folio_vaddr = vaddr + 2 ** cur_order * psize;
    if (next_folio_vaddr >= vaddr_start + len) break;
    for (;;) {
      ({ status, flags: page_flags } = vaddr_pageflags_get(g, next_folio_vaddr));
      if (status < 0) break;
      /* non present vaddr, next compound head page, or order-0 page */
      if (
        status === 1 ||
        page_flags & KPF_COMPOUND_HEAD ||
        !(page_flags & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL))
      ) {
        if (cur_order < nr_orders) {
          orders[cur_order]++;
          cur_order = -1;
          vaddr = next_folio_vaddr;
        }
        break;
      }
      cur_order++;
      next_folio_vaddr = vaddr + 2 ** cur_order * psize;
    }
    if (status < 0) return status;
  }
  if (cur_order > 0 && cur_order < nr_orders) orders[cur_order]++;
  return 0;
}

/** Models check_after_split_folio_orders(): the folio orders found must be `orders` exactly. */
function check_after_split_folio_orders(g: G, vaddr_start: number, len: number, orders: number[]): number {
  const vaddr_orders = new Array<number>(orders.length).fill(0);
  let status = gather_after_split_folio_orders(g, vaddr_start, len, vaddr_orders);
  if (status) g.env.ksft.exit_fail_msg('gather folio info failed\n');
  for (let i = 0; i < orders.length; i++)
    if (vaddr_orders[i] !== orders[i]) {
      g.env.ksft.print_msg(`order ${i}: expected: ${orders[i]} got ${vaddr_orders[i]}\n`);
      status = -1;
    }
  return status;
}

/** Models write_file(path, buf, buflen): write buflen - 1 bytes; fail the program on error. */
function write_file(g: G, path: string, buf: string): void {
  const { libc, ksft } = g.env;
  const fd = libc.open(path, O_WRONLY);
  if (fd === -1) ksft.exit_fail_msg(`${path} open failed: ${strerror(libc.errno)}\n`);
  const bytes = new TextEncoder().encode(buf);
  const numwritten = libc.write(fd, bytes, bytes.length);
  libc.close(fd);
  if (numwritten < 1) ksft.exit_fail_msg('Write failed\n');
}

/** Models write_debugfs(fmt, ...): the formatted input (at most INPUT_MAX - 1 bytes) to SPLIT_DEBUGFS. */
function write_debugfs(g: G, input: string): void {
  if (input.length >= INPUT_MAX) g.env.ksft.exit_fail_msg('write_debugfs: Debugfs input is too long\n');
  write_file(g, SPLIT_DEBUGFS, input);
}

/** Models PID_FMT "%d,0x%lx,0x%lx,%d". */
function pidFmt(pid: number, start: number, end: number, order: number): string {
  return `${pid},0x${start.toString(16)},0x${end.toString(16)},${order}`;
}

/** Models `(char)i`: the byte pattern the test writes and checks. */
function pattern(i: number): number {
  return schar(i & 0xff);
}

/** Models `for (i = 0; i < len; i++) p[i] = (char)i;` (stored in ascending order). */
function fillPattern(g: G, p: number, len: number): void {
  const chunk = new Uint8Array(Math.min(len, 1 << 20));
  for (let off = 0; off < len; off += chunk.length) {
    const n = Math.min(chunk.length, len - off);
    for (let i = 0; i < n; i++) chunk[i] = (off + i) & 0xff;
    g.env.proc.writeBytes(p + off, chunk.subarray(0, n));
  }
}

/** Models `for (i = 0; i < len; i++) if (p[i] != (char)want(i)) ...`: the first bad index, or -1. */
function firstBad(g: G, p: number, len: number, want: (i: number) => number): number {
  const step = 1 << 20;
  for (let off = 0; off < len; off += step) {
    const b = g.env.proc.readBytes(p + off, Math.min(step, len - off));
    for (let i = 0; i < b.length; i++) if (schar(b[i]) !== want(off + i)) return off + i;
  }
  return -1;
}

/** Models allocate_zero_filled_hugepage(len): memalign(pmd_pagesize), MADV_HUGEPAGE, zero every byte. */
function allocate_zero_filled_hugepage(g: G, len: number): number {
  const { libc, stdio } = g.env;
  const result = libc.memalign(g.pmd_pagesize, len);
  if (!result) {
    stdio.printf('Fail to allocate memory\n');
    throw new ExitRequest(EXIT_FAILURE);
  }
  libc.madvise(result, len, MADV_HUGEPAGE);
  libc.memset(result, 0, len);
  return result;
}

/** Models verify_rss_anon_split_huge_page_all_zeroes(one_page, nr_hpages, len). */
function verify_rss_anon_split_huge_page_all_zeroes(
  g: G,
  one_page: number,
  nr_hpages: number,
  len: number,
): void {
  const { ksft, libc } = g.env;
  if (!check_huge_anon(g.env, one_page, nr_hpages, g.pmd_pagesize))
    ksft.exit_fail_msg('No THP is allocated\n');
  const rss_anon_before = rss_anon(g);
  if (!rss_anon_before) ksft.exit_fail_msg('No RssAnon is allocated before split\n');
  /* split all THPs */
  write_debugfs(g, pidFmt(libc.getpid(), one_page, one_page + len, 0));
  const bad = firstBad(g, one_page, len, () => 0);
  if (bad >= 0) ksft.exit_fail_msg(`${bad} byte corrupted\n`);
  if (!check_huge_anon(g.env, one_page, 0, g.pmd_pagesize))
    ksft.exit_fail_msg('Still AnonHugePages not split\n');
  const rss_anon_after = rss_anon(g);
  if (rss_anon_after >= rss_anon_before)
    ksft.exit_fail_msg(`Incorrect RssAnon value. Before: ${rss_anon_before} After: ${rss_anon_after}\n`);
}

/** Models split_pmd_zero_pages(): splitting zero-filled THPs frees their zero pages (RssAnon drops). */
function split_pmd_zero_pages(g: G): void {
  const nr_hpages = 4;
  const len = nr_hpages * g.pmd_pagesize;
  const one_page = allocate_zero_filled_hugepage(g, len);
  verify_rss_anon_split_huge_page_all_zeroes(g, one_page, nr_hpages, len);
  g.env.ksft.test_result_pass('Split zero filled huge pages successful\n');
  g.env.libc.free(one_page);
}

/** Models split_pmd_thp_to_order(order): four PMD THPs split to `order`, data and orders checked. */
function split_pmd_thp_to_order(g: G, order: number): void {
  const { libc, ksft } = g.env;
  const len = 4 * g.pmd_pagesize;
  const one_page = libc.memalign(g.pmd_pagesize, len);
  if (!one_page) ksft.exit_fail_msg(`Fail to allocate memory: ${strerror(libc.errno)}\n`);
  libc.madvise(one_page, len, MADV_HUGEPAGE);
  fillPattern(g, one_page, len);
  if (!check_huge_anon(g.env, one_page, 4, g.pmd_pagesize)) ksft.exit_fail_msg('No THP is allocated\n');
  /* split all THPs */
  write_debugfs(g, pidFmt(libc.getpid(), one_page, one_page + len, order));
  const bad = firstBad(g, one_page, len, pattern);
  if (bad >= 0) ksft.exit_fail_msg(`${bad} byte corrupted\n`);
  g.expected_orders.fill(0);
  g.expected_orders[order] = 4 << (g.pmd_order - order);
  if (check_after_split_folio_orders(g, one_page, len, g.expected_orders))
    ksft.exit_fail_msg('Unexpected THP split\n');
  if (!check_huge_anon(g.env, one_page, 0, g.pmd_pagesize))
    ksft.exit_fail_msg('Still AnonHugePages not split\n');
  ksft.test_result_pass(`Split huge pages to order ${order} successful\n`);
  libc.free(one_page);
}

/**
 * Models split_pte_mapped_thp(): page i of THP i is mremap()ed into a page-sized area (the THPs
 * become PTE-mapped, unsplit); splitting through those pages must split all four THPs.
 */
function split_pte_mapped_thp(g: G): void {
  const { libc, ksft } = g.env;
  const nr_thps = 4;
  const thp_area_size = nr_thps * g.pmd_pagesize;
  const page_area_size = nr_thps * g.pagesize;
  let page_area = MAP_FAILED;
  const thp_area = libc.mmap(
    2 ** 30,
    thp_area_size,
    PROT_READ | PROT_WRITE,
    MAP_ANONYMOUS | MAP_PRIVATE,
    -1,
    0,
  );
  if (thp_area === MAP_FAILED) {
    ksft.test_result_fail(`Fail to allocate memory: ${strerror(libc.errno)}\n`);
    return;
  }
  // The C function's `goto out`: every early return of body() ends at the unmaps below.
  const body = (): void => {
    libc.madvise(thp_area, thp_area_size, MADV_HUGEPAGE);
    fillPattern(g, thp_area, thp_area_size);
    if (!check_huge_anon(g.env, thp_area, nr_thps, g.pmd_pagesize)) {
      ksft.test_result_skip('Not all THPs allocated\n');
      return;
    }
    page_area = libc.mmap(0, page_area_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (page_area === MAP_FAILED) {
      ksft.test_result_fail(`Fail to allocate memory: ${strerror(libc.errno)}\n`);
      return;
    }
    for (let i = 0; i < nr_thps; i++) {
      const tmp = libc.mremap(
        thp_area + g.pmd_pagesize * i + g.pagesize * i,
        g.pagesize,
        g.pagesize,
        MREMAP_MAYMOVE | MREMAP_FIXED,
        page_area + g.pagesize * i,
      );
      if (tmp !== MAP_FAILED) continue;
      ksft.test_result_fail(`mremap failed: ${strerror(libc.errno)}\n`);
      return;
    }
    /* Verify that our THPs were not split yet. */
    for (let i = 0; i < nr_thps; i++) {
      if (is_backed_by_folio(g, page_area + i * g.pagesize, g.pmd_order)) continue;
      ksft.test_result_fail(`THP ${i} missing after mremap\n`);
      return;
    }
    /* Split all THPs through the remapped pages. */
    write_debugfs(g, pidFmt(libc.getpid(), page_area, page_area + page_area_size, 0));
    /* Corruption during mremap or split? */
    const bad = firstBad(g, page_area, page_area_size, pattern);
    if (bad >= 0) {
      ksft.test_result_fail(`${bad} byte corrupted\n`);
      return;
    }
    /* Split failed? */
    for (let i = 0; i < nr_thps; i++) {
      if (is_backed_by_folio(g, page_area + i * g.pagesize, 0)) continue;
      ksft.test_result_fail(`THP ${i} not split\n`);
    }
    ksft.test_result_pass('Split PTE-mapped huge pages successful\n');
  };
  body();
  libc.munmap(thp_area, thp_area_size);
  if (page_area !== MAP_FAILED) libc.munmap(page_area, page_area_size);
}

/** Models mkdtemp(template): the XXXXXX suffix replaced, the directory created (0700), or null. */
function mkdtemp(g: G, template: string): string | null {
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let n = ++g.temps;
  let suffix = '';
  for (let i = 0; i < 6; i++, n = Math.floor(n / chars.length)) suffix += chars[n % chars.length];
  const path = template.replace(/XXXXXX$/, suffix);
  return g.env.libc.mkdir(path, 0o700) === 0 ? path : null;
}

/** Models split_file_backed_thp(order): a 2 MiB file on a huge=always tmpfs, split, read back. */
function split_file_backed_thp(g: G, order: number): void {
  const { libc, ksft } = g.env;
  const tmpfs_loc = mkdtemp(g, '/tmp/thp_split_XXXXXX');
  const pgoff_start = 0;
  const pgoff_end = 1024;
  ksft.print_msg('Please enable pr_debug in split_huge_pages_in_file() for more info.\n');
  const file_buf1 = new Uint8Array(g.pmd_pagesize);
  const file_buf2 = new Uint8Array(g.pmd_pagesize);
  for (let i = 0; i < g.pmd_pagesize; i++) file_buf1[i] = i & 0xff;
  let status = libc.mount('tmpfs', tmpfs_loc ?? '', 'tmpfs', 0, 'huge=always,size=4m');
  if (status) ksft.exit_fail_msg('Unable to create a tmpfs for testing\n');
  const loc = tmpfs_loc as string;
  const testfile = `${loc}/thp_file`;
  // The C function's labels: 'done' (passed and returned), 'close_file' (close, then cleanup),
  // 'cleanup' (umount and rmdir, then the failure).
  const body = (): 'done' | 'close_file' | 'cleanup' => {
    if (testfile.length >= INPUT_MAX) {
      ksft.print_msg('Fail to create file-backed THP split testing file\n');
      return 'cleanup';
    }
    const fd = libc.open(testfile, O_CREAT | O_RDWR, 0o664);
    if (fd === -1) {
      ksft_perror(g, 'Cannot open testing file');
      return 'cleanup';
    }
    const withFile = (): 'done' | 'close_file' | 'cleanup' => {
      /* write pmd size data to the file, so a file-backed THP can be allocated */
      const num_written = libc.write(fd, file_buf1, g.pmd_pagesize);
      if (num_written === -1 || num_written !== g.pmd_pagesize) {
        ksft_perror(g, 'Failed to write data to testing file');
        return 'close_file';
      }
      /* split the file-backed THP */
      write_debugfs(g, `${testfile},0x${pgoff_start.toString(16)},0x${pgoff_end.toString(16)},${order}`);
      /* check file content after split */
      status = libc.lseek(fd, 0, SEEK_SET);
      if (status === -1) {
        ksft_perror(g, 'Cannot lseek file');
        return 'close_file';
      }
      const num_read = libc.read(fd, file_buf2, num_written);
      if (num_read === -1 || num_read !== num_written) {
        ksft_perror(g, 'Cannot read file content back');
        return 'close_file';
      }
      if (!file_buf1.every((b, i) => b === file_buf2[i])) {
        ksft.print_msg('File content changed\n');
        return 'close_file';
      }
      libc.close(fd);
      status = libc.unlink(testfile);
      if (status) {
        ksft_perror(g, 'Cannot remove testing file');
        return 'cleanup';
      }
      status = libc.umount(loc);
      if (status) {
        libc.rmdir(loc);
        ksft.exit_fail_msg(`Unable to umount ${loc}\n`);
      }
      status = libc.rmdir(loc);
      if (status) ksft.exit_fail_msg(`cannot remove tmp dir: ${strerror(libc.errno)}\n`);
      ksft.print_msg('Please check dmesg for more information\n');
      ksft.test_result_pass(`File-backed THP split to order ${order} test done\n`);
      return 'done';
    };
    const r = withFile();
    if (r === 'close_file') {
      libc.close(fd);
      return 'cleanup';
    }
    return r;
  };
  if (body() === 'done') return;
  libc.umount(loc);
  libc.rmdir(loc);
  ksft.exit_fail_msg('Error occurred\n');
}

/** Models prepare_thp_fs(xfs_path, template, &loc): the given path, or a new temp directory. */
function prepare_thp_fs(g: G, xfs_path: string | null): { loc: string; created: boolean } {
  if (xfs_path) return { loc: xfs_path, created: false };
  const loc = mkdtemp(g, '/tmp/thp_fs_XXXXXX');
  if (!loc) g.env.ksft.exit_fail_msg('cannot create temp folder\n');
  return { loc, created: true };
}

/** Models cleanup_thp_fs(loc, created_tmp). */
function cleanup_thp_fs(g: G, loc: string, created: boolean): void {
  if (!created) return;
  if (g.env.libc.rmdir(loc))
    g.env.ksft.exit_fail_msg(`cannot remove tmp dir: ${strerror(g.env.libc.errno)}\n`);
}

/**
 * Models create_pagecache_thp_and_fd(testfile, fd_size, &fd, &addr): write the file, drop the
 * caches, map it shared with MADV_HUGEPAGE and read it; 0, or -2 after the skip when no large
 * pagecache folio appeared.
 */
function create_pagecache_thp_and_fd(
  g: G,
  testfile: string,
  fd_size: number,
): { ret: number; fd: number; addr: number } {
  const { libc, ksft } = g.env;
  g.env.rand.srand(g.env.time());
  let fd = libc.open(testfile, O_CREAT | O_RDWR, 0o664);
  if (fd === -1) ksft.exit_fail_msg(`Failed to create a file at ${testfile}\n`);
  const buf = new Uint8Array(1024);
  for (let i = 0; i < buf.length; i++) buf[i] = i & 0xff;
  for (let i = 0; i < fd_size; i += buf.length) libc.write(fd, buf, buf.length);
  libc.close(fd);
  libc.sync();
  // The C function's `goto err_out_unlink`: a failure returns null here.
  const opened = (): { fd: number; addr: number } | null => {
    fd = libc.open('/proc/sys/vm/drop_caches', O_WRONLY);
    if (fd === -1) {
      ksft_perror(g, 'open drop_caches');
      return null;
    }
    if (libc.write(fd, new TextEncoder().encode('3'), 1) !== 1) {
      ksft_perror(g, 'write to drop_caches');
      return null;
    }
    libc.close(fd);
    fd = libc.open(testfile, O_RDWR);
    if (fd === -1) {
      ksft_perror(g, 'Failed to open testfile\n');
      return null;
    }
    const addr = libc.mmap(0, fd_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr === MAP_FAILED) {
      ksft_perror(g, 'cannot mmap');
      libc.close(fd);
      return null;
    }
    return { fd, addr };
  };
  const o = opened();
  if (!o) {
    libc.unlink(testfile);
    return ksft.exit_fail_msg('Failed to create large pagecache folios\n');
  }
  libc.madvise(o.addr, fd_size, MADV_HUGEPAGE);
  // force_read_pages_in_range(): one read per page.
  for (let i = 0; i < fd_size; i += g.pagesize) g.env.proc.readU8(o.addr + i);
  if (!check_huge_file(g.env, o.addr, fd_size / g.pmd_pagesize, g.pmd_pagesize)) {
    ksft.print_msg(
      'No large pagecache folio generated, please provide a filesystem supporting large folio\n',
    );
    libc.munmap(o.addr, fd_size);
    libc.close(o.fd);
    libc.unlink(testfile);
    ksft.test_result_skip('Pagecache folio split skipped\n');
    return { ret: -2, ...o };
  }
  return { ret: 0, ...o };
}

/** Models split_thp_in_pagecache_to_order_at(fd_size, fs_loc, order, offset). */
function split_thp_in_pagecache_to_order_at(
  g: G,
  fd_size: number,
  fs_loc: string,
  order: number,
  offset: number,
): void {
  const { libc, ksft } = g.env;
  const testfile = `${fs_loc}/test`;
  const c = create_pagecache_thp_and_fd(g, testfile, fd_size);
  if (c.ret) return;
  const { fd, addr } = c;
  g.expected_orders.fill(0);
  // The C function's `goto out`: the error code, then the unmap, close and unlink below.
  const check = (): number => {
    if (offset === -1) {
      for (let split_addr = addr; split_addr < addr + fd_size; split_addr += g.pmd_pagesize)
        write_debugfs(g, pidFmt(libc.getpid(), split_addr, split_addr + g.pagesize, order));
      g.expected_orders[order] = fd_size / (g.pagesize * 2 ** order);
    } else {
      const times = fd_size / g.pmd_pagesize;
      for (let split_addr = addr; split_addr < addr + fd_size; split_addr += g.pmd_pagesize)
        write_debugfs(g, `${pidFmt(libc.getpid(), split_addr, split_addr + g.pagesize, order)},${offset}`);
      for (let i = order + 1; i < g.pmd_order; i++) g.expected_orders[i] = times;
      g.expected_orders[order] = 2 * times;
    }
    const bad = firstBad(g, addr, fd_size, pattern);
    if (bad >= 0) {
      ksft.print_msg(`${bad} byte corrupted in the file\n`);
      return EXIT_FAILURE;
    }
    if (check_after_split_folio_orders(g, addr, fd_size, g.expected_orders)) {
      ksft.print_msg('Unexpected THP split\n');
      return 1;
    }
    if (!check_huge_file(g.env, addr, 0, g.pmd_pagesize)) {
      ksft.print_msg('Still FilePmdMapped not split\n');
      return EXIT_FAILURE;
    }
    return 0;
  };
  const err = check();
  libc.munmap(addr, fd_size);
  libc.close(fd);
  libc.unlink(testfile);
  if (offset === -1) {
    if (err) ksft.exit_fail_msg(`Split PMD-mapped pagecache folio to order ${order} failed\n`);
    ksft.test_result_pass(`Split PMD-mapped pagecache folio to order ${order} passed\n`);
  } else {
    if (err)
      ksft.exit_fail_msg(
        `Split PMD-mapped pagecache folio to order ${order} at in-folio offset ${offset} failed\n`,
      );
    ksft.test_result_pass(
      `Split PMD-mapped pagecache folio to order ${order} at in-folio offset ${offset} passed\n`,
    );
  }
}

/** Models main() of split_huge_page_test.c (v6.19). */
export function split_huge_page_test_main(env: ProgramEnv): number {
  const { ksft, libc } = env;
  ksft.print_header();
  if (libc.geteuid() !== 0) {
    ksft.print_msg('Please run the benchmark as root\n');
    ksft.finished();
  }
  const optional_xfs_path = env.argv.length > 1 ? env.argv[1] : null;
  const pagesize = libc.sysconfPageSize();
  const pmd_pagesize = read_pmd_pagesize(env);
  if (!pmd_pagesize) ksft.exit_fail_msg('Reading PMD pagesize failed\n');
  const nr_pages = pmd_pagesize / pagesize;
  // sz2ord(pmd_pagesize, pagesize): __builtin_ctzll(size / pagesize).
  const pmd_order = Math.log2(nr_pages);
  const tests = 2 + (pmd_order - 1) + 2 * pmd_order + (pmd_order - 1) * 4 + 2;
  ksft.set_plan(tests);
  const pagemap_fd = libc.open('/proc/self/pagemap', O_RDONLY);
  if (pagemap_fd === -1) ksft.exit_fail_msg(`read pagemap: ${strerror(libc.errno)}\n`);
  const kpageflags_fd = libc.open('/proc/kpageflags', O_RDONLY);
  if (kpageflags_fd === -1) ksft.exit_fail_msg(`read kpageflags: ${strerror(libc.errno)}\n`);
  const g: G = {
    env,
    pagesize,
    pmd_pagesize,
    pmd_order,
    pagemap_fd,
    kpageflags_fd,
    expected_orders: new Array<number>(pmd_order + 1).fill(0),
    temps: 0,
  };
  const fd_size = 2 * pmd_pagesize;

  split_pmd_zero_pages(g);
  for (let i = 0; i < pmd_order; i++) if (i !== 1) split_pmd_thp_to_order(g, i);
  split_pte_mapped_thp(g);
  for (let i = 0; i < pmd_order; i++) split_file_backed_thp(g, i);

  const { loc: fs_loc, created: created_tmp } = prepare_thp_fs(g, optional_xfs_path);
  for (let i = pmd_order - 1; i >= 0; i--) split_thp_in_pagecache_to_order_at(g, fd_size, fs_loc, i, -1);
  for (let i = 0; i < pmd_order; i++)
    for (let offset = 0; offset < nr_pages; offset += Math.max(nr_pages / 4, 2 ** i))
      split_thp_in_pagecache_to_order_at(g, fd_size, fs_loc, i, offset);
  cleanup_thp_fs(g, fs_loc, created_tmp);

  libc.close(pagemap_fd);
  libc.close(kpageflags_fd);
  return ksft.finished();
}
