/**
 * The page-table walk the invariant checkers share (mm-core's, the migrate and driver checkers,
 * test helpers): every table page, leaf PMD and non-none PTE of an mm, read from the tables.
 */
import { PAGE_SIZE, PMD_SIZE, PUD_SIZE } from './constants.js';
import type { Core } from './core.js';
import type { MmStruct } from './mm/types.js';
import { _PAGE_PRESENT, _PAGE_PSE, entryPfn } from './pgtable/entry.js';
import { BLOCK_PAGES } from './phys/frames.js';

/** Models the page-table levels (pgd, pud, pmd, pte) as {@link walkPageTables} names them. */
export type WalkLevel = 'pgd' | 'pud' | 'pmd' | 'pte';

/**
 * Models struct mm_walk_ops (include/linux/pagewalk.h): the callbacks of
 * {@link walkPageTables}; addresses are user virtual addresses.
 */
export interface PageTableVisitor {
  /** A table page below the PGD: a PUD, PMD or PTE table (level names the table's entries). */
  table?(pfn: number, level: 'pud' | 'pmd' | 'pte', addr: number): void;
  /** A PMD that is a leaf: a present huge PMD or any non-none non-present PMD. */
  pmdLeaf?(addr: number, lo: number, hi: number): void;
  /** A non-none PTE. */
  pte?(addr: number, lo: number, hi: number): void;
  /** An entry the model never creates at that level (PGD/PUD leaves, kernel-half PGD entries). */
  bad?(addr: number, level: WalkLevel, lo: number, hi: number): void;
}

/** The span of a PGD entry (4-level paging). */
export const PGDIR_SIZE = 2 ** 39;

/**
 * Models walk_page_range() (mm/pagewalk.c) over every user address of an mm, reading the
 * tables directly (no VMA needed): reports each table page, each leaf PMD and each non-none
 * PTE. Allocation-free and side-effect-free.
 */
export function walkPageTables(core: Core, mm: MmStruct, v: PageTableVisitor): void {
  if (mm.pgd < 0) return;
  const frames = core.frames;
  const pgdB = frames.block32(mm.pgd);
  const pgdO = (mm.pgd & (BLOCK_PAGES - 1)) << 10;
  for (let gi = 0; gi < 512; gi++) {
    const glo = pgdB[pgdO + 2 * gi];
    const ghi = pgdB[pgdO + 2 * gi + 1];
    if (glo === 0 && ghi === 0) continue;
    const ga = gi * PGDIR_SIZE;
    if (gi >= 256 || !(glo & _PAGE_PRESENT) || glo & _PAGE_PSE) {
      v.bad?.(ga, 'pgd', glo, ghi);
      continue;
    }
    const pud = entryPfn(glo, ghi);
    v.table?.(pud, 'pud', ga);
    const pudB = frames.block32(pud);
    const pudO = (pud & (BLOCK_PAGES - 1)) << 10;
    for (let ui = 0; ui < 512; ui++) {
      const ulo = pudB[pudO + 2 * ui];
      const uhi = pudB[pudO + 2 * ui + 1];
      if (ulo === 0 && uhi === 0) continue;
      const ua = ga + ui * PUD_SIZE;
      if (!(ulo & _PAGE_PRESENT) || ulo & _PAGE_PSE) {
        v.bad?.(ua, 'pud', ulo, uhi);
        continue;
      }
      const pmd = entryPfn(ulo, uhi);
      v.table?.(pmd, 'pmd', ua);
      const pmdB = frames.block32(pmd);
      const pmdO = (pmd & (BLOCK_PAGES - 1)) << 10;
      for (let mi = 0; mi < 512; mi++) {
        const mlo = pmdB[pmdO + 2 * mi];
        const mhi = pmdB[pmdO + 2 * mi + 1];
        if (mlo === 0 && mhi === 0) continue;
        const ma = ua + mi * PMD_SIZE;
        if (!(mlo & _PAGE_PRESENT) || mlo & _PAGE_PSE) {
          v.pmdLeaf?.(ma, mlo, mhi);
          continue;
        }
        const pte = entryPfn(mlo, mhi);
        v.table?.(pte, 'pte', ma);
        if (!v.pte) continue;
        const pteB = frames.block32(pte);
        const pteO = (pte & (BLOCK_PAGES - 1)) << 10;
        for (let pi = 0; pi < 512; pi++) {
          const plo = pteB[pteO + 2 * pi];
          const phi = pteB[pteO + 2 * pi + 1];
          if (plo === 0 && phi === 0) continue;
          v.pte(ma + pi * PAGE_SIZE, plo, phi);
        }
      }
    }
  }
}
