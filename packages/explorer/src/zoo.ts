/**
 * The bug zoo: for each historical bug the model can switch back on, what finding the explorer
 * must report (the kernel's own report of that bug: its BUG/WARN, deadlock, leak or livelock),
 * and the campaign that hunts it with a fixed budget.
 */
import {
  type Finding,
  KERNEL_BUGS,
  KernelBug,
  MADV_COLD,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_PAGEOUT,
} from '@hmm-model/mm-core';
import { campaign } from './explore.js';
import type { GenOptions, MixKind } from './generate.js';
import type { RunResult, Scenario } from './run.js';
import { type Reproducer, shrink } from './shrink.js';

/** Model-only: how the explorer recognises one historical bug, and the campaign that hunts it. */
export interface ZooEntry {
  readonly id: string;
  /** True when the finding is this bug's report. */
  readonly matches: (f: Finding) => boolean;
  /** What the kernel reported, in words (for the README table). */
  readonly report: string;
  /**
   * The generator's settings for the hunt: the operations the bug's Fixes scenario names (the
   * default mix when absent). The schedules are the campaign's, as for `pnpm fuzz`.
   */
  readonly focus?: GenOptions;
}

const kbug = (fn: string) => (f: Finding) => f instanceof KernelBug && f.fn === fn;
const text = (re: RegExp) => (f: Finding) => re.test(`${f.message}\n${f.details.join('\n')}`);
const RW: Partial<Record<MixKind, number>> = { write: 2, read: 2 };

/** The zoo: every switch of mm-core's KERNEL_BUGS that the explorer hunts. */
export const ZOO: readonly ZooEntry[] = [
  {
    id: 'R1',
    matches: text(/check_mm|migration entr|rss|pgtables_bytes|without progress|Bad page/),
    report: 'the child waits on a migration PMD nobody migrates; bad rss at exit',
    focus: { mix: { ...RW, 'dm-to-dev': 4, fork: 3, exit: 1 }, pmdShare: 0.8 },
  },
  {
    id: 'R3',
    matches: (f) => f.category === 'livelock',
    report: 'the CPU fault on a device THP never makes progress',
  },
  {
    id: 'R5',
    matches: text(/migration (PTE|PMD|entr)|deadlock|without progress|locked at a syscall boundary/),
    report: 'a migration PTE left behind; the next access waits forever',
    focus: { mix: { ...RW, mremap: 4, 'dm-to-dev': 4, 'dm-to-sys': 3 }, pmdShare: 0.6, procs: 1 },
  },
  { id: 'R7', matches: text(/deferred.split/), report: 'a device-private folio on the deferred-split queue' },
  {
    id: 'F5',
    matches: kbug('madvise_free_huge_pmd'),
    report: 'VM_BUG_ON in madvise_free_huge_pmd()',
    focus: {
      mix: { write: 1, madvise: 5, 'dm-to-dev': 5, 'dm-to-sys': 2 },
      advice: [MADV_FREE],
      pmdShare: 0.9,
      regions: 1,
      procs: 1,
      ops: 12,
    },
  },
  {
    id: 'F6',
    matches: kbug('madvise_cold_or_pageout_pte_range'),
    report: 'VM_BUG_ON in madvise_cold_or_pageout_pte_range()',
    focus: {
      mix: { write: 1, madvise: 5, 'dm-to-dev': 5, 'dm-to-sys': 2 },
      advice: [MADV_COLD, MADV_PAGEOUT],
      pmdShare: 0.9,
      regions: 1,
      procs: 1,
      // A third thread: with two, the same budget found F6 only after 569 schedules (74 with three).
      threads: 3,
      ops: 12,
    },
  },
  {
    id: 'F10',
    matches: text(/softleaf_is_migration_young/),
    report: 'WARN: a migration-entry test on the device-private entry; the device PMD loses write',
  },
  {
    id: 'F11',
    matches: text(/migrate_vma_insert_huge_pmd_page/),
    report: 'PMD lock held at return to user space (the next locker spins forever)',
    focus: { mix: { mmap: 3, 'dm-to-dev': 6, oom: 2, fork: 2 }, pmdShare: 0.9, fill: false },
  },
  {
    id: 'F12',
    matches: text(/page.table|pgtables|PG_table/),
    report: 'a preallocated page table leaked',
    focus: {
      mix: { 'dm-to-dev': 3, write: 3 },
      pmdShare: 0.5,
      fill: false,
      regions: 1,
      pmds: 1,
      ops: 6,
      procs: 1,
    },
  },
  { id: 'F14', matches: text(/pagemap_pmd_range_thp/), report: 'WARN in pagemap_pmd_range_thp()' },
  {
    id: 'F15',
    matches: kbug('pmdp_huge_get_and_clear_full'),
    report: 'VM_BUG_ON in pmdp_huge_get_and_clear_full() (powerpc hash MMU)',
  },
  {
    id: 'F23',
    matches: kbug('dmirror_devmem_fault'),
    report: 'use-after-free of the dmirror (CVE-2026-46280)',
  },
  {
    id: 'F28',
    matches: kbug('migrate_vma_split_folio'),
    report: 'folio_get() on a freed folio in migrate_vma_split_folio()',
    focus: {
      mix: { 'dm-to-dev': 3, madvise: 2 },
      advice: [MADV_DONTNEED],
      pmdShare: 0.5,
      regions: 1,
      pmds: 1,
      pteMapped: true,
      ops: 4,
      procs: 1,
    },
  },
  {
    id: 'F30',
    matches: text(/callocated/),
    report: 'nouveau chunk->callocated disagrees with the allocated folios (underflow at free)',
  },
];

