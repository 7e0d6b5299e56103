/**
 * migrate-vma throughput (run with `pnpm bench` in packages/migrate-vma): a 256 MiB migrate_vma
 * round trip (system -> device -> system) through the test driver, with real data copies, with
 * MIGRATE_VMA_SELECT_COMPOUND on THP-backed memory and without it on base pages. Each is
 * reported as a fraction of a plain memcpy (Uint8Array.set) of the same bytes measured in the
 * same run, together with the THP/base speedup (the series reported up to 5x).
 * Targets: THP path >= 50% of memcpy, base-page path >= 15%.
 */
import { writeFileSync } from 'node:fs';
import {
  Kernel,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
} from '@hmm-model/mm-core';
import { MiniDevice } from '../src/testing/minidev.js';
import { MIGRATE_VMA_SELECT_COMPOUND, MIGRATE_VMA_SELECT_SYSTEM } from '../src/types.js';

const MiB = 1 << 20;
const SIZE = 256 * MiB;
const ITERS = Number(process.env.BENCH_ITERS ?? 5);

interface Leg {
  toDev: number;
  toSys: number;
}

/** One machine, one process, one device big enough for the whole buffer in either form. */
function setup(thp: boolean): { k: Kernel; p: Process; dev: MiniDevice; a: number } {
  const k = new Kernel({ ramBytes: 1024 * MiB, checkInvariants: false });
  const dev = new MiniDevice(k, (2 * SIZE) / 4096, 'benchdev');
  const p = k.spawn();
  const raw = p.mmap(0, SIZE + PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  if (p.madvise(a, SIZE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)) throw new Error('madvise');
  const chunk = new Uint8Array(PMD_SIZE);
  for (let off = 0; off < SIZE; off += PMD_SIZE) {
    for (let i = 0; i < chunk.length; i += 4096) chunk[i] = (off / PMD_SIZE + i) & 0xff;
    p.writeBytes(a + off, chunk);
  }
  return { k, p, dev, a };
}

/** Times ITERS round trips (after one warm-up) and checks the data came back. */
function roundTrips(thp: boolean): Leg {
  const { p, dev, a } = setup(thp);
  const vma = p.mm.vmaLookup(a)!;
  const flags = MIGRATE_VMA_SELECT_SYSTEM | (thp ? MIGRATE_VMA_SELECT_COMPOUND : 0);
  const sample = p.readBytes(a + 3 * PMD_SIZE, 8192);
  const once = (): Leg => {
    let t = performance.now();
    const r1 = dev.toDevice(vma, a, a + SIZE, flags);
    const toDev = performance.now() - t;
    t = performance.now();
    const r2 = dev.toSystem(vma, a, a + SIZE);
    const toSys = performance.now() - t;
    if (r1.r || r2.r) throw new Error(`migration failed ${r1.r} ${r2.r}`);
    return { toDev, toSys };
  };
  once();
  const legs: Leg[] = [];
  for (let i = 0; i < ITERS; i++) legs.push(once());
  const back = p.readBytes(a + 3 * PMD_SIZE, 8192);
  if (!back.every((b, i) => b === sample[i])) throw new Error('data did not survive the round trip');
  // Best of ITERS, like the memcpy baseline: the host is shared, noise only ever adds time.
  return { toDev: Math.min(...legs.map((l) => l.toDev)), toSys: Math.min(...legs.map((l) => l.toSys)) };
}

/** A plain memcpy of the same bytes: SIZE to a second buffer and back, Uint8Array.set. */
function memcpy(): number {
  const src = new Uint8Array(SIZE).fill(7);
  const dst = new Uint8Array(SIZE);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < ITERS + 1; i++) {
    const t = performance.now();
    dst.set(src);
    src.set(dst);
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

const fmt = (ms: number) => `${ms.toFixed(1).padStart(8)} ms`;
const gbps = (ms: number) => `${((2 * SIZE) / (ms / 1000) / 1e9).toFixed(2)} GB/s`;

const base = roundTrips(false);
const thp = roundTrips(true);
const copy = memcpy();
const thpMs = thp.toDev + thp.toSys;
const baseMs = base.toDev + base.toSys;
console.log(`migrate-vma round trip of ${SIZE / MiB} MiB (best of ${ITERS}), memcpy = 2 x Uint8Array.set`);
console.log(`  memcpy               ${fmt(copy)}  ${gbps(copy)}`);
console.log(
  `  THP  (COMPOUND)      ${fmt(thpMs)}  ${gbps(thpMs)}  to-dev ${thp.toDev.toFixed(1)} / to-sys ${thp.toSys.toFixed(1)} ms` +
    `  = ${((100 * copy) / thpMs).toFixed(0)}% of memcpy (target >= 50%)`,
);
console.log(
  `  base (no COMPOUND)   ${fmt(baseMs)}  ${gbps(baseMs)}  to-dev ${base.toDev.toFixed(1)} / to-sys ${base.toSys.toFixed(1)} ms` +
    `  = ${((100 * copy) / baseMs).toFixed(0)}% of memcpy (target >= 15%)`,
);
console.log(`  THP/base speedup     ${(baseMs / thpMs).toFixed(2)}x (the series reported up to 5x)`);

// `pnpm bench` at the root collects these figures (BENCH_JSON names the file to write).
if (process.env.BENCH_JSON) {
  writeFileSync(
    process.env.BENCH_JSON,
    `${JSON.stringify(
      {
        node: process.version,
        bytes: SIZE,
        iterations: ITERS,
        memcpyRoundTripMs: copy,
        thp: { toDevMs: thp.toDev, toSysMs: thp.toSys, ofMemcpy: copy / thpMs },
        base: { toDevMs: base.toDev, toSysMs: base.toSys, ofMemcpy: copy / baseMs },
        speedup: baseMs / thpMs,
      },
      null,
      2,
    )}\n`,
  );
}
