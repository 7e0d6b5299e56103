/**
 * @hmm-model/explorer (model-only): the interleaving explorer over the model: the operation
 * vocabulary, the oracle, runs under replayable schedules, campaigns (random, PCT, bounded
 * exhaustive), shrinking, reproducer emitters and the bug zoo. CLIs: `pnpm fuzz`, `pnpm run bugs`.
 */
export * from './args.js';
export * from './emit.js';
export * from './explore.js';
export * from './generate.js';
export * from './op.js';
export * from './ops.js';
export * from './oracle.js';
export * from './reproducer.js';
export * from './run.js';
export * from './shrink.js';
export * from './world.js';
export * from './zoo.js';
