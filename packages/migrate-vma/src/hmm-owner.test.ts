/**
 * hmm_range_fault() (mm/hmm.c) over device-private memory of another device, with and without a
 * fault requested, at PTE level (hmm_vma_handle_pte()) and PMD level
 * (hmm_vma_handle_absent_pmd()). The two levels differ in Linux v6.19: with no fault requested
 * another owner's device-private PTE is reported as 0 (cpu_flags 0: "not valid"), another
 * owner's device-private PMD as HMM_PFN_ERROR for every page.
 */
import {
  HMM_PFN_ERROR,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  hmmPfnFlags,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
  MmuIntervalNotifier,
  PAGE_SIZE,
  PMD_SIZE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import {
  entryPfnAt,
  fillPattern,
  type Machine,
  machine,
  pmdKind,
  pteKind,
  thpWindow,
  vmaAt,
} from './testing/harness.js';
import { MIGRATE_VMA_SELECT_SYSTEM } from './types.js';

/**
 * hmm_range_fault() over [start, start + n pages) for a device `owner`, every entry's input
 * `req` (0: a snapshot, HMM_PFN_REQ_FAULT: fault in). Returns [ret, the hmm_pfns].
 */
function hmmFault(mc: Machine, owner: unknown, start: number, n: number, req = 0): [number, number[]] {
  const { k, p } = mc;
  const range: HmmRange = {
    notifier: new MmuIntervalNotifier(p.mm, start, start + n * PAGE_SIZE, {
      *invalidate() {
        return true;
      },
    }),
    notifierSeq: 0,
    start,
    end: start + n * PAGE_SIZE,
    hmmPfns: new Float64Array(n).fill(req),
    defaultFlags: 0,
    pfnFlagsMask: ~0,
    devPrivateOwner: owner,
  };
  const r = k.core.sched.runSync(hmmRangeFault(k.core, range), 'hmm_range_fault');
  return [r, [...range.hmmPfns]];
}

/** 2 MiB of the int pattern migrated to `dev` of mc: whole (a device PMD) or as 512 device PTEs. */
function onDevice(mc: Machine, compound: boolean): number {
  const { k, p, dev } = mc;
  const w = thpWindow(p);
  fillPattern(p, w, PMD_SIZE);
  const { r, mig } = compound
    ? dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE)
    : dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
  expect(r).toBe(0);
  expect(mig.cpages).toBe(compound ? 1 : HPAGE_PMD_NR);
  if (compound) expect(pmdKind(k, p, w)).toBe('device-private-write');
  else expect(pteKind(k, p, w + 7 * PAGE_SIZE)).toBe('device-private-write');
  return w;
}

describe('hmm_range_fault() and another device’s private memory', () => {
  it('PTE level, no fault requested: every entry is 0 (hmm_vma_handle_pte(): no fault required -> out with 0)', () => {
    const mc = machine();
    const { k, p, dev, dev2, check } = mc;
    const w = onDevice(mc, false);
    const [r, other] = hmmFault(mc, dev2, w, HPAGE_PMD_NR);
    expect(r).toBe(0);
    expect(other.every((v) => v === 0)).toBe(true);
    // No owner at all (a driver without device memory) sees the same.
    expect(hmmFault(mc, null, w, HPAGE_PMD_NR)[1].every((v) => v === 0)).toBe(true);
    // The owner sees its pages: pfn | VALID | WRITE, order 0.
    const [r2, own] = hmmFault(mc, dev, w, HPAGE_PMD_NR);
    expect(r2).toBe(0);
    expect(hmmPfnToPfn(own[7])).toBe(entryPfnAt(k, p, w + 7 * PAGE_SIZE));
    expect(hmmPfnFlags(own[7])).toBe(HMM_PFN_VALID | HMM_PFN_WRITE);
    // Nothing moved.
    expect(pteKind(k, p, w + 7 * PAGE_SIZE)).toBe('device-private-write');
    expect(check()).toEqual([]);
  });

  it('PTE level, fault requested: the page is migrated back to RAM (do_swap_page() -> migrate_to_ram) and reported', () => {
    const mc = machine();
    const { k, p, dev2, check } = mc;
    const w = onDevice(mc, false);
    const a = w + 3 * PAGE_SIZE;
    const [r, got] = hmmFault(mc, dev2, a, 1, HMM_PFN_REQ_FAULT);
    expect(r).toBe(0);
    expect(pteKind(k, p, a)).toBe('present');
    expect(hmmPfnToPfn(got[0])).toBe(entryPfnAt(k, p, a));
    expect(hmmPfnFlags(got[0]) & HMM_PFN_VALID).toBe(HMM_PFN_VALID);
    expect(pteKind(k, p, a + PAGE_SIZE)).toBe('device-private-write');
    expect(p.readI32(a + 4)).toBe(3 * 1024 + 1);
    expect(check()).toEqual([]);
  });

  it('PMD level, no fault requested: every page is HMM_PFN_ERROR (hmm_vma_handle_absent_pmd()); the owner gets PMD-order entries', () => {
    const mc = machine();
    const { k, p, dev, dev2, check } = mc;
    const w = onDevice(mc, true);
    const head = entryPfnAt(k, p, w, true);
    const [r, other] = hmmFault(mc, dev2, w, HPAGE_PMD_NR);
    expect(r).toBe(0);
    expect(other.every((v) => v === HMM_PFN_ERROR)).toBe(true);
    expect(hmmFault(mc, null, w, HPAGE_PMD_NR)[1].every((v) => v === HMM_PFN_ERROR)).toBe(true);
    // Part of the PMD only: the same, for the pages asked.
    expect(hmmFault(mc, dev2, w + 5 * PAGE_SIZE, 3)[1]).toEqual([
      HMM_PFN_ERROR,
      HMM_PFN_ERROR,
      HMM_PFN_ERROR,
    ]);
    const [, own] = hmmFault(mc, dev, w, HPAGE_PMD_NR);
    expect(hmmPfnToPfn(own[9])).toBe(head + 9);
    expect(hmmPfnToMapOrder(own[9])).toBe(HPAGE_PMD_ORDER);
    expect(hmmPfnFlags(own[9]) & (HMM_PFN_VALID | HMM_PFN_WRITE)).toBe(HMM_PFN_VALID | HMM_PFN_WRITE);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(check()).toEqual([]);
  });

  it('PMD level, fault requested: the device THP is faulted back (hmm_vma_fault()) and reported as a PMD mapping', () => {
    const mc = machine();
    const { k, p, dev2, check } = mc;
    const w = onDevice(mc, true);
    const [r, got] = hmmFault(mc, dev2, w, HPAGE_PMD_NR, HMM_PFN_REQ_FAULT);
    expect(r).toBe(0);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(got.every((v) => (hmmPfnFlags(v) & HMM_PFN_VALID) !== 0)).toBe(true);
    expect(hmmPfnToMapOrder(got[0])).toBe(HPAGE_PMD_ORDER);
    expect(p.readI32(w + PMD_SIZE - 4)).toBe(PMD_SIZE / 4 - 1);
    expect(check()).toEqual([]);
  });
});
