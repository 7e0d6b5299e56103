import { describe, expect, it } from 'vitest';
import { KSFT_FAIL, KSFT_PASS } from './constants.js';
import { countLines } from './format.js';
import { captureIO } from './output.js';
import { Harness } from './registry.js';

const lines = (...l: string[]): string => l.map((x) => `${x}\n`).join('');

describe('result codes and counters', () => {
  it('exits 0 for an all-skipped run and 1 when anything failed', async () => {
    const skipped = new Harness();
    skipped.TEST('a', (m) => m.SKIP('x'));
    expect(await skipped.runMain(['p'], captureIO().io)).toBe(KSFT_PASS);
    const failing = new Harness();
    failing.TEST('a', () => {});
    failing.TEST('b', (m) => m.markFailed());
    const cap = captureIO();
    expect(await failing.runMain(['p'], cap.io)).toBe(KSFT_FAIL);
    expect(cap.stdout()).toContain('# FAILED: 1 / 2 tests passed.\n');
    expect(cap.stderr()).toBe(lines('# b: Test failed'));
  });

  it('handles exit codes, XFAIL_ADD and TEST_SIGNAL like __wait_for_test()', async () => {
    const h = new Harness();
    h.TEST('exit4', (m) => m.exit(4));
    h.TEST('exit3', (m) => m.exit(3));
    h.TEST('exit0_after_fail', (m) => {
      m.markFailed();
      m.exit(0);
    });
    h.TEST_SIGNAL('dies', 11, () => {
      throw Object.assign(new Error('segv'), { signo: 11 });
    });
    h.TEST_SIGNAL('lives', 11, () => {});
    h.TEST('xfail', (m) => m.markFailed());
    h.TEST('xpass', () => {});
    h.XFAIL_ADD('global', '', 'xfail').XFAIL_ADD('global', '', 'xpass');
    const f = h.FIXTURE('fx');
    f.TEST_F('exit0_after_fail_f', (m) => {
      m.markFailed();
      m.exit(0);
    });
    const cap = captureIO();
    expect(await h.runMain(['p'], cap.io)).toBe(KSFT_FAIL);
    expect(cap.stdout()).toBe(
      lines(
        'TAP version 13',
        '1..8',
        '# Starting 8 tests from 2 test cases.',
        '#  RUN           global.exit4 ...',
        '#            OK  global.exit4',
        'ok 1 global.exit4 # SKIP unknown',
        '#  RUN           global.exit3 ...',
        '#            OK  global.exit3',
        'ok 2 global.exit3 # XPASS unknown',
        '#  RUN           global.exit0_after_fail ...',
        '#            OK  global.exit0_after_fail',
        'ok 3 global.exit0_after_fail',
        '#  RUN           global.dies ...',
        '#            OK  global.dies',
        'ok 4 global.dies',
        '#  RUN           global.lives ...',
        '#          FAIL  global.lives',
        'not ok 5 global.lives',
        '#  RUN           global.xfail ...',
        '#          FAIL  global.xfail',
        'ok 6 global.xfail # XFAIL unknown',
        '#  RUN           global.xpass ...',
        '#            OK  global.xpass',
        'ok 7 global.xpass # XPASS unknown',
        '#  RUN           fx.exit0_after_fail_f ...',
        '#          FAIL  fx.exit0_after_fail_f',
        'not ok 8 fx.exit0_after_fail_f',
        '# FAILED: 6 / 8 tests passed.',
        '# 1 skipped test(s) detected. Consider enabling relevant config options to improve coverage.',
        '# Totals: pass:2 fail:2 xfail:1 xpass:2 skip:1 error:0',
      ),
    );
    expect(cap.stderr()).toBe(
      lines(
        '# lives: Test exited normally instead of by signal (code: 0)',
        '# xfail: Test failed',
        '# exit0_after_fail_f: Test failed',
      ),
    );
  });

  it('omits the skip hint when configured for an older kselftest.h', async () => {
    const h = new Harness({ skipHint: false });
    h.TEST('a', (m) => m.SKIP('x'));
    const cap = captureIO();
    await h.runMain(['p'], cap.io);
    expect(cap.stdout()).not.toContain('skipped test(s) detected');
    expect(cap.stdout()).toContain('# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0\n');
  });

  it('writes whole lines to Writable-style streams', async () => {
    let out = '';
    let err = '';
    const h = new Harness();
    h.TEST('a', (m) => m.TH_LOG('hello', 3));
    const code = await h.runMain(['p'], {
      env: { KSFT_TAP_LEVEL: '1' },
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    });
    expect(code).toBe(KSFT_PASS);
    expect(out.startsWith('1..1\n# Starting 1 tests from 1 test cases.\n')).toBe(true);
    expect(err).toBe('# hmm-tests.c:3:a:hello\n');
  });
});

describe('ksft_print_cnts()', () => {
  it('prints the skip hint before the plan mismatch, then the Totals (kselftest.h order)', () => {
    const counts = { pass: 2, fail: 0, xfail: 0, xpass: 0, skip: 1, error: 0 };
    expect(countLines(counts, 16, 3)).toEqual([
      '# 1 skipped test(s) detected. Consider enabling relevant config options to improve coverage.',
      '# Planned tests != run tests (16 != 3)',
      '# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:1 error:0',
    ]);
    expect(countLines(counts, 3, 3, false)).toEqual([
      '# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:1 error:0',
    ]);
  });
});
