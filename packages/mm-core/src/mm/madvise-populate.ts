/**
 * MADV_POPULATE_READ / MADV_POPULATE_WRITE (mm/madvise.c madvise_populate(), mm/gup.c
 * faultin_page_range()): prefault the page tables readable or writable, as GUP would, without
 * taking page references. A write populate breaks COW (a private page, the zero page or a
 * page-cache page of a private file mapping gets an exclusive anonymous copy); a device-private
 * entry is faulted back to system memory (do_swap_page() -> migrate_to_ram()).
 */
import { EFAULT, EHWPOISON, EINTR, EINVAL, ENOMEM, FOLL_WRITE, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import {
  type Core,
  FAULT_FLAG_WRITE,
  VM_FAULT_HWPOISON,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
} from '../core.js';
import { LivelockFinding } from '../sched/findings.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { fatalSignalPending } from '../signal.js';
import { handleMmFault } from './fault.js';
import { faultOomSlowpath } from './fault-oom.js';
import { checkVmaFlags, followPage } from './gup.js';
import type { MmStruct, Vma } from './types.js';

/** Bound on fault retries for one page before the populate is reported as a livelock. */
const POPULATE_RETRY_BOUND = 10_000;

/** Models vm_fault_to_errno(ret, FOLL_HWPOISON) for the fault errors faultin_page() passes on. */
function vmFaultToErrno(r: number): number {
  if (r & VM_FAULT_OOM) return -ENOMEM;
  if (r & VM_FAULT_HWPOISON) return -EHWPOISON;
  if (r & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) return -EFAULT;
  return 0;
}

/**
 * Models faultin_page_range() -> __get_user_pages() with FOLL_TOUCH | FOLL_HWPOISON |
 * FOLL_MADV_POPULATE (| FOLL_WRITE): page by page, look the VMA up without expanding stacks
 * (vma_lookup(): no VMA is -ENOMEM; check_vma_flags() failing is -EINVAL), then fault until
 * follow_page_mask() finds the page mapped with the access asked for. Returns the number of
 * pages done, or -errno when the first page fails (-EINTR on a fatal signal).
 */
function* faultinPageRange(
  core: Core,
  mm: MmStruct,
  start: number,
  end: number,
  write: boolean,
): KGen<number> {
  let vma: Vma | undefined;
  let done = 0;
  const fail = (e: number) => (done ? done : e);
  for (let a = start; a < end; a += PAGE_SIZE) {
    if (!vma || a >= vma.end) {
      vma = mm.vmaLookup(a);
      if (!vma) return fail(-ENOMEM);
      // check_vma_flags() (FOLL_MADV_POPULATE, no FOLL_FORCE): its -EFAULT is -EINVAL here.
      if (checkVmaFlags(vma, write ? FOLL_WRITE : 0)) return fail(-EINVAL);
    }
    // "If we have a pending SIGKILL, don't keep faulting pages".
    if (fatalSignalPending(core)) return fail(-EINTR);
    for (let tries = 0; followPage(core, vma, a, write ? FOLL_WRITE : 0) < 0; tries++) {
      if (tries >= POPULATE_RETRY_BOUND)
        throw new LivelockFinding(
          `faultin_page_range: 0x${a.toString(16)} faulted ${tries} times without progress`,
        );
      const short = core.sched.current.allocShortFailures;
      let r = handleMmFault(core, vma, a, write ? FAULT_FLAG_WRITE : 0);
      if (typeof r !== 'number') r = yield* r;
      // The fault's allocation: the allocator's slow path (reclaim, then the OOM killer).
      if (r & VM_FAULT_OOM && (yield* faultOomSlowpath(core, a, 'faultin_page_range() fault', short)))
        continue;
      const err = vmFaultToErrno(r);
      if (err) return fail(err);
    }
    done++;
    if (a % PMD_SIZE === PMD_SIZE - PAGE_SIZE && core.sched.preempt('__get_user_pages: cond_resched'))
      yield RESCHED;
  }
  return done;
}

/**
 * Models madvise_populate() (mm/madvise.c): call faultin_page_range() until the whole range is
 * populated; the first failure ends it with -EINTR, -EINVAL (incompatible mapping or
 * permissions), -EHWPOISON, -EFAULT (the fault raised SIGBUS or SIGSEGV) or -ENOMEM (no VMA,
 * or out of memory). Pages before the failing one stay populated. The mmap_lock is held for read.
 */
export function* madvisePopulate(
  core: Core,
  mm: MmStruct,
  start: number,
  end: number,
  write: boolean,
): KGen<number> {
  while (start < end) {
    const pages = yield* faultinPageRange(core, mm, start, end, write);
    if (pages < 0) {
      switch (pages) {
        case -EINTR:
        case -EINVAL:
        case -EHWPOISON:
        case -EFAULT:
          return pages;
        default:
          return -ENOMEM;
      }
    }
    start += pages * PAGE_SIZE;
  }
  return 0;
}
