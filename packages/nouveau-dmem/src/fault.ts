import {
  BLOCK_PAGES,
  EBUSY,
  EFAULT,
  EINVAL,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  hmmPfnFlags,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
  KernelBug,
  type KGen,
  type MmStruct,
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  mmapReadLock,
  mmapReadUnlock,
  mmgetNotZero,
  mmput,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
  PAGE_SHIFT,
  PAGE_SIZE,
  PG_dirty,
  RESCHED,
} from '@hmm-model/mm-core';
import { isDevicePrivatePage } from '@hmm-model/zone-device';
import { NVIF_VMM_PFNMAP_V0_NONE } from './constants.js';
import { nouveauDmemPageAddr } from './dmem.js';
import { type GpuPte, nvifPfnmapEntry } from './gpuvmm.js';
import type { NouveauSvmm } from './types.js';

/** Models the HMM_RANGE_DEFAULT_TIMEOUT loop bound of nouveau_range_fault() (as a retry count). */
const RANGE_FAULT_RETRIES = 64;

/**
 * Models nouveau_hmm_convert_pfn() (nouveau_svm.c): turn the single hmm_pfns[] result into a
 * PFNMAP entry. A map order promotes the entry to a big page (page shift order + PAGE_SHIFT)
 * at the aligned address; a device-private page (necessarily ours: hmm only reports pages of
 * dev_private_owner) maps its VRAM address, anything else its host physical address.
 *
 * v6.19 maps a system page writable whenever hmm_range_fault() reports it writable, a GPU read
 * fault too, and never dirties it: GPU writes do not set the CPU PTE's dirty bit. With fix K12
 * a system page is mapped writable only for a GPU write fault, and its folio is marked dirty
 * as it is mapped (the caller holds svmm->mutex after the sequence check: no invalidation can
 * come between), so that reclaim writes back what the GPU wrote.
 */
function convertPfn(
  svmm: NouveauSvmm,
  addr: number,
  hmmPfn: number,
  faultWrite: boolean,
): { va: number; shift: number; entry: number } {
  const flags = hmmPfnFlags(hmmPfn);
  if (!(flags & HMM_PFN_VALID)) return { va: addr, shift: PAGE_SHIFT, entry: NVIF_VMM_PFNMAP_V0_NONE };
  let pfn = hmmPfnToPfn(hmmPfn);
  let va = addr;
  let shift = PAGE_SHIFT;
  const order = hmmPfnToMapOrder(hmmPfn);
  if (order) {
    shift = order + PAGE_SHIFT;
    const size = 2 ** shift;
    va = Math.floor(addr / size) * size;
    pfn -= (addr - va) / PAGE_SIZE;
  }
  const core = svmm.drm.core;
  let write = (flags & HMM_PFN_WRITE) !== 0;
  if (isDevicePrivatePage(core, pfn))
    return { va, shift, entry: nvifPfnmapEntry(nouveauDmemPageAddr(svmm.drm, pfn), true, write) };
  if (write && core.fixed('K12')) {
    write = faultWrite;
    if (write) core.map.flags[core.map.head[pfn]] |= PG_dirty;
  }
  return { va, shift, entry: nvifPfnmapEntry(pfn * PAGE_SIZE, false, write) };
}

/**
 * Models the GPU fault path for one fault, nouveau_svm_fault() -> nouveau_range_fault(): a
 * temporary interval notifier over the page, hmm_range_fault() with HMM_PFN_REQ_FAULT (| WRITE
 * for a write access) and dev_private_owner = drm->dev under the mmap read lock, retried on
 * -EBUSY and on a notifier sequence change; then, under svmm->mutex, convert and PFNMAP the
 * result (a system page, a system THP as a 2 MiB GPU page, or a device page this GPU owns).
 * Device pages of another owner are migrated back to RAM by the CPU fault hmm_range_fault
 * triggers. Returns 0 or -errno (-EFAULT, -EPERM, -EBUSY on timeout).
 */
export function gpuFault(svmm: NouveauSvmm, addr: number, write: boolean): number {
  return svmm.drm.core.sched.runSync(gpuFaultGen(svmm, addr, write), 'nouveau_svm_fault');
}

/** nouveau_svm_range_invalidate() when svmm->mutex is held: it sleeps for it. */
function* rangeInvalidateSlow(svmm: NouveauSvmm, s: MmuIntervalNotifier, seq: number): KGen<boolean> {
  const core = svmm.drm.core;
  yield* svmm.mutex.lock(core.sched, 'nouveau_svm_range_invalidate');
  mmuIntervalSetSeq(s, seq);
  svmm.mutex.unlock(core.sched, 'nouveau_svm_range_invalidate');
  return true;
}

