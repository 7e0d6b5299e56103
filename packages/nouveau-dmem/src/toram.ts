import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  migratePfn,
  migratePfnToPage,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
  newMigrateVma,
} from '@hmm-model/migrate-vma';
import {
  allocFolio,
  folioPut,
  type KGen,
  PAGE_SIZE,
  RESCHED,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  type Vma,
  type VmFault,
} from '@hmm-model/mm-core';
import { folioZoneDeviceData } from '@hmm-model/zone-device';
import { nouveauDmemCopyFolio, nouveauDmemCopyPages } from './dmem.js';
import { nouveauSvmmInvalidate } from './svmm.js';
import type { NouveauDrm } from './types.js';

/** Counts of nouveau_dmem_migrate_to_ram() outcomes (model-only; the kernel keeps none). */
export interface ToRamStats {
  /** migrate_to_ram calls. */
  calls: number;
  /** Calls that moved a whole order-9 folio. */
  thp: number;
  /** Calls that moved one page. */
  small: number;
  /**
   * Calls that fell back to 512 small system pages because no order-9 folio was free (fix K17);
   * in v6.19's fault path the device folio then fails to split (finding K18), and the unit stays
   * on the device, PTE-mapped.
   */
  fallback: number;
  /** Calls that found nothing collected (cpages == 0). */
  nothing: number;
  /** Calls that returned VM_FAULT_OOM / VM_FAULT_SIGBUS. */
  oom: number;
  sigbus: number;
}

/** Per-drm counts of nouveau_dmem_migrate_to_ram() outcomes ({@link ToRamStats}). */
export const toRamStats = new WeakMap<NouveauDrm, ToRamStats>();

function statsOf(drm: NouveauDrm): ToRamStats {
  let s = toRamStats.get(drm);
  if (!s) {
    s = { calls: 0, thp: 0, small: 0, fallback: 0, nothing: 0, oom: 0, sigbus: 0 };
    toRamStats.set(drm, s);
  }
  return s;
}

/**
 * Models nouveau_dmem_migrate_to_ram() (dev_pagemap_ops.migrate_to_ram): the CPU faulted on a
 * device-private entry. The unit is the whole device folio (order from the folio) unless the
 * fault came through a PTE (vmf->pte: a PTE-mapped large folio after a partial unmap), in which
 * case only the faulting page moves (order 0; setup splits the folio). migrate_vma_setup() with
 * SELECT_DEVICE_PRIVATE | SELECT_COMPOUND, owner drm->dev and fault_page; allocate a zeroed
 * system folio of the same order (no fallback: failure is VM_FAULT_OOM), dst[0] = pfn |
 * COMPOUND if large, unmap the range from the GPU under svmm->mutex, copy the whole source
 * folio with the copy engine, migrate_vma_pages(), fence, migrate_vma_finalize().
 *
 * The source folio is taken from src[0] after setup (see NouveauOptions.sfolioBeforeSetup for
 * the kernel's order, which reads it from vmf->page before setup).
 */
export function* nouveauDmemMigrateToRam(drm: NouveauDrm, vmf: VmFault): KGen<number> {
  const core = drm.core;
  const m = core.map;
  const st = statsOf(drm);
  st.calls++;
  const sfolioBefore = m.head[vmf.page];
  let order = m.folioOrder(sfolioBefore);
  if (vmf.pte) order = 0;
  const size = PAGE_SIZE << order;
  const start = vmf.address - (vmf.address % size);
  const args = newMigrateVma({
    vma: vmf.vma as Vma,
    start,
    end: start + size,
    pgmapOwner: drm.dev,
    faultPage: vmf.page,
    // The kernel's initializer already has SELECT_COMPOUND; `if (order) flags |= COMPOUND` is redundant.
    flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_COMPOUND,
  });
  if ((yield* migrateVmaSetup(core, args)) < 0) {
    st.sigbus++;
    return VM_FAULT_SIGBUS;
  }
  if (!args.cpages) {
    st.nothing++;
    return 0;
  }
  let ret = 0;
  const dpage = allocFolio(core, order, true);
  // K17 (fix switch; v6.19 has no fallback): small pages when no folio of the order can be had.
  const small = dpage < 0 && order && core.fixed('K17') ? allocSmallPages(core, 1 << order) : null;
  if (dpage < 0 && !small) {
    st.oom++;
    ret = VM_FAULT_OOM;
  } else {
    if (small) for (let k = 0; k < small.length; k++) args.dst[k] = migratePfn(small[k]);
    else args.dst[0] = migratePfn(dpage) + (order ? MIGRATE_PFN_COMPOUND : 0);
    const spage = migratePfnToPage(args.src[0]);
    const sfolio = drm.options.sfolioBeforeSetup ? sfolioBefore : spage >= 0 ? m.head[spage] : -1;
    if (sfolio < 0) {
      // Nothing to copy from (cannot happen with cpages != 0 and a locked fault folio).
      for (let k = 0; k < args.dst.length; k++) args.dst[k] = 0;
      if (small) for (const p of small) folioPut(core, p);
      else folioPut(core, dpage);
    } else {
      const svmm = drm.svmms.get(folioZoneDeviceData(core, sfolio));
      if (svmm) yield* svmm.mutex.lock(core.sched, 'nouveau_dmem_migrate_to_ram');
      try {
        if (svmm) nouveauSvmmInvalidate(svmm, args.start, args.end);
        if (small ? nouveauDmemCopyPages(drm, sfolio, small) : nouveauDmemCopyFolio(drm, sfolio, dpage)) {
          st.sigbus++;
          ret = VM_FAULT_SIGBUS;
        }
      } finally {
        if (svmm) svmm.mutex.unlock(core.sched, 'nouveau_dmem_migrate_to_ram');
      }
      if (!ret) {
        if (core.sched.preempt('nouveau_dmem_migrate_to_ram: copied, before migrate_vma_pages'))
          yield RESCHED;
        yield* migrateVmaPages(core, args);
        if (small) st.fallback++;
        else if (order) st.thp++;
        else st.small++;
      }
    }
  }
  yield* migrateVmaFinalize(core, args);
  return ret;
}

/**
 * Model-only (fix K17): `n` zeroed order-0 system pages (alloc_page_vma(GFP_HIGHUSER | __GFP_ZERO)
 * each), or null, with none kept, when one cannot be had.
 */
function allocSmallPages(core: NouveauDrm['core'], n: number): number[] | null {
  const pages: number[] = [];
  for (let k = 0; k < n; k++) {
    const p = allocFolio(core, 0, true);
    if (p < 0) {
      for (const q of pages) folioPut(core, q);
      return null;
    }
    pages.push(p);
  }
  return pages;
}
