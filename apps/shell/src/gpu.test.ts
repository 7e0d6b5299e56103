import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mapText } from './commands/inspect.js';
import { newSession, run, script, text } from './testing/harness.js';

describe('GPU commands (nouveau SVM on the default machine)', () => {
  it('GPU reads fault through the SVM path, THPs move to VRAM whole, the map shows V, the CPU faults one back', () => {
    const s = newSession();
    run(s, 'mmap 4M rw private anon hugepage', 'write $ 4M index');
    const r = run(s, 'gread $+8K 16');
    expect(r.result.ok).toBe(true);
    expect(r.result.lines[0]).toBe(
      'gread: GPU read 16 B at 0x7effffc02000: 1 GPU fault(s), through 1 × 2M host',
    );
    expect(r.result.lines[1]).toBe(
      '0x7effffc02000  00 08 00 00 01 08 00 00  02 08 00 00 03 08 00 00  |................|',
    );
    expect(text(run(s, 'gpt $ 4M'))).toMatch(/\n {2}0x7effffc00000 {2}2M {4}host {6}0x[0-9a-f]+ +w$/);

    const m = run(s, 'gmigrate $ 4M');
    expect(text(m)).toBe(
      'gmigrate: 4 MiB at 0x7effffc00000 to VRAM: 1024 page(s) now in VRAM: 2 THP(s) whole, 0 hole(s) populated; cpages 2, batches 2, allocation failures 0',
    );
    expect(m.result.data).toMatchObject({ thps: 2, migratedPages: 1024, ret: 0 });
    expect(mapText(s)[1]).toBe('  0x7effffc00000 |VV|');
    const pt = run(s, 'gpt $ 4M').result;
    expect(pt.lines[0]).toBe('gpt: GPU page table of pid 1 over 0x7effffc00000-0x7f0000000000: 2 entries');
    expect(pt.data).toMatchObject({
      entries: [
        { va: 0x7effffc00000, pageShift: 21, aperture: 'vram', writable: true },
        { va: 0x7effffe00000, pageShift: 21, aperture: 'vram', writable: true },
      ],
    });
    const v = run(s, 'vram').result;
    expect(v.lines[2]).toMatch(
      /^ {2}0 {6}0x0 {8}256 MiB {2}0x[0-9a-f]+-0x[0-9a-f]+ {2}large {2}2 {11}0 {8}126$/,
    );
    expect(v.lines[4]).toMatch(/^free_folios: 126 folio\(s\): 0x[0-9a-f]+ -> /);

    // The GPU reads VRAM now: no fault. The CPU faults the second THP back whole.
    expect(run(s, 'gread $+2M 4K').result.lines[0]).toBe(
      'gread: GPU read 4 KiB at 0x7effffe00000: 0 GPU fault(s), through 1 × 2M VRAM',
    );
    expect(run(s, 'check $+2M 2M index 524288').result.ok).toBe(true);
    expect(mapText(s)[1]).toBe('  0x7effffc00000 |VT|');
    // The CPU migration unmapped the GPU entry (mmu notifier): the next GPU access faults again.
    expect(run(s, 'gwrite $+2M 4K fill 0x5a').result.lines[0]).toBe(
      'gwrite: GPU wrote 4 KiB at 0x7effffe00000 (fill 0x5a): 1 GPU fault(s), through 1 × 2M host',
    );
    expect(run(s, 'check $+2M 4K fill 0x5a').result.ok).toBe(true);

    // Eviction refuses the device THP still in VRAM (nouveau README, finding 1).
    expect(text(run(s, 'gevict'))).toBe(
      [
        'gevict: 1 chunk(s): 1 unit(s) collected, 0 evicted to system memory, 1 refused',
        '  refused units stay in VRAM: device THPs (the destination slot has no MIGRATE_PFN_COMPOUND)',
      ].join('\n'),
    );
    expect(run(s, 'invariants').result.ok).toBe(true);
  });

  it('small pages go to a small chunk and show as v; gevict moves them back', () => {
    const s = newSession();
    run(s, 'mmap 64K rw private anon nohugepage', 'write $ 64K index', 'gmigrate $ 64K');
    expect(run(s, 'map zoom $').result.lines[8]).toBe(
      `  0x7efffffc0000 |${' '.repeat(48)}${'v'.repeat(16)}|`,
    );
    const v = run(s, 'vram').result.data;
    expect(v).toMatchObject({ chunks: [{ isLarge: false, callocated: 16 }] });
    expect(text(run(s, 'gevict'))).toBe(
      'gevict: 1 chunk(s): 16 unit(s) collected, 16 evicted to system memory, 0 refused',
    );
    expect(run(s, 'map zoom $').result.lines[8]).toBe(
      `  0x7efffffc0000 |${' '.repeat(48)}${'s'.repeat(16)}|`,
    );
    expect(run(s, 'check $ 64K index').result.ok).toBe(true);
  });

  it('runs examples/gpu-vram.hmm with --strict', async () => {
    const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'gpu-vram.hmm');
    const { out, code } = await script(readFileSync(file, 'utf8'), { strict: true });
    expect(code).toBe(0);
    expect(out).toContain('gread: GPU read 64 B at 0x7effffc00000: 1 GPU fault(s), through 1 × 2M host');
    expect(out).toContain('2 THP(s) whole');
    expect(out).toContain('  0x7effffc00000 |VV|');
    expect(out).toContain('  0x7effffc00000 |VT|');
    expect(out).toMatch(/PMD\[510\].*device-private-write/);
    expect(out).toContain('gevict: 1 chunk(s): 1 unit(s) collected, 0 evicted to system memory, 1 refused');
  });

  it('reports GPU faults that cannot be resolved and a machine without nouveau', () => {
    const s = newSession();
    const r = run(s, 'gread 0x10000000 4K').result;
    expect(r.ok).toBe(false);
    expect(r.error?.name).toBe('EFAULT');
    expect(r.lines.at(-1)).toMatch(/^gread: EFAULT — the GPU fault could not be resolved/);
    run(s, 'mmap 4K r');
    expect(run(s, 'gwrite $ 4K zero').result.error?.name).toBe('EPERM');
    const none = newSession({ nouveau: false });
    expect(text(run(none, 'vram'))).toBe(
      'vram: ENODEV — no nouveau GPU in this machine (the shell boots one by default)',
    );
    expect(text(run(none, 'gpu pt 0x10000'))).toMatch(/^gpt: ENODEV/);
  });
});

