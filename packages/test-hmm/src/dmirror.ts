import {
  type Core,
  copyPagesUser,
  EBUSY,
  EFAULT,
  EINVAL,
  ENOENT,
  ENOMEM,
  EPERM,
  type Frames,
  HMM_PFN_ERROR,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  hmmPfnFlags,
  hmmPfnToPfn,
  hmmRangeFault,
  type KGen,
  MMU_NOTIFY_MIGRATE,
  type MmStruct,
  MmuIntervalNotifier,
  type MmuNotifierRange,
  Mutex,
  makeDeviceExclusive,
  mmapReadLock,
  mmapReadUnlock,
  mmgetNotZero,
  mmput,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
  PAGE_SIZE,
  PG_dirty,
  PG_zone_device,
  RESCHED,
  releaseDeviceExclusive,
} from '@hmm-model/mm-core';
import { isDevicePrivatePage } from '@hmm-model/zone-device';
import type { DmirrorDevice } from './device.js';
import { MIRROR_NODE_SLOTS, MirrorTable } from './xarray.js';

/** Models DPT_XA_TAG_ATOMIC: an exclusive-access (atomic) mirror entry. */
export const DPT_XA_TAG_ATOMIC = 1;
/** Models DPT_XA_TAG_WRITE: the device may write through the entry. */
export const DPT_XA_TAG_WRITE = 3;
/**
 * Models the HMM_RANGE_DEFAULT_TIMEOUT (1000 ms) of dmirror_range_fault()/_snapshot(): the
 * model has no clock, so the timeout is a bound on retries; exceeding it gives -EBUSY.
 */
export const DMIRROR_RANGE_FAULT_RETRIES = 1000;
/** Models the unbounded fault loop of dmirror_read()/dmirror_write() as a bound on fault passes (then -EBUSY). */
export const DMIRROR_MAX_FAULT_PASSES = 1000;
/** Models the pfns[32] batch of dmirror_fault() and dmirror_snapshot(). */
export const DMIRROR_BATCH_PAGES = 32;

/** Models an entry of dmirror->pt: xa_untag_pointer() (the page) and xa_pointer_tag(). */
export interface MirrorEntry {
  /** The struct page the entry points at (system, zero, backing, coherent or own device page). */
  readonly pfn: number;
  /** 0 (read-only), DPT_XA_TAG_ATOMIC or DPT_XA_TAG_WRITE. */
  readonly tag: number;
}

/** Models struct hmm_dmirror_cmd after the entry checks of dmirror_fops_unlocked_ioctl(). */
export interface DmirrorCmd {
  readonly addr: number;
  readonly ptr: number;
  /** cmd->npages << PAGE_SHIFT (wrapped to 64 bits as the kernel computes it). */
  readonly size: number;
  /** cmd->npages as passed (the FLAGS word). */
  readonly npages: bigint;
  cpages: number;
  faults: number;
}

/** Models struct dmirror_bounce. */
interface Bounce {
  /** The vmalloc()ed buffer: pages [0, npages) of a page store of its own. */
  readonly store: Frames;
  readonly npages: number;
  readonly addr: number;
  cpages: number;
}

/**
 * Page stores behind bounce buffers, reused across calls per machine: vmalloc() memory is not
 * zeroed either, and every byte handed back to user space is written first, so reuse is safe.
 * Concurrent ioctls each hold their own buffer (a pool: taken by bounceInit(), returned by
 * bounceFree()). A store is a {@link Frames}, so a page that is one word repeated goes from
 * user memory to the device's pages and back as that word (no bytes move).
 */
const bouncePool = new WeakMap<Core, Frames[]>();
/** Largest bounce buffer kept for reuse (bigger ones are dropped after the call). */
const BOUNCE_KEEP_BYTES = 512 << 20;

/**
 * Model-only: the largest bounce buffer the model backs with host memory (4 GiB). vmalloc() of
 * more succeeds on a big enough machine; here it fails with -ENOMEM, as vmalloc() does when
 * memory runs out, rather than exhausting the host.
 */
export const DMIRROR_MAX_BOUNCE_BYTES = 2 ** 32;

