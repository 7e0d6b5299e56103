/**
 * The THP sysfs files of mm/huge_memory.c for anonymous memory:
 * /sys/kernel/mm/transparent_hugepage/enabled (enabled_show/enabled_store) and, per anonymous
 * THP size, hugepages-<size>kB/enabled (anon_enabled_show/anon_enabled_store) with its stats
 * directory (the DEFINE_MTHP_STAT_ATTR counters). Simplified: no hugepages-8kB (file-only
 * order 1) directory and no shmem_enabled files (no huge tmpfs in the model).
 */
import { EINVAL, HPAGE_PMD_ORDER, PAGE_SIZE } from '../constants.js';
import type { Core, ThpMode } from '../core.js';
import type { FileOperations } from '../fs.js';
import { MTHP_STAT_ITEMS } from '../vmstat.js';
import { sysfsStreq, THP_ORDERS_ALL_ANON, thpSizeMode, thpSizeStore } from './thp-orders.js';

/** The part of the kernel object that holds device files (avoids importing kernel.ts). */
export interface ThpSysfsHost {
  readonly core: Core;
  readonly devices: Map<string, FileOperations>;
}

/** The sysfs directory of the THP controls. */
export const THP_SYSFS = '/sys/kernel/mm/transparent_hugepage';

/** Models thpsize_create()'s directory name: hugepages-<size>kB for an order. */
export function thpSizeDir(order: number): string {
  return `${THP_SYSFS}/hugepages-${(PAGE_SIZE * 2 ** order) / 1024}kB`;
}

/** A sysfs attribute: show() at read time, store() (if any) on write. */
function attr(show: () => string, store?: (text: string) => number): FileOperations {
  const fops: FileOperations = {
    *pread(_file, buf, pos) {
      const bytes = new TextEncoder().encode(show());
      if (pos >= bytes.length) return 0;
      const n = Math.min(buf.length, bytes.length - pos);
      buf.set(bytes.subarray(pos, pos + n));
      return n;
    },
  };
  if (store)
    fops.pwrite = function* (_file, buf) {
      // sysfs_kf_write(): an empty write stores nothing; kernfs hands at most a page to store().
      if (buf.length === 0) return 0;
      const n = Math.min(buf.length, PAGE_SIZE);
      // The store sees a C string: it ends at the first NUL byte.
      const bytes = buf.subarray(0, n);
      const nul = bytes.indexOf(0);
      const r = store(new TextDecoder().decode(nul >= 0 ? bytes.subarray(0, nul) : bytes));
      return r < 0 ? r : n;
    };
  return fops;
}

/**
 * Models enabled_store(): "always", "madvise" or "never" (sysfs_streq()); anything else is
 * -EINVAL with nothing changed. Returns the mode or undefined.
 */
export function thpEnabledParse(text: string): ThpMode | undefined {
  return (['always', 'madvise', 'never'] as const).find((m) => sysfsStreq(text, m));
}

/**
 * Models hugepage_init_sysfs() for the anonymous controls: the top-level `enabled` and, for each
 * order of THP_ORDERS_ALL_ANON (16 kB .. 2048 kB), hugepages-<size>kB/enabled and its stats.
 */
export function registerThpSysfs(host: ThpSysfsHost): void {
  const core = host.core;
  host.devices.set(
    `${THP_SYSFS}/enabled`,
    attr(
      () => `${['always', 'madvise', 'never'].map((m) => (m === core.thpMode ? `[${m}]` : m)).join(' ')}\n`,
      (text) => {
        const mode = thpEnabledParse(text);
        if (!mode) return -EINVAL;
        core.thpMode = mode;
        return 0;
      },
    ),
  );
  for (let order = HPAGE_PMD_ORDER; order >= 0; order--) {
    if (!(THP_ORDERS_ALL_ANON & (1 << order))) continue;
    const dir = thpSizeDir(order);
    host.devices.set(
      `${dir}/enabled`,
      attr(
        () => {
          const cur = thpSizeMode(core, order);
          return `${['always', 'inherit', 'madvise', 'never'].map((m) => (m === cur ? `[${m}]` : m)).join(' ')}\n`;
        },
        (text) => (thpSizeStore(core, order, text) ? 0 : -EINVAL),
      ),
    );
    for (const item of MTHP_STAT_ITEMS)
      host.devices.set(
        `${dir}/stats/${item}`,
        attr(() => `${core.mthpStats[item][order]}\n`),
      );
  }
}
