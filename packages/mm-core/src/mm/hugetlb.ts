import { HPAGE_PMD_ORDER } from '../constants.js';
import type { Core } from '../core.js';
import { allocFolio, setFreeHooks } from '../folio.js';
import { PG_anon, PG_anon_exclusive, PG_hugetlb } from '../phys/memmap.js';

/**
 * Models hugetlb pool setup (nr_hugepages): allocate `n` 2 MiB pages from the buddy allocator
 * into the default hstate's free pool. Returns how many were added.
 */
export function hugetlbGrowPool(core: Core, n: number): number {
  setFreeHooks(core, { freeHugetlb: (head) => hugetlbFree(core, head) });
  let added = 0;
  for (let i = 0; i < n; i++) {
    const pfn = allocFolio(core, HPAGE_PMD_ORDER, false);
    if (pfn < 0) break;
    core.map.flags[pfn] |= PG_hugetlb;
    core.map.refcount[pfn] = 0;
    core.hugetlb.free.push(pfn);
    core.hugetlb.total++;
    added++;
  }
  return added;
}

/** Models alloc_hugetlb_folio(): a zeroed huge folio from the pool with refcount 1, or -1. */
export function hugetlbAlloc(core: Core): number {
  const pfn = core.hugetlb.free.pop();
  if (pfn === undefined) return -1;
  core.map.refcount[pfn] = 1;
  core.frames.zero(pfn, 1 << HPAGE_PMD_ORDER);
  return pfn;
}

/** Models free_huge_folio(): back to the pool. */
export function hugetlbFree(core: Core, head: number): void {
  const m = core.map;
  m.refcount[head] = 0;
  m.mapping[head] = 0;
  m.entireMapcount[head] = 0;
  m.largeMapcount[head] = 0;
  m.flags[head] &= ~(PG_anon | PG_anon_exclusive);
  core.hugetlb.free.push(head);
}

/** Models hugetlb_free_default_pages as the selftests read it (free_hugepages). */
export function hugetlbFreePages(core: Core): number {
  return core.hugetlb.free.length;
}
