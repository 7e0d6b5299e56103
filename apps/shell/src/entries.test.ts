import { describe, expect, it } from 'vitest';
import { newSession, run, text } from './testing/harness.js';

describe('entries: page-table entries written by level and kind (model-only)', () => {
  it("shows a THP migration's migration and device-private PMDs as the migrate command's own change", () => {
    const s = newSession();
    expect(text(run(s, 'entries'))).toBe('entries: no page-table entry written yet');
    run(s, 'mmap 4M rw private anon hugepage', 'write $ 2M fill 7');
    let out = text(run(s, 'entries'));
    expect(out).toMatch(/pmd present\s+1\s+\+1/);
    run(s, 'migrate $ 2M dev');
    const e = run(s, 'entries');
    out = text(e);
    expect(out).toContain('change (by `migrate $ 2M dev`)');
    expect(out).toMatch(/pmd migration-write\s+1\s+\+1/);
    expect(out).toMatch(/pmd device-private-write\s+1\s+\+1/);
    // The shell's read-back buffer (its own scaffolding) is written too, but is not the command's change.
    expect(out).not.toMatch(/pmd present\s+\d+\s+\+/);
    expect(e.result.data).toMatchObject({ entries: { 'pmd device-private-write': { value: 1, delta: 1 } } });
    // The CPU fault brings the THP back at PMD level: a migration PMD again, then a present one.
    run(s, 'read $ 16');
    out = text(run(s, 'entries'));
    expect(out).toMatch(/pmd migration-write\s+2\s+\+1/);
    expect(out).toMatch(/pmd device-private-write\s+1\s*$/m);
  });

  it('a command that writes only entries becomes the change vmstat and entries show', () => {
    const s = newSession();
    run(s, 'mmap 16K rw private anon', 'write $ 16K fill 1', 'mprotect $ 16K r');
    expect(text(run(s, 'entries'))).toMatch(/pte present\s+\d+\s+\+4/);
    expect(text(run(s, 'vmstat'))).toContain('change (by `mprotect $ 16K r`)');
  });
});
