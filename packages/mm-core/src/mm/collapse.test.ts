/**
 * MADV_COLLAPSE (madvise_collapse(), hpage_collapse_scan_pmd(), collapse_huge_page(),
 * madvise_collapse_errno(); mm/khugepaged.c v6.19). Device-private entries are covered in
 * packages/migrate-vma (they need a device).
 */
import { describe, expect, it } from 'vitest';
import {
  EAGAIN,
  EBUSY,
  EINVAL,
  ENOMEM,
  FOLL_WRITE,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import type { Process } from '../process.js';
import { machine, pmdKind, ptePfn } from '../testing/helpers.js';
import type { ScanResult } from './collapse.js';
import { FOLL_PIN, getUserPages, putUserPages } from './gup.js';
import { madviseCollapseErrno } from './madvise-collapse.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const P = PAGE_SIZE;

/** n PMD-aligned PMDs of private anonymous memory (small pages: THP mode "madvise", no advice). */
function region(p: Process, n = 1): number {
  const raw = p.mmap(0, (n + 1) * PMD_SIZE, RW, ANON);
  return Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
}

/** A THP at a that is mapped by PTEs (the PMD split by an mprotect() round trip). */
function pteMappedThp(k: Kernel, p: Process, a: number): number {
  expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  for (let i = 0; i < HPAGE_PMD_NR; i++) p.writeI32(a + i * P, i + 1);
  expect(pmdKind(k, p, a)).toBe('huge');
  expect(p.mprotect(a, P, PROT_READ)).toBe(0);
  expect(p.mprotect(a, P, RW)).toBe(0);
  expect(pmdKind(k, p, a)).toBe('table');
  const head = ptePfn(k, p, a);
  expect(k.core.map.order[head]).toBe(HPAGE_PMD_ORDER);
  return head;
}

describe('MADV_COLLAPSE (madvise_collapse())', () => {
  it('hpage_collapse_scan_pmd(): no PTE table is SCAN_NO_PTE_TABLE: nothing collapsed, -EINVAL, and the walk goes on', () => {
    const k = machine();
    const p = k.spawn();
    const a = region(p, 2);
    // The first PMD has no PTE table; the second has pages.
    p.writeI32(a + PMD_SIZE + 5 * P, 5);
    expect(pmdKind(k, p, a)).toBe('none');
    expect(p.madvise(a, 2 * PMD_SIZE, MADV_COLLAPSE)).toBe(-EINVAL);
    expect(pmdKind(k, p, a)).toBe('none');
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge');
    expect(p.readI32(a + PMD_SIZE + 5 * P)).toBe(5);
    // A range with no table at all collapses nothing.
    const b = region(p);
    const alloc = k.core.vmstat.thp_collapse_alloc;
    expect(p.madvise(b, PMD_SIZE, MADV_COLLAPSE)).toBe(-EINVAL);
    expect(k.core.vmstat.thp_collapse_alloc).toBe(alloc);
    expect(k.check()).toEqual([]);
  });

  it('an existing PTE table with only none PTEs is collapsed into a zeroed THP (max_ptes_none is khugepaged only)', () => {
    const k = machine();
    const p = k.spawn();
    const a = region(p);
    p.writeI32(a, 1);
    expect(p.madvise(a, P, MADV_DONTNEED)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    expect(p.readI32(a)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('collapses a PTE-mapped THP COW-shared with a child (no max_ptes_shared): the child keeps the old THP and its data', () => {
    const k = machine();
    const p = k.spawn();
    const a = region(p);
    const head = pteMappedThp(k, p, a);
    const c = k.task(p.fork())!;
    expect(ptePfn(k, c, a)).toBe(head);
    expect(k.core.map.mapcount[head]).toBe(2);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge');
    // The child's view is unchanged: its PTEs still map the old folio, now mapped once.
    expect(pmdKind(k, c, a)).toBe('table');
    expect(ptePfn(k, c, a + 7 * P)).toBe(head + 7);
    expect(k.core.map.mapcount[head + 7]).toBe(1);
    for (let i = 0; i < HPAGE_PMD_NR; i += 37) {
      expect(p.readI32(a + i * P)).toBe(i + 1);
      expect(c.readI32(a + i * P)).toBe(i + 1);
    }
    p.writeI32(a, -1);
    expect(c.readI32(a)).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('SCAN_PMD_MAPPED counts as collapsed: a PMD already huge, or the huge zero PMD, is 0', () => {
    const k = machine();
    const p = k.spawn();
    const a = region(p, 2);
    expect(p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    p.writeI32(a, 1);
    p.readI32(a + PMD_SIZE);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge-zero');
    const alloc = k.core.vmstat.thp_collapse_alloc;
    expect(p.madvise(a, 2 * PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(k.core.vmstat.thp_collapse_alloc).toBe(alloc);
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge-zero');
    expect(k.check()).toEqual([]);
  });

  it('a page with a reference beyond its mappings (a GUP pin) is SCAN_PAGE_COUNT: -EAGAIN', () => {
    const k = machine();
    const p = k.spawn();
    const a = region(p);
    for (let i = 0; i < 8; i++) p.writeI32(a + i * P, i);
    const pages = k.core.sched.runSync(
      getUserPages(k.core, p.mm, a + 3 * P, 1, FOLL_WRITE | FOLL_PIN),
      'pin',
    );
    expect(Array.isArray(pages)).toBe(true);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(-EAGAIN);
    expect(pmdKind(k, p, a)).toBe('table');
    putUserPages(k.core, pages as number[], FOLL_PIN);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(p.readI32(a + 3 * P)).toBe(3);
    expect(k.check()).toEqual([]);
  });

  it('SCAN_ALLOC_HUGE_PAGE_FAIL is -ENOMEM (THP_COLLAPSE_ALLOC_FAILED) and leaves the PTEs', () => {
    const k = machine();
    const p = k.spawn();
    const a = region(p);
    p.writeI32(a, 4);
    k.core.zone.failHook = (order) => order === HPAGE_PMD_ORDER;
    const failed = k.core.vmstat.thp_collapse_alloc_failed;
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(-ENOMEM);
    k.core.zone.failHook = undefined;
    expect(k.core.vmstat.thp_collapse_alloc_failed).toBe(failed + 1);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(p.readI32(a)).toBe(4);
    expect(k.check()).toEqual([]);
  });

  it('thp_vma_allowable_order(TVA_FORCED_COLLAPSE): a VMA without an aligned PMD, or ranges without one, are -EINVAL', () => {
    const k = machine();
    const p = k.spawn();
    const small = p.mmap(0, 8 * P, RW, ANON);
    p.writeI32(small, 1);
    expect(p.madvise(small, 8 * P, MADV_COLLAPSE)).toBe(-EINVAL);
    const a = region(p);
    p.writeI32(a, 1);
    // hstart == hend: no PMD to collapse, 0; hend < hstart: the unsigned count never matches, -EINVAL.
    expect(p.madvise(a, 8 * P, MADV_COLLAPSE)).toBe(0);
    expect(p.madvise(a + P, 8 * P, MADV_COLLAPSE)).toBe(-EINVAL);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(k.check()).toEqual([]);
  });

  it('madvise_collapse_errno(): -ENOMEM, -EBUSY, -EAGAIN and -EINVAL', () => {
    const cases: [ScanResult, number][] = [
      ['SCAN_ALLOC_HUGE_PAGE_FAIL', -ENOMEM],
      ['SCAN_CGROUP_CHARGE_FAIL', -EBUSY],
      ['SCAN_EXCEED_NONE_PTE', -EBUSY],
      ['SCAN_PAGE_COUNT', -EAGAIN],
      ['SCAN_PAGE_LOCK', -EAGAIN],
      ['SCAN_PAGE_LRU', -EAGAIN],
      ['SCAN_DEL_PAGE_LRU', -EAGAIN],
      ['SCAN_PAGE_FILLED', -EAGAIN],
      ['SCAN_NO_PTE_TABLE', -EINVAL],
      ['SCAN_PTE_NON_PRESENT', -EINVAL],
      ['SCAN_PAGE_NULL', -EINVAL],
      ['SCAN_VMA_CHECK', -EINVAL],
      ['SCAN_FAIL', -EINVAL],
    ];
    for (const [r, e] of cases) expect([r, madviseCollapseErrno(r)]).toEqual([r, e]);
  });
});
