import {
  type Core,
  dumpFolio,
  folioMapcount,
  MEMORY_DEVICE_COHERENT,
  MEMORY_DEVICE_PRIVATE,
  PAGES_PER_SECTION,
  PG_anon,
  PG_anon_exclusive,
  PG_buddy,
  PG_deferred_split,
  PG_dirty,
  PG_head,
  PG_hugetlb,
  PG_large_rmappable,
  PG_locked,
  PG_lru,
  PG_partially_mapped,
  PG_referenced,
  PG_reserved,
  PG_swapbacked,
  PG_swapcache,
  PG_table,
  PG_tail,
  PG_uptodate,
  PG_writeback,
  PG_zone_device,
} from '@hmm-model/mm-core';
import { hex } from '../format.js';
import type { Json } from '../result.js';

const FLAG_NAMES: [number, string][] = [
  [PG_locked, 'locked'],
  [PG_referenced, 'referenced'],
  [PG_uptodate, 'uptodate'],
  [PG_dirty, 'dirty'],
  [PG_lru, 'lru'],
  [PG_head, 'head'],
  [PG_tail, 'tail'],
  [PG_swapbacked, 'swapbacked'],
  [PG_anon, 'anon'],
  [PG_anon_exclusive, 'anon_exclusive'],
  [PG_buddy, 'buddy'],
  [PG_reserved, 'reserved'],
  [PG_zone_device, 'zone_device'],
  [PG_large_rmappable, 'large_rmappable'],
  [PG_partially_mapped, 'partially_mapped'],
  [PG_hugetlb, 'hugetlb'],
  [PG_table, 'table'],
  [PG_writeback, 'writeback'],
  [PG_deferred_split, 'deferred_split'],
  [PG_swapcache, 'swapcache'],
];

/** Models the %pGp flag printing of dump_page(): the names of the PG_* bits set. */
export function pageFlagNames(flags: number): string[] {
  return FLAG_NAMES.filter(([b]) => flags & b).map(([, n]) => n);
}

/** Names a memory_type (enum memory_type). */
export function memoryTypeName(type: number): string {
  if (type === MEMORY_DEVICE_PRIVATE) return 'MEMORY_DEVICE_PRIVATE';
  if (type === MEMORY_DEVICE_COHERENT) return 'MEMORY_DEVICE_COHERENT';
  return `memory_type ${type}`;
}

/**
 * Models dump_page()/dump_folio() in full for the shell: the page and its folio's order,
 * reference and map counts, flags, zone, pgmap, mapping and index.
 */
export function describeFolio(core: Core, pfn: number): { lines: string[]; data: { [k: string]: Json } } {
  const m = core.map;
  if (!m.valid(pfn))
    return { lines: [`pfn ${hex(pfn)}: not a valid pfn (no memmap section)`], data: { pfn, valid: false } };
  if (m.deferred(pfn))
    return {
      lines: [
        `pfn ${hex(pfn)}: free RAM whose struct page is not initialised yet (deferred section ${Math.floor(pfn / PAGES_PER_SECTION)}: the buddy allocator has not grown into it)`,
      ],
      data: { pfn, valid: true, deferred: true },
    };
  const head = m.head[pfn];
  const order = m.folioOrder(head);
  const pages = 1 << order;
  const flags = m.flags[head];
  const zoneDevice = (flags & PG_zone_device) !== 0;
  const pgmap = core.pgmapOf(pfn) ?? core.pgmapOf(head);
  const lines = [
    `pfn ${hex(pfn)}${head !== pfn ? ` (page ${pfn - head} of the folio at ${hex(head)})` : ' (folio head)'}`,
    `  order ${order} (${pages} page${pages > 1 ? 's' : ''})  zone ${zoneDevice ? 'ZONE_DEVICE' : 'ZONE_NORMAL'}`,
    `  refcount ${m.refcount[head]}  mapcount(page) ${m.mapcount[pfn]}  entire_mapcount ${m.entireMapcount[head]}  ` +
      `large_mapcount ${m.largeMapcount[head]}  folio_mapcount ${folioMapcount(core, head)}  pincount ${m.pincount[head]}`,
    `  folio flags: ${pageFlagNames(flags).join('|') || '0'}`,
    ...(pfn !== head ? [`  page flags: ${pageFlagNames(m.flags[pfn]).join('|') || '0'}`] : []),
    `  mapping ${m.mapping[pfn] ? `#${m.mapping[pfn]}${flags & PG_anon ? ' (anon_vma)' : ' (address_space)'}` : '-'}  index ${hex(m.index[pfn])}  private ${hex(m.priv[head])}`,
    pgmap
      ? `  pgmap #${pgmap.id} "${pgmap.name}" ${memoryTypeName(pgmap.type)} pfns ${hex(pgmap.startPfn)}-${hex(pgmap.endPfn)} refs ${pgmap.refs}${pgmap.dying ? ' dying' : ''}`
      : '  pgmap -',
    ...(pfn === core.zeroPfn ? ['  (the shared zero page)'] : []),
    ...(head === core.hugeZeroPfn ? ['  (the huge zero folio)'] : []),
    `  dump_page: ${dumpFolio(core, pfn)}`,
  ];
  return {
    lines,
    data: {
      pfn,
      head,
      order,
      refcount: m.refcount[head],
      mapcount: m.mapcount[pfn],
      entireMapcount: m.entireMapcount[head],
      largeMapcount: m.largeMapcount[head],
      folioMapcount: folioMapcount(core, head),
      pincount: m.pincount[head],
      flags: pageFlagNames(flags),
      zone: zoneDevice ? 'device' : 'normal',
      pgmap: pgmap ? { id: pgmap.id, name: pgmap.name, type: memoryTypeName(pgmap.type) } : null,
    },
  };
}
