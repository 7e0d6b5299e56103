import { EFAULT, ENOMEM, EPERM, FOLL_LONGTERM, FOLL_WRITE, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import {
  type Core,
  FAULT_FLAG_WRITE,
  MEMORY_DEVICE_COHERENT,
  VM_FAULT_ERROR,
  VM_FAULT_OOM,
} from '../core.js';
import { folioGet, folioPut, folioTrylock, folioUnlock } from '../folio.js';
import {
  _PAGE_PRESENT,
  _PAGE_RW,
  entryHuge,
  entryPfn,
  mkHi,
  mkSwpLo,
  SWP_DEVICE_EXCLUSIVE,
} from '../pgtable/entry.js';
import { PG_anon, PG_anon_exclusive, PG_zone_device } from '../phys/memmap.js';
import { handleMmFault } from './fault.js';
import { splitHugePmdLocked } from './huge.js';
import { withInvalidation } from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import { MMU_NOTIFY_EXCLUSIVE, type MmStruct, VM_IO, VM_PFNMAP, VM_READ, VM_WRITE } from './types.js';

/** Models GUP_PIN_COUNTING_BIAS bookkeeping: FOLL_PIN references are also counted in pincount. */
export const FOLL_PIN = 0x40000;

/**
 * Models follow_page_mask(): the pfn mapped at addr with the access gup needs, or -1 when a
 * fault is needed (not present, device-private, migration entry, read-only for FOLL_WRITE).
 */
function followPage(core: Core, mm: MmStruct, addr: number, write: boolean): number {
  const pmdT = pmdTableOf(core, mm, addr, false);
  if (pmdT < 0) return -1;
  const mi = pmdIndex(addr);
  const lo = ptLo(core, pmdT, mi);
  if (!(lo & _PAGE_PRESENT)) return -1;
  if (entryHuge(lo)) {
    if (write && !(lo & _PAGE_RW)) return -1;
    return entryPfn(lo, ptHi(core, pmdT, mi)) + pteIndex(addr);
  }
  const t = entryPfn(lo, ptHi(core, pmdT, mi));
  const plo = ptLo(core, t, pteIndex(addr));
  if (!(plo & _PAGE_PRESENT)) return -1;
  if (write && !(plo & _PAGE_RW)) return -1;
  return entryPfn(plo, ptHi(core, t, pteIndex(addr)));
}

/** Hooks other layers install for GUP (avoids an upward import from mm core). */
export interface GupHooks {
  /** Models migrate_device_coherent_folio() (mm/migrate_device.c): 0 or -EBUSY. */
  migrateDeviceCoherentFolio?(core: Core, head: number): number;
}

const gupHooks = new WeakMap<Core, GupHooks>();

/** Installs GUP hooks for a core (the migrate-vma package installs migrate_device_coherent_folio). */
export function setGupHooks(core: Core, hooks: GupHooks): void {
  gupHooks.set(core, { ...gupHooks.get(core), ...hooks });
}

/**
 * Models __get_user_pages() + check_and_migrate_movable_folios(): fault in and take a
 * reference (FOLL_GET) or a pin (FOLL_PIN, counted in pincount) on each of nr pages from addr.
 * FOLL_LONGTERM pins on device-coherent pages first migrate them to system memory. Returns the
 * pfns taken (fewer than nr on a partial failure, as the kernel returns a short count) or
 * -errno when the first page fails.
 */
export function getUserPages(
  core: Core,
  mm: MmStruct,
  addr: number,
  nr: number,
  gupFlags: number,
): number[] | number {
  const write = (gupFlags & FOLL_WRITE) !== 0;
  const out: number[] = [];
  for (let k = 0; k < nr; k++) {
    const a = addr + k * PAGE_SIZE;
    const vma = mm.vmaLookup(a);
    const fail = (e: number) => (out.length ? out : e);
    if (!vma || vma.flags & (VM_IO | VM_PFNMAP)) return fail(-EFAULT);
    if (write ? !(vma.flags & VM_WRITE) : !(vma.flags & VM_READ)) return fail(-EFAULT);
    let pfn = -1;
    for (let tries = 0; tries < 16 && pfn < 0; tries++) {
      pfn = followPage(core, mm, a, write);
      if (pfn >= 0) break;
      const r = handleMmFault(core, vma, a, write ? FAULT_FLAG_WRITE : 0);
      if (r & VM_FAULT_OOM) return fail(-ENOMEM);
      if (r & VM_FAULT_ERROR) return fail(-EFAULT);
    }
    if (pfn < 0) return fail(-EFAULT);
    const m = core.map;
    let head = m.head[pfn];
    if (
      gupFlags & FOLL_LONGTERM &&
      m.flags[head] & PG_zone_device &&
      core.pgmapOf(head)?.type === MEMORY_DEVICE_COHERENT
    ) {
      // Models check_and_migrate_movable_folios(): coherent memory cannot be pinned long-term.
      const mig = gupHooks.get(core)?.migrateDeviceCoherentFolio;
      // migrate_longterm_unpinnable_folios(): the migration consumes a reference we hold.
      if (!mig) return fail(-ENOMEM);
      folioGet(core, head);
      if (mig(core, head) < 0) return fail(-ENOMEM);
      k--;
      continue;
    }
    if (pfn === core.zeroPfn && write) return fail(-EFAULT);
    head = m.head[pfn];
    folioGet(core, head);
    if (gupFlags & FOLL_PIN) m.pincount[head]++;
    out.push(pfn);
  }
  return out;
}

/** Models put_page()/unpin_user_page() for pages from {@link getUserPages}. */
export function putUserPages(core: Core, pfns: readonly number[], gupFlags: number): void {
  for (const pfn of pfns) {
    const head = core.map.head[pfn];
    if (gupFlags & FOLL_PIN) core.map.pincount[head]--;
    folioPut(core, head);
  }
}

/**
 * Models make_device_exclusive() (mm/rmap.c): fault the page in writable, then replace its
 * PTE with a device-exclusive entry (MMU_NOTIFY_EXCLUSIVE carrying `owner`, so the requesting
 * driver can ignore its own invalidation). The folio stays mapped (rmap and reference kept).
 * Returns the pfn with the folio locked and an extra reference the caller drops, or -errno.
 */
export function makeDeviceExclusive(core: Core, mm: MmStruct, addr: number, owner: unknown): number {
  const pages = getUserPages(core, mm, addr, 1, FOLL_WRITE);
  if (typeof pages === 'number') return pages;
  if (pages.length === 0) return -EFAULT;
  const pfn = pages[0];
  const m = core.map;
  const head = m.head[pfn];
  if (!(m.flags[head] & PG_anon) || m.flags[head] & PG_zone_device) {
    folioPut(core, head);
    return -EPERM;
  }
  if (!folioTrylock(core, head)) {
    folioPut(core, head);
    return -EPERM;
  }
  const vma = mm.vmaLookup(addr)!;
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  const pmdT = pmdTableOf(core, mm, addr, false);
  if (pmdT >= 0 && entryHuge(ptLo(core, pmdT, pmdIndex(addr)))) {
    withInvalidation(mm, haddr, haddr + PMD_SIZE, 1, null, () =>
      splitHugePmdLocked(core, vma, pmdT, haddr, false),
    );
  }
  const pteT = pteTableOf(core, mm, addr, false);
  const i = pteIndex(addr);
  withInvalidation(mm, addr, addr + PAGE_SIZE, MMU_NOTIFY_EXCLUSIVE, owner, () => {
    const lo = ptLo(core, pteT, i);
    const soft = lo & (1 << 11);
    ptSet(core, pteT, i, mkSwpLo(SWP_DEVICE_EXCLUSIVE, pfn, soft), mkHi(pfn));
    m.flags[pfn] |= PG_anon_exclusive;
  });
  return pfn;
}

/** Releases what {@link makeDeviceExclusive} returned (folio_unlock() + folio_put()). */
export function releaseDeviceExclusive(core: Core, pfn: number): void {
  const head = core.map.head[pfn];
  folioUnlock(core, head);
  folioPut(core, head);
}
