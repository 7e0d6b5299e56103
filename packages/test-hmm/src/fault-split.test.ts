import { PAGE_SIZE, PM_PRESENT, PMD_SIZE, pagemapEntry } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { hmmDmirrorCmd, intsEqual, thpMachine } from './test-util.js';
import { HMM_DMIRROR_FLAG_FAIL_ALLOC, HMM_DMIRROR_FLAGS, HMM_DMIRROR_MIGRATE_TO_DEV } from './uapi.js';

const NPAGES = PMD_SIZE / PAGE_SIZE;
const fill = (i: number) => i ^ 0x5a5a;

/** A device THP, FAIL_ALLOC armed, then one CPU read of its first page: how many pages are back. */
function faultWithSmallDestinations(fixes: string[]) {
  const m = thpMachine(fixes, 0, false, fill);
  const { k, p, fd, buf } = m;
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
  expect(buf.cpages).toBe(NPAGES);
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_FLAGS, buf, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
  const splits = k.core.vmstat.thp_split_pmd;
  expect(p.readInts(buf.ptr, 1)[0]).toBe(fill(0));
  let present = 0;
  for (let i = 0; i < NPAGES; i++)
    if (pagemapEntry(k.core, p.mm, buf.ptr + i * PAGE_SIZE) & PM_PRESENT) present++;
  return { ...m, present, pmdSplits: k.core.vmstat.thp_split_pmd - splits };
}

describe("finding K18: migrate_vma_split_unmapped_folio() and the fault handler's reference", () => {
  it('v6.19: a CPU fault with small destinations cannot split the fault folio: the PMD is split and one page comes back', () => {
    const { k, p, buf, present, pmdSplits } = faultWithSmallDestinations([]);
    // The first fault's split failed (-EAGAIN) after split_huge_pmd_address() split the PMD; the
    // unit stayed on the device, and the retried fault came through a PTE and moved one page.
    expect(present).toBe(1);
    expect(pmdSplits).toBe(1);
    expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, fill)).toBe(true);
    expect(k.check()).toEqual([]);
  });

  it('fixed: the fault handler reference is allowed for, and one fault moves all 512 pages', () => {
    const { k, p, buf, present } = faultWithSmallDestinations(['K18']);
    expect(present).toBe(NPAGES);
    expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, fill)).toBe(true);
    expect(k.check()).toEqual([]);
  });

  it('fixed, with the THP shared with a fork child: the other PMD migration entry is split too, and both read back', () => {
    const m = thpMachine(['K18'], 0, false, fill);
    const { k, p, fd, buf } = m;
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
    const child = k.task(p.fork())!;
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_FLAGS, buf, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
    expect(p.readInts(buf.ptr, 1)[0]).toBe(fill(0));
    expect(k.check()).toEqual([]);
    expect(intsEqual(child, buf.ptr, PMD_SIZE / 4, fill)).toBe(true);
    expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, fill)).toBe(true);
    expect(k.check()).toEqual([]);
  });
});
