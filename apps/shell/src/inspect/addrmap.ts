import {
  type Core,
  entryNone,
  entryPfn,
  type MmStruct,
  PAGE_SIZE,
  PMD_SIZE,
  pmdIndex,
  pmdTableOf,
  ptHi,
  ptLo,
} from '@hmm-model/mm-core';
import { CELL_PRIORITY, type CellKind, cellSymbol, classifyLeaf, kindOf } from './classify.js';

/**
 * One line of the address-space map: a row of cells, a collapsed gap, or a note that rows are
 * left out above (`above`) or below the window shown.
 */
export type MapLine =
  | { readonly type: 'row'; readonly addr: number; readonly cells: readonly CellKind[] }
  | { readonly type: 'gap'; readonly bytes: number }
  | { readonly type: 'more'; readonly rows: number; readonly above?: boolean };

/** The address-space map of one process (what the live view and `map` render). */
export interface AddressMap {
  /** Bytes per cell: PMD_SIZE normally, PAGE_SIZE when zoomed. */
  readonly granule: number;
  readonly lines: readonly MapLine[];
  /** Number of VMAs shown. */
  readonly vmas: number;
  /** Counts of each cell kind among the cells shown. */
  readonly counts: Readonly<Partial<Record<CellKind, number>>>;
}

/** Options for {@link buildAddressMap}. */
export interface MapOptions {
  /** Cells per row (default 64). */
  readonly cellsPerRow?: number;
  /** Maximum rows of cells (default 16); later rows are summarised. */
  readonly maxRows?: number;
  /** Show the 2 MiB region containing this address page by page. */
  readonly zoom?: number | null;
  /**
   * An address to keep in view (the last command touched it): when there are more rows than
   * `maxRows`, the window of rows shown is the one around the row holding it (or the nearest row).
   */
  readonly focus?: number | null;
}

function covered(mm: MmStruct, start: number, end: number): boolean {
  const v = mm.findVma(start);
  return v !== undefined && v.start < end;
}

/**
 * Classifies the 2 MiB region at haddr (PMD aligned): a PMD leaf gives its kind; a PTE table
 * gives the most telling kind among its 512 entries (migration > exclusive > device-private >
 * coherent > system > zero > empty).
 */
export function classifyRegion(core: Core, mm: MmStruct, haddr: number): CellKind {
  if (!covered(mm, haddr, haddr + PMD_SIZE)) return 'unmapped';
  if (mm.pgd < 0) return 'empty';
  const pmdT = pmdTableOf(core, mm, haddr, false);
  if (pmdT < 0) return 'empty';
  const mi = pmdIndex(haddr);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  if (entryNone(lo, hi)) return 'empty';
  if (kindOf(core, lo, hi, 'pmd') !== 'table') return classifyLeaf(core, lo, hi, 'pmd');
  const t = entryPfn(lo, hi);
  let best = CELL_PRIORITY.length - 1;
  for (let i = 0; i < 512; i++) {
    const plo = ptLo(core, t, i);
    const phi = ptHi(core, t, i);
    if (entryNone(plo, phi)) continue;
    const r = CELL_PRIORITY.indexOf(classifyLeaf(core, plo, phi, 'pte'));
    if (r >= 0 && r < best) best = r;
    if (best === 0) break;
  }
  return CELL_PRIORITY[best];
}

/** Classifies each 4 KiB page of the 2 MiB region at haddr (for the zoomed view). */
export function classifyPages(core: Core, mm: MmStruct, haddr: number): CellKind[] {
  const out: CellKind[] = new Array(512).fill('empty');
  const pmdT = mm.pgd < 0 ? -1 : pmdTableOf(core, mm, haddr, false);
  const mi = pmdIndex(haddr);
  const lo = pmdT < 0 ? 0 : ptLo(core, pmdT, mi);
  const hi = pmdT < 0 ? 0 : ptHi(core, pmdT, mi);
  const kind = kindOf(core, lo, hi, 'pmd');
  for (let i = 0; i < 512; i++) {
    const a = haddr + i * PAGE_SIZE;
    if (!mm.vmaLookup(a)) out[i] = 'unmapped';
    else if (kind === 'none') out[i] = 'empty';
    else if (kind !== 'table') out[i] = classifyLeaf(core, lo, hi, 'pmd');
    else {
      const t = entryPfn(lo, hi);
      out[i] = classifyLeaf(core, ptLo(core, t, i), ptHi(core, t, i), 'pte');
    }
  }
  return out;
}

