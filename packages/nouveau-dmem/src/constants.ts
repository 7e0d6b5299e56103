import { PAGE_SHIFT } from '@hmm-model/mm-core';

/**
 * Models DMEM_CHUNK_SIZE (drivers/gpu/drm/nouveau/nouveau_dmem.c): 2 MiB. The THP patch briefly
 * used HPAGE_PMD_SIZE; the merged version is the literal 2UL << 20.
 */
export const DMEM_CHUNK_SIZE = 2 * 1024 * 1024;
/** Models DMEM_CHUNK_NPAGES (DMEM_CHUNK_SIZE >> PAGE_SHIFT = 512). */
export const DMEM_CHUNK_NPAGES = DMEM_CHUNK_SIZE >> PAGE_SHIFT;
/** Models NR_CHUNKS: "sub-chunks" per pagemap, so one chunk covers NR_CHUNKS * 2 MiB = 256 MiB. */
export const NR_CHUNKS = 128;
/** Models range_len(&chunk->pagemap.range) >> PAGE_SHIFT: NR_CHUNKS * DMEM_CHUNK_NPAGES = 65536 pages. */
export const DMEM_PAGEMAP_NPAGES = NR_CHUNKS * DMEM_CHUNK_NPAGES;
/** Models the order of a large device folio: ilog2(DMEM_CHUNK_NPAGES) = 9. */
export const DMEM_FOLIO_ORDER = Math.log2(DMEM_CHUNK_NPAGES);

/** Models enum nouveau_aper (nouveau_dmem.c): the copy engine's address spaces. */
export const NOUVEAU_APER_VIRT = 0;
/** Models NOUVEAU_APER_VRAM: a physical VRAM address (the model's {@link Vram} store). */
export const NOUVEAU_APER_VRAM = 1;
/** Models NOUVEAU_APER_HOST: a host (system memory) DMA address; the model has no IOMMU, so dma == phys. */
export const NOUVEAU_APER_HOST = 2;
/** Models enum nouveau_aper. */
export type NouveauAper = typeof NOUVEAU_APER_VIRT | typeof NOUVEAU_APER_VRAM | typeof NOUVEAU_APER_HOST;

/** Models NVIF_VMM_PFNMAP_V0_V (include/nvif/if000c.h): the GPU PFN entry is valid. */
export const NVIF_VMM_PFNMAP_V0_V = 0x01;
/** Models NVIF_VMM_PFNMAP_V0_W: writable. */
export const NVIF_VMM_PFNMAP_V0_W = 0x02;
/** Models NVIF_VMM_PFNMAP_V0_A: atomic (not used by the dmem paths). */
export const NVIF_VMM_PFNMAP_V0_A = 0x04;
/** Models NVIF_VMM_PFNMAP_V0_APER: the aperture field mask. */
export const NVIF_VMM_PFNMAP_V0_APER = 0xf0;
/** Models NVIF_VMM_PFNMAP_V0_HOST: aperture = system memory. */
export const NVIF_VMM_PFNMAP_V0_HOST = 0x00;
/** Models NVIF_VMM_PFNMAP_V0_VRAM: aperture = VRAM. */
export const NVIF_VMM_PFNMAP_V0_VRAM = 0x10;
/** Models NVIF_VMM_PFNMAP_V0_NONE: no mapping (unmap this slot). */
export const NVIF_VMM_PFNMAP_V0_NONE = 0x00;
/** Models NVIF_VMM_PFNMAP_V0_ADDR_SHIFT: the address occupies bits 12 and up. */
export const NVIF_VMM_PFNMAP_V0_ADDR_SHIFT = 12;

/** Models NV_DEVICE_INFO_V0_KEPLER (include/nvif/cl0080.h): the device family. */
export const NV_DEVICE_INFO_V0_KEPLER = 0x08;
/** Models NV_DEVICE_INFO_V0_PASCAL. */
export const NV_DEVICE_INFO_V0_PASCAL = 0x0a;
/** Models NV_DEVICE_INFO_V0_VOLTA. */
export const NV_DEVICE_INFO_V0_VOLTA = 0x0b;
/** Models NV_DEVICE_INFO_V0_TURING. */
export const NV_DEVICE_INFO_V0_TURING = 0x0c;

/** Models KEPLER_DMA_COPY_A (include/nvif/class.h): Kepler's copy-engine class. */
export const KEPLER_DMA_COPY_A = 0xa0b5;
/** Models PASCAL_DMA_COPY_A. */
export const PASCAL_DMA_COPY_A = 0xc0b5;
/** Models PASCAL_DMA_COPY_B. */
export const PASCAL_DMA_COPY_B = 0xc1b5;
/** Models VOLTA_DMA_COPY_A. */
export const VOLTA_DMA_COPY_A = 0xc3b5;
/** Models TURING_DMA_COPY_A. */
export const TURING_DMA_COPY_A = 0xc5b5;

/** Models drm->client.device.info.chipset, reduced to the generations this model knows. */
export type NouveauChipset = 'kepler' | 'pascal' | 'volta' | 'turing';

/** Models the device family (info.family) and copy class (drm->ttm.copy.oclass) a probe finds per generation. */
export const CHIPSETS: Readonly<Record<NouveauChipset, { family: number; copyClass: number }>> = {
  kepler: { family: NV_DEVICE_INFO_V0_KEPLER, copyClass: KEPLER_DMA_COPY_A },
  pascal: { family: NV_DEVICE_INFO_V0_PASCAL, copyClass: PASCAL_DMA_COPY_A },
  volta: { family: NV_DEVICE_INFO_V0_VOLTA, copyClass: VOLTA_DMA_COPY_A },
  turing: { family: NV_DEVICE_INFO_V0_TURING, copyClass: TURING_DMA_COPY_A },
};
