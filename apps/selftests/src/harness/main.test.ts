import { describe, expect, it } from 'vitest';
import { KSFT_FAIL, KSFT_PASS, KSFT_SKIP } from './constants.js';
import type { TestContext } from './context.js';
import { captureIO } from './output.js';
import { Harness } from './registry.js';

const lines = (...l: string[]): string => l.map((x) => `${x}\n`).join('');
const sp = (n: number): string => ' '.repeat(n);

function hmmLike(): Harness {
  const h = new Harness();
  const hmm = h.FIXTURE('hmm');
  hmm.FIXTURE_VARIANT_ADD('hmm_device_private', undefined);
  hmm.FIXTURE_VARIANT_ADD('hmm_device_coherent', undefined);
  for (const t of ['open_close', 'anon_read', 'migrate']) hmm.TEST_F(t, () => {});
  const hmm2 = h.FIXTURE('hmm2');
  hmm2.FIXTURE_VARIANT_ADD('hmm2_device_private', undefined);
  hmm2.FIXTURE_VARIANT_ADD('hmm2_device_coherent', undefined);
  hmm2.TEST_F('double_map', () => {});
  return h;
}

/** Runs `argv` and returns the TAP result lines (the `ok N name` / `not ok` lines). */
async function selected(h: Harness, ...args: string[]): Promise<{ plan: string; names: string[] }> {
  const cap = captureIO();
  await h.runMain(['prog', ...args], cap.io);
  const out = cap.stdout().split('\n');
  return {
    plan: `${out[1]} / ${out[2]}`,
    names: out.filter((l) => l.startsWith('ok ')).map((l) => l.split(' ')[2]),
  };
}

const USAGE = [
  'Usage: ./hmm-tests [-h|-l|-d] [-t|-T|-v|-V|-f|-F|-r name]',
  '\t-h       print help',
  '\t-l       list all tests',
  '\t-d       enable debug prints',
  '',
  '\t-t name  include test',
  '\t-T name  exclude test',
  '\t-v name  include variant',
  '\t-V name  exclude variant',
  '\t-f name  include fixture',
  '\t-F name  exclude fixture',
  '\t-r name  run specified test',
  '',
  'Test filter options can be specified multiple times. The filtering stops',
  "at the first match. For example to include all tests from variant 'bla'",
  "but not test 'foo' specify '-T foo -v bla'.",
];

describe('-l', () => {
  it('lists fixtures, zipped variants and tests on stderr and exits 4', async () => {
    const cap = captureIO();
    const code = await hmmLike().runMain(['./hmm-tests', '-l'], cap.io);
    expect(cap.stdout()).toBe('');
    expect(cap.stderr()).toBe(
      lines(
        `# FIXTURE${sp(12)}VARIANT${sp(19)}TEST`,
        `global${sp(41)}`,
        '-'.repeat(80),
        `hmm${sp(18)}hmm_device_private${sp(8)}open_close`,
        `${sp(21)}hmm_device_coherent${sp(7)}anon_read`,
        `${sp(47)}migrate`,
        '-'.repeat(80),
        `hmm2${sp(17)}hmm2_device_private${sp(7)}double_map`,
        `${sp(21)}hmm2_device_coherent${sp(6)}`,
      ),
    );
    expect(code).toBe(KSFT_SKIP);
  });

  it('shows the fixture name on every row of a fixture without tests, and ignores filters', async () => {
    const h = new Harness();
    h.TEST('plain', () => {});
    h.FIXTURE('empty').FIXTURE_VARIANT_ADD('a', undefined).FIXTURE_VARIANT_ADD('b', undefined);
    const cap = captureIO();
    expect(await h.runMain(['p', '-t', 'nothing', '-l'], cap.io)).toBe(KSFT_SKIP);
    expect(cap.stderr()).toBe(
      lines(
        `# FIXTURE${sp(12)}VARIANT${sp(19)}TEST`,
        `global${sp(14)} ${sp(25)} plain`,
        '-'.repeat(80),
        `empty${sp(16)}a${sp(25)}`,
        `empty${sp(16)}b${sp(25)}`,
      ),
    );
  });
});

