/**
 * Huge tmpfs (mm/shmem.c, include/linux/huge_mm.h): which shmem inodes and VMAs may hold
 * PMD-sized page-cache folios (shmem_huge_global_enabled(), shmem_allowable_huge_orders(),
 * vma_thp_disabled()) and the file-VMA half of thp_vma_allowable_orders(). Simplified: shmem THP
 * is PMD-sized only (no mTHP orders for tmpfs, no per-size shmem_enabled files: the PMD order
 * inherits the top-level shmem_enabled, which is the kernel's default).
 */
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { thpSysfsState } from './thp-state.js';
import { type Inode, VM_HUGEPAGE, VM_HUGETLB, VM_NOHUGEPAGE, VM_SPECIAL, type Vma } from './types.js';

/** BIT(HPAGE_PMD_ORDER): the only shmem THP order the model allocates. */
export const SHMEM_PMD_ORDERS = 1 << HPAGE_PMD_ORDER;

/**
 * Models vma_thp_disabled(vma, vm_flags, forced_collapse) (include/linux/huge_mm.h): THPs are
 * disabled for the VMA by MADV_NOHUGEPAGE. (The model has no PR_SET_THP_DISABLE, so the
 * process-wide MMF_DISABLE_THP_* cases never apply and `forcedCollapse` changes nothing.)
 */
export function vmaThpDisabled(vmFlags: number, _forcedCollapse: boolean): boolean {
  return (vmFlags & VM_NOHUGEPAGE) !== 0;
}

/**
 * Models shmem_get_orders_within_size() for the PMD order: the PMD-aligned extent holding
 * `index` ends within max(write_end, i_size).
 */
function shmemPmdWithinSize(inode: Inode, index: number, writeEnd: number): number {
  const alignedEnd = Math.ceil((index + 1) / HPAGE_PMD_NR) * HPAGE_PMD_NR;
  const size = Math.max(writeEnd, inode.size);
  return Math.floor(size / PAGE_SIZE) >= alignedEnd ? SHMEM_PMD_ORDERS : 0;
}

/**
 * Models shmem_mapping_size_orders() for the PMD order: a write from `index` to write_end covers
 * the PMD extent (filemap_get_order() of its size, capped by the alignment of index).
 */
function shmemMappingSizeOrders(index: number, writeEnd: number): number {
  if (!writeEnd || index % HPAGE_PMD_NR) return 0;
  return writeEnd - index * PAGE_SIZE >= HPAGE_PMD_NR * PAGE_SIZE ? SHMEM_PMD_ORDERS : 0;
}

/**
 * Models mapping_large_folio_support() of a shmem inode: __shmem_get_inode() sets
 * mapping_set_large_folios() when the superblock's huge= is not "never" (sbinfo->huge).
 * Simplified: the model reads the mount's huge= now (shm_mnt's follows shmem_enabled), not
 * when the inode was created.
 */
export function mappingLargeFolioSupport(core: Core, inode: Inode): boolean {
  const huge = inode.sbHuge === 'shm_mnt' ? thpSysfsState(core).shmMntHuge : inode.sbHuge;
  return huge !== 'never';
}

/**
 * Models shmem_huge_global_enabled() (mm/shmem.c): "deny" forbids huge pages everywhere, a
 * forced collapse (MADV_COLLAPSE) or "force" allows them, else the inode's mount decides:
 * huge=always (without a VMA only for a write covering the aligned PMD extent), huge=within_size
 * (the PMD extent must end within the file size or the write),
 * huge=advise with VM_HUGEPAGE. The internal shm_mnt's huge= follows shmem_enabled.
 */
