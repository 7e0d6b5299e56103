/**
 * The shell must never lose the session by accident (issue 13): signals are named by their
 * number, words after a complete command are refused, and a `$` whose mapping is gone is flagged.
 */

import { describe, expect, it } from 'vitest';
import { COMMANDS } from './commands/index.js';
import { signalName, signalNumber } from './signals.js';
import { newSession, run, script, text } from './testing/harness.js';

const A = '0x7effffc00000';

describe('signals are named by their number', () => {
  it('names every Linux x86-64 signal by number, and unknown numbers as SIG<n>', () => {
    expect([...Array(15)].map((_, i) => signalName(i + 1))).toEqual([
      'SIGHUP',
      'SIGINT',
      'SIGQUIT',
      'SIGILL',
      'SIGTRAP',
      'SIGABRT',
      'SIGBUS',
      'SIGFPE',
      'SIGKILL',
      'SIGUSR1',
      'SIGSEGV',
      'SIGUSR2',
      'SIGPIPE',
      'SIGALRM',
      'SIGTERM',
    ]);
    expect(signalName(17)).toBe('SIGCHLD');
    expect(signalName(31)).toBe('SIGSYS');
    expect(signalName(40)).toBe('SIG40');
    expect(signalNumber('KILL')).toBe(9);
    expect(signalNumber('sigterm')).toBe(15);
    expect(signalNumber('IOT')).toBe(6);
    expect(signalNumber('WIBBLE')).toBeUndefined();
  });

  it('a command whose process the OOM killer ends reports SIGKILL, not SIGSEGV', () => {
    // Without swap: with it, direct reclaim would write the pages out instead.
    const s = newSession({ swapBytes: 0 });
    run(s, 'spawn', 'mmap 300M noreserve');
    // The process's own stores do not fit in the 256 MiB machine: the OOM killer picks pid 2
    // itself (the model's oom_kill_allocating_task policy).
    const e = run(s, 'write $ 300M fill 1');
    expect(e.result.error?.name).toBe('SIGKILL');
    expect(text(e)).toMatch(
      /^write: SIGKILL — signal 9 delivered to pid 2 at 0x[0-9a-f]+: out of memory; the process was killed$/,
    );
    expect(s.kernel.task(2)).toBeUndefined();
    expect(s.currentPid).toBe(1);
  });

  it('kill, ps and wait name the signal a process was killed by', () => {
    const s = newSession();
    run(s, 'fork');
    expect(text(run(s, 'kill 2 TERM'))).toContain('kill: SIGTERM (signal 15) sent to 2: now a zombie');
    expect(text(run(s, 'ps'))).toContain('zombie (killed by SIGTERM)');
    expect(text(run(s, 'wait'))).toBe('wait: child 2 killed by SIGTERM');
    run(s, 'fork');
    expect(text(run(s, 'kill 3 sigusr1'))).toContain('kill: SIGUSR1 (signal 10) sent to 3');
    expect(text(run(s, 'wait 3'))).toBe('wait: child 3 killed by SIGUSR1');
    run(s, 'fork');
    expect(text(run(s, 'kill 4 40'))).toContain('kill: SIG40 (signal 40) sent to 4');
    expect(text(run(s, 'wait'))).toBe('wait: child 4 killed by SIG40');
    // Global init ignores the signal: kill() returns 0 and pid 1 keeps running.
    expect(text(run(s, 'kill 1 KILL'))).toBe(
      'kill: SIGKILL (signal 9) sent to 1: still running (the signal was ignored)',
    );
    expect(text(run(s, 'kill 1 WIBBLE'))).toContain('bad signal "WIBBLE"');
  });
});