/** Models struct svm_notifier: the interval notifier of one nouveau_range_fault() and its svmm. */
class SvmNotifier extends MmuIntervalNotifier {
  constructor(
    readonly svmm: NouveauSvmm,
    mm: MmStruct,
    start: number,
    end: number,
  ) {
    super(mm, start, end, SVM_NOTIFIER_OPS);
  }
}

/**
 * Models nouveau_svm_mni_ops. One object for every fault (the svmm comes from the notifier, as
 * container_of() finds it), not a closure per fault that V8 would compile again after a full GC.
 */
const SVM_NOTIFIER_OPS: MmuIntervalNotifierOps = {
  // Models nouveau_svm_range_invalidate(): under svmm->mutex, only the sequence moves.
  invalidate(s, range, seq) {
    const svmm = (s as SvmNotifier).svmm;
    // mutex_lock() of a free mutex does not sleep: no generator then. On a non-blockable range
    // (the OOM reaper's) a busy mutex refuses it: "else if (!mutex_trylock(&sn->svmm->mutex))
    // return false;".
    if (!svmm.mutex.trylock(svmm.drm.core.sched, 'nouveau_svm_range_invalidate'))
      return mmuNotifierRangeBlockable(range) ? rangeInvalidateSlow(svmm, s, seq) : false;
    mmuIntervalSetSeq(s, seq);
    svmm.mutex.unlock(svmm.drm.core.sched, 'nouveau_svm_range_invalidate');
    return true;
  },
};

/**
 * The kernel path of {@link gpuFault}, for tasks. nouveau_svm_fault() holds a user of the svmm's
 * mm while it faults: mmget_not_zero(), which fails once the process's exit dropped the last one
 * (the fault is cancelled: -EFAULT), then mmput(), which may be the last and run exit_mmap() in
 * the fault worker.
 */
export function* gpuFaultGen(svmm: NouveauSvmm, addr: number, write: boolean): KGen<number> {
  if (!svmm.notifier) return -EFAULT;
  const mm = svmm.mm;
  if (!mmgetNotZero(mm)) return -EFAULT;
  try {
    return yield* nouveauRangeFault(svmm, addr, write);
  } finally {
    yield* mmput(svmm.drm.core, mm);
  }
}

/** nouveau_range_fault() for one page, with a user of the mm held. */
function* nouveauRangeFault(svmm: NouveauSvmm, addr: number, write: boolean): KGen<number> {
  const core = svmm.drm.core;
  const mm = svmm.mm;
  const start = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  const sub = new SvmNotifier(svmm, mm, start, start + PAGE_SIZE);
  mmuIntervalNotifierInsert(sub);
  const range: HmmRange = {
    notifier: sub,
    notifierSeq: 0,
    start,
    end: start + PAGE_SIZE,
    hmmPfns: new Float64Array(1),
    defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
    pfnFlagsMask: 0,
    devPrivateOwner: svmm.drm.dev,
  };
  let ret = -EBUSY;
  try {
    for (let tries = 0; tries < RANGE_FAULT_RETRIES; tries++) {
      range.notifierSeq = yield* mmuIntervalReadBegin(core, sub);
      yield* mmapReadLock(core, mm, 'nouveau_range_fault');
      // nouveau_svm_fault() is the fault buffer's work item: its allocations are a kernel
      // thread's, which the OOM killer never chooses (Task.kthreadWork, mm-core oomCurrent()).
      const worker = core.sched.current;
      worker.kthreadWork++;
      try {
        ret = yield* hmmRangeFault(core, range);
      } finally {
        worker.kthreadWork--;
        mmapReadUnlock(core, mm, 'nouveau_range_fault');
      }
      if (ret === -EBUSY) continue;
      if (ret) break;
      if (core.sched.preempt('nouveau_range_fault: hmm_range_fault done, svmm->mutex not taken'))
        yield RESCHED;
      yield* svmm.mutex.lock(core.sched, 'nouveau_range_fault');
      try {
        if (mmuIntervalReadRetry(sub, range.notifierSeq)) {
          ret = -EBUSY;
          continue;
        }
        const { va, shift, entry } = convertPfn(svmm, start, range.hmmPfns[0], write);
        svmm.vmm.pfnmap(va, shift, [entry], 1);
      } finally {
        svmm.mutex.unlock(core.sched, 'nouveau_range_fault');
      }
      break;
    }
  } finally {
    mmuIntervalNotifierRemove(sub);
  }
  return ret;
}