/**
 * Models dmirror_bounce_init(): vmalloc(size), which fails (-ENOMEM) for sizes beyond memory;
 * the model also refuses sizes above {@link DMIRROR_MAX_BOUNCE_BYTES}.
 */
function bounceInit(core: Core, addr: number, size: number): Bounce | number {
  if (size > core.ramPages * PAGE_SIZE || size > DMIRROR_MAX_BOUNCE_BYTES) return -ENOMEM;
  let pool = bouncePool.get(core);
  if (!pool) bouncePool.set(core, (pool = []));
  return { store: pool.pop() ?? core.frames.store(), npages: size / PAGE_SIZE, addr, cpages: 0 };
}

/** Models dmirror_bounce_fini(): vfree() (the store goes back to the pool). */
function bounceFree(core: Core, bounce: Bounce): void {
  // Keep stores of benchmark size for reuse; a huge one-off goes back to the host.
  if (bounce.store.bytesAllocated <= BOUNCE_KEEP_BYTES) bouncePool.get(core)?.push(bounce.store);
}

/**
 * Models struct dmirror (lib/test_hmm.c): one per open of a device file. The mirror `pt`
 * maps virtual page numbers to tagged page pointers (no page references held); the interval
 * notifier over the opener's whole address space erases entries on invalidation.
 */
export class Dmirror {
  /** Models the xarray `pt`: vpn -> pfn * 4 + tag. */
  readonly pt = new MirrorTable();
  /**
   * Model-only (fix K2): invalidations other than this device's own migrations, counted under
   * the mutex; MIGRATE_TO_DEV maps nothing when one happened since its migrate_vma_setup().
   */
  foreignInvalidations = 0;
  /** Models dmirror->notifier (over [0, 2^47) of the opener's mm). */
  readonly notifier: MmuIntervalNotifier;
  /** Models dmirror->flags (HMM_DMIRROR_FLAG_*). */
  flags = 0n;
  /** Models dmirror->mutex. */
  readonly mutex: Mutex;

  constructor(
    readonly core: Core,
    readonly mdevice: DmirrorDevice,
    readonly mm: MmStruct,
    /** The value stored in backing pages' zone_device_data to find this dmirror. */
    readonly id: number,
  ) {
    this.mutex = new Mutex(`dmirror->mutex (${mdevice.path}, open ${id})`);
    this.notifier = new MmuIntervalNotifier(mm, 0, 2 ** 47, {
      invalidate: (sub, range, cur) => this.invalidate(sub, range, cur),
    });
  }

  /** Models mutex_lock(&dmirror->mutex). */
  *lock(site = 'dmirror'): KGen {
    yield* this.mutex.lock(this.core.sched, site);
  }

  /** Models mutex_unlock(&dmirror->mutex). */
  unlock(site = 'dmirror'): void {
    this.mutex.unlock(this.core.sched, site);
  }

  /** Models xa_load() + xa_untag_pointer()/xa_pointer_tag(). */
  load(vpn: number): MirrorEntry | undefined {
    const v = this.pt.get(vpn);
    return v === undefined ? undefined : { pfn: Math.floor(v / 4), tag: v % 4 };
  }

  /** Models xa_store(xa_tag_pointer(page, tag)). */
  store(vpn: number, pfn: number, tag: number): void {
    this.pt.set(vpn, pfn * 4 + tag);
  }

  /** Models xa_erase(). */
  erase(vpn: number): void {
    this.pt.delete(vpn);
  }

  /** Models xa_store() of nr consecutive pages (one folio's loop of xa_store()s) with one tag. */
  storeRun(vpn: number, pfn: number, nr: number, tag: number): void {
    this.pt.storeRun(vpn, pfn, nr, tag);
  }

  /** Models xa_erase() of nr consecutive indices (one folio's loop of xa_erase()s). */
  eraseRun(vpn: number, nr: number): void {
    this.pt.eraseRange(vpn, vpn + nr - 1);
  }

  /** The mirror as (virtual address, entry) pairs in address order, for inspection. */
  entries(): { addr: number; pfn: number; tag: number }[] {
    return [...this.pt.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([vpn, v]) => ({ addr: vpn * PAGE_SIZE, pfn: Math.floor(v / 4), tag: v % 4 }));
  }