describe('words after a complete command are an error', () => {
  it('maps | grep x and walk $ > file are refused, naming the words', () => {
    const s = newSession();
    run(s, 'mmap 2M');
    const maps = run(s, 'maps | grep x');
    expect(maps.result.ok).toBe(false);
    expect(maps.result.error?.name).toBe('usage');
    expect(text(maps)).toBe(
      'maps: usage — unexpected words "| grep x" after the command (the shell has no pipes, redirections or command lists) — usage: maps',
    );
    expect(text(run(s, 'walk $ > file'))).toBe(
      'walk: usage — unexpected words "> file" after the command (the shell has no pipes, redirections or command lists) — usage: walk <addr>',
    );
    expect(text(run(s, 'vmstat all please'))).toBe(
      'vmstat: usage — unexpected word "please" after the command — usage: vmstat [all]',
    );
  });

  it('a refused command changes nothing: no unmap, no vmstat change, no history, no map focus', () => {
    const s = newSession();
    run(s, 'mmap 4M', 'write $ 4K fill 1');
    const vmas = text(run(s, 'maps'));
    const before = { history: [...s.history], focus: s.focus, delta: s.lastDelta };
    const e = run(s, 'munmap $+2M 2M now');
    expect(text(e)).toBe(
      'munmap: usage — unexpected word "now" after the command — usage: munmap <addr> <len>',
    );
    expect(e.vmstatDelta).toEqual([]);
    expect(s.history).toEqual(before.history);
    expect(s.focus).toBe(before.focus);
    expect(s.lastDelta).toBe(before.delta);
    expect(text(run(s, 'maps'))).toBe(vmas);
    expect(run(s, `check ${A} 4K fill 1`).result.ok).toBe(true);
  });

  it('every kind of argument list: fixed, optional, patterns, device options, subcommands', () => {
    const s = newSession();
    run(s, 'mmap 4M hugepage');
    const refused: [string, string][] = [
      ['write $ 4K fill 1 2', '"2"'],
      ['write $ 4K zero x', '"x"'],
      ['write $ 4K index 0 1 | head', '"| head"'],
      ['write $ bytes de ad > out', '"> out"'],
      ['check $ 4K random 7 8', '"8"'],
      ['read $ 64 all more', '"more"'],
      ['fault $ 4K write twice', '"twice"'],
      ['migrate $ 2M dev now', '"now"'],
      ['migrate $ 2M dev -d 1 now', '"now"'],
      ['dread $ 4K 8K', '"8K"'],
      ['dwrite $ 4K fill 1 extra -d 0', '"extra"'],
      ['release now', '"now"'],
      ['dmirror read $ 4K x', '"x"'],
      ['dmirror migrate-to-dev $ 2M dev', '"dev"'],
      ['gpu read $ 4K x', '"x"'],
      ['gwrite $ 4K fill 1 x', '"x"'],
      ['folio $ x', '"x"'],
      ['folio pfn 0x1000 x', '"x"'],
      ['map zoom $ x', '"x"'],
      ['map x y', '"y"'],
      ['mprotect $ 4K r w', '"w"'],
      ['ps aux', '"aux"'],
      ['switch 1 2', '"2"'],
      ['sysctl vm.overcommit_memory=1 | cat', '"| cat"'],
      ['cat /proc/meminfo | less', '"| less"'],
      ['set a $ $', '"$"'],
      ['help mmap now', '"now"'],
      ['notifiers x', '"x"'],
    ];
    for (const [line, words] of refused) {
      const r = run(s, line).result;
      expect(r.error?.name, line).toBe('usage');
      expect(r.lines.at(-1), line).toContain(`unexpected word${words.includes(' ') ? 's' : ''} ${words}`);
    }
    // Nothing of that ran: the sysctl was not set, and no variable was made.
    expect(text(run(s, 'sysctl vm.overcommit_memory'))).toBe('vm.overcommit_memory = 0');
    expect(s.vars.has('a')).toBe(false);
    // Variable-length commands keep working.
    for (const line of [
      'mmap 2M rw private anon hugepage populate',
      'write $ 4K index 0 1',
      'write $+8K bytes de ad be ef',
      'write $+16K bytes 0xde 0xad',
      'dwrite $ 4K fill 1 -d 1',
      'dmirror migrate-to-dev $ 2M -d 0',
      'dmirror migrate $ 2M sys',
      'gpu pt $ 2M',
      'echo one | two > three',
      'sysctl -w vm.overcommit_ratio=60 vm.overcommit_memory',
      'explore machine procs=2',
      'explore op p0.t0 write r0 0+1 seed 1',
      'mremap $ 2M 4M maymove',
    ]) {
      const e = run(s, line);
      expect(e.result.ok, `${line}: ${text(e)}`).toBe(true);
    }
  });

  it('every command declares how many words it takes', () => {
    for (const c of COMMANDS) expect(c.maxArgs, c.name).toBeDefined();
  });

  it('--strict stops at a line with extra words', async () => {
    const { code, out } = await script('mmap 2M\nwalk $ | less\nmunmap $ 2M', { strict: true });
    expect(code).toBe(1);
    expect(out).toContain('(stopped at line 2: --strict)');
    expect(out).not.toContain('munmap: ');
  });
});