export function shmemHugeGlobalEnabled(
  core: Core,
  inode: Inode,
  index: number,
  writeEnd: number,
  shmemHugeForce: boolean,
  vmFlags: number,
  hasVma = true,
): number {
  const shmemHuge = thpSysfsState(core).shmemEnabled;
  if (shmemHuge === 'deny') return 0;
  if (shmemHugeForce || shmemHuge === 'force') return SHMEM_PMD_ORDERS;
  const huge = inode.sbHuge === 'shm_mnt' ? thpSysfsState(core).shmMntHuge : inode.sbHuge;
  switch (huge) {
    case 'always':
      // Without a VMA (write(2)) the folio size follows the write: shmem_mapping_size_orders().
      return hasVma ? SHMEM_PMD_ORDERS : shmemMappingSizeOrders(index, writeEnd);
    case 'within_size':
      return shmemPmdWithinSize(inode, index, writeEnd);
    case 'advise':
      return vmFlags & VM_HUGEPAGE ? SHMEM_PMD_ORDERS : 0;
    default:
      return 0;
  }
}

/**
 * Models shmem_allowable_huge_orders() (mm/shmem.c), `vmFlags` null when there is no VMA (a
 * write(2)): no huge page in a VMA where THP is
 * disabled, else shmem_huge_global_enabled(). For anonymous shmem (MAP_SHARED|MAP_ANONYMOUS) the
 * kernel combines the per-size controls; with the default huge_shmem_orders_inherit (PMD order
 * only) that is the same answer ("deny" none, "force" the inherited PMD order, else the PMD order
 * when the global control allows it).
 */
export function shmemAllowableHugeOrders(
  core: Core,
  inode: Inode,
  vmFlags: number | null,
  index: number,
  writeEnd: number,
  shmemHugeForce: boolean,
): number {
  if (vmFlags !== null && vmaThpDisabled(vmFlags, shmemHugeForce)) return 0;
  return shmemHugeGlobalEnabled(core, inode, index, writeEnd, shmemHugeForce, vmFlags ?? 0, vmFlags !== null);
}

/**
 * Models thp_vma_suitable_order(vma, addr, PMD_ORDER) for a file VMA: vm_pgoff is PMD-aligned
 * with vm_start, and the aligned PMD around addr lies inside the VMA.
 */
export function thpFileVmaSuitablePmd(vma: Vma, addr: number): boolean {
  const skew = (((vma.start / PAGE_SIZE - vma.pgoff) % HPAGE_PMD_NR) + HPAGE_PMD_NR) % HPAGE_PMD_NR;
  if (skew) return false;
  const size = PAGE_SIZE * HPAGE_PMD_NR;
  const haddr = Math.floor(addr / size) * size;
  return haddr >= vma.start && haddr + size <= vma.end;
}

/**
 * Models __thp_vma_allowable_orders() (mm/huge_memory.c) for a shmem VMA outside the fault path
 * (khugepaged's scan, MADV_COLLAPSE, smaps): vma_thp_disabled(), VM_NO_KHUGEPAGED (VM_SPECIAL |
 * VM_HUGETLB), a PMD-aligned extent that fits at the VMA's end (with vm_pgoff aligned), then
 * shmem_allowable_huge_orders(inode, vma, vm_pgoff, 0, forced). In the fault path the kernel
 * answers 0 for shmem (no ->huge_fault): the fault maps page-cache folios in finish_fault().
 */
export function shmemVmaAllowableOrders(
  core: Core,
  vma: Vma,
  vmFlags: number,
  forced: boolean,
  orders: number,
): number {
  const inode = vma.file;
  if (!inode || vmFlags & VM_HUGETLB) return 0;
  if (vmaThpDisabled(vmFlags, forced)) return 0;
  if (vmFlags & (VM_SPECIAL | VM_HUGETLB)) return 0;
  let o = orders & SHMEM_PMD_ORDERS;
  if (o && !thpFileVmaSuitablePmd(vma, vma.end - PAGE_SIZE * HPAGE_PMD_NR)) o = 0;
  if (!o) return 0;
  return o & shmemAllowableHugeOrders(core, inode, vmFlags, vma.pgoff, 0, forced);
}
