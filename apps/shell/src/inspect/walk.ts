import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_NX_HI,
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_SOFT_DIRTY,
  _PAGE_SPECIAL,
  _PAGE_SWP_SOFT_DIRTY,
  _PAGE_SWP_UFFD_WP,
  _PAGE_UFFD_WP,
  _PAGE_USER,
  type Core,
  type EntryKind,
  entryPfn,
  entryPresent,
  isMigrationType,
  type MmStruct,
  pgdIndex,
  pmdIndex,
  pteIndex,
  ptHi,
  ptLo,
  pudIndex,
  SWP_MIG_DIRTY,
  SWP_MIG_YOUNG,
  swpType,
} from '@hmm-model/mm-core';
import { type CellKind, classifyLeaf, kindOf } from './classify.js';

/** One level of a page-table walk: which table, which slot, the entry and its kind. */
export interface WalkLevel {
  readonly level: 'pgd' | 'pud' | 'pmd' | 'pte';
  /** pfn of the table page holding the entry. */
  readonly table: number;
  readonly index: number;
  readonly lo: number;
  readonly hi: number;
  readonly kind: EntryKind;
  /** The entry's pfn field: next table, mapped frame, or a software entry's offset. */
  readonly pfn: number;
  /** Decoded bits (RW, USER, DIRTY, ... or the swap type and its bits). */
  readonly bits: readonly string[];
}

/** The result of {@link walkAddress}: every level visited and what backs the page. */
export interface WalkResult {
  readonly addr: number;
  readonly levels: readonly WalkLevel[];
  /** The leaf level, if the walk reached a non-none leaf. */
  readonly leaf?: WalkLevel;
  /** The pfn of the 4 KiB page at addr (leaf pfn + subpage for PMD leaves), or -1. */
  readonly pagePfn: number;
  /** How the map would colour this page. */
  readonly backing: CellKind;
}

const PRESENT_BITS: [number, string][] = [
  [_PAGE_PRESENT, 'PRESENT'],
  [_PAGE_PROTNONE, 'PROTNONE'],
  [_PAGE_RW, 'RW'],
  [_PAGE_USER, 'USER'],
  [_PAGE_ACCESSED, 'ACCESSED'],
  [_PAGE_DIRTY, 'DIRTY'],
  [_PAGE_PSE, 'PSE'],
  [_PAGE_SPECIAL, 'SPECIAL'],
  [_PAGE_UFFD_WP, 'UFFD_WP'],
  [_PAGE_SOFT_DIRTY, 'SOFT_DIRTY'],
];

const SWP_NAMES: Readonly<Record<number, string>> = {
  24: 'SWP_HWPOISON',
  25: 'SWP_MIGRATION_READ',
  26: 'SWP_MIGRATION_READ_EXCLUSIVE',
  27: 'SWP_MIGRATION_WRITE',
  28: 'SWP_DEVICE_WRITE',
  29: 'SWP_DEVICE_READ',
  30: 'SWP_DEVICE_EXCLUSIVE',
  31: 'SWP_PTE_MARKER',
};

/** Decodes the flag bits of an entry: x86 bits for present entries, the swap type for softleaf ones. */
export function decodeEntryBits(lo: number, hi: number): string[] {
  if (lo === 0 && hi === 0) return [];
  const out: string[] = [];
  if (entryPresent(lo)) {
    for (const [b, n] of PRESENT_BITS) if (lo & b) out.push(n);
    if (hi & _PAGE_NX_HI) out.push('NX');
    return out;
  }
  const t = swpType(lo);
  out.push(`${SWP_NAMES[t] ?? `swap type ${t}`}`);
  if (isMigrationType(t)) {
    if (lo & SWP_MIG_YOUNG) out.push('YOUNG');
    if (lo & SWP_MIG_DIRTY) out.push('DIRTY');
  }
  if (lo & _PAGE_SWP_SOFT_DIRTY) out.push('SWP_SOFT_DIRTY');
  if (lo & _PAGE_SWP_UFFD_WP) out.push('SWP_UFFD_WP');
  return out;
}

function level(core: Core, name: WalkLevel['level'], table: number, index: number): WalkLevel {
  const lo = ptLo(core, table, index);
  const hi = ptHi(core, table, index);
  return {
    level: name,
    table,
    index,
    lo,
    hi,
    kind: kindOf(core, lo, hi, name),
    pfn: entryPfn(lo, hi),
    bits: decodeEntryBits(lo, hi),
  };
}

/**
 * Models a software page-table walk (walk_page_range()/follow_pte() as a debugger does it):
 * PGD -> PUD -> PMD -> PTE for addr, stopping at a none entry, a huge or non-present PMD leaf,
 * or the PTE. Reads only; allocates nothing.
 */
export function walkAddress(core: Core, mm: MmStruct, addr: number): WalkResult {
  const levels: WalkLevel[] = [];
  const done = (leaf: WalkLevel | undefined, pagePfn: number, backing: CellKind): WalkResult => ({
    addr,
    levels,
    leaf,
    pagePfn,
    backing,
  });
  if (mm.pgd < 0) return done(undefined, -1, 'empty');
  const g = level(core, 'pgd', mm.pgd, pgdIndex(addr));
  levels.push(g);
  if (g.kind !== 'table') return done(undefined, -1, 'empty');
  const u = level(core, 'pud', g.pfn, pudIndex(addr));
  levels.push(u);
  if (u.kind !== 'table') return done(undefined, -1, 'empty');
  const m = level(core, 'pmd', u.pfn, pmdIndex(addr));
  levels.push(m);
  if (m.kind === 'none') return done(undefined, -1, 'empty');
  if (m.kind !== 'table') return done(m, m.pfn + pteIndex(addr), classifyLeaf(core, m.lo, m.hi, 'pmd'));
  const p = level(core, 'pte', m.pfn, pteIndex(addr));
  levels.push(p);
  if (p.kind === 'none') return done(undefined, -1, 'empty');
  return done(p, p.pfn, classifyLeaf(core, p.lo, p.hi, 'pte'));
}
