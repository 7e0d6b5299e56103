// `pnpm bench`: every benchmark of the repository in one run (after `turbo run build`), with the
// physical reference measured in the same run; writes bench/results/latest.json (schema in the
// README's "Performance" section) and the SVG plots next to it. Not part of `pnpm test`.
//
// Usage: node scripts/bench.mjs [--quick] [--out DIR] [--skip shell,boot,...]
//   --quick   fewer boot sizes and shell samples (a smoke run of the pipeline)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lineChart } from './bench-svg.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
};
const quick = process.argv.includes('--quick');
const outDir = resolve(arg('--out', join(root, 'bench/results')));
const skip = new Set((arg('--skip', '') || '').split(',').filter(Boolean));
const tmp = mkdtempSync(join(tmpdir(), 'hmm-bench-'));
const tsx = join(root, 'node_modules/.bin/tsx');
const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** Runs one benchmark as a child process (output shown live); returns its JSON file's contents. */
function run(name, cmd, args, { cwd = root, json = join(tmp, `${name}.json`), env = {} } = {}) {
  if (skip.has(name)) {
    console.log(`\n=== ${name}: skipped (--skip)`);
    return null;
  }
  const show = (a) => (a.startsWith(root) ? relative(root, a) || '.' : a === process.execPath ? 'node' : a);
  console.log(`\n=== ${name}: ${show(cwd)}$ ${[cmd, ...args].map(show).join(' ')}`);
  const t = performance.now();
  const r = spawnSync(cmd, args, {
    cwd,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, BENCH_JSON: json, ...env },
  });
  const secs = ((performance.now() - t) / 1000).toFixed(1);
  if (r.status !== 0) {
    console.log(`=== ${name}: FAILED (exit ${r.status ?? r.signal}) after ${secs} s`);
    return { error: `exit ${r.status ?? r.signal}` };
  }
  console.log(`=== ${name}: done in ${secs} s`);
  return existsSync(json) ? JSON.parse(readFileSync(json, 'utf8')) : null;
}

const min = (xs) => (xs?.length ? Math.min(...xs) : Number.NaN);
const median = (xs) => {
  if (!xs?.length) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const round = (x, d = 3) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);

// 1. The ported throughput benchmark (hmm-tests benchmark_thp_migration), with the model's JSON
// extension: per-iteration wall and CPU times, kernel events and a memcpy of each size.
const selftestsJson = join(tmp, 'selftests.json');
const selftests = run(
  'selftests',
  process.execPath,
  [
    join(root, 'apps/selftests/dist/cli.js'),
    '-r',
    'hmm.hmm_device_private.benchmark_thp_migration',
    '--json',
    selftestsJson,
  ],
  { json: selftestsJson },
);
// 2. Per-package benchmarks.
const mmcore = run('mm-core', tsx, ['bench/bench.ts'], { cwd: join(root, 'packages/mm-core') });
const migrateVma = run('migrate-vma', tsx, ['bench/bench.ts'], { cwd: join(root, 'packages/migrate-vma') });
// Migration throughput by folio order (4 KiB .. 2 MiB, the mTHP extension of issue 9).
const byOrder = run('mthp-orders', tsx, ['bench/orders.ts'], { cwd: join(root, 'packages/test-hmm') });
const gpuFault = run('nouveau-gpu-fault', tsx, ['bench/gpu-fault.ts'], {
  cwd: join(root, 'packages/nouveau-dmem'),
});
const bootJson = join(tmp, 'boot.json');
const bootSizes = quick ? '2G,64G,1T' : '2G,16G,64G,256G,1T';
const boot = run(
  'boot',
  process.execPath,
  [join(root, 'apps/shell/scripts/boot-bench.mjs'), '--sizes', bootSizes, '--out', bootJson],
  { json: bootJson },
);
const shell = run('shell', process.execPath, [
  join(root, 'apps/shell/scripts/measure.mjs'),
  '--samples',
  quick ? '2' : '5',
]);

