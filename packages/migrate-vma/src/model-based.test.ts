/**
 * The model-based random test: migrations to and from two test devices interleaved with CPU and
 * device accesses, fork, exit, mprotect, partial munmap, mremap and madvise, checked against a
 * flat oracle and every invariant checker after each step. HMM_FUZZ_STEPS / HMM_FUZZ_SEED run
 * longer or other seeds (the default is what CI runs).
 */
import { describe, expect, it } from 'vitest';
import { runFuzz } from './testing/fuzz.js';

const STEPS = Number(process.env.HMM_FUZZ_STEPS ?? 2000);
const SEED = process.env.HMM_FUZZ_SEED === undefined ? undefined : Number(process.env.HMM_FUZZ_SEED);
/** Default seeds: the steps are spread over a few machines for variety. */
const SEEDS = SEED === undefined ? [1, 2, 3, 4] : [SEED];

describe('model-based random test', () => {
  for (const seed of SEEDS) {
    it(
      `seed ${seed}: ${Math.ceil(STEPS / SEEDS.length)} steps agree with the flat oracle`,
      () => {
        const steps = Math.ceil(STEPS / SEEDS.length);
        const stats = runFuzz(seed, steps);
        // Every kind of operation ran (the run is long enough to mix them all).
        if (steps >= 400)
          for (const op of [
            'to-dev',
            'to-dev-async',
            'to-sys',
            'to-sys-async',
            'fork',
            'mremap',
            'madv-free',
          ])
            expect(stats[op]).toBeGreaterThan(0);
      },
      Math.max(120_000, 200 * Math.ceil(STEPS / SEEDS.length)),
    );
  }
});