/**
 * Builds the address-space map of a process: its VMAs grouped into contiguous spans, one cell
 * per 2 MiB region (or per page of one region when zoomed), gaps between spans collapsed.
 */
export function buildAddressMap(core: Core, mm: MmStruct, opts: MapOptions = {}): AddressMap {
  const per = opts.cellsPerRow ?? 64;
  const maxRows = opts.maxRows ?? 16;
  const counts: Partial<Record<CellKind, number>> = {};
  const lines: MapLine[] = [];
  const count = (cells: CellKind[]) => {
    for (const c of cells) counts[c] = (counts[c] ?? 0) + 1;
  };
  if (opts.zoom !== null && opts.zoom !== undefined) {
    const haddr = Math.floor(opts.zoom / PMD_SIZE) * PMD_SIZE;
    const cells = classifyPages(core, mm, haddr);
    count(cells);
    for (let i = 0; i < cells.length; i += per)
      lines.push({ type: 'row', addr: haddr + i * PAGE_SIZE, cells: cells.slice(i, i + per) });
    return { granule: PAGE_SIZE, lines, vmas: mm.vmas.length, counts };
  }
  // Contiguous spans of VMAs, in 2 MiB granules.
  const spans: [number, number][] = [];
  for (const v of mm.vmas) {
    const s = Math.floor(v.start / PMD_SIZE) * PMD_SIZE;
    const e = Math.ceil(v.end / PMD_SIZE) * PMD_SIZE;
    const last = spans[spans.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else spans.push([s, e]);
  }
  // Every row (start address and end), with the gap before it; cells are classified only for the
  // rows shown.
  const rows: { addr: number; end: number; gapBefore: number }[] = [];
  let prevEnd = -1;
  for (const [s, e] of spans) {
    for (let a = s; a < e; a += per * PMD_SIZE)
      rows.push({
        addr: a,
        end: Math.min(e, a + per * PMD_SIZE),
        gapBefore: a === s && prevEnd >= 0 ? s - prevEnd : 0,
      });
    prevEnd = e;
  }
  let first = 0;
  if (rows.length > maxRows && opts.focus !== null && opts.focus !== undefined) {
    const f = focusRow(rows, opts.focus);
    first = Math.max(0, Math.min(f - Math.floor((maxRows - 1) / 2), rows.length - maxRows));
  }
  const last = Math.min(rows.length, first + maxRows);
  if (first > 0) lines.push({ type: 'more', rows: first, above: true });
  for (let i = first; i < last; i++) {
    const r = rows[i];
    if (r.gapBefore && i > first) lines.push({ type: 'gap', bytes: r.gapBefore });
    const cells: CellKind[] = [];
    for (let h = r.addr; h < r.end; h += PMD_SIZE) cells.push(classifyRegion(core, mm, h));
    count(cells);
    lines.push({ type: 'row', addr: r.addr, cells });
  }
  if (last < rows.length) lines.push({ type: 'more', rows: rows.length - last });
  return { granule: PMD_SIZE, lines, vmas: mm.vmas.length, counts };
}

/** The index of the row holding addr, or of the row nearest to it. */
function focusRow(rows: readonly { addr: number; end: number }[], addr: number): number {
  let best = 0;
  let bestDist = Number.POSITIVE_INFINITY;
  for (const [i, r] of rows.entries()) {
    const d = addr < r.addr ? r.addr - addr : addr >= r.end ? addr - r.end + 1 : 0;
    if (d < bestDist) {
      best = i;
      bestDist = d;
    }
  }
  return best;
}

/** Renders a map line as plain text (the no-colour fallback). */
export function mapLineText(line: MapLine): string {
  if (line.type === 'gap') return `${''.padStart(16)} ~ gap ${fmtGap(line.bytes)}`;
  if (line.type === 'more')
    return `${''.padStart(16)} ... ${line.rows} ${line.above ? `row${line.rows === 1 ? '' : 's'} above` : 'more rows'}`;
  return `${`0x${line.addr.toString(16)}`.padStart(16)} |${line.cells.map(cellSymbol).join('')}|`;
}

function fmtGap(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${bytes / 1024} KiB`;
}
