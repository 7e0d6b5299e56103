import { describe, expect, it } from 'vitest';
import { KSFT_FAIL, KSFT_PASS } from './constants.js';
import { u64 } from './cvalue.js';
import { captureIO } from './output.js';
import { Harness } from './registry.js';

interface Self {
  fd: number;
}
interface Variant {
  device: number;
}

/** A small hmm-tests look-alike: 2 fixtures x 2 variants. */
function hmmLike(events: string[] = []): Harness {
  const h = new Harness({ file: 'hmm-tests.c' });
  const hmm = h.FIXTURE<Self, Variant>('hmm', () => ({ fd: -1 }));
  hmm.FIXTURE_VARIANT_ADD('hmm_device_private', { device: 0 });
  hmm.FIXTURE_VARIANT_ADD('hmm_device_coherent', { device: 2 });
  hmm.FIXTURE_SETUP((_m, self, v) => {
    self.fd = 3 + v.device;
    events.push(`setup ${v.device}`);
  });
  hmm.FIXTURE_TEARDOWN((_m, self) => {
    events.push(`teardown ${self.fd}`);
  });
  hmm.TEST_F('open_close', (m, self) => {
    m.ASSERT_GE(self.fd, 0, 'self->fd', '0');
  });
  hmm.TEST_F('anon_read', (m) => {
    m.EXPECT_EQ(1, 1, 'ret', '1');
  });
  const hmm2 = h.FIXTURE<Self, Variant>('hmm2', () => ({ fd: -1 }));
  hmm2.FIXTURE_VARIANT_ADD('hmm2_device_private', { device: 0 });
  hmm2.FIXTURE_VARIANT_ADD('hmm2_device_coherent', { device: 2 });
  hmm2.TEST_F('double_map', async (m) => {
    await Promise.resolve();
    m.ASSERT_EQ(0, 0, 'ret', '0');
  });
  return h;
}

const lines = (...l: string[]): string => l.map((x) => `${x}\n`).join('');

