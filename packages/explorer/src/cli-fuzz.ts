#!/usr/bin/env node
/**
 * `pnpm fuzz`: random operation sequences across processes and threads, all four dmirror devices
 * and the nouveau GPU, under random, PCT or bounded-exhaustive schedules, with the oracle, the
 * WARN check and every invariant checker. A failing run is shrunk and written out as a shell
 * script and a vitest regression file.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { bugList, type OptSpec, parseArgs, UsageError } from './args.js';
import { regressionTest, shellScript } from './emit.js';
import { type CampaignStats, emptyCampaignStats, formatEntryKinds, type StrategyName } from './explore.js';
import type { Scenario } from './run.js';
import { shrink } from './shrink.js';
import type { WorkerProgress, WorkerResult } from './worker.js';
import { tuneWorkerHeap } from './worker-heap.js';
import { parseRamMiB } from './world.js';

const SPECS: readonly OptSpec[] = [
  { name: 'seed', value: 'int' },
  { name: 'ops', value: 'int', min: 1 },
  { name: 'ops-per-run', value: 'int', min: 1, max: 100_000 },
  { name: 'processes', value: 'int', min: 1, max: 6 },
  { name: 'threads', value: 'int', min: 1, max: 6 },
  { name: 'strategy', value: 'string', choices: ['random', 'pct', 'exhaustive'] },
  { name: 'depth', value: 'int', min: 1, max: 16 },
  { name: 'preemptions', value: 'int', min: 0, max: 8 },
  { name: 'time', value: 'duration' },
  { name: 'workers', value: 'int', min: 1, max: 64 },
  { name: 'bug', value: 'string', repeat: true },
  { name: 'check-every', value: 'int', min: 1 },
  { name: 'out', value: 'string' },
  { name: 'no-shrink', value: 'none' },
  { name: 'shrink-time', value: 'duration' },
  { name: 'faithful', value: 'none' },
  { name: 'mthp', value: 'none' },
  { name: 'ram', value: 'string' },
  { name: 'oom-kill-allocating-task', value: 'int', min: 0, max: 1 },
  { name: 'quiet', value: 'none' },
  { name: 'help', value: 'none' },
];

/** How long the shrinker of a failing campaign may try candidates (--shrink-time). */
const DEFAULT_SHRINK_MS = 10 * 60_000;

const HELP = `usage: pnpm fuzz [--seed N] [--ops N] [--ops-per-run N] [--processes N] [--threads N]
                 [--strategy random|pct|exhaustive] [--depth D] [--preemptions K] [--time 5m]
                 [--workers N] [--bug ID ...] [--faithful] [--mthp] [--ram 512M] [--check-every N]
                 [--oom-kill-allocating-task 0|1] [--out DIR] [--no-shrink] [--shrink-time 10m] [--quiet]
--faithful: v6.19 exactly (the model's fix switches for its own kernel findings off; by default
            they are on, so that a campaign looks for new findings)
--mthp:     an mTHP machine (model extension): anonymous mTHP sizes enabled, dmirror devices
            that allocate and migrate folios of mTHP orders, and their operations in the mix
--ram:      the machine's system RAM (default 512M; 16M to 4G, in 4M steps): a small machine reclaims, swaps,
            OOM-kills and cannot find large folios, on every path that allocates
--oom-kill-allocating-task: vm.oom_kill_allocating_task (default 1, the model's machine: the process
            whose allocation failed is killed; 0, the kernel's default: the OOM killer picks the
            process with the highest badness and waits for an earlier victim to go)
--shrink-time: how long the shrinker of a finding tries candidates (default 10m); a livelock's
            candidates each spin to the livelock bound, so its shrink stops there, not minimal`;

/**
 * A progress line. `recent`: the rate since the previous line (ops/s), shown beside the overall
 * rate: the first seconds of a campaign run before V8 has optimised the model (a fresh process
 * does its first thousand operations about 8 times slower than later ones), so the recent rate is
 * the steady one.
 */
