/**
 * GPU-fault benchmark (run with `pnpm bench` in packages/nouveau-dmem): a 2 MiB GPU fault on
 * system memory served by migrating the 2 MiB to VRAM and mapping it into the GPU (what Intel Xe
 * does on a GPU fault; nouveau migrates through DRM_NOUVEAU_SVM_BIND, then the GPU fault maps
 * the VRAM), once with a THP behind the range and once with 512 base pages.
 *
 * Two times are reported for each: the host time the model spends (host CPU time, best of the
 * rounds) and the copy engine's MODELLED device time (CopyEngine timing model: a fixed cost per
 * copy or clear launch plus bytes over an assumed link bandwidth; see src/vram.ts). Intel Xe's
 * published figures for the same operation are 966 us (4 KiB pages) and 132 us (2 MiB THP).
 */
import { writeFileSync } from 'node:fs';
import {
  type EventCounts,
  eventsSince,
  Kernel,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { gpuFault, gpuPte, gpuRead } from '../src/fault.js';
import { createNouveauDmem } from '../src/init.js';
import { svmmMigrateToVram } from '../src/migrate.js';
import { nouveauSvmmInit } from '../src/svmm.js';
import { DEFAULT_COPY_TIMING } from '../src/vram.js';

const ROUNDS = Number(process.env.BENCH_ITERS ?? 20);
/** Intel Xe, "drm/xe: Support device-private THP" series: 2 MiB GPU fault, 4 KiB vs 2 MiB pages. */
const XE_US = { base: 966, thp: 132 };

interface Mode {
  hostUs: number;
  hostWallUs: number;
  deviceUs: number;
  copyLaunches: number;
  gpuPageShift: number;
  events: EventCounts;
}

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function measure(thp: boolean): Mode {
  const k = new Kernel({ ramBytes: 1 << 30, checkInvariants: false });
  const drm = createNouveauDmem(k, { vramBytes: 1 << 30 });
  const engine = drm.dmem!.migrate.engine;
  const p = k.spawn();
  const svmm = nouveauSvmmInit(drm, p.mm);
  const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  if (p.madvise(a, PMD_SIZE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)) throw new Error('madvise');
  const data = new Uint8Array(PMD_SIZE);
  for (let i = 0; i < data.length; i += 64) data[i] = (i >> 6) & 0xff;
  let best: Mode | null = null;
  for (let r = 0; r <= ROUNDS; r++) {
    // The data is in system memory (first round: written; later: the CPU faulted it back).
    p.writeBytes(a, data);
    const ev = k.core.events.snapshot();
    const ns0 = engine.deviceNs;
    const launches0 = engine.launches + engine.clears;
    const c0 = cpuUs();
    const t0 = performance.now();
    // The GPU fault: migrate the 2 MiB to VRAM, then map it into the GPU page tables.
    const res = svmmMigrateToVram(svmm, a, a + PMD_SIZE);
    if (res.ret) throw new Error(`migrate to VRAM: ${res.ret}`);
    if (gpuFault(svmm, a, true)) throw new Error('gpu fault');
    const hostUs = cpuUs() - c0;
    const hostWallUs = (performance.now() - t0) * 1000;
    const mode: Mode = {
      hostUs,
      hostWallUs,
      deviceUs: (engine.deviceNs - ns0) / 1000,
      copyLaunches: engine.launches + engine.clears - launches0,
      gpuPageShift: gpuPte(svmm, a)?.pageShift ?? 0,
      events: eventsSince(k.core.events, ev),
    };
    const seen = gpuRead(svmm, a, PMD_SIZE);
    if (!(seen instanceof Uint8Array) || seen.some((b, i) => b !== data[i]))
      throw new Error('GPU sees other data');
    if (r > 0 && (!best || mode.hostUs < best.hostUs)) best = mode; // round 0 warms up
    // The CPU touches the range: the device pages migrate back (migrate_to_ram).
    if (p.readU8(a + 4096) !== data[4096]) throw new Error('CPU sees other data');
    p.readBytes(a, PMD_SIZE);
  }
  return best!;
}

const thp = measure(true);
const base = measure(false);
const us = (x: number) => `${x.toFixed(0).padStart(6)} us`;
const T = DEFAULT_COPY_TIMING;
console.log(`2 MiB GPU fault served by migration to VRAM (nouveau model, best of ${ROUNDS} rounds)`);
console.log(
  `  copy engine time is MODELLED: ${T.launchNs / 1000} us per launch + bytes at ${T.hostBytesPerNs} GB/s (host link); not a measurement`,
);
console.log(
  '                      host CPU    copy engine (MODELLED)   launches  GPU page   Intel Xe (published)',
);
console.log(
  `  THP (one folio)    ${us(thp.hostUs)}    ${us(thp.deviceUs)}               ${String(thp.copyLaunches).padStart(6)}     2^${thp.gpuPageShift}     ${XE_US.thp} us`,
);
console.log(
  `  4 KiB pages (512)  ${us(base.hostUs)}    ${us(base.deviceUs)}               ${String(base.copyLaunches).padStart(6)}     2^${base.gpuPageShift}     ${XE_US.base} us`,
);
console.log(
  `  speedup            ${(base.hostUs / thp.hostUs).toFixed(1).padStart(6)}x      ${(base.deviceUs / thp.deviceUs).toFixed(1).padStart(6)}x                                  ${(XE_US.base / XE_US.thp).toFixed(1)}x`,
);

if (process.env.BENCH_JSON) {
  writeFileSync(
    process.env.BENCH_JSON,
    `${JSON.stringify(
      {
        node: process.version,
        rounds: ROUNDS,
        bytes: PMD_SIZE,
        deviceTimeModel: {
          note: 'MODELLED: CopyEngine timing model (per-launch cost + bytes / link bandwidth), not a measurement',
          ...T,
        },
        thp,
        base,
        xeUs: XE_US,
        summary: {
          hostSpeedup: base.hostUs / thp.hostUs,
          modelledDeviceSpeedup: base.deviceUs / thp.deviceUs,
          xeSpeedup: XE_US.base / XE_US.thp,
        },
      },
      null,
      2,
    )}\n`,
  );
}
