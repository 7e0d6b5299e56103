/**
 * swapoff(2) and swapon(2) of the machine's swap partition (mm/swapfile.c): sys_swapoff() with
 * try_to_unuse() bringing every swapped-out page back into memory, and sys_swapon() of a
 * partition that is not in use. The machine has one swap partition, {@link SWAP_DEVICE_PATH},
 * of the size it booted with (KernelOptions.swapBytes; none when 0).
 *
 * Model simplifications: one partition (so at most one area), no priorities or discard (the
 * flags are checked, then ignored), no /proc/swaps; try_to_unuse() swaps a page in through the
 * fault path (do_swap_page() for a read fault) where the kernel's unuse_pte() maps it old and
 * read-only: the data, counters and swap slots end the same, the PTE bits may differ.
 */
import { EBUSY, EFAULT, EINTR, EINVAL, ENOENT, ENOMEM, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import { type Core, VM_FAULT_ERROR, VM_FAULT_OOM } from '../core.js';
import { folioPut, folioUnlock } from '../folio.js';
import { setCurrentOomOrigin } from '../oom.js';
import { entryHuge, entryNone, entryPfn, entryPresent, isSwapType, swpType } from '../pgtable/entry.js';
import { spinRetry } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { fatalSignalPending } from '../signal.js';
import { mmgetNotZero, mmput } from './exit.js';
import { handleMmFault } from './fault.js';
import { faultOomSlowpath } from './fault-oom.js';
import { folioLockWait, mmapReadLock, mmapReadUnlock } from './locking.js';
import { vmEnoughMemory } from './overcommit.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo } from './pgtable.js';
import {
  folioFreeSwap,
  SWP_USED,
  SWP_WRITEOK,
  SwapInfo,
  swapCacheGetFolio,
  swpEntryVal,
} from './swapfile.js';
import type { MmStruct } from './types.js';

/** The machine's swap partition (what its fstab would swapon at boot). */
export const SWAP_DEVICE_PATH = '/dev/vda2';

/** Models SWAP_FLAG_PREFER (include/linux/swap.h). */
export const SWAP_FLAG_PREFER = 0x8000;
/** Models SWAP_FLAG_PRIO_MASK. */
export const SWAP_FLAG_PRIO_MASK = 0x7fff;
/** Models SWAP_FLAG_DISCARD. */
export const SWAP_FLAG_DISCARD = 0x10000;
/** Models SWAP_FLAG_DISCARD_ONCE. */
export const SWAP_FLAG_DISCARD_ONCE = 0x20000;
/** Models SWAP_FLAG_DISCARD_PAGES. */
export const SWAP_FLAG_DISCARD_PAGES = 0x40000;
/** Models SWAP_FLAGS_VALID: the flags swapon(2) accepts. */
export const SWAP_FLAGS_VALID =
  SWAP_FLAG_PRIO_MASK |
  SWAP_FLAG_PREFER |
  SWAP_FLAG_DISCARD |
  SWAP_FLAG_DISCARD_ONCE |
  SWAP_FLAG_DISCARD_PAGES;

/** The swap partitions of a machine: path -> size in bytes, and the area using each, if any. */
interface SwapDevice {
  readonly bytes: number;
  area: SwapInfo | null;
}

const devices = new WeakMap<Core, Map<string, SwapDevice>>();

function devicesOf(core: Core): Map<string, SwapDevice> {
  let d = devices.get(core);
  if (!d) {
    d = new Map();
    devices.set(core, d);
  }
  return d;
}

/** Model-only: the machine has a swap partition at `path` of `bytes`, swapped on as `area` (boot). */
export function registerSwapDevice(core: Core, path: string, bytes: number, area: SwapInfo | null): void {
  devicesOf(core).set(path, { bytes, area });
}

/**
 * Models unuse_mm() -> unuse_vma() -> unuse_pte_range() for one mm: with the mmap_lock held for
 * read, every swap PTE of area `type` in a VMA with an anon_vma is swapped in (here: a read
 * fault, do_swap_page()). A fault that cannot get memory runs direct reclaim and is retried;
 * without progress the result is -ENOMEM. Page tables are walked PMD by PMD (no table, no PTE).
 */
function* unuseMm(core: Core, mm: MmStruct, type: number): KGen<number> {
  yield* mmapReadLock(core, mm, 'unuse_mm');
  try {
    for (const vma of [...mm.vmas]) {
      if (!vma.anonVma) continue;
      for (let a = vma.start; a < vma.end; ) {
        const next = Math.min(vma.end, (Math.floor(a / PMD_SIZE) + 1) * PMD_SIZE);
        const pmdT = pmdTableOf(core, mm, a, false);
        const mi = pmdIndex(a);
        if (pmdT < 0 || entryNone(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))) {
          a = next;
          continue;
        }
        const lo = ptLo(core, pmdT, mi);
        if (!entryPresent(lo) || entryHuge(lo)) {
          a = next;
          continue;
        }
        for (; a < next; a += PAGE_SIZE) {
          // The PTE table may have changed across the previous fault: look it up again.
          const pl = ptLo(core, pmdT, mi);
          if (!entryPresent(pl) || entryHuge(pl)) break;
          const t = entryPfn(pl, ptHi(core, pmdT, mi));
          const plo = ptLo(core, t, pteIndex(a));
          if (entryPresent(plo) || !isSwapType(swpType(plo)) || swpType(plo) !== type) continue;
          for (;;) {
            const short = core.sched.current.allocShortFailures;
            let r = handleMmFault(core, vma, a, 0);
            if (typeof r !== 'number') r = yield* r;
            if (r & VM_FAULT_OOM) {
              // swapin_readahead()'s allocation: the allocator's slow path (reclaim, then the OOM
              // killer, which chooses swapoff's own process first: oom_task_origin()).
              if (yield* faultOomSlowpath(core, a, 'unuse_pte_range() swap-in', short)) continue;
              return -ENOMEM;
            }
            if (r & VM_FAULT_ERROR) return -ENOMEM;
            break;
          }
        }
        a = next;
        if (core.sched.preempt('unuse_pmd_range: next PMD')) yield RESCHED;
      }
    }
  } finally {
    mmapReadUnlock(core, mm, 'unuse_mm');
  }
  return 0;
}

