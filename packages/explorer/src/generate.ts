/**
 * Random scenarios: a prelude that maps and fills a few regions, then operations spread over the
 * thread slots, biased towards the same PMD-aligned 2 MiB units so that threads meet on the same
 * THPs (the small-scope hypothesis: most concurrency bugs need few threads, few operations and
 * overlapping memory).
 */
import {
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_PAGEOUT,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  Rng,
} from '@hmm-model/mm-core';
import type { Op, OpKind } from './ops.js';
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
}

const PMD_PAGES = 512;
const RW = PROT_READ | PROT_WRITE;

/** Operation kinds and their weights. */
const MIX: readonly [
  OpKind | 'dm-to-dev' | 'dm-to-sys' | 'dm-read' | 'dm-write' | 'dm-other' | 'gpu-rw' | 'gpu-migrate',
  number,
][] = [
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
];
const TOTAL = MIX.reduce((a, [, w]) => a + w, 0);

/** A page range in region r: a whole PMD most of the time, else a few pages or a PMD straddle. */
function range(rng: Rng): { r: number; off: number; n: number } {
  const r = rng.below(2) ? 0 : rng.below(NREGIONS);
  const roll = rng.below(20);
  if (roll < 7) return { r, off: rng.below(REGION_MAX_PAGES / PMD_PAGES) * PMD_PAGES, n: PMD_PAGES };
  if (roll < 16) {
    const off = rng.below(REGION_MAX_PAGES - 8);
    return { r, off, n: 1 + rng.below(8) };
  }
  const off = Math.max(0, PMD_PAGES - 1 - rng.below(32) + rng.below(2) * PMD_PAGES);
  return { r, off, n: Math.min(2 + rng.below(64), REGION_MAX_PAGES - off) };
}

function pick(rng: Rng): string {
  let x = rng.below(TOTAL);
  for (const [k, w] of MIX) {
    if (x < w) return k;
    x -= w;
  }
  return 'read';
}

/** Generates one scenario from a seed. */
export function generateScenario(seed: number, opts: GenOptions = {}): Scenario {
  const rng = new Rng(seed);
  const procs = opts.procs ?? 3;
  const threads = opts.threads ?? 2;
  const prelude: Op[] = [];
  for (let r = 0; r < NREGIONS; r++) {
    const n = r === 0 ? REGION_MAX_PAGES : PMD_PAGES * (1 + rng.below(REGION_MAX_PAGES / PMD_PAGES));
    prelude.push({ k: 'mmap', p: 0, t: 0, r, n, a: RW, b: rng.below(4) ? 1 : 0 });
    prelude.push({ k: 'write', p: 0, t: 0, r, off: 0, n, a: rng.next() & 0xffff });
  }
  if (rng.below(2)) prelude.push({ k: 'fork', p: 0, t: 0 });
  const ops: Op[] = [];
  const count = opts.ops ?? 24;
  for (let i = 0; i < count; i++) {
    const p = rng.below(3) ? 0 : rng.below(procs);
    const t = rng.below(threads);
    const kind = pick(rng);
    const late = i >= count - Math.max(4, count >> 4);
    const { r, off, n } = range(rng);
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
        const adv = [
          MADV_FREE,
          MADV_DONTNEED,
          MADV_COLD,
          MADV_PAGEOUT,
          MADV_HUGEPAGE,
          MADV_NOHUGEPAGE,
          MADV_COLLAPSE,
        ];
        ops.push({ k: 'madvise', ...base, a: adv[rng.below(adv.length)] });
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
      case 'gpu-rw':
        ops.push({ k: 'gpu', ...base, b: rng.below(2), a: rng.next() & 0xffff });
        break;
      case 'gpu-migrate':
        ops.push({ k: 'gpu', ...base, b: 2 });
        break;
    }
  }
  return { threads, procs, prelude, ops };
}
