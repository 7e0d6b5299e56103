import {
  accessBytes,
  EBUSY,
  EFAULT,
  EINVAL,
  HMM_PFN_ERROR,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  hmmPfnFlags,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
  type KGen,
  type MmStruct,
  MmuIntervalNotifier,
  mmapReadLock,
  mmapReadUnlock,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
  PAGE_SHIFT,
  PAGE_SIZE,
  PMD_SHIFT,
  PUD_SHIFT,
} from '@hmm-model/mm-core';
import { isDeviceCoherentPage, isDevicePrivatePage, pageDevPagemap } from '@hmm-model/zone-device';
import {
  DMIRROR_BATCH_PAGES,
  DMIRROR_RANGE_FAULT_RETRIES,
  type Dmirror,
  type DmirrorCmd,
} from './dmirror.js';
import {
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_NONE,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_PUD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO,
} from './uapi.js';

/** Models dmirror_mkentry(): the SNAPSHOT byte of one hmm_range_fault() result. */
export function dmirrorMkentry(dm: Dmirror, entry: number): number {
  const core = dm.core;
  const f = hmmPfnFlags(entry);
  if (f & HMM_PFN_ERROR) return HMM_DMIRROR_PROT_ERROR;
  if (!(f & HMM_PFN_VALID)) return HMM_DMIRROR_PROT_NONE;
  const page = hmmPfnToPfn(entry);
  let perm: number;
  if (isDevicePrivatePage(core, page)) {
    perm =
      pageDevPagemap(core, page)?.owner === dm.mdevice
        ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL
        : HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
  } else if (isDeviceCoherentPage(core, page)) {
    perm =
      pageDevPagemap(core, page)?.owner === dm.mdevice
        ? HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL
        : HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE;
  } else if (page === core.zeroPfn) {
    perm = HMM_DMIRROR_PROT_ZERO;
  } else {
    perm = HMM_DMIRROR_PROT_NONE;
  }
  perm |= f & HMM_PFN_WRITE ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ;
  const order = hmmPfnToMapOrder(entry);
  if (order + PAGE_SHIFT === PMD_SHIFT) perm |= HMM_DMIRROR_PROT_PMD;
  else if (order + PAGE_SHIFT === PUD_SHIFT) perm |= HMM_DMIRROR_PROT_PUD;
  return perm;
}

/**
 * Models dmirror_range_snapshot(): a temporary interval notifier over the range (its
 * invalidate only moves the sequence), hmm_range_fault() without fault requests, retry on
 * -EBUSY or a sequence change (bounded: -EBUSY), then one byte per page.
 */
function* rangeSnapshot(
  dm: Dmirror,
  range: HmmRange,
  perm: Uint8Array,
  mkentry: (dm: Dmirror, entry: number) => number = dmirrorMkentry,
): KGen<number> {
  const core = dm.core;
  const notifier = new MmuIntervalNotifier(dm.mm, range.start, range.end, {
    // Models dmirror_snapshot_invalidate(): under dmirror->mutex, only the sequence moves. A free
    // mutex does not sleep; a non-blockable range (the OOM reaper's) only trylocks it: "else if
    // (!mutex_trylock(&dmirror->mutex)) return false;".
    invalidate(sub, r, cur) {
      if (dm.mutex.trylock(core.sched, 'dmirror_snapshot_invalidate')) {
        mmuIntervalSetSeq(sub, cur);
        dm.unlock('dmirror_snapshot_invalidate');
        return true;
      }
      return mmuNotifierRangeBlockable(r) ? snapshotInvalidateSlow(dm, sub, cur) : false;
    },
  });
  range.notifier = notifier;
  mmuIntervalNotifierInsert(notifier);
  try {
    for (let tries = 0; ; tries++) {
      if (tries >= DMIRROR_RANGE_FAULT_RETRIES) return -EBUSY;
      range.notifierSeq = yield* mmuIntervalReadBegin(core, notifier);
      yield* mmapReadLock(core, dm.mm, 'dmirror_range_snapshot');
      let ret: number;
      try {
        ret = yield* hmmRangeFault(core, range);
      } finally {
        mmapReadUnlock(core, dm.mm, 'dmirror_range_snapshot');
      }
      if (ret) {
        if (ret === -EBUSY) continue;
        return ret;
      }
      yield* dm.lock('dmirror_range_snapshot');
      if (mmuIntervalReadRetry(notifier, range.notifierSeq)) {
        dm.unlock('dmirror_range_snapshot');
        continue;
      }
      break;
    }
    const n = (range.end - range.start) / PAGE_SIZE;
    // dmirror_mkentry() per page; the pages of one folio reported with the same flags (and map
    // order) get the same byte, so it is computed once per folio.
    const head = core.map.head;
    let prevHead = -1;
    let prevFlags = -1;
    let prevPerm = 0;
    for (let i = 0; i < n; i++) {
      const entry = range.hmmPfns[i];
      const f = hmmPfnFlags(entry);
      if (f & HMM_PFN_VALID && !(f & HMM_PFN_ERROR)) {
        const h = head[hmmPfnToPfn(entry)];
        if (h === prevHead && f === prevFlags) {
          perm[i] = prevPerm;
          continue;
        }
        prevHead = h;
        prevFlags = f;
        prevPerm = mkentry(dm, entry);
        perm[i] = prevPerm;
        continue;
      }
      perm[i] = mkentry(dm, entry);
    }
    dm.unlock('dmirror_range_snapshot');
    return 0;
  } finally {
    mmuIntervalNotifierRemove(notifier);
  }
}