  /**
   * Models dmirror_do_update(): erase entries from start >> PAGE_SHIFT through end >> PAGE_SHIFT.
   * xa_for_each_range()'s last index is inclusive, so the page at `end` goes too (kernel quirk).
   */
  doUpdate(start: number, end: number): void {
    this.pt.eraseRange(Math.floor(start / PAGE_SIZE), Math.floor(end / PAGE_SIZE));
  }

  /**
   * Models dmirror_interval_invalidate(): ignore this device's own migrations
   * (MMU_NOTIFY_MIGRATE with owner == mdevice); otherwise bump the sequence and erase the range.
   */
  invalidate(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): KGen<boolean> | boolean {
    // v6.19 ignores its own device's migrations ("handled as part of the migration process"),
    // which holds only for the migrating ioctl itself; fix K3 (README, Findings) invalidates.
    const own = range.event === MMU_NOTIFY_MIGRATE && range.owner === this.mdevice;
    if (own && !this.core.fixed('K3')) return true;
    // mutex_lock() of a free mutex does not sleep: the whole callback runs here. A non-blockable
    // range (the OOM reaper's) only trylocks: "else if (!mutex_trylock(&dmirror->mutex)) return false".
    if (!this.mutex.trylock(this.core.sched, 'dmirror_interval_invalidate'))
      return mmuNotifierRangeBlockable(range) ? this.invalidateLocked(sub, range, curSeq, own) : false;
    this.invalidateUpdate(sub, range, curSeq, own);
    return true;
  }

  /** dmirror_interval_invalidate() after a mutex_lock() that sleeps (the mutex is held). */
  private *invalidateLocked(
    sub: MmuIntervalNotifier,
    range: MmuNotifierRange,
    curSeq: number,
    own: boolean,
  ): KGen<boolean> {
    yield* this.lock('dmirror_interval_invalidate');
    this.invalidateUpdate(sub, range, curSeq, own);
    return true;
  }

  /** dmirror_interval_invalidate() under the mutex: the sequence, the mirror, the unlock. */
  private invalidateUpdate(
    sub: MmuIntervalNotifier,
    range: MmuNotifierRange,
    curSeq: number,
    own: boolean,
  ): void {
    mmuIntervalSetSeq(sub, curSeq);
    this.doUpdate(range.start, range.end);
    if (!own) this.foreignInvalidations++;
    this.unlock('dmirror_interval_invalidate');
  }

  /** Models mmget_not_zero(dmirror->notifier.mm). */
  mmGet(): boolean {
    return mmgetNotZero(this.mm);
  }

  /** Models mmput(dmirror->notifier.mm). */
  *mmPut(): KGen {
    yield* mmput(this.core, this.mm);
  }

  /** The frame holding a mirrored page's bytes: the backing page for a device-private page. */
  dataPfn(pfn: number): number {
    if (!(this.core.map.flags[pfn] & PG_zone_device) || !isDevicePrivatePage(this.core, pfn)) return pfn;
    const head = this.core.map.head[pfn];
    return this.core.map.priv[head] + (pfn - head);
  }
}

/** Models dmirror_do_fault(): store hmm_range_fault()'s pages into the mirror. */
function doFault(dm: Dmirror, range: HmmRange): number {
  const n = (range.end - range.start) / PAGE_SIZE;
  const base = range.start / PAGE_SIZE;
  for (let i = 0; i < n; i++) {
    const v = range.hmmPfns[i];
    const f = hmmPfnFlags(v);
    if (f & HMM_PFN_ERROR || !(f & HMM_PFN_VALID)) {
      dm.core.warn(`dmirror_do_fault: invalid hmm pfn entry 0x${v.toString(16)}`);
      continue;
    }
    let tag = 0;
    if (f & HMM_PFN_WRITE) tag = DPT_XA_TAG_WRITE;
    else if (range.defaultFlags & HMM_PFN_REQ_WRITE) {
      dm.core.warn('dmirror_do_fault: write requested but page is read-only');
      return -EFAULT;
    }
    dm.store(base + i, hmmPfnToPfn(v), tag);
  }
  return 0;
}

/**
 * Models dmirror_range_fault(): hmm_range_fault() under the mmap read lock with the notifier
 * sequence protocol (retry on -EBUSY and on a sequence change), then store the result under
 * the mirror mutex. The timeout is a bounded retry count.
 */
