// Measures a 256 MiB `migrate $ 256M dev` in the shell against the same HMM_DMIRROR_MIGRATE_TO_DEV
// through the package API (one ioctl into a malloc()ed mirror, as hmm-tests does). Not a test.
// Usage: npx tsx scripts/migrate-cost.ts [--size 256M] [--samples 3] [--nohuge]

import { writeFileSync } from 'node:fs';
import { Session as Inspector } from 'node:inspector/promises';
import {
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { execute } from '../src/commands/index.js';
import { CMD_ADDR, CMD_NPAGES, CMD_PTR, HMM_DMIRROR_MIGRATE_TO_DEV } from '../src/dmirror-uapi.js';
import { createMachine } from '../src/machine.js';
import { Session } from '../src/session.js';

const arg = (n: string, d: string) => {
  const i = process.argv.indexOf(n);
  return i >= 0 ? process.argv[i + 1] : d;
};
const MiB = 2 ** 20;
const size = Number.parseInt(arg('--size', '256'), 10) * MiB;
const samples = Number(arg('--samples', '3'));
const huge = !process.argv.includes('--nohuge');

/** CPU time (user + system) since `t`, in ms: steadier than wall time on a shared machine. */
function cpuMs(t: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
}

function fill(s: Session, addr: number): void {
  const r = execute(s, `write ${addr} ${size} index`);
  if (!r.result.ok) throw new Error(r.result.lines.join('\n'));
}

const profile = process.argv.includes('--profile') ? arg('--profile', 'migrate.cpuprofile') : undefined;
const inspector = new Inspector();

async function shell(): Promise<number> {
  const { kernel, init } = createMachine();
  const s = new Session(kernel, init);
  const m = execute(s, `mmap ${size} ${huge ? 'hugepage' : 'nohugepage'}`);
  if (!m.result.ok) throw new Error(m.result.lines.join('\n'));
  fill(s, s.vars.get('') ?? 0);
  if (profile) {
    inspector.connect();
    await inspector.post('Profiler.enable');
    await inspector.post('Profiler.start');
  }
  const t = process.cpuUsage();
  const r = execute(s, `migrate $ ${size} dev`);
  const ms = cpuMs(t);
  if (profile) {
    const { profile: p } = await inspector.post('Profiler.stop');
    writeFileSync(profile, JSON.stringify(p));
    inspector.disconnect();
  }
  if (!r.result.ok) throw new Error(r.result.lines.join('\n'));
  if (!r.result.lines.some((l) => l.includes('the device sees index 0')))
    throw new Error(r.result.lines.join('\n'));
  return ms;
}

function api(touched: boolean): number {
  const { kernel, init: p } = createMachine();
  const s = new Session(kernel, p);
  const ptr = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  p.madvise(ptr, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  fill(s, ptr);
  const mirror = p.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const cmd = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const fd = p.open('/dev/hmm_dmirror0', 2);
  // hmm-tests' mirror is malloc()ed and untouched: the ioctl's copy_to_user() faults it in. With
  // `touched`, it is written first (outside the timing): the ioctl alone.
  if (touched) p.writeBytes(mirror, new Uint8Array(size));
  const t = process.cpuUsage();
  p.writeU64(cmd + CMD_ADDR, ptr);
  p.writeU64(cmd + CMD_PTR, mirror);
  p.writeU64(cmd + CMD_NPAGES, size / PAGE_SIZE);
  const ret = p.ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, cmd);
  const ms = cpuMs(t);
  if (ret !== 0) throw new Error(`ioctl ${ret}`);
  return ms;
}

const sh: number[] = [];
const ap: number[] = [];
const at: number[] = [];
for (let i = 0; i < samples; i++) {
  if (!process.argv.includes('--shell-only')) {
    ap.push(api(false));
    at.push(api(true));
  }
  sh.push(await shell());
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const show = (xs: number[]) => `median ${med(xs).toFixed(0)} ms [${xs.map((x) => x.toFixed(0)).join(', ')}]`;
console.log(`${size / MiB} MiB ${huge ? 'THP' : '4K'} migrate to device, CPU time (user + system):`);
console.log(`  package API, one ioctl, malloc()ed mirror (hmm-tests): ${show(ap)}`);
console.log(`  package API, one ioctl, mirror already touched:        ${show(at)}`);
console.log(`  shell \`migrate $ ${size / MiB}M dev\` (whole command):           ${show(sh)}`);
