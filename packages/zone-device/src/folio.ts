import {
  type Core,
  type DevPagemap,
  dumpFolio,
  FOLIO_FLAGS,
  MAX_PAGE_ORDER,
  MEMORY_DEVICE_COHERENT,
  MEMORY_DEVICE_PRIVATE,
  ModelBug,
  PG_head,
  PG_locked,
  PG_tail,
  PG_writeback,
  PG_zone_device,
  prepCompound,
} from '@hmm-model/mm-core';

/** Models MAX_ORDER_NR_PAGES (1 << MAX_PAGE_ORDER). */
export const MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER;

/**
 * The flag bits zone_device_page_init() scrubs: the kernel clears the low flag byte (locked,
 * writeback, referenced, uptodate, dirty, lru, head, waiters) on every page, which also wipes a
 * stale order or head marker; the model keeps the tail marker and the other per-folio bits in
 * separate bits and clears them too (the kernel's tail marker lives in the compound_head word,
 * which setting pgmap overwrites).
 */
const SCRUB_FLAGS = FOLIO_FLAGS | PG_head | PG_tail | PG_writeback;

/** Models is_zone_device_page(). */
export function isZoneDevicePage(core: Core, pfn: number): boolean {
  return core.map.valid(pfn) && (core.map.flags[pfn] & PG_zone_device) !== 0;
}

/**
 * Models page_pgmap() / folio->pgmap: the pgmap of the folio containing pfn (the head's, as
 * tail pages share the storage with compound_head), or undefined for a non-device page.
 */
export function pageDevPagemap(core: Core, pfn: number): DevPagemap | undefined {
  if (!isZoneDevicePage(core, pfn)) return undefined;
  return core.pgmapOf(core.map.head[pfn]);
}

/** Models is_device_private_page(). */
export function isDevicePrivatePage(core: Core, pfn: number): boolean {
  return pageDevPagemap(core, pfn)?.type === MEMORY_DEVICE_PRIVATE;
}

/** Models is_device_coherent_page(). */
export function isDeviceCoherentPage(core: Core, pfn: number): boolean {
  return pageDevPagemap(core, pfn)?.type === MEMORY_DEVICE_COHERENT;
}

/** Models folio_is_device_coherent(). */
export function folioIsDeviceCoherent(core: Core, head: number): boolean {
  return isDeviceCoherentPage(core, head);
}

function initPages(core: Core, pfn: number, pgmap: DevPagemap, order: number, rmappable: boolean): void {
  const m = core.map;
  if (order > MAX_ORDER_NR_PAGES) core.warn(`zone_device_page_init: order ${order} > MAX_ORDER_NR_PAGES`);
  if (pfn < pgmap.startPfn || pfn + (1 << order) > pgmap.endPfn)
    throw new ModelBug(
      `zone_device_page_init: pfns 0x${pfn.toString(16)}+${1 << order} outside pgmap ${pgmap.id} (${pgmap.name})`,
    );
  const n = 1 << order;
  for (let i = 0; i < n; i++) {
    const p = pfn + i;
    // Clear a possible stale order / head marker left by a previous, larger folio.
    m.flags[p] &= ~SCRUB_FLAGS;
    m.order[p] = 0;
    m.head[p] = p;
    m.mapping[p] = 0;
    m.pgmap[p] = pgmap.id;
    m.index[p] = 0;
    m.mapcount[p] = 0;
    m.entireMapcount[p] = 0;
    m.largeMapcount[p] = 0;
    m.pincount[p] = 0;
    if (m.refcount[p] !== 0)
      core.warn(`zone_device_page_init: refcount ${m.refcount[p]} ${dumpFolio(core, p)}`);
    if (!(m.flags[p] & PG_zone_device))
      core.warn(`zone_device_page_init: not ZONE_DEVICE ${dumpFolio(core, p)}`);
  }
  // Models percpu_ref_tryget_many(&pgmap->ref, 1 << order): one pgmap reference per page.
  if (pgmap.dying)
    core.warn(`zone_device_page_init: allocation from dying pgmap ${pgmap.id} (${pgmap.name})`);
  pgmap.refs += n;
  m.refcount[pfn] = 1;
  if (order > 0) prepCompound(core, pfn, order, rmappable);
  // Models lock_page(): the fresh folio cannot be locked by anybody else.
  m.flags[pfn] |= PG_locked;
  core.folioLockOwners.set(pfn, core.current);
  core.events.folioLocks++;
}

/**
 * Models zone_device_page_init(page, pgmap, order) (mm/memremap.c): scrub every page of the
 * 1 << order range (flags low bits, head link, mapping, pgmap, mapcounts), take 1 << order
 * pgmap references, set refcount 1, lock the page, and make it compound if order > 0.
 */
export function zoneDevicePageInit(core: Core, pfn: number, pgmap: DevPagemap, order = 0): void {
  initPages(core, pfn, pgmap, order, false);
}

/**
 * Models zone_device_folio_init(folio, pgmap, order) (include/linux/memremap.h): as
 * zone_device_page_init(), and a large folio is also marked large-rmappable. The folio is
 * returned locked with refcount 1.
 */
export function zoneDeviceFolioInit(core: Core, head: number, pgmap: DevPagemap, order: number): void {
  initPages(core, head, pgmap, order, true);
}

function checkPrivate(core: Core, head: number, what: string): void {
  if (!isDevicePrivatePage(core, head))
    core.warn(`${what}: folio is not device-private ${dumpFolio(core, head)}`);
}

/** Models folio_zone_device_data() (include/linux/memremap.h): the driver word of a device-private folio. */
export function folioZoneDeviceData(core: Core, head: number): number {
  checkPrivate(core, head, 'folio_zone_device_data');
  return core.map.priv[head];
}

/** Models folio_set_zone_device_data() (include/linux/memremap.h). */
export function folioSetZoneDeviceData(core: Core, head: number, value: number): void {
  checkPrivate(core, head, 'folio_set_zone_device_data');
  core.map.priv[head] = value;
}

/**
 * Models zone_device_private_split_cb() (include/linux/memremap.h): during a split of a
 * device-private folio, call the driver's folio_split op for each new folio (tail pfn) and once
 * with tail = -1 at the end; without the op, copy pgmap and mapping from the original head.
 */
export function zoneDevicePrivateSplitCb(core: Core, origHead: number, newHead: number): void {
  const pgmap = core.pgmapOf(origHead);
  if (pgmap?.type !== MEMORY_DEVICE_PRIVATE) return;
  if (pgmap.ops.folioSplit) {
    pgmap.ops.folioSplit(origHead, newHead);
    return;
  }
  if (newHead < 0) return;
  core.map.pgmap[newHead] = core.map.pgmap[origHead];
  core.map.mapping[newHead] = core.map.mapping[origHead];
}
