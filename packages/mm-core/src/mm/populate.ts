/**
 * Populating a mapping (mm/gup.c): __mm_populate(), populate_vma_page_range() and the page loop
 * of __get_user_pages() without a pages array, as mmap(MAP_POPULATE) runs them after the
 * mmap_lock taken for the mapping is dropped (vm_mmap_pgoff() -> mm_populate()).
 *
 * A private writable mapping is populated with write faults (FOLL_WRITE) "to break COW": an
 * anonymous one gets its own pages (not the zero page), a private file mapping gets private
 * copies of the file's pages, so a later store through a shared mapping of the file is not seen
 * through it. Other mappings are populated with read faults (FOLL_FORCE, so a write-only or
 * execute-only mapping is populated too). PROT_NONE mappings are skipped (-EFAULT, ignored).
 */
import { EFAULT, EINTR, ENOMEM, FOLL_FORCE, FOLL_WRITE, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import { type Core, FAULT_FLAG_WRITE, VM_FAULT_ERROR, VM_FAULT_OOM } from '../core.js';
import { entryHuge } from '../pgtable/entry.js';
import { LivelockFinding } from '../sched/findings.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { fatalSignalPending } from '../signal.js';
import { handleMmFault } from './fault.js';
import { faultOomSlowpath } from './fault-oom.js';
import { checkVmaFlags, followPage } from './gup.js';
import { mmapReadLock, mmapReadUnlock } from './locking.js';
import { pmdIndex, pmdTableOf, ptLo } from './pgtable.js';
import { type MmStruct, VM_EXEC, VM_IO, VM_PFNMAP, VM_READ, VM_SHARED, VM_WRITE, type Vma } from './types.js';

/** Bound on fault retries of one page before populating is reported as a livelock. */
const POPULATE_RETRY_BOUND = 10_000;

/** Models vma_is_accessible() (include/linux/mm.h): any of VM_READ, VM_WRITE, VM_EXEC. */
export function vmaIsAccessible(vma: Vma): boolean {
  return (vma.flags & (VM_READ | VM_WRITE | VM_EXEC)) !== 0;
}

/**
 * Models the gup_flags populate_vma_page_range() (mm/gup.c) chooses: FOLL_WRITE when
 * `(vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE` (a private writable mapping: break COW
 * now), else FOLL_FORCE (a read fault that also works without VM_READ). FOLL_TOUCH is implied.
 */
export function populateGupFlags(vma: Vma): number {
  return (vma.flags & (VM_WRITE | VM_SHARED)) === VM_WRITE ? FOLL_WRITE : FOLL_FORCE;
}

/** True when addr is mapped by a huge PMD (follow_page_mask()'s page_mask covers the PMD). */
function mappedByPmd(core: Core, mm: MmStruct, addr: number): boolean {
  const pmdT = pmdTableOf(core, mm, addr, false);
  return pmdT >= 0 && entryHuge(ptLo(core, pmdT, pmdIndex(addr)));
}

/**
 * Models the page loop of __get_user_pages() (mm/gup.c) with no pages array, on one VMA: for
 * each page, stop with -EINTR on a pending fatal signal; follow_page_mask(), else
 * faultin_page() (handle_mm_fault() with FAULT_FLAG_WRITE for FOLL_WRITE) and follow again; a
 * page mapped by a huge PMD advances to the end of the PMD (page_increment). Returns the number
 * of pages done, or -errno when the first page fails (vm_fault_to_errno(): VM_FAULT_OOM
 * -ENOMEM, SIGBUS/SIGSEGV -EFAULT). VM_FAULT_OOM first runs the allocator's slow path
 * (faultOomSlowpath(): reclaim, then the OOM killer): the page is retried unless the populating
 * process was the victim.
 */
function* gupPopulatePages(
  core: Core,
  vma: Vma,
  start: number,
  nrPages: number,
  gupFlags: number,
): KGen<number> {
  const mm = vma.mm;
  const write = (gupFlags & FOLL_WRITE) !== 0;
  const end = start + nrPages * PAGE_SIZE;
  const done = (a: number, err: number) => (a > start ? (a - start) / PAGE_SIZE : err);
  const vmaErr = checkVmaFlags(vma, gupFlags);
  if (vmaErr < 0) return vmaErr;
  let a = start;
  while (a < end) {
    // "If we have a pending SIGKILL, don't keep faulting pages and potentially allocating memory."
    if (fatalSignalPending(core)) return done(a, -EINTR);
    for (let tries = 0; followPage(core, vma, a, gupFlags) < 0; tries++) {
      if (tries >= POPULATE_RETRY_BOUND)
        throw new LivelockFinding(
          `__get_user_pages: page 0x${a.toString(16)} faulted ${tries} times without progress`,
        );
      const short = core.sched.current.allocShortFailures;
      let r = handleMmFault(core, vma, a, write ? FAULT_FLAG_WRITE : 0);
      if (typeof r !== 'number') r = yield* r;
      if (r & VM_FAULT_OOM) {
        // The fault's allocation: the allocator's slow path (reclaim, then the OOM killer).
        if (yield* faultOomSlowpath(core, a, '__mm_populate() fault', short)) continue;
        return done(a, -ENOMEM);
      }
      if (r & VM_FAULT_ERROR) return done(a, -EFAULT);
    }
    const next = mappedByPmd(core, mm, a)
      ? Math.min(end, (Math.floor(a / PMD_SIZE) + 1) * PMD_SIZE)
      : a + PAGE_SIZE;
    // cond_resched(): another task can run between pages; one preemption point per PMD.
    if (next < end && Math.floor(next / PMD_SIZE) !== Math.floor(a / PMD_SIZE))
      if (core.sched.preempt('__mm_populate: next PMD')) yield RESCHED;
    a = next;
  }
  return nrPages;
}

/**
 * Models populate_vma_page_range() (mm/gup.c): fault in [start, end) of one VMA. A VMA that is
 * not accessible (PROT_NONE) is never populated (-EFAULT); otherwise __get_user_pages() with
 * {@link populateGupFlags}. Returns the pages done or -errno. The caller holds the mmap_lock
 * for read. (VM_LOCKONFAULT and FOLL_UNLOCKABLE lock dropping are not modelled.)
 */
export function* populateVmaPageRange(core: Core, vma: Vma, start: number, end: number): KGen<number> {
  if (!vmaIsAccessible(vma)) return -EFAULT;
  return yield* gupPopulatePages(core, vma, start, (end - start) / PAGE_SIZE, populateGupFlags(vma));
}

/**
 * Models __mm_populate(start, len, ignore_errors = 1) (mm/gup.c), what mm_populate() runs for
 * MAP_POPULATE: under mmap_read_lock, VMA by VMA over [start, start + len), skip VM_IO /
 * VM_PFNMAP VMAs, populate_vma_page_range() the intersection; a short count resumes at the page
 * that failed, an error goes on with the next VMA (errors are ignored). Returns 0.
 */
export function* mmPopulate(core: Core, mm: MmStruct, start: number, len: number): KGen<number> {
  const end = start + len;
  yield* mmapReadLock(core, mm, '__mm_populate');
  try {
    let nend: number;
    for (let nstart = start; nstart < end; nstart = nend) {
      // find_vma_intersection(mm, nstart, end)
      const vma = mm.findVma(nstart);
      if (!vma || vma.start >= end) break;
      nend = Math.min(end, vma.end);
      if (vma.flags & (VM_IO | VM_PFNMAP)) continue;
      if (nstart < vma.start) nstart = vma.start;
      const r = yield* populateVmaPageRange(core, vma, nstart, nend);
      if (r < 0) continue; // ignore_errors: go on at the next VMA
      nend = nstart + r * PAGE_SIZE;
    }
  } finally {
    mmapReadUnlock(core, mm, '__mm_populate');
  }
  return 0;
}
