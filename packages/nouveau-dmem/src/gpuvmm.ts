import { HPAGE_PMD_ORDER, ModelBug, PAGE_SHIFT, PAGE_SIZE } from '@hmm-model/mm-core';
import {
  NVIF_VMM_PFNMAP_V0_APER,
  NVIF_VMM_PFNMAP_V0_HOST,
  NVIF_VMM_PFNMAP_V0_V,
  NVIF_VMM_PFNMAP_V0_VRAM,
  NVIF_VMM_PFNMAP_V0_W,
} from './constants.js';

/** Models the page shifts of nvkm's VMM (vmm->func->page[]) used by SVM: 12 (4 KiB) and 21 (2 MiB). */
export const GPU_PAGE_SHIFTS: readonly number[] = [PAGE_SHIFT, PAGE_SHIFT + HPAGE_PMD_ORDER];

/**
 * Models one GPU page-table entry as nvkm's PFNMAP leaves it (decoded): valid, aperture
 * (VRAM or host), the physical address, writable, and the page size (12 = 4 KiB, 21 = 2 MiB).
 */
export interface GpuPte {
  /** GPU virtual address of the first byte the entry maps (aligned to its page size). */
  readonly va: number;
  readonly valid: true;
  readonly aperture: 'vram' | 'host';
  /** Physical address of the page (VRAM offset or host physical address). */
  readonly addr: number;
  readonly writable: boolean;
  /** log2 of the page size: 12 (4 KiB) or 21 (2 MiB). */
  readonly pageShift: number;
}

/**
 * Models building one `phys[]` entry of struct nvif_vmm_pfnmap_v0 (include/nvif/if000c.h):
 * V | aperture | W | (addr >> PAGE_SHIFT) << NVIF_VMM_PFNMAP_V0_ADDR_SHIFT. Kept as a JS number
 * (addresses stay below 2^53).
 */
export function nvifPfnmapEntry(addr: number, vram: boolean, writable: boolean): number {
  const page = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  return (
    page +
    NVIF_VMM_PFNMAP_V0_V +
    (vram ? NVIF_VMM_PFNMAP_V0_VRAM : NVIF_VMM_PFNMAP_V0_HOST) +
    (writable ? NVIF_VMM_PFNMAP_V0_W : 0)
  );
}

/** Models `entry & ~NVIF_VMM_PFNMAP_V0_ADDR`: the flag bits (low 12 bits) of a PFNMAP entry. */
export function nvifPfnmapFlags(entry: number): number {
  return entry % PAGE_SIZE;
}

function decode(va: number, shift: number, entry: number): GpuPte {
  const f = nvifPfnmapFlags(entry);
  return {
    va,
    valid: true,
    aperture: (f & NVIF_VMM_PFNMAP_V0_APER) === NVIF_VMM_PFNMAP_V0_VRAM ? 'vram' : 'host',
    addr: entry - f,
    writable: (f & NVIF_VMM_PFNMAP_V0_W) !== 0,
    pageShift: shift,
  };
}

/**
 * Models the GPU virtual memory manager's PFN-mapped (SVM) region: nvkm_vmm_pfn_map() /
 * nvkm_vmm_pfn_unmap() behind the NVIF_VMM_V0_PFNMAP / NVIF_VMM_V0_PFNCLR methods. One map per
 * page size, keyed by va >> shift. Mapping a page replaces every overlapping entry of another
 * size (the model's simplification of nvkm's page-table level switching).
 */
export class NouveauVmm {
  private readonly levels = new Map<number, Map<number, number>>(GPU_PAGE_SHIFTS.map((s) => [s, new Map()]));
  /** The maps of {@link NouveauVmm.levels} in GPU_PAGE_SHIFTS order (the per-page drop walks them without an iterator). */
  private readonly levelList = GPU_PAGE_SHIFTS.map((s) => this.level(s));
  /** PFNMAP entries written (for inspection). */
  maps = 0;
  /** PFNCLR calls (for inspection). */
  clears = 0;

  private level(shift: number): Map<number, number> {
    const l = this.levels.get(shift);
    if (!l) throw new ModelBug(`GPU VMM: unsupported page shift ${shift}`);
    return l;
  }

  /** Drops every entry of any size overlapping [start, end). */
  private dropRange(start: number, end: number): void {
    for (let k = 0; k < GPU_PAGE_SHIFTS.length; k++) {
      const l = this.levelList[k];
      const size = 2 ** GPU_PAGE_SHIFTS[k];
      const first = Math.floor(start / size);
      const last = Math.ceil(end / size);
      if (l.size === 0) continue;
      if (last - first <= l.size) {
        for (let i = first; i < last; i++) l.delete(i);
      } else {
        // Deleting the entry just visited is safe while iterating a Map.
        for (const i of l.keys()) if (i >= first && i < last) l.delete(i);
      }
    }
  }

  /**
   * Models NVIF_VMM_V0_PFNMAP (nvkm_vmm_pfn_map()): for k in [0, npages) write phys[k] at
   * addr + (k << pageShift) with that page size; a phys entry without V unmaps the slot.
   */
  pfnmap(addr: number, pageShift: number, phys: ArrayLike<number>, npages: number, stride = 1): void {
    const l = this.level(pageShift);
    const size = 2 ** pageShift;
    // Each slot drops what overlaps it before it is written; the slots of one call do not
    // overlap, so one drop of the whole range first is the same.
    this.dropRange(addr, addr + npages * size);
    for (let k = 0; k < npages; k++) {
      const va = addr + k * size;
      const entry = phys[k * stride];
      if (nvifPfnmapFlags(entry) & NVIF_VMM_PFNMAP_V0_V) {
        l.set(Math.floor(va / size), entry);
        this.maps++;
      }
    }
  }

  /** Models NVIF_VMM_V0_PFNCLR (nvkm_vmm_pfn_unmap()): unmap [addr, addr + size). */
  pfnclr(addr: number, size: number): void {
    this.clears++;
    this.dropRange(addr, addr + size);
  }

  /** Models the GPU MMU's translation of va: the entry mapping it, or null. */
  lookup(va: number): GpuPte | null {
    for (let s = GPU_PAGE_SHIFTS.length - 1; s >= 0; s--) {
      const shift = GPU_PAGE_SHIFTS[s];
      const size = 2 ** shift;
      const e = this.level(shift).get(Math.floor(va / size));
      if (e !== undefined) return decode(Math.floor(va / size) * size, shift, e);
    }
    return null;
  }

  /** Every valid entry, ordered by address (for inspection and tests). */
  entries(): GpuPte[] {
    const out: GpuPte[] = [];
    for (const [shift, l] of this.levels) {
      const size = 2 ** shift;
      for (const [i, e] of l) out.push(decode(i * size, shift, e));
    }
    return out.sort((a, b) => a.va - b.va);
  }

  /** Number of valid entries. */
  get size(): number {
    let n = 0;
    for (const l of this.levels.values()) n += l.size;
    return n;
  }
}
