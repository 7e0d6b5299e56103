import { MADV_DONTNEED, PAGE_SIZE, PMD_SIZE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { hmmDmirrorCmd, thpMachine } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_READ } from './uapi.js';

const NPAGES = PMD_SIZE / PAGE_SIZE;
const HOLE = 432;

/**
 * MIGRATE_TO_DEV of a THP while another thread MADV_DONTNEEDs one page of it, the madvise
 * started `delay` scheduler steps in; then a device READ of the range. Returns the word the
 * device read at the zapped page (the CPU reads 0 there).
 */
function raceOnce(fixes: string[], delay: number): { word: number; migrated: number } {
  const { k, mod, p, fd, buf } = thpMachine(fixes, 0, false, (i) => i + 1);
  const hole = buf.ptr + HOLE * PAGE_SIZE;
  const t = p.clone().spawn('dontneed', p.sys.madvise(hole, PAGE_SIZE, MADV_DONTNEED), delay);
  const r = hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES);
  k.sched.join(t);
  expect(p.readInts(hole, 1)[0]).toBe(0);
  expect(k.check()).toEqual([]);
  expect(mod.check()).toEqual([]);
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, NPAGES)).toBe(0);
  return { word: p.readInts(buf.mirror + HOLE * PAGE_SIZE, 1)[0], migrated: r };
}

describe('finding K2: MIGRATE_TO_DEV maps into the mirror without a notifier sequence check', () => {
  const delays = Array.from({ length: 40 }, (_, i) => i * 3);

  it('v6.19: a MADV_DONTNEED during the migration leaves the device reading the old data', () => {
    const stale = delays.filter((d) => raceOnce([], d).word !== 0);
    expect(stale.length).toBeGreaterThan(0);
    // The old word, not garbage: the device page the migration mapped.
    expect(raceOnce([], stale[0]).word).toBe(HOLE * (PAGE_SIZE / 4) + 1);
  });

  it('fix K2: the mirror is not updated when an invalidation moved the sequence; the device reads 0', () => {
    for (const d of delays) expect(raceOnce(['K2'], d).word).toBe(0);
  });
});
