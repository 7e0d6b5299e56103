import { SIGINT } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import type { Executed } from './commands/index.js';
import { executeSteps } from './commands/index.js';
import type { Progress } from './commands/types.js';
import type { Session } from './session.js';
import { newSession, run, text } from './testing/harness.js';

/** Runs a line in steps, calling `at` with each progress point; returns the progress seen and the result. */
function stepped(s: Session, line: string, at: (p: Progress, i: number) => void = () => {}) {
  const seen: Progress[] = [];
  const g = executeSteps(s, line);
  for (;;) {
    const r = g.next();
    if (r.done) return { seen, e: r.value as Executed };
    at(r.value, seen.length);
    seen.push(r.value);
  }
}

describe('long commands in steps (progress, Ctrl-C)', () => {
  it('write and check have no size limit and give the same answer as one access', () => {
    const s = newSession({ ramBytes: 1024 * 2 ** 20 });
    run(s, 'mmap 40M rw private anon nohugepage');
    const w = stepped(s, 'write $ 40M index 7');
    expect(w.e.result.ok).toBe(true);
    expect(w.seen.map((p) => p.done)).toEqual([16 << 20, 32 << 20]);
    expect(w.seen.every((p) => p.total === 40 << 20)).toBe(true);
    expect(text(run(s, 'check $ 40M index 7'))).toContain('match int index from 7');
    // A mismatch in the third step is reported at its own address with its own values.
    const base = s.vars.get('')!;
    run(s, `write $+${(33 << 20) + 8} 4 fill 0x01`);
    expect(text(run(s, 'check $ 40M index 7'))).toBe(
      `check: mismatch — 1 of ${(40 << 20) / 4} ints differ from int index from 7; first at 0x${(base + (33 << 20) + 8).toString(16)}: got 16843009, expected ${7 + ((33 << 20) + 8) / 4}`,
    );
    expect(text(run(s, 'read $ 40M'))).toContain('40 MiB in all; no simple pattern');
  });

  it('Ctrl-C between steps kills the process with SIGINT; what was done stays, the machine is consistent', () => {
    const s = newSession({ ramBytes: 1024 * 2 ** 20 });
    run(s, 'spawn', 'mmap 48M rw private anon nohugepage');
    const pid = s.currentPid!;
    const p = s.proc!;
    const { seen, e } = stepped(s, 'write $ 48M fill 0x5a', (_p, i) => {
      if (i === 0) s.interrupt();
    });
    expect(seen).toHaveLength(1);
    expect(e.result.ok).toBe(false);
    expect(e.result.error?.name).toBe('SIGINT');
    expect(text(e)).toContain(
      `interrupted by Ctrl-C after 16 MiB of 48 MiB (33 %): process ${pid} killed by SIGINT`,
    );
    expect(p.state).not.toBe('running');
    expect(p.status & 0x7f).toBe(SIGINT);
    expect(s.kernel.check()).toEqual([]);
    expect(text(run(s, 'invariants'))).toContain('no violations');
  });

  it('Ctrl-C in init stops the command between steps; init ignores SIGINT and lives', () => {
    // prepare_signal() -> sig_task_ignored(): global init ignores a signal it has no handler for.
    const s = newSession({ ramBytes: 1024 * 2 ** 20 });
    run(s, 'mmap 48M rw private anon nohugepage');
    const p = s.proc!;
    expect(p.pid).toBe(1);
    const { seen, e } = stepped(s, 'write $ 48M fill 0x5a', (_p, i) => {
      if (i === 0) s.interrupt();
    });
    expect(seen).toHaveLength(1);
    expect(e.result.error?.name).toBe('SIGINT');
    expect(text(e)).toBe(
      'write: SIGINT — interrupted by Ctrl-C after 16 MiB of 48 MiB (33 %): process 1 is init, which ignores SIGINT (sig_task_ignored()), so it lives and the shell stopped the command here (what was done stays done)',
    );
    expect(p.state).toBe('running');
    expect(s.currentPid).toBe(1);
    // The first step's stores were done; the rest was not.
    expect(text(run(s, 'check $ 16M fill 0x5a'))).toContain('check: ok');
    expect(text(run(s, 'read $+16M 4'))).toContain('00 00 00 00');
    // The next command is not interrupted by the old Ctrl-C.
    expect(stepped(s, 'write $ 48M fill 0x5a').e.result.ok).toBe(true);
    expect(s.kernel.check()).toEqual([]);
  });

  it('migrate of a long range runs one ioctl per 64 MiB and reports the kernel events', () => {
    const s = newSession({ ramBytes: 1024 * 2 ** 20 });
    run(s, 'mmap 160M rw private anon hugepage', 'write $ 160M index');
    const { seen, e } = stepped(s, 'migrate $ 160M dev');
    expect(text(e)).toContain('migrate: 40960 page(s)');
    // To the device, cpages counts the pages read back; to system memory, collected units.
    expect(text(e)).toContain('cpages 40960 faults 0');
    expect(text(e)).toContain('the device sees index 0 (160 MiB)');
    expect(text(e)).toMatch(
      /kernel events: PTEs written \d+, TLB flushes \d+, mmu invalidations 80, folio locks \d+, rmap walks 80, copy commands 81920 \(320 MiB\)/,
    );
    expect(seen.map((p) => p.done)).toEqual([64 << 20, 128 << 20]);
    expect(text(run(s, 'migrate $ 160M sys'))).toContain('cpages 80');
    expect(text(run(s, 'check $ 160M index'))).toContain('match int index');
  });

  it('a migration interrupted between ioctls leaves the first part on the device', () => {
    const s = newSession({ ramBytes: 1024 * 2 ** 20 });
    run(s, 'spawn', 'mmap 160M rw private anon hugepage', 'write $ 160M index', 'fork');
    const { e } = stepped(s, 'migrate $ 160M dev', (_p, i) => {
      if (i === 0) s.interrupt();
    });
    expect(e.result.error?.name).toBe('SIGINT');
    expect(text(e)).toContain('after 64 MiB of 160 MiB');
    expect(s.kernel.check()).toEqual([]);
    expect(s.kernel.task(2)?.state).not.toBe('running');
    // The forked child (pid 3) still maps the THPs the parent had (COW), in system memory.
    run(s, 'switch 3');
    expect(text(run(s, `check ${s.vars.get('')} 160M index`))).toContain('match int index');
  });
});