function line(s: CampaignStats, recent?: number): string {
  const rate = s.elapsedMs > 0 ? Math.round((s.ops * 1000) / s.elapsedMs) : 0;
  const kinds = Object.keys(s.kinds).length;
  const entries = Object.keys(s.entries).length;
  const now = recent === undefined ? '' : ` (${recent} ops/s since the last line)`;
  return `fuzz: ${s.ops} ops, ${s.schedules} schedules, ${rate} ops/s${now}, ${kinds} op kinds, ${entries} entry kinds, ${s.sites.size} preemption sites, ${s.checks} full checks`;
}

/** The campaign stats of several workers together (elapsed: the wall-clock time so far). */
function aggregate(results: readonly WorkerResult[], elapsedMs: number): CampaignStats {
  const stats = emptyCampaignStats(elapsedMs);
  for (const r of results) {
    stats.ops += r.stats.ops;
    stats.runs += r.stats.runs;
    stats.schedules += r.stats.schedules;
    stats.checks += r.stats.checks;
    stats.checkedPages += r.stats.checkedPages;
    for (const [k, v] of r.stats.sites) stats.sites.set(k, (stats.sites.get(k) ?? 0) + v);
    for (const [k, v] of Object.entries(r.stats.kinds)) stats.kinds[k] = (stats.kinds[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.stats.entries)) stats.entries[k] = (stats.entries[k] ?? 0) + v;
  }
  return stats;
}

