import {
  type Core,
  type DevPagemap,
  type DevPagemapOps,
  EINVAL,
  ENOMEM,
  ENXIO,
  ERANGE,
  type KGen,
  MAX_PHYS_PFN,
  MEMORY_DEVICE_COHERENT,
  MEMORY_DEVICE_FS_DAX,
  MEMORY_DEVICE_GENERIC,
  MEMORY_DEVICE_PCI_P2PDMA,
  MEMORY_DEVICE_PRIVATE,
  type MemoryType,
  ModelBug,
  PAGES_PER_SECTION,
  PG_zone_device,
  RAM_START_PFN,
  waitEvent,
} from '@hmm-model/mm-core';

/** Models PAGES_PER_SECTION (x86-64 SECTION_SIZE_BITS 27: 128 MiB sections of 4 KiB pages); re-exported from mm-core. */
export { PAGES_PER_SECTION };

/** Largest pgmap index the memmap's pgmap field can hold (it is a 16-bit array). */
const MAX_PGMAP_ID = 0xffff;

/**
 * Models struct dev_pagemap as a driver fills it before memremap_pages(): the memory type, the
 * owner (opaque cookie matched by migrate_vma and hmm_range_fault), the ops and the range size.
 */
export interface MemremapOptions {
  /** pgmap->type (enum memory_type). */
  readonly type: MemoryType;
  /** pgmap->owner: required for DEVICE_PRIVATE and DEVICE_COHERENT. */
  readonly owner: unknown;
  /** pgmap->ops. */
  readonly ops: DevPagemapOps;
  /** range_len(&pgmap->range) in pages. */
  readonly nrPages: number;
  /** Resource name, e.g. "hmm_dmirror" (for inspection). */
  readonly name: string;
  /**
   * A fixed start pfn (a device-coherent driver's special-purpose memory address). Without it
   * the range comes from the free physical address space (request_free_mem_region()).
   */
  readonly startPfn?: number;
}

/**
 * Models request_free_mem_region(): the next free section-aligned pfn range above RAM, or
 * -ERANGE when the physical address space (MAX_PHYSMEM_BITS) has no room left.
 */
function reserveFreeRange(core: Core, nrPages: number): number {
  // A released region first, the lowest that is large enough (the model searches upwards).
  const freed = core.freedDeviceRanges;
  const need = Math.ceil(nrPages / PAGES_PER_SECTION) * PAGES_PER_SECTION;
  for (let i = 0; i < freed.length; i += 2) {
    const lo = freed[i];
    if (freed[i + 1] - lo < need) continue;
    if (freed[i + 1] - lo === need) freed.splice(i, 2);
    else freed[i] = lo + need;
    return lo;
  }
  const start = Math.ceil(core.nextDevicePfn / PAGES_PER_SECTION) * PAGES_PER_SECTION;
  if (start + nrPages > MAX_PHYS_PFN) return -ERANGE;
  core.nextDevicePfn = Math.ceil((start + nrPages) / PAGES_PER_SECTION) * PAGES_PER_SECTION;
  return start;
}

/**
 * Models release_mem_region() of a region request_free_mem_region() gave: its sections are free
 * again (kept sorted, with neighbours merged).
 */
function releaseFreeRange(core: Core, start: number, end: number): void {
  const freed = core.freedDeviceRanges;
  const hi = Math.ceil(end / PAGES_PER_SECTION) * PAGES_PER_SECTION;
  let i = 0;
  while (i < freed.length && freed[i] < start) i += 2;
  freed.splice(i, 0, start, hi);
  if (i + 2 < freed.length && freed[i + 1] === freed[i + 2]) freed.splice(i + 1, 2);
  if (i > 0 && freed[i - 1] === freed[i]) freed.splice(i - 1, 2);
}

/** Models the get_dev_pagemap() conflict check of pagemap_range(): a registered pgmap overlapping the range. */
function conflictingPgmap(core: Core, start: number, nrPages: number): DevPagemap | undefined {
  for (const pgmap of core.pgmaps) {
    if (pgmap && pgmap.startPfn < start + nrPages && start < pgmap.endPfn) return pgmap;
  }
  return undefined;
}

/**
 * Models memremap_pages() (mm/memremap.c): validate the pgmap, reserve its pfn range, create
 * the ZONE_DEVICE struct pages (memmap_init_zone_device()) with their pgmap set, and register
 * the pgmap. Returns the live DevPagemap (refs 0) or -errno. DEVICE_PRIVATE needs migrate_to_ram,
 * folio_free and an owner; DEVICE_COHERENT needs folio_free and an owner (-EINVAL + WARN). A
 * range beyond MAX_PHYSMEM_BITS is -ERANGE; a memmap the host cannot hold is -ENOMEM (as
 * sparse_add_section() failing to allocate it). The memmap is written only for the range's own
 * pfns (host memory proportional to the pgmap, not to the physical address).
 */
