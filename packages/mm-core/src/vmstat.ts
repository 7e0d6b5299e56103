/** Models the vm_event_item / node_stat_item counters shown in /proc/vmstat that this model moves. */
export const VMSTAT_ITEMS = [
  'nr_free_pages',
  'nr_anon_pages',
  'nr_anon_transparent_hugepages',
  'nr_file_pages',
  'nr_shmem',
  'nr_shmem_hugepages',
  'nr_shmem_pmdmapped',
  'nr_swapcached',
  'nr_page_table_pages',
  'pgfault',
  'pgmajfault',
  'pswpin',
  'pswpout',
  'pgalloc_normal',
  'pgfree',
  'allocstall_normal',
  'pgscan_direct',
  'pgsteal_direct',
  'pglazyfree',
  'pglazyfreed',
  'oom_kill',
  'pgmigrate_success',
  'pgmigrate_fail',
  'thp_migration_success',
  'thp_migration_fail',
  'thp_migration_split',
  'thp_fault_alloc',
  'thp_fault_fallback',
  'thp_fault_fallback_charge',
  'thp_collapse_alloc',
  'thp_collapse_alloc_failed',
  'thp_file_alloc',
  'thp_file_fallback',
  'thp_file_mapped',
  'thp_split_page',
  'thp_split_page_failed',
  'thp_deferred_split_page',
  'thp_split_pmd',
  'thp_zero_page_alloc',
  'thp_scan_exceed_none_pte',
  'thp_scan_exceed_swap_pte',
  'thp_scan_exceed_share_pte',
  'thp_swpout',
  'thp_swpout_fallback',
  'cow_faults',
  'zero_page_faults',
  'device_private_faults',
  'tlb_flushes',
] as const;

/** Models enum vm_event_item / node_stat_item names. */
export type VmstatItem = (typeof VMSTAT_ITEMS)[number];

/** Models /proc/vmstat: a counter per item. */
export type Vmstat = Record<VmstatItem, number>;

/** Models count_vm_event() storage: all counters at zero. */
export function newVmstat(): Vmstat {
  // Built in one go: adding 40-odd properties one computed key at a time leaves a V8 object in
  // dictionary mode, and these counters are updated per page.
  return Object.fromEntries(VMSTAT_ITEMS.map((k) => [k, 0])) as Vmstat;
}

/**
 * Models enum mthp_stat_item (include/linux/huge_mm.h): the per-size event counters this model
 * moves (not the nr_anon / nr_anon_partially_mapped gauges).
 */
export const MTHP_STAT_ITEMS = [
  'anon_fault_alloc',
  'anon_fault_fallback',
  'anon_fault_fallback_charge',
  'swpout',
  'swpout_fallback',
  'split',
  'split_failed',
  'split_deferred',
] as const;

/** Models enum mthp_stat_item names. */
export type MthpStatItem = (typeof MTHP_STAT_ITEMS)[number];

/** Models struct mthp_stat summed over CPUs: one counter per order (0..PMD_ORDER) per item. */
export type MthpStats = Record<MthpStatItem, Float64Array>;

/** Models DEFINE_PER_CPU(struct mthp_stat, mthp_stats): every counter at zero. */
export function newMthpStats(): MthpStats {
  const s = {} as Record<string, Float64Array>;
  for (const k of MTHP_STAT_ITEMS) s[k] = new Float64Array(10);
  return s as MthpStats;
}
