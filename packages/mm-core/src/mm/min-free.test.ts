import { describe, expect, it } from 'vitest';
import { EINVAL } from '../constants.js';
import { minFreeKbytesFor } from '../core.js';
import { allocPages } from '../folio.js';
import { ALLOC_NO_WATERMARKS } from '../phys/buddy.js';
import { machine, readProcFile, writeProcFile } from '../testing/helpers.js';

const PATH = '/proc/sys/vm/min_free_kbytes';

describe('vm.min_free_kbytes (/proc/sys/vm/min_free_kbytes, min_free_kbytes_sysctl_handler())', () => {
  it('reads the boot value; the min watermark is min_free_kbytes >> (PAGE_SHIFT - 10) pages', () => {
    const kb = minFreeKbytesFor(24 << 20);
    expect(kb).toBe(627);
    const k = machine('madvise', { minFreeKbytes: kb });
    const p = k.task(1)!;
    expect(readProcFile(p, PATH)).toBe('627\n');
    // setup_per_zone_wmarks() shifts: 627 KiB is 156 pages, not 157.
    expect(k.core.zone.minFree).toBe(156);
  });

  it('a write takes effect at once: the next allocation stops at the new watermark', () => {
    const k = machine();
    const p = k.task(1)!;
    expect(readProcFile(p, PATH)).toBe('0\n');
    const z = k.core.zone;
    const held: number[] = [];
    while (z.nrFree > 1000) held.push(z.alloc(0, ALLOC_NO_WATERMARKS));
    expect(allocPages(k.core, 0)).toBeGreaterThanOrEqual(0);
    expect(writeProcFile(p, PATH, '4000\n')).toBe(5);
    expect(readProcFile(p, PATH)).toBe('4000\n');
    expect(z.minFree).toBe(1000);
    expect(allocPages(k.core, 0)).toBe(-1);
    expect(writeProcFile(p, PATH, '0')).toBe(1);
    expect(allocPages(k.core, 0)).toBeGreaterThanOrEqual(0);
  });

  it('proc_dointvec_minmax() with extra1 = SYSCTL_ZERO: a negative, non-numeric or out-of-int value is -EINVAL and changes nothing', () => {
    const k = machine('madvise', { minFreeKbytes: 1024 });
    const p = k.task(1)!;
    for (const bad of ['-1', 'lots', '2147483648', '12 34'])
      expect([bad, writeProcFile(p, PATH, bad)]).toEqual([bad, -EINVAL]);
    expect(readProcFile(p, PATH)).toBe('1024\n');
    expect(k.core.zone.minFree).toBe(256);
    expect(writeProcFile(p, PATH, '2147483647')).toBe(10);
    expect(k.core.zone.minFree).toBe(536870911);
  });
});