describe('runner output', () => {
  it('prints the exact lines of an all-pass run', async () => {
    const events: string[] = [];
    const cap = captureIO();
    const code = await hmmLike(events).runMain(['./hmm-tests'], cap.io);
    const block = (n: number, name: string): string[] => [
      `#  RUN           ${name} ...`,
      `#            OK  ${name}`,
      `ok ${n} ${name}`,
    ];
    expect(cap.stdout()).toBe(
      lines(
        'TAP version 13',
        '1..6',
        '# Starting 6 tests from 4 test cases.',
        ...block(1, 'hmm.hmm_device_private.open_close'),
        ...block(2, 'hmm.hmm_device_private.anon_read'),
        ...block(3, 'hmm.hmm_device_coherent.open_close'),
        ...block(4, 'hmm.hmm_device_coherent.anon_read'),
        ...block(5, 'hmm2.hmm2_device_private.double_map'),
        ...block(6, 'hmm2.hmm2_device_coherent.double_map'),
        '# PASSED: 6 / 6 tests passed.',
        '# Totals: pass:6 fail:0 xfail:0 xpass:0 skip:0 error:0',
      ),
    );
    expect(cap.stderr()).toBe('');
    expect(code).toBe(KSFT_PASS);
    expect(events).toEqual([
      'setup 0',
      'teardown 3',
      'setup 0',
      'teardown 3',
      'setup 2',
      'teardown 5',
      'setup 2',
      'teardown 5',
    ]);
  });

  it('reports a failing ASSERT as terminated by assertion, after one teardown', async () => {
    const events: string[] = [];
    const h = new Harness();
    const f = h.FIXTURE<Self>('hmm', () => ({ fd: 7 }));
    f.FIXTURE_TEARDOWN((m, self) => {
      events.push('teardown');
      m.printErr(`teardown fd ${self.fd}`);
    });
    f.TEST_F('double_map', (m) => {
      const ret = -14;
      m.ASSERT_EQ(ret, 0, 'ret', '0', 1680);
      events.push('after assert');
    });
    const cap = captureIO();
    const code = await h.runMain(['hmm-tests'], cap.io);
    expect(cap.merged()).toBe(
      lines(
        'TAP version 13',
        '1..1',
        '# Starting 1 tests from 1 test cases.',
        '#  RUN           hmm.double_map ...',
        '# hmm-tests.c:1680:double_map:Expected ret (-14) == 0 (0)',
        'teardown fd 7',
        '# double_map: Test terminated by assertion',
        '#          FAIL  hmm.double_map',
        'not ok 1 hmm.double_map',
        '# FAILED: 0 / 1 tests passed.',
        '# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0',
      ),
    );
    expect(cap.stderr()).toBe(
      lines(
        '# hmm-tests.c:1680:double_map:Expected ret (-14) == 0 (0)',
        'teardown fd 7',
        '# double_map: Test terminated by assertion',
      ),
    );
    expect(events).toEqual(['teardown']);
    expect(code).toBe(KSFT_FAIL);
  });

  it('does not run teardown when ASSERT fails in setup', async () => {
    const events: string[] = [];
    const h = new Harness();
    const f = h.FIXTURE('fx');
    f.FIXTURE_SETUP((m) => m.ASSERT_NE(-1, -1, 'fd', '-1', 10));
    f.FIXTURE_TEARDOWN(() => {
      events.push('teardown');
    });
    f.TEST_F('t', () => {
      events.push('body');
    });
    const cap = captureIO();
    expect(await h.runMain(['x'], cap.io)).toBe(KSFT_FAIL);
    expect(events).toEqual([]);
    expect(cap.stderr()).toBe(
      lines('# hmm-tests.c:10:t:Expected fd (-1) != -1 (-1)', '# t: Test terminated by assertion'),
    );
  });

  it('reports a failing EXPECT as Test failed and keeps running the test', async () => {
    const h = new Harness();
    const f = h.FIXTURE('hmm');
    f.FIXTURE_VARIANT_ADD('hmm_device_private', undefined);
    f.TEST_F('migrate', (m) => {
      m.EXPECT_EQ(u64(-1), u64(4), 'buffer->cpages', 'npages', 1234);
      m.print('still running');
      m.EXPECT_EQ(2, 2, 'a', 'b');
    });
    f.TEST_F('after', () => {});
    const cap = captureIO();
    const code = await h.runMain(['hmm-tests'], cap.io);
    expect(cap.merged()).toBe(
      lines(
        'TAP version 13',
        '1..2',
        '# Starting 2 tests from 1 test cases.',
        '#  RUN           hmm.hmm_device_private.migrate ...',
        '# hmm-tests.c:1234:migrate:Expected buffer->cpages (18446744073709551615) == npages (4)',
        'still running',
        '# migrate: Test failed',
        '#          FAIL  hmm.hmm_device_private.migrate',
        'not ok 1 hmm.hmm_device_private.migrate',
        '#  RUN           hmm.hmm_device_private.after ...',
        '#            OK  hmm.hmm_device_private.after',
        'ok 2 hmm.hmm_device_private.after',
        '# FAILED: 1 / 2 tests passed.',
        '# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0',
      ),
    );
    expect(code).toBe(KSFT_FAIL);
  });

  it('reports SKIP in setup as skipped without running body or teardown', async () => {
    const events: string[] = [];
    const h = new Harness();
    const hmm = h.FIXTURE<Self, Variant>('hmm', () => ({ fd: -1 }));
    hmm.FIXTURE_VARIANT_ADD('hmm_device_private', { device: 0 });
    hmm.FIXTURE_VARIANT_ADD('hmm_device_coherent', { device: 2 });
    hmm.FIXTURE_SETUP((m, self, v) => {
      if (v.device === 2) {
        m.printErr('could not open hmm dmirror driver (/dev/hmm_dmirror2)');
        return m.SKIP('DEVICE_COHERENT not available');
      }
      self.fd = 3;
    });
    hmm.FIXTURE_TEARDOWN(() => {
      events.push('teardown');
    });
    hmm.TEST_F('open_close', () => {
      events.push('body');
    });
    const cap = captureIO();
    const code = await h.runMain(['hmm-tests'], cap.io);
    expect(cap.merged()).toBe(
      lines(
        'TAP version 13',
        '1..2',
        '# Starting 2 tests from 2 test cases.',
        '#  RUN           hmm.hmm_device_private.open_close ...',
        '#            OK  hmm.hmm_device_private.open_close',
        'ok 1 hmm.hmm_device_private.open_close',
        '#  RUN           hmm.hmm_device_coherent.open_close ...',
        'could not open hmm dmirror driver (/dev/hmm_dmirror2)',
        '#      SKIP      DEVICE_COHERENT not available',
        '#            OK  hmm.hmm_device_coherent.open_close',
        'ok 2 hmm.hmm_device_coherent.open_close # SKIP DEVICE_COHERENT not available',
        '# PASSED: 2 / 2 tests passed.',
        '# 1 skipped test(s) detected. Consider enabling relevant config options to improve coverage.',
        '# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:1 error:0',
      ),
    );
    expect(events).toEqual(['body', 'teardown']);
    expect(code).toBe(KSFT_PASS);
  });

  it('reports SKIP in the body as skipped and still runs teardown', async () => {
    const events: string[] = [];
    const h = new Harness();
    const f = h.FIXTURE('hmm');
    f.FIXTURE_TEARDOWN(() => {
      events.push('teardown');
    });
    f.TEST_F('migrate_anon_huge_empty', (m) => {
      m.SKIP_RETURN('Could not allocate huge pages');
    });
    f.TEST_F('skip_then_return', (m) => {
      m.SKIP('no THP');
    });
    const cap = captureIO();
    const code = await h.runMain(['hmm-tests'], cap.io);
    expect(cap.merged()).toBe(
      lines(
        'TAP version 13',
        '1..2',
        '# Starting 2 tests from 1 test cases.',
        '#  RUN           hmm.migrate_anon_huge_empty ...',
        '#      SKIP      Could not allocate huge pages',
        '#            OK  hmm.migrate_anon_huge_empty',
        'ok 1 hmm.migrate_anon_huge_empty # SKIP Could not allocate huge pages',
        '#  RUN           hmm.skip_then_return ...',
        '#      SKIP      no THP',
        '#            OK  hmm.skip_then_return',
        'ok 2 hmm.skip_then_return # SKIP no THP',
        '# PASSED: 2 / 2 tests passed.',
        '# 2 skipped test(s) detected. Consider enabling relevant config options to improve coverage.',
        '# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:2 error:0',
      ),
    );
    expect(events).toEqual(['teardown', 'teardown']);
    expect(code).toBe(KSFT_PASS);
  });

  it('puts a SKIP reason on a later failure as `#  reason`', async () => {
    const h = new Harness();
    h.TEST('t', (m) => {
      m.SKIP('not really');
      m.EXPECT_TRUE(0, 'ok', 5);
    });
    const cap = captureIO();
    expect(await h.runMain(['p'], cap.io)).toBe(KSFT_FAIL);
    expect(cap.stdout()).toContain('#          FAIL  global.t\nnot ok 1 global.t #  not really\n');
    expect(cap.stderr()).toBe(
      lines('#      SKIP      not really', '# hmm-tests.c:5:t:Expected 0 (0) != ok (0)', '# t: Test failed'),
    );
  });

  it('turns an escaping exception into a FAIL with a diagnostic and keeps going', async () => {
    const events: string[] = [];
    const h = new Harness();
    const f = h.FIXTURE('fx');
    f.FIXTURE_TEARDOWN(() => {
      events.push('teardown');
    });
    f.TEST_F('boom', () => {
      throw new TypeError('cannot read properties of undefined\nsecond line');
    });
    f.TEST_F('async_boom', async () => {
      await Promise.resolve();
      throw new RangeError('late');
    });
    f.TEST_F('sigbus', () => {
      throw Object.assign(new Error('bus error'), { signo: 7 });
    });
    f.TEST_F('fine', () => {});
    const cap = captureIO();
    const code = await h.runMain(['p'], cap.io);
    expect(cap.merged()).toBe(
      lines(
        'TAP version 13',
        '1..4',
        '# Starting 4 tests from 1 test cases.',
        '#  RUN           fx.boom ...',
        '# boom: Test terminated by unhandled exception: TypeError: cannot read properties of undefined',
        '# second line',
        '#          FAIL  fx.boom',
        'not ok 1 fx.boom',
        '#  RUN           fx.async_boom ...',
        '# async_boom: Test terminated by unhandled exception: RangeError: late',
        '#          FAIL  fx.async_boom',
        'not ok 2 fx.async_boom',
        '#  RUN           fx.sigbus ...',
        '# sigbus: Test terminated unexpectedly by signal 7',
        '#          FAIL  fx.sigbus',
        'not ok 3 fx.sigbus',
        '#  RUN           fx.fine ...',
        '#            OK  fx.fine',
        'ok 4 fx.fine',
        '# FAILED: 1 / 4 tests passed.',
        '# Totals: pass:1 fail:3 xfail:0 xpass:0 skip:0 error:0',
      ),
    );
    expect(events).toEqual(['teardown']);
    expect(code).toBe(KSFT_FAIL);
  });

  it('reports an exception from the fixture factory as a FAIL', async () => {
    const h = new Harness();
    h.FIXTURE('fx', () => {
      throw new Error('no memory');
    }).TEST_F('t', () => {});
    const cap = captureIO();
    expect(await h.runMain(['p'], cap.io)).toBe(KSFT_FAIL);
    expect(cap.stderr()).toBe(lines('# t: Test terminated by unhandled exception: Error: no memory'));
  });

  it('suppresses the TAP header when KSFT_TAP_LEVEL is set, even to ""', async () => {
    for (const value of ['1', '']) {
      const cap = captureIO({ env: { KSFT_TAP_LEVEL: value } });
      const h = new Harness();
      h.TEST('only', () => {});
      expect(await h.runMain(['p'], cap.io)).toBe(KSFT_PASS);
      expect(cap.stdout()).toBe(
        lines(
          '1..1',
          '# Starting 1 tests from 1 test cases.',
          '#  RUN           global.only ...',
          '#            OK  global.only',
          'ok 1 global.only',
          '# PASSED: 1 / 1 tests passed.',
          '# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0',
        ),
      );
    }
  });

  it('prints the zero-test run and exits 0', async () => {
    const cap = captureIO();
    const code = await hmmLike().runMain(['hmm-tests', '-t', 'no_such_test'], cap.io);
    expect(cap.merged()).toBe(
      lines(
        'TAP version 13',
        '1..0',
        '# Starting 0 tests from 0 test cases.',
        '# PASSED: 0 / 0 tests passed.',
        '# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:0 error:0',
      ),
    );
    expect(code).toBe(KSFT_PASS);
  });
});
