/**
 * Random scenarios: a prelude that maps and fills a few regions, then operations spread over the
 * thread slots, biased towards the same PMD-aligned 2 MiB units so that threads meet on the same
 * THPs (the small-scope hypothesis: most concurrency bugs need few threads, few operations and
 * overlapping memory).
 */
import {
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_KEEPONFORK,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  Rng,
} from '@hmm-model/mm-core';
import { DM_CMDS, type Op, type OpKind } from './op.js';
import type { Scenario } from './run.js';
import { NDEVICES, NREGIONS, REGION_MAX_PAGES } from './world.js';

/** Options of the scenario generator. */
export interface GenOptions {
  /** Operations after the prelude (default 24). */
  readonly ops?: number;
  /** Process slots (default 3). */
  readonly procs?: number;
  /** Thread slots per process (default 2). */
  readonly threads?: number;
  /**
   * Operation weights (replacing the default mix; kinds not named get weight 0). A bug hunt
   * uses the operations its Fixes scenario names.
   */
  readonly mix?: Readonly<Partial<Record<MixKind, number>>>;
  /** The advice a madvise op picks from (default: all of them). */
  readonly advice?: readonly number[];
  /** Share of page ranges that are one whole PMD (default 0.35). */
  readonly pmdShare?: number;
  /** Whether the prelude writes every region (default true); false leaves holes to fault. */
  readonly fill?: boolean;
  /** Regions the operations use (default all {@link NREGIONS}; 1 makes every op meet in r0). */
  readonly regions?: number;
  /** PMD-sized units per region (default 2, the most; 1 makes every PMD-wide op meet on one THP). */
  readonly pmds?: number;
  /**
   * The prelude write-protects the first page of each region (splitting its THP's PMD), so the
   * THPs start PTE-mapped (default false).
   */
  readonly pteMapped?: boolean;
  /**
   * An mTHP machine (WorldOptions.mthp): the scenario is marked so, the mix gains sysfs writes of
   * the per-size settings and the mTHP dmirror commands, and a share of the ranges are one
   * naturally aligned mTHP-sized block (default false: the v6.19 mix, unchanged).
   */
  readonly mthp?: boolean;
  /** The machine's RAM in MiB (Scenario.ramMiB; default: the explorer's 512). */
  readonly ramMiB?: number;
  /** vm.oom_kill_allocating_task of the machine (Scenario.oomKillAllocatingTask; default: the model's 1). */
  readonly oomKillAllocatingTask?: number;
}

/** The kinds the generator mixes (dmirror and GPU operations split by command). */
export type MixKind =
  | OpKind
  | 'dm-to-dev'
  | 'dm-to-sys'
  | 'dm-read'
  | 'dm-write'
  | 'dm-other'
  | 'gpu-rw'
  | 'gpu-migrate'
  | 'dm-mthp';

const PMD_PAGES = 512;
const RW = PROT_READ | PROT_WRITE;

/** Operation kinds and their weights. */
const MIX: readonly [MixKind, number][] = [
  ['write', 10],
  ['read', 10],
  ['dm-to-dev', 9],
  ['dm-to-sys', 5],
  ['dm-read', 4],
  ['dm-write', 3],
  ['dm-other', 3],
  ['gpu-rw', 3],
  ['gpu-migrate', 3],
  ['madvise', 9],
  ['munmap', 3],
  ['mprotect', 3],
  ['mremap', 3],
  ['mmap', 4],
  ['fork', 3],
  ['exit', 1],
  ['kill', 1],
  ['oom', 1],
  ['dmclose', 1],
  ['pagemap', 2],
  ['khugepaged', 2],
  ['pin', 2],
  ['swap', 1],
  ['split', 2],
];
/** New orders of 'split' ops. */
const SPLIT_ORDERS = [0, 0, 0, 2, 3, 4, 5, 8];
/** What an mTHP machine adds to the mix. */
const MTHP_MIX: readonly [MixKind, number][] = [
  ['mthp', 2],
  ['dm-mthp', 4],
];
/** The dmirror commands of 'dm-mthp' ops: the mTHP extension's, and migrations both ways. */
const DM_MTHP_CMDS = [DM_CMDS.indexOf('fail-order'), DM_CMDS.indexOf('snapshot-order'), 0, 0, 1];
/** Every advice the model has (the page-table ones twice as often as the VMA-flag ones). */
const ADVICE = [
  MADV_FREE,
  MADV_FREE,
  MADV_DONTNEED,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_COLD,
  MADV_COLD,
  MADV_PAGEOUT,
  MADV_PAGEOUT,
  MADV_HUGEPAGE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_COLLAPSE,
  MADV_COLLAPSE,
  MADV_POPULATE_READ,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_POPULATE_WRITE,
  MADV_WILLNEED,
  MADV_REMOVE,
  MADV_DONTFORK,
  MADV_DOFORK,
  MADV_WIPEONFORK,
  MADV_KEEPONFORK,
  MADV_NORMAL,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_DONTDUMP,
  MADV_DODUMP,
];

