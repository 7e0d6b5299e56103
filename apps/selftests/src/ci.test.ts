import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  Console,
  captureIO,
  failureMessage,
  junitXml,
  KSFT_FAIL,
  KSFT_PASS,
  KSFT_SKIP,
  KSFT_XFAIL,
  type TestReport,
  xmlEscape,
} from './harness/index.js';
import { runHmmTests } from './hmm-tests.js';
import { loadDriver, parseModuleUlong, runTestHmmSh, wrapperUsage } from './test-hmm-sh.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'hmm-ci-'));

describe('--junit FILE', () => {
  it('writes one testcase per case and leaves the kselftest output byte for byte unchanged', async () => {
    const file = join(tmp(), 'report.xml');
    const args = ['./hmm-tests', '-t', 'open_close', '-t', 'anon_read'];
    const plain = captureIO({ env: {} });
    const withJunit = captureIO({ env: {} });
    expect(await runHmmTests(args, plain.io)).toBe(0);
    expect(await runHmmTests([...args, '--junit', file], withJunit.io)).toBe(0);
    expect(withJunit.merged()).toBe(plain.merged());
    const xml = readFileSync(file, 'utf8');
    expect(xml.split('\n').slice(0, 3)).toEqual([
      '<?xml version="1.0" encoding="UTF-8"?>',
      expect.stringMatching(
        /^<testsuites name="hmm-tests" tests="4" failures="0" errors="0" skipped="2" time="\d+\.\d{3}">$/,
      ),
      expect.stringMatching(
        /^ {2}<testsuite name="hmm.hmm_device_private" tests="2" failures="0" errors="0" skipped="0" time=/,
      ),
    ]);
    expect(xml).toMatch(
      /<testcase classname="hmm.hmm_device_private" name="open_close" time="\d+\.\d{3}"\/>/,
    );
    expect(xml).toContain(
      [
        '      <skipped message="DEVICE_COHERENT not available"/>',
        '      <system-err>could not open hmm dmirror driver (/dev/hmm_dmirror2)',
        '#      SKIP      DEVICE_COHERENT not available</system-err>',
      ].join('\n'),
    );
    expect(xml.match(/<testcase /g)).toHaveLength(4);
    expect(xml.endsWith('</testsuites>\n')).toBe(true);
  });

  it('puts the assertion line of a failing case in <failure message>', async () => {
    const file = join(tmp(), 'fail.xml');
    const cap = captureIO({ env: {} });
    const code = await runHmmTests(
      ['./hmm-tests', '--coherent', '-r', 'hmm.hmm_device_coherent.migrate_anon_huge_err', '--junit', file],
      cap.io,
    );
    expect(code).toBe(1);
    const xml = readFileSync(file, 'utf8');
    expect(xml).toContain('tests="1" failures="1" errors="0" skipped="0"');
    expect(xml).toContain(
      '<failure message="hmm-tests.c:2663:migrate_anon_huge_err:Expected ret (-12) == 0 (0)" type="assertion">' +
        '# hmm-tests.c:2663:migrate_anon_huge_err:Expected ret (-12) == 0 (0)\n' +
        '# migrate_anon_huge_err: Test terminated by assertion</failure>',
    );
  });

  it('reports an unwritable file on stderr and exits 1', async () => {
    const cap = captureIO({ env: {} });
    const bad = join(tmp(), 'no-such-dir', 'r.xml');
    const code = await runHmmTests(
      ['./hmm-tests', '-r', 'hmm.hmm_device_private.open_close', '--junit', bad],
      cap.io,
    );
    expect(code).toBe(1);
    expect(cap.stderr()).toMatch(/^\.\/hmm-tests: cannot write .*no-such-dir\/r\.xml: ENOENT/);
  });
});

