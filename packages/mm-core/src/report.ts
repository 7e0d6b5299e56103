import type { Core } from './core.js';
import { vmCommitLimit, vmMemoryCommitted } from './mm/overcommit.js';
import { nrSwapPages, totalSwapPages } from './mm/swapfile.js';
import { VMSTAT_ITEMS } from './vmstat.js';

/** Models /proc/meminfo (meminfo_proc_show(), fs/proc/meminfo.c): the fields this model tracks, in kB, in the kernel's order. */
export function meminfoText(core: Core): string {
  const kb = (pages: number) => `${String(pages * 4).padStart(8)} kB`;
  const v = core.vmstat;
  const lines: [string, string][] = [
    ['MemTotal', kb(core.ramPages)],
    ['MemFree', kb(core.zone.nrFree)],
    // si_swapinfo(): SwapTotal is total_swap_pages, SwapFree the free slots (nr_swap_pages).
    ['SwapCached', kb(v.nr_swapcached)],
    ['SwapTotal', kb(totalSwapPages(core))],
    ['SwapFree', kb(nrSwapPages(core))],
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
