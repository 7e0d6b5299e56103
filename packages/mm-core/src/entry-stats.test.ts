import { describe, expect, it } from 'vitest';
import {
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { PT_LEVEL_PMD, PT_LEVEL_PTE, PT_LEVEL_UPPER } from './entry-stats.js';
import type { Kernel } from './kernel.js';
import { pmdTableOf, pteTableOf } from './mm/pgtable.js';
import type { Process } from './process.js';
import { machine } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** An aligned 2 MiB anonymous range with the given THP advice. */
function thpRange(p: Process, advice: number): number {
  const raw = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  expect(p.madvise(a, PMD_SIZE, advice)).toBe(0);
  return a;
}

/** The counts written since `before`. */
function since(k: Kernel, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, n] of Object.entries(k.core.events.entries.snapshot()))
    if (n !== (before[kind] ?? 0)) out[kind] = n - (before[kind] ?? 0);
  return out;
}

describe('entry kinds written (model-only core.events.entries)', () => {
  it('tags page-table pages with their level', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRange(p, MADV_NOHUGEPAGE);
    p.writeU8(a, 1);
    const stats = k.core.events.entries;
    expect(stats.tableLevel(p.mm.pgd)).toBe(PT_LEVEL_UPPER);
    expect(stats.tableLevel(pmdTableOf(k.core, p.mm, a, false))).toBe(PT_LEVEL_PMD);
    expect(stats.tableLevel(pteTableOf(k.core, p.mm, a, false))).toBe(PT_LEVEL_PTE);
  });

  it('counts base-page, zero-page, THP, huge-zero and PROT_NONE writes at their level', () => {
    const k = machine();
    const p = k.spawn();
    let before = k.core.events.entries.snapshot();
    const small = thpRange(p, MADV_NOHUGEPAGE);
    for (let i = 0; i < 3; i++) p.writeU8(small + i * PAGE_SIZE, 1);
    p.readU8(small + 8 * PAGE_SIZE);
    // Table pointers are not leaves: only the three PTEs and the zero page count.
    expect(since(k, before)).toEqual({ 'pte present': 3, 'pte zero': 1 });

    before = k.core.events.entries.snapshot();
    const huge = thpRange(p, MADV_HUGEPAGE);
    p.writeU8(huge, 1);
    expect(since(k, before)).toEqual({ 'pmd present': 1 });

    before = k.core.events.entries.snapshot();
    const hz = thpRange(p, MADV_HUGEPAGE);
    p.readU8(hz);
    expect(since(k, before)).toEqual({ 'pmd huge-zero': 1 });

    before = k.core.events.entries.snapshot();
    expect(p.mprotect(small, PAGE_SIZE, PROT_NONE)).toBe(0);
    expect(since(k, before)['pte protnone']).toBe(1);
  });

  it('sees the transient migration entries of a THP split and the swap entries of reclaim', () => {
    const k = machine();
    const p = k.spawn();
    const a = thpRange(p, MADV_HUGEPAGE);
    for (let i = 0; i < 512; i++) p.writeU8(a + i * PAGE_SIZE, 1 + (i % 255));
    const before = k.core.events.entries.snapshot();
    expect(p.madvise(a, PMD_SIZE / 2, MADV_PAGEOUT)).toBe(0);
    const d = since(k, before);
    // MADV_PAGEOUT of half the THP splits it: the split freezes the PMD into 512 migration
    // PTEs and remove_migration_ptes() maps the 512 pages again; reclaim then swaps the half.
    expect(d).toEqual({ 'pte migration-write': 512, 'pte present': 512, 'pte swap': 256 });
    for (let i = 0; i < 512; i++) expect(p.readU8(a + i * PAGE_SIZE)).toBe(1 + (i % 255));
  });
});
