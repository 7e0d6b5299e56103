import { describe, expect, it } from 'vitest';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  migratePfn,
  migratePfnToPage,
  mpfnClear,
  mpfnFlags,
  mpfnSet,
} from './types.js';

describe('migrate pfn slots (include/linux/migrate.h)', () => {
  it('keep pfn and flags apart for pfns whose slot exceeds 32 bits (pfn << MIGRATE_PFN_SHIFT)', () => {
    // 1 TiB of RAM and device memory above it: pfns past 2^26 make slots past 2^32.
    for (const pfn of [0, 1, 0x3ffffff, 0x4000000, 0x4000001, 0x7fffffff, 0xffffffff, 2 ** 40 + 5]) {
      const v = migratePfn(pfn) + MIGRATE_PFN_MIGRATE + MIGRATE_PFN_WRITE;
      expect(mpfnFlags(v)).toBe(MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE);
      expect(migratePfnToPage(v)).toBe(pfn);
      const c = mpfnClear(v, MIGRATE_PFN_MIGRATE);
      expect(mpfnFlags(c)).toBe(MIGRATE_PFN_VALID | MIGRATE_PFN_WRITE);
      expect(migratePfnToPage(c)).toBe(pfn);
      const s = mpfnSet(c, MIGRATE_PFN_COMPOUND);
      expect(mpfnFlags(s)).toBe(MIGRATE_PFN_VALID | MIGRATE_PFN_WRITE | MIGRATE_PFN_COMPOUND);
      expect(migratePfnToPage(s)).toBe(pfn);
    }
  });

  it('a slot without MIGRATE_PFN_VALID has no page', () => {
    expect(migratePfnToPage(MIGRATE_PFN_MIGRATE)).toBe(-1);
    expect(migratePfnToPage(mpfnClear(migratePfn(0x5000000), MIGRATE_PFN_VALID))).toBe(-1);
  });
});
