import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migratePfn,
  migratePfnToPage,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
  mpfnFlags,
  newMigrateVma,
} from '@hmm-model/migrate-vma';
import {
  EINVAL,
  ENODEV,
  HPAGE_PMD_NR,
  type KGen,
  mmapReadLock,
  mmapReadUnlock,
  PAGE_SIZE,
  RESCHED,
  type Vma,
} from '@hmm-model/mm-core';
import { folioSetZoneDeviceData } from '@hmm-model/zone-device';
import { NOUVEAU_APER_HOST, NOUVEAU_APER_VRAM, NVIF_VMM_PFNMAP_V0_NONE } from './constants.js';
import {
  CONFIG_TRANSPARENT_HUGEPAGE,
  dmemOf,
  nouveauDmemPageAddr,
  nouveauDmemPageAllocLocked,
  nouveauDmemPageFreeLocked,
} from './dmem.js';
import { nvifPfnmapEntry } from './gpuvmm.js';
import { nouveauPfnsMap } from './svmm.js';
import type { NouveauDrm, NouveauSvmm } from './types.js';

/** Models what nouveau_svmm_bind() could report (the kernel sets args->result = 0; these are model counts). */
export interface MigrateToVramResult {
  /** 0, or the first -errno of a nouveau_dmem_migrate_vma() call (-EINVAL for bad arguments). */
  ret: number;
  /** migrate_vma_setup() batches run. */
  batches: number;
  /** Units collected (sum of cpages: 1 per THP / compound hole / small page / small hole). */
  cpages: number;
  /** Collected units that got no device page (allocation failed; no small-page fallback). */
  allocFailed: number;
  /** 4 KiB pages that ended in VRAM. */
  migratedPages: number;
  /** Compound units that moved whole (device THPs created). */
  thps: number;
  /** Holes (no source page) that were populated with cleared VRAM (units). */
  holes: number;
}

/** Models a zeroed struct of nouveau_svmm_bind() counts ({@link MigrateToVramResult}). */
export function emptyMigrateResult(): MigrateToVramResult {
  return { ret: 0, batches: 0, cpages: 0, allocFailed: 0, migratedPages: 0, thps: 0, holes: 0 };
}

/**
 * Models nouveau_dmem_migrate_copy_one(): for a collected slot allocate a device page of the
 * same kind (compound source -> order-9 device folio), copy the whole source folio into its VRAM
 * (or clear page_size(dpage) bytes of VRAM for a hole), set its zone_device_data to the svmm and
 * build the GPU PFN entry (V | VRAM | address | W if the source was writable). Returns the dst
 * slot (pfn | COMPOUND for a large folio) or 0, and writes pfns[i] (NONE on failure).
 */
export function nouveauDmemMigrateCopyOne(
  drm: NouveauDrm,
  svmm: NouveauSvmm,
  src: number,
  pfns: Float64Array,
  i: number,
  res: MigrateToVramResult,
): number {
  const core = drm.core;
  const engine = dmemOf(drm).migrate.engine;
  const spage = migratePfnToPage(src);
  const flags = mpfnFlags(src);
  pfns[i] = NVIF_VMM_PFNMAP_V0_NONE;
  if (!(flags & MIGRATE_PFN_MIGRATE)) return 0;
  const isLarge = (flags & MIGRATE_PFN_COMPOUND) !== 0;
  const dpage = nouveauDmemPageAllocLocked(drm, isLarge);
  if (dpage < 0) {
    res.allocFailed++;
    return 0;
  }
  const paddr = nouveauDmemPageAddr(drm, dpage);
  const order = core.map.folioOrder(dpage);
  if (spage >= 0) {
    const nr = core.map.folioNrPages(core.map.head[spage]);
    if (engine.copy(nr, NOUVEAU_APER_VRAM, paddr, NOUVEAU_APER_HOST, spage * PAGE_SIZE)) {
      nouveauDmemPageFreeLocked(drm, dpage);
      return 0;
    }
  } else {
    if (engine.clear(PAGE_SIZE << order, NOUVEAU_APER_VRAM, paddr)) {
      nouveauDmemPageFreeLocked(drm, dpage);
      return 0;
    }
  }
  folioSetZoneDeviceData(core, dpage, svmm.id);
  pfns[i] = nvifPfnmapEntry(paddr, true, (flags & MIGRATE_PFN_WRITE) !== 0);
  return migratePfn(dpage) + (order ? MIGRATE_PFN_COMPOUND : 0);
}

/**
 * Models nouveau_dmem_migrate_chunk(): copy_one for every slot (advancing by the destination
 * folio's size), fence, migrate_vma_pages(), nouveau_pfns_map() with the order of the last
 * allocated folio, unmap DMA, migrate_vma_finalize().
 *
 * Like the kernel, the GPU entries are built before migrate_vma_pages() and not re-checked: a
 * slot that migrate_vma_pages() refuses still gets its VRAM entry mapped into the GPU (README,
 * Findings 4); fix switch K4 maps nothing for such a slot.
 */