// The migration table: per size and direction, THP and 4 KiB as GiB/s and as a fraction of the
// memcpy of the same size measured in the same process. Bytes each direction must copy:
// MIGRATE_TO_DEV copies the data into device memory, dmirror_do_read() copies it into the
// bounce buffer and copy_to_user() into the caller's buffer (3x the size); MIGRATE_TO_SYS copies
// it back into system memory once (1x).
const COPIES = { s2d: 3, d2s: 1 };
const run0 = selftests && !selftests.error ? selftests.benchmarks?.[0] : null;
const sizes = [];
for (const row of run0?.rows ?? []) {
  if (!row.model) continue;
  const mc = { cpuMs: min(row.model.memcpy.cpuMs), wallMs: min(row.model.memcpy.wallMs) };
  const leg = (mode, dir) => {
    const s = row.model[mode][dir];
    const cpuMs = min(s.cpuMs);
    const wallMs = min(s.wallMs);
    return {
      cpuMs: round(cpuMs),
      wallMs: round(wallMs),
      medianWallMs: round(median(s.wallMs)),
      GiBs: round(row.size / GiB / (cpuMs / 1000)),
      ofMemcpy: round((COPIES[dir] * mc.cpuMs) / cpuMs),
      wallGiBs: round(row.size / GiB / (wallMs / 1000)),
      wallOfMemcpy: round((COPIES[dir] * mc.wallMs) / wallMs),
    };
  };
  const dir = (d) => {
    const thp = leg('thp', d);
    const base = leg('regular', d);
    return {
      thp,
      base,
      speedup: round(base.cpuMs / thp.cpuMs, 2),
      wallSpeedup: round(base.wallMs / thp.wallMs, 2),
    };
  };
  sizes.push({
    label: row.label,
    bytes: row.size,
    memcpy: {
      cpuMs: round(mc.cpuMs),
      wallMs: round(mc.wallMs),
      GiBs: round(row.size / GiB / (mc.cpuMs / 1000)),
    },
    s2d: dir('s2d'),
    d2s: dir('d2s'),
    events: {
      thp: row.model.thp.events,
      base: row.model.regular.events,
    },
  });
}
const big = sizes.at(-1);

const report = {
  schema: 1,
  generated: new Date().toISOString(),
  node: process.version,
  host: {
    cpus: cpus().length,
    model: cpus()[0]?.model ?? 'unknown',
    memTotalBytes: totalmem(),
    loadavg: existsSync('/proc/loadavg') ? readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3) : [],
  },
  timing:
    'cpu = host CPU time of the benchmark process (best of the timed iterations); wall = wall-clock (best, and median). Fractions of memcpy are per direction: copies x memcpy time of the same size / migration time.',
  migration: run0
    ? {
        source: `${run0.test} (apps/selftests), ${run0.iterations} timed iterations per size and mode`,
        copies: {
          ...COPIES,
          why: 'MIGRATE_TO_DEV: copy into device memory, dmirror_do_read() into the bounce buffer, copy_to_user() into the caller buffer; MIGRATE_TO_SYS: copy into system memory',
        },
        sizes,
      }
    : null,
  faults:
    mmcore && !mmcore.error
      ? { fault4k: mmcore.fault4k, faultThp: mmcore.faultThp, regionBytes: mmcore.regionBytes }
      : null,
  bulkAccess: mmcore && !mmcore.error ? { memcpyGiBs: mmcore.memcpyGiBs, ...mmcore.bulk } : null,
  migrateVma: migrateVma && !migrateVma.error ? migrateVma : null,
  migrationByOrder: byOrder && !byOrder.error ? byOrder : null,
  gpuFault: gpuFault && !gpuFault.error ? gpuFault : null,
  boot:
    boot && !boot.error
      ? boot.machines.map((m) =>
          m.ok
            ? {
                label: m.label,
                ramBytes: m.ramBytes,
                bootMs: round(m.bootMs, 1),
                bootRssBytes: m.bootRssBytes,
                peakRssBytes: m.hwmBytes,
                fault4kColdPerSec: m.fault4k.faultsPerSec,
              }
            : { label: m.label, ramBytes: m.ramBytes, error: m.error },
        )
      : null,
  shell: shell && !shell.error ? shell : null,
};

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);

