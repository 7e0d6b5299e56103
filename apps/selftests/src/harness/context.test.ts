import { describe, expect, it } from 'vitest';
import { KSFT_FAIL, KSFT_PASS, SIGABRT } from './constants.js';
import type { ChildStatus, TestContext } from './context.js';
import { ptr, u32, u64 } from './cvalue.js';
import { AssertAbort, KilledAbort } from './errors.js';
import { captureIO } from './output.js';
import { Harness } from './registry.js';

const lines = (...l: string[]): string => l.map((x) => `${x}\n`).join('');

/** The JS line of the caller of this helper, read the same way the harness does. */
function lineHere(): number {
  const frame = (new Error().stack ?? '').split('\n')[2] ?? '';
  return Number(/:(\d+):\d+\)?\s*$/.exec(frame)?.[1] ?? -1);
}

/** Runs one TEST body and returns the capture and exit code. */
async function runOne(body: (m: TestContext) => void | Promise<void>, file?: string) {
  const h = new Harness(file ? { file } : {});
  h.TEST('t', body);
  const cap = captureIO();
  const code = await h.runMain(['p'], cap.io);
  return { code, cap };
}

describe('check messages', () => {
  it('formats every comparison operator and the special forms', async () => {
    const { cap } = await runOne((m) => {
      m.EXPECT_EQ(-14, 0, 'ret', '0', 1);
      m.EXPECT_NE(3, 3, 'a', 'b', 2);
      m.EXPECT_LT(5, 4, 'x', 'y', 3);
      m.EXPECT_LE(5, 4, 'x', 'y', 4);
      m.EXPECT_GT(4, 5, 'x', 'y', 5);
      m.EXPECT_GE(4, 5, 'x', 'y', 6);
      m.EXPECT_NULL({}, 'p', 7);
      m.EXPECT_TRUE(false, 'flag', 8);
      m.EXPECT_FALSE(17, 'n', 9);
      m.EXPECT_NULL(null, 'q', 10);
      m.EXPECT_STREQ('abc', 'abd', 11);
      m.EXPECT_STRNE('same', 'same', 12);
      m.EXPECT_EQ(ptr(-1), ptr(0), 'ptr', 'MAP_FAILED', 13);
      m.EXPECT_EQ(u32(-1), 0, 'u', '0', 14);
      m.EXPECT_EQ(true, 0, 'b', '0', 15);
      m.EXPECT_EQ(2n ** 63n, 0n, 'big', '0', 16);
    });
    expect(cap.stderr()).toBe(
      lines(
        '# hmm-tests.c:1:t:Expected ret (-14) == 0 (0)',
        '# hmm-tests.c:2:t:Expected a (3) != b (3)',
        '# hmm-tests.c:3:t:Expected x (5) < y (4)',
        '# hmm-tests.c:4:t:Expected x (5) <= y (4)',
        '# hmm-tests.c:5:t:Expected x (4) > y (5)',
        '# hmm-tests.c:6:t:Expected x (4) >= y (5)',
        '# hmm-tests.c:7:t:Expected NULL (0) == p (1)',
        '# hmm-tests.c:8:t:Expected 0 (0) != flag (0)',
        '# hmm-tests.c:9:t:Expected 0 (0) == n (17)',
        "# hmm-tests.c:11:t:Expected 'abc' == 'abd'.",
        "# hmm-tests.c:12:t:Expected 'same' != 'same'.",
        '# hmm-tests.c:13:t:Expected ptr (18446744073709551615) == MAP_FAILED (0)',
        '# hmm-tests.c:14:t:Expected u (4294967295) == 0 (0)',
        '# hmm-tests.c:15:t:Expected b (1) == 0 (0)',
        '# hmm-tests.c:16:t:Expected big (-9223372036854775808) == 0 (0)',
        '# t: Test failed',
      ),
    );
  });

  it('uses C comparison rules: unsigned 64-bit wins over signed', async () => {
    const { code, cap } = await runOne((m) => {
      m.ASSERT_EQ(u64(-1), -1, 'x', '-1');
      m.ASSERT_GT(u64(-1), 0, 'x', '0');
      m.ASSERT_LT(u32(-1), 2 ** 33, 'u', 'big');
      m.ASSERT_TRUE(1n, 'one');
      m.ASSERT_EQ(ptr(null), null, 'p', 'NULL');
    });
    expect(cap.stderr()).toBe('');
    expect(code).toBe(KSFT_PASS);
  });

  it('takes the caller line from the JS stack when no line is given', async () => {
    let expected = 0;
    const { cap } = await runOne((m) => {
      expected = lineHere() + 1;
      m.EXPECT_EQ(1, 2, 'one', 'two');
      m.TH_LOG('next line');
    });
    expect(expected).toBeGreaterThan(0);
    expect(cap.stderr().split('\n').slice(0, 2)).toEqual([
      `# hmm-tests.c:${expected}:t:Expected one (1) == two (2)`,
      `# hmm-tests.c:${expected + 1}:t:next line`,
    ]);
  });

  it('honours an explicit file, normalises argument text and runs onFail before aborting', async () => {
    const order: string[] = [];
    const { code, cap } = await runOne((m) => {
      m.TH_LOG('plain log', 40);
      m.ASSERT_EQ(1, 2, '  a  +\n   b ', "' '", {
        line: 41,
        file: 'vm_util.c',
        onFail: () => {
          order.push('handler');
          m.TH_LOG('extra detail', 42);
        },
      });
      order.push('not reached');
    }, 'my-test.c');
    expect(order).toEqual(['handler']);
    expect(cap.stderr()).toBe(
      lines(
        '# my-test.c:40:t:plain log',
        "# vm_util.c:41:t:Expected a + b (1) == ' ' (2)",
        '# my-test.c:42:t:extra detail',
        '# t: Test terminated by assertion',
      ),
    );
    expect(code).toBe(KSFT_FAIL);
  });

  it('returns the EXPECT result and exposes the shared exit code', async () => {
    const seen: unknown[] = [];
    await runOne((m) => {
      seen.push(m.EXPECT_EQ(1, 1, 'a', 'b'), m.exitCode);
      seen.push(m.EXPECT_EQ(1, 2, 'a', 'b', 1), m.exitCode);
      m.exitCode = KSFT_PASS;
      seen.push(m.exitCode, m.name, m.fullName, m.fixtureName, m.variantName, m.file);
    });
    expect(seen).toEqual([true, 0, false, 1, 0, 't', 'global.t', 'global', '', 'hmm-tests.c']);
  });

  it('truncates SKIP reasons to 1023 characters', async () => {
    const { cap } = await runOne((m) => m.SKIP('x'.repeat(2000)));
    expect(cap.stderr()).toBe(lines(`#      SKIP      ${'x'.repeat(1023)}`));
  });
});

