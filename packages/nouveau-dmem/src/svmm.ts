import {
  EAGAIN,
  type KGen,
  MMU_NOTIFY_MIGRATE,
  type MmStruct,
  MmuNotifier,
  type MmuNotifierRange,
  ModelBug,
  Mutex,
  mmapWriteLock,
  mmapWriteUnlock,
  mmuNotifierRangeBlockable,
  mmuNotifierRegister,
  mmuNotifierUnregister,
  PAGE_SHIFT,
  PAGE_SIZE,
  TASK_SIZE,
} from '@hmm-model/mm-core';
import { NouveauVmm } from './gpuvmm.js';
import type { NouveauDrm, NouveauSvmm } from './types.js';

/** Model-only: next svmm id per drm (ids start at 1 so that zone_device_data 0 means NULL). */
const nextId = new WeakMap<NouveauDrm, number>();

/**
 * Models nouveau_svmm_invalidate() (nouveau_svm.c): NVIF_VMM_V0_PFNCLR over [start, limit) of
 * the GPU page tables, when the range is not empty.
 */
export function nouveauSvmmInvalidate(svmm: NouveauSvmm, start: number, limit: number): void {
  if (limit > start) svmm.vmm.pfnclr(start, limit - start);
}

/**
 * Models nouveau_svmm_invalidate_range_start() (nouveau_svm.c): the CPU page tables of
 * [start, end) are changing. MMU_NOTIFY_MIGRATE events whose owner is this drm device are
 * ignored (the migration code updates the GPU mapping itself; fix switch K10 unmaps them too, see
 * the README's findings); anything else unmaps the range from the GPU. (The "unmanaged" window of
 * the real driver is not modelled.)
 */
function invalidateRangeStart(svmm: NouveauSvmm, range: MmuNotifierRange): KGen<number> | number {
  // "if (!mmu_notifier_range_blockable(update)) return -EAGAIN;": the OOM reaper never reaps an
  // mm with an svmm, and its refusal comes after the interval notifiers went through (finding
  // K20, mm-core's README).
  if (!mmuNotifierRangeBlockable(range)) return -EAGAIN;
  // mutex_lock() of a free mutex does not sleep: the whole callback runs here.
  if (!svmm.mutex.trylock(svmm.drm.core.sched, 'nouveau_svmm_invalidate_range_start'))
    return invalidateRangeStartSlow(svmm, range);
  invalidateRangeStartLocked(svmm, range);
  return 0;
}

/** nouveau_svmm_invalidate_range_start() after a mutex_lock() that sleeps. */
function* invalidateRangeStartSlow(svmm: NouveauSvmm, range: MmuNotifierRange): KGen<number> {
  yield* svmm.mutex.lock(svmm.drm.core.sched, 'nouveau_svmm_invalidate_range_start');
  invalidateRangeStartLocked(svmm, range);
  return 0;
}

/** nouveau_svmm_invalidate_range_start() under svmm->mutex, which it releases. */
function invalidateRangeStartLocked(svmm: NouveauSvmm, range: MmuNotifierRange): void {
  const sched = svmm.drm.core.sched;
  try {
    if (range.event === MMU_NOTIFY_MIGRATE && range.owner === svmm.drm.dev) {
      // K10 (fix switch; v6.19 returns here): the GPU keeps a writable mapping of the pages
      // being copied, so a GPU write during the copy is lost. The fix unmaps them from the GPU
      // as for any other invalidation; it is not one of K9's foreign invalidations.
      if (svmm.drm.core.fixed('K10')) nouveauSvmmInvalidate(svmm, range.start, range.end);
      return;
    }
    svmm.invalidations++;
    nouveauSvmmInvalidate(svmm, range.start, range.end);
  } finally {
    svmm.mutex.unlock(sched, 'nouveau_svmm_invalidate_range_start');
  }
}

/**
 * Models nouveau_svmm_init() (the DRM_NOUVEAU_SVM_INIT ioctl): create a GPU address space that
 * mirrors `mm` and register its mmu notifier (__mmu_notifier_register(): an hlist subscription
 * with nouveau_mn_ops, which has ->invalidate_range_start and no ->release). Synchronous, for a
 * caller with nothing else in the kernel; a task that races with others uses
 * {@link nouveauSvmmInitLocked}. A registration that fails (the mm has no users left) leaves the
 * svmm without a notifier, and its GPU faults fail (-EFAULT).
 */