/** The zoo entry of a bug id, or undefined. */
export function zooEntry(id: string): ZooEntry | undefined {
  return ZOO.find((z) => z.id === id);
}

/** Options of one hunt. */
export interface HuntOptions {
  readonly seed: number;
  /** Runs (schedules) at most. */
  readonly maxRuns: number;
  /** Milliseconds at most. */
  readonly timeMs: number;
  /** Operations per generated scenario. */
  readonly ops: number;
  /** Shrink the first matching failure (default true). */
  readonly shrink?: boolean;
  /** Runs the shrinker may use (default 400). */
  readonly shrinkBudget?: number;
  /** The same campaign with no switch on: any finding is a false positive (default false). */
  readonly baseline?: boolean;
}

/** Model-only: the outcome of hunting one bug. */
export interface HuntResult {
  readonly id: string;
  readonly found: boolean;
  readonly schedules: number;
  readonly ms: number;
  readonly finding: Finding | null;
  /** A finding that is not this bug's (a false positive of the explorer or another bug). */
  readonly other: Finding | null;
  readonly reproducer: Reproducer | null;
  readonly failing: { scenario: Scenario; schedule: string; result: RunResult } | null;
}

/** Hunts one bug: campaigns alternating random and PCT schedules with the switch on. */
export function hunt(entry: ZooEntry, opts: HuntOptions): HuntResult {
  const t0 = performance.now();
  let schedules = 0;
  const bugs = opts.baseline ? [] : [entry.id];
  for (let round = 0; ; round++) {
    const left = opts.maxRuns - schedules;
    const timeLeft = opts.timeMs - (performance.now() - t0);
    if (left <= 0 || timeLeft <= 0) break;
    const res = campaign({
      seed: (opts.seed + round * 1_000_003) >>> 0,
      totalOps: Number.MAX_SAFE_INTEGER,
      maxRuns: Math.min(left, 25),
      timeMs: timeLeft,
      strategy: round % 2 ? 'pct' : 'random',
      depth: 2 + (round % 3),
      ops: opts.ops,
      ...entry.focus,
      bugs,
      checkEvery: 32,
    });
    schedules += res.stats.schedules;
    if (res.failure) {
      const f = res.failure.finding;
      const ms = performance.now() - t0;
      const failing = {
        scenario: res.failure.scenario,
        schedule: res.failure.schedule,
        result: res.failure.result,
      };
      if (opts.baseline || !entry.matches(f))
        return {
          id: entry.id,
          found: false,
          schedules,
          ms,
          finding: null,
          other: f,
          reproducer: null,
          failing,
        };
      const rep =
        opts.shrink === false
          ? null
          : shrink(failing.scenario, failing.schedule, failing.result, {
              bugs,
              budget: opts.shrinkBudget ?? 400,
              accept: entry.matches,
            });
      return { id: entry.id, found: true, schedules, ms, finding: f, other: null, reproducer: rep, failing };
    }
  }
  return {
    id: entry.id,
    found: false,
    schedules,
    ms: performance.now() - t0,
    finding: null,
    other: null,
    reproducer: null,
    failing: null,
  };
}

/** The switches mm-core knows that the zoo does not hunt (and why), for `pnpm run bugs --list`. */
export function unhunted(): { id: string; title: string }[] {
  return KERNEL_BUGS.filter((b) => !zooEntry(b.id)).map((b) => ({ id: b.id, title: b.title }));
}
