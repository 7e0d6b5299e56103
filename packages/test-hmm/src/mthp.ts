/**
 * Model extension (issue 9, not in lib/test_hmm.c): dmirror device folios of the mTHP orders
 * 2..8. A device declares the orders it can allocate (`DmirrorOptions.mthpOrders`); each has a
 * free list (linked through zone_device_data like free_pages and free_folios), filled by carving
 * a free PMD-order slot (or a new chunk) into pieces of that order. Migration to the device
 * negotiates the destination order from the source folio's order down through the declared
 * orders to base pages (the cover letter's step 3); the migrate_vma side is migrate-vma's
 * `mthpOrders`. With no orders declared nothing here runs.
 */

import {
  allocFolio,
  type Core,
  type DevPagemap,
  folioPut,
  folioUnlock,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  ModelBug,
  PG_locked,
} from '@hmm-model/mm-core';
import { zoneDeviceFolioInit } from '@hmm-model/zone-device';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_WRITE,
  type MigrateVma,
  MTHP_ORDERS_VALID,
  migratePfn,
  mpfnFlags,
} from './kapi.js';

/** Free device folios of the mTHP orders, one singly linked list per order (0 = NULL). */
export class MthpFreeLists {
  readonly heads: number[] = new Array<number>(HPAGE_PMD_ORDER).fill(0);
  readonly counts: number[] = new Array<number>(HPAGE_PMD_ORDER).fill(0);

  push(core: Core, pfn: number, order: number): void {
    core.map.priv[pfn] = this.heads[order];
    this.heads[order] = pfn;
    this.counts[order]++;
  }

  pop(core: Core, order: number): number {
    const pfn = this.heads[order];
    if (!pfn) return 0;
    this.heads[order] = core.map.priv[pfn];
    this.counts[order]--;
    return pfn;
  }

  /** Drops every listed folio for which `drop` holds (a chunk being removed). */
  filter(core: Core, drop: (pfn: number) => boolean): void {
    const m = core.map;
    for (let o = 0; o < HPAGE_PMD_ORDER; o++) {
      let keep = 0;
      let tail = 0;
      let n = 0;
      for (let p = this.heads[o]; p; ) {
        const next = m.priv[p];
        if (!drop(p)) {
          if (tail) m.priv[tail] = p;
          else keep = p;
          tail = p;
          n++;
        }
        p = next;
      }
      if (tail) m.priv[tail] = 0;
      this.heads[o] = keep;
      this.counts[o] = n;
    }
  }

  /** Free-list hygiene (as checkFreeLists() for the other lists): each entry free, aligned, once. */
  check(core: Core, path: string, seen: Set<number>, live: (pfn: number) => boolean): string[] {
    const m = core.map;
    const out: string[] = [];
    for (let o = 0; o < HPAGE_PMD_ORDER; o++)
      for (let p = this.heads[o]; p; p = m.priv[p]) {
        if (seen.has(p)) {
          out.push(`${path}: pfn 0x${p.toString(16)} listed twice`);
          break;
        }
        seen.add(p);
        if (!live(p)) out.push(`${path}: free order-${o} pfn 0x${p.toString(16)} not in a live chunk`);
        if (m.refcount[p] !== 0) out.push(`${path}: free order-${o} pfn 0x${p.toString(16)} has references`);
        if (m.flags[p] & PG_locked) out.push(`${path}: free order-${o} pfn 0x${p.toString(16)} is locked`);
        if (p % (1 << o)) out.push(`${path}: free order-${o} folio 0x${p.toString(16)} not aligned`);
      }
    return out;
  }
}

/** What the mTHP allocation needs of a dmirror device (implemented by DmirrorDevice). */
export interface MthpDevice {
  readonly core: Core;
  readonly isPrivate: boolean;
  readonly mthpOrders: number;
  readonly mthpFree: MthpFreeLists;
  calloc: number;
  /** Pops a free PMD-order slot (0 when none), taking a new chunk if the lists are empty. */
  takePmdSlot(): number;
  /** The pgmap of a device pfn. */
  pgmapOfPage(pfn: number): DevPagemap | undefined;
}

/** Checks a device's declared orders at module load: a clear error for anything but 2..8. */
export function mthpOrdersConfigError(orders: number): string | null {
  if (!Number.isInteger(orders) || orders < 0 || orders & ~MTHP_ORDERS_VALID)
    return `dmirror: mthpOrders 0x${orders.toString(16)} names orders outside 2..${HPAGE_PMD_ORDER - 1} (bits 0x${MTHP_ORDERS_VALID.toString(16)})`;
  return null;
}

/**
 * Model extension of dmirror_devmem_alloc_page() for an mTHP order: the backing system folio of
 * that order (private device), then a device folio from the order's free list, carving a free
 * PMD-order slot when the list is empty. Initialised (refcount 1, locked); the device pfn or -1.
 */
export function dmirrorAllocMthp(dev: MthpDevice, order: number): number {
  const core = dev.core;
  let rpage = 0;
  if (dev.isPrivate) {
    rpage = allocFolio(core, order, false);
    if (rpage < 0) return -1;
  }
  let dpage = dev.mthpFree.pop(core, order);
  if (!dpage) {
    const slot = dev.takePmdSlot();
    if (slot <= 0) {
      if (rpage) folioPut(core, rpage);
      return -1;
    }
    for (let p = slot + HPAGE_PMD_NR - (1 << order); p > slot; p -= 1 << order)
      dev.mthpFree.push(core, p, order);
    dpage = slot;
  }
  dev.calloc += 1 << order;
  const pgmap = dev.pgmapOfPage(dpage);
  if (!pgmap) throw new ModelBug(`dmirror: free device page 0x${dpage.toString(16)} has no pgmap`);
  zoneDeviceFolioInit(core, dpage, pgmap, order);
  core.map.priv[dpage] = rpage;
  return dpage;
}

/**
 * The destination of one compound source unit of an mTHP order at slot i (model extension of
 * dmirror_migrate_alloc_and_copy()): the highest declared order from the source's down that the
 * device can allocate in full (`allocate(order)`, which also applies FAIL_ALLOC), else base pages
 * for every subpage, else nothing. `fill(dpage, at, n)` copies source pages [at, at + n) into the
 * destination. Returns the order used, or -1 (the unit stays in system memory).
 */
export function negotiateMthpDst(
  core: Core,
  mig: MigrateVma,
  i: number,
  srcOrder: number,
  declared: number,
  allocate: (order: number) => number,
  fill: (dpage: number, at: number, n: number) => void,
): number {
  const write = mpfnFlags(mig.src[i]) & MIGRATE_PFN_WRITE;
  for (let o = srcOrder; o >= 0; o--) {
    if (o > 0 && !(declared & (1 << o))) continue;
    const got: number[] = [];
    for (let k = 0; k < 1 << (srcOrder - o); k++) {
      const d = allocate(o);
      if (d < 0) break;
      got.push(d);
    }
    if (got.length < 1 << (srcOrder - o)) {
      for (const d of got) {
        folioUnlock(core, d);
        folioPut(core, d);
      }
      continue;
    }
    got.forEach((d, k) => {
      const at = k << o;
      fill(d, at, 1 << o);
      mig.dst[i + at] = migratePfn(d) + write + (o > 0 ? MIGRATE_PFN_COMPOUND : 0);
    });
    return o;
  }
  return -1;
}
