/**
 * @hmm-model/test-hmm: the model of lib/test_hmm.c (the dmirror driver) and
 * lib/test_hmm_uapi.h. See the README for the kernel-symbol table.
 */
export * from './device.js';
export * from './dmirror.js';
export * from './evict.js';
export * from './migrate.js';
export * from './module.js';
export * from './snapshot.js';
export * from './uapi.js';