/** A page range in region r: a whole PMD, a few pages, or a range straddling a PMD boundary. */
function range(
  rng: Rng,
  pmdShare: number,
  regions: number,
  pages: number,
  mthp = false,
): { r: number; off: number; n: number } {
  const r = rng.below(2) ? 0 : rng.below(regions);
  // An mTHP machine: a quarter of the ranges are one aligned block of an mTHP size (16 KiB .. 1 MiB).
  if (mthp && rng.below(4) === 0) {
    const n = 1 << (2 + rng.below(7));
    return { r, off: rng.below(pages / n) * n, n };
  }
  const roll = rng.below(1000) / 1000;
  if (roll < pmdShare) return { r, off: rng.below(pages / PMD_PAGES) * PMD_PAGES, n: PMD_PAGES };
  if (roll < pmdShare + (1 - pmdShare) * 0.7) {
    const off = rng.below(pages - 8);
    return { r, off, n: 1 + rng.below(8) };
  }
  const off = Math.max(0, PMD_PAGES - 1 - rng.below(32) + rng.below(pages / PMD_PAGES) * PMD_PAGES);
  return { r, off, n: Math.max(1, Math.min(2 + rng.below(64), pages - off)) };
}

function picker(mix: readonly [MixKind, number][]): (rng: Rng) => MixKind {
  const total = mix.reduce((a, [, w]) => a + w, 0);
  if (total <= 0) throw new RangeError('generateScenario: the operation mix has no weight');
  return (rng) => {
    let x = rng.below(total);
    for (const [k, w] of mix) {
      if (x < w) return k;
      x -= w;
    }
    return mix[0][0];
  };
}

