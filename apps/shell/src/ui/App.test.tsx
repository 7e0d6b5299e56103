import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import { History } from '../history.js';
import { buildAddressMap } from '../inspect/addrmap.js';
import { newSession, run } from '../testing/harness.js';
import { AddressMapView } from './AddressMap.js';
import { App } from './App.js';

type Rendered = ReturnType<typeof render>;
let mounted: Rendered | undefined;
afterEach(() => {
  mounted?.unmount();
  mounted = undefined;
});

/** Waits (bounded) until the last frame satisfies the predicate; returns it. */
async function waitFor(r: Rendered, pred: (frame: string) => boolean, ms = 3000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const f = r.lastFrame() ?? '';
    if (pred(f)) return f;
    if (Date.now() > end) throw new Error(`timed out; last frame:\n${f}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** The live prompt is back (it shows only while the shell takes keys). */
function promptReady(frame: string): boolean {
  return /^hmm:\d+> ?$/m.test(frame);
}

async function type(r: Rendered, keys: string): Promise<void> {
  r.stdin.write(keys);
  await new Promise((res) => setTimeout(res, 30));
}

/**
 * Types at the live prompt: waits until the shell takes keys again (keys typed while a command
 * runs, or just after a long one, are dropped on purpose), then types.
 */
async function typeAtPrompt(r: Rendered, keys: string): Promise<void> {
  await waitFor(r, promptReady);
  await type(r, keys);
}

function setup(color = false, ramBytes?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'hmm-app-'));
  const histFile = join(dir, 'history');
  const session = newSession(ramBytes ? { ramBytes } : {});
  const history = new History(histFile);
  const r = render(<App session={session} history={history} color={color} banner={['welcome banner']} />);
  mounted = r;
  return { r, session, history, histFile };
}

describe('App', () => {
  it('shows the banner, an empty map, the status line and the prompt', async () => {
    const { r } = setup();
    const f = await waitFor(r, (x) => x.includes('hmm:1>'));
    expect(f).toContain('welcome banner');
    expect(f).toContain('address space: pid 1 · 0 VMAs · 1 cell = 2 MiB');
    expect(f).toContain('(no mappings yet');
    expect(f).toMatch(/dev 0( \(no driver\))? · thp madvise/);
    expect(f).toContain('T THP');
  });

  it('runs a typed command, prints its output and updates the live map', async () => {
    const { r, histFile } = setup();
    await waitFor(r, (x) => x.includes('hmm:1>'));
    await type(r, 'mmap 4M rw private anon hugepage');
    await type(r, '\r');
    await waitFor(r, (x) => x.includes('mmap: 0x7effffc00000-0x7f0000000000'));
    await typeAtPrompt(r, 'write $ 2M index\r');
    const f = await waitFor(r, (x) => x.includes('|T.|'));
    expect(f).toContain('hmm:1> write $ 2M index');
    expect(f).toMatch(/last: write \([\d.]+ ms\) Δ nr_anon_pages \+512/);
    expect(readFileSync(histFile, 'utf8')).toBe('mmap 4M rw private anon hugepage\nwrite $ 2M index\n');
  });

  it('shows errors with errno and reason', async () => {
    const { r } = setup();
    await waitFor(r, (x) => x.includes('hmm:1>'));
    await type(r, 'munmap 0x1001 4K\r');
    await waitFor(r, (x) => x.includes('munmap: EINVAL — address 0x1001 is not page aligned'));
    await typeAtPrompt(r, 'frobnicate\r');
    await waitFor(r, (x) => x.includes('"frobnicate" is not a command'));
  });

  it('Tab completes, lists candidates; up/down browse history', async () => {
    const { r } = setup();
    await waitFor(r, (x) => x.includes('hmm:1>'));
    await type(r, 'mad\t');
    await waitFor(r, (x) => x.includes('hmm:1> madvise'));
    await type(r, '\x15m\t');
    await waitFor(r, (x) => x.includes('migrate') && x.includes('mprotect  mremap  munmap'));
    await type(r, '\x15echo first\r');
    await waitFor(r, (x) => x.includes('\nfirst'));
    await type(r, '\x1b[A');
    await waitFor(r, (x) => x.includes('hmm:1> echo first'));
    await type(r, '\x1b[B');
    await waitFor(r, (x) => /hmm:1> *\n/.test(`${x}\n`) || x.trimEnd().endsWith('hmm:1>'));
  });

  it('first Ctrl-C cancels the line, the second quits; Ctrl-D quits', async () => {
    const { r } = setup();
    await waitFor(r, (x) => x.includes('hmm:1>'));
    await type(r, 'mmap 4M');
    await type(r, '\x03');
    const f = await waitFor(r, (x) => x.includes('press Ctrl-C again'));
    expect(f).not.toContain('hmm:1> mmap 4M');
    await type(r, '\x03');
    // After exit Ink stops rendering; the app is unmounted, so typing changes nothing.
    await type(r, 'ps\r');
    expect(r.lastFrame()).not.toContain('PID');
    const second = setup();
    await waitFor(second.r, (x) => x.includes('hmm:1>'));
    await type(second.r, '\x04');
    await type(second.r, 'ps\r');
    expect(second.r.lastFrame()).not.toContain('PID');
  });

  it('keys typed while a command runs are dropped, not replayed; its Ctrl-C interrupts it and does not count toward quitting', async () => {
    const { r, session } = setup(false, 1024 * 2 ** 20);
    await waitFor(r, (x) => x.includes('hmm:1>'));
    run(session, 'mmap 512M nohugepage');
    // 131072 page faults in steps of 4096 pages: long enough to type into.
    await type(r, 'fault $ 512M write\r');
    const busy = await waitFor(r, (x) => x.includes('Ctrl-C interrupts (SIGINT)'), 10_000);
    expect(promptReady(busy)).toBe(false);
    await type(r, 'echo replayed\r');
    await waitFor(r, (x) => x.includes('key(s) typed while the command ran were dropped'));
    await type(r, '\x03');
    const f = await waitFor(r, (x) => x.includes('fault: SIGINT') && promptReady(x), 10_000);
    // Init ignores SIGINT (sig_task_ignored()): it lives, the shell stopped the command.
    expect(f).toMatch(
      /fault: SIGINT — interrupted by Ctrl-C after \d+ of 131072 pages .*: process 1 is init/,
    );
    expect(f).not.toContain('replayed');
    expect(f).toContain('hmm:1>');
    // That Ctrl-C did not arm the quit: one Ctrl-C at the prompt only arms it.
    await type(r, '\x03');
    await waitFor(r, (x) => x.includes('press Ctrl-C again'));
    await type(r, 'echo still here\r');
    const g = await waitFor(r, (x) => x.includes('\nstill here'));
    expect(g).not.toContain('replayed');
    expect(session.proc?.pid).toBe(1);
  });

  it('a Ctrl-C typed during the last step of a command, read after it, neither interrupts nor quits', async () => {
    const { r, session } = setup();
    await waitFor(r, (x) => x.includes('hmm:1>'));
    run(session, 'mmap 60M nohugepage', 'write $ 60M index');
    // The keys reach the app only after the command's one synchronous step (one 60 MiB ioctl
    // of 15360 pages): as if typed during it.
    setTimeout(() => r.stdin.write('\x03ls\x03'), 0);
    await type(r, 'migrate $ 60M dev\r');
    const f = await waitFor(r, (x) => x.includes('nothing was interrupted') && promptReady(x), 10_000);
    expect(f).toContain('migrate: 15360 page(s)');
    expect(f).toContain('the device sees index 0 (60 MiB)');
    await type(r, '\x03');
    await waitFor(r, (x) => x.includes('press Ctrl-C again'));
    await type(r, 'echo alive\r');
    await waitFor(r, (x) => x.includes('\nalive'));
  });

  it('lines pasted together with a command still run after it, in order', async () => {
    const { r } = setup();
    await waitFor(r, (x) => x.includes('hmm:1>'));
    await type(r, 'echo one\recho two\r');
    const f = await waitFor(r, (x) => x.includes('\ntwo'));
    expect(f.indexOf('\none')).toBeLessThan(f.indexOf('\ntwo'));
  });

  it('keeps the touched VMA in view, and shows a modelled oops and the taint in the status line', async () => {
    const { r, session } = setup();
    await waitFor(r, (x) => x.includes('hmm:1>'));
    for (let i = 0; i < 12; i++) run(session, `mmap 2M at ${0x100000000000 + i * 0x40000000} fixed`);
    await type(r, `write ${0x100000000000 + 11 * 0x40000000} 4K zero\r`);
    const f = await waitFor(r, (x) => x.includes('rows above'));
    expect(f).toContain(`0x${(0x100000000000 + 11 * 0x40000000).toString(16)} |s|`);
    // The process's own 200 MiB leave too little for the system pages behind the device THPs.
    run(session, 'mmap 200M', 'write $ 200M fill 1');
    await typeAtPrompt(r, 'mmap 64M hugepage\r');
    await waitFor(r, (x) => x.includes('mmap: 0x7eff'));
    await typeAtPrompt(r, 'migrate $ 64M dev\r');
    const oops = await waitFor(
      r,
      (x) => x.includes('TAINTED D') && x.includes('migrate: kernel oops'),
      10_000,
    );
    expect(oops).toContain(
      'migrate: kernel oops (modelled): NULL pointer dereference in dmirror_migrate_alloc_and_copy',
    );
  });

  it('follows the current process after fork/switch and exit', async () => {
    const { r } = setup();
    await waitFor(r, (x) => x.includes('hmm:1>'));
    await type(r, 'mmap 2M hugepage\r');
    await waitFor(r, (x) => x.includes('mmap: '));
    await typeAtPrompt(r, 'fork\r');
    await waitFor(r, (x) => x.includes('fork: '));
    await typeAtPrompt(r, 'switch 2\r');
    await waitFor(r, (x) => x.includes('hmm:2>') && x.includes('address space: pid 2'));
    await typeAtPrompt(r, 'exit\r');
    await waitFor(r, (x) => x.includes('hmm:1>') && x.includes('current process is 1'));
  });
});

describe('AddressMapView', () => {
  it('plain letters without colour, ANSI colour codes with colour', () => {
    const s = newSession();
    run(s, 'mmap 4M hugepage', 'write $ 2M index');
    const map = buildAddressMap(s.kernel.core, s.proc!.mm);
    const plain = render(<AddressMapView map={map} pid={1} zoom={null} color={false} />);
    const pf = plain.lastFrame() ?? '';
    expect(pf).toContain('0x7effffc00000 |T.|');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking for escape codes
    expect(pf).not.toMatch(/\x1b\[/);
    plain.unmount();
    const coloured = render(<AddressMapView map={map} pid={1} zoom={null} color={true} />);
    const cf = coloured.lastFrame() ?? '';
    expect(cf).toContain('T');
    // Colour is on unless chalk decides the test's stdout cannot show it; either way the text is there.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping escape codes
    expect(cf.replace(/\x1b\[[0-9;]*m/g, '')).toContain('0x7effffc00000 |T.|');
    coloured.unmount();
  });
  it('zoomed view title and no-process placeholder', () => {
    const s = newSession();
    run(s, 'mmap 2M', 'write $ 4K zero');
    const a = s.vars.get('') ?? 0;
    const map = buildAddressMap(s.kernel.core, s.proc!.mm, { zoom: a });
    const z = render(<AddressMapView map={map} pid={1} zoom={a} color={false} />);
    expect(z.lastFrame()).toContain('1 cell = 4 KiB page');
    expect(z.lastFrame()).toContain(`|s${'.'.repeat(63)}|`);
    z.unmount();
    const none = render(<AddressMapView map={null} pid={null} zoom={null} color={false} />);
    expect(none.lastFrame()).toContain('no current process');
    none.unmount();
  });
});