// Plots.
const sizeLabel = (b) => (b >= MiB ? `${b / MiB}M` : `${b / 1024}K`);
if (sizes.length) {
  const xTicks = sizes.map((s) => ({ v: s.bytes, label: sizeLabel(s.bytes) }));
  for (const d of ['s2d', 'd2s']) {
    const name = d === 's2d' ? 'system -> device (MIGRATE_TO_DEV)' : 'device -> system (MIGRATE_TO_SYS)';
    writeFileSync(
      join(outDir, `throughput-${d}.svg`),
      lineChart({
        title: `Migration throughput, ${name}`,
        xLabel: 'buffer size (bytes, log)',
        yLabel: 'GiB/s of buffer (host CPU time, log)',
        xLog: true,
        yLog: true,
        xTicks,
        series: [
          {
            name: 'memcpy (same run)',
            points: sizes.map((s) => [s.bytes, s.memcpy.GiBs / COPIES[d]]),
            dash: true,
          },
          { name: 'THP', points: sizes.map((s) => [s.bytes, s[d].thp.GiBs]) },
          { name: '4 KiB pages', points: sizes.map((s) => [s.bytes, s[d].base.GiBs]) },
        ],
        note: `dashed: a memcpy of the same size,\ndivided by the ${COPIES[d]} cop${COPIES[d] > 1 ? 'ies' : 'y'} this\ndirection makes (the 100 % line)`,
      }),
    );
  }
}
if (report.faults || report.boot) {
  const faultSeries = [];
  if (report.boot)
    faultSeries.push({
      name: 'cold 4 KiB, per RAM size',
      points: report.boot.filter((m) => !m.error).map((m) => [m.ramBytes, m.fault4kColdPerSec]),
    });
  if (report.faults) {
    const xs = report.boot ? report.boot.map((m) => m.ramBytes) : [2 * GiB, 1024 * GiB];
    const flat = (v) => [
      [Math.min(...xs), v],
      [Math.max(...xs), v],
    ];
    faultSeries.push({
      name: 'warm 4 KiB (1 GiB machine)',
      points: flat(report.faults.fault4k.warmPerSec),
      dash: true,
    });
    faultSeries.push({
      name: 'warm THP, in 4 KiB pages',
      points: flat(report.faults.faultThp.warmPagesPerSec),
      dash: true,
    });
  }
  writeFileSync(
    join(outDir, 'faults.svg'),
    lineChart({
      title: 'Fault-in rate (pages per second of host time)',
      xLabel: 'machine RAM (log)',
      yLabel: 'pages faulted in per second (log)',
      xLog: true,
      yLog: true,
      xTicks: (report.boot ?? []).map((m) => ({ v: m.ramBytes, label: m.label })),
      series: faultSeries,
    }),
  );
}
if (report.migrationByOrder) {
  const rows = report.migrationByOrder.orders;
  writeFileSync(
    join(outDir, 'throughput-by-order.svg'),
    lineChart({
      title: `Migration throughput by folio order (${report.migrationByOrder.bytes / MiB} MiB, dmirror)`,
      xLabel: 'folio size (log)',
      yLabel: 'GiB/s of buffer (host CPU time, log)',
      xLog: true,
      yLog: true,
      xTicks: rows.map((o) => ({
        v: o.folioKiB,
        label: o.folioKiB >= 1024 ? `${o.folioKiB / 1024}M` : `${o.folioKiB}K`,
      })),
      series: [
        { name: 'system -> device', points: rows.map((o) => [o.folioKiB, o.toDevGiBs]) },
        { name: 'device -> system', points: rows.map((o) => [o.folioKiB, o.toSysGiBs]) },
      ],
    }),
  );
}
if (report.boot?.some((m) => !m.error)) {
  const ok = report.boot.filter((m) => !m.error);
  writeFileSync(
    join(outDir, 'boot.svg'),
    lineChart({
      title: 'Boot of the default machine (4 dmirror devices, nouveau)',
      xLabel: 'machine RAM (log)',
      yLabel: 'boot ms / host MiB (log)',
      xLog: true,
      yLog: true,
      xTicks: ok.map((m) => ({ v: m.ramBytes, label: m.label })),
      series: [
        { name: 'boot time (ms)', points: ok.map((m) => [m.ramBytes, m.bootMs]) },
        { name: 'boot RSS (MiB)', points: ok.map((m) => [m.ramBytes, Math.max(1, m.bootRssBytes / MiB)]) },
        { name: 'peak RSS (MiB)', points: ok.map((m) => [m.ramBytes, m.peakRssBytes / MiB]) },
      ],
    }),
  );
}

