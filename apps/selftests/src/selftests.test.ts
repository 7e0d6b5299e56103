import { describe, expect, it } from 'vitest';
import { cFixed } from './benchmark.js';
import { captureIO } from './harness/index.js';
import { parseProgramArgs, runHmmTests } from './hmm-tests.js';

/** The whole suite (with both benchmark runs) takes well over vitest's default timeout. */
const FULL_RUN_MS = 900_000;

const lines = (...l: string[]): string => l.map((x) => `${x}\n`).join('');

/**
 * Cases that fail with `--coherent` because the C test's expectation does not hold for the
 * driver it exercises, with the exact diagnostics a kernel run prints (see the README).
 *
 * migrate_anon_huge_err (coherent): the coherent dmirror device only ever has the one SPM
 * chunk, set up with small pages at module load (dmirror_device_init() passes is_large =
 * false; a second chunk on the same range cannot be memremapped), so the THP is migrated as
 * 512 small device pages; MIGRATE_TO_SYS with FAIL_ALLOC then hits the order-0 branch of
 * dmirror_devmem_fault_alloc_and_copy(), which returns VM_FAULT_OOM -> -ENOMEM.
 */
const EXPECTED_FAILURES: Readonly<Record<string, readonly string[]>> = {
  'hmm.hmm_device_coherent.migrate_anon_huge_err': [
    '# hmm-tests.c:2663:migrate_anon_huge_err:Expected ret (-12) == 0 (0)',
    '# migrate_anon_huge_err: Test terminated by assertion',
  ],
};

/** Splits a merged capture into per-test blocks: the lines between `#  RUN` and the result line. */
function blocks(merged: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | null = null;
  for (const line of merged.split('\n')) {
    const run = /^# {2}RUN {11}(\S+) \.\.\.$/.exec(line);
    if (run) {
      cur = [];
      out.set(run[1], cur);
      continue;
    }
    cur?.push(line);
  }
  return out;
}

