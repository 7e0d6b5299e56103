/**
 * Collapse over swapped-out PTEs (mm/khugepaged.c v6.19): hpage_collapse_scan_pmd() counts swap
 * PTEs against max_ptes_swap (khugepaged only) and wants half the PTEs young when some are
 * swapped out; collapse_huge_page() swaps them in with __collapse_huge_page_swapin() (do_swap_page()
 * as a read fault) before copying, and is_refcount_suitable() counts the swap cache's references.
 */
import { describe, expect, it } from 'vitest';
import {
  HPAGE_PMD_NR,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_HUGEPAGE,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { smaps } from '../proc.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { khugepagedSettings } from './khugepaged-state.js';

const P = PAGE_SIZE;

/** One aligned PMD of 512 written small pages, the first `out` of them paged out to swap. */
function swappedPmd(p: Process, out: number): number {
  const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  for (let i = 0; i < HPAGE_PMD_NR; i++) p.writeI32(a + i * P, 0xdead0000 + i);
  expect(p.madvise(a, out * P, MADV_PAGEOUT)).toBe(0);
  expect(p.mm.rss.MM_SWAPENTS).toBe(out);
  return a;
}

function expectData(p: Process, a: number): void {
  for (let i = 0; i < HPAGE_PMD_NR; i++) expect(p.readI32(a + i * P) >>> 0).toBe(0xdead0000 + i);
}

describe('collapse with swap PTEs (__collapse_huge_page_swapin())', () => {
  it('khugepaged swaps a swapped-out page in and collapses the PMD (max_ptes_swap 64 allows it)', () => {
    const k = machine();
    const p = k.spawn();
    const a = swappedPmd(p, 1);
    // smaps_pte_entry(): a swap PTE counts in the VMA's Swap.
    expect(smaps(k.core, p.mm).find((e) => e.start <= a && a < e.end)?.swap).toBe(P);
    const pswpin = k.core.vmstat.pswpin;
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    const r = k.khugepagedScan();
    expect(r.collapsed).toBe(1);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(k.core.vmstat.pswpin).toBe(pswpin + 1);
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    // The swapped-in page left the swap cache when the collapse freed it (free_page_and_swap_cache()).
    expect(k.core.vmstat.nr_swapcached).toBe(0);
    expectData(p, a);
    expect(k.check()).toEqual([]);
  });

  it('khugepaged: one swap PTE more than max_ptes_swap is SCAN_EXCEED_SWAP_PTE (thp_scan_exceed_swap_pte)', () => {
    const k = machine();
    const p = k.spawn();
    const max = khugepagedSettings(k.core).maxPtesSwap;
    const a = swappedPmd(p, max + 1);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    const v = k.core.vmstat.thp_scan_exceed_swap_pte;
    const r = k.khugepagedScan();
    expect(r.lastResult).toBe('SCAN_EXCEED_SWAP_PTE');
    expect(k.core.vmstat.thp_scan_exceed_swap_pte).toBe(v + 1);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(p.mm.rss.MM_SWAPENTS).toBe(max + 1);
    expectData(p, a);
    expect(k.check()).toEqual([]);
  });

  it('khugepaged: exactly max_ptes_swap swap PTEs collapse', () => {
    const k = machine();
    const p = k.spawn();
    const a = swappedPmd(p, khugepagedSettings(k.core).maxPtesSwap);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(k.khugepagedScan().collapsed).toBe(1);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expectData(p, a);
    expect(k.check()).toEqual([]);
  });

  it('MADV_COLLAPSE is not held to max_ptes_swap (cc->is_khugepaged false): 65 swap PTEs are swapped in', () => {
    const k = machine();
    const p = k.spawn();
    const a = swappedPmd(p, 65);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expect(k.core.vmstat.nr_swapcached).toBe(0);
    expectData(p, a);
    expect(k.check()).toEqual([]);
  });

  it('khugepaged wants half the PTEs young when some are swapped out (SCAN_LACK_REFERENCED_PAGE)', () => {
    const k = machine();
    const p = k.spawn();
    const a = swappedPmd(p, 1);
    // MADV_COLD clears the young bits of the pages still mapped.
    expect(p.madvise(a + P, PMD_SIZE - P, MADV_COLD)).toBe(0);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(k.khugepagedScan().lastResult).toBe('SCAN_LACK_REFERENCED_PAGE');
    expect(pmdKind(k, p, a)).toBe('table');
    expect(k.check()).toEqual([]);
  });
});
