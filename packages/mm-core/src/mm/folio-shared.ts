import type { Core } from '../core.js';
import { folioMapcount } from '../folio.js';
import { PG_head, PG_hugetlb } from '../phys/memmap.js';
import { pageVmaMappedCount } from './pvmw.js';
import { rmapVmas } from './rmap.js';
import type { MmStruct } from './types.js';

/**
 * Models folio_maybe_mapped_shared() (include/linux/mm.h): a small (or hugetlb) folio mapped
 * more than once; a large folio mapped by more than one mm (the MM-ID tracking of CONFIG_MM_ID,
 * folio_test_large_maybe_mapped_shared()). One mm maps an anonymous page at most once, so a
 * page with two mappings means two mms; otherwise the folio's mappings are looked up through
 * the rmap. Simplified: the kernel's flag may stay set a while after the folio became exclusive
 * again; here it is exact.
 */
export function folioMaybeMappedShared(core: Core, head: number): boolean {
  const m = core.map;
  const mapcount = folioMapcount(core, head);
  if (!(m.flags[head] & PG_head) || m.flags[head] & PG_hugetlb) return mapcount > 1;
  if (mapcount <= 1) return false;
  const entire = m.entireMapcount[head];
  if (entire > 1) return true;
  const n = m.folioNrPages(head);
  for (let k = 0; k < n; k++) if (m.mapcount[head + k] + entire > 1) return true;
  const mms = new Set<MmStruct>();
  for (const { vma, addr } of rmapVmas(core, head)) {
    if (mms.has(vma.mm)) continue;
    if (pageVmaMappedCount(core, vma, head, n, addr, false, 1) > 0) mms.add(vma.mm);
    if (mms.size > 1) return true;
  }
  return false;
}
