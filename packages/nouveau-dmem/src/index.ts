/**
 * @hmm-model/nouveau-dmem: the model of drivers/gpu/drm/nouveau/nouveau_dmem.c after "gpu/drm/
 * nouveau: enable THP support for GPU memory migration" (Linux v6.19), with the parts of
 * nouveau_svm.c it needs (SVMM, GPU page tables, GPU faults). See the README for the
 * kernel-symbol table.
 */
export { checkNouveau, installNouveauChecker } from './checker.js';
export * from './constants.js';
export {
  CONFIG_TRANSPARENT_HUGEPAGE,
  freeListPfns,
  nouveauDmemChunkAlloc,
  nouveauDmemCopyFolio,
  nouveauDmemFolioFree,
  nouveauDmemFolioSplit,
  nouveauDmemPageAddr,
  nouveauDmemPageAllocLocked,
  nouveauDmemPageFreeLocked,
  nouveauPageToChunk,
} from './dmem.js';
export {
  type EvictResult,
  type FiniResult,
  type NotEvicted,
  nouveauDmemEvictChunk,
  nouveauDmemEvictChunkGen,
  nouveauDmemFini,
  nouveauDmemFini as fini,
  nouveauDmemFiniGen,
} from './evict.js';
export {
  gpuAccess,
  gpuAccessGen,
  gpuAccessWordsGen,
  gpuFault,
  gpuFaultGen,
  gpuJobWordsGen,
  gpuPte,
  gpuRead,
  gpuWrite,
} from './fault.js';
export { GPU_PAGE_SHIFTS, type GpuPte, NouveauVmm, nvifPfnmapEntry, nvifPfnmapFlags } from './gpuvmm.js';
export {
  createNouveauDmem,
  type NouveauDmemOptions,
  nouveauDmemInit,
  nouveauDmemMigrateInit,
} from './init.js';
export {
  gpuPtEntries,
  isNouveauDevicePfn,
  NOUVEAU_DMEM_PGMAP_NAME,
  type NouveauDmemInfo,
  nouveauDmemInspect,
  nouveauVramAddrToPfn,
  type VramChunkInfo,
} from './inspect.js';
export {
  emptyMigrateResult,
  type MigrateToVramResult,
  nouveauDmemMigrateChunk,
  nouveauDmemMigrateCopyOne,
  nouveauDmemMigrateVma,
  svmmMigrateToVram,
  svmmMigrateToVramGen,
} from './migrate.js';
export {
  nouveauPfnsMap,
  nouveauSvmmFini,
  nouveauSvmmInit,
  nouveauSvmmInitLocked,
  nouveauSvmmInvalidate,
} from './svmm.js';
export { nouveauDmemMigrateToRam, type ToRamStats, toRamStats } from './toram.js';
export type {
  NouveauDev,
  NouveauDmem,
  NouveauDmemChunk,
  NouveauDmemMigrate,
  NouveauDrm,
  NouveauOptions,
  NouveauSvmm,
} from './types.js';
export { CopyEngine, type CopyEngineTiming, DEFAULT_COPY_TIMING, Vram } from './vram.js';