describe('-h and bad options', () => {
  it('prints the usage on stderr for -h and exits 4', async () => {
    const cap = captureIO();
    expect(await hmmLike().runMain(['./hmm-tests', '-h'], cap.io)).toBe(KSFT_SKIP);
    expect(cap.stdout()).toBe('');
    expect(cap.stderr()).toBe(lines(...USAGE));
  });

  it('prints glibc invalid-option text and the usage, exits 1', async () => {
    const cap = captureIO();
    expect(await hmmLike().runMain(['./hmm-tests', '-x'], cap.io)).toBe(KSFT_FAIL);
    expect(cap.stdout()).toBe('');
    expect(cap.stderr()).toBe(lines("./hmm-tests: invalid option -- 'x'", ...USAGE));
  });

  it('prints the missing-argument text for a trailing -t', async () => {
    const cap = captureIO();
    expect(await hmmLike().runMain(['./hmm-tests', '-t'], cap.io)).toBe(KSFT_FAIL);
    expect(cap.stderr()).toBe(lines("./hmm-tests: option requires an argument -- 't'", ...USAGE));
  });

  it('scans left to right: the first of -h, -l or a bad option wins', async () => {
    const a = captureIO();
    expect(await hmmLike().runMain(['./hmm-tests', '-x', '-l'], a.io)).toBe(KSFT_FAIL);
    expect(a.stderr().split('\n')[0]).toBe("./hmm-tests: invalid option -- 'x'");
    const b = captureIO();
    expect(await hmmLike().runMain(['./hmm-tests', '-l', '-x'], b.io)).toBe(KSFT_SKIP);
    expect(b.stderr().startsWith('# FIXTURE')).toBe(true);
    const c = captureIO();
    expect(await hmmLike().runMain(['./hmm-tests', '-hl'], c.io)).toBe(KSFT_SKIP);
    expect(c.stderr()).toBe(lines(...USAGE));
    const d = captureIO();
    expect(await hmmLike().runMain(['./hmm-tests', '--verbose'], d.io)).toBe(KSFT_FAIL);
    expect(d.stderr().split('\n')[0]).toBe("./hmm-tests: invalid option -- '-'");
  });

  it('uses the pre-v6.19 usage and rejects -d when debugOption is off', async () => {
    const h = new Harness({ debugOption: false });
    const cap = captureIO();
    expect(await h.runMain(['t', '-d'], cap.io)).toBe(KSFT_FAIL);
    const usage = USAGE.filter((l) => !l.includes('-d ')).map((l) => l.replace('./hmm-tests', 't'));
    usage[0] = 'Usage: t [-h|-l] [-t|-T|-v|-V|-f|-F|-r name]';
    expect(cap.stderr()).toBe(lines("t: invalid option -- 'd'", ...usage));
  });
});