describe('a modelled kernel failure', () => {
  it('is shown as the kernel reports it, taints the kernel and leaves the machine inspectable', () => {
    const s = newSession();
    // The process's own 200 MiB leave the 256 MiB machine too little for the system pages behind
    // 64 MiB of device THPs (test_hmm backs device memory with system RAM): a THP allocation
    // fails, and the small-page fallback's does too.
    run(s, 'mmap 200M', 'write $ 200M fill 1', 'mmap 64M rw private anon hugepage');
    const e = run(s, 'migrate $ 64M dev').result;
    expect(e.ok).toBe(false);
    expect(e.error).toEqual({
      name: 'kernel oops (modelled)',
      why: 'NULL pointer dereference in dmirror_migrate_alloc_and_copy (lib/test_hmm.c: the small-page fallback does not check the allocation)',
    });
    expect(e.lines).toEqual([
      '  BUG: kernel NULL pointer dereference, address: 0000000000000000',
      '  Oops: 0000 [#1] SMP',
      '  RIP: 0010:dmirror_migrate_alloc_and_copy [test_hmm]',
      '  the machine is left as the failing code left it (kernel tainted: D); inspect it with walk, folio, devices, vram, invariants',
      'migrate: kernel oops (modelled): NULL pointer dereference in dmirror_migrate_alloc_and_copy (lib/test_hmm.c: the small-page fallback does not check the allocation)',
    ]);
    expect(e.lines.some((l) => l.includes('MODEL BUG'))).toBe(false);
    expect(s.taint?.flags).toBe('D');
    const inv = run(s, 'invariants').result;
    expect(inv.lines).toContain(
      'kernel tainted: D (modelled kernel failures; migration entries and locks they left behind are expected)',
    );
    // Still inspectable: the device THPs that made it are there.
    expect(mapText(s).some((l) => /^ {2}0x[0-9a-f]+ \|D+\.+s+\|$/.test(l))).toBe(true);
    expect(run(s, 'walk $').result.ok).toBe(true);
  });
});