describe('ASSERT abort semantics', () => {
  it('reports an assertion even if test code swallows the AssertAbort', async () => {
    const { code, cap } = await runOne((m) => {
      try {
        m.ASSERT_EQ(0, 1, 'a', 'b', 7);
      } catch (e) {
        expect(e).toBeInstanceOf(AssertAbort);
      }
    });
    expect(code).toBe(KSFT_FAIL);
    expect(cap.stderr()).toBe(
      lines('# hmm-tests.c:7:t:Expected a (0) == b (1)', '# t: Test terminated by assertion'),
    );
  });

  it('runs teardown once when it fails its own ASSERT, and not at all after an EXPECT failure in setup', async () => {
    const events: string[] = [];
    const h = new Harness();
    const f = h.FIXTURE('fx');
    f.FIXTURE_TEARDOWN((m) => {
      events.push(`teardown ${m.name}`);
      if (m.name === 'a') m.ASSERT_TRUE(0, 'td_ok', 99);
    });
    f.TEST_F('a', (m) => m.ASSERT_TRUE(0, 'ok', 98));
    const g = h.FIXTURE('gx');
    g.FIXTURE_SETUP((m) => {
      m.EXPECT_EQ(1, 0, 'setup', '0', 5);
    });
    g.FIXTURE_TEARDOWN(() => {
      events.push('teardown gx');
    });
    g.TEST_F('b', () => {
      events.push('body b');
    });
    const cap = captureIO();
    expect(await h.runMain(['p'], cap.io)).toBe(KSFT_FAIL);
    expect(events).toEqual(['teardown a']);
    expect(cap.stderr()).toBe(
      lines(
        '# hmm-tests.c:98:a:Expected 0 (0) != ok (0)',
        '# hmm-tests.c:99:a:Expected 0 (0) != td_ok (0)',
        '# a: Test terminated by assertion',
        '# hmm-tests.c:5:b:Expected setup (1) == 0 (0)',
        '# b: Test failed',
      ),
    );
  });

  it('runs a FIXTURE_TEARDOWN_PARENT even after the test died', async () => {
    const events: string[] = [];
    const h = new Harness();
    const f = h.FIXTURE('fx');
    f.FIXTURE_TEARDOWN_PARENT(() => {
      events.push('parent teardown');
    });
    f.TEST_F('crash', () => {
      throw new Error('oops');
    });
    f.TEST_F('exit', (m) => m.exit(1));
    const cap = captureIO();
    expect(await h.runMain(['p'], cap.io)).toBe(KSFT_FAIL);
    expect(events).toEqual(['parent teardown', 'parent teardown']);
    expect(cap.stderr()).toBe(
      lines('# crash: Test terminated by unhandled exception: Error: oops', '# exit: Test failed'),
    );
  });

  it('makes a finished test context unusable', async () => {
    let saved: TestContext | undefined;
    const { code } = await runOne((m) => {
      saved = m;
    });
    expect(code).toBe(KSFT_PASS);
    expect(() => saved?.print('late')).toThrow(KilledAbort);
    expect(() => saved?.EXPECT_EQ(1, 1, 'a', 'b')).toThrow(KilledAbort);
  });
});