/**
 * Models try_to_unuse() (mm/swapfile.c): every mm on init_mm.mmlist that still has users
 * (mmget_not_zero()) gets unuse_mm(), then the swap-cache folios of the area's slots are dropped
 * (folio_free_swap()); while slots are still in use it starts over ("goto retry": an exiting mm
 * frees its swap at its own pace, and reclaim may map a swap-cache folio's slot again behind the
 * walk). 0 when the area is empty, -ENOMEM when a page could not be swapped in, -EINTR when a
 * signal is pending.
 */
export function* tryToUnuse(core: Core, si: SwapInfo): KGen<number> {
  if (!si.materialised || si.inusePages === 0) return 0;
  for (;;) {
    // The walk of init_mm.mmlist (a snapshot: an mm linked meanwhile is walked on the retry).
    for (const mm of [...core.mmlist]) {
      if (si.inusePages === 0 || fatalSignalPending(core)) break;
      if (!mmgetNotZero(mm)) continue;
      const err = yield* unuseMm(core, mm, si.type);
      // mmput(prev_mm): the last user's put tears the mm down here, in swapoff's context.
      yield* mmput(core, mm);
      if (err) return err;
      if (core.sched.condResched('try_to_unuse: next mm')) yield RESCHED;
    }
    // The swap-cache folios of the slots still in use: swap_cache_get_folio() takes a reference,
    // then folio_lock() (which may sleep), folio_free_swap(), unlock and put.
    for (let off = 1; off < si.max && si.inusePages > 0 && !fatalSignalPending(core); off++) {
      if (si.table[off] === 0) continue;
      const head = swapCacheGetFolio(core, swpEntryVal(si.type, off));
      if (head < 0) continue;
      yield* folioLockWait(core, head, 'try_to_unuse: folio_lock');
      folioFreeSwap(core, head);
      folioUnlock(core, head);
      folioPut(core, head);
    }
    if (si.inusePages === 0) return 0;
    if (fatalSignalPending(core)) return -EINTR;
    yield* spinRetry(core.sched, 'try_to_unuse: swap entries still in use, retry');
  }
}

/**
 * Models sys_swapoff() (mm/swapfile.c) for `path`: -EFAULT for a path that is no string,
 * -ENOENT for no such device, -EINVAL when it is not an active swap area; -ENOMEM when the
 * pages it holds may not be committed (security_vm_enough_memory_mm()). The area stops taking
 * new slots (SWP_WRITEOK cleared, total_swap_pages drops), try_to_unuse() brings every page back;
 * on failure the area is enabled again (reinsert_swap_info()) and the error returned, else the
 * area is freed (its swap_info[] slot becomes free for the next swapon). -EINTR when a signal
 * arrives while it works (the area is enabled again, as for any failure).
 */
export function* sysSwapoff(core: Core, path: unknown): KGen<number> {
  if (typeof path !== 'string') return -EFAULT;
  const dev = devicesOf(core).get(path);
  if (!dev) return -ENOENT;
  const si = dev.area;
  if (!si || !(si.flags & SWP_WRITEOK)) return -EINVAL;
  if (vmEnoughMemory(core, null, si.pages) < 0) return -ENOMEM;
  si.flags &= ~SWP_WRITEOK;
  if (core.sched.preempt('swapoff: area off the avail list')) yield RESCHED;
  // "set_current_oom_origin(); err = try_to_unuse(p->type); clear_current_oom_origin();"
  setCurrentOomOrigin(core, true);
  let err: number;
  try {
    err = yield* tryToUnuse(core, si);
  } finally {
    setCurrentOomOrigin(core, false);
  }
  if (err) {
    si.flags |= SWP_WRITEOK;
    return err;
  }
  si.flags = 0;
  si.release();
  dev.area = null;
  // The swap_info[] entry is free again; the last one is dropped so the next swapon reuses it.
  while (core.swapInfo.length > 0 && !(core.swapInfo[core.swapInfo.length - 1].flags & SWP_USED))
    core.swapInfo.pop();
  return 0;
}

/**
 * Models sys_swapon() (mm/swapfile.c) for `path`: -EFAULT for a path that is no string, -EINVAL
 * for flags outside SWAP_FLAGS_VALID, -ENOENT for no such device, -EBUSY when it is already an
 * active area; else the partition becomes a new area (alloc_swap_info(): the first free
 * swap_info[] type) with every slot free. Priority and discard flags are accepted and ignored.
 */
export function* sysSwapon(core: Core, path: unknown, flags: number): KGen<number> {
  if (typeof path !== 'string') return -EFAULT;
  if (!Number.isInteger(flags) || flags < 0 || flags & ~SWAP_FLAGS_VALID) return -EINVAL;
  const dev = devicesOf(core).get(path);
  if (!dev) return -ENOENT;
  if (dev.area) return -EBUSY;
  if (core.sched.preempt('swapon: claim_swapfile')) yield RESCHED;
  let type = core.swapInfo.findIndex((s) => !(s.flags & SWP_USED));
  if (type < 0) type = core.swapInfo.length;
  const si = new SwapInfo(type, dev.bytes / PAGE_SIZE, core.hostPool);
  core.swapInfo[type] = si;
  dev.area = si;
  return 0;
}
