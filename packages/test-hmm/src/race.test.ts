import { PAGE_SIZE, Rng } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { fillInts, hmmBuffer, hmmDmirrorCmd, hmmOpen, intsEqual, machine } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_READ } from './uapi.js';

const SIZE = 4 << 20;
const NPAGES = SIZE / PAGE_SIZE;

describe('races at preemption points', () => {
  it('anon_teardown: READ racing with munmap of the upper half either succeeds fully or fails', () => {
    const outcomes = new Set<number>();
    for (let c = 0; c < 10; c++) {
      const { k, mod, p } = machine();
      const fd = hmmOpen(p, 0);
      const buf = hmmBuffer(p, SIZE);
      fillInts(p, buf.ptr, SIZE / 4, (i) => i + c);
      const delay = new Rng(c + 1).below(40) + c * 3;
      const t = p.clone().spawn('unmap_buffer', p.sys.munmap(buf.ptr + SIZE / 2, SIZE / 2), delay);
      const r = hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, NPAGES);
      outcomes.add(r);
      if (r === 0) {
        expect([buf.cpages, buf.faults]).toEqual([NPAGES, 1]);
        expect(intsEqual(p, buf.mirror, SIZE / 4, (i) => i + c)).toBe(true);
      }
      k.sched.join(t);
      expect(k.check()).toEqual([]);
      expect(mod.check()).toEqual([]);
    }
    expect([...outcomes].every((r) => r === 0 || r === -14)).toBe(true);
  });

  it('a migration racing with munmap leaves consistent state', () => {
    for (let c = 0; c < 6; c++) {
      const { k, mod, p } = machine();
      const fd = hmmOpen(p, 0);
      const buf = hmmBuffer(p, SIZE);
      fillInts(p, buf.ptr, SIZE / 4, (i) => i);
      const t = p.clone().spawn('unmap', p.sys.munmap(buf.ptr + SIZE / 4, SIZE / 4), c * 2);
      const r = hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES);
      expect([0, -2, -22]).toContain(r);
      k.sched.join(t);
      expect(k.check()).toEqual([]);
      expect(intsEqual(p, buf.ptr, SIZE / 16, (i) => i)).toBe(true);
      expect(p.close(fd)).toBe(0);
      expect(mod.check()).toEqual([]);
      expect(mod.devices[0].calloc - mod.devices[0].cfree).toBe(0);
    }
  });
});

describe('close racing with an ioctl on the same fd', () => {
  it('release runs when the ioctl returns (fdget holds a reference): the device pages are evicted, no use-after-free', () => {
    for (let c = 0; c < 8; c++) {
      const { k, mod, p } = machine();
      const fd = hmmOpen(p, 0);
      const buf = hmmBuffer(p, SIZE);
      fillInts(p, buf.ptr, SIZE / 4, (i) => i ^ c);
      // Another thread of the process closes the descriptor while the migration runs.
      const t = p.clone().spawn('close', p.sys.close(fd), c * 5);
      const r = hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES);
      expect([0, -9]).toContain(r);
      k.sched.join(t);
      // Every page reads back on the CPU: the last fput() evicted what the migration moved.
      expect(intsEqual(p, buf.ptr, SIZE / 4, (i) => i ^ c)).toBe(true);
      expect(k.check()).toEqual([]);
      expect(mod.check()).toEqual([]);
      expect(mod.devices[0].calloc - mod.devices[0].cfree).toBe(0);
    }
  });
});
