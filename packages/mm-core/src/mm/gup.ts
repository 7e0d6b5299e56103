import {
  EFAULT,
  EINTR,
  ENOMEM,
  EPERM,
  FOLL_FORCE,
  FOLL_LONGTERM,
  FOLL_WRITE,
  PAGE_SIZE,
  PMD_SIZE,
} from '../constants.js';
import {
  type Core,
  FAULT_FLAG_UNSHARE,
  FAULT_FLAG_WRITE,
  MEMORY_DEVICE_COHERENT,
  VM_FAULT_ERROR,
  VM_FAULT_OOM,
} from '../core.js';
import { folioGet, folioPut, folioUnlock } from '../folio.js';
import {
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  entryHuge,
  entryPfn,
  mkHi,
  mkSwpLo,
  SWP_DEVICE_EXCLUSIVE,
} from '../pgtable/entry.js';
import { PG_anon, PG_anon_exclusive, PG_dirty, PG_hugetlb, PG_zone_device } from '../phys/memmap.js';
import { LivelockFinding } from '../sched/findings.js';
import { spinRetry } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import { fatalSignalPending } from '../signal.js';
import { handleMmFault } from './fault.js';
import { faultOomSlowpath } from './fault-oom.js';
import { splitHugePmd } from './huge.js';
import { folioLockWait, pteLock, ptlUnlock } from './locking.js';
import { mmuNotifierInvalidateRangeEnd, mmuNotifierInvalidateRangeStart } from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, pteTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import {
  isCowMapping,
  MMU_NOTIFY_EXCLUSIVE,
  type MmStruct,
  type MmuNotifierRange,
  VM_IO,
  VM_MAYREAD,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
  type Vma,
} from './types.js';

/** Models GUP_PIN_COUNTING_BIAS bookkeeping: FOLL_PIN references are also counted in pincount. */
export const FOLL_PIN = 0x40000;

/**
 * Models gup_must_unshare() (mm/internal.h): a read-only FOLL_PIN of a page mapped read-only
 * must first make it exclusive to this mapping (FAULT_FLAG_UNSHARE), so that the pin keeps
 * seeing what the process sees: an anonymous page that is not AnonExclusive (shared with a
 * fork child, or KSM), and for FOLL_LONGTERM any other page of a COW mapping (the shared zero
 * page, a private file page). `vma` null is GUP-fast, which cannot tell and falls back.
 */
export function gupMustUnshare(core: Core, vma: Vma | null, gupFlags: number, pfn: number): boolean {
  if ((gupFlags & (FOLL_WRITE | FOLL_PIN)) !== FOLL_PIN) return false;
  const m = core.map;
  const head = m.head[pfn];
  if (!(m.flags[head] & PG_anon)) {
    if (!(gupFlags & FOLL_LONGTERM)) return false;
    if (!vma) return true;
    return isCowMapping(vma.flags);
  }
  // PageAnonExclusive(): a hugetlb folio keeps it on its head page.
  const page = m.flags[head] & PG_hugetlb ? head : pfn;
  return !(m.flags[page] & PG_anon_exclusive);
}

/** What follow_page_mask() returns for a page gup_must_unshare() refuses (-EMLINK). */
const FOLLOW_UNSHARE = -2;

/**
 * Models follow_page_mask(): the pfn mapped at addr with the access gup needs; -1 when a fault
 * is needed (not present, device-private, migration entry, read-only for FOLL_WRITE), or
 * FOLLOW_UNSHARE when a read-only pin must unshare the page first.
 */
export function followPage(core: Core, vma: Vma, addr: number, gupFlags: number): number {
  const write = (gupFlags & FOLL_WRITE) !== 0;
  const pmdT = pmdTableOf(core, vma.mm, addr, false);
  if (pmdT < 0) return -1;
  const mi = pmdIndex(addr);
  const lo = ptLo(core, pmdT, mi);
  if (!(lo & _PAGE_PRESENT)) return -1;
  if (entryHuge(lo)) {
    if (write && !(lo & _PAGE_RW)) return -1;
    const page = entryPfn(lo, ptHi(core, pmdT, mi));
    // follow_huge_pmd(): the same unshare rule as for a PTE, asked of pmd_page(), the head page
    // (a PMD-mapped anonymous THP keeps PageAnonExclusive there, __folio_add_anon_rmap() with
    // RMAP_LEVEL_PMD); only then does it step to the subpage of addr.
    if (!(lo & _PAGE_RW) && gupMustUnshare(core, vma, gupFlags, page)) return FOLLOW_UNSHARE;
    return page + pteIndex(addr);
  }
  const t = entryPfn(lo, ptHi(core, pmdT, mi));
  const plo = ptLo(core, t, pteIndex(addr));
  if (!(plo & _PAGE_PRESENT)) return -1;
  if (write && !(plo & _PAGE_RW)) return -1;
  const pfn = entryPfn(plo, ptHi(core, t, pteIndex(addr)));
  if (!(plo & _PAGE_RW) && gupMustUnshare(core, vma, gupFlags, pfn)) return FOLLOW_UNSHARE;
  return pfn;
}