function* rangeFault(dm: Dmirror, range: HmmRange): KGen<number> {
  const core = dm.core;
  for (let tries = 0; ; tries++) {
    if (tries >= DMIRROR_RANGE_FAULT_RETRIES) return -EBUSY;
    range.notifierSeq = yield* mmuIntervalReadBegin(core, range.notifier);
    yield* mmapReadLock(core, dm.mm, 'dmirror_range_fault');
    let ret: number;
    try {
      ret = yield* hmmRangeFault(core, range);
    } finally {
      mmapReadUnlock(core, dm.mm, 'dmirror_range_fault');
    }
    if (ret) {
      if (ret === -EBUSY) continue;
      return ret;
    }
    if (core.sched.preempt('dmirror_range_fault: hmm_range_fault done, mutex not taken')) yield RESCHED;
    yield* dm.lock('dmirror_range_fault');
    if (mmuIntervalReadRetry(range.notifier, range.notifierSeq)) {
      dm.unlock('dmirror_range_fault');
      continue;
    }
    break;
  }
  const ret = doFault(dm, range);
  dm.unlock('dmirror_range_fault');
  return ret;
}

/** Models dmirror_fault(): fault [start, end) into the mirror in 32-page hmm_range_fault batches. */
export function* dmirrorFault(dm: Dmirror, start: number, end: number, write: boolean): KGen<number> {
  if (!dm.mmGet()) return 0;
  const pfns = new Float64Array(DMIRROR_BATCH_PAGES);
  const range: HmmRange = {
    notifier: dm.notifier,
    notifierSeq: 0,
    start,
    end,
    hmmPfns: pfns,
    pfnFlagsMask: 0,
    defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
    devPrivateOwner: dm.mdevice,
  };
  let ret = 0;
  for (let addr = start; addr < end; addr = range.end) {
    range.start = addr;
    range.end = Math.min(addr + DMIRROR_BATCH_PAGES * PAGE_SIZE, end);
    range.hmmPfns = pfns.subarray(0, (range.end - addr) / PAGE_SIZE);
    ret = yield* rangeFault(dm, range);
    if (ret) break;
  }
  yield* dm.mmPut();
  return ret;
}

/**
 * Copies between the bounce buffer and the mirrored pages of [start, end), coalescing runs of
 * pages whose frames are contiguous into one page-store copy. Stops at the first
 * page without an entry (or, for writes, without the WRITE tag): -ENOENT, with bounce.cpages
 * counting the pages done. The kernel copies page by page (one memcpy per page, counted as a
 * copy command each); the model walks the mirror node by node and copies whole runs.
 *
 * A write is dmirror_do_write()'s memcpy_to_page(): it does not dirty the page. With fix K11 the
 * system page's folio is marked dirty (folio_mark_dirty()) as it is written, so that reclaim
 * writes a clean swap-cache or lazy-free folio the device wrote back instead of dropping it.
 */
function copyMirrored(dm: Dmirror, start: number, end: number, bounce: Bounce, write: boolean): number {
  const core = dm.core;
  const flags = core.map.flags;
  const head = core.map.head;
  let runPfn = -1;
  let runLen = 0;
  let runOff = 0;
  let ret = 0;
  const startVpn = start / PAGE_SIZE;
  const endVpn = end / PAGE_SIZE;
  let vpn = startVpn;
  let off = start - bounce.addr;
  // Data pfn of the previous page and its mirror value: the next page of the same device folio
  // (value + 4, same tag, same head) has the next data pfn without asking the pgmap again.
  let prevVal = -1;
  let prevData = -1;
  const markDirty = write && core.fixed('K11');
  while (vpn < endVpn) {
    const slots = dm.pt.slots(vpn);
    if (slots === undefined) {
      ret = -ENOENT;
      break;
    }
    const i0 = vpn % MIRROR_NODE_SLOTS;
    const n = Math.min(endVpn - vpn, MIRROR_NODE_SLOTS - i0);
    let k = 0;
    for (; k < n; k++, off += PAGE_SIZE) {
      const v = slots[i0 + k];
      if (v < 0 || (write && v % 4 !== DPT_XA_TAG_WRITE)) break;
      const p = Math.floor(v / 4);
      let pfn: number;
      if (!(flags[p] & PG_zone_device)) {
        pfn = p;
        if (markDirty) flags[head[p]] |= PG_dirty;
      } else if (v === prevVal + 4 && head[p] === head[p - 1]) pfn = prevData + 1;
      else pfn = dm.dataPfn(p);
      prevVal = v;
      prevData = pfn;
      if (runLen > 0 && pfn === runPfn + runLen) {
        runLen++;
        continue;
      }
      if (runLen > 0) flushRun(core, runPfn, runLen, runOff, write, bounce);
      runPfn = pfn;
      runLen = 1;
      runOff = off;
    }
    vpn += k;
    if (k < n) {
      ret = -ENOENT;
      break;
    }
  }
  if (runLen > 0) flushRun(core, runPfn, runLen, runOff, write, bounce);
  return ret;
}