describe('emulated children (fork)', () => {
  it('shares the exit code and reports wait statuses', async () => {
    const statuses: ChildStatus[] = [];
    const { code, cap } = await runOne((m) => {
      statuses.push(m.runChild(() => {}));
      statuses.push(m.runChild((c) => c.exit(3)));
      statuses.push(
        m.runChild(() => {
          throw Object.assign(new Error('killed'), { signo: 9 });
        }),
      );
      statuses.push(m.runChild((c) => c.ASSERT_EQ(1, 2, 'child', 'parent', 77)));
      m.EXPECT_EQ(statuses[3].signaled, true, 'WIFSIGNALED(status)', 'true', 78);
    });
    expect(statuses).toEqual([
      { exited: true, exitStatus: 0, signaled: false, termsig: 0 },
      { exited: true, exitStatus: 3, signaled: false, termsig: 0 },
      { exited: false, exitStatus: 0, signaled: true, termsig: 9 },
      { exited: false, exitStatus: 0, signaled: true, termsig: SIGABRT },
    ]);
    expect(cap.stderr()).toBe(
      lines('# hmm-tests.c:77:t:Expected child (1) == parent (2)', '# t: Test failed'),
    );
    expect(code).toBe(KSFT_FAIL);
  });

  it('supports async children and lets a child mark the test failed', async () => {
    const { code, cap } = await runOne(async (m) => {
      const st = await m.runChildAsync(async (c) => {
        await Promise.resolve();
        expect(c.isChild).toBe(true);
        c.markFailed();
      });
      m.ASSERT_EQ(st.exited, true, 'WIFEXITED(status)', '1', 3);
    });
    expect(code).toBe(KSFT_FAIL);
    expect(cap.stderr()).toBe(lines('# t: Test failed'));
  });

  it('rejects an async body passed to the sync runChild', async () => {
    const { cap } = await runOne((m) => {
      m.runChild(async () => {});
    });
    expect(cap.stderr()).toBe(
      lines(
        '# t: Test terminated by unhandled exception: TypeError: runChild() body returned a Promise; use runChildAsync()',
      ),
    );
  });
});