describe('filters', () => {
  function blaFoo(): Harness {
    const h = new Harness();
    const f = h.FIXTURE('f');
    f.FIXTURE_VARIANT_ADD('bla', undefined).FIXTURE_VARIANT_ADD('other', undefined);
    f.TEST_F('foo', () => {}).TEST_F('bar', () => {});
    h.FIXTURE('g').TEST_F('foo', () => {});
    return h;
  }

  it('first match decides: -T foo -v bla differs from -v bla -T foo', async () => {
    expect(await selected(blaFoo(), '-T', 'foo', '-v', 'bla')).toEqual({
      plan: '1..1 / # Starting 1 tests from 1 test cases.',
      names: ['f.bla.bar'],
    });
    expect(await selected(blaFoo(), '-v', 'bla', '-T', 'foo')).toEqual({
      plan: '1..2 / # Starting 2 tests from 1 test cases.',
      names: ['f.bla.foo', 'f.bla.bar'],
    });
  });

  it('exclusions alone keep everything else; inclusions alone keep only matches', async () => {
    expect((await selected(blaFoo(), '-T', 'foo')).names).toEqual(['f.bla.bar', 'f.other.bar']);
    expect((await selected(blaFoo(), '-t', 'foo')).names).toEqual(['f.bla.foo', 'f.other.foo', 'g.foo']);
    expect((await selected(blaFoo(), '-F', 'f')).names).toEqual(['g.foo']);
    expect((await selected(blaFoo(), '-f', 'g', '-V', 'bla')).names).toEqual(['g.foo']);
    expect((await selected(blaFoo(), '-V', 'bla')).names).toEqual(['f.other.foo', 'f.other.bar', 'g.foo']);
    expect((await selected(blaFoo(), '-v', '')).names).toEqual(['g.foo']);
  });

  it('-r matches the full name by length and offsets, not by separators', async () => {
    expect((await selected(blaFoo(), '-r', 'f.bla.foo')).names).toEqual(['f.bla.foo']);
    expect((await selected(blaFoo(), '-r', 'fXblaYfoo')).names).toEqual(['f.bla.foo']);
    expect((await selected(blaFoo(), '-r', 'f.bla.fo')).names).toEqual([]);
    expect((await selected(blaFoo(), '-r', 'g.foo')).names).toEqual(['g.foo']);
    expect((await selected(blaFoo(), '-r', 'g..foo')).names).toEqual([]);
    expect((await selected(blaFoo(), '-T', 'foo', '-r', 'f.bla.foo')).names).toEqual([]);
  });

  it('-t open_close selects 2 tests from 2 test cases; -r selects 1 from 1', async () => {
    expect(await selected(hmmLike(), '-t', 'open_close')).toEqual({
      plan: '1..2 / # Starting 2 tests from 2 test cases.',
      names: ['hmm.hmm_device_private.open_close', 'hmm.hmm_device_coherent.open_close'],
    });
    expect((await selected(hmmLike(), '-r', 'hmm.hmm_device_private.open_close')).plan).toBe(
      '1..1 / # Starting 1 tests from 1 test cases.',
    );
    expect((await selected(hmmLike())).plan).toBe('1..8 / # Starting 8 tests from 4 test cases.');
  });

  it('accepts -tname, clusters, permutation and stops at --', async () => {
    expect((await selected(hmmLike(), '-tdouble_map')).names).toHaveLength(2);
    expect((await selected(hmmLike(), 'junk', '-dt', 'double_map', 'more')).names).toHaveLength(2);
    expect((await selected(hmmLike(), '-t', '-v')).names).toEqual([]);
    expect((await selected(hmmLike(), '--', '-t', 'double_map')).names).toHaveLength(8);
  });

  it('stops at the first non-option when POSIXLY_CORRECT is set', async () => {
    const cap = captureIO({ env: { POSIXLY_CORRECT: '1' } });
    await hmmLike().runMain(['p', 'junk', '-t', 'double_map'], cap.io);
    expect(cap.stdout().split('\n')[1]).toBe('1..8');
  });

  it('does not count -d as a positive filter and enables debug prints', async () => {
    const h = new Harness();
    h.TEST('dbg', (m) => m.debug('debug line'));
    h.TEST('msg', (m) => m.printMsg('always'));
    const quiet = captureIO();
    await h.runMain(['p'], quiet.io);
    expect(quiet.stdout()).not.toContain('debug line');
    const loud = captureIO();
    await h.runMain(['p', '-d'], loud.io);
    expect(loud.stdout()).toContain(
      '#  RUN           global.dbg ...\n# debug line\n#            OK  global.dbg\n',
    );
    expect(loud.stdout()).toContain('#  RUN           global.msg ...\n# always\n');
    expect(loud.stdout()).toContain('1..2\n');
  });
});

describe('extensions', () => {
  async function seen(...args: string[]): Promise<{ code: number; ctx?: TestContext; err: string }> {
    let ctx: TestContext | undefined;
    const h = new Harness();
    h.TEST('t', (m) => {
      ctx = m;
    });
    h.TEST('u', () => {});
    const cap = captureIO();
    const code = await h.runMain(['prog', ...args], cap.io);
    return { code, ctx, err: cap.stderr() };
  }

  it('passes --seed and --json through to tests without affecting filters', async () => {
    const a = await seen('--seed', '42', '--json', 'out.json', '-t', 't');
    expect(a.code).toBe(KSFT_PASS);
    expect(a.ctx?.seed).toBe(42);
    expect(a.ctx?.options.seed).toBe(42);
    expect(a.ctx?.options.json).toBe('out.json');
    expect(a.ctx?.options.argv0).toBe('prog');
    const b = await seen('--seed=0x10', '--json=r.json');
    expect(b.ctx?.seed).toBe(16);
    expect(b.ctx?.options.json).toBe('r.json');
    const c = await seen('--seed', '-7');
    expect(c.ctx?.seed).toBe(-7);
    const d = await seen();
    expect(d.ctx?.seed).toBeUndefined();
    expect(d.ctx?.options.json).toBeUndefined();
  });

  it('rejects a missing or malformed --seed with usage and exit 1', async () => {
    const a = await seen('--seed');
    expect(a.code).toBe(KSFT_FAIL);
    expect(a.err.split('\n').slice(0, 2)).toEqual([
      "prog: option '--seed' requires an argument",
      'Usage: prog [-h|-l|-d] [-t|-T|-v|-V|-f|-F|-r name]',
    ]);
    const b = await seen('--seed', 'abc');
    expect(b.code).toBe(KSFT_FAIL);
    expect(b.err.split('\n')[0]).toBe("prog: invalid argument 'abc' for '--seed'");
  });
});
