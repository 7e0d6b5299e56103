import {
  type KGen,
  MMU_NOTIFY_MIGRATE,
  type MmStruct,
  MmuIntervalNotifier,
  type MmuNotifierRange,
  Mutex,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
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
 * ignored (the migration code updates the GPU mapping itself); anything else unmaps the range
 * from the GPU. (The "unmanaged" window of the real driver is not modelled.)
 */
function* invalidateRangeStart(svmm: NouveauSvmm, range: MmuNotifierRange): KGen<boolean> {
  const sched = svmm.drm.core.sched;
  yield* svmm.mutex.lock(sched, 'nouveau_svmm_invalidate_range_start');
  try {
    if (range.event === MMU_NOTIFY_MIGRATE && range.owner === svmm.drm.dev) return true;
    nouveauSvmmInvalidate(svmm, range.start, range.end);
    return true;
  } finally {
    svmm.mutex.unlock(sched, 'nouveau_svmm_invalidate_range_start');
  }
}

/**
 * Models nouveau_svmm_init() (the DRM_NOUVEAU_SVM_INIT ioctl): create a GPU address space that
 * mirrors `mm` and register its mmu notifier (an interval notifier over the whole user address
 * space in the model).
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
  };
  const notifier = new MmuIntervalNotifier(mm, 0, TASK_SIZE + PAGE_SIZE, {
    invalidate: (_sub, range) => invalidateRangeStart(svmm, range),
  });
  mmuIntervalNotifierInsert(notifier);
  svmm.notifier = notifier;
  drm.svmms.set(id, svmm);
  return svmm;
}

/**
 * Models nouveau_svmm_fini(): unregister the notifier and drop the GPU address space. Device
 * pages keep their zone_device_data (the kernel keeps a dangling pointer; the model's id simply
 * stops resolving).
 */
export function nouveauSvmmFini(svmm: NouveauSvmm): void {
  if (svmm.notifier) mmuIntervalNotifierRemove(svmm.notifier);
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
 * (PAGE_SHIFT + order); see the README.
 */
export function* nouveauPfnsMap(
  svmm: NouveauSvmm,
  addr: number,
  pfns: ArrayLike<number>,
  npages: number,
  order: number,
): KGen {
  const sched = svmm.drm.core.sched;
  yield* svmm.mutex.lock(sched, 'nouveau_pfns_map');
  try {
    const stride = 1 << order;
    svmm.vmm.pfnmap(addr, PAGE_SHIFT + order, pfns, Math.ceil(npages / stride), stride);
  } finally {
    svmm.mutex.unlock(sched, 'nouveau_pfns_map');
  }
}