/** One coalesced run of {@link copyMirrored}: runLen pages at runPfn <-> the bounce at byte runOff. */
function flushRun(
  core: Core,
  runPfn: number,
  runLen: number,
  runOff: number,
  write: boolean,
  bounce: Bounce,
): void {
  const at = runOff / PAGE_SIZE;
  if (write) core.frames.copy(runPfn, at, runLen, bounce.store);
  else bounce.store.copy(at, runPfn, runLen, core.frames);
  bounce.cpages += runLen;
  // dmirror_do_read()/_do_write(): one memcpy per page.
  core.events.copy(runLen, runLen * PAGE_SIZE);
}

/** Models dmirror_do_read(): copy mirrored pages into the bounce buffer; -ENOENT at the first hole. */
function doRead(dm: Dmirror, start: number, end: number, bounce: Bounce): number {
  return copyMirrored(dm, start, end, bounce, false);
}

/** Models dmirror_do_write(): store the bounce buffer into pages mirrored with the WRITE tag. */
function doWrite(dm: Dmirror, start: number, end: number, bounce: Bounce): number {
  return copyMirrored(dm, start, end, bounce, true);
}

/** The shared read/write loop: access, fault the rest on -ENOENT, retry. */
function* accessLoop(
  dm: Dmirror,
  cmd: DmirrorCmd,
  bounce: Bounce,
  access: (start: number, end: number) => number,
  write: boolean,
): KGen<number> {
  const end = cmd.addr + cmd.size;
  let start = cmd.addr;
  let ret: number;
  for (;;) {
    yield* dm.lock(write ? 'dmirror_write' : 'dmirror_read');
    ret = access(start, end);
    dm.unlock(write ? 'dmirror_write' : 'dmirror_read');
    if (ret !== -ENOENT) break;
    if (cmd.faults >= DMIRROR_MAX_FAULT_PASSES) return -EBUSY;
    start = cmd.addr + bounce.cpages * PAGE_SIZE;
    ret = yield* dmirrorFault(dm, start, end, write);
    if (ret) break;
    cmd.faults++;
  }
  return ret;
}

/** Models copy_to_user(cmd->ptr, bounce.ptr, bounce.size). */
function copyToUser(core: Core, userMm: MmStruct, ptr: number, bounce: Bounce): KGen<number> {
  return copyPagesUser(core, userMm, ptr, bounce.store, 0, bounce.npages, 'write');
}

/** Models copy_from_user(bounce.ptr, cmd->ptr, bounce.size). */
function copyFromUser(core: Core, userMm: MmStruct, ptr: number, bounce: Bounce): KGen<number> {
  return copyPagesUser(core, userMm, ptr, bounce.store, 0, bounce.npages, 'read');
}

/** Models dmirror_read() (HMM_DMIRROR_READ). `userMm` is the caller's mm for copy_to_user. */
export function* dmirrorRead(dm: Dmirror, cmd: DmirrorCmd, userMm: MmStruct): KGen<number> {
  const bounce = bounceInit(dm.core, cmd.addr, cmd.size);
  if (typeof bounce === 'number') return bounce;
  try {
    let ret = yield* accessLoop(dm, cmd, bounce, (s, e) => doRead(dm, s, e, bounce), false);
    if (ret === 0 && (yield* copyToUser(dm.core, userMm, cmd.ptr, bounce)) < 0) ret = -EFAULT;
    cmd.cpages = bounce.cpages;
    return ret;
  } finally {
    bounceFree(dm.core, bounce);
  }
}

