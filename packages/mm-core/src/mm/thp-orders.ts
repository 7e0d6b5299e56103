/**
 * Multi-size THP (mTHP) for anonymous memory (mm/huge_memory.c, include/linux/huge_mm.h): the
 * per-size settings huge_anon_orders_{always,madvise,inherit}, the order masks a VMA allows
 * (thp_vma_allowable_orders()), the alignment filter (thp_vma_suitable_orders()), the order
 * iterators of the fault path and the per-order counters (count_mthp_stat()).
 */
import { HPAGE_PMD_ORDER, PAGE_SIZE } from '../constants.js';
import type { Core, ThpSizeMode } from '../core.js';
import type { MthpStatItem } from '../vmstat.js';
import { shmemVmaAllowableOrders } from './shmem-huge.js';
import { VM_HUGEPAGE, VM_HUGETLB, VM_NOHUGEPAGE, VM_SHARED, VM_SPECIAL, type Vma } from './types.js';

/** Models THP_ORDERS_ALL_ANON on x86-64: orders 2..PMD_ORDER (order 1 is never an anon THP). */
export const THP_ORDERS_ALL_ANON = ((1 << (HPAGE_PMD_ORDER + 1)) - 1) & ~0b11;

/** Models BIT(PMD_ORDER) - 1: every order below the PMD order (alloc_anon_folio()'s request). */
export const THP_ORDERS_BELOW_PMD = (1 << HPAGE_PMD_ORDER) - 1;

/** Models highest_order(): the highest set bit of a non-zero order mask. */
export function highestOrder(orders: number): number {
  return 31 - Math.clz32(orders);
}

/** Models next_order(): clear `prev` from the mask; the next highest order (or -1 when empty). */
export function nextOrder(orders: number, prev: number): [rest: number, order: number] {
  const rest = orders & ~(1 << prev);
  return [rest, rest ? highestOrder(rest) : -1];
}

/** Models hugepage_global_enabled(): the top-level "enabled" is "always" or "madvise". */
export function hugepageGlobalEnabled(core: Core): boolean {
  return core.thpMode !== 'never';
}

/** Models hugepage_global_always(). */
export function hugepageGlobalAlways(core: Core): boolean {
  return core.thpMode === 'always';
}

/**
 * Models the sysfs half of thp_vma_allowable_orders() (include/linux/huge_mm.h) for an
 * anonymous VMA: the orders "always" enables, plus "madvise" ones with VM_HUGEPAGE, plus
 * "inherit" ones when the top-level setting would allow a THP here.
 */
export function thpAnonSysfsOrders(core: Core, vmFlags: number): number {
  const o = core.thpAnonOrders;
  let mask = o.always;
  if (vmFlags & VM_HUGEPAGE) mask |= o.madvise;
  if (hugepageGlobalAlways(core) || (vmFlags & VM_HUGEPAGE && hugepageGlobalEnabled(core))) mask |= o.inherit;
  return mask;
}

/** Models enum tva_type: who asks (the fault path, khugepaged, a forced collapse). */
export type TvaKind = 'pagefault' | 'khugepaged' | 'forced';

/**
 * Models thp_vma_allowable_orders() + __thp_vma_allowable_orders() (mm/huge_memory.c) for an
 * anonymous VMA: `orders` intersected with THP_ORDERS_ALL_ANON, the sysfs masks (not for a
 * forced collapse), VM_NOHUGEPAGE, VM_SPECIAL/VM_HUGETLB (VM_NO_KHUGEPAGED outside a fault) and,
 * outside a fault, the orders whose aligned block fits at the VMA's end. Returns the mask. A
 * shmem VMA outside the fault path follows shmemVmaAllowableOrders() (PMD order only).
 */
