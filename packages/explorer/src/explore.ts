/**
 * Campaigns: many runs, each a generated scenario under a schedule of the chosen strategy, until
 * an operation or time budget is spent or a finding appears. Bounded-exhaustive exploration
 * enumerates, for one scenario, every schedule with at most k preemptions (depth-first over the
 * decisions a run records).
 */
import { ENTRY_KINDS, type Finding, PrefixStrategy } from '@hmm-model/mm-core';
import { type GenOptions, generateScenario } from './generate.js';
import { type RunResult, runScenario, type Scenario } from './run.js';

/** The strategies a campaign can use. */
export type StrategyName = 'random' | 'pct' | 'exhaustive';

/** Options of a campaign. */
export interface CampaignOptions extends GenOptions {
  readonly seed: number;
  /** Stop after this many operations (all runs together). */
  readonly totalOps: number;
  /** Stop after this many milliseconds (0: no limit). */
  readonly timeMs?: number;
  /** Stop after this many runs (0: no limit). */
  readonly maxRuns?: number;
  readonly strategy: StrategyName;
  /** PCT depth (default 2). */
  readonly depth?: number;
  /** Preemption bound of the exhaustive strategy (default 2). */
  readonly preemptions?: number;
  readonly bugs?: readonly string[];
  /** Fix switches (default: every one; [] with --faithful). */
  readonly fixes?: readonly string[];
  readonly checkEvery?: number;
  readonly countSites?: boolean;
  /** Called after every run (progress). */
  readonly onRun?: (s: CampaignStats, last: RunResult) => void;
}

/** Model-only: what a campaign did. */
export interface CampaignStats {
  ops: number;
  runs: number;
  schedules: number;
  checks: number;
  checkedPages: number;
  elapsedMs: number;
  readonly sites: Map<string, number>;
  readonly kinds: Record<string, number>;
  /** Page-table entries written, by level and kind ('pmd device-private-write': n): entry kinds reached. */
  readonly entries: Record<string, number>;
}

/**
 * Model-only: entry counts ({@link CampaignStats.entries}) as one line, PTE level first:
 * `pte present 812, device-private-write 64; pmd present 9, migration-write 3` (kinds in
 * mm-core ENTRY_KINDS order; a level with none is left out).
 */
