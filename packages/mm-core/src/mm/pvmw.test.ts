import { describe, expect, it } from 'vitest';
import {
  HPAGE_PMD_NR,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { translate } from '../cpu.js';
import { machine } from '../testing/helpers.js';
import { pmdIndex, pmdTableOf } from './pgtable.js';
import { PageVmaMappedWalk } from './pvmw.js';
import { rmapVmas } from './rmap.js';

const RW = PROT_READ | PROT_WRITE;

/** A THP at a 2 MiB-aligned address of a fresh process, mapped by a PMD. */
function thp() {
  const k = machine();
  const p = k.spawn();
  const raw = p.mmap(0, 2 * PMD_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  p.writeI32(a, 1);
  const head = translate(k.core, p.mm, a, false);
  expect(k.core.map.order[head]).toBe(9);
  return { k, p, a, head };
}

describe('page_vma_mapped_walk() as a cursor (struct page_vma_mapped_walk)', () => {
  it('stops once at a PMD mapping, with its table and 2 MiB-aligned address', () => {
    const { k, p, a, head } = thp();
    const [{ vma, addr }] = rmapVmas(k.core, head);
    // A walk of the folio's last page only still finds the PMD (the range overlaps the head's 512 pages).
    const w = new PageVmaMappedWalk(
      k.core,
      vma,
      head + HPAGE_PMD_NR - 1,
      1,
      addr + (HPAGE_PMD_NR - 1) * PAGE_SIZE,
      false,
    );
    expect(w.walk()).toBe(true);
    expect(w.pte).toBe(false);
    expect(w.address).toBe(a);
    expect(w.pmdT).toBe(pmdTableOf(k.core, p.mm, a, false));
    expect(pmdIndex(w.address)).toBe(pmdIndex(a));
    expect(w.walk()).toBe(false);
    expect(w.walk()).toBe(false);
  });

  it('stops at each PTE in address order with the page it maps, and restart() walks again from the first page', () => {
    const { k, p, a, head } = thp();
    // Split the PMD (mprotect of one page), leaving the folio PTE-mapped.
    expect(p.mprotect(a, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.mprotect(a, PAGE_SIZE, RW)).toBe(0);
    const [{ vma, addr }] = rmapVmas(k.core, head);
    const w = new PageVmaMappedWalk(k.core, vma, head, HPAGE_PMD_NR, addr, false);
    for (let i = 0; i < 3; i++) {
      expect(w.walk()).toBe(true);
      expect([w.pte, w.address, w.pfn]).toEqual([true, a + i * PAGE_SIZE, head + i]);
    }
    // Zap pages 1..9: a restarted walk reports page 0 again, then skips them.
    expect(p.madvise(a + PAGE_SIZE, 9 * PAGE_SIZE, MADV_DONTNEED)).toBe(0);
    w.restart();
    const seen: number[] = [];
    while (w.walk()) seen.push(w.pfn - head);
    expect(seen[0]).toBe(0);
    expect(seen[1]).toBe(10);
    expect(seen.length).toBe(HPAGE_PMD_NR - 9);
  });
});