/**
 * Models dmirror_snapshot() (HMM_DMIRROR_SNAPSHOT): in 32-page batches, snapshot the CPU page
 * table as seen by this device and copy one byte per page to cmd.ptr; cpages += bytes copied.
 */
export function* dmirrorSnapshot(
  dm: Dmirror,
  cmd: DmirrorCmd,
  userMm: MmStruct,
  mkentry: (dm: Dmirror, entry: number) => number = dmirrorMkentry,
): KGen<number> {
  const start = cmd.addr;
  const end = start + cmd.size;
  if (!dm.mmGet()) return -EINVAL;
  const pfns = new Float64Array(DMIRROR_BATCH_PAGES);
  const perm = new Uint8Array(DMIRROR_BATCH_PAGES);
  const range: HmmRange = {
    notifier: dm.notifier,
    notifierSeq: 0,
    start,
    end,
    hmmPfns: pfns,
    pfnFlagsMask: 0,
    defaultFlags: 0,
    devPrivateOwner: dm.mdevice,
  };
  let uptr = cmd.ptr;
  let ret = 0;
  for (let addr = start; addr < end; ) {
    const next = Math.min(addr + DMIRROR_BATCH_PAGES * PAGE_SIZE, end);
    const n = (next - addr) / PAGE_SIZE;
    range.start = addr;
    range.end = next;
    range.hmmPfns = pfns.subarray(0, n);
    ret = yield* rangeSnapshot(dm, range, perm, mkentry);
    if (ret) break;
    if ((yield* accessBytes(dm.core, userMm, uptr, perm.subarray(0, n), 'write')) < 0) {
      ret = -EFAULT;
      break;
    }
    cmd.cpages += n;
    uptr += n;
    addr = next;
  }
  yield* dm.mmPut();
  return ret;
}

/**
 * Model extension (mthp.ts): the HMM_DMIRROR_SNAPSHOT_ORDER byte of one hmm_range_fault() result:
 * the order of the folio holding the page (0 .. 9, whether CPU memory or this or another device's
 * memory), or HMM_DMIRROR_PROT_ERROR (0xff) for no page or an error. The SNAPSHOT byte cannot
 * say it: hmm_range_fault() reports a map order only for PMD and PUD mappings.
 */
export function dmirrorMkentryOrder(dm: Dmirror, entry: number): number {
  const f = hmmPfnFlags(entry);
  if (f & HMM_PFN_ERROR || !(f & HMM_PFN_VALID)) return HMM_DMIRROR_PROT_ERROR;
  const m = dm.core.map;
  return m.folioOrder(m.head[hmmPfnToPfn(entry)]);
}

/** dmirror_snapshot_invalidate() after a mutex_lock() that sleeps. */
function* snapshotInvalidateSlow(dm: Dmirror, sub: MmuIntervalNotifier, cur: number): KGen<boolean> {
  yield* dm.lock('dmirror_snapshot_invalidate');
  mmuIntervalSetSeq(sub, cur);
  dm.unlock('dmirror_snapshot_invalidate');
  return true;
}
