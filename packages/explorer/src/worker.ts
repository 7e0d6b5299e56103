/**
 * A worker thread of `pnpm fuzz --workers N`: one campaign over its own seed range, reported back
 * as plain data (structured clone).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { type CampaignOptions, campaign } from './explore.js';
import { findingKey, type Scenario } from './run.js';

/** Model-only: a worker's progress message (every ~2 s while it runs). */
export interface WorkerProgress {
  readonly progress: WorkerResult['stats'];
}

/** Model-only: what a worker reports when its campaign ends. */
export interface WorkerResult {
  readonly stats: {
    ops: number;
    runs: number;
    schedules: number;
    checks: number;
    checkedPages: number;
    elapsedMs: number;
    sites: [string, number][];
    kinds: Record<string, number>;
    entries: Record<string, number>;
  };
  readonly failure: { scenario: Scenario; schedule: string; message: string; key: string } | null;
}

if (!isMainThread && parentPort) {
  const opts = workerData as CampaignOptions;
  const port = parentPort;
  let last = performance.now();
  const res = campaign({
    ...opts,
    onRun: (s) => {
      if (performance.now() - last < 2000) return;
      last = performance.now();
      const msg: WorkerProgress = { progress: { ...s, sites: [...s.sites] } };
      port.postMessage(msg);
    },
  });
  const out: WorkerResult = {
    stats: { ...res.stats, sites: [...res.stats.sites] },
    failure: res.failure
      ? {
          scenario: res.failure.scenario,
          schedule: res.failure.schedule,
          message: res.failure.finding.message,
          key: findingKey(res.failure.finding),
        }
      : null,
  };
  port.postMessage(out);
}