async function main(argv: readonly string[]): Promise<number> {
  const o = parseArgs(argv, SPECS);
  if (o.help) {
    console.log(HELP);
    return 0;
  }
  const bugs = bugList(o.bug);
  const fixes: readonly string[] | undefined = o.faithful ? [] : undefined;
  const seed = (o.seed as number | undefined) ?? 1;
  const totalOps = (o.ops as number | undefined) ?? 20_000;
  const opsPerRun = (o['ops-per-run'] as number | undefined) ?? 1000;
  const strategy = ((o.strategy as string | undefined) ?? 'random') as StrategyName;
  const workers = (o.workers as number | undefined) ?? 1;
  const timeMs = (o.time as number | undefined) ?? 0;
  const ramMiB = o.ram === undefined ? undefined : parseRamMiB(o.ram as string);
  if (typeof ramMiB === 'string') throw new UsageError(`option '--ram': ${ramMiB}`);
  const base = {
    strategy,
    ops: strategy === 'exhaustive' ? Math.min(opsPerRun, 8) : opsPerRun,
    procs: (o.processes as number | undefined) ?? 3,
    threads: (o.threads as number | undefined) ?? 2,
    depth: (o.depth as number | undefined) ?? 2,
    preemptions: (o.preemptions as number | undefined) ?? 2,
    bugs,
    ...(fixes ? { fixes } : {}),
    checkEvery: (o['check-every'] as number | undefined) ?? 1000,
    timeMs,
    ...(o.mthp ? { mthp: true } : {}),
    ...(ramMiB ? { ramMiB } : {}),
    ...(o['oom-kill-allocating-task'] !== undefined
      ? { oomKillAllocatingTask: o['oom-kill-allocating-task'] as number }
      : {}),
  };
  const t0 = performance.now();
  // A worker thread per seed range (one too for --workers 1: its heap is tuned, see worker-heap.ts).
  // Every worker reports progress every ~2 s; the first finding stops the others (their last
  // progress counts), so a campaign stops at its first finding as with one worker.
  const per = Math.ceil(totalOps / workers);
  const latest: WorkerResult[] = [];
  const pool: Worker[] = [];
  let printed = t0;
  let printedOps = 0;
  const progressLine = () => {
    const now = performance.now();
    if (o.quiet || now - printed < 2000) return;
    const agg = aggregate(latest.filter(Boolean), now - t0);
    const recent = Math.round(((agg.ops - printedOps) * 1000) / (now - printed));
    printed = now;
    printedOps = agg.ops;
    process.stderr.write(`${line(agg, recent)}${workers > 1 ? ` (${workers} workers)` : ''}\n`);
  };
  tuneWorkerHeap();
  const results = await new Promise<WorkerResult[]>((resolve, reject) => {
    let left = workers;
    const finish = () => {
      for (const w of pool) void w.terminate();
      resolve(latest.filter(Boolean));
    };
    for (let i = 0; i < workers; i++) {
      const w = new Worker(new URL('./worker.js', import.meta.url), {
        workerData: { ...base, seed: (seed + i * 1_000_003) >>> 0, totalOps: per, countSites: true },
      });
      pool.push(w);
      w.on('message', (m: WorkerResult | WorkerProgress) => {
        if ('progress' in m) {
          latest[i] = { stats: m.progress, failure: null };
          progressLine();
          return;
        }
        latest[i] = m;
        if (m.failure || --left === 0) finish();
      });
      w.on('error', reject);
    }
  });
  const stats = aggregate(results, performance.now() - t0);
  const failure = results.find((r) => r.failure)?.failure ?? null;
  const rate = Math.round((stats.ops * 1000) / Math.max(1, stats.elapsedMs));
  if (!o.quiet) {
    console.error(
      `operation kinds reached: ${Object.entries(stats.kinds)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.error(`entry kinds reached (entries written): ${formatEntryKinds(stats.entries)}`);
    console.error(
      `preemption sites reached: ${stats.sites.size}; pages compared with the oracle: ${stats.checkedPages}`,
    );
  }
  if (!failure) {
    console.log(
      `fuzz: ${stats.ops} ops, ${stats.schedules} schedules, 0 divergences, 0 invariant violations, 0 deadlocks, ${rate} ops/s`,
    );
    return 0;
  }
  // The summary's three kinds: data divergences, deadlocks (and livelocks, leaked locks), and
  // every other finding (checkers, the kernel's own BUG/WARN reports) as invariant violations.
  const kind = failure.key.startsWith('divergence')
    ? 'divergence'
    : /^(deadlock|livelock|lock-leak|bad-unlock|sleep-in-atomic)/.test(failure.key)
      ? 'deadlock'
      : 'invariant';
  const count = (k: string) => (kind === k ? 1 : 0);
  console.log(failure.message);
  console.log(`schedule: ${failure.schedule}`);
  if (!o['no-shrink']) {
    const { runScenario } = await import('./run.js');
    const first = runScenario(failure.scenario as Scenario, {
      schedule: failure.schedule,
      bugs,
      ...(fixes ? { fixes } : {}),
    });
    if (!first.finding)
      console.log('(the failing run did not fail again when replayed: no reproducer written)');
    else {
      const rep = shrink(failure.scenario as Scenario, failure.schedule, first, {
        bugs,
        ...(fixes ? { fixes } : {}),
        timeMs: (o['shrink-time'] as number | undefined) ?? DEFAULT_SHRINK_MS,
      });
      const dir = (o.out as string | undefined) ?? 'fuzz-findings';
      mkdirSync(dir, { recursive: true });
      const name = `fuzz-seed${seed}-${failure.key.replace(/[^a-z0-9_-]+/gi, '-')}`;
      writeFileSync(join(dir, `${name}.hmm`), shellScript(rep, name));
      writeFileSync(join(dir, `${name}.test.ts`), regressionTest(rep, name, failure.message.split('\n')[0]));
      const size = rep.scenario.prelude.length + rep.scenario.ops.length;
      console.log(
        rep.stopped
          ? `reproducer (${size} operations; the shrink stopped at its ${rep.stopped === 'time' ? 'time limit (--shrink-time)' : 'run budget'} after ${rep.runs} runs, so it may not be minimal):`
          : `minimal reproducer (${size} operations, ${rep.runs} runs to shrink):`,
      );
      console.log(`  ${join(dir, `${name}.hmm`)} (pnpm shell --script ${join(dir, `${name}.hmm`)})`);
      console.log(`  ${join(dir, `${name}.test.ts`)}`);
    }
  }
  console.log(
    `fuzz: ${stats.ops} ops, ${stats.schedules} schedules, ${count('divergence')} divergences, ${count('invariant')} invariant violations, ${count('deadlock')} deadlocks, ${rate} ops/s`,
  );
  return 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`fuzz: ${e.message}`);
      process.exit(2);
    }
    console.error(`fuzz: internal error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(3);
  },
);
