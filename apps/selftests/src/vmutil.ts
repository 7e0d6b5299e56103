/**
 * The selftests/mm helpers hmm-tests.c links with: vm_util.c (read_pmd_pagesize(),
 * pagemap_get_entry()) and hugepage_settings.c (default_huge_page_size(),
 * hugetlb_free_default_pages(), the HUGETLB_SETUP_DEFAULT_PAGES() constructor). They read the
 * model's procfs/sysfs files through the calling process, as the C code does.
 */

import { hugetlbGrowPool, type Kernel, O_RDONLY } from '@hmm-model/mm-core';
import type { Libc } from './libc.js';

/** Models PMD_SIZE_FILE_PATH (vm_util.h). */
export const PMD_SIZE_FILE_PATH = '/sys/kernel/mm/transparent_hugepage/hpage_pmd_size';
/** Models PM_SWAP (vm_util.h): bit 62 of a pagemap entry. */
export const PM_SWAP = 1n << 62n;
/** Models the PAGEMAP_PRESENT() bit (vm_util.h): bit 63. */
export const PM_PRESENT = 1n << 63n;

/** Models PAGEMAP_PRESENT(ent) (vm_util.h): an int, 1 when bit 63 is set. */
export function PAGEMAP_PRESENT(entry: bigint): number {
  return (entry & PM_PRESENT) !== 0n ? 1 : 0;
}

/** Models strtoul(buf, NULL, 10) on the start of a sysfs/procfs text. */
function strtoul(text: string): number {
  const m = /^\s*\+?(\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
}

/** Reads up to `max` bytes of a file from offset 0; -1 when it cannot be opened or read. */
function readText(libc: Libc, path: string, max: number): string | null {
  const fd = libc.open(path, O_RDONLY);
  if (fd < 0) return null;
  const buf = new Uint8Array(max);
  const n = libc.pread(fd, buf, max, 0);
  libc.close(fd);
  if (n < 1) return null;
  return new TextDecoder().decode(buf.subarray(0, n));
}

/** Models read_pmd_pagesize() (vm_util.c): the THP PMD size, 0 when the file cannot be read. */
export function read_pmd_pagesize(libc: Libc): number {
  const text = readText(libc, PMD_SIZE_FILE_PATH, 19);
  return text === null ? 0 : strtoul(text);
}

/**
 * Models pagemap_get_entry(fd, start) (vm_util.c): the 64-bit /proc/self/pagemap entry of the
 * page holding `start`. The C helper exits the program when the read comes back short.
 */
export function pagemap_get_entry(libc: Libc, fd: number, start: number): bigint {
  const pageSize = libc.sysconfPageSize();
  const buf = new Uint8Array(8);
  const ret = libc.pread(fd, buf, 8, Math.floor(start / pageSize) * 8);
  if (ret !== 8) throw new Error('reading pagemap failed');
  return new DataView(buf.buffer).getBigUint64(0, true);
}

/** Models read_num(path) (vm_util.c). */
function read_num(libc: Libc, path: string): number {
  const text = readText(libc, path, 21);
  if (text === null) throw new Error(`read_file(): cannot read ${path}`);
  return strtoul(text);
}

/**
 * Models the static struct hugetlb_settings of hugepage_settings.c: filled once by the
 * constructor, then answering default_huge_page_size() from its cache.
 */
export class HugetlbSettings {
  defaultSize = 0;
  sizes: number[] = [];
  saved = false;
}

/** Models default_huge_page_size() (hugepage_settings.c): `Hugepagesize:` of /proc/meminfo in bytes. */
export function default_huge_page_size(libc: Libc, settings: HugetlbSettings): number {
  if (settings.defaultSize) return settings.defaultSize;
  const text = readText(libc, '/proc/meminfo', 1 << 16);
  if (text === null) return 0;
  for (const line of text.split('\n')) {
    const m = /^Hugepagesize:\s*(\d+) kB/.exec(line);
    if (m) return Number(m[1]) * 1024;
  }
  return 0;
}

function hugetlbSysfsPath(size: number, attr: string): string {
  return `/sys/kernel/mm/hugepages/hugepages-${Math.floor(size / 1024)}kB/${attr}`;
}

/** Models hugetlb_free_pages(size) (hugepage_settings.c). */
export function hugetlb_free_pages(libc: Libc, size: number): number {
  return read_num(libc, hugetlbSysfsPath(size, 'free_hugepages'));
}

/** Models hugetlb_nr_pages(size) (hugepage_settings.c). */
export function hugetlb_nr_pages(libc: Libc, size: number): number {
  return read_num(libc, hugetlbSysfsPath(size, 'nr_hugepages'));
}

/** Models hugetlb_free_default_pages() (hugepage_settings.h). */
export function hugetlb_free_default_pages(libc: Libc, settings: HugetlbSettings): number {
  const size = default_huge_page_size(libc, settings);
  if (!size) return 0;
  return hugetlb_free_pages(libc, size);
}

/**
 * Models opendir("/sys/kernel/mm/hugepages/") + readdir() in detect_hugetlb_page_sizes(): the
 * `hugepages-<N>kB` directories of the model's sysfs, in name order.
 */
function hugepageDirs(kernel: Kernel): number[] {
  const kbs = new Set<number>();
  for (const path of kernel.devices.keys()) {
    const m = /^\/sys\/kernel\/mm\/hugepages\/hugepages-(\d+)kB\//.exec(path);
    if (m) kbs.add(Number(m[1]));
  }
  return [...kbs].sort((a, b) => a - b);
}

/**
 * Models the HUGETLB_SETUP_DEFAULT_PAGES(nr) constructor (hugepage_settings.h):
 * hugetlb_setup_default(nr) saves the hugetlb settings (printing `[INFO] detected hugetlb page
 * size: <N> KiB` through `printMsg` for every size found) and makes sure `nr` free pages of the
 * default size exist, raising nr_hugepages if needed. Returns whether enough are free.
 */
export function hugetlb_setup_default(
  libc: Libc,
  settings: HugetlbSettings,
  nr: number,
  printMsg: (msg: string) => void,
): boolean {
  if (!settings.saved) {
    settings.defaultSize = default_huge_page_size(libc, settings);
    if (settings.defaultSize) {
      for (const kb of hugepageDirs(libc.kernel)) {
        settings.sizes.push(kb * 1024);
        printMsg(`[INFO] detected hugetlb page size: ${kb} KiB`);
      }
      if (settings.sizes.length) settings.saved = true;
      else settings.defaultSize = 0;
    }
  }
  const size = default_huge_page_size(libc, settings);
  if (!size) return false;
  const free = hugetlb_free_pages(libc, size);
  if (free >= nr) return true;
  // Models writing total + (nr - free) to nr_hugepages (hugetlb_set_nr_pages()).
  hugetlbGrowPool(libc.kernel.core, nr - free);
  return hugetlb_free_pages(libc, size) >= nr;
}
