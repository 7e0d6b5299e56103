import { describe, expect, it } from 'vitest';
import { runBinary } from '../testing/run.js';

/** The 16 results of madv_populate.c on a kernel without soft-dirty (v6.19), in order. */
const CASES = [
  'MADV_POPULATE_READ with PROT_READ',
  'MADV_POPULATE_WRITE with PROT_READ',
  'MADV_POPULATE_READ with PROT_WRITE',
  'MADV_POPULATE_WRITE with PROT_WRITE',
  'MADV_POPULATE_READ with holes in the middle',
  'MADV_POPULATE_WRITE with holes in the middle',
  'MADV_POPULATE_READ with holes at the end',
  'MADV_POPULATE_WRITE with holes at the end',
  'MADV_POPULATE_READ with holes at the beginning',
  'MADV_POPULATE_WRITE with holes at the beginning',
  'range initially not populated',
  'MADV_POPULATE_READ',
  'range is populated',
  'range initially not populated',
  'MADV_POPULATE_WRITE',
  'range is populated',
];

describe('madv_populate (tools/testing/selftests/mm/madv_populate.c)', () => {
  it('plans 16 cases: the model has no VM_SOFTDIRTY, so softdirty_supported() leaves out test_softdirty()', () => {
    const r = runBinary('madv_populate');
    expect(r.ktap.version).toBe('TAP version 13');
    expect(r.ktap.plan).toBe(CASES.length);
  });

  it('runs as on v6.19 without soft-dirty: 16 passes (sense_support() finds MADV_POPULATE_READ)', () => {
    const r = runBinary('madv_populate');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.ktap.results.map((x) => [x.ok, x.number, x.directive, x.description])).toEqual(
      CASES.map((d, i) => [true, i + 1, null, d]),
    );
    expect(r.ktap.diagnostics.filter((d) => d.startsWith('[RUN] '))).toEqual([
      '[RUN] test_prot_read',
      '[RUN] test_prot_write',
      '[RUN] test_holes',
      '[RUN] test_populate_read',
      '[RUN] test_populate_write',
    ]);
    expect(r.ktap.totals).toEqual({ pass: 16, fail: 0, xfail: 0, xpass: 0, skip: 0, error: 0 });
  });
});
