/**
 * The global THP controls in /sys/kernel/mm/transparent_hugepage/ (mm/huge_memory.c, v6.19):
 * enabled, defrag, use_zero_page and shmem_enabled (mm/shmem.c), readable and writable with the
 * kernel's show()/store() rules. Writing `enabled` or `shmem_enabled` starts or stops khugepaged
 * (start_stop_khugepaged(): it runs while anonymous or shmem PMD THP is enabled). The per-size (mTHP) hugepages-<size>kB/ directories are not modelled
 * here.
 */
import { EINVAL } from '../constants.js';
import type { Core, ThpMode } from '../core.js';
import type { FileOperations } from '../fs.js';
import { hugepagePmdEnabled, khugepagedWake } from './khugepaged-state.js';
import { type ShmemHuge, type ThpDefrag, thpSysfsState } from './thp-state.js';

export { type ShmemHuge, type ThpDefrag, thpSysfsState } from './thp-state.js';

const THP_MODES: readonly ThpMode[] = ['always', 'madvise', 'never'];
const DEFRAGS: readonly ThpDefrag[] = ['always', 'defer', 'defer+madvise', 'madvise', 'never'];
const SHMEM_HUGE: readonly ShmemHuge[] = ['always', 'within_size', 'advise', 'never', 'deny', 'force'];

/** Models sysfs_streq(buf, s): equal, ignoring one trailing newline on either side. */
export function sysfsStreq(buf: string, s: string): boolean {
  return buf.replace(/\n$/, '') === s.replace(/\n$/, '');
}

/** Models the "[selected] other" lists of enabled_show()/defrag_show()/shmem_enabled_show(). */
function bracketList(values: readonly string[], selected: string): string {
  return `${values.map((v) => (v === selected ? `[${v}]` : v)).join(' ')}\n`;
}

/** A sysfs attribute: show() returns the text, store() the byte count or -errno. */
function attr(show: () => string, store: (text: string) => number): FileOperations {
  return {
    *pread(_file, buf, pos) {
      const bytes = new TextEncoder().encode(show());
      if (pos >= bytes.length) return 0;
      const n = Math.min(buf.length, bytes.length - pos);
      buf.set(bytes.subarray(pos, pos + n));
      return n;
    },
    *pwrite(_file, buf) {
      const r = store(new TextDecoder().decode(buf));
      return r < 0 ? r : buf.length;
    },
  };
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

/** What registering the sysfs files needs: the machine and its device table. */
export interface ThpSysfsHost {
  readonly core: Core;
  readonly devices: Map<string, FileOperations>;
}

/**
 * Models hugepage_attr_group (mm/huge_memory.c) and shmem_enabled_attr (mm/shmem.c):
 * enabled (enabled_show()/enabled_store(): "always", "madvise" or "never", else -EINVAL; a
 * change starts or stops khugepaged, start_stop_khugepaged()), defrag (defrag_store(): the five
 * modes, else -EINVAL; the model's allocator does not compact, so it has no other effect),
 * use_zero_page (single_hugepage_flag_store(): kstrtoul(), -EINVAL above 1) and shmem_enabled
 * (shmem_enabled_store(): always, within_size, advise, never, deny, force, else -EINVAL; the
 * model has no huge tmpfs, so the value only keeps khugepaged running).
 */
export function registerThpSysfs(host: ThpSysfsHost): void {
  const core = host.core;
  const dir = '/sys/kernel/mm/transparent_hugepage';
  host.devices.set(
    `${dir}/enabled`,
    attr(
      () => bracketList(THP_MODES, core.thpMode),
      (t) => {
        const mode = THP_MODES.find((m) => sysfsStreq(t, m));
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
        startStopKhugepaged(core, was);
        return 0;
      },
    ),
  );
}
