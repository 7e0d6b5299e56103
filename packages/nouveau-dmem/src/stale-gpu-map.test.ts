import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  parseSchedule,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { gpuRead } from './fault.js';
import { svmmMigrateToVramGen } from './migrate.js';
import { gpuInts, rig } from './testing.js';

const NPAGES = 32;

/**
 * DRM_NOUVEAU_SVM_BIND of 32 never-touched pages to VRAM while another thread of the process
 * writes them from the CPU, under a random schedule; then the GPU reads every page. Returns the
 * pages where the GPU does not see what the CPU wrote (and still reads back itself).
 */
function raceOnce(fixes: string[], seed: number): number {
  const { k, p, svmm } = rig({ fixes });
  const a = p.mmap(0, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const data = new Uint8Array(NPAGES * PAGE_SIZE);
  new Int32Array(data.buffer).fill(0x5eed);
  k.sched.setStrategy(parseSchedule(`random:seed=${seed},p=0.4`));
  const t = p.clone().spawn('cpu write', p.sys.access(a, data, 'write'));
  const mig = k.sched.spawn('svm bind', svmmMigrateToVramGen(svmm, a, a + NPAGES * PAGE_SIZE));
  k.sched.join(t);
  k.sched.join(mig);
  expect(t.result).toBe(0);
  let stale = 0;
  for (let pg = 0; pg < NPAGES; pg++) {
    expect(p.readInts(a + pg * PAGE_SIZE, 1)[0]).toBe(0x5eed);
    if (gpuInts(gpuRead(svmm, a + pg * PAGE_SIZE, 4))[0] !== 0x5eed) stale++;
  }
  expect(k.check()).toEqual([]);
  return stale;
}

describe('finding 4 / fix K4: GPU entries mapped for slots migrate_vma_pages() refused', () => {
  const seeds = Array.from({ length: 40 }, (_, i) => i + 1);

  it('v6.19: a CPU write into a hole while it migrates leaves the GPU mapping freed VRAM (it reads zeros)', () => {
    expect(seeds.some((s) => raceOnce([], s) > 0)).toBe(true);
  });

  it('fix K4: refused slots are not mapped; the GPU faults and sees the CPU data', () => {
    for (const s of seeds) expect(raceOnce(['K4'], s)).toBe(0);
  });
});
