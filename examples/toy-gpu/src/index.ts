/**
 * @hmm-model/toy-gpu: an example ZONE_DEVICE driver built only on the public APIs of
 * @hmm-model/mm-core, @hmm-model/zone-device and @hmm-model/migrate-vma. See the README and
 * docs/writing-a-driver.md.
 */
export * from './checker.js';
export * from './driver.js';
export * from './evict.js';
export * from './gpu.js';
export * from './migrate.js';
export * from './mirror.js';
