import { describe, expect, it } from 'vitest';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_NX_HI,
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_SPECIAL,
  _PAGE_SWP_SOFT_DIRTY,
  _PAGE_USER,
  entryHuge,
  entryKind,
  entryNone,
  entryPfn,
  entryPresent,
  entryWrite,
  isDevicePrivateType,
  isMigrationType,
  isSoftleaf,
  mkHi,
  mkLo,
  mkPmdLo,
  mkPteLo,
  mkSwpLo,
  SWP_DEVICE_EXCLUSIVE,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  SWP_HWPOISON,
  SWP_MIG_DIRTY,
  SWP_MIG_YOUNG,
  SWP_MIGRATION_READ,
  SWP_MIGRATION_READ_EXCLUSIVE,
  SWP_MIGRATION_WRITE,
  SWP_PTE_MARKER,
  swpType,
  swpWritable,
  wrprotectLo,
} from './entry.js';

describe('page-table entry encodings (arch/x86, include/linux/swapops.h)', () => {
  it('keeps the kernel swap-type numbers', () => {
    expect([SWP_HWPOISON, SWP_MIGRATION_READ, SWP_MIGRATION_READ_EXCLUSIVE, SWP_MIGRATION_WRITE]).toEqual([
      24, 25, 26, 27,
    ]);
    expect([SWP_DEVICE_WRITE, SWP_DEVICE_READ, SWP_DEVICE_EXCLUSIVE, SWP_PTE_MARKER]).toEqual([
      28, 29, 30, 31,
    ]);
  });

  it('round-trips pfns across the lo/hi split (40-bit pfn field)', () => {
    for (const pfn of [0, 1, 0xfffff, 0x100000, 0x40000, 0x12345678, 2 ** 40 - 1]) {
      const lo = mkLo(pfn, _PAGE_PRESENT);
      const hi = mkHi(pfn);
      expect(entryPfn(lo, hi)).toBe(pfn);
      expect(lo >>> 0).toBe(lo);
      const nx = mkHi(pfn, true);
      expect(nx & _PAGE_NX_HI).toBeTruthy();
      expect(entryPfn(lo, nx)).toBe(pfn);
    }
  });

  it('builds present PTEs and PMDs with the x86 bits', () => {
    const lo = mkPteLo(0x12345, true, true, true);
    expect(lo & 0xfff).toBe(_PAGE_PRESENT | _PAGE_USER | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED);
    expect(entryPresent(lo)).toBe(true);
    expect(entryWrite(lo)).toBe(true);
    expect(entryHuge(lo)).toBe(false);
    expect(entryWrite(wrprotectLo(lo))).toBe(false);
    const pmd = mkPmdLo(0x40200, false, false, true);
    expect(pmd & _PAGE_PSE).toBeTruthy();
    expect(entryHuge(pmd)).toBe(true);
    expect(entryWrite(pmd)).toBe(false);
  });

  it('PROT_NONE entries are present for the kernel but not for the CPU', () => {
    const lo = mkPteLo(0x1234, false, false, false, true);
    expect(lo & _PAGE_PRESENT).toBe(0);
    expect(lo & _PAGE_PROTNONE).toBeTruthy();
    expect(entryPresent(lo)).toBe(true);
    expect(isSoftleaf(lo, 0)).toBe(false);
    expect(entryKind(lo, 0, 'pte', -1, -1)).toBe('protnone');
  });

  it('encodes software leaf entries with type and pfn offset', () => {
    const lo = mkSwpLo(SWP_MIGRATION_WRITE, 0x54321, SWP_MIG_YOUNG | SWP_MIG_DIRTY | _PAGE_SWP_SOFT_DIRTY);
    const hi = mkHi(0x54321);
    expect(entryPresent(lo)).toBe(false);
    expect(entryNone(lo, hi)).toBe(false);
    expect(isSoftleaf(lo, hi)).toBe(true);
    expect(swpType(lo)).toBe(SWP_MIGRATION_WRITE);
    expect(entryPfn(lo, hi)).toBe(0x54321);
    expect(lo & SWP_MIG_YOUNG && lo & SWP_MIG_DIRTY && lo & _PAGE_SWP_SOFT_DIRTY).toBeTruthy();
    expect(isMigrationType(swpType(lo))).toBe(true);
    expect(swpWritable(lo)).toBe(true);
    expect(swpWritable(mkSwpLo(SWP_MIGRATION_READ_EXCLUSIVE, 1))).toBe(false);
    expect(isDevicePrivateType(SWP_DEVICE_READ)).toBe(true);
    expect(isDevicePrivateType(SWP_DEVICE_EXCLUSIVE)).toBe(false);
    expect(swpWritable(mkSwpLo(SWP_DEVICE_WRITE, 1))).toBe(true);
    // pfn 0 with a type is still not "none"
    expect(entryNone(mkSwpLo(SWP_DEVICE_READ, 0), 0)).toBe(false);
  });

  it('names every entry kind', () => {
    const zero = 0x40001;
    const hz = 0x40200;
    const kind = (lo: number, level: 'pte' | 'pmd' = 'pte', pfn = 5) =>
      entryKind(lo, mkHi(pfn), level, zero, hz);
    expect(entryKind(0, 0, 'pte', zero, hz)).toBe('none');
    expect(kind(mkPteLo(5, true, false, false))).toBe('present');
    expect(kind(mkLo(zero, _PAGE_PRESENT | _PAGE_SPECIAL), 'pte', zero)).toBe('zero');
    expect(kind(mkPmdLo(hz, false, false, true), 'pmd', hz)).toBe('huge-zero');
    expect(kind(mkPmdLo(5, true, true, true), 'pmd')).toBe('huge');
    expect(kind(mkLo(5, _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED), 'pmd')).toBe('table');
    const names: [number, string][] = [
      [SWP_MIGRATION_READ, 'migration-read'],
      [SWP_MIGRATION_READ_EXCLUSIVE, 'migration-read-exclusive'],
      [SWP_MIGRATION_WRITE, 'migration-write'],
      [SWP_DEVICE_WRITE, 'device-private-write'],
      [SWP_DEVICE_READ, 'device-private-read'],
      [SWP_DEVICE_EXCLUSIVE, 'device-exclusive'],
      [SWP_HWPOISON, 'hwpoison'],
      [SWP_PTE_MARKER, 'marker'],
      [3, 'swap'],
    ];
    for (const [t, n] of names) expect(kind(mkSwpLo(t, 5))).toBe(n);
    expect(kind(mkSwpLo(SWP_DEVICE_READ, 5), 'pmd')).toBe('device-private-read');
  });
});
