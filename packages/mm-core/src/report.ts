import type { Core } from './core.js';
import { vmCommitLimit, vmMemoryCommitted } from './mm/overcommit.js';
import { VMSTAT_ITEMS } from './vmstat.js';

/** Models /proc/meminfo (the fields this model tracks), in kB. */
export function meminfoText(core: Core): string {
  const kb = (pages: number) => `${String(pages * 4).padStart(8)} kB`;
  const v = core.vmstat;
  const lines: [string, string][] = [
    ['MemTotal', kb(core.ramPages)],
    ['MemFree', kb(core.zone.nrFree)],
    ['AnonPages', kb(v.nr_anon_pages)],
    ['Shmem', kb(v.nr_shmem)],
    ['PageTables', kb(v.nr_page_table_pages)],
    ['CommitLimit', kb(vmCommitLimit(core))],
    ['Committed_AS', kb(vmMemoryCommitted(core))],
    ['AnonHugePages', kb(v.nr_anon_transparent_hugepages * 512)],
    ['HugePages_Total', String(core.hugetlb.total).padStart(8)],
    ['HugePages_Free', String(core.hugetlb.free.length).padStart(8)],
    ['Hugepagesize', kb(512)],
  ];
  return lines.map(([k, val]) => `${`${k}:`.padEnd(16)}${val}\n`).join('');
}

/** Models /proc/vmstat. */
export function vmstatText(core: Core): string {
  const v = { ...core.vmstat, nr_free_pages: core.zone.nrFree };
  return VMSTAT_ITEMS.map((k) => `${k} ${v[k]}\n`).join('');
}