/** Models the GPU MMU walking the page tables nvkm_vmm_pfn_map() wrote: the entry for va, or null. */
export function gpuPte(svmm: NouveauSvmm, va: number): GpuPte | null {
  return svmm.vmm.lookup(va);
}

/**
 * Models a GPU engine access with replayable faults (nouveau_svm_fault() + nouveau_svm_fault_replay()):
 * per page of [addr, addr + buf.length), translate through the GPU page tables; a missing entry
 * or a write to a read-only entry raises a GPU fault ({@link gpuFault}) and the access is replayed. Bytes come from VRAM (the driver's store)
 * or from host memory. Returns 0 or the fault's -errno (bytes before the failing page moved).
 */
export function gpuAccess(svmm: NouveauSvmm, addr: number, buf: Uint8Array, dir: 'read' | 'write'): number {
  return svmm.drm.core.sched.runSync(gpuAccessGen(svmm, addr, buf, dir), 'gpu access');
}

/**
 * What a GPU access moves for one translated run: n bytes at physical `phys` of VRAM or host
 * memory (within one GPU page, and for the host within one 2 MiB frames block), which are bytes
 * [done, done + n) of the access.
 */
type GpuMoveRun = (vram: boolean, phys: number, done: number, n: number) => void;

/**
 * The engine walk of every GPU access ({@link gpuAccessGen}, {@link gpuAccessWordsGen}): per
 * GPU page of [addr, addr + len), translate through the GPU page tables; a missing entry or a
 * write to a read-only entry raises a GPU fault ({@link gpuFault}) and the access is replayed.
 * Returns 0 or the fault's -errno (the runs before the failing page moved).
 */
function* gpuAccessRuns(
  svmm: NouveauSvmm,
  addr: number,
  len: number,
  write: boolean,
  move: GpuMoveRun,
  job = false,
): KGen<number> {
  let done = 0;
  while (done < len) {
    const a = addr + done;
    // A job the engine runs on its own (gpuJobWordsGen()): the CPUs go on meanwhile.
    if (job && done > 0 && svmm.drm.core.sched.preempt('gpu engine: job, next GPU page')) yield RESCHED;
    let pte = svmm.vmm.lookup(a);
    for (let tries = 0; (!pte || (write && !pte.writable)) && tries < 8; tries++) {
      const r = yield* gpuFaultGen(svmm, a, write);
      if (r) return r;
      pte = svmm.vmm.lookup(a);
    }
    if (!pte || (write && !pte.writable)) return -EFAULT;
    // The rest of the entry's page (4 KiB or 2 MiB) moves at once: nothing runs in between.
    let n = Math.min(pte.va + 2 ** pte.pageShift - a, len - done);
    const phys = pte.addr + (a - pte.va);
    const vram = pte.aperture === 'vram';
    if (!vram) {
      // A host page of either size is physically contiguous within one 2 MiB frames block.
      const pfn = Math.floor(phys / PAGE_SIZE);
      n = Math.min(n, (BLOCK_PAGES - (pfn % BLOCK_PAGES)) * PAGE_SIZE - (phys % PAGE_SIZE));
      const map = svmm.drm.core.map;
      if (map.refcount[map.head[pfn]] === 0) throw gpuUseAfterFree(svmm, a, pfn, write);
    }
    move(vram, phys, done, n);
    done += n;
  }
  return 0;
}

/**
 * Model-only detection: a GPU access through the svmm's page tables reached a free host page (the
 * entry outlived the page: nothing invalidated it when the page was freed). The kernel sees no GPU
 * DMA, so this is the model's report of what would be a silent use-after-free (nouveau finding
 * 14: exit_mmap() frees the pages of an svmm without ->release).
 */
function gpuUseAfterFree(svmm: NouveauSvmm, va: number, pfn: number, write: boolean): KernelBug {
  return new KernelBug({
    kind: 'BUG',
    what: 'use-after-free (GPU DMA)',
    fn: 'nouveau_svmm_invalidate_range_start',
    file: 'drivers/gpu/drm/nouveau/nouveau_svm.c',
    module: 'nouveau',
    why: `a GPU ${write ? 'write' : 'read'} through svmm ${svmm.id} at 0x${va.toString(16)} reached pfn 0x${pfn.toString(16)}, a free page: its GPU page-table entry was not invalidated when the page was freed${svmm.mm.users === 0 ? " (the svmm's mm has exited: nouveau_mn_ops has no ->release)" : ''}`,
  });
}

