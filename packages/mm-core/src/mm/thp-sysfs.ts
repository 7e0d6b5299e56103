/**
 * The THP controls in /sys/kernel/mm/transparent_hugepage/ (mm/huge_memory.c, v6.19): enabled,
 * defrag, use_zero_page and shmem_enabled (mm/shmem.c), readable and writable with the kernel's
 * show()/store() rules, and per anonymous THP size hugepages-<size>kB/enabled
 * (anon_enabled_show()/anon_enabled_store()) with its stats directory (the DEFINE_MTHP_STAT_ATTR
 * counters). Writing `enabled`, a size's `enabled` or `shmem_enabled` starts or stops khugepaged
 * (start_stop_khugepaged(): it runs while anonymous or shmem PMD THP is enabled). Simplified: no
 * hugepages-8kB (file-only order 1) directory and no per-size shmem_enabled files (shmem THP is
 * PMD-sized only: huge_shmem_orders_inherit holds the PMD order, as by default).
 */
import { EINVAL, HPAGE_PMD_ORDER, PAGE_SIZE } from '../constants.js';
import type { Core, ThpMode } from '../core.js';
import type { FileOperations } from '../fs.js';
import { MTHP_STAT_ITEMS } from '../vmstat.js';
import { hugepagePmdEnabled, khugepagedWake } from './khugepaged-state.js';
import { sysfsStreq, THP_ORDERS_ALL_ANON, thpSizeMode, thpSizeStore } from './thp-orders.js';
import { type ShmemHuge, type ThpDefrag, thpSysfsState } from './thp-state.js';

export { sysfsStreq } from './thp-orders.js';
export { type ShmemHuge, type ThpDefrag, thpSysfsState } from './thp-state.js';

const THP_MODES: readonly ThpMode[] = ['always', 'madvise', 'never'];
const DEFRAGS: readonly ThpDefrag[] = ['always', 'defer', 'defer+madvise', 'madvise', 'never'];
const SHMEM_HUGE: readonly ShmemHuge[] = ['always', 'within_size', 'advise', 'never', 'deny', 'force'];

/** The sysfs directory of the THP controls. */
export const THP_SYSFS = '/sys/kernel/mm/transparent_hugepage';

/** Models thpsize_create()'s directory name: hugepages-<size>kB for an order. */
export function thpSizeDir(order: number): string {
  return `${THP_SYSFS}/hugepages-${(PAGE_SIZE * 2 ** order) / 1024}kB`;
}

/** Models the "[selected] other" lists of enabled_show()/defrag_show()/shmem_enabled_show(). */
function bracketList(values: readonly string[], selected: string): string {
  return `${values.map((v) => (v === selected ? `[${v}]` : v)).join(' ')}\n`;
}

/** A sysfs attribute: show() at read time, store() (if any) on write: 0 or -errno. */
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

/** Models _kstrtoul(buf, 10) for single_hugepage_flag_store(): decimal with an optional '+' and newline. */
function kstrtoul(text: string): number | undefined {
  const m = /^\+?(\d+)\n?$/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Models start_stop_khugepaged() after a store: the kthread runs while hugepage_pmd_enabled();
 * one started now (it was stopped: `was` false) runs its first pass at once. A running thread
 * keeps its sleep; a stopped one runs no pass (khugepagedRunFor() checks).
 */
function startStopKhugepaged(core: Core, was: boolean): void {
  if (!was && hugepagePmdEnabled(core)) khugepagedWake(core);
}

/**
 * Models enabled_store(): "always", "madvise" or "never" (sysfs_streq()); anything else is
 * -EINVAL with nothing changed. Returns the mode or undefined.
 */
export function thpEnabledParse(text: string): ThpMode | undefined {
  return THP_MODES.find((m) => sysfsStreq(text, m));
}

/** What registering the sysfs files needs: the machine and its device table. */
export interface ThpSysfsHost {
  readonly core: Core;
  readonly devices: Map<string, FileOperations>;
}

/**
 * Models hugepage_init_sysfs(): hugepage_attr_group and shmem_enabled_attr (mm/shmem.c) —
 * enabled (enabled_store()), defrag (defrag_store(): the five modes; the model's allocator does
 * not compact, so it has no other effect), use_zero_page (single_hugepage_flag_store():
 * kstrtoul(), -EINVAL above 1) and shmem_enabled (shmem_enabled_store(): shmem_huge, and the
 * internal shm_mnt's huge= unless "deny"/"force"; khugepaged runs while it enables PMD THP) — and, for each order of
 * THP_ORDERS_ALL_ANON (16 kB .. 2048 kB), hugepages-<size>kB/enabled and its stats.
 */
export function registerThpSysfs(host: ThpSysfsHost): void {
  const core = host.core;
  const dir = THP_SYSFS;
  host.devices.set(
    `${dir}/enabled`,
    attr(
      () => bracketList(THP_MODES, core.thpMode),
      (t) => {
        const mode = thpEnabledParse(t);
        if (!mode) return -EINVAL;
        const was = hugepagePmdEnabled(core);
        core.thpMode = mode;
        startStopKhugepaged(core, was);
        return 0;
      },
    ),
  );
  host.devices.set(
    `${dir}/defrag`,
    attr(
      () => bracketList(DEFRAGS, thpSysfsState(core).defrag),
      (t) => {
        const d = DEFRAGS.find((m) => sysfsStreq(t, m));
        if (!d) return -EINVAL;
        thpSysfsState(core).defrag = d;
        return 0;
      },
    ),
  );
  host.devices.set(
    `${dir}/use_zero_page`,
    attr(
      () => `${core.thpUseZeroPage ? 1 : 0}\n`,
      (t) => {
        const v = kstrtoul(t);
        if (v === undefined || v > 1) return -EINVAL;
        core.thpUseZeroPage = v === 1;
        return 0;
      },
    ),
  );
  host.devices.set(
    `${dir}/shmem_enabled`,
    attr(
      () => bracketList(SHMEM_HUGE, thpSysfsState(core).shmemEnabled),
      (t) => {
        const v = SHMEM_HUGE.find((m) => sysfsStreq(t, m));
        if (!v) return -EINVAL;
        const was = hugepagePmdEnabled(core);
        thpSysfsState(core).shmemEnabled = v;
        // shmem_enabled_store(): "if (shmem_huge > SHMEM_HUGE_DENY) SHMEM_SB(shm_mnt)->huge = shmem_huge".
        if (v !== 'deny' && v !== 'force') thpSysfsState(core).shmMntHuge = v;
        startStopKhugepaged(core, was);
        return 0;
      },
    ),
  );
  for (let order = HPAGE_PMD_ORDER; order >= 0; order--) {
    if (!(THP_ORDERS_ALL_ANON & (1 << order))) continue;
    const sizeDir = thpSizeDir(order);
    host.devices.set(
      `${sizeDir}/enabled`,
      attr(
        () => {
          const cur = thpSizeMode(core, order);
          return `${['always', 'inherit', 'madvise', 'never'].map((m) => (m === cur ? `[${m}]` : m)).join(' ')}\n`;
        },
        (text) => {
          const was = hugepagePmdEnabled(core);
          if (!thpSizeStore(core, order, text)) return -EINVAL;
          startStopKhugepaged(core, was);
          return 0;
        },
      ),
    );
    for (const item of MTHP_STAT_ITEMS)
      host.devices.set(
        `${sizeDir}/stats/${item}`,
        attr(() => `${core.mthpStats[item][order]}\n`),
      );
  }
}
