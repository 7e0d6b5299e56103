/**
 * Model-only coverage accounting (no kernel counterpart): how many page-table entries of each
 * kind the machine wrote, at PTE level and at PMD level. Every leaf write goes through
 * set_pte()/set_pmd() ({@link ptSet} and the two open-coded writes of try_to_migrate_one() and
 * remove_migration_pte()), so counting there sees transient entries too: a migration entry
 * lives only while a migration runs, and a checker at a quiescent point never meets one.
 *
 * The explorer reports these counts as "entry kinds reached": did a campaign install a
 * device-private PMD, a migration PMD, a device-exclusive PTE? The level of a write is the level
 * of the table written; page-table pages are tagged with their level when they are allocated.
 */

import type { Core } from './core.js';
import {
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_PSE,
  _PAGE_SPECIAL,
  entryPfn,
  SWP_DEVICE_EXCLUSIVE,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  SWP_HWPOISON,
  SWP_MIGRATION_READ,
  SWP_MIGRATION_READ_EXCLUSIVE,
  SWP_MIGRATION_WRITE,
  SWP_PTE_MARKER,
  swpType,
} from './pgtable/entry.js';
import { type HostMemoryPool, takeArray } from './phys/hostpool.js';

/** Model-only: the level tag of a page-table page whose entries are PTEs (the default). */
export const PT_LEVEL_PTE = 0;
/** Model-only: the level tag of a PMD table (its leaves are huge PMDs or PMD softleaf entries). */
export const PT_LEVEL_PMD = 1;
/** Model-only: the level tag of a PGD or PUD table (table pointers only in the model). */
export const PT_LEVEL_UPPER = 2;

/**
 * Model-only: the leaf kinds counted, in report order (the names of pgtable/entry.ts's
 * entryKind(), without 'none' and 'table').
 */
export const ENTRY_KINDS = [
  'present',
  'zero',
  'protnone',
  'migration-read',
  'migration-read-exclusive',
  'migration-write',
  'device-private-read',
  'device-private-write',
  'device-exclusive',
  'swap',
  'marker',
  'hwpoison',
] as const;

/** Model-only: one counted leaf kind. */
export type CountedEntryKind = (typeof ENTRY_KINDS)[number];

const K = ENTRY_KINDS.length;
const PRESENT = 0;
const ZERO = 1;
const PROTNONE = 2;
const SWAP = 9;

/** Counted kind of each softleaf type (types below MAX_SWAPFILES are swap devices: 'swap'). */
const SOFTLEAF_KIND = new Uint8Array(32).fill(SWAP);
SOFTLEAF_KIND[SWP_MIGRATION_READ] = 3;
SOFTLEAF_KIND[SWP_MIGRATION_READ_EXCLUSIVE] = 4;
SOFTLEAF_KIND[SWP_MIGRATION_WRITE] = 5;
SOFTLEAF_KIND[SWP_DEVICE_READ] = 6;
SOFTLEAF_KIND[SWP_DEVICE_WRITE] = 7;
SOFTLEAF_KIND[SWP_DEVICE_EXCLUSIVE] = 8;
SOFTLEAF_KIND[SWP_PTE_MARKER] = 10;
SOFTLEAF_KIND[SWP_HWPOISON] = 11;

/** Model-only: entry writes by level and kind on one machine (`core.events.entries`). */
export class EntryStats {
  /** counts[level * K + kind], level 0 = PTE, 1 = PMD. */
  readonly counts = new Float64Array(2 * K);
  /** Level tag per page-table pfn (grown on demand; untagged pfns are PTE tables). */
  private level = new Uint8Array(0);

  /** Where the level array comes from and goes back to at {@link EntryStats.release} (set by Core). */
  pool: HostMemoryPool | undefined = undefined;

  /** Model-only: tags the page-table page at pfn with its level (at allocation). */
  tagTable(pfn: number, level: number): void {
    if (pfn >= this.level.length) {
      if (level === PT_LEVEL_PTE) return;
      // Powers of two, so that a pool hands the next machine an array of the same length.
      let n = Math.max(this.level.length, 4096);
      while (n <= pfn) n *= 2;
      const grown = takeArray(this.pool, Uint8Array, n);
      grown.set(this.level);
      if (this.pool && this.level.length) this.pool.give(this.level);
      this.level = grown;
    }
    this.level[pfn] = level;
  }

  /** Model-only: the machine is discarded; the level array goes back to the pool. */
  release(): void {
    if (this.pool && this.level.length) this.pool.give(this.level);
    this.level = new Uint8Array(0);
  }

  /** Model-only: the level tag of the page-table page at pfn. */
  tableLevel(pfn: number): number {
    return pfn < this.level.length ? this.level[pfn] : PT_LEVEL_PTE;
  }

  /** Model-only: counts a write of (lo, hi) into the page-table page t (a clear counts nothing). */
  note(core: Core, t: number, lo: number, hi: number): void {
    const level = t < this.level.length ? this.level[t] : PT_LEVEL_PTE;
    if (level === PT_LEVEL_UPPER) return;
    let k: number;
    if (lo & (_PAGE_PRESENT | _PAGE_PROTNONE)) {
      if (level === PT_LEVEL_PMD) {
        if (!(lo & _PAGE_PSE)) return; // a pointer to a PTE table
        k = entryPfn(lo, hi) === core.hugeZeroPfn ? ZERO : lo & _PAGE_PRESENT ? PRESENT : PROTNONE;
      } else
        k =
          lo & _PAGE_SPECIAL && entryPfn(lo, hi) === core.zeroPfn
            ? ZERO
            : lo & _PAGE_PRESENT
              ? PRESENT
              : PROTNONE;
    } else if (lo === 0 && hi === 0) return;
    else k = SOFTLEAF_KIND[swpType(lo)];
    this.counts[level * K + k]++;
  }

  /**
   * Model-only: the non-zero counts as `{ 'pte present': n, 'pmd device-private-write': m, ... }`
   * (at PMD level the zero kind is named 'huge-zero': the huge zero page).
   */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let l = 0; l < 2; l++)
      for (let k = 0; k < K; k++) {
        const n = this.counts[l * K + k];
        if (n > 0) out[`${l ? 'pmd' : 'pte'} ${l && k === ZERO ? 'huge-zero' : ENTRY_KINDS[k]}`] = n;
      }
    return out;
  }
}
