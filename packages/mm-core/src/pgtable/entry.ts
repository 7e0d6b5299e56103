/**
 * Models the x86-64 page-table entry encodings (arch/x86/include/asm/pgtable_types.h) and the
 * software leaf ("swap" / softleaf) entries (include/linux/swapops.h, leafops.h).
 *
 * An entry is 64 bits stored as two 32-bit words, `lo` (bits 0..31) and `hi` (bits 32..63).
 *
 * Present entries (P=1, or PROTNONE=1 with P=0 for a PROT_NONE mapping):
 * | bit | name | meaning |
 * |---|---|---|
 * | 0 | _PAGE_PRESENT | CPU may access |
 * | 1 | _PAGE_RW | writable |
 * | 2 | _PAGE_USER | user accessible |
 * | 5 | _PAGE_ACCESSED | young |
 * | 6 | _PAGE_DIRTY | dirty |
 * | 7 | _PAGE_PSE | huge leaf (PMD level) |
 * | 8 | _PAGE_PROTNONE | present for the kernel, inaccessible to the CPU (P=0) |
 * | 9 | _PAGE_SPECIAL | no struct-page refcounting (zero page, special mappings) |
 * | 10 | _PAGE_UFFD_WP | userfaultfd write-protect |
 * | 11 | _PAGE_SOFT_DIRTY | soft-dirty |
 * | 12..51 | pfn | lo bits 12..31 = pfn bits 0..19; hi bits 0..19 = pfn bits 20..39 |
 * | 63 | _PAGE_NX | no execute |
 * A table pointer at PGD/PUD/PMD level is P|RW|USER|ACCESSED with the table's pfn and no PSE.
 *
 * Non-present software entries (P=0 and PROTNONE=0, entry non-zero):
 * | bit | meaning |
 * |---|---|
 * | 1..5 | swap type: 0..MAX_SWAPFILES-1 (23) a swap device; SWP_HWPOISON 24 ... SWP_PTE_MARKER 31 |
 * | 6 | SWP_MIG_YOUNG (migration entries only) |
 * | 7 | SWP_MIG_DIRTY (migration entries only) |
 * | 9 | _PAGE_SWP_EXCLUSIVE (swap-device entries only) |
 * | 10 | _PAGE_SWP_UFFD_WP |
 * | 11 | _PAGE_SWP_SOFT_DIRTY |
 * | 12..51 | offset: the pfn (the head pfn for PMD-level entries), or for a swap device the slot |
 * The same encoding is used at PMD level: any non-none non-present PMD is "huge" (pmd_is_huge()).
 * Swap-device entries exist at PTE level only (a PMD-mapped THP is split into 512 swap PTEs).
 *
 * x86 itself keeps the type in bits 59..63 and the inverted offset in bits 9..58, with
 * _PAGE_SWP_EXCLUSIVE in bit 3 (__swp_entry(), arch/x86/include/asm/pgtable_64.h); the model keeps
 * its own layout above, which carries the same fields. As in the kernel, slot 0 of every swap
 * device is its header and is never handed out, so no swap entry is pte_none() (type 0, offset 0).
 */
export const _PAGE_PRESENT = 1 << 0;
export const _PAGE_RW = 1 << 1;
export const _PAGE_USER = 1 << 2;
export const _PAGE_ACCESSED = 1 << 5;
export const _PAGE_DIRTY = 1 << 6;
export const _PAGE_PSE = 1 << 7;
export const _PAGE_PROTNONE = 1 << 8;
export const _PAGE_SPECIAL = 1 << 9;
export const _PAGE_UFFD_WP = 1 << 10;
export const _PAGE_SOFT_DIRTY = 1 << 11;
/** Models _PAGE_NX (bit 63, i.e. bit 31 of the high word). */
export const _PAGE_NX_HI = 1 << 31;
/** Models _PAGE_TABLE: the bits of a pointer to a lower-level table. */
export const _PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED;

export const SWP_MIG_YOUNG = 1 << 6;
export const SWP_MIG_DIRTY = 1 << 7;
/**
 * Models _PAGE_SWP_EXCLUSIVE (pte_swp_exclusive()): the page was PageAnonExclusive when it was
 * swapped out. Bit 9 in the model (bit 3 on x86, see the layout above).
 */
