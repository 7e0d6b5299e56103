import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { BINARIES, type VmTestBinary } from './binaries.js';
import type { ProgramMain } from './program.js';
import { type RunVmtestsOptions, runVmtests } from './run-vmtests.js';
import { entryBinary, RUN_VMTESTS_ENTRIES, type ScriptEntry } from './script.js';

/** Runs the script with captured stdout and stderr. */
function script(args: string[], options: RunVmtestsOptions = {}) {
  const out = { stdout: '', stderr: '' };
  const code = runVmtests(
    ['./run_vmtests.sh', ...args],
    {
      stdout: {
        write: (s: string) => {
          out.stdout += s;
          return true;
        },
      },
      stderr: {
        write: (s: string) => {
          out.stderr += s;
          return true;
        },
      },
      env: {},
      time: () => 1234,
      monotonicNs: () => 0,
    },
    { machine: { kernel: { ramBytes: 512 << 20 } }, ...options },
  );
  return { code, ...out };
}

/** A stand-in binary for the framing tests (the script does not care what a binary does). */
function fake(name: string, main: ProgramMain): VmTestBinary {
  return { name, source: 'test', version: 'test', main };
}

const fakes = new Map<string, VmTestBinary>([
  [
    'partial',
    fake('partial', (env) => {
      env.stdio.printf('line\ntail');
      return 0;
    }),
  ],
  ['fails', fake('fails', () => 1)],
  ['skips', fake('skips', () => 4)],
  [
    'segv',
    fake('segv', (env) => {
      const p = env.libc.mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      return env.proc.readU8(p);
    }),
  ],
  [
    'pool',
    fake('pool', (env) => {
      const m = /HugePages_Free:\s+(\d+)/.exec(new TextDecoder().decode(readAll(env.libc, '/proc/meminfo')));
      env.stdio.printf(`free ${m?.[1]}\n`);
      return 0;
    }),
  ],
]);

function readAll(
  libc: {
    open(p: string, f: number): number;
    pread(fd: number, b: Uint8Array, n: number, o: number): number;
  },
  path: string,
) {
  const fd = libc.open(path, 0);
  const buf = new Uint8Array(1 << 16);
  const n = libc.pread(fd, buf, buf.length, 0);
  return buf.subarray(0, Math.max(0, n));
}

const e = (category: string, ...argv: string[]): ScriptEntry => ({ category, argv });

