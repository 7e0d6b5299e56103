import {
  EINVAL,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PM_PRESENT,
  PM_SWAP,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  pagemapEntry,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { fillPattern, machine, pmdKind, thpWindow as window2m } from './testing/harness.js';
import { migrateVmaSetup } from './testing/sync.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_SYSTEM,
  migratePfnToPage,
  mpfnFlags,
  newMigrateVma,
} from './types.js';

function thpWindow(p: Process, write = true): number {
  const w = window2m(p);
  if (write) fillPattern(p, w, PMD_SIZE);
  return w;
}

function checkPattern(p: Process, w: number, n = PMD_SIZE / 4): void {
  const back = p.readInts(w, n);
  let bad = -1;
  for (let i = 0; i < n; i++)
    if (back[i] !== i) {
      bad = i;
      break;
    }
  expect(bad).toBe(-1);
}

describe('migrate_vma with THP', () => {
  it('moves a PMD-mapped THP to the device whole and faults it back at PMD level', () => {
    const { k, dev, p, check } = machine();
    const w = thpWindow(p);
    expect(pmdKind(k, p, w)).toBe('huge');
    const freeBefore = k.core.zone.nrFree;
    const { r, mig } = dev.toDevice(p.mm.vmaLookup(w)!, w, w + PMD_SIZE);
    expect(r).toBe(0);
    expect(mig.cpages).toBe(1);
    expect(mpfnFlags(mig.src[0])).toBe(
      MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND | MIGRATE_PFN_WRITE,
    );
    expect(mig.src[1]).toBe(0);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(k.core.zone.nrFree).toBe(freeBefore + 512);
    const e = pagemapEntry(k.core, p.mm, w + 4096);
    expect(e & PM_SWAP).toBe(PM_SWAP);
    expect(e & PM_PRESENT).toBe(0n);
    expect(check()).toEqual([]);
    checkPattern(p, w);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(dev.frees).toBe(1);
    expect(check()).toEqual([]);
  });

  it('splits the source THP when the device gives small pages (split during migration)', () => {
    const { k, dev, p, check } = machine();
    const w = thpWindow(p);
    dev.failLarge = 1;
    const { mig } = dev.toDevice(p.mm.vmaLookup(w)!, w, w + PMD_SIZE);
    expect(mig.cpages).toBe(1);
    let migrated = 0;
    for (let i = 0; i < 512; i++) if (mpfnFlags(mig.src[i]) & MIGRATE_PFN_MIGRATE) migrated++;
    expect(migrated).toBe(512);
    expect(pmdKind(k, p, w)).toBe('table');
    expect(check()).toEqual([]);
    expect(p.readI32(w + 8192)).toBe(2048);
    checkPattern(p, w);
    expect(check()).toEqual([]);
  });

  it('fills an empty aligned PMD with one compound hole and a device PMD', () => {
    const { k, dev, p, check } = machine();
    const w = thpWindow(p, false);
    const { mig } = dev.toDevice(p.mm.vmaLookup(w)!, w, w + PMD_SIZE);
    expect(mig.cpages).toBe(1);
    expect(mig.src[0]).toBe(MIGRATE_PFN_MIGRATE | MIGRATE_PFN_COMPOUND);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(p.readI32(w + 100)).toBe(0);
    expect(check()).toEqual([]);
  });

  it('partial munmap of a device THP leaves a PTE-mapped device folio that faults back per page', () => {
    const { k, dev, p, check } = machine();
    const w = thpWindow(p);
    dev.toDevice(p.mm.vmaLookup(w)!, w, w + PMD_SIZE);
    expect(p.munmap(w + PMD_SIZE / 4, PMD_SIZE / 2)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('table');
    expect(check()).toEqual([]);
    const back = p.readInts(w, PMD_SIZE / 16);
    expect(back[77]).toBe(77);
    checkPattern(p, w + (3 * PMD_SIZE) / 4, 0);
    const tail = p.readInts(w + (3 * PMD_SIZE) / 4, PMD_SIZE / 16);
    expect(tail[5]).toBe((3 * PMD_SIZE) / 16 + 5);
    expect(check()).toEqual([]);
    p.exit(0);
    expect(check()).toEqual([]);
  });

  it('fork shares a device THP read-only; a CPU access in the child migrates it back for both', () => {
    const { k, dev, p, check } = machine();
    const w = thpWindow(p);
    dev.toDevice(p.mm.vmaLookup(w)!, w, w + PMD_SIZE);
    const child = k.task(p.fork())!;
    expect(pmdKind(k, p, w)).toBe('device-private-read');
    expect(pmdKind(k, child, w)).toBe('device-private-read');
    expect(child.readI32(w + 40)).toBe(10);
    expect(pmdKind(k, p, w)).toBe('huge');
    child.writeI32(w + 40, -5);
    expect(p.readI32(w + 40)).toBe(10);
    expect(child.readI32(w + 40)).toBe(-5);
    child.exit(0);
    expect(check()).toEqual([]);
  });

  it('mprotect downgrades a writable device PMD and a later write fault gets it back', () => {
    const { k, dev, p, check } = machine();
    const w = thpWindow(p);
    dev.toDevice(p.mm.vmaLookup(w)!, w, w + PMD_SIZE);
    expect(p.mprotect(w, PMD_SIZE, PROT_READ)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('device-private-read');
    expect(p.mprotect(w, PMD_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('device-private-read');
    p.writeI32(w, 42);
    expect(p.readI32(w)).toBe(42);
    expect(p.readI32(w + 4)).toBe(1);
    expect(check()).toEqual([]);
  });

  it('mremap moves a device PMD verbatim', () => {
    const { k, dev, p, check } = machine();
    const w = thpWindow(p);
    dev.toDevice(p.mm.vmaLookup(w)!, w, w + PMD_SIZE);
    const dest = p.mmap(0, 4 * PMD_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    const d = Math.ceil(dest / PMD_SIZE) * PMD_SIZE;
    const r = p.mremap(w, PMD_SIZE, PMD_SIZE, 3, d);
    expect(r).toBe(d);
    expect(pmdKind(k, p, d)).toBe('device-private-write');
    checkPattern(p, d);
    expect(check()).toEqual([]);
  });

  it('rejects bad arguments with -EINVAL', () => {
    const { k, p } = machine();
    const w = thpWindow(p);
    const vma = p.mm.vmaLookup(w)!;
    const bad = [
      newMigrateVma({ vma: null, start: w, end: w + 4096 }),
      newMigrateVma({ vma, start: w, end: w }),
      newMigrateVma({ vma, start: vma.end, end: vma.end + 4096 }),
      newMigrateVma({ vma, start: w, end: vma.end + 4096 }),
      newMigrateVma({ vma, start: w, end: w + 4096, faultPage: w / 4096 }),
    ];
    for (const m of bad) expect(migrateVmaSetup(k.core, m)).toBe(-EINVAL);
    const ok = newMigrateVma({ vma, start: w, end: w + 4096, flags: MIGRATE_VMA_SELECT_SYSTEM });
    expect(migrateVmaSetup(k.core, ok)).toBe(0);
    expect(migratePfnToPage(ok.src[0])).toBeGreaterThan(0);
  });
});
