// Boot time and host memory of the shell's default machine per RAM size, plus the 4 KiB
// fault-in rate on never-touched memory of that machine. Each size runs in a fresh child
// process (host memory is per process and never shrinks). Run after `pnpm build`; not a test.
//
// Usage: node scripts/boot-bench.mjs [--sizes 2G,64G,256G,1T] [--vram 141G] [--out FILE]
//                                    [--timeout SECONDS]
// Writes JSON (schema below) to --out (default <repo>/bench-results/boot.json) and a table to
// stdout. Schema:
// { node, host: { cpus, memTotalBytes, loadavg }, vramBytes, machines: [ {
//     label, ramBytes, ok, error?,
//     bootMs,                 wall time of createMachine() (kernel + dmirror + nouveau + init)
//     rssBeforeBytes,         process RSS after loading the packages, before boot
//     rssAfterBootBytes,      RSS right after boot
//     bootRssBytes,           rssAfterBootBytes - rssBeforeBytes: host memory the boot cost
//     hwmBytes,               VmHWM (peak RSS) after boot, from /proc/self/status
//     fault4k: { bytes, faults, ms, faultsPerSec, rssGrowthBytes, rssPerFaultBytes }
//   } ] }
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
};
const parseSize = (s) => {
  const m = /^(\d+)([KMGT]?)$/i.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase());
};

function statusBytes(field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : -1;
}

async function child(ramBytes, vramBytes) {
  const { createMachine } = await import('../dist/machine.js');
  const mm = await import('@hmm-model/mm-core');
  globalThis.gc?.();
  const rssBeforeBytes = process.memoryUsage().rss;
  const t0 = performance.now();
  const m = createMachine({ ramBytes, nouveauVramBytes: vramBytes });
  const bootMs = performance.now() - t0;
  const rssAfterBootBytes = process.memoryUsage().rss;
  const hwmBytes = statusBytes('VmHWM');
  // 4 KiB fault-in on memory the host has never touched: one write per page.
  const p = m.init;
  const len = 256 * MiB;
  const a = p.mmap(0, len, mm.PROT_READ | mm.PROT_WRITE, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS);
  if (a < 0) throw new Error(`mmap: ${a}`);
  if (p.madvise(a, len, mm.MADV_NOHUGEPAGE) !== 0) throw new Error('madvise');
  const r0 = process.memoryUsage().rss;
  const t1 = performance.now();
  for (let off = 0; off < len; off += mm.PAGE_SIZE) p.writeU8(a + off, 1);
  const ms = performance.now() - t1;
  const rssGrowthBytes = process.memoryUsage().rss - r0;
  const faults = len / mm.PAGE_SIZE;
  for (let off = 0; off < len; off += 1 << 20) if (p.readU8(a + off) !== 1) throw new Error('data lost');
  return {
    bootMs,
    rssBeforeBytes,
    rssAfterBootBytes,
    bootRssBytes: rssAfterBootBytes - rssBeforeBytes,
    hwmBytes,
    fault4k: {
      bytes: len,
      faults,
      ms,
      faultsPerSec: Math.round(faults / (ms / 1000)),
      rssGrowthBytes,
      rssPerFaultBytes: Math.round(rssGrowthBytes / faults),
    },
  };
}

if (process.argv[2] === '--child') {
  const r = await child(Number(process.argv[3]), Number(process.argv[4]));
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}

const sizes = arg('--sizes', '2G,64G,256G,1T').split(',');
const vramBytes = parseSize(arg('--vram', '141G'));
const timeoutMs = Number(arg('--timeout', '180')) * 1000;
const out = resolve(arg('--out', resolve(here, '../../../bench-results/boot.json')));
const machines = [];
for (const label of sizes) {
  const ramBytes = parseSize(label);
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', fileURLToPath(import.meta.url), '--child', String(ramBytes), String(vramBytes)],
    { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 20 },
  );
  if (r.status === 0) machines.push({ label, ramBytes, ok: true, ...JSON.parse(r.stdout.trim()) });
  else {
    const why = r.error
      ? r.error.message
      : `exit ${r.status ?? r.signal}: ${r.stderr.trim().split('\n').pop()}`;
    machines.push({ label, ramBytes, ok: false, error: why });
  }
}
const report = {
  node: process.version,
  host: {
    cpus: cpus().length,
    memTotalBytes: totalmem(),
    loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3),
  },
  vramBytes,
  machines,
};
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
const f1 = (x) => x.toFixed(1);
console.log(
  `boot of the default machine (4 dmirror devices, nouveau ${vramBytes / GiB} GiB VRAM), ${process.version}`,
);
console.log('RAM      boot ms   boot RSS MiB   peak RSS MiB   4K faults/s (cold)   RSS/fault B');
for (const m of machines) {
  if (!m.ok) console.log(`${m.label.padEnd(8)} failed: ${m.error}`);
  else
    console.log(
      `${m.label.padEnd(8)} ${f1(m.bootMs).padStart(7)}   ${f1(m.bootRssBytes / MiB).padStart(12)}   ${f1(m.hwmBytes / MiB).padStart(12)}   ${m.fault4k.faultsPerSec.toLocaleString('en').padStart(18)}   ${String(m.fault4k.rssPerFaultBytes).padStart(11)}`,
    );
}
console.log(`wrote ${out}`);
