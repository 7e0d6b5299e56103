/**
 * mm-core micro-benchmarks (run with `pnpm bench` in packages/mm-core): fault-in rates and
 * bulk CPU-access throughput, reported (not asserted) against the targets.
 */
import { writeFileSync } from 'node:fs';
import {
  HPAGE_PMD_NR,
  Kernel,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MEMMAP_BYTES_PER_PAGE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
} from '../src/index.js';

const MiB = 1 << 20;
const REGION = 256 * MiB;
const BULK = 64 * MiB;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function machine(): { k: Kernel; p: Process } {
  const k = new Kernel({ ramBytes: 1024 * MiB, checkInvariants: false });
  return { k, p: k.spawn() };
}

function region(p: Process, len: number, advice: number): number {
  const a = p.mmap(0, len, RW, ANON);
  if (a < 0 || a % PMD_SIZE) throw new Error(`mmap failed: ${a}`);
  if (p.madvise(a, len, advice) !== 0) throw new Error('madvise failed');
  return a;
}

function best(runs: number, fn: () => number): number {
  let b = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) b = Math.min(b, fn());
  return b;
}

/**
 * Fault-in of `REGION` with one write per `step` bytes. "cold": a fresh machine whose backing
 * blocks the host has never touched (host page faults included); "warm": the same machine
 * again after munmap, so the backing memory is already resident and only the model's fault
 * path is measured.
 */
function faultIn(advice: number, step: number): { cold: number; warm: number; k: Kernel } {
  const { k, p } = machine();
  const once = () => {
    const a = region(p, REGION, advice);
    const t = performance.now();
    for (let off = 0; off < REGION; off += step) p.writeU8(a + off, 1);
    const ms = performance.now() - t;
    p.munmap(a, REGION);
    return ms;
  };
  const cold = once();
  const warm = best(5, once);
  return { cold, warm, k };
}

function memcpyMs(): number {
  const src = new Uint8Array(BULK).fill(7);
  const dst = new Uint8Array(BULK);
  return best(5, () => {
    const t = performance.now();
    dst.set(src);
    return performance.now() - t;
  });
}

function bulk(advice: number): { writeMs: number; readMs: number } {
  const { p, k } = machine();
  const a = region(p, BULK, advice);
  // Fault everything in first: this measures access, not faults.
  for (let off = 0; off < BULK; off += PAGE_SIZE) p.writeU8(a + off, 0);
  if (advice === MADV_HUGEPAGE && k.core.vmstat.thp_fault_alloc !== BULK / PMD_SIZE)
    throw new Error('not THP-backed');
  const buf = new Uint8Array(BULK).fill(0x5a);
  const out = new Uint8Array(BULK);
  const writeMs = best(5, () => {
    const t = performance.now();
    p.writeBytes(a, buf);
    return performance.now() - t;
  });
  const readMs = best(5, () => {
    const t = performance.now();
    p.readInto(a, out);
    return performance.now() - t;
  });
  for (let i = 0; i < BULK; i += 4093) if (out[i] !== 0x5a) throw new Error('bulk data mismatch');
  return { writeMs, readMs };
}

const f4 = faultIn(MADV_NOHUGEPAGE, PAGE_SIZE);
const ft = faultIn(MADV_HUGEPAGE, PMD_SIZE);
if (ft.k.core.vmstat.thp_fault_alloc !== 6 * (REGION / PMD_SIZE)) throw new Error('THP faults fell back');
const mc = memcpyMs();
const thp = bulk(MADV_HUGEPAGE);
const small = bulk(MADV_NOHUGEPAGE);
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
const gbs = (bytes: number, ms: number) => `${(bytes / (ms / 1000) / 2 ** 30).toFixed(2)} GiB/s`;
const mark = (ok: boolean) => (ok ? 'ok' : 'MISSED');

console.log(`mm-core bench (node ${process.version})`);
const nr4 = REGION / PAGE_SIZE;
const nrT = REGION / PMD_SIZE;
const rate = (n: number, ms: number) => Math.round(n / (ms / 1000)).toLocaleString('en');
console.log(
  `4 KiB fault-in (256 MiB, MADV_NOHUGEPAGE, 1 write/page): warm ${rate(nr4, f4.warm)} faults/s ` +
    `(${f4.warm.toFixed(0)} ms)  target >= 1,000,000: ${mark(nr4 / (f4.warm / 1000) >= 1e6)}; ` +
    `cold (host first touch) ${rate(nr4, f4.cold)} faults/s (${f4.cold.toFixed(0)} ms)`,
);
console.log(
  `THP fault-in (256 MiB, MADV_HUGEPAGE): warm ${rate(nrT, ft.warm)} THP faults/s = ` +
    `${rate(nrT * HPAGE_PMD_NR, ft.warm)} pages/s (${ft.warm.toFixed(1)} ms); cold ${rate(nrT, ft.cold)} THP faults/s`,
);
console.log(`memcpy (Uint8Array.set, ${BULK / MiB} MiB): ${mc.toFixed(2)} ms = ${gbs(BULK, mc)}`);
console.log(
  `bulk writeBytes, THP-backed:   ${gbs(BULK, thp.writeMs)} = ${pct(mc / thp.writeMs)} of memcpy  target >= 50%: ${mark(mc / thp.writeMs >= 0.5)}`,
);
console.log(`bulk readBytes,  THP-backed:   ${gbs(BULK, thp.readMs)} = ${pct(mc / thp.readMs)} of memcpy`);
console.log(
  `bulk writeBytes, 4 KiB-backed: ${gbs(BULK, small.writeMs)} = ${pct(mc / small.writeMs)} of memcpy`,
);
console.log(
  `bulk readBytes,  4 KiB-backed: ${gbs(BULK, small.readMs)} = ${pct(mc / small.readMs)} of memcpy`,
);
console.log(`memmap bytes per 4 KiB page: ${MEMMAP_BYTES_PER_PAGE} (kernel struct page: 64)`);

// `pnpm bench` at the root collects these figures (BENCH_JSON names the file to write).
if (process.env.BENCH_JSON) {
  const perSec = (n: number, ms: number) => Math.round(n / (ms / 1000));
  writeFileSync(
    process.env.BENCH_JSON,
    `${JSON.stringify(
      {
        node: process.version,
        regionBytes: REGION,
        fault4k: { warmPerSec: perSec(nr4, f4.warm), coldPerSec: perSec(nr4, f4.cold) },
        faultThp: {
          warmPerSec: perSec(nrT, ft.warm),
          coldPerSec: perSec(nrT, ft.cold),
          warmPagesPerSec: perSec(nrT * HPAGE_PMD_NR, ft.warm),
        },
        bulkBytes: BULK,
        memcpyGiBs: BULK / (mc / 1000) / 2 ** 30,
        bulk: {
          thpWriteOfMemcpy: mc / thp.writeMs,
          thpReadOfMemcpy: mc / thp.readMs,
          smallWriteOfMemcpy: mc / small.writeMs,
          smallReadOfMemcpy: mc / small.readMs,
        },
      },
      null,
      2,
    )}\n`,
  );
}
