/**
 * End-to-end: the built binary (dist/cli.js) in a real terminal. An interactive session runs
 * under tmux (send-keys in, capture-pane out); script mode runs with stdin piped. Build first
 * (`pnpm test` in this package does: tsc -p tsconfig.build.json && vitest run).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli.js');
/** The tmux server socket: a path in this test's temp directory (nothing left behind in /tmp/tmux-*). */
let socket = '';
const session = 'e2e';

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-S', socket, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function tmuxAvailable(): boolean {
  return spawnSync('tmux', ['-V'], { encoding: 'utf8' }).status === 0;
}

function screen(): string {
  return tmux('capture-pane', '-p', '-J', '-t', session, '-S', '-400');
}

function alive(): boolean {
  return spawnSync('tmux', ['-S', socket, 'has-session', '-t', session]).status === 0;
}

/** Polls the pane until pred holds (bounded); returns the screen and the time it took. */
async function waitScreen(
  pred: (s: string) => boolean,
  what: string,
  ms = 10_000,
): Promise<{ text: string; ms: number }> {
  const t0 = Date.now();
  let last = '';
  while (Date.now() - t0 < ms) {
    if (!alive()) throw new Error(`the shell exited while waiting for ${what}; last screen:\n${last}`);
    last = screen();
    if (pred(last)) return { text: last, ms: Date.now() - t0 };
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}; screen:\n${last}`);
}

function keys(...k: string[]): void {
  tmux('send-keys', '-t', session, ...k);
}

function literal(text: string): void {
  tmux('send-keys', '-t', session, '-l', text);
}

describe('hmm-shell binary', () => {
  let dir = '';
  beforeAll(() => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (tsc -p tsconfig.build.json)`);
    dir = mkdtempSync(join(tmpdir(), 'hmm-e2e-'));
    socket = join(dir, 'tmux.sock');
  });
  afterAll(() => {
    spawnSync('tmux', ['-S', socket, 'kill-server']);
  });

  it('interactive session under tmux: prompt, commands, live map, completion, history, Ctrl-C twice', async () => {
    if (!tmuxAvailable())
      throw new Error(
        'tmux is not installed: install it (e.g. apt-get install tmux; .ci/run installs it) to run this test',
      );
    const hist = join(dir, 'history');
    writeFileSync(hist, 'echo from an earlier session\n');
    try {
      tmux(
        'new-session',
        '-d',
        '-s',
        session,
        '-x',
        '120',
        '-y',
        '40',
        `env HMM_SHELL_HISTORY=${hist} NO_COLOR=1 node ${cli}`,
      );
      const first = await waitScreen((s) => s.includes('hmm:1>'), 'the first prompt');
      const ready = await waitScreen(
        (s) => s.includes('address space: pid 1 · 0 VMAs'),
        'the booted machine',
      );
      console.info(
        `[e2e] under tmux: first prompt after ${first.ms} ms, machine ready ${ready.ms} ms later (polling every 25 ms)`,
      );
      expect(ready.text).toContain('hmm-model shell');

      literal('mmap 4M rw private anon hugepage');
      keys('Enter');
      await waitScreen((s) => s.includes('mmap: 0x7effffc00000-0x7f0000000000'), 'mmap output');
      literal('write $ 2M index');
      keys('Enter');
      const map = await waitScreen((s) => s.includes('0x7effffc00000 |T.|'), 'the THP in the live map');
      expect(map.text).toMatch(/last: write \([\d.]+ ms\) Δ nr_anon_pages \+512/);

      // Each command's output is awaited before the next is typed: keys typed while a command
      // runs are dropped (by design, tested below), and a loaded CI host makes fork take long.
      literal('fork');
      keys('Enter');
      await waitScreen((s) => s.includes('fork: child pid 2'), 'fork output');
      literal('switch 2');
      keys('Enter');
      await waitScreen(
        (s) => s.includes('hmm:2>') && s.includes('address space: pid 2'),
        'the switch to the child',
      );
      literal('check $ 2M index');
      keys('Enter');
      await waitScreen(
        (s) => s.includes('check: ok — 2 MiB at 0x7effffc00000 match int index'),
        'check in the child',
      );

      literal('munmap $+4K 4K');
      keys('Enter');
      await waitScreen((s) => /^munmap: /m.test(s), 'munmap output');
      literal('zoom $');
      keys('Enter');
      await waitScreen((s) => s.includes('1 cell = 4 KiB page') && s.includes('|s sss'), 'the zoomed map');

      literal('migrate $+2M 2M dev');
      keys('Enter');
      // Without the dmirror driver: ENOENT naming the device file; with it: the migration.
      await waitScreen(
        (s) => /migrate: (ENOENT — \/dev\/hmm_dmirror0 does not exist|\d+ page)/.test(s),
        'the migrate result',
      );

      literal('mad');
      keys('Tab');
      await waitScreen((s) => s.includes('hmm:2> madvise'), 'tab completion');
      keys('C-u');
      keys('Up');
      await waitScreen((s) => /hmm:2> migrate \$\+2M 2M dev/.test(s), 'history recall');
      keys('C-c');
      await waitScreen((s) => s.includes('press Ctrl-C again'), 'the Ctrl-C hint');
      keys('C-c');
      const t0 = Date.now();
      while (alive() && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 25));
      expect(alive()).toBe(false);
      const saved = readFileSync(hist, 'utf8');
      expect(saved.startsWith('echo from an earlier session\nmmap 4M rw private anon hugepage\n')).toBe(true);
      expect(saved).toContain('migrate $+2M 2M dev\n');
    } finally {
      spawnSync('tmux', ['-S', socket, 'kill-session', '-t', session]);
    }
  });

  it('under tmux: keys typed while a command runs are dropped; its Ctrl-C interrupts it and never quits the shell', async () => {
    if (!tmuxAvailable())
      throw new Error(
        'tmux is not installed: install it (e.g. apt-get install tmux; .ci/run installs it) to run this test',
      );
    const hist = join(dir, 'history-busy');
    try {
      tmux(
        'new-session',
        '-d',
        '-s',
        session,
        '-x',
        '120',
        '-y',
        '40',
        `env HMM_SHELL_HISTORY=${hist} NO_COLOR=1 node ${cli}`,
      );
      await waitScreen((s) => s.includes('address space: pid 1 · 0 VMAs'), 'the booted machine');
      literal('mmap 1G nohugepage');
      keys('Enter');
      await waitScreen((s) => s.includes('mmap: 0x'), 'mmap output');
      // 262144 page faults in steps of 4096 pages: seconds, long enough to type into.
      literal('fault $ 1G write');
      keys('Enter');
      await waitScreen((s) => s.includes('Ctrl-C interrupts (SIGINT)'), 'the progress line');
      literal('echo replayed');
      keys('Enter');
      keys('C-c');
      const done = await waitScreen(
        (s) => s.includes('fault: SIGINT — interrupted by Ctrl-C') && /^hmm:1>\s*$/m.test(s),
        'the interrupted command and the prompt',
      );
      expect(done.text).toContain('process 1 is init, which ignores SIGINT');
      // One more Ctrl-C only arms the quit: the one during the command did not count.
      keys('C-c');
      await waitScreen((s) => s.includes('press Ctrl-C again'), 'the Ctrl-C hint');
      expect(alive()).toBe(true);
      literal('echo still here');
      keys('Enter');
      const end = await waitScreen((s) => /^still here$/m.test(s), 'the next command');
      // The line typed during the command never ran, nor reached the prompt.
      expect(end.text).not.toContain('replayed');
    } finally {
      spawnSync('tmux', ['-S', socket, 'kill-session', '-t', session]);
    }
  });

  it('under tmux: what could lose a session does not (issue 13): an oversized migrate, extra words, kill of init, a stale $, exit of init', async () => {
    if (!tmuxAvailable())
      throw new Error(
        'tmux is not installed: install it (e.g. apt-get install tmux; .ci/run installs it) to run this test',
      );
    const hist = join(dir, 'history-edges');
    try {
      tmux(
        'new-session',
        '-d',
        '-s',
        session,
        '-x',
        '160',
        '-y',
        '40',
        `env HMM_SHELL_HISTORY=${hist} NO_COLOR=1 node ${cli}`,
      );
      await waitScreen((s) => s.includes('address space: pid 1 · 0 VMAs'), 'the booted machine');
      const line = async (text: string, until: (s: string) => boolean, what: string) => {
        literal(text);
        keys('Enter');
        return (await waitScreen(until, what)).text;
      };
      await line('mmap 4M', (s) => s.includes('mmap: 0x7effffc00000-0x7f0000000000'), 'mmap output');
      await line('write $ 4M index', (s) => s.includes('write: 4 MiB at 0x7effffc00000'), 'write output');
      // The shell's buffer costs what the ioctl copies: no 4 GiB scratch, no OOM kill of pid 1
      // (dmirror_migrate_to_device(): -EINVAL at the first hole, what is mapped before it moved).
      await line(
        'migrate $ 4G dev',
        (s) =>
          s.includes('migrate: EINVAL — range not covered by a readable VMA: 0x7f0000000000 is not mapped'),
        'the migrate over the hole',
      );
      await line(
        'maps | grep x',
        (s) => s.includes('maps: usage — unexpected words "| grep x" after the command'),
        'the refused extra words',
      );
      await line('fork', (s) => s.includes('fork: child pid 2'), 'fork');
      await line('switch 2', (s) => s.includes('hmm:2>'), 'the switch to the child');
      // sig_task_ignored(): global init ignores a SIGKILL sent from its own namespace.
      await line(
        'kill 1 KILL',
        (s) => s.includes('kill: SIGKILL (signal 9) sent to 1: still running (the signal was ignored)'),
        'kill of init',
      );
      await line('switch 1', (s) => /hmm:1>\s*$/m.test(s), 'the switch back');
      await line('kill 2 9', (s) => s.includes('kill: SIGKILL (signal 9) sent to 2'), 'kill of the child');
      await line(
        'munmap $ 4M',
        (s) => s.includes('munmap: 0x7effffc00000-0x7f0000000000 (4 MiB) unmapped'),
        'munmap',
      );
      await line('read $', (s) => s.includes('read: stale — $ is 0x7effffc00000'), 'the stale $');
      // do_exit() of global init panics; the modelled panic is shown and the session goes on.
      await line(
        'exit',
        (s) => s.includes('Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000'),
        'the panic of init',
      );
      const end = await line('echo still here', (s) => /^still here$/m.test(s), 'the next command');
      expect(alive()).toBe(true);
      expect(end).toContain('TAINTED D');
      expect(end).not.toContain('Out of memory');
    } finally {
      spawnSync('tmux', ['-S', socket, 'kill-session', '-t', session]);
    }
  });

  it('script mode from a pipe: plain text, --strict exit status, --json lines', () => {
    const input = 'mmap 4M rw private anon hugepage\nwrite $ 2M index\nmap\nbogus\necho after\n';
    const plain = spawnSync('node', [cli], { input, encoding: 'utf8' });
    expect(plain.status).toBe(0);
    expect(plain.stdout).toContain('hmm:1> mmap 4M rw private anon hugepage\n');
    expect(plain.stdout).toContain('0x7effffc00000 |T.|');
    expect(plain.stdout).toContain('hmm: unknown-command');
    expect(plain.stdout).toContain('after');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for escape codes
    expect(plain.stdout).not.toMatch(/\x1b/);
    const strict = spawnSync('node', [cli, '--strict'], { input, encoding: 'utf8' });
    expect(strict.status).toBe(1);
    expect(strict.stdout).not.toContain('after');
    const json = spawnSync('node', [cli, '--json'], { input, encoding: 'utf8' });
    const lines = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.ok)).toEqual([true, true, true, false, true]);
    const file = join(dir, 'demo.hmm');
    writeFileSync(file, 'mmap 2M\nvars\n');
    const fromFile = spawnSync('node', [cli, '--script', file], { encoding: 'utf8' });
    expect(fromFile.stdout).toMatch(/\$ +0x7effffe00000/);
    const bad = spawnSync('node', [cli, '--frob'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown option --frob');
  });

  it('`pnpm shell --json` from the repository root writes only JSON lines to stdout', () => {
    // `pnpm shell` is the @hmm-model/shell package's `shell` bin (scripts/pnpm-shell.mjs), which
    // pnpm runs without printing a "> hmm-model@ shell" banner; the build's output goes to stderr
    // (skipped here: this test runs after the build).
    const execpath = process.env.npm_execpath;
    const [cmd, pre] =
      execpath && /pnpm/.test(execpath) ? [process.execPath, [execpath]] : ['pnpm', [] as string[]];
    const repo = join(root, '..', '..');
    const input = 'mmap 2M\nbogus\necho last\n';
    const r = spawnSync(cmd, [...pre, 'shell', '--json'], {
      cwd: repo,
      input,
      encoding: 'utf8',
      env: { ...process.env, HMM_SHELL_NO_BUILD: '1' },
    });
    if (r.error) throw new Error(`could not run pnpm (${r.error.message}): pnpm 10 is needed on PATH`);
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines.map((l) => JSON.parse(l).line)).toEqual(['mmap 2M', 'bogus', 'echo last']);
    expect(r.stdout).not.toContain('> hmm-model');
    // Its exit status is hmm-shell's (--strict: 1 at the first failing command).
    const strict = spawnSync(cmd, [...pre, 'shell', '--json', '--strict'], {
      cwd: repo,
      input,
      encoding: 'utf8',
      env: { ...process.env, HMM_SHELL_NO_BUILD: '1' },
    });
    expect(strict.status).toBe(1);
    expect(strict.stdout.split('\n').filter((l) => l !== '')).toHaveLength(2);
  });

  it('replays an explorer reproducer with --script; with --strict its finding ends the run with status 1', () => {
    const file = join(dir, 'f10.hmm');
    writeFileSync(
      file,
      [
        '# hmm-model explorer reproducer: F10',
        '# finding: WARN: remove_migration_pmd: ...',
        '# replay: pnpm shell --script <this file>',
        'explore machine procs=3 threads=2 bugs=F10',
        'explore prelude p0.t0 mmap r0 512 thp prot 3',
        'explore prelude p0.t0 write r0 0+512 seed 1',
        'explore op p0.t0 dm0 to-dev r0 0+512',
        'explore schedule coop',
        'explore run',
        'echo after the run',
        '',
      ].join('\n'),
    );
    const lax = spawnSync('node', [cli, '--script', file], { encoding: 'utf8' });
    expect(lax.status).toBe(0);
    expect(lax.stdout).toMatch(/^finding: WARN: remove_migration_pmd: .*softleaf_is_migration_young/m);
    expect(lax.stdout).toContain('after the run');
    const strict = spawnSync('node', [cli, '--strict', '--script', file], { encoding: 'utf8' });
    expect(strict.status).toBe(1);
    expect(strict.stdout).toMatch(/^finding: WARN: remove_migration_pmd: /m);
    expect(strict.stdout).toContain('(stopped at line 9: --strict)');
    expect(strict.stdout).not.toContain('after the run');
  });

  it('starts fast enough in script mode (measured, reported, not asserted)', () => {
    const empty = join(dir, 'empty.hmm');
    writeFileSync(empty, '');
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      spawnSync('node', [cli, '--script', empty]);
      times.push(performance.now() - t0);
    }
    console.info(`[e2e] node dist/cli.js --script <empty>: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
    expect(times.length).toBe(3);
  });
});
