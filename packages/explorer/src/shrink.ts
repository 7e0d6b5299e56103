/**
 * Shrinking a failing run to a minimal reproducer: delta debugging (ddmin) over the operations,
 * each candidate tried under the original schedule and a few other seeded schedules, keeping a
 * candidate when the same kind of finding comes back; then the operations themselves are made
 * smaller (fewer pages). The result carries the exact trace that replays it.
 */
import type { Finding } from '@hmm-model/mm-core';
import type { Op } from './op.js';
import { findingKey, type RunResult, runScenario, type Scenario } from './run.js';

/** Model-only: a minimal failing run. */
export interface Reproducer {
  readonly scenario: Scenario;
  /** The schedule string that was used (strategy), and the trace that replays it exactly. */
  readonly schedule: string;
  readonly trace: string;
  readonly finding: Finding;
  readonly bugs: readonly string[];
  /** Fix switches of the runs (undefined: the explorer's default, every one). */
  readonly fixes?: readonly string[];
  /** Runs tried while shrinking. */
  readonly runs: number;
  /**
   * Why the shrink stopped before it was done, if it did: its run budget or its time limit. The
   * reproducer still fails the same way, but it may not be minimal.
   */
  readonly stopped?: 'runs' | 'time';
}

/** Options of {@link shrink}. */
export interface ShrinkOptions {
  readonly bugs: readonly string[];
  readonly fixes?: readonly string[];
  /** Schedules tried per candidate besides the original (default 8). */
  readonly tries?: number;
  /** Stop after this many runs (default 1500). */
  readonly budget?: number;
  /**
   * Stop trying candidates after this many milliseconds (default: no limit). A run in flight is
   * finished first; a livelock finding's candidates each spin to the livelock bound, so a shrink
   * without a limit can take hours.
   */
  readonly timeMs?: number;
  readonly ramBytes?: number;
  /** Which findings count as the same failure (default: the same {@link findingKey}). */
  readonly accept?: (f: Finding) => boolean;
}

function schedulesFor(original: string, seed: number, tries: number): string[] {
  const out = [original];
  for (let i = 0; i < tries; i++) {
    const s = (seed * 7919 + i * 104729) >>> 0;
    out.push(i % 2 ? `pct:seed=${s},d=2,k=400` : `random:seed=${s},p=0.5`);
  }
  out.push('coop');
  return out;
}

/** Shrinks a failing (scenario, schedule) to a smaller one that fails the same way. */
export function shrink(sc: Scenario, schedule: string, first: RunResult, opts: ShrinkOptions): Reproducer {
  const key = findingKey(first.finding!);
  const same = opts.accept ?? ((f: Finding) => findingKey(f) === key);
  let runs = 0;
  const budget = opts.budget ?? 1500;
  const deadline = opts.timeMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + opts.timeMs;
  let stopped: 'runs' | 'time' | undefined;
  /** Whether another candidate run may start (notes why not). */
  const left = (): boolean => {
    if (runs >= budget) stopped ??= 'runs';
    else if (performance.now() >= deadline) stopped ??= 'time';
    else return true;
    return false;
  };
  const tries = opts.tries ?? 8;
  let best: { sc: Scenario; schedule: string; res: RunResult } = { sc, schedule, res: first };

  let phaseTries = Math.min(1, tries);
  const attempt = (cand: Scenario): boolean => {
    for (const s of schedulesFor(schedule, runs + 1, phaseTries)) {
      if (!left()) return false;
      runs++;
      const res = runScenario(cand, {
        schedule: s,
        bugs: opts.bugs,
        ...(opts.fixes ? { fixes: opts.fixes } : {}),
        ...(opts.ramBytes ? { ramBytes: opts.ramBytes } : {}),
      });
      if (res.finding && same(res.finding)) {
        best = { sc: cand, schedule: s, res };
        return true;
      }
    }
    return false;
  };

  // ddmin over the concatenation prelude ++ ops (the prelude keeps its place in front).
  const all = (s: Scenario): { op: Op; pre: boolean }[] => [
    ...s.prelude.map((op) => ({ op, pre: true })),
    ...s.ops.map((op) => ({ op, pre: false })),
  ];
  const build = (items: { op: Op; pre: boolean }[]): Scenario => ({
    ...sc,
    prelude: items.filter((x) => x.pre).map((x) => x.op),
    ops: items.filter((x) => !x.pre).map((x) => x.op),
  });
  let items = all(sc);
  // Operations that never started cannot matter (unless the finding came at the very end).
  if (first.started.size < sc.ops.length) {
    const cand = build(items.filter((x, i) => x.pre || first.started.has(i - sc.prelude.length)));
    if (attempt(cand)) items = all(best.sc);
  }
  // Whole threads, then whole processes: most findings need two or three of them.
  for (const key of [(op: Op) => `${op.p}.${op.t}`, (op: Op) => `${op.p}`]) {
    const groups = [...new Set(items.filter((x) => !x.pre).map((x) => key(x.op)))];
    for (const g of groups) {
      if (!left()) break;
      const cand = items.filter((x) => x.pre || key(x.op) !== g);
      if (cand.length < items.length && attempt(build(cand))) items = all(best.sc);
    }
  }
  let n = 2;
  // Two passes: first with few schedules per candidate (cheap on big scenarios), then more.
  for (const pass of [Math.min(1, tries), tries]) {
    phaseTries = pass;
    n = 2;
    while (items.length >= 2 && left()) {
      const chunk = Math.ceil(items.length / n);
      let reduced = false;
      for (let i = 0; i < items.length && left(); i += chunk) {
        const cand = items.slice(0, i).concat(items.slice(i + chunk));
        if (cand.length && attempt(build(cand))) {
          items = all(best.sc);
          n = Math.max(n - 1, 2);
          reduced = true;
          break;
        }
      }
      if (!reduced) {
        if (n >= items.length) break;
        n = Math.min(items.length, n * 2);
      }
    }
  }
  // Fewer pages per operation: halve n while the failure stays.
  for (let i = 0; i < items.length && left(); i++) {
    for (;;) {
      const it = items[i];
      const pages = it.op.n ?? 0;
      if (pages <= 1 || it.op.k === 'mmap') break;
      const smaller = { ...it, op: { ...it.op, n: Math.ceil(pages / 2) } };
      const cand = items.slice(0, i).concat([smaller], items.slice(i + 1));
      if (!attempt(build(cand))) break;
      items = all(best.sc);
    }
  }
  return {
    scenario: best.sc,
    schedule: best.schedule,
    trace: best.res.trace,
    finding: best.res.finding!,
    bugs: opts.bugs,
    ...(opts.fixes ? { fixes: opts.fixes } : {}),
    runs,
    ...(stopped ? { stopped } : {}),
  };
}
