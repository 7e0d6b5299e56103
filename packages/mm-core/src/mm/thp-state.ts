/**
 * The global THP settings the model keeps beside Core.thpMode and Core.thpUseZeroPage: the
 * defrag mode and shmem_huge (mm/huge_memory.c, mm/shmem.c), and shmem_hpage_pmd_enabled(). Set
 * through sysfs (mm/thp-sysfs.ts); read by khugepaged (hugepage_pmd_enabled()).
 */
import type { Core } from '../core.js';

/** Models the values of /sys/kernel/mm/transparent_hugepage/defrag (transparent_hugepage_flags' defrag bits). */
export type ThpDefrag = 'always' | 'defer' | 'defer+madvise' | 'madvise' | 'never';

/** Models shmem_huge's values for the global shmem_enabled (SHMEM_HUGE_* of mm/shmem.c). */
export type ShmemHuge = 'always' | 'within_size' | 'advise' | 'never' | 'deny' | 'force';

/** The THP controls the model keeps beside Core.thpMode and Core.thpUseZeroPage. */
interface ThpSysfsState {
  /** Models the defrag bits of transparent_hugepage_flags (default "madvise"). */
  defrag: ThpDefrag;
  /** Models shmem_huge (default SHMEM_HUGE_NEVER). */
  shmemEnabled: ShmemHuge;
  /**
   * Models SHMEM_SB(shm_mnt->mnt_sb)->huge: the huge= option of the internal mount that holds
   * memfd and shared anonymous memory. shmem_enabled_store() sets it to the new value unless that
   * is "deny" or "force" (shmem_huge > SHMEM_HUGE_DENY).
   */
  shmMntHuge: ShmemMountHuge;
}

/** Models the huge= values of a tmpfs mount (SHMEM_HUGE_NEVER .. SHMEM_HUGE_ADVISE). */
export type ShmemMountHuge = 'never' | 'always' | 'within_size' | 'advise';

const states = new WeakMap<Core, ThpSysfsState>();

/** Models the defrag setting and shmem_huge of one machine. */
export function thpSysfsState(core: Core): ThpSysfsState {
  let s = states.get(core);
  if (!s) {
    s = { defrag: 'madvise', shmemEnabled: 'never', shmMntHuge: 'never' };
    states.set(core, s);
  }
  return s;
}

/**
 * Models shmem_hpage_pmd_enabled() (mm/shmem.c) without per-size (mTHP) shmem controls: PMD
 * order inherits the global shmem_enabled, so it is enabled unless "never" or "deny".
 */
export function shmemHpagePmdEnabled(core: Core): boolean {
  const s = thpSysfsState(core).shmemEnabled;
  return s !== 'never' && s !== 'deny';
}
