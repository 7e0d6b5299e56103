/**
 * The madvise family and collapse seen through device-private entries (mm-core's madvise.ts,
 * madvise-lazy.ts, madvise-populate.ts, collapse.ts, khugepaged.ts; mm/madvise.c and
 * mm/khugepaged.c v6.19).
 */
import {
  EINVAL,
  HPAGE_PMD_NR,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_WIPEONFORK,
  PAGE_SIZE,
  PMD_SIZE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import {
  badPattern,
  fillPattern,
  type Machine,
  machine,
  pmdKind,
  pteKind,
  thpWindow,
  vmaAt,
} from './testing/harness.js';
import { MIGRATE_VMA_SELECT_SYSTEM } from './types.js';

const P = PAGE_SIZE;

/** A THP window whose pages [from, to) were migrated to the device as small pages; the rest stays in RAM. */
function partlyOnDevice(mc: Machine, from = 0, to = HPAGE_PMD_NR): number {
  const { k, dev, p, check } = mc;
  const w = thpWindow(p);
  fillPattern(p, w, PMD_SIZE);
  expect(p.mprotect(w, P, 1)).toBe(0);
  expect(p.mprotect(w, P, 3)).toBe(0);
  expect(pmdKind(k, p, w)).toBe('table');
  const { mig } = dev.toDevice(vmaAt(p, w), w + from * P, w + to * P, MIGRATE_VMA_SELECT_SYSTEM);
  expect(mig.cpages).toBe(to - from);
  expect(pteKind(k, p, w + from * P)).toBe('device-private-write');
  expect(check()).toEqual([]);
  return w;
}

/** A whole THP migrated to the device as one device-private PMD. */
function devicePmd(mc: Machine): number {
  const { k, dev, p } = mc;
  const w = thpWindow(p);
  fillPattern(p, w, PMD_SIZE);
  expect(dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE).r).toBe(0);
  expect(pmdKind(k, p, w)).toBe('device-private-write');
  return w;
}

describe('MADV_COLD / MADV_PAGEOUT skip device-private entries (madvise_cold_or_pageout_pte_range())', () => {
  it('PTEs: nothing is faulted back or freed', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = partlyOnDevice(mc, 0, 16);
    const faults = k.core.vmstat.device_private_faults;
    expect(p.madvise(w, PMD_SIZE, MADV_COLD)).toBe(0);
    expect(p.madvise(w, PMD_SIZE, MADV_PAGEOUT)).toBe(0);
    expect(k.core.vmstat.device_private_faults).toBe(faults);
    expect(pteKind(k, p, w + 5 * P)).toBe('device-private-write');
    expect(dev.frees).toBe(0);
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });

  it('a device-private PMD, whole or in part', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const w = devicePmd(mc);
    expect(p.madvise(w, PMD_SIZE, MADV_PAGEOUT)).toBe(0);
    expect(p.madvise(w + P, 2 * P, MADV_COLD)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(check()).toEqual([]);
  });
});

describe('collapse never takes device-private entries (SCAN_PTE_NON_PRESENT / SCAN_NO_PTE_TABLE)', () => {
  it('MADV_COLLAPSE of a PMD with device-private PTEs is -EINVAL and changes nothing', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = partlyOnDevice(mc, 100, 104);
    expect(p.madvise(w, PMD_SIZE, MADV_COLLAPSE)).toBe(-EINVAL);
    expect(pmdKind(k, p, w)).toBe('table');
    expect(pteKind(k, p, w + 101 * P)).toBe('device-private-write');
    expect(dev.frees).toBe(0);
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });

  it('MADV_COLLAPSE of a device-private PMD is -EINVAL (not a PTE table, not a migration entry)', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const w = devicePmd(mc);
    expect(p.madvise(w, PMD_SIZE, MADV_COLLAPSE)).toBe(-EINVAL);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(check()).toEqual([]);
  });

  it('khugepaged leaves the PMD alone too', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const w = partlyOnDevice(mc, 0, 1);
    const r = k.khugepagedScan();
    expect(r.collapsed).toBe(0);
    expect(r.lastResult).toBe('SCAN_PTE_NON_PRESENT');
    expect(pteKind(k, p, w)).toBe('device-private-write');
    expect(check()).toEqual([]);
  });
});

describe('MADV_POPULATE_READ / WRITE fault device-private entries back (do_swap_page() -> migrate_to_ram())', () => {
  it('PTEs come back to system memory, present, with their data', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const w = partlyOnDevice(mc, 8, 12);
    expect(p.madvise(w, PMD_SIZE, MADV_POPULATE_READ)).toBe(0);
    expect(pteKind(k, p, w + 9 * P)).toBe('present');
    expect(p.madvise(w, PMD_SIZE, MADV_POPULATE_WRITE)).toBe(0);
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });

  it('a device-private PMD comes back whole', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const w = devicePmd(mc);
    expect(p.madvise(w, PMD_SIZE, MADV_POPULATE_WRITE)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });
});

describe('MADV_WIPEONFORK with device-private entries (dup_mmap() copies nothing)', () => {
  it('the child reads zeros and holds no device page; the parent keeps its device entries', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = devicePmd(mc);
    expect(p.madvise(w, PMD_SIZE, MADV_WIPEONFORK)).toBe(0);
    const c = k.task(p.fork())!;
    expect(pmdKind(k, c, w)).toBe('no-table');
    expect(c.readI32(w + 8)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(check()).toEqual([]);
    c.exit(0);
    expect(dev.frees).toBe(0);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
    expect(check()).toEqual([]);
  });
});
