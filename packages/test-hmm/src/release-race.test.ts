import {
  folioGet,
  folioPut,
  installMmCoreChecker,
  Kernel,
  type KGen,
  LockFinding,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  parseSchedule,
  type Task,
  waitEvent,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { installDmirror } from './module.js';
import { fillInts, hmmDmirrorCmd, hmmOpen } from './test-util.js';
import { encodeCmd, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_RELEASE } from './uapi.js';

const SIZE = 2 << 20;
const NPAGES = SIZE / 4096;

/**
 * One MIGRATE_TO_DEV of 2 MiB and, from another thread, an HMM_DMIRROR_RELEASE, under the seeded
 * random schedule `seed`. Returns the deadlock finding, if the run ended in one.
 */
function race(seed: number, evictUntilEmpty: boolean): { deadlock: LockFinding | null; calloc: number } {
  const k = new Kernel({ ramBytes: 256 << 20 });
  installMmCoreChecker(k);
  const mod = installDmirror(k, { coherent: false, evictUntilEmpty });
  const p = k.spawn();
  const fd = hmmOpen(p, 0);
  // A PMD-aligned THP: few preemption points before the migration allocates device pages.
  const raw = p.mmap(0, 2 * SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const buf = { ptr: Math.ceil(raw / SIZE) * SIZE, mirror: p.malloc(SIZE), size: SIZE, cpages: 0, faults: 0 };
  p.madvise(buf.ptr, SIZE, MADV_HUGEPAGE);
  fillInts(p, buf.ptr, SIZE / 4, (i) => i);
  const cmd = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  p.writeBytes(cmd, encodeCmd({ addr: buf.ptr, ptr: buf.mirror, npages: NPAGES }));
  k.sched.setStrategy(parseSchedule(`random:seed=${seed},p=0.3`));
  const t = p.clone().spawn('release', p.sys.ioctl(fd, HMM_DMIRROR_RELEASE, cmd));
  try {
    hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES);
    k.sched.join(t);
  } catch (e) {
    if (e instanceof LockFinding && e.category === 'deadlock') return { deadlock: e, calloc: 0 };
    throw e;
  }
  expect(k.check()).toEqual([]);
  expect(mod.check()).toEqual([]);
  const d = mod.devices[0];
  return { deadlock: null, calloc: d.calloc - d.cfree - d.cdropped };
}

describe('HMM_DMIRROR_RELEASE racing with a migration to the device (README: Findings)', () => {
  it('lib/test_hmm as it is: folios locked by the migration are skipped, memunmap_pages() waits forever', () => {
    const hangs: number[] = [];
    for (let seed = 1; seed < 200 && hangs.length === 0; seed++) {
      const r = race(seed, false);
      if (r.deadlock) {
        expect(r.deadlock.message).toMatch(/deadlock/);
        expect(r.deadlock.details.join('\n')).toMatch(
          /memunmap_pages: \d+ device page\(s\) of pgmap \d+ \(hmm_dmirror0\) still allocated/,
        );
        hangs.push(seed);
      }
    }
    expect(hangs.length).toBe(1);
  });

  it('with evictUntilEmpty the removal waits for the folio lock and evicts again: no hang under any of 40 schedules', () => {
    for (let seed = 1; seed < 40; seed++) {
      const r = race(seed, true);
      expect(r.deadlock).toBeNull();
    }
  });

  it('with evictUntilEmpty the removal also waits out a passing extra reference on a device page (no hang)', () => {
    const k = new Kernel({ ramBytes: 256 << 20 });
    installMmCoreChecker(k);
    const mod = installDmirror(k, { coherent: false, evictUntilEmpty: true });
    const p = k.spawn();
    const fd = hmmOpen(p, 0);
    const n = 16;
    const buf = { ptr: p.malloc(n * 4096), mirror: p.malloc(n * 4096), size: n * 4096, cpages: 0, faults: 0 };
    fillInts(p, buf.ptr, (n * 4096) / 4, (i) => i);
    hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, n);
    expect(buf.cpages).toBe(n);
    const pg = mod.devices[0].chunks[0].pagemap;
    let page = -1;
    for (let q = pg.startPfn; q < pg.endPfn && page < 0; q++) if (k.core.map.refcount[q] > 0) page = q;
    expect(page).toBeGreaterThan(0);
    // Another task holds one device page (as a collection between its folio_get() and its
    // trylock does) until the removal waits: the eviction's refcount check fails meanwhile.
    const cmd = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.writeBytes(cmd, encodeCmd({ addr: buf.ptr, ptr: buf.mirror, npages: n }));
    let release = null as Task | null;
    let waited = '';
    const holder = k.sched.spawn(
      'holder',
      (function* (): KGen {
        folioGet(k.core, page);
        yield* waitEvent('removal waiting', () => release?.state === 'blocked');
        waited = release?.wait?.what ?? '';
        folioPut(k.core, page);
      })(),
    );
    k.sched.runUntil(() => holder.state === 'blocked');
    release = p.clone().spawn('release', p.sys.ioctl(fd, HMM_DMIRROR_RELEASE, cmd));
    // Without the wait the removal gives up after a pass that leaves the held page, and
    // memunmap_pages() waits forever for a page that stays mapped (a deadlock finding).
    k.sched.runAll();
    expect(waited).toBe('dmirror chunk removal: folio locked by a migration: extra folio reference');
    expect(release.result).toBe(0);
    // Every page came back to system memory with its data.
    for (let i = 0; i < (n * 4096) / 4; i += 997) expect(p.readI32(buf.ptr + 4 * i)).toBe(i);
    expect(k.check()).toEqual([]);
    expect(mod.check()).toEqual([]);
  });
});
