/**
 * @hmm-model/zone-device: the model of ZONE_DEVICE memory (mm/memremap.c,
 * include/linux/memremap.h). See the README for the kernel-symbol table.
 */
export * from './entry.js';
export * from './folio.js';
export * from './memremap.js';
