import { PAGE_SIZE, PMD_SIZE, parseSchedule } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { fillInts, hmmDmirrorCmd, thpMachine } from './test-util.js';
import { encodeCmd, HMM_DMIRROR_CMD_SIZE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_WRITE } from './uapi.js';

const NPAGES = PMD_SIZE / PAGE_SIZE;

/**
 * HMM_DMIRROR_WRITE of a THP range by one thread while another migrates the same range to the
 * device through the same fd, under a random schedule. Returns the pages whose CPU view
 * afterwards is not what the (successful) WRITE wrote.
 */
function raceOnce(fixes: string[], seed: number): number {
  const { k, mod, p, fd, buf } = thpMachine(fixes, 0, false, (i) => i + 1);
  // The device's data for the WRITE, and its command, in memory of their own.
  const src = p.malloc(PMD_SIZE);
  fillInts(p, src, PMD_SIZE / 4, (i) => ~i);
  const cmd = p.malloc(HMM_DMIRROR_CMD_SIZE);
  p.writeBytes(cmd, encodeCmd({ addr: buf.ptr, ptr: src, npages: NPAGES }));
  k.sched.setStrategy(parseSchedule(`random:seed=${seed},p=0.3`));
  const t = p.clone().spawn('device write', p.sys.ioctl(fd, HMM_DMIRROR_WRITE, cmd));
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
  k.sched.join(t);
  expect(t.result).toBe(0);
  const got = p.readInts(buf.ptr, PMD_SIZE / 4);
  let lost = 0;
  for (let pg = 0; pg < NPAGES; pg++) if (got[pg * (PAGE_SIZE / 4)] !== ~(pg * (PAGE_SIZE / 4))) lost++;
  expect(k.check()).toEqual([]);
  expect(mod.check()).toEqual([]);
  return lost;
}

describe('finding K3: the mirror ignores its own device migrations', () => {
  const seeds = Array.from({ length: 30 }, (_, i) => i + 1);

  it('v6.19: a device WRITE racing a migration of the same range through the same fd is lost', () => {
    expect(seeds.some((s) => raceOnce([], s) > 0)).toBe(true);
  });

  it('fix K3: own migrations invalidate the mirror; the WRITE refaults and lands', () => {
    for (const s of seeds) expect(raceOnce(['K3'], s)).toBe(0);
  });
});
