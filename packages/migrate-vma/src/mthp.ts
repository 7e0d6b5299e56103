/**
 * Model extension (issue 9; the series' cover letter, "future work"): device migration of
 * PTE-mapped large folios below the PMD order (mTHP) as compound units of their own order.
 * v6.19 splits every PTE-mapped large folio it meets during collection
 * (migrate_vma_split_folio()) and knows only PMD-sized compound units. With `mthpOrders` set on
 * the `struct migrate_vma`, a driver opts in per order; the cover letter's four steps map onto:
 *
 * 1. the driver declares the orders it can allocate (`mthpOrders`, checked by
 *    migrate_vma_setup(): only orders 2 .. HPAGE_PMD_ORDER - 1, and only with
 *    MIGRATE_VMA_SELECT_COMPOUND);
 * 2. collection keeps a PTE-mapped large folio whole when its order is declared, the folio is
 *    naturally aligned, lies inside the range and every one of its PTEs maps it in order
 *    ({@link collectMthpUnit});
 * 3. the driver fills dst with a folio of the highest order it can get, down to 0 (its own
 *    negotiation), and migrate_vma_pages() splits the source to that order in the middle of the
 *    migration ({@link splitMthpForMigrate});
 * 4. migrate_vma_pages() and migrate_vma_finalize() migrate and remap each piece (unchanged:
 *    they already handle folios of any size).
 *
 * With `mthpOrders` 0 (the default) nothing here runs and behaviour is v6.19's.
 */

import {
  _PAGE_RW,
  _PAGE_SPECIAL,
  type Core,
  EINVAL,
  entryNone,
  entryPfn,
  entryPresent,
  folioGet,
  folioMaybeDmaPinned,
  folioPut,
  folioSplitUnmapped,
  folioTrylock,
  folioUnlock,
  HPAGE_PMD_ORDER,
  isDevicePrivateType,
  PAGE_SIZE,
  pteIndex,
  pteTableOf,
  ptHi,
  ptLo,
  SWP_DEVICE_WRITE,
  setPteMigrationEntry,
  swpType,
  type Vma,
} from '@hmm-model/mm-core';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  type MigrateVma,
  migratePfn,
  mpfnFlags,
} from './types.js';

/** The orders `mthpOrders` may name: 2 .. HPAGE_PMD_ORDER - 1 (order 1 is never anonymous). */
export const MTHP_ORDERS_VALID = ((1 << HPAGE_PMD_ORDER) - 1) & ~0b11;

/** migrate_vma_setup()'s check of the extension: 0 or -EINVAL. */
export function mthpOrdersCheck(mig: MigrateVma): number {
  const o = mig.mthpOrders;
  if (!o) return 0;
  if (!Number.isInteger(o) || o < 0 || o & ~MTHP_ORDERS_VALID) return -EINVAL;
  if (!(mig.flags & MIGRATE_VMA_SELECT_COMPOUND)) return -EINVAL;
  return 0;
}

/**
 * Would the collection keep the large folio `folio` (mapped at `addr` by PTE table pteT) as one
 * compound unit? Its order is declared, the walk is at its first page, the folio's span is
 * naturally aligned and inside [addr, end), and each of its PTEs maps the next page of it the
 * same way (present for system memory, a device-private entry for device memory). Returns the
 * unit's MIGRATE_PFN_WRITE (set when every PTE is writable), or -1.
 */
function mthpUnitWrite(
  core: Core,
  mig: MigrateVma,
  pteT: number,
  addr: number,
  end: number,
  folio: number,
): number {
  const m = core.map;
  const order = m.folioOrder(folio);
  if (order >= HPAGE_PMD_ORDER || !(mig.mthpOrders & (1 << order))) return -1;
  const nr = 1 << order;
  if (addr % (nr * PAGE_SIZE) !== 0 || addr + nr * PAGE_SIZE > end) return -1;
  return unitPtesWrite(core, pteT, pteIndex(addr), folio, nr);
}

/**
 * The PTE half of {@link mthpUnitWrite}: entries first.. of table pteT map pages folio + k in
 * order, each the same way (present and not special, or a device-private entry). The unit's
 * MIGRATE_PFN_WRITE (set when every entry is writable), or -1.
 */
function unitPtesWrite(core: Core, pteT: number, first: number, folio: number, nr: number): number {
  let write = MIGRATE_PFN_WRITE;
  for (let k = 0; k < nr; k++) {
    const lo = ptLo(core, pteT, first + k);
    const hi = ptHi(core, pteT, first + k);
    if (entryNone(lo, hi) || entryPfn(lo, hi) !== folio + k) return -1;
    if (entryPresent(lo)) {
      if (lo & _PAGE_SPECIAL) return -1;
      if (!(lo & _PAGE_RW)) write = 0;
    } else {
      const t = swpType(lo);
      if (!isDevicePrivateType(t)) return -1;
      if (t !== SWP_DEVICE_WRITE) write = 0;
    }
  }
  return write;
}