export function nouveauSvmmInit(drm: NouveauDrm, mm: MmStruct): NouveauSvmm {
  const id = nextId.get(drm) ?? 1;
  nextId.set(drm, id + 1);
  const svmm: NouveauSvmm = {
    id,
    drm,
    mm,
    vmm: new NouveauVmm(),
    notifier: null,
    mutex: new Mutex(`svmm->mutex (svmm ${id})`),
    invalidations: 0,
  };
  const notifier = new MmuNotifier({
    invalidateRangeStart: (_sub, range) => invalidateRangeStart(svmm, range),
    // Fix switch K22: the ->release nouveau_mn_ops lacks (finding 14).
    ...(drm.core.fixed('K22') ? { release: () => svmmRelease(svmm) } : {}),
  });
  if (mmuNotifierRegister(notifier, mm) === 0) svmm.notifier = notifier;
  drm.svmms.set(id, svmm);
  return svmm;
}

/**
 * Fix switch K22 (finding 14): the ->release nouveau_mn_ops lacks. The mm's last user is gone and
 * its pages are about to be unmapped and freed: clear the GPU page tables of the whole range under
 * svmm->mutex, as an invalidation of everything would. No fault can be in flight (a fault holds
 * mm_users, and ->release runs at the last mmput()), so the mutex is free.
 */
function svmmRelease(svmm: NouveauSvmm): void {
  const sched = svmm.drm.core.sched;
  if (!svmm.mutex.trylock(sched, 'nouveau_svmm_release'))
    throw new ModelBug(
      `nouveau_svmm_release: svmm->mutex of svmm ${svmm.id} is held at the mm's last mmput()`,
    );
  try {
    nouveauSvmmInvalidate(svmm, 0, TASK_SIZE + PAGE_SIZE);
  } finally {
    svmm.mutex.unlock(sched, 'nouveau_svmm_release');
  }
}

/**
 * Models nouveau_svmm_init() as the ioctl runs it: the notifier is registered under the mmap
 * lock held for write (__mmu_notifier_register() requires it), so a registration waits for any
 * invalidation in progress (a zap holds the lock for read) and never misses one half done.
 */
export function* nouveauSvmmInitLocked(drm: NouveauDrm, mm: MmStruct): KGen<NouveauSvmm> {
  yield* mmapWriteLock(drm.core, mm, 'nouveau_svmm_init');
  try {
    return nouveauSvmmInit(drm, mm);
  } finally {
    mmapWriteUnlock(drm.core, mm, 'nouveau_svmm_init');
  }
}

/**
 * Models nouveau_svmm_fini(): unregister the notifier and drop the GPU address space. Device
 * pages keep their zone_device_data (the kernel keeps a dangling pointer; the model's id simply
 * stops resolving).
 */
export function nouveauSvmmFini(svmm: NouveauSvmm): void {
  if (svmm.notifier) mmuNotifierUnregister(svmm.notifier, svmm.mm);
  svmm.notifier = null;
  svmm.vmm.pfnclr(0, TASK_SIZE + PAGE_SIZE);
  svmm.drm.svmms.delete(svmm.id);
}

/**
 * Models nouveau_pfns_map() (nouveau_svm.c) with the THP patch's page-size argument: under
 * svmm->mutex issue NVIF_VMM_V0_PFNMAP for `npages` 4 KiB slots starting at addr, with GPU
 * pages of PAGE_SIZE << order (one entry per 1 << order slots, taken from the unit's head slot).
 *
 * The THP patch passes the folio *order* as `page_shift` (so p.page = 0 or 9 and
 * p.size = npages << order), where nvkm expects a byte shift (PAGE_SHIFT + order), as
 * nouveau_hmm_convert_pfn() computes it. The model implements the evident intent
 * (PAGE_SHIFT + order); see the README. `seq` is the svmm's invalidation count before
 * migrate_vma_setup() (fix switch K9; -1: no check, as v6.19).
 */
export function* nouveauPfnsMap(
  svmm: NouveauSvmm,
  addr: number,
  pfns: ArrayLike<number>,
  npages: number,
  order: number,
  seq = -1,
): KGen {
  const sched = svmm.drm.core.sched;
  yield* svmm.mutex.lock(sched, 'nouveau_pfns_map');
  try {
    // K9: v6.19 maps whatever the migration produced; an invalidation since migrate_vma_setup()
    // (a zap of a page being migrated) leaves its VRAM page unmapped on the CPU side and freed by
    // migrate_vma_finalize(), so mapping it gives the GPU freed VRAM. The fix maps none of the
    // new pages then and unmaps the range instead: the migration's own invalidation was skipped
    // (this mapping was to replace the GPU's entries for the old pages), so the old entries must
    // go too. The GPU faults the range in later through hmm_range_fault().
    if (seq >= 0 && svmm.drm.core.fixed('K9') && svmm.invalidations !== seq) {
      nouveauSvmmInvalidate(svmm, addr, addr + npages * PAGE_SIZE);
      return;
    }
    const stride = 1 << order;
    svmm.vmm.pfnmap(addr, PAGE_SHIFT + order, pfns, Math.ceil(npages / stride), stride);
  } finally {
    svmm.mutex.unlock(sched, 'nouveau_pfns_map');
  }
}