describe('junitXml', () => {
  const report = (over: Partial<TestReport>): TestReport => ({
    fixture: 'f',
    variant: 'v',
    test: 't',
    fullName: 'f.v.t',
    exitCode: KSFT_PASS,
    reason: '',
    seconds: 0.0015,
    output: [],
    ...over,
  });

  it('escapes XML, maps XFAIL to skipped and names timeouts', () => {
    const timeout = report({
      test: 'slow',
      exitCode: KSFT_FAIL,
      output: [{ stream: 'stderr', text: '# slow: Test terminated by timeout' }],
    });
    const xml = junitXml('s<&>', [
      report({ test: 'a"b', output: [{ stream: 'stdout', text: 'x < y & z\u0001' }] }),
      report({ test: 'x', exitCode: KSFT_XFAIL, reason: 'known' }),
      report({ test: 's', exitCode: KSFT_SKIP }),
      timeout,
      report({ fixture: 'global', variant: '', test: 'g', fullName: 'global.g' }),
    ]);
    expect(xml).toContain('<testsuites name="s&lt;&amp;&gt;" tests="5" failures="1" errors="0" skipped="2"');
    expect(xml).toContain('name="a&quot;b" time="0.002"');
    expect(xml).toContain('<system-out>x &lt; y &amp; z</system-out>');
    expect(xml).toContain('<skipped message="XFAIL known"/>');
    expect(xml).toContain('<skipped message="unknown"/>');
    expect(xml).toContain('<failure message="slow: Test terminated by timeout" type="timeout">');
    expect(xml).toContain('<testsuite name="global" tests="1"');
    expect(failureMessage(report({ exitCode: KSFT_FAIL }))).toBe('failed');
    expect(xmlEscape('\u0000a\u0008')).toBe('a');
  });
});

describe('test_hmm.sh', () => {
  it('prints its usage and exits 0 without arguments or with an unknown one', async () => {
    for (const args of [[], ['bogus']]) {
      const cap = captureIO({ env: {} });
      expect(await runTestHmmSh(['./test_hmm.sh', ...args], cap.io)).toBe(0);
      expect(cap.stdout()).toBe(
        wrapperUsage('./test_hmm.sh')
          .map((l) => `${l}\n`)
          .join(''),
      );
      expect(cap.stdout().startsWith('Usage: ./test_hmm.sh\nExample usage:\n\n# Shows help message\n')).toBe(
        true,
      );
    }
  });

  it('refuses a single spm address as the script does (message, usage, exit 0)', async () => {
    const cap = captureIO({ env: {} });
    expect(await runTestHmmSh(['./test_hmm.sh', 'smoke', '0x100000000'], cap.io)).toBe(0);
    expect(cap.stdout().split('\n').slice(0, 3)).toEqual([
      'Running smoke test. Analte, this test provides basic coverage.',
      'Missing module parameters. Make sure pass spm_addr_dev0 and spm_addr_dev1',
      'Usage: ./test_hmm.sh',
    ]);
  });

  it('runs hmm-tests after a failed modprobe and still exits 0, as `exit 0` ends the script', async () => {
    const cap = captureIO({ env: {} });
    expect(await runTestHmmSh(['./test_hmm.sh', 'smoke', 'x', 'y'], cap.io)).toBe(0);
    const merged = cap.merged().split('\n');
    expect(merged.slice(0, 4)).toEqual([
      'Running smoke test. Analte, this test provides basic coverage.',
      "modprobe: ERROR: could not insert 'test_hmm': Invalid argument",
      '# [INFO] detected hugetlb page size: 2048 KiB',
      'TAP version 13',
    ]);
    expect(merged).toContain('could not open hmm dmirror driver (/dev/hmm_dmirror0)');
    expect(merged).toContain('not ok 1 hmm.hmm_device_private.open_close');
    expect(merged).toContain('# FAILED: 38 / 76 tests passed.');
  });

  it('loads test_hmm like the script: plain, with both spm addresses, or not at all', () => {
    const cap = captureIO({ env: {} });
    const console = new Console(cap.io);
    expect(loadDriver([], console)).toEqual({ loaded: true, coherent: false });
    expect(loadDriver(['0x100000000', '0x110000000'], console)).toEqual({ loaded: true, coherent: true });
    // hmm_dmirror_init() creates the coherent devices only when both addresses are non-zero.
    expect(loadDriver(['0', '0x110000000'], console)).toEqual({ loaded: true, coherent: false });
    expect(cap.stderr()).toBe('');
    expect(loadDriver(['4G', '0x1'], console)).toEqual({ loaded: false });
    expect(cap.stderr()).toBe("modprobe: ERROR: could not insert 'test_hmm': Invalid argument\n");
    expect(parseModuleUlong('010')).toBe(8n);
    expect(parseModuleUlong('18446744073709551616')).toBeUndefined();
  });
});
