/** Script mode: every command, good and bad input, as a person would pipe it in. */

import { Kernel } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { Session } from './session.js';
import { newSession, run, script, text } from './testing/harness.js';

const A = '0x7effffc00000';

describe('script mode transcript', () => {
  it('echoes comments and blank lines, prompts with the pid, prints plain text without ANSI codes', async () => {
    const { out, code } = await script(
      '# a comment\n\nmmap 4M rw private anon hugepage\nwrite $ 2M index\nmap',
    );
    expect(code).toBe(0);
    expect(out).toContain('# a comment\n\nhmm:1> mmap 4M rw private anon hugepage\n');
    expect(out).toContain(`mmap: ${A}-0x7f0000000000 (4 MiB rw-p anon hugepage 2M-aligned) -> $`);
    expect(out).toContain(`  ${A} |T.|`);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for escape codes
    expect(out).not.toMatch(/\x1b\[/);
  });

  it('--strict stops at the first error with status 1; without it errors do not stop the script', async () => {
    const strict = await script('mmap 2M\nbogus\nmmap 2M', { strict: true });
    expect(strict.code).toBe(1);
    expect(strict.out).toContain('(stopped at line 2: --strict)');
    expect(strict.out.match(/mmap: 0x/g)).toHaveLength(1);
    const lax = await script('mmap 2M\nbogus\nmmap 2M');
    expect(lax.code).toBe(0);
    expect(lax.out.match(/mmap: 0x/g)).toHaveLength(2);
  });

  it('--json prints one object per command with ok, output, data, error and the vmstat change', async () => {
    const { out } = await script('# skipped\nmmap 4M rw hugepage\nwrite $ 2M index\nmunmap 0x123 4K', {
      json: true,
    });
    const objs = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(objs).toHaveLength(3);
    expect(objs[0]).toMatchObject({
      command: 'mmap',
      ok: true,
      pid: 1,
      error: null,
      data: { addr: 0x7effffc00000 },
    });
    expect(objs[1].vmstatDelta).toMatchObject({ thp_fault_alloc: 1, nr_anon_transparent_hugepages: 1 });
    expect(objs[2]).toMatchObject({ ok: false, error: { errno: 22, name: 'EINVAL' } });
    expect(objs[2].error.why).toContain('not page aligned');
  });

  it('quit stops reading', async () => {
    const { out } = await script('echo one\nquit\necho two');
    expect(out).toContain('one');
    expect(out).not.toContain('two\n');
  });
});

describe('bad input', () => {
  it('unknown commands suggest the nearest one', () => {
    const s = newSession();
    expect(text(run(s, 'mmapp 4M'))).toBe(
      'hmm: unknown-command — "mmapp" is not a command (did you mean `mmap`?); `help` lists them',
    );
    expect(run(s, 'zzzzzzzz').result.error?.name).toBe('unknown-command');
  });
  it('bad sizes and addresses name the token and the form expected', () => {
    const s = newSession();
    expect(text(run(s, 'mmap 4Q'))).toContain(
      'mmap: usage — bad length "4Q": expected a number (4096, 0x1000, 4K, 2M, 1G) or $variable',
    );
    expect(text(run(s, 'mmap 0'))).toContain('bad length "0": must be positive');
    expect(text(run(s, 'munmap $ 4K'))).toContain('no last mmap yet');
    expect(text(run(s, 'munmap $nope 4K'))).toContain('unknown variable $nope');
    expect(text(run(s, 'mmap'))).toContain('missing length');
    expect(text(run(s, 'mmap 4M rw wibble'))).toContain('unknown mmap word "wibble"');
    expect(text(run(s, 'write "unterminated'))).toContain('unterminated " quote');
  });
  it('unmapped addresses: SIGSEGV without killing the process, EINVAL/ENOMEM from syscalls', () => {
    const s = newSession();
    expect(text(run(s, 'read 0x1000 16'))).toBe(
      'read: SIGSEGV — 0x1000 is not mapped (no VMA); the access was not performed (a C program would die here)',
    );
    expect(text(run(s, 'write 0x5000 4K zero'))).toContain('write: SIGSEGV — 0x5000 is not mapped');
    expect(text(run(s, 'madvise 0x10000000 4K dontneed'))).toBe(
      'madvise: ENOMEM — 0x10000000 in the range is not mapped',
    );
    expect(text(run(s, 'mprotect 0x10000000 4K r'))).toContain('mprotect: ENOMEM');
    expect(text(run(s, 'fault 0x10000000'))).toContain('fault: SIGSEGV — 0x10000000 is not mapped');
    expect(text(run(s, 'walk 0x10000000'))).toContain('no VMA');
    expect(text(run(s, 'folio 0x10000000'))).toContain(
      'folio: ENOENT — nothing is mapped at 0x10000000 (no VMA)',
    );
    expect(s.proc?.state).toBe('running');
  });
});

describe('memory commands', () => {
  it('mmap variants: prot, shared, populate, fixed, noreplace, hugetlb, named results', () => {
    const s = newSession();
    expect(text(run(s, 'mmap 8K r'))).toMatch(/\(8 KiB r--p anon\)/);
    expect(text(run(s, 'mmap 8K rw shared populate'))).toMatch(/rw-s/);
    expect(text(run(s, 'mmap 8K none at 0x10000000 fixed'))).toContain(
      'mmap: 0x10000000-0x10002000 (8 KiB ---p anon)',
    );
    expect(text(run(s, 'mmap 4K at 0x10000000 noreplace'))).toBe(
      'mmap: EEXIST — the range overlaps an existing mapping (noreplace)',
    );
    expect(text(run(s, 'mmap 2M hugetlb'))).toContain('hugetlb');
    expect(text(run(s, 'mmap 2M private shared'))).toContain('only one of private / shared');
    expect(text(run(s, 'mmap 4K fixed'))).toContain('fixed / noreplace need `at <addr>`');
    const e = run(s, 'buf = mmap 2M');
    expect(text(e)).toContain(`$buf = 0x${(s.vars.get('buf') ?? 0).toString(16)}`);
    expect(s.vars.get('buf')).toBe(s.vars.get(''));
    expect(text(run(s, 'x = ps'))).toContain('ps produces no value to assign to $x');
    expect(text(run(s, '1bad = mmap 4K'))).toContain('bad variable name "1bad"');
  });
  it('munmap, mprotect, madvise, mremap', () => {
    const s = newSession();
    run(s, 'mmap 4M rw hugepage', 'write $ 4M fill 1');
    expect(text(run(s, 'munmap $+4K 4K'))).toBe(`munmap: 0x7effffc01000-0x7effffc02000 (4 KiB) unmapped`);
    expect(text(run(s, 'munmap $+1 4K'))).toContain(
      'munmap: EINVAL — address 0x7effffc00001 is not page aligned',
    );
    expect(text(run(s, 'mprotect $+2M 2M r'))).toBe('mprotect: 0x7effffe00000-0x7f0000000000 now r--');
    expect(text(run(s, 'mprotect $ 4K rwq'))).toContain('bad protection "rwq"');
    expect(text(run(s, 'mprotect $ 4K'))).toContain('missing protection');
    expect(text(run(s, 'madvise $+2M 2M dontneed'))).toBe(
      'madvise: 0x7effffe00000-0x7f0000000000 MADV_DONTNEED',
    );
    expect(text(run(s, 'madvise $ 4K MADV_HUGEPAGE'))).toContain('MADV_HUGEPAGE');
    expect(text(run(s, 'madvise $ 4K sideways'))).toContain('unknown advice "sideways"');
    expect(text(run(s, 'check $+2M 2M zero'))).toContain('check: ok');
    const m = run(s, 'mmap 2M hugepage', 'write $ 2M index', 'mremap $ 2M 4M maymove');
    expect(m.result.ok).toBe(true);
    expect(text(m)).toMatch(/mremap: 0x[0-9a-f]+ 2 MiB -> 4 MiB (moved to|in place)/);
    expect(run(s, 'check $ 2M index').result.ok).toBe(true);
    expect(text(run(s, 'mremap 0x10000000 4K 8K'))).toBe(
      'mremap: EFAULT — the old range is not inside one VMA',
    );
    expect(text(run(s, 'mremap $ 4K 8K sideways'))).toContain('unknown mremap word');
  });
  it('thp shows and sets the mode', () => {
    const s = newSession();
    expect(text(run(s, 'thp'))).toBe('thp: always [madvise] never');
    expect(text(run(s, 'thp always'))).toBe('thp: [always] madvise never');
    run(s, 'mmap 2M', 'write $ 4K zero');
    expect(text(run(s, 'map'))).toContain('|T|');
    expect(text(run(s, 'thp sometimes'))).toContain('bad THP mode');
  });
});

describe('data commands', () => {
  it('write / read / check patterns: fill, zero, index (start, step), bytes, random', () => {
    const s = newSession();
    run(s, 'mmap 2M');
    expect(text(run(s, 'write $ 64 index 10 -1'))).toBe(
      `write: 64 B at ${A.replace('c00000', 'e00000')} (int index 10 step -1)`,
    );
    const base = s.vars.get('') ?? 0;
    expect(run(s, 'check $ 64 index 10 -1').result.ok).toBe(true);
    run(s, 'write $ bytes de ad be ef');
    expect(text(run(s, 'read $ 4'))).toContain('de ad be ef');
    run(s, 'write $ 4K random 7');
    expect(run(s, 'check $ 4K random 7').result.ok).toBe(true);
    expect(run(s, 'check $ 4K random 8').result.error?.name).toBe('mismatch');
    run(s, 'write $ 1M index');
    const r = run(s, 'read $ 1M');
    expect(text(r)).toContain('1 MiB in all; the whole range is index 0');
    expect(r.result.data?.pattern).toBe('index 0');
    const bad = run(s, 'write $+8 4 fill 0x7', 'check $ 64 index');
    expect(bad.result.ok).toBe(false);
    expect(text(bad)).toBe(
      `check: mismatch — 1 of 16 ints differ from int index; first at 0x${(base + 8).toString(16)}: got 117901063, expected 2`,
    );
    expect(text(run(s, 'write $ 4K fill 300'))).toContain('not in 0..255');
    expect(text(run(s, 'write $ 4K'))).toContain('missing pattern');
    expect(text(run(s, 'write $ 4K stripes'))).toContain('unknown pattern "stripes"');
    expect(text(run(s, 'write $ index'))).toContain('missing length');
    expect(text(run(s, 'write $ bytes xyz'))).toContain('bytes takes hex bytes');
    expect(text(run(s, 'read $ 16 sideways'))).toContain('unknown read word');
    expect(text(run(s, 'read $ 2G all'))).toContain("above the shell's limit");
  });
  it('write to a read-only mapping is refused with SIGSEGV and the reason', () => {
    const s = newSession();
    run(s, 'mmap 8K r');
    expect(text(run(s, 'write $ 4K zero'))).toContain(
      'is in a r--p VMA: not writable; the access was not performed',
    );
    expect(run(s, 'read $ 16').result.ok).toBe(true);
  });
  it('fault touches pages through the fault handler (zero page on read, THP on write)', () => {
    const s = newSession();
    run(s, 'mmap 4M hugepage');
    expect(text(run(s, 'fault $ read'))).toBe(
      'fault: read 1 page(s) from 0x7effffc00000: 1 page fault(s) handled',
    );
    expect(run(s, 'walk $').result.data?.backing).toBe('hugezero');
    expect(text(run(s, 'fault $+2M 2M write'))).toContain('512 page(s)');
    expect(run(s, 'walk $+2M').result.data?.backing).toBe('thp');
    run(s, 'mprotect $ 4K r');
    expect(text(run(s, 'fault $ write'))).toContain('fault: SIGSEGV — write not allowed by the VMA');
  });
});

describe('process commands', () => {
  it('fork, ps, switch, kill, wait, exit, spawn', () => {
    const s = newSession();
    run(s, 'mmap 2M hugepage', 'write $ 2M index');
    const f = run(s, 'fork');
    expect(text(f)).toBe('fork: child pid 2 (current is still 1; `switch 2` to use the child)');
    expect(f.result.value).toBe(2);
    expect(text(run(s, 'ps'))).toMatch(/\*\s+1\s+-\s+running\s+1\s+2 MiB/);
    expect(text(run(s, 'switch 2'))).toBe('switch: current process is 2');
    expect(run(s, 'check $ 2M index').result.ok).toBe(true);
    expect(text(run(s, 'switch 9'))).toBe('switch: ESRCH — no process 9 (`ps` lists them)');
    expect(text(run(s, 'switch 1'))).toBe('switch: current process is 1');
    expect(text(run(s, 'wait 2'))).toContain('wait: EAGAIN — child 2 is still running');
    expect(text(run(s, 'kill 2'))).toContain('kill: SIGKILL (signal 9) sent to 2: now a zombie');
    expect(text(run(s, 'ps'))).toContain('zombie (killed by SIGKILL)');
    expect(text(run(s, 'switch 2'))).toContain('process 2 has exited');
    expect(text(run(s, 'wait'))).toBe('wait: child 2 killed by SIGKILL');
    expect(text(run(s, 'wait'))).toBe('wait: ECHILD — the current process has no children');
    expect(text(run(s, 'kill 42'))).toBe('kill: ESRCH — no running process 42');
    expect(text(run(s, 'kill 1 WIBBLE'))).toContain('bad signal');
    run(s, 'fork', 'switch 3');
    expect(text(run(s, 'exit 3'))).toBe(
      'exit: process 3 exited with 3 (a zombie until its parent waits); current process is 1',
    );
    expect(text(run(s, 'wait 3'))).toBe('wait: child 3 exited with 3');
    // Global init (pid 1) does not exit: do_exit() panics (edges.test.ts). A spawned process does.
    expect(text(run(s, 'spawn'))).toBe('spawn: process 4 started; it is current');
    expect(text(run(s, 'exit'))).toBe('exit: process 4 exited with 0; current process is 1');
    expect(text(run(s, 'fork now'))).toBe(
      'fork: usage — unexpected word "now" after the command — usage: fork',
    );
  });
});

describe('inspection commands', () => {
  it('walk shows every level with kinds and bits', () => {
    const s = newSession();
    run(s, 'mmap 4M hugepage', 'write $ 2M index', 'madvise $+2M 2M nohugepage', 'write $+2M 4K zero');
    const t = text(run(s, 'walk $'));
    expect(t).toMatch(/PGD\[253\] @0x[0-9a-f]+ {2}0x[0-9a-f]{16} {2}table/);
    expect(t).toMatch(/PMD\[510\].*huge\s+pfn 0x[0-9a-f]+ {2}PRESENT RW USER ACCESSED DIRTY PSE/);
    expect(t).toContain('=> a system THP, page pfn');
    const t2 = text(run(s, 'walk $+2M+4K'));
    expect(t2).toMatch(/PTE\[ {2}1\]/);
    expect(t2).toContain('=> nothing mapped');
    expect(text(run(s, 'walk $+2M'))).toContain('=> a system 4 KiB page');
    expect(text(run(s, 'pt'))).toContain('missing address');
  });
  it('folio shows order, counts, flags, zone and pgmap; by pfn too', () => {
    const s = newSession();
    run(s, 'mmap 2M hugepage', 'write $ 2M index');
    const e = run(s, 'folio $+4K');
    const t = text(e);
    expect(t).toMatch(/pfn 0x[0-9a-f]+ \(page 1 of the folio at 0x[0-9a-f]+\)/);
    expect(t).toContain('order 9 (512 pages)  zone ZONE_NORMAL');
    expect(t).toContain('entire_mapcount 1');
    expect(t).toContain('folio flags: dirty|lru|head|swapbacked|anon|anon_exclusive|large_rmappable');
    expect(t).toContain('pgmap -');
    const pfn = Number(e.result.data?.head);
    expect(text(run(s, `folio pfn 0x${pfn.toString(16)}`))).toContain('(folio head)');
    expect(text(run(s, 'folio pfn 0x1'))).toContain('not a valid pfn');
    // The harness machine has 256 MiB of RAM from pfn 0x40000: its lower section is still deferred.
    expect(text(run(s, 'folio pfn 0x40010'))).toContain(
      'struct page is not initialised yet (deferred section 8',
    );
    expect(text(run(s, 'folio pfn zz'))).toContain('bad pfn');
    run(s, 'mmap 4K', 'fault $ read');
    expect(text(run(s, 'folio $'))).toContain('(the shared zero page)');
  });
  it('pagemap decodes entries read through /proc/self/pagemap', () => {
    const s = newSession();
    run(s, 'mmap 8K', 'write $ 4K zero');
    const t = text(run(s, 'pagemap $ 2'));
    expect(t).toMatch(/0x[0-9a-f]+ {2}0x81[0-9a-f]{14} {2}present, pfn 0x[0-9a-f]+, exclusive/);
    expect(t).toMatch(/0x0000000000000000 {2}not present/);
    expect(text(run(s, 'pagemap $ 0'))).toContain('page count must be 1..4096');
  });
  it('maps shows adjacent compatible mappings as one VMA, as Linux merges them (mm/vma.c)', () => {
    const s = newSession();
    // vma_merge_new_range(): the second mapping lands right below the first and joins it.
    run(s, 'a = mmap 8K', 'b = mmap 8K');
    expect(text(run(s, 'maps'))).toBe('7effffffc000-7f0000000000 rw-p 00000000 00:00 0  [anon] $ $b');
    run(s, 'mprotect $b 4K r');
    expect(text(run(s, 'maps')).split('\n')).toHaveLength(2);
    // vma_merge_existing_range(): the same protection again makes it one VMA again.
    run(s, 'mprotect $b 4K rw');
    expect(text(run(s, 'maps'))).toBe('7effffffc000-7f0000000000 rw-p 00000000 00:00 0  [anon] $ $b');
  });
  it('maps and smaps', () => {
    const s = newSession();
    run(s, 'buf = mmap 4M hugepage', 'write $ 2M index');
    expect(text(run(s, 'maps'))).toBe(
      '7effffc00000-7f0000000000 rw-p 00000000 00:00 0  [anon] $ $buf  (hugepage)',
    );
    const t = text(run(s, 'smaps $'));
    expect(t).toContain(
      'Size:    4096 kB  Rss:    2048 kB  Anonymous:    2048 kB  AnonHugePages:    2048 kB',
    );
    expect(t).toContain('VmFlags: rd wr mr mw me ac hg');
    expect(text(run(s, 'smaps 0x1000'))).toBe('smaps: ENOENT — no VMA contains 0x1000');
    run(s, 'munmap $ 4M');
    expect(text(run(s, 'maps'))).toBe('(no mappings)');
  });
  it('map and zoom', () => {
    const s = newSession();
    run(
      s,
      'mmap 4M hugepage',
      'write $ 2M index',
      'madvise $+2M 2M nohugepage',
      'write $+2M 4K zero',
      'fault $+2M+4K read',
    );
    const t = text(run(s, 'map'));
    expect(t).toContain('pid 1: 2 VMA(s), one cell per 2 MiB');
    expect(t).toContain('0x7effffc00000 |Ts|');
    expect(t).toContain('legend: . VMA, nothing mapped  s system 4K  T system THP');
    const z = text(run(s, 'map zoom $+2M'));
    expect(z).toContain('one cell per 4 KiB page');
    expect(z).toContain(`|sz${'.'.repeat(62)}|`);
    expect(text(run(s, 'zoom off'))).toBe('zoom: off (one cell per 2 MiB)');
    expect(text(run(s, 'zoom $'))).toContain('per page');
    expect(text(run(s, 'map unzoom'))).toContain('one cell per 2 MiB');
    expect(text(run(s, 'zoom'))).toContain('missing address');
    expect(text(run(s, 'map sideways'))).toContain('unknown map word');
  });
  it('vmstat shows the change made by the last state-changing command', () => {
    const s = newSession();
    run(s, 'mmap 2M hugepage', 'write $ 2M index', 'maps', 'vars');
    const t = text(run(s, 'vmstat'));
    expect(t).toContain('change (by `write $ 2M index`)');
    expect(t).toMatch(/thp_fault_alloc\s+1\s+\+1/);
    expect(text(run(s, 'vmstat all'))).toContain('thp_migration_success');
    expect(text(run(s, 'vmstat sideways'))).toContain('unknown vmstat word');
  });
  it('meminfo, buddyinfo, devices, invariants (on a bare kernel: no drivers)', () => {
    const kernel = new Kernel({ ramBytes: 256 * 2 ** 20 });
    const s = new Session(kernel, kernel.spawn());
    expect(text(run(s, 'meminfo'))).toMatch(/^MemTotal: +262144 kB/);
    expect(text(run(s, 'buddyinfo'))).toMatch(/^Node 0, zone Normal/);
    const d = text(run(s, 'devices'));
    expect(d).toContain('/dev/hmm_dmirror0  absent  (selected)');
    expect(d).toContain('device memory: none registered');
    expect(d).toMatch(/system RAM: 256 MiB, free/);
    const inv = text(run(s, 'invariants'));
    expect(inv).toContain('invariants:');
    expect(inv).toContain('warnings (WARN_ON_ONCE records): none');
  });
});

describe('shell commands', () => {
  it('help lists groups; help <command> explains; unknown help topic', () => {
    const s = newSession();
    const h = text(run(s, 'help'));
    for (const g of [
      'Memory:',
      'Data and CPU access:',
      'Devices (dmirror ioctls):',
      'Processes:',
      'Inspection:',
      'Shell:',
    ])
      expect(h).toContain(g);
    expect(text(run(s, 'help migrate'))).toContain('usage: migrate <addr> <len> dev|sys [-d N]');
    expect(text(run(s, 'help pt'))).toContain('usage: walk <addr>');
    expect(text(run(s, '? nope'))).toBe('help: unknown-command — no command "nope" (`help` lists them)');
  });
  it('set, unset, vars, echo, clear, quit', () => {
    const s = newSession();
    run(s, 'mmap 4M');
    expect(text(run(s, 'set half $+2M'))).toBe('$half = 0x7effffe00000');
    expect(text(run(s, 'other = $half-4K'))).toBe('$other = 0x7effffdff000');
    expect(text(run(s, 'vars'))).toContain('$half         0x7effffe00000');
    expect(text(run(s, 'echo at $half'))).toBe('at 0x7effffe00000');
    expect(text(run(s, 'unset half'))).toBe('unset $half');
    expect(text(run(s, 'unset half'))).toBe('unset: ENOENT — no variable $half');
    expect(text(run(s, 'set 9x 1'))).toContain('bad variable name');
    expect(run(s, 'clear').result.clear).toBe(true);
    expect(run(s, 'q').result.quit).toBe(true);
  });
});