/**
 * Models check_vma_flags() (mm/gup.c) for the flags the model has: VM_IO / VM_PFNMAP VMAs are
 * refused; FOLL_WRITE needs VM_WRITE (FOLL_FORCE writes to read-only mappings are not
 * modelled); a read needs VM_READ, or FOLL_FORCE and VM_MAYREAD, so a write-only mapping
 * (PROT_WRITE alone) cannot be read through get_user_pages() although the CPU can read it.
 * 0 or -EFAULT.
 */
export function checkVmaFlags(vma: Vma, gupFlags: number): number {
  const f = vma.flags;
  if (f & (VM_IO | VM_PFNMAP)) return -EFAULT;
  if (gupFlags & FOLL_WRITE) return f & VM_WRITE ? 0 : -EFAULT;
  if (!(f & VM_READ)) {
    if (!(gupFlags & FOLL_FORCE)) return -EFAULT;
    if (!(f & VM_MAYREAD)) return -EFAULT;
  }
  return 0;
}

/** Hooks other layers install for GUP (avoids an upward import from mm core). */
export interface GupHooks {
  /** Models migrate_device_coherent_folio() (mm/migrate_device.c): 0 or -EBUSY. */
  migrateDeviceCoherentFolio?(core: Core, head: number): KGen<number>;
}

const gupHooks = new WeakMap<Core, GupHooks>();

/** Installs GUP hooks for a core (the migrate-vma package installs migrate_device_coherent_folio). */
export function setGupHooks(core: Core, hooks: GupHooks): void {
  gupHooks.set(core, { ...gupHooks.get(core), ...hooks });
}

/** Bound on fault retries for one page before GUP is reported as a livelock. */
const GUP_RETRY_BOUND = 10_000;

/**
 * Models __get_user_pages() + check_and_migrate_movable_folios(): fault in and take a
 * reference (FOLL_GET) or a pin (FOLL_PIN, counted in pincount) on each of nr pages from addr.
 * FOLL_LONGTERM pins on device-coherent pages first migrate them to system memory. Returns the
 * pfns taken (fewer than nr on a partial failure, as the kernel returns a short count) or
 * -errno when the first page fails. The caller holds the mmap_lock for read
 * (get_user_pages_remote()).
 */
