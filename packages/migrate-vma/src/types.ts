import type { Vma } from '@hmm-model/mm-core';

/** Models MIGRATE_PFN_VALID (include/linux/migrate.h): the slot carries a pfn. */
export const MIGRATE_PFN_VALID = 0x01;
/** Models MIGRATE_PFN_MIGRATE: the slot is selected / still migrating. */
export const MIGRATE_PFN_MIGRATE = 0x02;
/** Models MIGRATE_PFN_WRITE: the source mapping was writable. */
export const MIGRATE_PFN_WRITE = 0x08;
/** Models MIGRATE_PFN_COMPOUND: the slot heads a PMD-sized (HPAGE_PMD_NR pages) unit. */
export const MIGRATE_PFN_COMPOUND = 0x10;
/** Models MIGRATE_PFN_SHIFT: the pfn is stored as pfn << 6. */
export const MIGRATE_PFN_SHIFT = 6;
const FLAG_SPAN = 1 << MIGRATE_PFN_SHIFT;

/** Models MIGRATE_VMA_SELECT_SYSTEM (enum migrate_vma_direction). */
export const MIGRATE_VMA_SELECT_SYSTEM = 1 << 0;
/** Models MIGRATE_VMA_SELECT_DEVICE_PRIVATE. */
export const MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 1 << 1;
/** Models MIGRATE_VMA_SELECT_DEVICE_COHERENT. */
export const MIGRATE_VMA_SELECT_DEVICE_COHERENT = 1 << 2;
/** Models MIGRATE_VMA_SELECT_COMPOUND. */
export const MIGRATE_VMA_SELECT_COMPOUND = 1 << 3;

/**
 * Models migrate_pfn(): encode a pfn as (pfn << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID.
 * Slots are JavaScript numbers (exact up to 2^53), so the shift is a multiplication.
 */
export function migratePfn(pfn: number): number {
  return pfn * FLAG_SPAN + MIGRATE_PFN_VALID;
}

/** Models `mpfn & ((1UL << MIGRATE_PFN_SHIFT) - 1)`: the flag bits (low 6 bits) of a slot. */
export function mpfnFlags(v: number): number {
  // ToInt32 keeps v mod 2^32 exactly for integers below 2^53, and 2^32 is a multiple of the
  // flag span: the same bits as `v % FLAG_SPAN` without a floating-point fmod() per call.
  return v & (FLAG_SPAN - 1);
}

/** Models migrate_pfn_to_page(): the pfn of a slot, or -1 when MIGRATE_PFN_VALID is clear. */
export function migratePfnToPage(v: number): number {
  if (!(mpfnFlags(v) & MIGRATE_PFN_VALID)) return -1;
  return Math.floor(v / FLAG_SPAN);
}

/** Models `mpfn |= flags` on a migrate pfn slot: returns the new slot. */
export function mpfnSet(v: number, flags: number): number {
  return v - mpfnFlags(v) + (mpfnFlags(v) | flags);
}

/** Models `mpfn &= ~flags` on a migrate pfn slot: returns the new slot. */
export function mpfnClear(v: number, flags: number): number {
  return v - mpfnFlags(v) + (mpfnFlags(v) & ~flags);
}

/**
 * Models struct migrate_vma (include/linux/migrate.h). `src`/`dst` hold one slot per page of
 * [start, end); only the head slot of a compound unit carries information.
 */
export interface MigrateVma {
  /** vma: the VMA covering [start, end) (migrate_vma_setup() rejects a missing or special one). */
  vma: Vma | null;
  /** dst: driver-filled destination slots (migrate_pfn(dst_pfn) | flags). */
  dst: Float64Array;
  /** src: filled by migrate_vma_setup(). */
  src: Float64Array;
  /** cpages: collected units (1 per THP / compound hole / small page). */
  cpages: number;
  /** npages: slots filled by the collection. */
  npages: number;
  start: number;
  end: number;
  /** pgmap_owner: device pages are selected only when their pgmap owner matches. */
  pgmapOwner: unknown;
  /** flags: MIGRATE_VMA_SELECT_*. */
  flags: number;
  /** fault_page: pfn of the locked device page a CPU fault is migrating, or -1. */
  faultPage: number;
  /**
   * Model extension (not in v6.19; see mthp.ts): a bit per folio order below HPAGE_PMD_ORDER
   * (2 .. 8) that the driver migrates whole. A PTE-mapped large folio of such an order is
   * collected as one compound unit instead of being split. 0 (the default) is v6.19.
   */
  mthpOrders: number;
}

/** Models a zeroed on-stack struct migrate_vma and its src/dst arrays for [start, end). */
export function newMigrateVma(fields: Partial<MigrateVma> & { start: number; end: number }): MigrateVma {
  const n = Math.max(0, Math.round((fields.end - fields.start) / 4096));
  return {
    vma: fields.vma ?? null,
    src: fields.src ?? new Float64Array(n),
    dst: fields.dst ?? new Float64Array(n),
    cpages: 0,
    npages: 0,
    start: fields.start,
    end: fields.end,
    pgmapOwner: fields.pgmapOwner ?? null,
    flags: fields.flags ?? 0,
    faultPage: fields.faultPage ?? -1,
    mthpOrders: fields.mthpOrders ?? 0,
  };
}
