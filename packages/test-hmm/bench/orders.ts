/**
 * Migration throughput by folio order (issue 9; `pnpm bench` here, or the root `pnpm bench`):
 * dmirror MIGRATE_TO_DEV and MIGRATE_TO_SYS of a 64 MiB buffer whose anonymous memory was
 * faulted in folios of one order, 4 KiB (order 0) through 2 MiB (order 9), on a device that
 * declares every mTHP order (the model extension). Host CPU time, best of BENCH_ITERS, each as
 * a fraction of a memcpy of the bytes that direction copies, measured in the same run
 * (MIGRATE_TO_DEV copies three times: into device memory, dmirror_do_read() into the bounce
 * buffer, copy_to_user(); MIGRATE_TO_SYS once). Writes BENCH_JSON when set.
 */
import { writeFileSync } from 'node:fs';
import {
  Kernel,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type ThpSizeMode,
} from '@hmm-model/mm-core';
import { installDmirror } from '../src/module.js';
import {
  CMD_CPAGES,
  dmirrorPath,
  encodeCmd,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
} from '../src/uapi.js';

const MiB = 1 << 20;
const SIZE = 64 * MiB;
const ITERS = Number(process.env.BENCH_ITERS ?? 5);
const ALL_MTHP = 0b111111100;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Best-of CPU ms for MIGRATE_TO_DEV and MIGRATE_TO_SYS of the buffer faulted at `order`. */
function measure(order: number): { toDev: number; toSys: number; cpagesSys: number } {
  const thpAnon: Record<number, ThpSizeMode> =
    order >= 2 ? { 9: 'never', [order]: 'always' } : { 9: 'never' };
  const k = new Kernel({ ramBytes: 1024 * MiB, thp: order === 9 ? 'always' : 'never', thpAnon });
  installDmirror(k, { coherent: false, mthpOrders: { 0: ALL_MTHP } });
  k.spawn();
  const p = k.spawn();
  const fd = p.open(dmirrorPath(0), O_RDWR);
  const raw = p.mmap(0, SIZE + PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  const chunk = new Uint8Array(PMD_SIZE);
  for (let off = 0; off < SIZE; off += PMD_SIZE) {
    for (let i = 0; i < chunk.length; i += PAGE_SIZE) chunk[i] = (off / PMD_SIZE + i) & 0xff;
    p.writeBytes(a + off, chunk);
  }
  const mirror = p.malloc(SIZE);
  const cmd = p.malloc(PAGE_SIZE);
  const ioctl = (req: number): number => {
    p.writeBytes(cmd, encodeCmd({ addr: a, ptr: mirror, npages: SIZE / PAGE_SIZE }));
    const r = p.ioctl(fd, req, cmd);
    if (r) throw new Error(`ioctl ${req.toString(16)}: ${r}`);
    return Number(new DataView(p.readBytes(cmd, 64).buffer).getBigUint64(CMD_CPAGES, true));
  };
  let toDev = Number.POSITIVE_INFINITY;
  let toSys = Number.POSITIVE_INFINITY;
  let cpagesSys = 0;
  for (let i = 0; i <= ITERS; i++) {
    let t = cpuMs();
    ioctl(HMM_DMIRROR_MIGRATE_TO_DEV);
    const d = cpuMs() - t;
    t = cpuMs();
    cpagesSys = ioctl(HMM_DMIRROR_MIGRATE_TO_SYS);
    const s = cpuMs() - t;
    // The first round trip warms the device's free lists; best of the rest.
    if (i > 0) {
      toDev = Math.min(toDev, d);
      toSys = Math.min(toSys, s);
    }
  }
  const back = p.readBytes(a + 3 * PMD_SIZE, 8192);
  for (let i = 0; i < back.length; i += PAGE_SIZE)
    if (back[i] !== ((3 + i) & 0xff)) throw new Error(`order ${order}: data did not survive`);
  k.dispose();
  return { toDev, toSys, cpagesSys };
}

/**
 * Best-of CPU ms of a memcpy (Uint8Array.prototype.set) of SIZE bytes between two host buffers
 * touched beforehand (as the selftests' benchmark measures it), run again before every order so
 * that the reference shares the run's conditions; the best of all of them is the reference.
 */
const memSrc = new Uint8Array(SIZE).fill(7);
const memDst = new Uint8Array(SIZE).fill(1);
let memcpyBest = Number.POSITIVE_INFINITY;
function memcpyMs(): number {
  for (let i = 0; i <= ITERS; i++) {
    const t = cpuMs();
    memDst.set(memSrc);
    memcpyBest = Math.min(memcpyBest, cpuMs() - t);
  }
  return memcpyBest;
}

const GiB = 2 ** 30;
const results = [0, 2, 3, 4, 5, 6, 7, 8, 9].map((order) => {
  memcpyMs();
  return { order, r: measure(order) };
});
const memcpy = memcpyMs();
const rows = results.map(({ order, r }) => {
  const row = {
    order,
    folioKiB: 4 << order,
    toDevMs: Number(r.toDev.toFixed(2)),
    toSysMs: Number(r.toSys.toFixed(2)),
    toDevGiBs: Number((SIZE / GiB / (r.toDev / 1000)).toFixed(3)),
    toSysGiBs: Number((SIZE / GiB / (r.toSys / 1000)).toFixed(3)),
    toDevOfMemcpy: Number(((3 * memcpy) / r.toDev).toFixed(3)),
    toSysOfMemcpy: Number((memcpy / r.toSys).toFixed(3)),
    unitsBack: r.cpagesSys,
  };
  console.log(
    `order ${order} (${row.folioKiB} KiB): to device ${row.toDevGiBs} GiB/s (${(100 * row.toDevOfMemcpy).toFixed(1)} % of 3 memcpys), to system ${row.toSysGiBs} GiB/s (${(100 * row.toSysOfMemcpy).toFixed(1)} % of memcpy), ${r.cpagesSys} units back`,
  );
  return row;
});
const out = {
  node: process.version,
  bytes: SIZE,
  iterations: ITERS,
  memcpyMs: Number(memcpy.toFixed(2)),
  orders: rows,
};
if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, `${JSON.stringify(out, null, 2)}\n`);