export function* getUserPages(
  core: Core,
  mm: MmStruct,
  addr: number,
  nr: number,
  gupFlags: number,
): KGen<number[] | number> {
  const write = (gupFlags & FOLL_WRITE) !== 0;
  const out: number[] = [];
  for (let k = 0; k < nr; k++) {
    const a = addr + k * PAGE_SIZE;
    const vma = mm.vmaLookup(a);
    const fail = (e: number) => (out.length ? out : e);
    // __get_user_pages(): "If we have a pending SIGKILL, don't keep faulting pages".
    if (fatalSignalPending(core)) return fail(-EINTR);
    if (!vma || checkVmaFlags(vma, gupFlags) < 0) return fail(-EFAULT);
    let pfn = -1;
    for (let tries = 0; pfn < 0; tries++) {
      if (tries >= GUP_RETRY_BOUND)
        throw new LivelockFinding(
          `__get_user_pages: page 0x${a.toString(16)} faulted ${tries} times without progress`,
        );
      pfn = followPage(core, vma, a, gupFlags);
      if (pfn >= 0) break;
      // faultin_page(): FAULT_FLAG_UNSHARE for a page follow_page_mask() refused with -EMLINK.
      const fflags = write ? FAULT_FLAG_WRITE : pfn === FOLLOW_UNSHARE ? FAULT_FLAG_UNSHARE : 0;
      const short = core.sched.current.allocShortFailures;
      let r = handleMmFault(core, vma, a, fflags);
      if (typeof r !== 'number') r = yield* r;
      if (r & VM_FAULT_OOM) {
        // The fault's allocation: the allocator's slow path (reclaim, then the OOM killer).
        if (yield* faultOomSlowpath(core, a, '__get_user_pages() fault', short)) continue;
        return fail(-ENOMEM);
      }
      if (r & VM_FAULT_ERROR) return fail(-EFAULT);
    }
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
      if ((yield* mig(core, head)) < 0) return fail(-ENOMEM);
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
 * Models make_device_exclusive() (mm/rmap.c): fault the page in writable (splitting a PMD
 * mapping), lock the folio, then under an MMU_NOTIFY_EXCLUSIVE invalidation carrying `owner`
 * (so the requesting driver can ignore its own invalidation) replace its PTE with a
 * device-exclusive entry, if the PTE still maps that page writable (else retry). The folio
 * stays mapped (rmap and reference kept). Returns the pfn with the folio locked and an extra
 * reference the caller drops, or -errno. The caller holds the mmap_lock for read.
 */
export function* makeDeviceExclusive(core: Core, mm: MmStruct, addr: number, owner: unknown): KGen<number> {
  for (let tries = 0; ; tries++) {
    if (tries >= GUP_RETRY_BOUND)
      throw new LivelockFinding(`make_device_exclusive: 0x${addr.toString(16)} retried ${tries} times`);
    const vma = mm.vmaLookup(addr);
    const haddr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
    const pmdT = pmdTableOf(core, mm, addr, false);
    // FOLL_SPLIT_PMD: a PMD mapping is split before the page is taken.
    if (vma && pmdT >= 0 && entryHuge(ptLo(core, pmdT, pmdIndex(addr))))
      yield* splitHugePmd(core, vma, pmdT, haddr, false);
    const pages = yield* getUserPages(core, mm, addr, 1, FOLL_WRITE);
    if (typeof pages === 'number') return pages;
    if (pages.length === 0) return -EFAULT;
    const pfn = pages[0];
    const m = core.map;
    const head = m.head[pfn];
    if (!(m.flags[head] & PG_anon) || m.flags[head] & PG_zone_device) {
      folioPut(core, head);
      return -EPERM;
    }
    yield* folioLockWait(core, head, 'make_device_exclusive');
    const pteT = pteTableOf(core, mm, addr, false);
    const i = pteIndex(addr);
    // mmu_notifier_range_init_owner(), invalidate_range_start(), ..._end(): written out rather
    // than a body closure per call, whose optimized code V8 drops at every full GC.
    const range: MmuNotifierRange = {
      mm,
      start: addr,
      end: addr + PAGE_SIZE,
      event: MMU_NOTIFY_EXCLUSIVE,
      owner,
    };
    yield* mmuNotifierInvalidateRangeStart(range);
    let done = false;
    try {
      if (pteT >= 0) {
        const ptl = pteLock(core, pteT, 'make_device_exclusive');
        const lo = ptLo(core, pteT, i);
        const ok =
          (lo & _PAGE_PRESENT) !== 0 && (lo & _PAGE_RW) !== 0 && entryPfn(lo, ptHi(core, pteT, i)) === pfn;
        if (ok) {
          // ptep_clear_flush() for the uptodate dirty bit, then "set the dirty flag on the folio
          // now the PTE is gone": a written lazy-free (or clean swap-cache) folio must not be
          // dropped by reclaim while the device holds it exclusively.
          if (lo & _PAGE_DIRTY) m.flags[head] |= PG_dirty;
          const soft = lo & (1 << 11);
          ptSet(core, pteT, i, mkSwpLo(SWP_DEVICE_EXCLUSIVE, pfn, soft), mkHi(pfn));
          m.flags[pfn] |= PG_anon_exclusive;
        }
        ptlUnlock(core, ptl, 'make_device_exclusive');
        done = ok;
      }
    } finally {
      mmuNotifierInvalidateRangeEnd(range);
    }
    if (done) return pfn;
    folioUnlock(core, head);
    folioPut(core, head);
    yield* spinRetry(core.sched, 'make_device_exclusive: page changed under us, retry');
  }
}

/** Releases what {@link makeDeviceExclusive} returned (folio_unlock() + folio_put()). */
export function releaseDeviceExclusive(core: Core, pfn: number): void {
  const head = core.map.head[pfn];
  folioUnlock(core, head);
  folioPut(core, head);
}
