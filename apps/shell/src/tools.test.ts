import { describe, expect, it } from 'vitest';
import { COMMANDS } from './commands/index.js';
import { mapText } from './commands/inspect.js';
import { buildAddressMap, mapLineText } from './inspect/addrmap.js';
import type { ScriptFiles, Session } from './session.js';
import { newSession, run, script, text } from './testing/harness.js';

/** An in-memory file system for `record`. */
function memFiles(): ScriptFiles & { files: Map<string, string> } {
  const files = new Map<string, string>();
  return {
    files,
    write: (p, t) => void files.set(p, t),
    append: (p, t) => void files.set(p, (files.get(p) ?? '') + t),
  };
}

describe('record / stop', () => {
  it('writes the session so far and every later command; replaying the file rebuilds the same state', async () => {
    const s = newSession();
    const fs = memFiles();
    s.files = fs;
    run(s, 'buf = mmap 4M rw private anon hugepage', 'write $buf 2M index', 'help mmap');
    // A usage error changes nothing and is left out.
    expect(run(s, 'munmap').result.error?.name).toBe('usage');
    expect(text(run(s, 'record demo.hmm'))).toBe(
      'record: writing demo.hmm: 2 command(s) so far; each command from now on is added until `stop`',
    );
    expect(run(s, 'record other.hmm').result.error?.name).toBe('EBUSY');
    run(s, 'migrate $buf 2M dev', 'fork', 'munmap $buf+2M 4K', 'vars');
    expect(text(run(s, 'stop'))).toBe(
      'stop: demo.hmm holds 6 command(s); replay it with `pnpm shell < demo.hmm`',
    );
    run(s, 'write $buf 4K fill 1');
    expect(run(s, 'stop').result.error?.name).toBe('ENOENT');
    const file = fs.files.get('demo.hmm') ?? '';
    expect(file).toBe(
      [
        '# hmm-shell session written by `record` (replay: pnpm shell < FILE, or hmm-shell --script FILE)',
        '# recorded on a machine with --ram 256M',
        'buf = mmap 4M rw private anon hugepage',
        'write $buf 2M index',
        'migrate $buf 2M dev',
        'fork',
        'munmap $buf+2M 4K',
        'vars',
        '',
      ].join('\n'),
    );
    // Replay on a fresh machine of the same size: same mappings, same page tables, same vmstat.
    const replay = await script(file, { strict: true });
    expect(replay.code).toBe(0);
    const snapshot = (x: Session) =>
      ['ps', 'maps', 'smaps', 'snapshot $buf 4M', 'map'].map((c) => text(run(x, c)).replace(/ms\)/g, ''));
    run(s, 'write $buf 4K index');
    run(replay.session, 'write $buf 4K index');
    expect(snapshot(replay.session)).toEqual(snapshot(s));
  });

  it('reports a file it cannot write', () => {
    const s = newSession();
    s.files = {
      write: () => {
        throw new Error('EACCES: permission denied');
      },
      append: () => undefined,
    };
    expect(text(run(s, 'record /x.hmm'))).toBe(
      'record: EIO — cannot write /x.hmm: EACCES: permission denied',
    );
    expect(s.recording).toBeNull();
  });
});

