import { describe, expect, it } from 'vitest';
import { MODEL_GAPS, runBinary, TEST_CLOCK_STEP_NS, TEST_TIME } from '../testing/run.js';

type Kind = 'xfail' | 'pass' | 'timed' | 'skip';

/**
 * What a v6.19 kernel reports for each of the 26 results with the default threshold (4 MB): the
 * remap cases up to 4 MB print their mremap() time, the larger ones not; the three misaligned or
 * overlapping ones are expected failures; the uffd case is built without __NR_userfaultfd.
 */
const EXPECTED: readonly (readonly [string, Kind])[] = [
  ['mremap - Source and Destination Regions Overlapping', 'xfail'],
  ['mremap - Destination Address Misaligned (1KB-aligned)', 'xfail'],
  ['mremap - Source Address Misaligned (1KB-aligned)', 'xfail'],
  ['8KB mremap - Source PTE-aligned, Destination PTE-aligned', 'timed'],
  ['2MB mremap - Source 1MB-aligned, Destination PTE-aligned', 'timed'],
  ['2MB mremap - Source 1MB-aligned, Destination 1MB-aligned', 'timed'],
  ['4MB mremap - Source PMD-aligned, Destination PTE-aligned', 'timed'],
  ['4MB mremap - Source PMD-aligned, Destination 1MB-aligned', 'timed'],
  ['4MB mremap - Source PMD-aligned, Destination PMD-aligned', 'timed'],
  ['2GB mremap - Source PUD-aligned, Destination PTE-aligned', 'pass'],
  ['2GB mremap - Source PUD-aligned, Destination 1MB-aligned', 'pass'],
  ['2GB mremap - Source PUD-aligned, Destination PMD-aligned', 'pass'],
  ['2GB mremap - Source PUD-aligned, Destination PUD-aligned', 'pass'],
  ['5MB mremap - Source 1MB-aligned, Destination 1MB-aligned', 'pass'],
  ['5MB mremap - Source 1MB-aligned, Dest 1MB-aligned with 40MB Preamble', 'pass'],
  ['mremap expand merge', 'pass'],
  ['mremap expand merge offset', 'pass'],
  ['mremap mremap move within range', 'pass'],
  ['mremap move 1mb from start at 1MB+256KB aligned src', 'pass'],
  ['mremap shrink multiple vmas [inplace]', 'pass'],
  ['mremap shrink multiple vmas', 'pass'],
  ['mremap move multiple vmas', 'pass'],
  ['mremap move multiple vmas [dontunnmap]', 'pass'],
  ['mremap move multiple vmas split', 'pass'],
  ['mremap move multiple vmas split [dontunnmap]', 'pass'],
  ['mremap move multiple invalid vmas - missing uffd', 'skip'],
];

const SKIP_HINT =
  '# 1 skipped test(s) detected. Consider enabling relevant config options to improve coverage.';

describe('mremap_test (tools/testing/selftests/mm/mremap_test.c)', () => {
  const gaps = MODEL_GAPS.mremap_test ?? {};

  it('reports every case as v6.19 does, except the model gaps, which fail; exit 0 (only remap cases count)', () => {
    const r = runBinary('mremap_test');
    const k = r.ktap;

    // No ksft_print_header(): no TAP version line, and stdout stays block buffered on the pipe.
    expect(k.version).toBeNull();
    expect(
      r.stdout.startsWith(`# Test configs:\n\tthreshold_mb=4\n\tpattern_seed=${TEST_TIME}\n\n1..26\n`),
    ).toBe(true);
    expect(k.plan).toBe(EXPECTED.length);
    expect(k.results.map((x) => x.number)).toEqual(EXPECTED.map((_, i) => i + 1));

    EXPECTED.forEach(([name, kind], i) => {
      const res = k.results[i];
      const gap = gaps[name];
      if (gap !== undefined) {
        expect([res.ok, res.directive, res.description], `${name}: expected to fail (${gap})`).toEqual([
          false,
          null,
          name,
        ]);
        return;
      }
      switch (kind) {
        case 'xfail':
          expect([res.ok, res.directive, res.description, res.continuation]).toEqual([
            true,
            'XFAIL',
            name,
            ['\tExpected mremap failure'],
          ]);
          break;
        case 'timed':
          // ksft_test_result_pass("%s\n\tmremap time: %12lldns\n"), the time of the mremap() call.
          expect([res.ok, res.directive, res.description, res.continuation]).toEqual([
            true,
            null,
            name,
            [`\tmremap time: ${String(TEST_CLOCK_STEP_NS).padStart(12)}ns`],
          ]);
          break;
        case 'pass':
          expect([res.ok, res.directive, res.description, res.continuation]).toEqual([true, null, name, []]);
          break;
        case 'skip':
          // "%s - missing uffd" has no newline: the counts follow on the same line.
          expect([res.ok, res.directive, res.description]).toEqual([true, 'SKIP', `${name}${SKIP_HINT}`]);
          break;
      }
    });

    // The expected failures say why: the overlapping and misaligned mremap() calls are EINVAL, the
    // misaligned MAP_FIXED_NOREPLACE source cannot be mapped.
    expect(k.diagnostics.filter((d) => /^(mremap failed|Failed to)/.test(d))).toEqual([
      'mremap failed: Invalid argument',
      'mremap failed: Invalid argument',
      'Failed to map source region: Invalid argument',
    ]);

    const failed = EXPECTED.filter(([name]) => gaps[name] !== undefined).length;
    const xfail = EXPECTED.filter(([, kind]) => kind === 'xfail').length;
    expect(k.totals).toEqual({
      pass: EXPECTED.length - failed - xfail - 1,
      fail: failed,
      xfail,
      xpass: 0,
      skip: 1,
      error: 0,
    });
    // perror() lines of the failing cases; none when nothing fails.
    for (const line of r.stderr.split('\n').filter(Boolean))
      expect(line).toMatch(/^(mremap|mmap|munmap)[a-z ]*: .+$/);
    if (failed === 0) expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it("rejects an unknown option or an operand with getopt()'s message and the usage, exit 1", () => {
    const bad = runBinary('mremap_test', ['-x']);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.split('\n').slice(0, 2)).toEqual([
      "./mremap_test: invalid option -- 'x'",
      'Usage: ./mremap_test [[-t <threshold_mb>] [-p <pattern_seed>]]',
    ]);
    const operand = runBinary('mremap_test', ['-p', '7', 'extra']);
    expect(operand.status).toBe(1);
    expect(
      operand.stderr.startsWith('Usage: ./mremap_test [[-t <threshold_mb>] [-p <pattern_seed>]]\n'),
    ).toBe(true);
  });

  it('-t and -p set the threshold and the seed; with 1 MB only the 8 KB case prints its time', () => {
    const r = runBinary('mremap_test', ['-t', '1', '-p', '99']);
    expect(r.stdout.startsWith('# Test configs:\n\tthreshold_mb=1\n\tpattern_seed=99\n\n1..26\n')).toBe(true);
    const timed = r.ktap.results.filter((x) => x.continuation.some((c) => c.startsWith('\tmremap time:')));
    expect(timed.map((x) => x.description)).toEqual([
      '8KB mremap - Source PTE-aligned, Destination PTE-aligned',
    ]);
  });
});
