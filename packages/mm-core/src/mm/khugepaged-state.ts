/**
 * khugepaged's global state (mm/khugepaged.c): the sysfs knobs under
 * /sys/kernel/mm/transparent_hugepage/khugepaged/, the list of mm_slots it scans with its cursor,
 * and the hooks that register an mm (khugepaged_enter_vma(), khugepaged_fork()) and drop it at
 * exit (khugepaged_exit()). Kept apart from the scan (mm/khugepaged.ts) so that the fault, fork
 * and exit paths can register mms without importing the collapse code. Also
 * thp_vma_allowable_order() as collapse uses it.
 */
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import type { KGen } from '../sched/task.js';
import { mmapWriteLock, mmapWriteUnlock } from './locking.js';
import { hugepagePmdEnabledAnon, thpVmaAllowableOrders } from './thp-orders.js';
import { shmemHpagePmdEnabled } from './thp-state.js';
import type { MmStruct, Vma } from './types.js';

/** Models COLLAPSE_MAX_PTES_LIMIT (HPAGE_PMD_NR - 1): the largest max_ptes_* value sysfs takes. */
export const COLLAPSE_MAX_PTES_LIMIT = HPAGE_PMD_NR - 1;

/** Models khugepaged's tunables and counters (khugepaged_init() defaults). */
export interface KhugepagedSettings {
  /** Models khugepaged_max_ptes_none (default HPAGE_PMD_NR - 1 = 511). */
  maxPtesNone: number;
  /** Models khugepaged_max_ptes_swap (default HPAGE_PMD_NR / 8 = 64). */
  maxPtesSwap: number;
  /** Models khugepaged_max_ptes_shared (default HPAGE_PMD_NR / 2 = 256). */
  maxPtesShared: number;
  /** Models khugepaged_pages_to_scan (default HPAGE_PMD_NR * 8 = 4096). */
  pagesToScan: number;
  /** Models khugepaged_scan_sleep_millisecs (default 10000; the model has no clock). */
  scanSleepMillisecs: number;
  /** Models khugepaged_alloc_sleep_millisecs (default 60000; the model has no clock). */
  allocSleepMillisecs: number;
  /** Models the khugepaged "defrag" flag (default 1; the model's allocator does not compact). */
  defrag: number;
  /** Models khugepaged_pages_collapsed (read-only in sysfs). */
  pagesCollapsed: number;
  /** Models khugepaged_full_scans (read-only in sysfs). */
  fullScans: number;
}

/** Models struct khugepaged_scan plus the mm_slot hash/list: the mms khugepaged visits, in order. */
export interface KhugepagedScanState {
  /** Models khugepaged_scan.mm_head (mm_slots, oldest first). */
  readonly slots: MmStruct[];
  /** Models khugepaged_scan.mm_slot: the mm being scanned, or null between passes over the list. */
  mmSlot: MmStruct | null;
  /** Models khugepaged_scan.address: where the scan of mmSlot resumes. */
  address: number;
}

/**
 * Models the time khugepaged's kthread keeps (jiffies and khugepaged_sleep_expire): the
 * machine's simulated time in nanoseconds, advanced only while a task sleeps (Kernel.nanosleep()),
 * and when its next khugepaged_do_scan() pass is due.
 */
export interface KhugepagedClock {
  /** The simulated time (ns) up to which khugepaged has run. */
  nowNs: number;
  /** When khugepaged's sleep in khugepaged_wait_work() expires (ns); a wake-up sets it to now. */
  nextPassNs: number;
}

interface KhugepagedState {
  readonly settings: KhugepagedSettings;
  readonly scan: KhugepagedScanState;
  readonly clock: KhugepagedClock;
}

const states = new WeakMap<Core, KhugepagedState>();

function state(core: Core): KhugepagedState {
  let s = states.get(core);
  if (!s) {
    s = {
      settings: {
        maxPtesNone: COLLAPSE_MAX_PTES_LIMIT,
        maxPtesSwap: HPAGE_PMD_NR / 8,
        maxPtesShared: HPAGE_PMD_NR / 2,
        pagesToScan: HPAGE_PMD_NR * 8,
        scanSleepMillisecs: 10000,
        allocSleepMillisecs: 60000,
        defrag: 1,
        pagesCollapsed: 0,
        fullScans: 0,
      },
      scan: { slots: [], mmSlot: null, address: 0 },
      clock: { nowNs: 0, nextPassNs: 0 },
    };
    states.set(core, s);
  }
  return s;
}

/** Models khugepaged's sysfs-visible variables of one machine (khugepaged_init() defaults). */
export function khugepagedSettings(core: Core): KhugepagedSettings {
  return state(core).settings;
}

/** Models khugepaged_scan and the mm_slot list of one machine. */
export function khugepagedScanState(core: Core): KhugepagedScanState {
  return state(core).scan;
}

