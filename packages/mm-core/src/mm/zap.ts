import { PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { folioPut, folioRemoveRmapPtes } from '../folio.js';
import {
  _PAGE_DIRTY,
  _PAGE_SPECIAL,
  entryHuge,
  entryPfn,
  entryPresent,
  isDevicePrivateType,
  isMigrationType,
  SWP_DEVICE_EXCLUSIVE,
  swpType,
} from '../pgtable/entry.js';
import { PG_dirty } from '../phys/memmap.js';
import { addMmCounter, mmCounter } from './counters.js';
import { deferredSplitFolio, splitHugePmdLocked, zapHugePmd } from './huge.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo, ptSet } from './pgtable.js';
import { VM_HUGETLB, type Vma } from './types.js';

/**
 * Models zap_pte_range() for [start, end) inside one PTE table: every present, zero,
 * device-private, device-exclusive and migration entry is cleared with its rss, rmap and
 * reference. Partially unmapped anon THPs go to the deferred split queue (never device ones).
 */
export function zapPteRange(core: Core, vma: Vma, pteT: number, start: number, end: number): void {
  const mm = vma.mm;
  const m = core.map;
  const first = pteIndex(start);
  const n = Math.round((end - start) / PAGE_SIZE);
  for (let k = 0; k < n; k++) {
    const i = first + k;
    const lo = ptLo(core, pteT, i);
    const hi = ptHi(core, pteT, i);
    if (lo === 0 && hi === 0) continue;
    ptSet(core, pteT, i, 0, 0);
    const pfn = entryPfn(lo, hi);
    if (entryPresent(lo)) {
      if (lo & _PAGE_SPECIAL) continue;
      const head = m.head[pfn];
      addMmCounter(mm, mmCounter(core, head), -1);
      if (lo & _PAGE_DIRTY) m.flags[head] |= PG_dirty;
      folioRemoveRmapPtes(core, head, pfn, 1);
      if (m.largeMapcount[head] > 0) deferredSplitFolio(core, head);
      folioPut(core, head);
      continue;
    }
    const type = swpType(lo);
    const head = m.head[pfn];
    if (isDevicePrivateType(type) || type === SWP_DEVICE_EXCLUSIVE) {
      addMmCounter(mm, mmCounter(core, head), -1);
      folioRemoveRmapPtes(core, head, pfn, 1);
      if (m.largeMapcount[head] > 0) deferredSplitFolio(core, head);
      folioPut(core, head);
    } else if (isMigrationType(type)) {
      addMmCounter(mm, mmCounter(core, head), -1);
    }
  }
  mm.tlb.flushRange(start, end);
}

/**
 * Models __unmap_hugepage_range() (mm/hugetlb.c) for PMD-sized hugetlb pages: clear each huge
 * PMD, hugetlb_remove_rmap() and drop the mapping's reference (the last one returns the page
 * to the pool). hugetlb pages are not in the rss counters and have no deposited table.
 */
function unmapHugepageRange(core: Core, vma: Vma, start: number, end: number): void {
  const mm = vma.mm;
  const m = core.map;
  for (let addr = Math.floor(start / PMD_SIZE) * PMD_SIZE; addr < end; addr += PMD_SIZE) {
    const pmdT = pmdTableOf(core, mm, addr, false);
    if (pmdT < 0) continue;
    const mi = pmdIndex(addr);
    const lo = ptLo(core, pmdT, mi);
    const hi = ptHi(core, pmdT, mi);
    if (lo === 0 && hi === 0) continue;
    ptSet(core, pmdT, mi, 0, 0);
    const head = m.head[entryPfn(lo, hi)];
    if (lo & _PAGE_DIRTY) m.flags[head] |= PG_dirty;
    m.entireMapcount[head]--;
    m.largeMapcount[head]--;
    folioPut(core, head);
  }
  mm.tlb.flushRange(start, end);
}

/**
 * Models unmap_page_range()/zap_pmd_range(): zap [start, end) of a VMA. Huge PMDs wholly
 * inside the range are zapped at PMD level; a huge PMD only partly covered is split first
 * (non-freezing), then zapped at PTE level.
 */
export function zapRange(core: Core, vma: Vma, start: number, end: number): void {
  if (vma.flags & VM_HUGETLB) {
    unmapHugepageRange(core, vma, start, end);
    return;
  }
  const mm = vma.mm;
  let addr = start;
  while (addr < end) {
    const next = Math.min(end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
    const pmdT = pmdTableOf(core, mm, addr, false);
    if (pmdT < 0) {
      addr = Math.min(end, (Math.floor(addr / 2 ** 30) + 1) * 2 ** 30);
      continue;
    }
    const mi = pmdIndex(addr);
    const lo = ptLo(core, pmdT, mi);
    const hi = ptHi(core, pmdT, mi);
    if (lo === 0 && hi === 0) {
      addr = next;
      continue;
    }
    const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
    if (!entryPresent(lo) || entryHuge(lo)) {
      if (addr === haddr && next - addr === PMD_SIZE) {
        zapHugePmd(core, vma, pmdT, haddr);
        addr = next;
        continue;
      }
      splitHugePmdLocked(core, vma, pmdT, haddr, false);
    }
    const l2 = ptLo(core, pmdT, mi);
    zapPteRange(core, vma, entryPfn(l2, ptHi(core, pmdT, mi)), addr, next);
    addr = next;
  }
}
