import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { bootVmtestsMachine } from './machine.js';
import { type ProgramEnv, runProgram } from './program.js';
import { PIPE_BUF_SIZE, type ProgramIO, Stdio } from './stdio.js';
import { capture } from './testing/run.js';

const run = (main: (env: ProgramEnv) => number, extra: Partial<ProgramIO> = {}) => {
  const { io, out } = capture(extra);
  const kernel = bootVmtestsMachine({ kernel: { ramBytes: 256 << 20 } });
  const r = runProgram(kernel, main, ['./prog'], io);
  return { ...r, ...out };
};

describe('glibc stdio of a piped selftest (Stdio)', () => {
  it('line buffering writes whole lines and keeps a partial line until the next newline or exit', () => {
    const writes: string[] = [];
    const s = new Stdio({
      stdout: { write: (c: string) => writes.push(c) > 0 },
      stderr: { write: () => true },
    });
    s.setvbuf('line');
    s.printf('ok 1 a\nok 2 ');
    expect(writes).toEqual(['ok 1 a\n']);
    s.printf('b\n');
    expect(writes).toEqual(['ok 1 a\n', 'ok 2 b\n']);
    s.printf('tail');
    s.flush();
    expect(writes.at(-1)).toBe('tail');
  });

  it('full buffering on a pipe writes 4096-byte blocks once more data arrives (_IO_new_file_xsputn)', () => {
    const writes: string[] = [];
    const s = new Stdio({
      stdout: { write: (c: string) => writes.push(c) > 0 },
      stderr: { write: () => true },
    });
    expect(s.mode).toBe('full');
    s.printf('x'.repeat(PIPE_BUF_SIZE));
    expect(writes).toEqual([]);
    s.printf('y'.repeat(2 * PIPE_BUF_SIZE + 10));
    expect(writes.map((w) => w.length)).toEqual([3 * PIPE_BUF_SIZE]);
    s.flush();
    expect(writes.map((w) => w.length)).toEqual([3 * PIPE_BUF_SIZE, 10]);
  });

  it('stderr is unbuffered, so in a 2>&1 capture it overtakes buffered stdout', () => {
    const r = run((env) => {
      env.stdio.printf('first\n');
      env.stdio.perror('mremap', 14);
      return 0;
    });
    expect(r.merged).toBe('mremap: Bad address\nfirst\n');
    expect(r.status).toBe(0);
  });

  it('a terminal makes stdout line buffered from the start (isatty)', () => {
    const r = run(
      (env) => {
        env.stdio.printf('first\n');
        env.stdio.perror('mremap', 14);
        return 0;
      },
      { stdoutIsTty: true },
    );
    expect(r.merged).toBe('first\nmremap: Bad address\n');
  });
});

describe('kselftest.h (Ksft)', () => {
  it('prints the header unless KSFT_TAP_LEVEL is set, and makes stdout line buffered (ksft_print_header)', () => {
    const main = (env: ProgramEnv): number => {
      env.ksft.print_header();
      env.ksft.set_plan(1);
      env.stdio.perror('x', 22);
      env.ksft.test_result_pass('a\n');
      return env.ksft.finished();
    };
    expect(run(main).merged).toBe(
      'TAP version 13\n1..1\nx: Invalid argument\nok 1 a\n# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0\n',
    );
    expect(run(main, { env: { KSFT_TAP_LEVEL: '1' } }).stdout.startsWith('1..1\n')).toBe(true);
  });

  it('numbers every result in order and counts them in Totals (ksft_test_result_*)', () => {
    const r = run((env) => {
      const k = env.ksft;
      k.set_plan(5);
      k.test_result(true, 'p\n');
      k.test_result(false, 'f\n');
      k.test_result_xfail('x\n');
      k.test_result_skip('s\n');
      k.test_result_error('e\n');
      return k.exit_fail();
    });
    expect(r.stdout).toBe(
      [
        '1..5',
        'ok 1 p',
        'not ok 2 f',
        'ok 3 # XFAIL x',
        'ok 4 # SKIP s',
        'not ok 5 # error e',
        '# 1 skipped test(s) detected. Consider enabling relevant config options to improve coverage.',
        '# Totals: pass:1 fail:1 xfail:1 xpass:0 skip:1 error:1',
        '',
      ].join('\n'),
    );
    expect(r.status).toBe(1);
  });

  it('ksft_finished() passes only when pass + xfail + skip equals the plan', () => {
    const short = run((env) => {
      env.ksft.set_plan(2);
      env.ksft.test_result_pass('a\n');
      return env.ksft.finished();
    });
    expect(short.stdout).toContain('# Planned tests != run tests (2 != 1)\n');
    expect(short.status).toBe(1);
    const full = run((env) => {
      env.ksft.set_plan(2);
      env.ksft.test_result_xfail('a\n');
      env.ksft.test_result_skip('b\n');
      return env.ksft.finished();
    });
    expect(full.status).toBe(0);
  });

  it('ksft_exit_skip() before any plan prints `1..0 # SKIP` and no counts; after a plan it is a counted result', () => {
    const early = run((env) => env.ksft.exit_skip('no feature\n'));
    expect(early.stdout).toBe('1..0 # SKIP no feature\n');
    expect(early.status).toBe(4);
    const late = run((env) => {
      env.ksft.set_plan(3);
      env.ksft.test_result_pass('a\n');
      return env.ksft.exit_skip('gone\n');
    });
    expect(late.stdout).toBe(
      [
        '1..3',
        'ok 1 a',
        'ok 2 # SKIP gone',
        '# 1 skipped test(s) detected. Consider enabling relevant config options to improve coverage.',
        '# Planned tests != run tests (3 != 2)',
        '# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:1 error:0',
        '',
      ].join('\n'),
    );
  });

  it('ksft_exit_fail_msg() prints `Bail out!`, the counts and exits 1', () => {
    const r = run((env) => {
      env.ksft.set_plan(1);
      return env.ksft.exit_fail_msg('mmap failed\n');
    });
    expect(r.stdout).toBe(
      '1..1\nBail out! mmap failed\n# Planned tests != run tests (1 != 0)\n# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:0 error:0\n',
    );
    expect(r.status).toBe(1);
  });

  it('a message without a newline leaves the next output on the same line', () => {
    const r = run((env) => {
      env.ksft.set_plan(1);
      env.ksft.test_result_skip('x - missing uffd');
      return env.ksft.exit_pass();
    });
    expect(r.stdout).toContain('ok 1 # SKIP x - missing uffd# 1 skipped test(s) detected.');
  });
});

describe('runProgram()', () => {
  it('a fatal fault kills the program: status 128 + SIGSEGV and the unflushed stdout is lost', () => {
    const r = run((env) => {
      env.stdio.printf('never flushed\n');
      const p = env.libc.mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      env.proc.readU8(p);
      return 0;
    });
    expect(r.status).toBe(128 + 11);
    expect(r.signal).toBe(11);
    expect(r.merged).toBe('');
  });

  it('exit codes are taken modulo 256, as waitpid() reports them', () => {
    expect(run(() => -1).status).toBe(255);
  });

  it('a JavaScript exception is a model error on stderr, not a kernel result', () => {
    const r = run(() => {
      throw new TypeError('boom');
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('./prog: model error: TypeError: boom\n');
  });
});