export function* nouveauDmemMigrateChunk(
  drm: NouveauDrm,
  svmm: NouveauSvmm,
  args: MigrateVma,
  pfns: Float64Array,
  res: MigrateToVramResult,
  seq = -1,
): KGen {
  const core = drm.core;
  let order = 0;
  let i = 0;
  for (let addr = args.start; addr < args.end; ) {
    args.dst[i] = nouveauDmemMigrateCopyOne(drm, svmm, args.src[i], pfns, i, res);
    if (!args.dst[i]) {
      i++;
      addr += PAGE_SIZE;
      continue;
    }
    if (migratePfnToPage(args.src[i]) < 0) res.holes++;
    order = core.map.folioOrder(core.map.head[migratePfnToPage(args.dst[i])]);
    i += 1 << order;
    addr += (1 << order) * PAGE_SIZE;
  }
  if (core.sched.preempt('nouveau_dmem_migrate_chunk: copies issued, before migrate_vma_pages'))
    yield RESCHED;
  yield* migrateVmaPages(core, args);
  for (let k = 0; k < args.npages; k++) {
    if (migratePfnToPage(args.dst[k]) < 0) continue;
    if (!(mpfnFlags(args.src[k]) & MIGRATE_PFN_MIGRATE)) {
      if (core.fixed('K4')) pfns[k] = NVIF_VMM_PFNMAP_V0_NONE;
      continue;
    }
    if (mpfnFlags(args.dst[k]) & MIGRATE_PFN_COMPOUND) {
      res.thps++;
      res.migratedPages += HPAGE_PMD_NR;
    } else {
      res.migratedPages++;
    }
  }
  yield* nouveauPfnsMap(svmm, args.start, pfns, i, order, seq);
  yield* migrateVmaFinalize(core, args);
}

/**
 * Models nouveau_dmem_migrate_vma(): migrate [start, end) of `vma` to VRAM in batches of at
 * most HPAGE_PMD_NR pages, each with migrate_vma_setup(SELECT_SYSTEM | SELECT_COMPOUND, owner
 * drm->dev). Returns 0, -ENODEV without dmem, or the setup error.
 */
export function* nouveauDmemMigrateVma(
  drm: NouveauDrm,
  svmm: NouveauSvmm,
  vma: Vma,
  start: number,
  end: number,
  res: MigrateToVramResult = emptyMigrateResult(),
): KGen<number> {
  if (!drm.dmem) return -ENODEV;
  const npages = Math.floor((end - start) / PAGE_SIZE);
  let max = npages;
  if (CONFIG_TRANSPARENT_HUGEPAGE && max > HPAGE_PMD_NR) max = HPAGE_PMD_NR;
  const args = newMigrateVma({
    vma,
    start,
    end: start,
    src: new Float64Array(max),
    dst: new Float64Array(max),
    pgmapOwner: drm.dev,
    flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND,
  });
  // Models nouveau_pfns_alloc(max): zeroed once, reused by every batch.
  const pfns = new Float64Array(max);
  for (let i = 0; i < npages; i += max) {
    args.end = Math.min(args.start + max * PAGE_SIZE, end);
    // Model-only (fix switch K9): the svmm's invalidation count before the migration starts.
    const seq = svmm.invalidations;
    const ret = yield* migrateVmaSetup(drm.core, args);
    res.batches++;
    if (ret) return ret;
    res.cpages += args.cpages;
    if (args.cpages) {
      if (drm.core.sched.preempt('nouveau_dmem_migrate_vma: after migrate_vma_setup')) yield RESCHED;
      yield* nouveauDmemMigrateChunk(drm, svmm, args, pfns, res, seq);
    }
    args.start = args.end;
    if (drm.core.sched.preempt('nouveau_dmem_migrate_vma: next batch')) yield RESCHED;
  }
  return 0;
}

/**
 * Models nouveau_svmm_bind() with target NOUVEAU_SVM_BIND_TARGET__GPU_VRAM (the
 * DRM_NOUVEAU_SVM_BIND ioctl): under the mmap read lock, for every VMA intersecting
 * [start, end) call nouveau_dmem_migrate_vma() on the intersection. Best effort, as the kernel
 * (which ignores the per-VMA errors and reports 0): the counts say what happened.
 */
export function svmmMigrateToVram(svmm: NouveauSvmm, start: number, end: number): MigrateToVramResult {
  const res = svmm.drm.core.sched.runSync(svmmMigrateToVramGen(svmm, start, end), 'nouveau_svmm_bind');
  svmm.drm.kernel.afterSyscall('nouveau_svmm_bind');
  return res;
}

/** The kernel path of {@link svmmMigrateToVram} (DRM_NOUVEAU_SVM_BIND to VRAM), for tasks. */
export function* svmmMigrateToVramGen(
  svmm: NouveauSvmm,
  start: number,
  end: number,
): KGen<MigrateToVramResult> {
  const drm = svmm.drm;
  const res = emptyMigrateResult();
  if (start % PAGE_SIZE || end % PAGE_SIZE || end <= start) {
    res.ret = -EINVAL;
    return res;
  }
  const mm = svmm.mm;
  yield* mmapReadLock(drm.core, mm, 'nouveau_svmm_bind');
  try {
    for (let addr = start; addr < end; ) {
      const vma = mm.findVma(addr);
      if (!vma || vma.start >= end) break;
      addr = Math.max(addr, vma.start);
      const next = Math.min(vma.end, end);
      const r = yield* nouveauDmemMigrateVma(drm, svmm, vma, addr, next, res);
      if (r && !res.ret) res.ret = r;
      addr = next;
    }
  } finally {
    mmapReadUnlock(drm.core, mm, 'nouveau_svmm_bind');
  }
  return res;
}