export function memremapPages(core: Core, opts: MemremapOptions): DevPagemap | number {
  const { type, owner, ops, nrPages, name } = opts;
  switch (type) {
    case MEMORY_DEVICE_PRIVATE:
      if (!ops.migrateToRam) {
        core.warn('memremap_pages: missing migrate_to_ram method');
        return -EINVAL;
      }
      if (!ops.folioFree) {
        core.warn('memremap_pages: missing folio_free method');
        return -EINVAL;
      }
      if (!owner) {
        core.warn('memremap_pages: missing owner');
        return -EINVAL;
      }
      break;
    case MEMORY_DEVICE_COHERENT:
      if (!ops.folioFree) {
        core.warn('memremap_pages: missing folio_free method');
        return -EINVAL;
      }
      if (!owner) {
        core.warn('memremap_pages: missing owner');
        return -EINVAL;
      }
      break;
    case MEMORY_DEVICE_FS_DAX:
    case MEMORY_DEVICE_GENERIC:
    case MEMORY_DEVICE_PCI_P2PDMA:
      break;
    default:
      core.warn(`memremap_pages: invalid pgmap type ${type as number}`);
      return -EINVAL;
  }
  if (!Number.isInteger(nrPages) || nrPages <= 0) {
    core.warn('memremap_pages: empty range');
    return -EINVAL;
  }
  // The lowest free slot of the pgmap table: a removed pgmap's id is used again.
  let id = core.pgmaps.indexOf(undefined, 1);
  if (id < 0) id = core.pgmaps.length;
  if (id > MAX_PGMAP_ID) return -ENOMEM;
  let start: number;
  if (opts.startPfn !== undefined) {
    start = opts.startPfn;
    if (!Number.isInteger(start) || start <= 0) return -EINVAL;
    if (start + nrPages > MAX_PHYS_PFN) return -ERANGE;
    // Models region_intersects() == REGION_INTERSECTS against System RAM.
    if (start < RAM_START_PFN + core.ramPages && start + nrPages > RAM_START_PFN) return -ENXIO;
    if (conflictingPgmap(core, start, nrPages)) {
      core.warn('memremap_pages: Conflicting mapping in same section');
      return -ENOMEM;
    }
    core.nextDevicePfn = Math.max(
      core.nextDevicePfn,
      Math.ceil((start + nrPages) / PAGES_PER_SECTION) * PAGES_PER_SECTION,
    );
  } else {
    start = reserveFreeRange(core, nrPages);
    if (start < 0) return start;
  }
  const freeRegion = opts.startPfn === undefined;
  const pgmap: DevPagemap = {
    id,
    type,
    owner,
    ops,
    startPfn: start,
    endPfn: start + nrPages,
    refs: 0,
    dying: false,
    name,
    freeRegion,
  };
  try {
    core.map.initRange(start, nrPages, PG_zone_device);
  } catch (e) {
    if (freeRegion) releaseFreeRange(core, start, start + nrPages);
    if (e instanceof RangeError) return -ENOMEM;
    throw e;
  }
  core.map.pgmap.fill(id, start, start + nrPages);
  core.pgmaps[id] = pgmap;
  return pgmap;
}

/**
 * Models memunmap_pages() (mm/memremap.c): kill the pgmap's percpu ref, wait until every device
 * page is free (wait_for_completion(&pgmap->done): a page that is never freed makes the task wait
 * forever, which the scheduler reports as a deadlock), then tear down the struct pages (the pfns
 * stop being valid).
 */
export function* memunmapPages(core: Core, pgmap: DevPagemap): KGen {
  if (core.pgmaps[pgmap.id] !== pgmap)
    throw new ModelBug(`memunmap_pages: pgmap ${pgmap.id} (${pgmap.name}) is not registered`);
  pgmap.dying = true;
  yield* waitEvent(
    `memunmap_pages: ${pgmap.refs} device page(s) of pgmap ${pgmap.id} (${pgmap.name}) still allocated`,
    () => pgmap.refs === 0,
  );
  // Models arch_remove_memory()/pageunmap_range(): the section and its memmap go away.
  core.map.removeRange(pgmap.startPfn, pgmap.endPfn - pgmap.startPfn);
  core.pgmaps[pgmap.id] = undefined;
  if (pgmap.freeRegion) releaseFreeRange(core, pgmap.startPfn, pgmap.endPfn);
}

/** Models pgmap_pfn_valid(): pfn lies inside the pgmap's range. */
export function pgmapPfnValid(pgmap: DevPagemap, pfn: number): boolean {
  return pfn >= pgmap.startPfn && pfn < pgmap.endPfn;
}

/**
 * Models get_dev_pagemap(pfn): the live pgmap whose range covers pfn (looked up by range, as the
 * kernel's pgmap_array xarray does, not through the struct page), or undefined.
 */
export function getDevPagemap(core: Core, pfn: number): DevPagemap | undefined {
  for (const pgmap of core.pgmaps) {
    if (pgmap && !pgmap.dying && pgmapPfnValid(pgmap, pfn)) return pgmap;
  }
  return undefined;
}
