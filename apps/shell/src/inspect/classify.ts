import {
  type Core,
  type EntryKind,
  entryKind,
  entryPfn,
  MEMORY_DEVICE_COHERENT,
  PG_zone_device,
} from '@hmm-model/mm-core';
import { isNouveauDevicePfn } from '@hmm-model/nouveau-dmem';

/**
 * What backs a page or a 2 MiB region, as the address-space map colours it: nothing mapped
 * (outside any VMA), a VMA with nothing behind it yet, system 4 KiB pages, a system THP, the
 * zero page, the huge zero page, device-private 4 KiB pages, a device-private THP, pages resident
 * in a nouveau GPU's VRAM (device-private pages of a nouveau_dmem chunk, 4 KiB or THP), coherent
 * device memory (4 KiB or THP), a migration entry, a device-exclusive entry, or another
 * software entry.
 */
export type CellKind =
  | 'unmapped'
  | 'empty'
  | 'sys'
  | 'thp'
  | 'zero'
  | 'hugezero'
  | 'dev'
  | 'devthp'
  | 'vram'
  | 'vramthp'
  | 'coherent'
  | 'coherentthp'
  | 'migration'
  | 'exclusive'
  | 'other';

/** Every cell kind with its plain-text symbol, legend text and short legend text, in legend order. */
export const CELL_KINDS: readonly { kind: CellKind; symbol: string; label: string; short: string }[] = [
  { kind: 'unmapped', symbol: ' ', label: 'no VMA', short: 'no VMA' },
  { kind: 'empty', symbol: '.', label: 'VMA, nothing mapped', short: 'empty' },
  { kind: 'sys', symbol: 's', label: 'system 4K', short: '4K' },
  { kind: 'thp', symbol: 'T', label: 'system THP', short: 'THP' },
  { kind: 'zero', symbol: 'z', label: 'zero page', short: 'zero' },
  { kind: 'hugezero', symbol: 'Z', label: 'huge zero page', short: 'huge zero' },
  { kind: 'dev', symbol: 'd', label: 'device-private 4K', short: 'dev 4K' },
  { kind: 'devthp', symbol: 'D', label: 'device-private THP', short: 'dev THP' },
  { kind: 'vram', symbol: 'v', label: 'GPU VRAM 4K (nouveau)', short: 'VRAM 4K' },
  { kind: 'vramthp', symbol: 'V', label: 'GPU VRAM THP (nouveau)', short: 'VRAM THP' },
  { kind: 'coherent', symbol: 'c', label: 'coherent 4K', short: 'coh 4K' },
  { kind: 'coherentthp', symbol: 'C', label: 'coherent THP', short: 'coh THP' },
  { kind: 'migration', symbol: 'm', label: 'migration entry', short: 'migrating' },
  { kind: 'exclusive', symbol: 'x', label: 'device-exclusive', short: 'exclusive' },
  { kind: 'other', symbol: '?', label: 'other swap entry', short: 'other' },
];

/** The plain-text symbol of a cell kind. */
export function cellSymbol(kind: CellKind): string {
  return CELL_KINDS.find((c) => c.kind === kind)?.symbol ?? '?';
}

/** Models is_device_coherent_page(): a ZONE_DEVICE pfn whose pgmap is MEMORY_DEVICE_COHERENT. */
export function isCoherentPfn(core: Core, pfn: number): boolean {
  if (!core.map.valid(pfn) || !(core.map.flags[pfn] & PG_zone_device)) return false;
  return core.pgmapOf(pfn)?.type === MEMORY_DEVICE_COHERENT;
}

/** The entry kind of a PTE/PMD word pair, as mm-core's entryKind names it. */
export function kindOf(core: Core, lo: number, hi: number, level: 'pte' | 'pmd' | 'pud' | 'pgd'): EntryKind {
  return entryKind(lo, hi, level, core.zeroPfn, core.hugeZeroPfn);
}

/** Classifies one leaf entry (a PTE, or a PMD that is a leaf) into a map cell kind. */
export function classifyLeaf(core: Core, lo: number, hi: number, level: 'pte' | 'pmd'): CellKind {
  const kind = kindOf(core, lo, hi, level);
  switch (kind) {
    case 'none':
      return 'empty';
    case 'present':
    case 'protnone':
      return isCoherentPfn(core, entryPfn(lo, hi)) ? 'coherent' : 'sys';
    case 'huge':
      return isCoherentPfn(core, entryPfn(lo, hi)) ? 'coherentthp' : 'thp';
    case 'zero':
      return 'zero';
    case 'huge-zero':
      return 'hugezero';
    case 'migration-read':
    case 'migration-read-exclusive':
    case 'migration-write':
      return 'migration';
    case 'device-private-read':
    case 'device-private-write':
      if (isNouveauDevicePfn(core, entryPfn(lo, hi))) return level === 'pmd' ? 'vramthp' : 'vram';
      return level === 'pmd' ? 'devthp' : 'dev';
    case 'device-exclusive':
      return 'exclusive';
    case 'table':
      return 'empty';
    default:
      return 'other';
  }
}

/** Priority used when one 2 MiB cell holds several kinds of 4 KiB entries (most telling first). */
export const CELL_PRIORITY: readonly CellKind[] = [
  'migration',
  'exclusive',
  'dev',
  'vram',
  'coherent',
  'other',
  'sys',
  'zero',
  'empty',
  'unmapped',
];