// Summary (also written as bench/results/latest.md, the tables the README shows).
const pct = (x) => (x === null || x === undefined ? '-' : `${(x * 100).toFixed(0)} %`);
const f2 = (x) => (x === null || x === undefined ? '-' : x.toFixed(2));
const md = [
  `Generated ${report.generated} by \`pnpm bench\` (node ${report.node}, ${report.host.cpus} CPUs, load ${report.host.loadavg.join(' ')}).`,
  '',
];
if (big) {
  md.push(
    `Migration of ${big.bytes / MiB} MiB through the dmirror driver (hmm-tests \`benchmark_thp_migration\`), host CPU time, best of ${run0.iterations}; memcpy of ${big.bytes / MiB} MiB in the same process: ${f2(big.memcpy.GiBs)} GiB/s. "of memcpy" counts the copies each direction makes (S→D ${COPIES.s2d}, D→S ${COPIES.d2s}).`,
    '',
    '| direction | THP GiB/s | THP of memcpy | 4 KiB GiB/s | 4 KiB of memcpy | THP / 4 KiB | wall: THP, 4 KiB of memcpy |',
    '|---|---|---|---|---|---|---|',
  );
  for (const d of ['s2d', 'd2s'])
    md.push(
      `| ${d === 's2d' ? 'system → device' : 'device → system'} | ${f2(big[d].thp.GiBs)} | ${pct(big[d].thp.ofMemcpy)} | ${f2(big[d].base.GiBs)} | ${pct(big[d].base.ofMemcpy)} | ${f2(big[d].speedup)}× | ${pct(big[d].thp.wallOfMemcpy)}, ${pct(big[d].base.wallOfMemcpy)} |`,
    );
  md.push('');
}
if (big?.events?.thp && big?.events?.base) {
  const per = big.bytes / (2 * MiB);
  md.push(
    `Kernel events of one ${big.bytes / MiB} MiB migration (\`core.events\`), and per 2 MiB:`,
    '',
    '| event | S→D THP | S→D 4 KiB | D→S THP | D→S 4 KiB | D→S per 2 MiB, THP : 4 KiB |',
    '|---|---|---|---|---|---|',
  );
  for (const k of Object.keys(big.events.thp.s2d)) {
    const t = big.events.thp.d2s[k];
    const b = big.events.base.d2s[k];
    md.push(
      `| ${k} | ${big.events.thp.s2d[k]} | ${big.events.base.s2d[k]} | ${t} | ${b} | ${+(t / per).toFixed(1)} : ${+(b / per).toFixed(1)} |`,
    );
  }
  md.push('');
}
if (report.migrationByOrder?.orders?.length) {
  const o = report.migrationByOrder;
  md.push(
    `Migration by folio order (the mTHP extension, issue 9): ${o.bytes / MiB} MiB faulted in folios of one order, dmirror device declaring every mTHP order, host CPU time, best of ${o.iterations}; memcpy of ${o.bytes / MiB} MiB: ${f2(o.bytes / GiB / (o.memcpyMs / 1000))} GiB/s (above 100 %: the model copies per 2 MiB block, which this host does faster than one large memcpy):`,
    '',
    '| folio | to device GiB/s | of 3 memcpys | to system GiB/s | of memcpy | units back |',
    '|---|---|---|---|---|---|',
  );
  for (const r of o.orders)
    md.push(
      `| ${r.folioKiB} KiB (order ${r.order}) | ${f2(r.toDevGiBs)} | ${pct(r.toDevOfMemcpy)} | ${f2(r.toSysGiBs)} | ${pct(r.toSysOfMemcpy)} | ${r.unitsBack} |`,
    );
  md.push('');
}
if (report.gpuFault) {
  const g = report.gpuFault;
  md.push(
    `2 MiB GPU fault served by migration to VRAM (nouveau model; copy-engine time MODELLED: ${g.deviceTimeModel.launchNs / 1000} µs per launch + bytes at ${g.deviceTimeModel.hostBytesPerNs} GB/s):`,
    '',
    '| | host CPU µs | copy engine µs (modelled) | copy launches | GPU page | Intel Xe (published) µs |',
    '|---|---|---|---|---|---|',
    `| THP | ${g.thp.hostUs.toFixed(0)} | ${g.thp.deviceUs.toFixed(0)} | ${g.thp.copyLaunches} | 2 MiB | ${g.xeUs.thp} |`,
    `| 4 KiB pages | ${g.base.hostUs.toFixed(0)} | ${g.base.deviceUs.toFixed(0)} | ${g.base.copyLaunches} | 4 KiB | ${g.xeUs.base} |`,
    `| speedup | ${g.summary.hostSpeedup.toFixed(1)}× | ${g.summary.modelledDeviceSpeedup.toFixed(1)}× | | | ${g.summary.xeSpeedup.toFixed(1)}× |`,
    '',
  );
}
if (report.boot) {
  md.push('| RAM | boot ms | boot RSS MiB | peak RSS MiB | cold 4 KiB faults/s |', '|---|---|---|---|---|');
  for (const m of report.boot)
    md.push(
      m.error
        ? `| ${m.label} | failed: ${m.error} | | | |`
        : `| ${m.label} | ${m.bootMs} | ${(m.bootRssBytes / MiB).toFixed(1)} | ${(m.peakRssBytes / MiB).toFixed(1)} | ${m.fault4kColdPerSec.toLocaleString('en')} |`,
    );
  md.push('');
}
if (report.faults)
  md.push(
    `Fault-in (1 GiB machine, 256 MiB, wall clock): 4 KiB warm ${report.faults.fault4k.warmPerSec.toLocaleString('en')}/s, cold ${report.faults.fault4k.coldPerSec.toLocaleString('en')}/s; THP warm ${report.faults.faultThp.warmPerSec.toLocaleString('en')}/s (${report.faults.faultThp.warmPagesPerSec.toLocaleString('en')} pages/s).`,
    '',
  );