export function thpVmaAllowableOrders(
  core: Core,
  vma: Vma,
  vmFlags: number,
  kind: TvaKind,
  ordersIn: number,
): number {
  // Shmem VMAs (tmpfs files, memfd, shared anonymous memory) outside the fault path:
  // shmem_allowable_huge_orders(); in the fault path a shmem VMA allows no huge order here.
  if (!vma.isAnonymous) {
    if (kind === 'pagefault' || !vma.file || vma.vmOps) return 0;
    return shmemVmaAllowableOrders(core, vma, vmFlags, kind === 'forced', ordersIn);
  }
  if (vmFlags & VM_SHARED) return 0;
  let orders = ordersIn & THP_ORDERS_ALL_ANON;
  if (kind !== 'forced') orders &= thpAnonSysfsOrders(core, vmFlags);
  if (!orders) return 0;
  if (vmFlags & VM_NOHUGEPAGE) return 0;
  if (kind !== 'pagefault' && vmFlags & (VM_SPECIAL | VM_HUGETLB)) return 0;
  if (kind !== 'pagefault') {
    let order = highestOrder(orders);
    while (orders) {
      if (thpVmaSuitableOrder(vma, vma.end - PAGE_SIZE * 2 ** order, order)) break;
      [orders, order] = nextOrder(orders, order);
    }
  }
  return orders;
}

/**
 * Models thp_vma_suitable_order() for an anonymous VMA: the naturally aligned block of `order`
 * around addr lies inside the VMA (anonymous VMAs need no vm_pgoff alignment).
 */
export function thpVmaSuitableOrder(vma: Vma, addr: number, order: number): boolean {
  const size = PAGE_SIZE * 2 ** order;
  const haddr = Math.floor(addr / size) * size;
  return haddr >= vma.start && haddr + size <= vma.end;
}

/** Models thp_vma_suitable_orders(): the orders of the mask that are suitable at addr. */
export function thpVmaSuitableOrders(vma: Vma, addr: number, ordersIn: number): number {
  let orders = ordersIn;
  let out = 0;
  while (orders) {
    const order = highestOrder(orders);
    if (thpVmaSuitableOrder(vma, addr, order)) out |= 1 << order;
    orders &= ~(1 << order);
  }
  return out;
}

/** Models count_mthp_stat() / mod_mthp_stat(): add `n` to an order's counter. */
export function countMthpStat(core: Core, order: number, item: MthpStatItem, n = 1): void {
  if (order <= 0 || order > HPAGE_PMD_ORDER) return;
  core.mthpStats[item][order] += n;
}

/** Models anon_enabled_show()'s choice for one order. */
export function thpSizeMode(core: Core, order: number): ThpSizeMode {
  const bit = 1 << order;
  const o = core.thpAnonOrders;
  if (o.always & bit) return 'always';
  if (o.inherit & bit) return 'inherit';
  if (o.madvise & bit) return 'madvise';
  return 'never';
}

/** Models sysfs_streq(): equal, ignoring one trailing newline on either side. */
export function sysfsStreq(a: string, b: string): boolean {
  const strip = (s: string) => (s.endsWith('\n') ? s.slice(0, -1) : s);
  return strip(a) === strip(b);
}

/**
 * Models anon_enabled_store() (mm/huge_memory.c): "always", "inherit", "madvise" or "never"
 * (sysfs_streq()) moves the order's bit between the three masks; anything else is -EINVAL and
 * changes nothing. Returns true when accepted.
 */
export function thpSizeStore(core: Core, order: number, text: string): boolean {
  const mode = (['always', 'inherit', 'madvise', 'never'] as const).find((m) => sysfsStreq(text, m));
  if (!mode) return false;
  const bit = 1 << order;
  const o = core.thpAnonOrders;
  o.always &= ~bit;
  o.inherit &= ~bit;
  o.madvise &= ~bit;
  if (mode === 'always') o.always |= bit;
  else if (mode === 'inherit') o.inherit |= bit;
  else if (mode === 'madvise') o.madvise |= bit;
  return true;
}

/**
 * Models hugepage_pmd_enabled() (mm/khugepaged.c) for anonymous memory: the PMD order is
 * enabled "always" or "madvise", or "inherit" with the top-level setting not "never".
 */
export function hugepagePmdEnabledAnon(core: Core): boolean {
  const bit = 1 << HPAGE_PMD_ORDER;
  const o = core.thpAnonOrders;
  if (o.always & bit || o.madvise & bit) return true;
  return (o.inherit & bit) !== 0 && hugepageGlobalEnabled(core);
}