describe('help <command>', () => {
  it('shows at least one example for every command, and every example runs without a usage error', () => {
    const bad: string[] = [];
    for (const c of COMMANDS) {
      const h = text(run(newSession(), `help ${c.name}`));
      expect(h, c.name).toContain('\n  examples:\n    ');
      // One prepared session per command; its examples run one after the other.
      const s = newSession();
      s.files = memFiles();
      run(s, 'mmap 4M rw private anon hugepage', 'buf = mmap 2M', 'write $ 2M index', 'fork');
      for (const ex of c.examples ?? []) {
        const r = run(s, ex).result;
        if (r.error && ['usage', 'unknown-command', 'internal', 'MODEL BUG'].includes(r.error.name))
          bad.push(`${ex}: ${r.lines.at(-1)}`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe('the live map keeps the VMA the last command touched in view', () => {
  it('slides its window of rows to the touched address when there are more rows than fit', () => {
    const s = newSession();
    const addrs: number[] = [];
    for (let i = 0; i < 12; i++) {
      const a = 0x100000000000 + i * 0x40000000;
      addrs.push(a);
      run(s, `mmap 2M at ${a} fixed`);
    }
    run(s, `write ${addrs[11]} 4K zero`);
    expect(s.focus).toBe(addrs[11]);
    const m = buildAddressMap(s.kernel.core, s.proc!.mm, { maxRows: 4, focus: s.focus });
    const lines = m.lines.map(mapLineText);
    expect(lines[0]).toBe(`${''.padStart(16)} ... 8 rows above`);
    expect(lines.at(-1)).toBe(`  0x${addrs[11].toString(16)} |s|`);
    // Touching the first mapping brings it back; the rest is summarised below.
    run(s, `read ${addrs[0]} 16`);
    const top = buildAddressMap(s.kernel.core, s.proc!.mm, { maxRows: 4, focus: s.focus }).lines.map(
      mapLineText,
    );
    expect(top[0]).toBe(`  0x${addrs[0].toString(16)} |z|`);
    expect(top.at(-1)).toBe(`${''.padStart(16)} ... 8 more rows`);
    // mmap focuses on the new mapping; the `map` command uses the same window.
    run(s, `mmap 2M at ${addrs[6] + 0x20000000} fixed`);
    expect(mapText(s, 64, 3).slice(1, 6)).toEqual([
      `${''.padStart(16)} ... 6 rows above`,
      `  0x${addrs[6].toString(16)} |.|`,
      `${''.padStart(16)} ~ gap 510.0 MiB`,
      `  0x${(addrs[6] + 0x20000000).toString(16)} |.|`,
      `${''.padStart(16)} ~ gap 510.0 MiB`,
    ]);
  });
});

describe('overcommit in the shell', () => {
  it('refuses mmap 100G under the default heuristic, explains why, and follows the sysctl', () => {
    const s = newSession();
    const r = run(s, 'mmap 100G').result;
    expect(r.error?.name).toBe('ENOMEM');
    expect(r.lines.at(-1)).toBe(
      'mmap: ENOMEM — vm.overcommit_memory=0 (heuristic overcommit) refuses a single mapping larger than RAM + swap (1.2 GiB) in __vm_enough_memory(); `noreserve`, a read-only mapping or `sysctl vm.overcommit_memory=1` would be granted',
    );
    expect(run(s, 'mmap 100G noreserve').result.ok).toBe(true);
    expect(run(s, 'mmap 100G r').result.ok).toBe(true);
    expect(text(run(s, 'sysctl vm.overcommit_memory'))).toBe('vm.overcommit_memory = 0');
    expect(text(run(s, 'sysctl -w vm.overcommit_memory=1'))).toBe('vm.overcommit_memory = 1');
    expect(run(s, 'mmap 100G').result.ok).toBe(true);
    expect(text(run(s, 'meminfo'))).toMatch(/^Committed_AS: +104857600 kB$/m);
    expect(text(run(s, 'cat /proc/sys/vm/overcommit_memory'))).toBe('1');
    expect(run(s, 'cat /proc/self/pagemap').result.error?.name).toBe('binary');
    expect(run(s, 'cat /proc/nope').result.error?.name).toBe('ENOENT');
    const bad = run(s, 'sysctl vm.overcommit_memory=3').result;
    expect(bad.lines.at(-1)).toBe('sysctl: EINVAL — setting key "vm.overcommit_memory": invalid value "3"');
    expect(run(s, 'sysctl vm.nope').result.error?.name).toBe('ENOENT');
    expect(text(run(s, 'sysctl vm.overcommit_memory=2', 'mmap 200M'))).toMatch(
      /^mmap: ENOMEM — vm.overcommit_memory=2 \(strict overcommit\): Committed_AS 104857600 kB \+ 204800 kB would not stay below CommitLimit \d+ kB/,
    );
    expect(text(run(s, 'smaps $'))).toContain('VmFlags: rd wr mr mw me ac');
  });
});

describe('vm.min_free_kbytes in the shell', () => {
  it("boots with the kernel's value for the RAM size; raised near the free memory, a write stops at the watermark and reclaims", () => {
    const s = newSession();
    // calculate_min_free_kbytes(): int_sqrt(256 MiB in KiB * 16).
    expect(text(run(s, 'sysctl vm.min_free_kbytes'))).toBe('vm.min_free_kbytes = 2048');
    expect(s.kernel.core.zone.minFree).toBe(512);
    const bad = run(s, 'sysctl vm.min_free_kbytes=-1').result;
    expect(bad.lines.at(-1)).toBe('sysctl: EINVAL — setting key "vm.min_free_kbytes": invalid value "-1"');
    run(s, 'mmap 8M', 'write $ 8M index');
    const stalls = s.kernel.core.vmstat.allocstall_normal;
    // Leave 1 MiB above the watermark: the next 4 MiB of faults must reclaim.
    const kb = (s.kernel.core.zone.nrFree - 256) * 4;
    expect(text(run(s, `sysctl vm.min_free_kbytes=${kb}`))).toBe(`vm.min_free_kbytes = ${kb}`);
    run(s, 'mmap 4M', 'write $ 4M fill 7');
    expect(s.kernel.core.vmstat.allocstall_normal).toBeGreaterThan(stalls);
    expect(s.kernel.core.vmstat.pswpout).toBeGreaterThan(0);
    expect(s.kernel.core.zone.nrFree).toBeGreaterThanOrEqual(s.kernel.core.zone.minFree);
    expect(text(run(s, 'check $ 4M fill 7'))).toContain('check: ok');
    expect(s.kernel.core.vmstat.oom_kill).toBe(0);
  });
});