/** Generates one scenario from a seed. */
export function generateScenario(seed: number, opts: GenOptions = {}): Scenario {
  const rng = new Rng(seed);
  const procs = opts.procs ?? 3;
  const threads = opts.threads ?? 2;
  const mix: readonly [MixKind, number][] = opts.mix
    ? Object.entries(opts.mix).map(([k, w]): [MixKind, number] => [k as MixKind, w ?? 0])
    : MIX;
  const pick = picker(opts.mthp && !opts.mix ? [...mix, ...MTHP_MIX] : mix);
  const advice = opts.advice?.length ? opts.advice : ADVICE;
  const pmdShare = opts.pmdShare ?? 0.35;
  const regions = Math.max(1, Math.min(NREGIONS, opts.regions ?? NREGIONS));
  const pages =
    PMD_PAGES *
    Math.max(1, Math.min(REGION_MAX_PAGES / PMD_PAGES, opts.pmds ?? REGION_MAX_PAGES / PMD_PAGES));
  const prelude: Op[] = [];
  for (let r = 0; r < NREGIONS; r++) {
    const n = r === 0 ? pages : PMD_PAGES * (1 + rng.below(pages / PMD_PAGES));
    prelude.push({ k: 'mmap', p: 0, t: 0, r, n, a: RW, b: rng.below(4) ? 1 : 0 });
    if (opts.fill !== false || rng.below(2))
      prelude.push({ k: 'write', p: 0, t: 0, r, off: 0, n, a: rng.next() & 0xffff });
    if (opts.pteMapped) prelude.push({ k: 'mprotect', p: 0, t: 0, r, off: 0, n: 1, a: PROT_READ });
  }
  if (procs > 1 && rng.below(2)) prelude.push({ k: 'fork', p: 0, t: 0 });
  const ops: Op[] = [];
  const count = opts.ops ?? 24;
  for (let i = 0; i < count; i++) {
    const p = rng.below(3) ? 0 : rng.below(procs);
    const t = rng.below(threads);
    const kind = pick(rng);
    const late = i >= count - Math.max(4, count >> 4);
    const { r, off, n } = range(rng, pmdShare, regions, pages, opts.mthp);
    const base = { p, t, r, off, n };
    switch (kind) {
      case 'write':
        ops.push({ k: 'write', ...base, a: rng.next() & 0xffff });
        break;
      case 'read':
      case 'munmap':
      case 'pagemap':
        ops.push({ k: kind, ...base });
        break;
      case 'mprotect':
        ops.push({ k: 'mprotect', ...base, a: [PROT_READ, RW, PROT_NONE, RW][rng.below(4)] });
        break;
      case 'madvise': {
        ops.push({ k: 'madvise', ...base, a: advice[rng.below(advice.length)] });
        break;
      }
      case 'mremap': {
        const r2 = rng.below(NREGIONS);
        const off2 = rng.below(3)
          ? rng.below(REGION_MAX_PAGES / PMD_PAGES) * PMD_PAGES
          : rng.below(REGION_MAX_PAGES);
        const len = Math.min(n, REGION_MAX_PAGES - off2);
        ops.push({ k: 'mremap', p, t, r, off, n: len, r2, off2, b: rng.below(4) === 0 ? 1 : 0 });
        break;
      }
      case 'mmap':
        ops.push({
          k: 'mmap',
          p,
          t,
          r,
          n: PMD_PAGES * (1 + rng.below(REGION_MAX_PAGES / PMD_PAGES)),
          a: RW,
          b: rng.below(2),
        });
        break;
      case 'fork':
      case 'khugepaged':
        ops.push({ k: kind, p, t });
        break;
      case 'exit':
        // Slot 0 runs most operations: it exits (or is killed) only near the end.
        ops.push({ k: kind, p: p === 0 && !late && procs > 1 ? 1 + rng.below(procs - 1) : p, t });
        break;
      case 'kill':
      case 'oom':
        ops.push({ k: kind, p, t, a: procs > 1 && (!late || rng.below(4)) ? 1 + rng.below(procs - 1) : 0 });
        break;
      case 'dm-to-dev':
        ops.push({ k: 'dm', ...base, a: rng.below(4) ? 0 : rng.below(NDEVICES), b: rng.below(6) ? 0 : 8 });
        break;
      case 'dm-to-sys':
        ops.push({ k: 'dm', ...base, a: rng.below(4) ? 0 : rng.below(NDEVICES), b: 1 });
        break;
      case 'dm-read':
        ops.push({ k: 'dm', ...base, a: rng.below(NDEVICES), b: 2 });
        break;
      case 'dm-write':
        ops.push({ k: 'dm', ...base, a: rng.below(NDEVICES), b: 3 });
        break;
      case 'dm-other':
        ops.push({ k: 'dm', ...base, a: rng.below(NDEVICES), b: [4, 5, 6, 7][rng.below(4)] });
        break;
      case 'dmclose':
        ops.push({ k: 'dmclose', p, t, a: rng.below(NDEVICES) });
        break;
      case 'gpu-rw': {
        // One GPU access in eight is a job the process waits for in user space ('job-write',
        // 'job-read'), chosen by the seed's low bits: the draws are the v6.19 mix's.
        const b = rng.below(2);
        const a = rng.next() & 0xffff;
        ops.push({ k: 'gpu', ...base, b: (a & 7) === 0 ? (b === 1 ? 3 : 4) : b, a });
        break;
      }
      case 'gpu-migrate':
        ops.push({ k: 'gpu', ...base, b: 2 });
        break;
      case 'pin':
        // A long-term pin of the range (read or write), or the unpin of the machine's pins.
        {
          const b = rng.below(3);
          ops.push(b === 2 ? { k: 'pin', p, t, b } : { k: 'pin', ...base, b });
        }
        break;
      case 'split':
        // The debugfs split of the THPs in the range: mostly to order 0, sometimes to an mTHP
        // order (anonymous folios never to order 1), a quarter of them non-uniform around a page.
        ops.push({
          k: 'split',
          ...base,
          a: SPLIT_ORDERS[rng.below(SPLIT_ORDERS.length)],
          ...(rng.below(4) === 0 ? { off2: rng.below(PMD_PAGES) } : {}),
        });
        break;
      case 'swap':
        // swapoff(2) of the swap partition (every swapped page comes back), or swapon(2) again.
        ops.push({ k: 'swap', p, t, b: rng.below(2) });
        break;
      case 'mthp':
        // A per-size setting changes mid-run (16 KiB .. 2 MiB; always, inherit, madvise, never).
        ops.push({ k: 'mthp', p, t, a: 2 + rng.below(8), b: rng.below(4) });
        break;
      case 'dm-mthp': {
        const b = DM_MTHP_CMDS[rng.below(DM_MTHP_CMDS.length)];
        const a = rng.below(NDEVICES);
        ops.push({
          k: 'dm',
          ...base,
          a,
          b,
          ...(DM_CMDS[b] === 'fail-order' ? { off2: 2 + rng.below(8) } : {}),
        });
        break;
      }
    }
  }
  return {
    threads,
    procs,
    prelude,
    ops,
    ...(opts.mthp ? { mthp: true } : {}),
    ...(opts.ramMiB ? { ramMiB: opts.ramMiB } : {}),
    ...(opts.oomKillAllocatingTask !== undefined
      ? { oomKillAllocatingTask: opts.oomKillAllocatingTask }
      : {}),
  };
}