/**
 * Model extension (no kernel counterpart): whether the PTEs of vma at [start, start + the
 * folio's size) map the large folio `folio` page by page, in order (present for system memory,
 * a device-private entry for device memory). A CPU fault may ask to migrate such a range as one
 * unit (test-hmm's dmirror_devmem_fault()). Counting the folio's mappings is not enough: mremap()
 * can move one of its PTEs elsewhere and leave the count whole. Read without the PTE lock, so the
 * answer can be stale: the collection checks again under the lock ({@link collectMthpUnit}).
 */
export function mthpMappedAsUnit(core: Core, vma: Vma, start: number, folio: number): boolean {
  const nr = core.map.folioNrPages(folio);
  if (start < vma.start || start + nr * PAGE_SIZE > vma.end) return false;
  const first = pteIndex(start);
  if (first + nr > 512) return false;
  const pteT = pteTableOf(core, vma.mm, start, false);
  return pteT >= 0 && unitPtesWrite(core, pteT, first, folio, nr) >= 0;
}

/**
 * Model extension of migrate_vma_collect_pmd() under the PTE lock (step 2): collect the large
 * folio met at addr as one compound unit when {@link mthpUnitWrite} allows it. The folio is
 * locked (the fault folio is already) and every PTE becomes a migration entry. Returns the head
 * slot (MIGRATE | COMPOUND | WRITE) of a migrating unit, 0 for a unit that does not migrate (it
 * may be pinned, or its lock is taken), or -1 when the folio is not a unit (the caller splits
 * it, as v6.19 does). The caller fills the head slot and folio_nr_pages() - 1 empty ones.
 */
export function collectMthpUnit(
  core: Core,
  mig: MigrateVma,
  vma: Vma,
  pteT: number,
  addr: number,
  end: number,
  folio: number,
  faultFolio: number,
): number {
  if (!mig.mthpOrders) return -1;
  const write = mthpUnitWrite(core, mig, pteT, addr, end, folio);
  if (write < 0) return -1;
  const nr = core.map.folioNrPages(folio);
  folioGet(core, folio);
  const isFault = folio === faultFolio;
  const locked = isFault || folioTrylock(core, folio);
  if (!locked || folioMaybeDmaPinned(core, folio)) {
    // Not migrating: an anon-exclusive page that may be pinned cannot become a migration
    // entry (set_pte_migration_entry() would refuse), and a busy folio is skipped.
    if (locked && !isFault) folioUnlock(core, folio);
    folioPut(core, folio);
    return 0;
  }
  for (let k = 0; k < nr; k++) setPteMigrationEntry(core, vma, pteT, addr + k * PAGE_SIZE);
  return migratePfn(folio) + (MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND | write);
}

/**
 * Model extension of __migrate_device_pages() (step 3): the source unit at slot idx (a
 * PTE-mapped large folio, unmapped by now) is bigger than the destination the driver found;
 * split it to the destination's order and spread the head slot's flags over the new heads.
 * 0, or -errno (the unit then stays in place).
 */
export function splitMthpForMigrate(
  core: Core,
  mig: MigrateVma,
  idx: number,
  folio: number,
  newOrder: number,
): number {
  const m = core.map;
  const total = m.folioNrPages(folio);
  // The fault handler's reference is one more than the migration's own.
  const faultIn = mig.faultPage >= 0 && m.head[mig.faultPage] === folio ? 1 : 0;
  const ret = folioSplitUnmapped(core, folio, newOrder, faultIn);
  if (ret) return ret;
  // The split leaves every reference of the old folio on its first piece; the fault handler's
  // belongs to the piece holding the faulting page (the one it unlocks and puts after
  // ->migrate_to_ram(), and the one finalize leaves locked), as migrate_vma_split_folio()
  // hands it over at PTE level.
  const faultHead = faultIn ? m.head[mig.faultPage] : folio;
  if (faultHead !== folio) {
    m.refcount[folio]--;
    m.refcount[faultHead]++;
  }
  const flags = newOrder ? mpfnFlags(mig.src[idx]) : mpfnFlags(mig.src[idx]) & ~MIGRATE_PFN_COMPOUND;
  const step = 1 << newOrder;
  for (let k = 0; k < total; k += step) mig.src[idx + k] = migratePfn(folio + k) - MIGRATE_PFN_VALID + flags;
  return 0;
}