/** The path of {@link gpuAccess} (GPU engine, faults and replays), for tasks. */
export function gpuAccessGen(
  svmm: NouveauSvmm,
  addr: number,
  buf: Uint8Array,
  dir: 'read' | 'write',
): KGen<number> {
  const write = dir === 'write';
  const frames = svmm.drm.core.frames;
  const vramMem = svmm.drm.vram;
  return gpuAccessRuns(svmm, addr, buf.length, write, (vram, phys, done, n) => {
    if (vram) {
      const part = buf.subarray(done, done + n);
      if (write) vramMem.write(phys, part);
      else vramMem.read(phys, part);
      return;
    }
    const pfn = Math.floor(phys / PAGE_SIZE);
    const nr = Math.ceil((phys + n) / PAGE_SIZE) - pfn;
    const blk = write ? frames.writeBlock(pfn, nr) : frames.readBlock(pfn, nr);
    const off = (pfn % BLOCK_PAGES) * PAGE_SIZE + (phys % PAGE_SIZE);
    if (write) blk.set(buf.subarray(done, done + n), off);
    else buf.set(blk.subarray(off, off + n), done);
  });
}

/**
 * Model-only: a GPU kernel's loads or stores of every 32-bit word of whole pages, each page one
 * word repeated (the GPU counterpart of mm-core's accessWords()): the translation, faults and
 * replays of {@link gpuAccessGen} over [addr, addr + words.length pages), with no bytes moved.
 * A store makes page k words[k] repeated; a load sets words[k] to the word page k repeats, or
 * -1 when its words differ. addr must be page aligned (else -EINVAL).
 */
export function gpuAccessWordsGen(
  svmm: NouveauSvmm,
  addr: number,
  words: Float64Array,
  dir: 'read' | 'write',
): KGen<number> {
  return accessWords(svmm, addr, words, dir, false);
}

/** {@link gpuAccessWordsGen}, and a job's (see {@link gpuJobWordsGen}) when `job`. */
function* accessWords(
  svmm: NouveauSvmm,
  addr: number,
  words: Float64Array,
  dir: 'read' | 'write',
  job = false,
): KGen<number> {
  if (addr % PAGE_SIZE !== 0) return -EINVAL;
  const write = dir === 'write';
  const frames = svmm.drm.core.frames;
  const vramStore = svmm.drm.vram.store;
  return yield* gpuAccessRuns(
    svmm,
    addr,
    words.length * PAGE_SIZE,
    write,
    (vram, phys, done, n) => {
      const store = vram ? vramStore : frames;
      const pfn = phys / PAGE_SIZE;
      const first = done / PAGE_SIZE;
      const nr = n / PAGE_SIZE;
      if (write) store.fillWords(pfn, nr, words, first);
      else for (let j = 0; j < nr; j++) words[first + j] = store.uniformWord(pfn + j);
    },
    job,
  );
}

/**
 * Model-only: a GPU job that stores or loads words (see {@link gpuAccessWordsGen}) and runs on the
 * engine on its own, as work submitted on the DRM client's channel does: the process that
 * submitted it waits for its fence in user space, and may exit meanwhile. Between GPU pages the
 * CPUs run; its GPU faults hold the mm only while they last ({@link gpuFaultGen}). Returns 0 or
 * the first fault's -errno.
 */
export function gpuJobWordsGen(
  svmm: NouveauSvmm,
  addr: number,
  words: Float64Array,
  dir: 'read' | 'write' = 'write',
): KGen<number> {
  return accessWords(svmm, addr, words, dir, true);
}

/** Models a GPU load of `length` bytes at addr via nouveau_svm_fault() replay; the bytes, or -errno. */
export function gpuRead(svmm: NouveauSvmm, addr: number, length: number): Uint8Array | number {
  const buf = new Uint8Array(length);
  const r = gpuAccess(svmm, addr, buf, 'read');
  return r ? r : buf;
}

/** Models a GPU store of `data` at addr via nouveau_svm_fault() replay; 0 or -errno. */
export function gpuWrite(svmm: NouveauSvmm, addr: number, data: Uint8Array): number {
  return gpuAccess(svmm, addr, data, 'write');
}
