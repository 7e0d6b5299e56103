/**
 * The swap half of mm-core's invariant checker (invariants.ts): every slot of every swap area
 * against the swap PTEs found and the swap cache, and each PG_swapcache folio against its slots.
 */
import type { Core } from './core.js';
import {
  SWAP_MAP_BAD,
  SWAPFILE_CLUSTER,
  SWP_USED,
  swapEntryToInfo,
  swpEntryName,
  swpEntryOffset,
  swpEntryVal,
} from './mm/swapfile.js';
import { PG_swapbacked, PG_swapcache } from './phys/memmap.js';

/** Model-only: what the swap checks report to (the checker run: its violations and expected references). */
export interface SwapCheckSink {
  report(msg: string, pfn?: number): void;
  addRef(head: number, refs: number): void;
}

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * Part of mm-core's invariant checker (no kernel counterpart; kernel-mechanics.md §9, swap):
 * every slot in use of every swap area: its swap count against the swap PTEs found, its
 * swap-cache page against the folio (PG_swapcache, page private = the entry; one reference
 * per cached page), and no slot in use without either (a leak). Swap PTEs to free slots are
 * reported too.
 */
export function checkSwapSlots(core: Core, swapRefs: ReadonlyMap<number, number>, sink: SwapCheckSink): void {
  const m = core.map;
  let swapCached = 0;
  const seen = new Set<number>();
  for (const si of core.swapInfo) {
    if (!si.materialised) continue;
    const map = si.swapMap;
    const tab = si.table;
    let inuse = 0;
    if (map[0] !== SWAP_MAP_BAD) sink.report(`swap area ${si.type}: header slot 0 is not SWAP_MAP_BAD`);
    for (let off = 1; off < si.max; off++) {
      // Clusters whose counter says empty are skipped (a swap PTE into one is still caught:
      // its slot is never seen); the others are checked slot by slot, counter included.
      if (off % SWAPFILE_CLUSTER === 0 || off === 1) {
        const c = Math.floor(off / SWAPFILE_CLUSTER);
        const base = c === 0 ? 1 : 0;
        const end = c * SWAPFILE_CLUSTER + si.clusterSlots(c);
        if (si.clusterUsed(c) === base) {
          off = end - 1;
          continue;
        }
        let used = base;
        for (let o = Math.max(1, c * SWAPFILE_CLUSTER); o < end; o++)
          if (map[o] !== 0 || tab[o] !== 0) used++;
        if (used !== si.clusterUsed(c))
          sink.report(
            `swap area ${si.type}: cluster ${c} counts ${si.clusterUsed(c)} slots in use but has ${used}`,
          );
      }
      const count = map[off];
      const pfn = tab[off];
      if (count === 0 && pfn === 0) continue;
      inuse++;
      const entry = swpEntryVal(si.type, off);
      const refs = swapRefs.get(entry) ?? 0;
      seen.add(entry);
      if (count !== refs)
        sink.report(`swap slot ${swpEntryName(entry)}: swap count ${count} but ${refs} swap PTEs`);
      if (pfn === 0) continue;
      swapCached++;
      if (!m.valid(pfn)) {
        sink.report(`swap slot ${swpEntryName(entry)}: swap cache holds invalid pfn ${hex(pfn)}`);
        continue;
      }
      const head = m.head[pfn];
      if (!(m.flags[head] & PG_swapcache))
        sink.report(`swap slot ${swpEntryName(entry)}: cached folio is not PG_swapcache`, pfn);
      if (m.priv[pfn] !== entry)
        sink.report(`swap slot ${swpEntryName(entry)}: cached page's private is ${m.priv[pfn]}`, pfn);
      sink.addRef(head, 1);
    }
    let counted = 0;
    for (let c = 0; c < si.nrClusters; c++) counted += si.clusterUsed(c);
    if (inuse !== si.inusePages || counted - 1 !== si.inusePages)
      sink.report(
        `swap area ${si.type}: inuse_pages ${si.inusePages} but ${inuse} slots in use (cluster counters: ${counted - 1})`,
      );
  }
  for (const [entry, n] of swapRefs)
    if (!seen.has(entry)) sink.report(`${n} swap PTEs name free swap slot ${swpEntryName(entry)}`);
  // swapoff: an area it freed (its swap_info[] entry no longer SWP_USED) holds nothing.
  for (const si of core.swapInfo)
    if (!(si.flags & SWP_USED) && si.inusePages !== 0)
      sink.report(`swap area ${si.type}: freed by swapoff but ${si.inusePages} slots in use`);
  if (core.vmstat.nr_swapcached !== swapCached)
    sink.report(`nr_swapcached ${core.vmstat.nr_swapcached} but the swap cache holds ${swapCached} pages`);
}

/** Part of mm-core's invariant checker: a PG_swapcache folio. Each page's entry must name a slot caching that page. */
export function checkSwapcacheFolio(core: Core, h: number, sink: SwapCheckSink): void {
  const m = core.map;
  const n = m.folioNrPages(h);
  // folio_test_swapcache() is only true for swap-backed folios: a lazy-free folio
  // (folio_mark_lazyfree() cleared PG_swapbacked) is never in the swap cache.
  if (!(m.flags[h] & PG_swapbacked))
    sink.report(
      `folio ${hex(h)}: PG_swapcache without PG_swapbacked (a lazy-free folio in the swap cache)`,
      h,
    );
  for (let i = 0; i < n; i++) {
    const entry = m.priv[h + i];
    const si = swapEntryToInfo(core, entry);
    if (!si || si.table[swpEntryOffset(entry)] !== h + i) {
      sink.report(
        `folio ${hex(h)}: PG_swapcache page ${hex(h + i)} is not in the swap cache at its entry`,
        h,
      );
      return;
    }
    if (i > 0 && entry !== m.priv[h] + i) {
      sink.report(`folio ${hex(h)}: swap entries of its pages are not consecutive`, h);
      return;
    }
  }
}
