/**
 * MADV_COLLAPSE (mm/khugepaged.c madvise_collapse()): the synchronous collapse of a range, PMD
 * by PMD, without khugepaged's limits: anonymous PMDs through hpage_collapse_scan_pmd()
 * (mm/collapse.ts), shmem ones through hpage_collapse_scan_file() and collapse_pte_mapped_thp()
 * (mm/collapse-file.ts).
 */
import { EAGAIN, EBUSY, EINVAL, ENOMEM, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { linearPageIndex } from './anon.js';
import {
  type CollapseControl,
  hpageCollapseScanPmd,
  hugepageVmaRevalidate,
  type ScanResult,
} from './collapse.js';
import { collapsePteMappedThp, hpageCollapseScanFile } from './collapse-file.js';
import { thpVmaAllowableOrder } from './khugepaged-state.js';
import { mmapReadLock, mmapReadUnlock } from './locking.js';
import type { Vma } from './types.js';

/**
 * Models madvise_collapse_errno(): MADV_COLLAPSE reports why the last PMD failed. -ENOMEM when
 * the huge folio could not be allocated, -EBUSY for a memcg charge failure or too many none PTEs
 * (userfaultfd only), -EAGAIN for transient folio states (refcount, lock, LRU), -EINVAL for
 * everything else.
 */
export function madviseCollapseErrno(r: ScanResult): number {
  switch (r) {
    case 'SCAN_ALLOC_HUGE_PAGE_FAIL':
      return -ENOMEM;
    case 'SCAN_CGROUP_CHARGE_FAIL':
    case 'SCAN_EXCEED_NONE_PTE':
      return -EBUSY;
    case 'SCAN_PAGE_COUNT':
    case 'SCAN_PAGE_LOCK':
    case 'SCAN_PAGE_LRU':
    case 'SCAN_DEL_PAGE_LRU':
    case 'SCAN_PAGE_FILLED':
      return -EAGAIN;
    default:
      return -EINVAL;
  }
}

/** What madvise_collapse() tells its caller beyond the errno: whether the mmap_lock was dropped. */
export interface MadviseCollapseOut {
  lockDropped: boolean;
}

/**
 * Models madvise_collapse() (mm/khugepaged.c) on one VMA's part [start, end) of the range, with
 * the mmap_lock held for read: -EINVAL unless the VMA allows a forced PMD collapse; then every
 * aligned PMD of the part is scanned and collapsed without khugepaged's limits (a shmem VMA's
 * with the mmap_lock dropped: hpage_collapse_scan_file(), then for SCAN_PTE_MAPPED_HUGEPAGE
 * collapse_pte_mapped_thp(install_pmd) under the read lock, whose result is handled again). A PMD already
 * huge counts as collapsed (SCAN_PMD_MAPPED); no PTE table (SCAN_NO_PTE_TABLE), a non-present
 * entry, a zone-device page or a transient folio state fails that PMD and the walk goes on; any
 * other result stops it. Returns 0 when every PMD is huge at the end, else
 * madvise_collapse_errno() of the last failure. The lock is held again on return.
 */
export function* madviseCollapse(
  core: Core,
  vma0: Vma,
  start: number,
  end: number,
  out: MadviseCollapseOut,
): KGen<number> {
  const mm = vma0.mm;
  if (!thpVmaAllowableOrder(core, vma0, vma0.flags, 'forced')) return -EINVAL;
  const cc: CollapseControl = { isKhugepaged: false };
  const hstart = Math.ceil(start / PMD_SIZE) * PMD_SIZE;
  let hend = Math.floor(end / PMD_SIZE) * PMD_SIZE;
  let vma: Vma = vma0;
  let mmapLocked = true;
  let thps = 0;
  let lastFail: ScanResult = 'SCAN_FAIL';
  walk: for (let addr = hstart; addr < hend; addr += PMD_SIZE) {
    if (!mmapLocked) {
      if (core.sched.preempt('madvise_collapse: cond_resched')) yield RESCHED;
      yield* mmapReadLock(core, mm, 'madvise_collapse');
      mmapLocked = true;
      out.lockDropped = true;
      const rv = hugepageVmaRevalidate(core, mm, addr, false, cc);
      if (rv.result !== 'SCAN_SUCCEED' || !rv.vma) {
        lastFail = rv.result;
        break;
      }
      vma = rv.vma;
      hend = Math.min(hend, Math.floor(vma.end / PMD_SIZE) * PMD_SIZE);
    }
    let r: { result: ScanResult; mmapLocked: boolean };
    if (vma.file && !vma.vmOps) {
      // A shmem VMA: the scan works on the page cache, without the mmap_lock.
      const inode = vma.file;
      const pgoff = linearPageIndex(vma, addr);
      mmapReadUnlock(core, mm, 'madvise_collapse');
      r = { result: yield* hpageCollapseScanFile(core, mm, addr, inode, pgoff, cc), mmapLocked: false };
      if (r.result === 'SCAN_PTE_MAPPED_HUGEPAGE') {
        yield* mmapReadLock(core, mm, 'madvise_collapse');
        r.result = yield* collapsePteMappedThp(core, mm, addr, true);
        mmapReadUnlock(core, mm, 'madvise_collapse');
      }
    } else r = yield* hpageCollapseScanPmd(core, mm, addr, cc);
    if (!r.mmapLocked) {
      mmapLocked = false;
      out.lockDropped = true;
    }
    switch (r.result) {
      case 'SCAN_SUCCEED':
      case 'SCAN_PMD_MAPPED':
        thps++;
        break;
      // "Whitelisted set of results where continuing OK".
      case 'SCAN_NO_PTE_TABLE':
      case 'SCAN_PTE_NON_PRESENT':
      case 'SCAN_PTE_UFFD_WP':
      case 'SCAN_LACK_REFERENCED_PAGE':
      case 'SCAN_PAGE_NULL':
      case 'SCAN_PAGE_COUNT':
      case 'SCAN_PAGE_LOCK':
      case 'SCAN_PAGE_COMPOUND':
      case 'SCAN_PAGE_LRU':
      case 'SCAN_DEL_PAGE_LRU':
        lastFail = r.result;
        break;
      default:
        lastFail = r.result;
        break walk;
    }
  }
  // "Caller expects us to hold mmap_lock on return".
  if (!mmapLocked) yield* mmapReadLock(core, mm, 'madvise_collapse');
  // (hend - hstart) >> HPAGE_PMD_SHIFT is unsigned: a part with no aligned PMD start below its
  // aligned end (hend < hstart) can never match, so it fails with -EINVAL.
  return hend >= hstart && thps === (hend - hstart) / PMD_SIZE ? 0 : madviseCollapseErrno(lastFail);
}
