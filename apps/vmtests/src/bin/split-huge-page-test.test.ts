import type { Kernel } from '@hmm-model/mm-core';
import { O_RDWR } from '@hmm-model/mm-core';
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

/** split_file_backed_thp() runs for orders 0..8: one 2 MiB file THP each. */
const FILE_THPS = 9;
/**
 * The anonymous THPs the program splits: 4 zero-filled ones, 4 per order of split_pmd_thp_to_order()
 * (orders 0 and 2..8), 4 PTE-mapped ones.
 */
const ANON_SPLITS = 4 + 4 * 8 + 4;

/** The vmstat counters the run leaves, read after it. */
interface Counters {
  thp_file_alloc: number;
  thp_file_mapped: number;
  thp_split_page: number;
  thp_split_page_failed: number;
  nr_shmem_hugepages: number;
}

function counters(k: Kernel, into: Counters[]): void {
  const v = k.core.vmstat;
  into.push({
    thp_file_alloc: v.thp_file_alloc,
    thp_file_mapped: v.thp_file_mapped,
    thp_split_page: v.thp_split_page,
    thp_split_page_failed: v.thp_split_page_failed,
    nr_shmem_hugepages: v.nr_shmem_hugepages,
  });
}

/** The test box's admin before the run: a huge=always tmpfs at /tmp/huge, and shmem_enabled. */
function hugeTmpfs(shmemEnabled: string): (k: Kernel) => void {
  return (k) => {
    const p = k.spawn();
    expect(p.mkdir('/tmp/huge')).toBe(0);
    expect(p.mount('tmpfs', '/tmp/huge', 'tmpfs', 0, 'huge=always')).toBe(0);
    const fd = p.open('/sys/kernel/mm/transparent_hugepage/shmem_enabled', O_RDWR);
    const b = new TextEncoder().encode(shmemEnabled);
    expect(p.pwrite(fd, b, b.length, 0)).toBe(b.length);
    p.close(fd);
    p.exit(0);
  };
}

function expectKtap(r: ReturnType<typeof runBinary>): void {
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
}

describe('split_huge_page_test (tools/testing/selftests/mm/split_huge_page_test.c)', () => {
  it('passes every anonymous case and the file-backed ones (a real 2 MiB tmpfs THP split each time); the pagecache cases take the C skip (no large pagecache folios)', () => {
    const seen: Counters[] = [];
    // About 200,000 syscalls (4 MiB files written 1 KiB at a time): check every 256th, and at the end.
    const r = runBinary('split_huge_page_test', [], {
      checkInterval: 256,
      inspect: (k) => counters(k, seen),
    });
    expectKtap(r);
    // split_file_backed_thp(): the 2 MiB write(2) to the huge=always tmpfs allocates a PMD THP
    // (shmem_write_begin()'s write_end covers the aligned chunk) and the debugfs path form splits
    // it (split_huge_pages_in_file()); the pagecache files in /tmp get small folios.
    expect(seen).toEqual([
      {
        thp_file_alloc: FILE_THPS,
        thp_file_mapped: 0,
        thp_split_page: ANON_SPLITS + FILE_THPS,
        thp_split_page_failed: 0,
        nr_shmem_hugepages: 0,
      },
    ]);
  }, 300_000);

  it('given a directory on a huge=always tmpfs the pagecache cases still skip, as on v6.19: 1 KiB writes make small folios', () => {
    const seen: Counters[] = [];
    const r = runBinary('split_huge_page_test', ['/tmp/huge'], {
      checkInterval: 256,
      setup: hugeTmpfs('never'),
      inspect: (k) => counters(k, seen),
    });
    expectKtap(r);
    // shmem_mapping_size_orders(): a write's folio size follows the write (1 KiB: order 0).
    expect(seen[0].thp_file_alloc).toBe(FILE_THPS);
    expect(seen[0].thp_file_mapped).toBe(0);
  }, 300_000);

  it('with shmem_enabled=force the pagecache files are PMD THPs, mapped by PMDs, yet the cases skip: check_huge_file() reads FilePmdMapped, which shmem THPs never count in', () => {
    const seen: Counters[] = [];
    const r = runBinary('split_huge_page_test', ['/tmp/huge'], {
      checkInterval: 256,
      setup: hugeTmpfs('force'),
      inspect: (k) => counters(k, seen),
    });
    expectKtap(r);
    // Each pagecache case writes a 4 MiB file: two PMD THPs, which its MAP_SHARED read faults
    // map by PMDs (do_set_pmd(): THP_FILE_MAPPED; smaps counts them in ShmemPmdMapped,
    // smaps_pmd_entry()); none is split, the skip comes first.
    expect(seen).toEqual([
      {
        thp_file_alloc: FILE_THPS + 2 * PAGECACHE_CASES,
        thp_file_mapped: 2 * PAGECACHE_CASES,
        thp_split_page: ANON_SPLITS + FILE_THPS,
        thp_split_page_failed: 0,
        nr_shmem_hugepages: 0,
      },
    ]);
  }, 300_000);
});
