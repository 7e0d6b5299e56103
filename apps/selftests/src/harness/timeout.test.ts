import { describe, expect, it } from 'vitest';
import { KSFT_FAIL, KSFT_PASS } from './constants.js';
import { TimeoutAbort } from './errors.js';
import { captureIO } from './output.js';
import { Harness } from './registry.js';

const lines = (...l: string[]): string => l.map((x) => `${x}\n`).join('');

/** A fake monotonic clock in milliseconds. */
function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('timeouts', () => {
  it('kills a test at a preemption point once its 30 s default is exceeded', async () => {
    const clock = fakeClock();
    const events: string[] = [];
    const h = new Harness();
    const f = h.FIXTURE('hmm');
    f.FIXTURE_TEARDOWN((m) => {
      events.push(`teardown ${m.name}`);
    });
    f.TEST_F('spin', (m) => {
      expect(m.timeoutSeconds).toBe(30);
      expect(m.deadline).toBe(1_000 + 30_000);
      for (let i = 0; ; i++) {
        clock.advance(1_000);
        m.onPreempt();
        events.push(`tick ${i}`);
      }
    });
    f.TEST_F('next', () => {});
    const cap = captureIO({ now: clock.now });
    const code = await h.runMain(['hmm-tests'], cap.io);
    expect(cap.merged()).toBe(
      lines(
        'TAP version 13',
        '1..2',
        '# Starting 2 tests from 1 test cases.',
        '#  RUN           hmm.spin ...',
        '# spin: Test terminated by timeout',
        '#          FAIL  hmm.spin',
        'not ok 1 hmm.spin',
        '#  RUN           hmm.next ...',
        '#            OK  hmm.next',
        'ok 2 hmm.next',
        '# FAILED: 1 / 2 tests passed.',
        '# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0',
      ),
    );
    // 30 s elapsed is still within the limit; the 31st second kills it. No teardown after a kill.
    expect(events.filter((e) => e.startsWith('tick'))).toHaveLength(30);
    expect(events.filter((e) => e.startsWith('teardown'))).toEqual(['teardown next']);
    expect(code).toBe(KSFT_FAIL);
  });

  it('honours TEST_F_TIMEOUT and keeps the SKIP reason on a timed-out test', async () => {
    const clock = fakeClock();
    const h = new Harness();
    const f = h.FIXTURE('hmm');
    f.TEST_F_TIMEOUT('benchmark_thp_migration', 120, (m) => {
      clock.advance(100_000);
      m.checkTimeout();
    });
    f.TEST_F_TIMEOUT('short', 2, (m) => {
      m.SKIP('reason before the kill');
      clock.advance(2_001);
      m.checkTimeout();
    });
    const cap = captureIO({ now: clock.now });
    expect(await h.runMain(['hmm-tests'], cap.io)).toBe(KSFT_FAIL);
    expect(cap.stdout()).toContain('ok 1 hmm.benchmark_thp_migration\n');
    expect(cap.merged()).toContain(
      lines(
        '#  RUN           hmm.short ...',
        '#      SKIP      reason before the kill',
        '# short: Test terminated by timeout',
        '#          FAIL  hmm.short',
        'not ok 2 hmm.short #  reason before the kill',
      ),
    );
  });

  it('reports a body that finished after its deadline as a timeout', async () => {
    const clock = fakeClock();
    const h = new Harness();
    h.TEST('slow_sync', () => {
      clock.advance(30_001);
    });
    h.TEST('slow_async', async () => {
      await Promise.resolve();
      clock.advance(45_000);
    });
    h.TEST('exactly_on_time', () => {
      clock.advance(30_000);
    });
    const cap = captureIO({ now: clock.now });
    expect(await h.runMain(['p'], cap.io)).toBe(KSFT_FAIL);
    expect(cap.stderr()).toBe(
      lines('# slow_sync: Test terminated by timeout', '# slow_async: Test terminated by timeout'),
    );
    expect(cap.stdout()).toContain('ok 3 global.exactly_on_time\n');
  });

  it('still reports a timeout when test code swallows the TimeoutAbort', async () => {
    const clock = fakeClock();
    const h = new Harness();
    h.TEST('swallow', (m) => {
      clock.advance(31_000);
      try {
        m.checkTimeout();
      } catch {
        // a badly behaved catch-all
      }
      expect(() => m.print('zombie output')).toThrow(TimeoutAbort);
    });
    const cap = captureIO({ now: clock.now });
    expect(await h.runMain(['p'], cap.io)).toBe(KSFT_FAIL);
    expect(cap.stderr()).toBe(lines('# swallow: Test terminated by timeout'));
    expect(cap.stdout()).not.toContain('zombie');
  });

  it('uses a real watchdog for a Promise that never settles', async () => {
    const h = new Harness();
    h.TEST('after', () => {});
    const f = h.FIXTURE('fx');
    f.TEST_F_TIMEOUT('hang', 0.05, () => new Promise<void>(() => {}));
    const cap = captureIO();
    const code = await h.runMain(['p', '-t', 'hang', '-t', 'after'], cap.io);
    expect(cap.merged()).toBe(
      lines(
        'TAP version 13',
        '1..2',
        '# Starting 2 tests from 2 test cases.',
        '#  RUN           global.after ...',
        '#            OK  global.after',
        'ok 1 global.after',
        '#  RUN           fx.hang ...',
        '# hang: Test terminated by timeout',
        '#          FAIL  fx.hang',
        'not ok 2 fx.hang',
        '# FAILED: 1 / 2 tests passed.',
        '# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0',
      ),
    );
    expect(code).toBe(KSFT_FAIL);
  });

  it('passes a fast async test with the watchdog armed', async () => {
    const h = new Harness();
    h.TEST('quick', async (m) => {
      await new Promise((r) => setTimeout(r, 5));
      m.checkTimeout();
    });
    expect(await h.runMain(['p'], captureIO().io)).toBe(KSFT_PASS);
  });
});