describe('run_vmtests.sh (run-vmtests.ts)', () => {
  it('frames each binary: separator, `running`, the output prefixed by `# `, [PASS]/[FAIL]/[SKIP], a TAP line', () => {
    const r = script([], {
      binaries: fakes,
      entries: [
        e('mmap', './partial'),
        e('cow', './fails', '-x'),
        e('mremap', './skips'),
        e('thp', './segv'),
      ],
    });
    expect(r.stdout).toBe(
      [
        'TAP version 13',
        '# -----------------',
        '# running ./partial',
        '# -----------------',
        '# line',
        // sed keeps a last line without newline as is; the next echo continues it.
        '# tail# [PASS]',
        'ok 1 partial',
        '# ------------------',
        '# running ./fails -x',
        '# ------------------',
        '# [FAIL]',
        'not ok 2 fails -x # exit=1',
        '# ---------------',
        '# running ./skips',
        '# ---------------',
        '# [SKIP]',
        'ok 3 skips # SKIP',
        '# --------------',
        '# running ./segv',
        '# --------------',
        '# [FAIL]',
        // ${PIPESTATUS[0]} of a subshell whose program died of SIGSEGV.
        'not ok 4 segv # exit=139',
        '# SUMMARY: PASS=1 SKIP=1 FAIL=2',
        '1..4',
        '',
      ].join('\n'),
    );
    expect(r.stderr).toBe('');
    // exitcode is set by each non-passing test in turn: the last one (a failure) wins.
    expect(r.code).toBe(1);
  });

  it('exits 4 when a skip comes after a failure (the script just overwrites exitcode)', () => {
    const r = script([], { binaries: fakes, entries: [e('cow', './fails'), e('mmap', './skips')] });
    expect(r.code).toBe(4);
    expect(r.stdout).toContain('# SUMMARY: PASS=0 SKIP=1 FAIL=1\n1..2\n');
  });

  it('-t runs only the listed categories, in script order; an unknown category runs nothing and exits 0', () => {
    const entries = [e('mmap', './partial'), e('cow', './fails'), e('mremap', './skips')];
    const r = script(['-t', 'mremap mmap'], { binaries: fakes, entries });
    expect(r.stdout.split('\n').filter((l) => /^(not )?ok /.test(l))).toEqual([
      'ok 1 partial',
      'ok 2 skips # SKIP',
    ]);
    const none = script(['-t', 'nosuch'], { binaries: fakes, entries });
    expect(none).toEqual({
      code: 0,
      stdout: 'TAP version 13\n# SUMMARY: PASS=0 SKIP=0 FAIL=0\n1..0\n',
      stderr: '',
    });
  });

  it('-n drops the TAP lines and the `# ` prefix', () => {
    const r = script(['-n'], { binaries: fakes, entries: [e('mmap', './partial')] });
    expect(r.stdout).toBe(
      [
        '-----------------',
        'running ./partial',
        '-----------------',
        'line',
        'tail[PASS]',
        'SUMMARY: PASS=1 SKIP=0 FAIL=0',
        '',
      ].join('\n'),
    );
  });

  it('-h prints the usage and exits 0; a bad option is reported by getopts and the run goes on', () => {
    const h = script(['-h'], { binaries: fakes, entries: [] });
    expect(h.code).toBe(0);
    expect(h.stdout.split('\n').slice(0, 3)).toEqual([
      'usage: ./run_vmtests.sh [ options ]',
      '',
      '  -a: run all tests, including extra ones (other than destructive ones)',
    ]);
    expect(h.stdout).toContain('- madv_populate\n\ttest memadvise(2) MADV_POPULATE_{READ,WRITE} options\n');
    // -d is documented but missing from the getopts string "aht:n".
    const d = script(['-d', '-t', 'nosuch'], { binaries: fakes, entries: [e('mmap', './partial')] });
    expect(d.stderr).toBe('./run_vmtests.sh: illegal option -- d\n');
    expect(d.code).toBe(0);
  });

  it('grows the hugetlb pool to 256 MiB of free huge pages before the tests (needpgs)', () => {
    const r = script(['-t', 'mmap'], { binaries: fakes, entries: [e('mmap', './pool')] });
    expect(r.stdout).toContain('# free 128\n');
  });

  it('lists every ported binary in the script, in run_vmtests.sh order', () => {
    const names = RUN_VMTESTS_ENTRIES.map(entryBinary).filter((n) => BINARIES.has(n));
    expect(names).toEqual([
      'map_fixed_noreplace',
      'mremap_test',
      'mremap_dontunmap',
      'madv_populate',
      'cow',
      'khugepaged',
      'khugepaged',
      'khugepaged',
      'khugepaged',
      'split_huge_page_test',
    ]);
  });

  it('runs the ported binaries by default, with each binary exit code turned into the TAP line and summary', () => {
    // khugepaged's four thp runs (about half a minute) have their own run_vmtests.sh test in
    // bin/khugepaged.test.ts; here the other binaries.
    const binaries = new Map([...BINARIES].filter(([n]) => n !== 'khugepaged'));
    const r = script([], { machine: {}, binaries });
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('TAP version 13');
    const tap = lines.filter((l) => /^(not )?ok \d+ /.test(l));
    expect(tap.map((l) => l.replace(/ # .*$/, ''))).toEqual([
      'ok 1 map_fixed_noreplace',
      'ok 2 mremap_test',
      'ok 3 mremap_dontunmap',
      expect.stringMatching(/^(not )?ok 4 madv_populate$/),
      expect.stringMatching(/^(not )?ok 5 cow$/),
      expect.stringMatching(/^(not )?ok 6 split_huge_page_test$/),
    ]);
    for (const name of [
      'map_fixed_noreplace',
      'mremap_test',
      'mremap_dontunmap',
      'madv_populate',
      'cow',
      'split_huge_page_test',
    ]) {
      const title = `# running ./${name}`;
      const i = lines.indexOf(title);
      expect(lines[i - 1]).toBe(`# ${'-'.repeat(title.length - 2)}`);
      expect(lines[i + 1]).toBe(lines[i - 1]);
    }
    // Every line of a binary's output is prefixed; only the script's TAP lines are not.
    for (const l of lines.filter(Boolean))
      expect(l).toMatch(/^(# |(not )?ok \d+ |TAP version 13$|1\.\.\d+$)/);
    const pass = tap.filter((l) => /^ok \d+ [^#]+$/.test(l)).length;
    const skip = tap.filter((l) => l.endsWith(' # SKIP')).length;
    const fail = tap.filter((l) => l.startsWith('not ok')).length;
    expect(lines.at(-3)).toBe(`# SUMMARY: PASS=${pass} SKIP=${skip} FAIL=${fail}`);
    expect(lines.at(-2)).toBe('1..6');
    expect(r.code).toBe(fail ? 1 : skip ? 4 : 0);
  }, 600_000);
});