/** Models khugepaged's timekeeping of one machine. */
export function khugepagedClock(core: Core): KhugepagedClock {
  return state(core).clock;
}

/**
 * Models wake_up_interruptible(&khugepaged_wait) with khugepaged_sleep_expire = 0 (from
 * __khugepaged_enter() on an empty list, the scan_sleep_millisecs and alloc_sleep_millisecs
 * stores, and start_stop_khugepaged()): khugepaged's next pass is due now.
 */
export function khugepagedWake(core: Core): void {
  const c = state(core).clock;
  c.nextPassNs = c.nowNs;
}

/**
 * Models thp_vma_suitable_order() for PMD order at addr: the aligned PMD around addr lies inside
 * the VMA (file VMAs also need vm_pgoff aligned with vm_start).
 */
export function thpVmaSuitablePmd(vma: Vma, addr: number): boolean {
  if (
    !vma.isAnonymous &&
    (((vma.start / PAGE_SIZE - vma.pgoff) % HPAGE_PMD_NR) + HPAGE_PMD_NR) % HPAGE_PMD_NR
  )
    return false;
  const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  return haddr >= vma.start && haddr + PMD_SIZE <= vma.end;
}

/** Models enum tva_type's collapse users: khugepaged's scan or a forced collapse (MADV_COLLAPSE). */
export type TvaType = 'khugepaged' | 'forced';

/**
 * Models thp_vma_allowable_order(vma, vm_flags, type, PMD_ORDER) for collapse (not a fault):
 * vma_thp_disabled() (VM_NOHUGEPAGE), VM_NO_KHUGEPAGED (VM_SPECIAL | VM_HUGETLB), a VMA that
 * holds at least one aligned PMD (checked at vm_end - PMD_SIZE), and for khugepaged the PMD
 * order's per-size setting (hugepages-2048kB/enabled; "inherit": the top-level mode "always",
 * or "madvise" with VM_HUGEPAGE); shmem VMAs follow shmem_allowable_huge_orders().
 */
export function thpVmaAllowableOrder(core: Core, vma: Vma, vmFlags: number, type: TvaType): boolean {
  return thpVmaAllowableOrders(core, vma, vmFlags, type, 1 << HPAGE_PMD_ORDER) !== 0;
}

/**
 * Models hugepage_pmd_enabled() (mm/khugepaged.c): the PMD order's anonymous setting (its
 * hugepages-2048kB/enabled, or the top-level mode when it inherits) allows THP, or PMD shmem THP
 * is enabled (shmem_hpage_pmd_enabled()); khugepaged runs while it is true.
 */
export function hugepagePmdEnabled(core: Core): boolean {
  return hugepagePmdEnabledAnon(core) || shmemHpagePmdEnabled(core);
}

/**
 * Models __khugepaged_enter(): add the mm to the end of khugepaged's list ("just behind the
 * scanning cursor, to let the area settle down a little") unless it is there (MMF_VM_HUGEPAGE)
 * or being torn down.
 */
export function khugepagedEnter(core: Core, mm: MmStruct): void {
  const s = khugepagedScanState(core);
  if (mm.users === 0 || s.slots.includes(mm)) return;
  const wakeup = s.slots.length === 0;
  s.slots.push(mm);
  if (wakeup) khugepagedWake(core);
}

/**
 * Models khugepaged_enter_vma(): register the mm when THP is enabled and khugepaged could
 * collapse in this VMA with these flags. Called from do_huge_pmd_anonymous_page() and
 * hugepage_madvise(MADV_HUGEPAGE).
 */
export function khugepagedEnterVma(core: Core, vma: Vma, vmFlags: number): void {
  if (hugepagePmdEnabled(core) && thpVmaAllowableOrder(core, vma, vmFlags, 'khugepaged'))
    khugepagedEnter(core, vma.mm);
}

/** Models khugepaged_fork(): a child of a registered mm is registered too (from dup_mmap()). */
export function khugepagedFork(core: Core, mm: MmStruct, oldmm: MmStruct): void {
  if (khugepagedScanState(core).slots.includes(oldmm)) khugepagedEnter(core, mm);
}

/**
 * Models khugepaged_exit() -> __khugepaged_exit() (from __mmput()): drop the mm's slot, unless
 * khugepaged is scanning this mm right now; then wait for it to leave the page tables (an
 * mmap_write_lock()/unlock() pair) and let collect_mm_slot() free the slot.
 */
export function* khugepagedExit(core: Core, mm: MmStruct): KGen {
  const s = khugepagedScanState(core);
  const i = s.slots.indexOf(mm);
  if (i < 0) return;
  if (s.mmSlot !== mm) {
    s.slots.splice(i, 1);
    return;
  }
  yield* mmapWriteLock(core, mm, '__khugepaged_exit');
  mmapWriteUnlock(core, mm, '__khugepaged_exit');
}
