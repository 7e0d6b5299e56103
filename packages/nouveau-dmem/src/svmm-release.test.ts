import {
  EFAULT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  parseSchedule,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { gpuJobWordsGen, gpuRead, gpuWrite } from './fault.js';
import { pattern, rig } from './testing.js';

const NPAGES = 64;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/**
 * Finding 14: a process maps NPAGES of its memory into the GPU (a GPU read), then exits while its
 * DRM file stays open (a child forked earlier shares the fd, or a job was queued before the
 * kill): exit_mmap() frees the pages. Another process then takes memory. A GPU job of the same
 * client writes through the old SVM range. Returns what the GPU write returned, how many of the
 * GPU's host entries named a pfn that was free after the exit, and how many of the other
 * process's pages no longer read back what it wrote.
 */
function afterExit(fixes: string[]): { ret: number; stale: number; corrupted: number } {
  const { k, p, svmm } = rig({ fixes });
  const a = p.mmap(0, NPAGES * PAGE_SIZE, RW, ANON);
  p.writeInts(a, pattern(1, (NPAGES * PAGE_SIZE) / 4));
  const seen = gpuRead(svmm, a, NPAGES * PAGE_SIZE);
  expect(seen).toBeInstanceOf(Uint8Array);
  const hostPfns: number[] = [];
  for (let i = 0; i < NPAGES; i++) {
    const pte = svmm.vmm.lookup(a + i * PAGE_SIZE);
    expect(pte?.aperture).toBe('host');
    hostPfns.push(Math.floor((pte?.addr ?? 0) / PAGE_SIZE));
  }
  p.exit(0);
  let stale = 0;
  for (let i = 0; i < NPAGES; i++) {
    const pte = svmm.vmm.lookup(a + i * PAGE_SIZE);
    if (pte && k.core.map.refcount[Math.floor(pte.addr / PAGE_SIZE)] === 0) stale++;
  }
  // Another process takes memory: the allocator hands out the pages the exit freed.
  const q = k.spawn();
  const b = q.mmap(0, 4 * NPAGES * PAGE_SIZE, RW, ANON);
  const mine = pattern(0x5000, (4 * NPAGES * PAGE_SIZE) / 4);
  q.writeInts(b, mine);
  const ret = gpuWrite(svmm, a, new Uint8Array(NPAGES * PAGE_SIZE).fill(0xee));
  const back = q.readInts(b, mine.length);
  let corrupted = 0;
  for (let pg = 0; pg < 4 * NPAGES; pg++) {
    const o = (pg * PAGE_SIZE) / 4;
    if (back[o] !== mine[o]) corrupted++;
  }
  expect(k.check()).toEqual([]);
  return { ret, stale, corrupted };
}

describe('finding 14 / fix K22: the svmm has no ->release (nouveau_mn_ops)', () => {
  it("v6.19: after exit_mmap() the GPU page tables still map the freed pages, and a GPU job of the client writes into another process's memory", () => {
    const r = afterExit([]);
    expect(r.stale).toBe(NPAGES);
    expect(r.ret).toBe(0);
    expect(r.corrupted).toBeGreaterThan(0);
  });

  it('v6.19: with nobody using the freed pages yet, the GPU write reaches a free page: the model reports the use-after-free the kernel would not see', () => {
    const { p, svmm } = rig();
    const a = p.mmap(0, NPAGES * PAGE_SIZE, RW, ANON);
    p.writeInts(a, pattern(1, (NPAGES * PAGE_SIZE) / 4));
    expect(gpuRead(svmm, a, PAGE_SIZE)).toBeInstanceOf(Uint8Array);
    p.exit(0);
    expect(() => gpuWrite(svmm, a, new Uint8Array(PAGE_SIZE).fill(0xee))).toThrow(
      /^kernel BUG \(modelled\): use-after-free \(GPU DMA\) in nouveau_svmm_invalidate_range_start .*a GPU write .*a free page.*nouveau_mn_ops has no ->release/,
    );
    // A load leaks what the page holds next: the same report.
    expect(() => gpuRead(svmm, a, PAGE_SIZE)).toThrow(/use-after-free \(GPU DMA\) .*a GPU read through svmm/);
  });

  it('fix K22: ->release clears the GPU page tables at exit_mmap(); the GPU faults on the dead mm and writes nothing', () => {
    const r = afterExit(['K22']);
    expect(r.stale).toBe(0);
    expect(r.ret).toBe(-EFAULT);
    expect(r.corrupted).toBe(0);
  });
});

/**
 * A GPU job of one page (gpuJobWordsGen()) races the process's exit under a random schedule: the
 * job's GPU fault holds the mm (mmget_not_zero()), so when the exit comes first the fault's
 * mmput() is the last and runs exit_mmap() in the fault worker; the GPU then replays its store
 * through the entry the fault just wrote. Returns what each seed's job did.
 */
function jobRaces(fixes: string[]): { uaf: number; ok: number; failed: number } {
  const out = { uaf: 0, ok: 0, failed: 0 };
  for (let seed = 1; seed <= 40; seed++) {
    const { k, p, svmm } = rig({ fixes, checkEach: false });
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    k.sched.setStrategy(parseSchedule(`random:seed=${seed},p=0.5`));
    const job = k.sched.spawn('gpu job', gpuJobWordsGen(svmm, a, Float64Array.of(0x1234)));
    const exit = k.sched.spawn('exit', p.exitGen(0));
    try {
      k.sched.join(job);
      k.sched.join(exit);
    } catch {
      // The job's error is read below.
    }
    if (job.error !== undefined) {
      expect(String(job.error)).toMatch(/use-after-free \(GPU DMA\)/);
      out.uaf++;
    } else if (job.result === 0) out.ok++;
    else {
      expect(job.result).toBe(-EFAULT);
      out.failed++;
    }
  }
  return out;
}

describe('finding 14 / fix K22: a GPU job whose fault drops the last user of the mm', () => {
  it("v6.19: in some interleavings the fault's mmput() runs exit_mmap(), and the replayed store reaches the page it freed", () => {
    expect(jobRaces([]).uaf).toBeGreaterThan(0);
  });

  it('fix K22: ->release clears the entry the fault wrote, the replay faults again on the dead mm and fails', () => {
    const r = jobRaces(['K22']);
    expect(r.uaf).toBe(0);
    expect(r.failed).toBeGreaterThan(0);
  });
});
