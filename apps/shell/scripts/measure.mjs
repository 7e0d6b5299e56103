// Measures hmm-shell startup and per-command latency (run after `pnpm build`; not a test).
// Usage: node scripts/measure.mjs [--samples N]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';

// With BENCH_JSON=FILE (the root `pnpm bench`), the medians are also written there as JSON.
const report = { startup: {}, commands: [] };

import { tmpdir } from 'node:os';
import { join } from 'node:path';

const samples = Number(process.argv[process.argv.indexOf('--samples') + 1]) || 10;
const dir = mkdtempSync(join(tmpdir(), 'hmm-measure-'));
const cli = new URL('../dist/cli.js', import.meta.url).pathname;
if (!existsSync(cli)) throw new Error('build first: pnpm build');

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};
const fmt = ({ min, median, max }) =>
  `median ${median.toFixed(1)} ms (min ${min.toFixed(1)}, max ${max.toFixed(1)})`;
const wall = (args, opts = {}) => {
  const t0 = performance.now();
  spawnSync(process.execPath, args, { stdio: 'ignore', ...opts });
  return performance.now() - t0;
};

console.log(`load average: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
const empty = join(dir, 'empty.hmm');
writeFileSync(empty, '');
const baseline = stats(Array.from({ length: samples }, () => wall(['-e', '0'])));
const scriptStart = stats(Array.from({ length: samples }, () => wall([cli, '--script', empty])));
report.startup = { nodeBaselineMs: baseline.median, scriptEmptyMs: scriptStart.median };
console.log(`node -e 0 (baseline):                     ${fmt(baseline)}`);
console.log(`node dist/cli.js --script <empty file>:   ${fmt(scriptStart)}`);

// Interactive: time to the first prompt in a 120x40 tmux pane, and the phases the CLI records.
if (spawnSync('tmux', ['-V']).status === 0) {
  const prompt = [];
  const phases = [];
  for (let i = 0; i < samples; i++) {
    const sock = join(dir, 'tmux.sock');
    const timing = join(dir, `timing-${i}.json`);
    const t0 = performance.now();
    spawnSync('tmux', [
      '-S',
      sock,
      'new-session',
      '-d',
      '-s',
      'm',
      '-x',
      '120',
      '-y',
      '40',
      `env HMM_SHELL_HISTORY=${join(dir, 'hist')} HMM_SHELL_TIMING=${timing} ${process.execPath} ${cli}`,
    ]);
    for (;;) {
      const out =
        spawnSync('tmux', ['-S', sock, 'capture-pane', '-p', '-t', 'm'], { encoding: 'utf8' }).stdout ?? '';
      if (out.includes('hmm:1>')) break;
      if (performance.now() - t0 > 20_000) throw new Error('no prompt after 20 s');
      spawnSync('sleep', ['0.01']);
    }
    prompt.push(performance.now() - t0);
    const t1 = performance.now();
    while (!existsSync(timing) && performance.now() - t1 < 10_000) spawnSync('sleep', ['0.01']);
    phases.push(JSON.parse(readFileSync(timing, 'utf8')));
    spawnSync('tmux', ['-S', sock, 'kill-server']);
  }
  report.startup.firstPromptMs = stats(prompt).median;
  console.log(`tmux: time to first prompt (wall, incl. tmux): ${fmt(stats(prompt))}`);
  for (const k of ['main', 'ui-loaded', 'first-frame', 'machine']) {
    console.log(`  process uptime at ${k.padEnd(11)}             ${fmt(stats(phases.map((p) => p[k])))}`);
    console.log(`    CPU time used by then                  ${fmt(stats(phases.map((p) => p[`${k}-cpu`])))}`);
  }
} else console.log('tmux not installed: interactive startup not measured');

// Per-command latency on a 2 MiB range, in process (what the shell spends; no terminal I/O).
const { createMachine } = await import('../dist/machine.js');
const { Session } = await import('../dist/session.js');
const { execute } = await import('../dist/commands/index.js');
const { buildAddressMap } = await import('../dist/inspect/addrmap.js');
let installDmirror;
try {
  ({ installDmirror } = await import('@hmm-model/test-hmm'));
} catch {
  installDmirror = undefined;
}
const fresh = (setup) => {
  const { kernel, init } = createMachine();
  if (installDmirror && !kernel.devices.has('/dev/hmm_dmirror0')) installDmirror(kernel);
  const s = new Session(kernel, init);
  for (const l of setup) if (!execute(s, l).result.ok) throw new Error(`setup failed: ${l}`);
  return s;
};
const cases = [
  ['mmap 2M rw private anon hugepage', []],
  ['write $ 2M index  (THP fault)', ['mmap 2M hugepage'], 'write $ 2M index'],
  ['write $ 2M index  (512 4K faults)', ['mmap 2M nohugepage'], 'write $ 2M index'],
  ['read $ 2M', ['mmap 2M hugepage', 'write $ 2M index']],
  ['check $ 2M index', ['mmap 2M nohugepage', 'write $ 2M index']],
  ['fault $ 2M write', ['mmap 2M nohugepage']],
  ['munmap $+1M 4K  (PMD split)', ['mmap 2M hugepage', 'write $ 2M index'], 'munmap $+1M 4K'],
  ['mprotect $ 2M r', ['mmap 2M nohugepage', 'write $ 2M index']],
  ['madvise $ 2M dontneed', ['mmap 2M nohugepage', 'write $ 2M index']],
  ['mremap $ 2M 4M maymove', ['mmap 2M hugepage', 'write $ 2M index']],
  ['fork', ['mmap 2M nohugepage', 'write $ 2M index']],
  ['walk $', ['mmap 2M nohugepage', 'write $ 2M index']],
  ['folio $', ['mmap 2M hugepage', 'write $ 2M index']],
  ['pagemap $ 512', ['mmap 2M nohugepage', 'write $ 2M index']],
  ['smaps', ['mmap 2M nohugepage', 'write $ 2M index']],
  ['map zoom $', ['mmap 2M nohugepage', 'write $ 2M index']],
  ['vmstat', ['mmap 2M hugepage', 'write $ 2M index']],
  ['migrate $ 2M dev  (THP to device)', ['mmap 2M hugepage', 'write $ 2M index'], 'migrate $ 2M dev'],
  ['migrate $ 2M dev  (512 4K pages)', ['mmap 2M nohugepage', 'write $ 2M index'], 'migrate $ 2M dev'],
  ['migrate $ 2M sys', ['mmap 2M hugepage', 'write $ 2M index', 'migrate $ 2M dev'], 'migrate $ 2M sys'],
  [
    'check $ 2M index  (device THP faults back)',
    ['mmap 2M hugepage', 'write $ 2M index', 'migrate $ 2M dev'],
    'check $ 2M index',
  ],
  ['snapshot $ 2M', ['mmap 2M hugepage', 'write $ 2M index', 'migrate $ 2M dev']],
  ['dread $ 2M', ['mmap 2M hugepage', 'write $ 2M index']],
  ['dwrite $ 2M index', ['mmap 2M hugepage']],
];
console.log(
  installDmirror
    ? 'device commands run on the dmirror driver (@hmm-model/test-hmm)'
    : 'no dmirror driver: device commands fail with ENOENT',
);
console.log(`per-command latency on a 2 MiB range (${samples} fresh machines each):`);
for (const [label, setup, line = label] of cases) {
  const times = [];
  const maps = [];
  for (let i = 0; i < samples; i++) {
    const s = fresh(setup);
    const e = execute(s, line);
    times.push(e.ms);
    const t0 = performance.now();
    if (s.proc) buildAddressMap(s.kernel.core, s.proc.mm, { zoom: s.zoom });
    maps.push(performance.now() - t0);
  }
  report.commands.push({ command: label, medianMs: stats(times).median, mapRebuildMs: stats(maps).median });
  console.log(
    `  ${label.padEnd(44)} ${fmt(stats(times))}; live map rebuild ${stats(maps).median.toFixed(2)} ms`,
  );
}
if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, `${JSON.stringify(report, null, 2)}\n`);
