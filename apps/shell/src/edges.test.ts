/**
 * Linux at the edges, as the shell shows it (issue 13, mm-core items): MAP_POPULATE larger than
 * the machine (__vm_enough_memory(), then the OOM killer), global init's exit panicking
 * (do_exit()), Ctrl-C in global init (sig_task_ignored()), write-only mappings readable (x86
 * access_error()). A modelled kernel panic is shown as the kernel prints it and the session goes
 * on.
 */
import { describe, expect, it } from 'vitest';
import { type Executed, executeSteps } from './commands/index.js';
import type { Session } from './session.js';
import { newSession, run, script, text } from './testing/harness.js';

/** Runs a line in steps and sends Ctrl-C at the first progress point. */
function ctrlCAtFirstStep(s: Session, line: string): Executed {
  const g = executeSteps(s, line);
  for (let i = 0; ; i++) {
    const r = g.next();
    if (r.done) return r.value as Executed;
    if (i === 0) s.interrupt();
  }
}

describe('mmap populate larger than the machine', () => {
  it('`mmap 3G populate` on a 2 GiB machine (1 GiB swap): ENOMEM from heuristic overcommit, nothing mapped', async () => {
    const session = newSession({ ramBytes: 2 * 2 ** 30 });
    const { out, code } = await script('mmap 3G populate\nmaps', { session });
    expect(code).toBe(0);
    expect(out).toContain(
      'mmap: ENOMEM — vm.overcommit_memory=0 (heuristic overcommit) refuses a single mapping larger than RAM + swap (3.0 GiB) in __vm_enough_memory()',
    );
    expect(out).toContain('hmm:1> maps\n(no mappings)');
  });

  it('a size that passes overcommit but not free memory: a child is OOM-killed; global init gets the "no killable processes" panic', async () => {
    // Without swap (with it, direct reclaim would swap the first mapping out instead).
    const { out, session } = await script(
      ['fork', 'switch 2', 'mmap 250M populate', 'ps', 'mmap 250M populate', 'ps'].join('\n'),
      { session: newSession({ swapBytes: 0 }) },
    );
    expect(out).toContain(
      'mmap: SIGKILL — process 2 was killed by SIGKILL while populating (the OOM killer chose it: out_of_memory()); current process is 1',
    );
    expect(out).toContain('zombie (killed by SIGKILL)');
    const panic = out.slice(out.lastIndexOf('hmm:1> mmap 250M populate'));
    expect(panic).toContain('  Out of memory and no killable processes...');
    expect(panic).toContain('  Kernel panic - not syncing: System is deadlocked on memory');
    // The summary is one line (the dump is shown once, above it).
    expect(panic).toContain(
      '\nmmap: kernel panic (modelled): System is deadlocked on memory in out_of_memory (mm/oom_kill.c: out of memory and no killable processes (global init is never an OOM victim))\nhmm:1> ps',
    );
    expect(panic).toMatch(/\*\s+1\s+-\s+running/);
    expect(session.taint?.flags).toBe('D');
  });
});

describe('global init does not exit', () => {
  it('`exit` in pid 1 panics ("Attempted to kill init!", do_exit()); the shell shows it and goes on', async () => {
    const { out, code, session } = await script('exit\nexit 1\nps\nmmap 4K');
    expect(code).toBe(0);
    expect(out).toContain('  Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000');
    expect(out).toContain(
      '\nexit: kernel panic (modelled): Attempted to kill init! exitcode=0x00000000 in do_exit (kernel/exit.c: global init (pid 1) called exit_group(0), and do_exit() panics when the last thread of global init exits)\n',
    );
    expect(out).toContain('  Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100');
    expect(out).toMatch(/\*\s+1\s+-\s+running/);
    expect(out).toMatch(/hmm:1> mmap 4K\nmmap: 0x[0-9a-f]+-0x[0-9a-f]+ \(4 KiB/);
    expect(session.taint?.flags).toBe('D');
  });

  it('Ctrl-C in global init stops the command between steps; init ignores SIGINT and keeps running', () => {
    const s = newSession({ ramBytes: 1024 * 2 ** 20 });
    run(s, 'mmap 48M rw private anon nohugepage');
    const e = ctrlCAtFirstStep(s, 'write $ 48M fill 0x5a');
    expect(e.result.error?.name).toBe('SIGINT');
    expect(text(e)).toContain(
      'interrupted by Ctrl-C after 16 MiB of 48 MiB (33 %): process 1 is init, which ignores SIGINT (sig_task_ignored()), so it lives and the shell stopped the command here',
    );
    expect(s.proc?.pid).toBe(1);
    expect(s.proc?.state).toBe('running');
    expect(s.taint?.flags ?? '').toBe('');
    expect(text(run(s, 'check $ 16M fill 0x5a'))).toContain('match');
    expect(s.kernel.check()).toEqual([]);
  });
});

describe('write-only mappings are readable (x86)', () => {
  it('read of a PROT_WRITE mapping: zeros, then what was written, no SIGSEGV', async () => {
    const { out } = await script('mmap 4K w\nread $ 4\nwrite $ 4 fill 0x07\nread $ 4\nps');
    expect(out).toMatch(/hmm:1> read \$ 4\n.*00 00 00 00/);
    expect(out).toMatch(/hmm:1> write \$ 4 fill 0x07\n[^\n]*\nhmm:1> read \$ 4\n.*07 07 07 07/);
    expect(out).not.toContain('SIGSEGV');
    expect(out).not.toContain('not readable');
    expect(out).toMatch(/\*\s+1\s+-\s+running/);
  });

  it('`w` is a protection word of mmap and mprotect (help and completion), and mprotect to `w` keeps the data readable', async () => {
    const { out } = await script(
      'help mmap\nhelp mprotect\nmmap 4K\nwrite $ 4 fill 0x05\nmprotect $ 4K w\nread $ 4',
    );
    expect(out).toContain('mmap <len> [rw|r|w|rwx|rx|none]');
    expect(out).toContain('mprotect <addr> <len> <rw|r|w|rwx|rx|none>');
    expect(out).toContain('now -w-');
    expect(out).toMatch(/hmm:1> read \$ 4\n.*05 05 05 05/);
    expect(out).not.toContain('SIGSEGV');
  });
});

describe('smaps of hugetlb mappings', () => {
  it('hugetlb pages are Private_Hugetlb, not Rss (smaps_hugetlb_range())', async () => {
    const { out } = await script('mmap 4M hugetlb\nwrite $ 4 fill 0x01\nsmaps $');
    expect(out).toMatch(/Size:\s*4096 kB\s+Rss:\s*0 kB\s+Anonymous:\s*0 kB\s+AnonHugePages:\s*0 kB/);
    expect(out).toMatch(/Shared_Hugetlb:\s*0 kB\s+Private_Hugetlb:\s*2048 kB/);
  });
});