writeFileSync(join(outDir, 'latest.md'), `${md.join('\n')}\n`);
// The README's performance section shows these tables between two markers: keep it current.
const readme = join(root, 'README.md');
const BEGIN = '<!-- bench:latest (written by pnpm bench) -->';
const END = '<!-- /bench:latest -->';
const text = readFileSync(readme, 'utf8');
const a = text.indexOf(BEGIN);
const b = text.indexOf(END);
if (a >= 0 && b > a && !arg('--out')) {
  writeFileSync(readme, `${text.slice(0, a + BEGIN.length)}\n\n${md.join('\n').trim()}\n\n${text.slice(b)}`);
  // Tables as the repository's formatter lays them out (`pnpm lint` checks README.md too).
  spawnSync(join(root, 'node_modules/.bin/biome'), ['format', '--write', readme], { stdio: 'ignore' });
}
console.log('\n=== summary (host CPU time, best of the timed iterations)');
console.log(
  '| size | dir | memcpy GiB/s | THP GiB/s | THP of memcpy | 4 KiB GiB/s | 4 KiB of memcpy | THP/4 KiB |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const s of sizes)
  for (const d of ['s2d', 'd2s'])
    console.log(
      `| ${sizeLabel(s.bytes)} | ${d === 's2d' ? 'S->D' : 'D->S'} | ${f2(s.memcpy.GiBs)} | ${f2(s[d].thp.GiBs)} | ${pct(s[d].thp.ofMemcpy)} | ${f2(s[d].base.GiBs)} | ${pct(s[d].base.ofMemcpy)} | ${f2(s[d].speedup)}x |`,
    );
if (big?.events?.thp && big?.events?.base) {
  console.log(`\nkernel events per migration of ${big.bytes / MiB} MiB (THP vs 4 KiB):`);
  for (const d of ['s2d', 'd2s'])
    for (const k of Object.keys(big.events.thp[d]))
      console.log(
        `  ${d} ${k.padEnd(16)} ${String(big.events.thp[d][k]).padStart(12)} ${String(big.events.base[d][k]).padStart(12)}`,
      );
}
if (report.migrationByOrder) {
  console.log(
    `\nmigration by folio order (${report.migrationByOrder.bytes / MiB} MiB, dmirror, host CPU time):`,
  );
  console.log('| folio | S->D GiB/s | of 3 memcpys | D->S GiB/s | of memcpy |');
  console.log('|---|---|---|---|---|');
  for (const o of report.migrationByOrder.orders)
    console.log(
      `| ${o.folioKiB} KiB | ${f2(o.toDevGiBs)} | ${pct(o.toDevOfMemcpy)} | ${f2(o.toSysGiBs)} | ${pct(o.toSysOfMemcpy)} |`,
    );
}
if (report.gpuFault)
  console.log(`\nGPU fault: ${JSON.stringify(report.gpuFault.summary ?? report.gpuFault)}`);
console.log(
  `\nwrote ${relative(root, join(outDir, 'latest.json'))} and the SVG plots in ${relative(root, outDir)}`,
);
rmSync(tmp, { recursive: true, force: true });