describe('a stale $ is flagged', () => {
  const STALE = `$ is ${A}, the 4 MiB mapping the last mmap made, but nothing in ${A}-0x7f0000000000 is mapped any more (munmap'd since); the command was not run. \`mmap\` sets $ again; give the address itself (${A}) to use it anyway`;

  it('after munmap of the whole mapping, commands that act on memory refuse $', () => {
    const s = newSession();
    run(s, 'mmap 4M hugepage', 'write $ 2M index', 'munmap $ 4M');
    const w = run(s, 'write $ 4K fill 1');
    expect(w.result.error?.name).toBe('stale');
    expect(text(w)).toBe(`write: stale — ${STALE}`);
    for (const line of [
      'read $',
      'check $+4K 4K zero',
      'munmap $ 4M',
      'migrate $ 2M dev',
      'walk $',
      'gread $ 4K',
      'dmirror snapshot $ 4K',
    ]) {
      const r = run(s, line).result;
      expect(r.error?.name, line).toBe('stale');
      expect(r.lines.at(-1), line).toContain("is mapped any more (munmap'd since)");
    }
    // Nothing was mapped or faulted in by those; the map still shows no VMA.
    expect(text(run(s, 'maps'))).not.toContain('7effffc00000');
    // The address itself still works (the shell's usual checks apply), and so do commands that do not
    // act on memory, and mmap at $ (an unmapped range is its point).
    expect(text(run(s, `read ${A} 16`))).toContain('read: SIGSEGV — 0x7effffc00000 is not mapped');
    expect(text(run(s, 'echo $'))).toBe(A);
    expect(text(run(s, 'set old $'))).toBe(`$old = ${A}`);
    expect(text(run(s, 'mmap 2M at $ fixed'))).toContain(`mmap: ${A}-0x7effffe00000`);
    expect(run(s, 'write $ 4K fill 1').result.ok).toBe(true);
  });

  it('a partly unmapped mapping is still $ (the commands check their own range)', () => {
    const s = newSession();
    run(s, 'mmap 4M hugepage', 'write $ 2M index', 'munmap $ 1M');
    expect(run(s, 'check $+1M 1M index 262144').result.ok).toBe(true);
    expect(text(run(s, 'read $ 16'))).toContain('read: SIGSEGV — 0x7effffc00000 is not mapped');
    expect(run(s, 'munmap $ 4M').result.ok).toBe(true);
    expect(run(s, 'walk $+1M').result.error?.name).toBe('stale');
  });

  it('in another process $ is checked against that process, and mremap moves $', () => {
    const s = newSession();
    run(s, 'mmap 2M', 'fork', 'munmap $ 2M', 'switch 2');
    // The child still has the mapping it inherited.
    expect(run(s, 'write $ 4K fill 2').result.ok).toBe(true);
    run(s, 'spawn');
    expect(text(run(s, 'read $'))).toMatch(
      /^read: stale — \$ is 0x7effffe00000, the 2 MiB mapping the last mmap made in pid 1, but pid 3 has nothing mapped in 0x7effffe00000-0x7f0000000000/,
    );
    run(s, 'mmap 2M', 'mremap $ 2M 4M maymove');
    expect(run(s, 'write $+2M 4K fill 3').result.ok).toBe(true);
  });
});