export function formatEntryKinds(entries: Readonly<Record<string, number>>): string {
  const order = [...ENTRY_KINDS, 'huge-zero'];
  const parts: string[] = [];
  for (const level of ['pte', 'pmd']) {
    const here = Object.entries(entries)
      .filter(([k]) => k.startsWith(`${level} `))
      .map(([k, v]): [string, number] => [k.slice(level.length + 1), v])
      .sort((x, y) => order.indexOf(x[0]) - order.indexOf(y[0]));
    if (here.length) parts.push(`${level} ${here.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  return parts.length ? parts.join('; ') : 'none';
}

/** Model-only: the stats of a campaign that has not run anything yet. */
export function emptyCampaignStats(elapsedMs = 0): CampaignStats {
  return {
    ops: 0,
    runs: 0,
    schedules: 0,
    checks: 0,
    checkedPages: 0,
    elapsedMs,
    sites: new Map(),
    kinds: {},
    entries: {},
  };
}

/** Model-only: a campaign's result: its stats and the first failing run, if any. */
export interface CampaignResult {
  readonly stats: CampaignStats;
  readonly failure: {
    readonly scenario: Scenario;
    readonly schedule: string;
    readonly result: RunResult;
    readonly finding: Finding;
  } | null;
}

/** The schedule string of run i of a campaign. */
export function scheduleFor(
  strategy: StrategyName,
  seed: number,
  i: number,
  depth = 2,
  steps = 4000,
): string {
  const s = (Math.imul(seed, 2654435761) + i * 40503 + 1) >>> 0;
  if (strategy === 'pct') return `pct:seed=${s},d=${depth},k=${steps}`;
  return `random:seed=${s},p=${[0.05, 0.2, 0.5][i % 3]}`;
}

/** Runs a campaign (random or PCT: one schedule per generated scenario; exhaustive: all schedules of each). */
export function campaign(opts: CampaignOptions): CampaignResult {
  const t0 = performance.now();
  const stats = emptyCampaignStats();
  const account = (r: RunResult) => {
    stats.ops += r.opsDone;
    stats.runs++;
    stats.schedules++;
    stats.checks += r.checks;
    stats.checkedPages += r.checkedPages;
    for (const [k, v] of r.sites) stats.sites.set(k, (stats.sites.get(k) ?? 0) + v);
    for (const [k, v] of Object.entries(r.kinds)) stats.kinds[k] = (stats.kinds[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.entries)) stats.entries[k] = (stats.entries[k] ?? 0) + v;
    stats.elapsedMs = performance.now() - t0;
    opts.onRun?.(stats, r);
  };
  const done = () =>
    stats.ops >= opts.totalOps ||
    (opts.timeMs ? performance.now() - t0 >= opts.timeMs : false) ||
    (opts.maxRuns ? stats.runs >= opts.maxRuns : false);
  for (let i = 0; !done(); i++) {
    const gen = generateScenario((opts.seed + i * 7919) >>> 0, opts);
    const sc = opts.checkEvery ? { ...gen, checkEvery: opts.checkEvery } : gen;
    const base = {
      bugs: opts.bugs ?? [],
      ...(opts.fixes ? { fixes: opts.fixes } : {}),
      ...(opts.checkEvery ? { checkEvery: opts.checkEvery } : {}),
      ...(opts.countSites ? { countSites: true } : {}),
    };
    if (opts.strategy === 'exhaustive') {
      const f = exhaustive(sc, opts.preemptions ?? 2, base, account, done);
      if (f) return { stats, failure: f };
      continue;
    }
    const schedule = scheduleFor(opts.strategy, opts.seed, i, opts.depth ?? 2);
    const r = runScenario(sc, { ...base, schedule });
    account(r);
    if (r.finding) return { stats, failure: { scenario: sc, schedule, result: r, finding: r.finding } };
  }
  return { stats, failure: null };
}

/**
 * CHESS-style bounded search over one scenario: depth-first over the recorded decisions, trying
 * every alternative while the number of preemptions (switching away from a task that could have
 * continued) stays within the bound.
 */
function exhaustive(
  sc: Scenario,
  bound: number,
  base: { bugs: readonly string[]; fixes?: readonly string[]; checkEvery?: number; countSites?: boolean },
  account: (r: RunResult) => void,
  done: () => boolean,
): CampaignResult['failure'] {
  const stack: number[][] = [[]];
  const seen = new Set<string>();
  while (stack.length && !done()) {
    const prefix = stack.pop()!;
    const key = prefix.join('.');
    if (seen.has(key)) continue;
    seen.add(key);
    const strat = new PrefixStrategy(prefix);
    const r = runScenario(sc, { ...base, schedule: strat });
    account(r);
    if (r.finding) return { scenario: sc, schedule: r.trace, result: r, finding: r.finding };
    if (strat.mismatch) continue;
    let used = 0;
    for (let i = 0; i < prefix.length && i < strat.decisions.length; i++) {
      const d = strat.decisions[i];
      if (d.continuing >= 0 && d.chosen !== d.continuing) used++;
    }
    for (let i = strat.decisions.length - 1; i >= prefix.length; i--) {
      const d = strat.decisions[i];
      let pre = used;
      for (let j = prefix.length; j < i; j++) {
        const e = strat.decisions[j];
        if (e.continuing >= 0 && e.chosen !== e.continuing) pre++;
      }
      for (const alt of d.runnable) {
        if (alt === d.chosen) continue;
        const cost = d.continuing >= 0 && alt !== d.continuing ? 1 : 0;
        if (pre + cost > bound) continue;
        stack.push([...strat.decisions.slice(0, i).map((x) => x.chosen), alt]);
      }
    }
  }
  return null;
}

/** A scenario's generation parameters for reports. */
export function describeScenario(sc: Scenario): string {
  return `${sc.procs} process slots x ${sc.threads} threads, ${sc.prelude.length} prelude + ${sc.ops.length} operations`;
}

export { generateScenario };
