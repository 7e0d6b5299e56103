import { describe, expect, it } from 'vitest';
import { captureIO } from './harness/index.js';
import { parseProgramArgs, runHmmTests } from './hmm-tests.js';

/** The model's own cases (tests-mthp.ts), as `hmm.<variant>.<name>`. */
const CASES = [
  ...[2, 3, 4, 5, 6, 7, 8, 9].map((o) => `migrate_anon_mthp_order${o}`),
  'migrate_anon_mthp_fail_alloc_order',
  'migrate_anon_mthp_partial_unmap',
  'migrate_anon_mthp_fork',
  'migrate_anon_mthp_mremap_unaligned',
];

describe('hmm-tests --mthp (the model extension of issue 9, tests-mthp.ts)', () => {
  it('--mthp is a program option the harness does not see', () => {
    const a = parseProgramArgs(['./hmm-tests', '--mthp', '-r', 'x'], {});
    expect(a.mthp).toBe(true);
    expect(a.argv).toEqual(['./hmm-tests', '-r', 'x']);
    expect(parseProgramArgs(['./hmm-tests'], {}).mthp).toBe(false);
  });

  it('without --mthp the cases do not exist; with it every one passes on the private device', async () => {
    const plain = captureIO({ env: {} });
    // -l lists the tests (and exits as the harness's __test_harness_main() does after listing).
    await runHmmTests(['./hmm-tests', '-l'], plain.io);
    expect(plain.merged()).toContain('migrate_anon_huge_fault');
    expect(plain.merged()).not.toContain('migrate_anon_mthp');
    const io = captureIO({ env: {} });
    const args = ['./hmm-tests', '--mthp', ...CASES.flatMap((c) => ['-r', `hmm.hmm_device_private.${c}`])];
    expect(await runHmmTests(args, io.io)).toBe(0);
    const out = io.merged();
    for (const [i, c] of CASES.entries()) expect(out).toContain(`ok ${i + 1} hmm.hmm_device_private.${c}\n`);
    expect(out).toContain(`# Totals: pass:${CASES.length} fail:0 xfail:0 xpass:0 skip:0 error:0`);
  }, 300_000);
});
