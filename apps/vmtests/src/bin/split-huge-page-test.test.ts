import { describe, expect, it } from 'vitest';
import { runBinary } from '../testing/run.js';

/** The 19 results split_huge_page_test.c (v6.19) passes on the model, in order. */
const PASSES = [
  'Split zero filled huge pages successful',
  ...[0, 2, 3, 4, 5, 6, 7, 8].map((o) => `Split huge pages to order ${o} successful`),
  'Split PTE-mapped huge pages successful',
  ...[0, 1, 2, 3, 4, 5, 6, 7, 8].map((o) => `File-backed THP split to order ${o} test done`),
];

/** 9 pagecache cases (orders 8..0) and 34 in-folio offset cases, each skipped by the C program. */
const PAGECACHE_CASES = 9 + 8 * 4 + 2;

describe('split_huge_page_test (tools/testing/selftests/mm/split_huge_page_test.c)', () => {
  it('passes every anonymous case and the file-backed ones; the pagecache cases take the C skip (no large pagecache folios)', () => {
    // About 200,000 syscalls (4 MiB files written 1 KiB at a time): check every 256th, and at the end.
    const r = runBinary('split_huge_page_test', [], { checkInterval: 256 });
    expect(r.stderr).toBe('');
    expect(r.ktap.plan).toBe(62);
    const results = r.ktap.results.map((x) => [x.number, x.ok, x.directive, x.description]);
    expect(results.slice(0, PASSES.length)).toEqual(PASSES.map((d, i) => [i + 1, true, null, d]));
    expect(results.slice(PASSES.length)).toEqual(
      Array.from({ length: PAGECACHE_CASES }, (_, i) => [
        PASSES.length + i + 1,
        true,
        'SKIP',
        'Pagecache folio split skipped',
      ]),
    );
    const noLarge = r.ktap.diagnostics.filter((d) => d.startsWith('No large pagecache folio generated'));
    expect(noLarge).toHaveLength(PAGECACHE_CASES);
    expect(r.ktap.totals).toEqual({ pass: 19, fail: 0, xfail: 0, xpass: 0, skip: 43, error: 0 });
    expect(r.status).toBe(0);
  }, 300_000);
});