describe('hmm-tests on the default machine (test_hmm loaded as test_hmm.sh smoke does)', () => {
  it(
    'runs 76 cases: every private case passes, every coherent case SKIPs as on a kernel, exit 0',
    async () => {
      const cap = captureIO({ env: {} });
      const code = await runHmmTests(['./hmm-tests'], cap.io);
      expect(code).toBe(0);
      const out = cap.stdout().split('\n');
      expect(out.slice(0, 4)).toEqual([
        '# [INFO] detected hugetlb page size: 2048 KiB',
        'TAP version 13',
        '1..76',
        '# Starting 76 tests from 4 test cases.',
      ]);
      const results = out.filter((l) => /^(not )?ok \d+ /.test(l));
      expect(results).toHaveLength(76);
      const coherent = results.filter((l) => /_device_coherent\./.test(l));
      expect(coherent).toHaveLength(38);
      for (const l of coherent)
        expect(l).toMatch(/^ok \d+ hmm2?\.hmm2?_device_coherent\.\w+ # SKIP DEVICE_COHERENT not available$/);
      const perTest = blocks(cap.merged());
      for (const l of results.filter((x) => !/_device_coherent\./.test(x)))
        expect(l, perTest.get(l.split(' ')[l.startsWith('not') ? 3 : 2])?.join('\n')).toMatch(
          /^ok \d+ hmm2?\.hmm2?_device_private\.\w+$/,
        );
      // Every private case printed nothing on stderr; every coherent case printed the open
      // failure and the SKIP line, byte for byte.
      for (const [name, block] of perTest) {
        if (name.includes('_device_coherent.'))
          expect(block.slice(0, 3)).toEqual([
            'could not open hmm dmirror driver (/dev/hmm_dmirror2)',
            '#      SKIP      DEVICE_COHERENT not available',
            `#            OK  ${name}`,
          ]);
        else expect(block.filter((l) => l.startsWith('# hmm-tests.c:') || l.includes('Test '))).toEqual([]);
      }
      expect(cap.stderr()).toBe(
        lines(
          'could not open hmm dmirror driver (/dev/hmm_dmirror2)',
          '#      SKIP      DEVICE_COHERENT not available',
        ).repeat(38),
      );
      // The benchmark table (raw stdout, no "# " prefix) appears once: the private variant.
      expect(out.filter((l) => l === 'HMM THP Migration Benchmark')).toHaveLength(1);
      expect(out.slice(-4)).toEqual([
        '# PASSED: 76 / 76 tests passed.',
        '# 38 skipped test(s) detected. Consider enabling relevant config options to improve coverage.',
        '# Totals: pass:38 fail:0 xfail:0 xpass:0 skip:38 error:0',
        '',
      ]);
    },
    FULL_RUN_MS,
  );
});

describe('hmm-tests --coherent (test_hmm loaded with spm_addr_dev0/1)', () => {
  it(
    'runs the coherent cases on /dev/hmm_dmirror2, 3: all pass but the documented kernel-faithful failure',
    async () => {
      const cap = captureIO({ env: {} });
      // The private half is covered above; select the coherent variants only.
      const code = await runHmmTests(
        ['./hmm-tests', '--coherent', '-V', 'hmm_device_private', '-V', 'hmm2_device_private'],
        cap.io,
      );
      const out = cap.stdout().split('\n');
      expect(out).toContain('1..38');
      expect(out).toContain('# Starting 38 tests from 2 test cases.');
      const results = out.filter((l) => /^(not )?ok \d+ /.test(l));
      expect(results).toHaveLength(38);
      expect(results.filter((l) => l.includes('# SKIP'))).toEqual([]);
      const failed = results.filter((l) => l.startsWith('not ok')).map((l) => l.split(' ')[3]);
      const perTest = blocks(cap.merged());
      // An unexpected failure shows its own block (diagnostics, timeout or exception) in the message.
      const unexpected = failed.filter((n) => !(n in EXPECTED_FAILURES));
      const why = unexpected
        .map((n) => [`--- ${n}`, ...(perTest.get(n) ?? ['(no block)'])].join('\n'))
        .join('\n');
      expect(failed, why).toEqual(Object.keys(EXPECTED_FAILURES));
      for (const [name, diag] of Object.entries(EXPECTED_FAILURES)) {
        expect(perTest.get(name)?.slice(0, diag.length)).toEqual(diag);
      }
      for (const [name, block] of perTest) {
        if (name in EXPECTED_FAILURES) continue;
        expect(block.filter((l) => l.startsWith('# hmm-tests.c:') || l.includes('Test '))).toEqual([]);
      }
      expect(out.filter((l) => l === 'HMM THP Migration Benchmark')).toHaveLength(1);
      const failedCount = Object.keys(EXPECTED_FAILURES).length;
      expect(out).toContain(`# FAILED: ${38 - failedCount} / 38 tests passed.`);
      expect(out).toContain(
        `# Totals: pass:${38 - failedCount} fail:${failedCount} xfail:0 xpass:0 skip:0 error:0`,
      );
      expect(code).toBe(1);
    },
    FULL_RUN_MS,
  );

  it('reads --coherent / --no-coherent (last wins), HMM_COHERENT and HMM_NO_COHERENT', () => {
    expect(parseProgramArgs(['x'], {}).coherent).toBe(false);
    expect(parseProgramArgs(['x'], { HMM_COHERENT: '1' }).coherent).toBe(true);
    expect(parseProgramArgs(['x'], { HMM_COHERENT: '0' }).coherent).toBe(false);
    expect(parseProgramArgs(['x'], { HMM_COHERENT: '1', HMM_NO_COHERENT: '1' }).coherent).toBe(false);
    expect(parseProgramArgs(['x', '--no-coherent'], { HMM_COHERENT: '1' }).coherent).toBe(false);
    expect(parseProgramArgs(['x', '--coherent', '-r', 'a'], {})).toEqual({
      argv: ['x', '-r', 'a'],
      coherent: true,
      seed: undefined,
      mthp: false,
    });
    expect(parseProgramArgs(['x', '--coherent', '--no-coherent'], {}).coherent).toBe(false);
    expect(parseProgramArgs(['x', '--', '--coherent'], {})).toEqual({
      argv: ['x', '--', '--coherent'],
      coherent: false,
      seed: undefined,
      mthp: false,
    });
    expect(parseProgramArgs(['x', '--seed', '7'], {}).seed).toBe(7);
    expect(parseProgramArgs(['x', '--seed=0x10'], {}).seed).toBe(16);
  });
});

describe('hmm-tests -r', () => {
  it('runs one case with the exact kselftest output', async () => {
    const cap = captureIO({ env: {} });
    const code = await runHmmTests(['./hmm-tests', '-r', 'hmm.hmm_device_private.migrate'], cap.io);
    expect(code).toBe(0);
    expect(cap.stderr()).toBe('');
    expect(cap.stdout()).toBe(
      lines(
        '# [INFO] detected hugetlb page size: 2048 KiB',
        'TAP version 13',
        '1..1',
        '# Starting 1 tests from 1 test cases.',
        '#  RUN           hmm.hmm_device_private.migrate ...',
        '#            OK  hmm.hmm_device_private.migrate',
        'ok 1 hmm.hmm_device_private.migrate',
        '# PASSED: 1 / 1 tests passed.',
        '# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0',
      ),
    );
  });

  it('prints the usage with the [INFO] line first, as the constructor runs before main()', async () => {
    const cap = captureIO({ env: {} });
    expect(await runHmmTests(['./hmm-tests', '-h'], cap.io)).toBe(4);
    expect(cap.stdout()).toBe(lines('# [INFO] detected hugetlb page size: 2048 KiB'));
    expect(cap.stderr().split('\n')[0]).toBe('Usage: ./hmm-tests [-h|-l|-d] [-t|-T|-v|-V|-f|-F|-r name]');
  });
});

describe('cFixed (printf %.Nf)', () => {
  it('rounds the exact binary value half to even and spells inf/nan like glibc', () => {
    expect(cFixed(0.125, 2)).toBe('0.12');
    expect(cFixed(0.375, 2)).toBe('0.38');
    expect(cFixed(2.675, 2)).toBe('2.67');
    expect(cFixed(0.5, 0)).toBe('0');
    expect(cFixed(1.5, 0)).toBe('2');
    expect(cFixed(256, 1)).toBe('256.0');
    expect(cFixed(-0.04, 1)).toBe('-0.0');
    expect(cFixed(1234.5678, 3)).toBe('1234.568');
    expect(cFixed(Number.POSITIVE_INFINITY, 1)).toBe('inf');
    expect(cFixed(Number.NEGATIVE_INFINITY, 1)).toBe('-inf');
  });
});
