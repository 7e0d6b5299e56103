import { describe, expect, it } from 'vitest';
import { newSession, run, text } from './testing/harness.js';

describe('notifiers: the invalidations the last state-changing command sent', () => {
  it('shows munmap of part of a THP: the split (CLEAR of the PMD) then the UNMAP, with ranges', () => {
    const s = newSession();
    run(s, 'mmap 4M rw private anon hugepage', 'write $ 2M index');
    const addr = s.vars.get('')!;
    const thp = Math.ceil(addr / 2 ** 21) * 2 ** 21;
    run(s, `munmap 0x${(thp + 0x1000).toString(16)} 4K`);
    const e = run(s, 'notifiers');
    expect(e.result.ok).toBe(true);
    const out = text(e);
    expect(out).toContain(
      `notifiers: 2 invalidation(s) sent by \`munmap 0x${(thp + 0x1000).toString(16)} 4K\``,
    );
    expect(out).toMatch(
      new RegExp(`MMU_NOTIFY_CLEAR\\s+0x${thp.toString(16)}\\s+0x${(thp + 2 ** 21).toString(16)}\\s+2 MiB`),
    );
    expect(out).toMatch(
      new RegExp(
        `MMU_NOTIFY_UNMAP\\s+0x${(thp + 0x1000).toString(16)}\\s+0x${(thp + 0x2000).toString(16)}\\s+4 KiB`,
      ),
    );
    // An inspecting command does not change what is shown; a command that sends nothing says so.
    run(s, 'vmstat');
    expect(text(run(s, 'notifiers'))).toContain('2 invalidation(s)');
    run(s, 'mprotect $ 4K rw');
    expect(text(run(s, 'notifiers'))).toBe('notifiers: no invalidation sent by `mprotect $ 4K rw`');
  });

  it('shows the owner of a device migration and nesting, and exit as RELEASE then UNMAP of everything', () => {
    const s = newSession();
    // A process of its own (global init, pid 1, cannot exit: do_exit() would panic).
    run(s, 'spawn', 'mmap 16K rw private anon', 'write $ 16K index', 'migrate $ 16K dev');
    const out = text(run(s, 'notifiers'));
    expect(out).toMatch(/MMU_NOTIFY_MIGRATE\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+16 KiB\s+\/dev\/hmm_dmirror0/);
    run(s, 'exit');
    const ex = text(run(s, 'notifiers'));
    expect(ex).toMatch(/MMU_NOTIFY_RELEASE\s+0x0\s+ULONG_MAX\s+all\s+-/);
    expect(ex).toMatch(/MMU_NOTIFY_UNMAP\s+0x0\s+ULONG_MAX\s+all/);
    expect(text(run(s, 'notifiers'))).not.toContain('without invalidate_range_end');
    expect(run(s, 'notifiers x').result.ok).toBe(false);
  });
});
