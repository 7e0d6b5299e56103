import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { tuneWorkerHeap, WORKER_SEMI_SPACE_MB } from './worker-heap.js';

/** heap_size_limit of a fresh worker isolate (old generation + 3 semi-spaces' worth of young generation). */
function workerHeapLimit(): Promise<number> {
  return new Promise((resolve, reject) => {
    const w = new Worker(
      "require('node:worker_threads').parentPort.postMessage(require('node:v8').getHeapStatistics().heap_size_limit)",
      { eval: true },
    );
    w.once('message', (n: number) => {
      void w.terminate();
      resolve(n);
    });
    w.once('error', reject);
  });
}

describe('tuneWorkerHeap', () => {
  it('gives the worker isolates started afterwards a larger young generation', async () => {
    const before = await workerHeapLimit();
    tuneWorkerHeap();
    const after = await workerHeapLimit();
    // V8's default semi-space is at most 32 MiB; the young generation is three semi-spaces.
    expect(after - before).toBeGreaterThanOrEqual(3 * (WORKER_SEMI_SPACE_MB - 32) * 2 ** 20);
  });
});
