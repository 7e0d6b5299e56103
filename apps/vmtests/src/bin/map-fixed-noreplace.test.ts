import { describe, expect, it } from 'vitest';
import { runBinary } from '../testing/run.js';

const PAGE = 4096;

describe('map_fixed_noreplace (tools/testing/selftests/mm/map_fixed_noreplace.c)', () => {
  it('passes all 9 cases: MAP_FIXED_NOREPLACE maps into free space and fails with EEXIST on any overlap', () => {
    const r = runBinary('map_fixed_noreplace');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const k = r.ktap;
    expect(k.version).toBe('TAP version 13');
    expect(k.plan).toBe(9);
    expect(k.results.map((x) => [x.ok, x.number, x.directive, x.description])).toEqual(
      [
        'mmap() 5*PAGE_SIZE at base',
        'mmap() 3*PAGE_SIZE at base+PAGE_SIZE',
        'Second mmap() 5*PAGE_SIZE at base',
        'mmap() 2*PAGE_SIZE at base+PAGE_SIZE',
        'mmap() 2*PAGE_SIZE  at base+(3*PAGE_SIZE)',
        'mmap() 2*PAGE_SIZE bytes at base',
        'mmap() PAGE_SIZE at base',
        'mmap() PAGE_SIZE at base+(4*PAGE_SIZE)',
        'Base Address unmap() successful',
      ].map((d, i) => [true, i + 1, null, d]),
    );
    expect(k.totals).toEqual({ pass: 9, fail: 0, xfail: 0, xpass: 0, skip: 0, error: 0 });

    // Every mmap() is reported with its range, the pointer it returned and %m: errno is never
    // reset, so after the first EEXIST every later line says "File exists", successes included.
    const lines = k.diagnostics.filter((d) => d.startsWith('mmap() @ '));
    const parsed = lines.map((l) => {
      const m = /^mmap\(\) @ 0x([0-9a-f]+)-0x([0-9a-f]+) p=(\S+) result=(.+)$/.exec(l);
      if (!m) throw new Error(`unexpected line ${l}`);
      return { from: Number.parseInt(m[1], 16), to: Number.parseInt(m[2], 16), p: m[3], result: m[4] };
    });
    const base = parsed[0].from;
    const FAILED = '0xffffffffffffffff';
    const at = (n: number) => `0x${(base + n * PAGE).toString(16)}`;
    expect(parsed.map((x) => [(x.from - base) / PAGE, (x.to - base) / PAGE, x.p, x.result])).toEqual([
      [0, 5, at(0), 'Success'],
      [1, 4, at(1), 'Success'],
      [0, 5, FAILED, 'File exists'],
      [2, 3, FAILED, 'File exists'],
      [3, 5, FAILED, 'File exists'],
      [0, 2, FAILED, 'File exists'],
      [0, 1, at(0), 'File exists'],
      [4, 5, at(4), 'File exists'],
    ]);
  });
});