export const _PAGE_SWP_EXCLUSIVE = 1 << 9;
export const _PAGE_SWP_UFFD_WP = 1 << 10;
export const _PAGE_SWP_SOFT_DIRTY = 1 << 11;

/**
 * Models MAX_SWAPFILES (include/linux/swap.h): 1 << MAX_SWAPFILES_SHIFT (32) less the special
 * types (3 device, 3 migration, 1 hwpoison, 1 marker): swap devices use types 0..23.
 */
export const MAX_SWAPFILES = 24;
/** Models SWP_HWPOISON. */
export const SWP_HWPOISON = 24;
/** Models SWP_MIGRATION_READ. */
export const SWP_MIGRATION_READ = 25;
/** Models SWP_MIGRATION_READ_EXCLUSIVE. */
export const SWP_MIGRATION_READ_EXCLUSIVE = 26;
/** Models SWP_MIGRATION_WRITE. */
export const SWP_MIGRATION_WRITE = 27;
/** Models SWP_DEVICE_WRITE. */
export const SWP_DEVICE_WRITE = 28;
/** Models SWP_DEVICE_READ. */
export const SWP_DEVICE_READ = 29;
/** Models SWP_DEVICE_EXCLUSIVE. */
export const SWP_DEVICE_EXCLUSIVE = 30;
/** Models SWP_PTE_MARKER. */
export const SWP_PTE_MARKER = 31;

const PFN_LO_MASK = 0xfffff;

/** Models pte_pfn()/pmd_pfn()/swp_offset_pfn(): the pfn field of an entry. */
export function entryPfn(lo: number, hi: number): number {
  return (hi & PFN_LO_MASK) * 0x100000 + (lo >>> 12);
}

/** Low word for a pfn and low flag bits. */
export function mkLo(pfn: number, flags: number): number {
  return (((pfn & PFN_LO_MASK) << 12) | flags) >>> 0;
}

/** High word for a pfn (bits 20..39 of the pfn), optionally with NX. */
export function mkHi(pfn: number, nx = false): number {
  return ((Math.floor(pfn / 0x100000) & PFN_LO_MASK) | (nx ? _PAGE_NX_HI : 0)) >>> 0;
}

/** Models pte_none()/pmd_none(). */
export function entryNone(lo: number, hi: number): boolean {
  return lo === 0 && hi === 0;
}

/** Models pte_present()/pmd_present(): P or PROTNONE. */
export function entryPresent(lo: number): boolean {
  return (lo & (_PAGE_PRESENT | _PAGE_PROTNONE)) !== 0;
}

/** Models pmd_trans_huge() on a present PMD (a huge leaf rather than a table pointer). */
export function entryHuge(lo: number): boolean {
  return (lo & _PAGE_PSE) !== 0;
}

/** Models pte_write(). */
export function entryWrite(lo: number): boolean {
  return (lo & _PAGE_RW) !== 0;
}

/** Models softleaf_type()/swp_type() of a non-present entry. */
export function swpType(lo: number): number {
  return (lo >>> 1) & 31;
}

/** Models a softleaf (non-present, non-none) entry: is_swap_pte(). */
export function isSoftleaf(lo: number, hi: number): boolean {
  return !entryPresent(lo) && !entryNone(lo, hi);
}

/** Models softleaf_is_migration(). */
export function isMigrationType(type: number): boolean {
  return type === SWP_MIGRATION_READ || type === SWP_MIGRATION_READ_EXCLUSIVE || type === SWP_MIGRATION_WRITE;
}

/** Models softleaf_is_device_private(). */
export function isDevicePrivateType(type: number): boolean {
  return type === SWP_DEVICE_WRITE || type === SWP_DEVICE_READ;
}

/** Models softleaf_is_swap() / !non_swap_entry(): a type that names a swap device. */
export function isSwapType(type: number): boolean {
  return type < MAX_SWAPFILES;
}

/** Models swp_offset() of any software entry: the offset field (bits 12..51). */
export function swpOffset(lo: number, hi: number): number {
  return entryPfn(lo, hi);
}

/**
 * Models swp_entry_to_pte(swp_entry(type, offset)) with pte_swp_mkexclusive() /
 * pte_swp_mksoft_dirty() / pte_swp_mkuffd_wp() bits: the low word of a swap-device PTE (the
 * high word is mkHi(offset)).
 */
