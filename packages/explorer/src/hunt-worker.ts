/**
 * One bug hunt as a job for `pnpm run bugs` (run in place, or in a worker thread: a worker takes
 * jobs from its port until the parent stops it). Results are plain data (structured clone).
 */
import { isMainThread, parentPort } from 'node:worker_threads';
import { KERNEL_BUGS } from '@hmm-model/mm-core';
import type { ReproducerText } from './emit.js';
import { hunt, zooEntry } from './zoo.js';

/** Model-only: one hunt (or its baseline) to run. */
export interface HuntJob {
  readonly id: string;
  readonly baseline: boolean;
  readonly seed: number;
  readonly maxRuns: number;
  readonly timeMs: number;
  readonly ops: number;
  /** Shrink a found bug to its minimal reproducer. */
  readonly write: boolean;
}

/** Model-only: what a hunt reports. */
export interface HuntReport {
  readonly id: string;
  readonly baseline: boolean;
  readonly title: string;
  readonly found: boolean;
  /** A finding that is not the bug's (or, for a baseline, any finding). */
  readonly other: boolean;
  readonly schedules: number;
  readonly ms: number;
  /** The finding's first line ('' when nothing was found). */
  readonly message: string;
  readonly reproducer: ReproducerText | null;
}

/** Runs one job. */
export function runHuntJob(job: HuntJob): HuntReport {
  const entry = zooEntry(job.id);
  if (!entry) throw new Error(`no zoo entry for ${job.id}`);
  const r = hunt(entry, {
    seed: job.seed,
    maxRuns: job.maxRuns,
    timeMs: job.timeMs,
    ops: job.ops,
    shrink: job.write && !job.baseline,
    baseline: job.baseline,
  });
  const f = r.finding ?? r.other;
  const rep = r.reproducer;
  return {
    id: job.id,
    baseline: job.baseline,
    title: KERNEL_BUGS.find((b) => b.id === job.id)?.title ?? job.id,
    found: r.found,
    other: r.other !== null,
    schedules: r.schedules,
    ms: r.ms,
    message: f ? f.message.split('\n')[0] : '',
    reproducer: rep
      ? {
          scenario: rep.scenario,
          trace: rep.trace,
          bugs: [...rep.bugs],
          finding: { message: rep.finding.message },
        }
      : null,
  };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', (job: HuntJob) => port.postMessage(runHuntJob(job)));
}