/** Models dmirror_write() (HMM_DMIRROR_WRITE). `userMm` is the caller's mm for copy_from_user. */
export function* dmirrorWrite(dm: Dmirror, cmd: DmirrorCmd, userMm: MmStruct): KGen<number> {
  const bounce = bounceInit(dm.core, cmd.addr, cmd.size);
  if (typeof bounce === 'number') return bounce;
  try {
    if ((yield* copyFromUser(dm.core, userMm, cmd.ptr, bounce)) < 0) return -EFAULT;
    const ret = yield* accessLoop(dm, cmd, bounce, (s, e) => doWrite(dm, s, e, bounce), true);
    cmd.cpages = bounce.cpages;
    return ret;
  } finally {
    bounceFree(dm.core, bounce);
  }
}

/**
 * Models the read-back tail of dmirror_migrate_to_device() and dmirror_exclusive(): dmirror_do_read() once over the
 * whole range under the mutex (no fault pass: a missing page is -ENOENT), then copy_to_user().
 */
export function* dmirrorReadBack(dm: Dmirror, cmd: DmirrorCmd, userMm: MmStruct): KGen<number> {
  const bounce = bounceInit(dm.core, cmd.addr, cmd.size);
  if (typeof bounce === 'number') return bounce;
  try {
    yield* dm.lock('dmirror_do_read');
    let ret = doRead(dm, cmd.addr, cmd.addr + cmd.size, bounce);
    dm.unlock('dmirror_do_read');
    if (ret === 0 && (yield* copyToUser(dm.core, userMm, cmd.ptr, bounce)) < 0) ret = -EFAULT;
    cmd.cpages = bounce.cpages;
    return ret;
  } finally {
    bounceFree(dm.core, bounce);
  }
}

/** Models dmirror_check_atomic() (HMM_DMIRROR_CHECK_EXCLUSIVE): -EPERM if any entry is still ATOMIC. */
export function dmirrorCheckAtomic(dm: Dmirror, start: number, end: number): number {
  const first = start / PAGE_SIZE;
  const last = end / PAGE_SIZE;
  if (last - first > dm.pt.size) {
    for (const [vpn, v] of dm.pt)
      if (vpn >= first && vpn < last && v % 4 === DPT_XA_TAG_ATOMIC) return -EPERM;
    return 0;
  }
  for (let vpn = first; vpn < last; vpn++) {
    const v = dm.pt.get(vpn);
    if (v !== undefined && v % 4 === DPT_XA_TAG_ATOMIC) return -EPERM;
  }
  return 0;
}

/**
 * Models dmirror_exclusive() (HMM_DMIRROR_EXCLUSIVE): make_device_exclusive() each page (owner
 * NULL, as the driver passes), map it ATOMIC, unlock and put the folio; then read the range back
 * from the mirror like READ (-ENOENT if an entry went away).
 */
export function* dmirrorExclusive(dm: Dmirror, cmd: DmirrorCmd, userMm: MmStruct): KGen<number> {
  const core = dm.core;
  const start = cmd.addr;
  const end = start + cmd.size;
  if (!dm.mmGet()) return -EINVAL;
  yield* mmapReadLock(core, dm.mm, 'dmirror_exclusive');
  let ret = 0;
  try {
    for (let addr = start; addr < end; addr += PAGE_SIZE) {
      const pfn = yield* makeDeviceExclusive(core, dm.mm, addr, null);
      if (pfn < 0) {
        ret = pfn;
        break;
      }
      yield* dm.lock('dmirror_exclusive');
      dm.store(addr / PAGE_SIZE, pfn, DPT_XA_TAG_ATOMIC);
      dm.unlock('dmirror_exclusive');
      releaseDeviceExclusive(core, pfn);
    }
  } finally {
    mmapReadUnlock(core, dm.mm, 'dmirror_exclusive');
  }
  yield* dm.mmPut();
  if (ret) return ret;
  return yield* dmirrorReadBack(dm, cmd, userMm);
}