export function mkSwapPteLo(type: number, offset: number, bits = 0): number {
  return mkLo(
    offset,
    ((type & 31) << 1) | (bits & (_PAGE_SWP_EXCLUSIVE | _PAGE_SWP_UFFD_WP | _PAGE_SWP_SOFT_DIRTY)),
  );
}

/** Models pte_swp_exclusive(). */
export function pteSwpExclusive(lo: number): boolean {
  return (lo & _PAGE_SWP_EXCLUSIVE) !== 0;
}

/** Models make_*_entry(): the low word of a software entry of `type` for `pfn`. */
export function mkSwpLo(type: number, pfn: number, bits = 0): number {
  return mkLo(pfn, ((type & 31) << 1) | bits);
}

/** Entry kinds, as a debugger or the shell names them. */
export type EntryKind =
  | 'none'
  | 'table'
  | 'present'
  | 'protnone'
  | 'huge'
  | 'zero'
  | 'huge-zero'
  | 'migration-read'
  | 'migration-read-exclusive'
  | 'migration-write'
  | 'device-private-read'
  | 'device-private-write'
  | 'device-exclusive'
  | 'hwpoison'
  | 'marker'
  | 'swap';

/** Names the kind of an entry at a level ('pte' or 'pmd'); `zeroPfn`/`hugeZeroPfn` identify zero pages. */
export function entryKind(
  lo: number,
  hi: number,
  level: 'pte' | 'pmd' | 'pud' | 'pgd',
  zeroPfn: number,
  hugeZeroPfn: number,
): EntryKind {
  if (entryNone(lo, hi)) return 'none';
  if (entryPresent(lo)) {
    if (level !== 'pte' && !entryHuge(lo)) return 'table';
    const pfn = entryPfn(lo, hi);
    if (level === 'pte' && pfn === zeroPfn && lo & _PAGE_SPECIAL) return 'zero';
    if (level === 'pmd' && pfn === hugeZeroPfn) return 'huge-zero';
    if (!(lo & _PAGE_PRESENT)) return 'protnone';
    return level === 'pte' ? 'present' : 'huge';
  }
  switch (swpType(lo)) {
    case SWP_MIGRATION_READ:
      return 'migration-read';
    case SWP_MIGRATION_READ_EXCLUSIVE:
      return 'migration-read-exclusive';
    case SWP_MIGRATION_WRITE:
      return 'migration-write';
    case SWP_DEVICE_WRITE:
      return 'device-private-write';
    case SWP_DEVICE_READ:
      return 'device-private-read';
    case SWP_DEVICE_EXCLUSIVE:
      return 'device-exclusive';
    case SWP_HWPOISON:
      return 'hwpoison';
    case SWP_PTE_MARKER:
      return 'marker';
    default:
      return 'swap';
  }
}

/**
 * Models mk_pte()+maybe_mkwrite()/pte_mkdirty()/pte_mkyoung() for a user page: the low word.
 * `protnone` builds a PROT_NONE (P=0) entry.
 */
export function mkPteLo(
  pfn: number,
  write: boolean,
  dirty: boolean,
  young: boolean,
  protnone = false,
): number {
  let f = protnone ? _PAGE_PROTNONE : _PAGE_PRESENT | _PAGE_USER;
  if (write) f |= _PAGE_RW;
  if (dirty) f |= _PAGE_DIRTY;
  if (young) f |= _PAGE_ACCESSED;
  return mkLo(pfn, f);
}

/** Models pmd_mkhuge(mk_pmd()): low word of a huge PMD leaf. */
export function mkPmdLo(
  pfn: number,
  write: boolean,
  dirty: boolean,
  young: boolean,
  protnone = false,
): number {
  return (mkPteLo(pfn, write, dirty, young, protnone) | _PAGE_PSE) >>> 0;
}

/** Models pte_wrprotect()/pmd_wrprotect() on a low word. */
export function wrprotectLo(lo: number): number {
  return (lo & ~_PAGE_RW) >>> 0;
}

/** Models softleaf_is_device_private_write()/is_writable_migration_entry() on a low word. */
export function swpWritable(lo: number): boolean {
  const t = swpType(lo);
  return t === SWP_DEVICE_WRITE || t === SWP_MIGRATION_WRITE;
}
