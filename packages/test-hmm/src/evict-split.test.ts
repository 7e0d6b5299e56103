import { KernelBug, PAGE_SIZE, PM_PRESENT, PMD_SIZE, pagemapEntry } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { hmmDmirrorCmd, intsEqual, thpMachine } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_RELEASE } from './uapi.js';

const NPAGES = PMD_SIZE / PAGE_SIZE;
const fill = (i: number) => (i * 3) ^ 0x1234;

/** A device THP of private device `minor` and no order-9 system folio to evict it into. */
function thpOnDevice(fixes: string[], minor: number) {
  const m = thpMachine(fixes, minor, false, fill);
  m.k.checkInvariants = false;
  expect(hmmDmirrorCmd(m.p, m.fd, HMM_DMIRROR_MIGRATE_TO_DEV, m.buf, NPAGES)).toBe(0);
  expect(m.buf.cpages).toBe(NPAGES);
  m.k.core.zone.failHook = (order) => order === 9;
  return m;
}

describe('finding K19: dmirror_device_evict_chunk() without a system folio of the device folio order', () => {
  it('v6.19: HMM_DMIRROR_RELEASE locks the failed folio_alloc() (NULL dereference)', () => {
    const { p, fd, buf } = thpOnDevice([], 0);
    let err: unknown;
    try {
      hmmDmirrorCmd(p, fd, HMM_DMIRROR_RELEASE, buf, 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelBug);
    expect((err as Error).message).toMatch(
      /NULL pointer dereference: folio_alloc\(\) failed.*dmirror_device_evict_chunk/,
    );
  });

  it('fixed: the THP is evicted into 512 small pages, every one mapped and intact', () => {
    const { k, p, fd, buf } = thpOnDevice(['K19'], 0);
    const splits = k.core.vmstat.thp_split_pmd;
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_RELEASE, buf, 1)).toBe(0);
    k.core.zone.failHook = undefined;
    // The device PMD was split (its migration entry, through the rmap) before the folio.
    expect(k.core.vmstat.thp_split_pmd).toBe(splits + 1);
    for (let i = 0; i < NPAGES; i++)
      expect(pagemapEntry(k.core, p.mm, buf.ptr + i * PAGE_SIZE) & PM_PRESENT).toBeTruthy();
    expect(k.check()).toEqual([]);
    expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, fill)).toBe(true);
    expect(k.check()).toEqual([]);
  });
});
