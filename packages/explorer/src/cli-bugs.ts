#!/usr/bin/env node
/**
 * `pnpm run bugs`: the bug zoo. For every historical bug the model can switch back on, the explorer
 * hunts it with a fixed budget (the campaign of `pnpm fuzz`, with the operations the bug's Fixes
 * scenario names), then runs the same campaign with no switch on, which must find nothing.
 * One line per bug, then `bug zoo: K/N found`; exit 0 only when every bug is found and every
 * baseline is clean. `--write` keeps each bug's minimal reproducer as a shell script, which
 * src/regressions/zoo.test.ts replays as a regression test.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { KERNEL_BUGS } from '@hmm-model/mm-core';
import { bugList, type OptSpec, parseArgs, UsageError } from './args.js';
import { shellScript } from './emit.js';
import type { HuntJob, HuntReport } from './hunt-worker.js';
import { runHuntJob } from './hunt-worker.js';
import { tuneWorkerHeap } from './worker-heap.js';
import { ZOO, zooEntry } from './zoo.js';

const SPECS: readonly OptSpec[] = [
  { name: 'list', value: 'none' },
  { name: 'bug', value: 'string', repeat: true },
  { name: 'seed', value: 'int' },
  { name: 'runs', value: 'int', min: 1, max: 100_000 },
  { name: 'time', value: 'duration' },
  { name: 'ops', value: 'int', min: 1, max: 10_000 },
  { name: 'workers', value: 'int', min: 1, max: 64 },
  { name: 'write', value: 'none' },
  { name: 'out', value: 'string' },
  { name: 'no-baseline', value: 'none' },
  { name: 'help', value: 'none' },
];

const HELP = `usage: pnpm run bugs [--list] [--bug ID ...] [--seed N] [--runs N] [--time 60s] [--ops N]
                 [--workers N] [--write] [--out DIR] [--no-baseline]
  --runs N     schedules per bug (default 300), also the baseline's budget
  --time T     time per bug at most (default 90s)
  --write      write each found bug's minimal reproducer as a shell script, <ID>.hmm
               (default directory: packages/explorer/src/regressions, where zoo.test.ts
               replays every one as a regression test)`;

function list(): void {
  const w = Math.max(...KERNEL_BUGS.map((b) => b.fixes.length));
  for (const b of KERNEL_BUGS) {
    const hunted = zooEntry(b.id) ? 'hunted' : 'not hunted';
    console.log(
      `${b.id.padEnd(4)} ${b.fixes.padEnd(w)}  ${b.pkg.padEnd(12)} ${b.race ? 'race      ' : 'sequential'}  ${hunted.padEnd(10)}  ${b.title}`,
    );
  }
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function line(r: HuntReport): string {
  if (r.found) return `found ${r.id} in ${r.schedules} schedules, ${secs(r.ms)}: ${r.message}`;
  if (r.other) return `missed ${r.id}: a different finding after ${r.schedules} schedules: ${r.message}`;
  return `missed ${r.id} (${r.schedules} schedules, ${secs(r.ms)})`;
}

function baselineLine(r: HuntReport): string {
  if (r.message)
    return `  baseline ${r.id}: the fixed model fails after ${r.schedules} schedules: ${r.message}`;
  return `  baseline ${r.id}: ${r.schedules} schedules without the switch, nothing found`;
}

async function runJobs(jobs: HuntJob[], workers: number, onDone: (r: HuntReport) => void): Promise<void> {
  if (workers <= 1) {
    for (const j of jobs) onDone(runHuntJob(j));
    return;
  }
  tuneWorkerHeap();
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const take = () => {
        if (next >= jobs.length) return null;
        return jobs[next++];
      };
      const first = take();
      if (!first) return resolve();
      const w = new Worker(new URL('./hunt-worker.js', import.meta.url), { workerData: null });
      w.on('message', (r: HuntReport) => {
        onDone(r);
        const j = take();
        if (j) w.postMessage(j);
        else {
          void w.terminate();
          resolve();
        }
      });
      w.on('error', reject);
      w.postMessage(first);
    });
  await Promise.all(Array.from({ length: Math.min(workers, jobs.length) }, one));
}

async function main(argv: readonly string[]): Promise<number> {
  const o = parseArgs(argv, SPECS);
  if (o.help) {
    console.log(HELP);
    return 0;
  }
  if (o.list) {
    list();
    return 0;
  }
  const ids = bugList(o.bug);
  const entries = ids.length
    ? ids.map((id) => {
        const z = zooEntry(id);
        if (!z) throw new UsageError(`bug ${id} has a switch but no hunt in the zoo (pnpm run bugs --list)`);
        return z;
      })
    : [...ZOO];
  const base = {
    seed: (o.seed as number | undefined) ?? 20261204,
    maxRuns: (o.runs as number | undefined) ?? 300,
    timeMs: (o.time as number | undefined) ?? 90_000,
    ops: (o.ops as number | undefined) ?? 30,
    write: Boolean(o.write),
  };
  const jobs: HuntJob[] = [];
  for (const z of entries) {
    jobs.push({ ...base, id: z.id, baseline: false });
    if (!o['no-baseline']) jobs.push({ ...base, id: z.id, baseline: true, write: false });
  }
  const hunts = new Map<string, HuntReport>();
  const baselines = new Map<string, HuntReport>();
  let printed = 0;
  const flush = () => {
    while (printed < entries.length) {
      const id = entries[printed].id;
      const h = hunts.get(id);
      const b = baselines.get(id);
      if (!h || (!o['no-baseline'] && !b)) return;
      console.log(line(h));
      if (b) console.log(baselineLine(b));
      printed++;
    }
  };
  const workers = (o.workers as number | undefined) ?? 2;
  await runJobs(jobs, workers, (r) => {
    (r.baseline ? baselines : hunts).set(r.id, r);
    flush();
  });
  const found = entries.filter((z) => hunts.get(z.id)?.found).length;
  const dirty = [...baselines.values()].filter((b) => b.message).length;
  if (base.write) {
    const dir =
      (o.out as string | undefined) ??
      join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'regressions');
    mkdirSync(dir, { recursive: true });
    for (const z of entries) {
      const h = hunts.get(z.id);
      if (!h?.reproducer) continue;
      writeFileSync(join(dir, `${z.id}.hmm`), shellScript(h.reproducer, `bug ${z.id}: ${h.title}`));
    }
    console.log(`reproducers written to ${dir}`);
  }
  console.log(
    `bug zoo: ${found}/${entries.length} found${o['no-baseline'] ? '' : `, ${dirty} baseline failure(s)`}`,
  );
  return found === entries.length && dirty === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`bugs: ${e.message}`);
      process.exit(2);
    }
    console.error(`bugs: internal error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(3);
  },
);
