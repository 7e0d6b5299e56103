/** `explore`: building, showing and running explorer scenarios; replaying the explorer's reproducers. */

import { parseOp, type Reproducer, runScenario, type Scenario, shellScript } from '@hmm-model/explorer';
import { describe, expect, it } from 'vitest';
import { newSession, run, script, text } from './testing/harness.js';

/** The output lines of one command in a script transcript (from its prompt line to the next prompt). */
function outputOf(transcript: string, command: string): string[] {
  const lines = transcript.split('\n');
  const at = lines.findIndex((l) => /^hmm:\S*> /.test(l) && l.replace(/^hmm:\S*> /, '') === command);
  if (at < 0) throw new Error(`no \`${command}\` in the transcript:\n${transcript}`);
  const out: string[] = [];
  for (const l of lines.slice(at + 1)) {
    if (/^hmm:\S*> /.test(l) || l.startsWith('#') || l.startsWith('(stopped')) break;
    out.push(l);
  }
  return out;
}

const F10_PRELUDE = ['p0.t0 mmap r0 512 thp prot 3', 'p0.t0 write r0 0+512 seed 1'];
const F10_OPS = ['p0.t0 dm0 to-dev r0 0+512'];
const F10_FINDING = /^finding: WARN: remove_migration_pmd: .*softleaf_is_migration_young/;

/** The F10 reproducer as the explorer writes it (`shellScript()` of a coop run with the bug on). */
function f10Script(): { text: string; rep: Reproducer } {
  const scenario: Scenario = {
    procs: 3,
    threads: 2,
    prelude: F10_PRELUDE.map(parseOp),
    ops: F10_OPS.map(parseOp),
  };
  const r = runScenario(scenario, { schedule: 'coop', bugs: ['F10'] });
  if (!r.finding) throw new Error('F10 scenario did not fail');
  const rep: Reproducer = {
    scenario,
    schedule: 'coop',
    trace: r.trace,
    finding: r.finding,
    bugs: ['F10'],
    runs: 1,
  };
  return { text: shellScript(rep, 'F10: remove_migration_pmd on a device-private PMD'), rep };
}

describe('explore: parsing and one-line errors', () => {
  it('builds a scenario, echoing each step, with the defaults procs=3 threads=2', () => {
    const s = newSession();
    expect(text(run(s, 'explore machine'))).toBe(
      'explore: new scenario: 3 process slot(s) × 2 thread slot(s) (runs on its own machine)',
    );
    expect(s.explore).toMatchObject({ procs: 3, threads: 2, bugs: [], schedule: null });
    expect(text(run(s, 'explore machine procs=2 threads=4 bugs=F10,F15'))).toContain(
      '2 process slot(s) × 4 thread slot(s), bugs F10,F15 switched on',
    );
    expect(text(run(s, 'explore prelude p0.t0 mmap r0 512 thp prot 3'))).toBe(
      'explore: prelude 1: p0.t0 mmap r0 512 thp prot 3',
    );
    expect(text(run(s, 'explore op p1.t3 read r0 0+4'))).toBe('explore: op 1: p1.t3 read r0 0+4');
    expect(text(run(s, 'explore schedule pct:seed=3,d=2,k=400'))).toBe(
      'explore: schedule pct:seed=3,d=2,k=400',
    );
    expect(s.explore?.schedule).toBe('pct:seed=3,d=2,k=400');
    // ram= gives the scenario's machine that much RAM, and the script form keeps it.
    expect(text(run(s, 'explore machine procs=1 threads=1 ram=24M'))).toBe(
      'explore: new scenario: 1 process slot(s) × 1 thread slot(s), 24 MiB of RAM (runs on its own machine)',
    );
    expect(s.explore?.ramMiB).toBe(24);
    expect(text(run(s, 'explore show'))).toBe('explore machine procs=1 threads=1 ram=24M');
    // A new `explore machine` starts over.
    run(s, 'explore machine');
    expect(s.explore).toMatchObject({ prelude: [], ops: [], schedule: null });
  });

  it.each([
    [
      'explore',
      'explore: missing subcommand (machine, prelude, op, schedule, run, show, clear); `help explore` explains them',
    ],
    ['explore frob', "explore: unknown subcommand 'frob' (machine, prelude, op, schedule, run, show, clear)"],
    [
      'explore machine cpus=2',
      "explore: unknown machine option 'cpus=2' (procs=N, threads=M, check-every=N, bugs=ID,ID, fixes=ID,ID, ram=SIZE, mthp)",
    ],
    [
      'explore machine ram=8M',
      "explore: ram: RAM must be a multiple of 4 MiB from 16M to 4G (e.g. 32M), got '8M'",
    ],
    ['explore machine procs=0', "explore: procs must be a whole number from 1 to 6, got '0'"],
    ['explore machine procs=7', "explore: procs must be a whole number from 1 to 6, got '7'"],
    ['explore machine threads=x', "explore: threads must be a whole number from 1 to 6, got 'x'"],
    ['explore machine bugs=F10,F99', /^explore: unknown bug id 'F99' \(known: .*F10.*\)$/],
    ['explore machine fixes=K1,K99', /^explore: unknown fix id 'K99' \(known: .*K1.*\)$/],
    [
      'explore run',
      'explore: no scenario: `explore machine [procs=N] [threads=M] [check-every=N] [bugs=ID,ID]` starts one',
    ],
    ['explore show', /^explore: no scenario: /],
    ['explore op p0.t0 read r0 0+1', /^explore: no scenario: /],
    ['explore schedule coop', /^explore: no scenario: /],
  ])('%s: one line', (line, want) => {
    const e = run(newSession(), line);
    expect(e.result.ok).toBe(false);
    expect(e.result.lines).toHaveLength(1);
    if (typeof want === 'string') expect(text(e)).toBe(want);
    else expect(text(e)).toMatch(want);
  });

  it.each([
    ['explore op p0.t0 frobnicate r0 0+1', "explore: unknown operation 'frobnicate'"],
    ['explore prelude p0 write r0 0+1 seed 1', "explore: expected pP.tT first, got 'p0'"],
    ['explore op p0.t0 write r0 0-1 seed 1', "explore: expected a page range OFF+N, got '0-1'"],
    ['explore op p0.t0 madvise r0 0+1 sideways', /^explore: unknown advice 'sideways' \(dontneed, /],
    ['explore op', 'explore: missing operation: explore op pP.tT <operation>'],
    ['explore op p2.t0 exit', 'explore: process slot p2 is outside the machine (procs=2: p0..p1)'],
    ['explore prelude p0.t1 exit', 'explore: thread slot t1 is outside the machine (threads=1: t0..t0)'],
    ['explore schedule lottery', /^explore: unknown schedule 'lottery' \(expected coop, /],
    ['explore schedule pct:seed=x', "explore: bad parameter 'seed=x' (expected name=number)"],
    ['explore schedule trace:1x', "explore: bad trace element '1x' (expected ID or IDxCOUNT)"],
    ['explore schedule', /^explore: expected one schedule string: coop \| random:/],
    ['explore run now', /^explore: run takes no arguments/],
  ])('%s: one line, the scenario unchanged', (line, want) => {
    const s = newSession();
    run(s, 'explore machine procs=2 threads=1');
    const e = run(s, line);
    expect(e.result.ok).toBe(false);
    expect(e.result.lines).toHaveLength(1);
    if (typeof want === 'string') expect(text(e)).toBe(want);
    else expect(text(e)).toMatch(want);
    expect(s.explore).toMatchObject({ procs: 2, threads: 1, prelude: [], ops: [], schedule: null });
  });

  it('clear forgets the scenario; usage errors are not recorded, the scenario lines are', () => {
    const s = newSession();
    run(s, 'explore machine procs=1', 'explore op p0.t0 fork');
    run(s, 'explore op p5.t0 fork');
    expect(s.history).toEqual(['explore machine procs=1', 'explore op p0.t0 fork']);
    expect(text(run(s, 'explore clear'))).toBe('explore: scenario cleared');
    expect(s.explore).toBeNull();
    expect(run(s, 'explore run').result.ok).toBe(false);
  });

  it('help explore lists the subcommands with examples; Tab candidates for the subcommand', () => {
    const h = text(run(newSession(), 'help explore'));
    expect(h).toContain(
      'usage: explore machine [procs=N] [threads=M] [check-every=N] [bugs=ID,ID] | prelude <op> | op <op>',
    );
    expect(h).toContain('  examples:\n    explore machine procs=2 threads=2');
    expect(text(run(newSession(), 'help'))).toContain('Interleaving explorer');
  });
});

describe('explore: replaying an explorer reproducer', () => {
  it('the F10 reproducer written by shellScript() replays to the same finding through the script runner', async () => {
    const { text: file, rep } = f10Script();
    expect(file).toMatch(/^# hmm-model explorer reproducer: F10/);
    expect(file).toContain('explore machine procs=3 threads=2 bugs=F10\n');
    const { out, code, session } = await script(file);
    expect(code).toBe(0);
    // The header comments are echoed, not run.
    expect(out).toContain(`# finding: ${rep.finding.message.split('\n')[0]}\n`);
    expect(out).not.toContain('unknown-command');
    const got = outputOf(out, 'explore run');
    expect(got[0]).toMatch(F10_FINDING);
    expect(got[0]).toBe(`finding: ${rep.finding.message.split('\n')[0]}`);
    expect(got).toContain(`schedule: ${rep.trace}`);
    expect(got[1]).toMatch(
      /^warning after 3 operation\(s\) \(2 prelude \+ 1\), \d+ step\(s\), \d+ invariant check\(s\), \d+ page\(s\) compared \(under trace:\S*\)$/,
    );
    expect(got).toContain('  p0.t0 dm0 to-dev r0 0+512 -> 0');
    // The shell's own machine is untouched: no taint, still one process, nothing mapped.
    expect(session.taint).toBeNull();
    expect(session.processes()).toHaveLength(1);
    expect(text(run(session, 'ps'))).toMatch(/\*\s+1\s+-\s+running\s+0\s/);
  });

  it('the same script without bugs=F10 is clean', async () => {
    const { text: file } = f10Script();
    const { out, code } = await script(file.replace(' bugs=F10', ''));
    expect(code).toBe(0);
    const got = outputOf(out, 'explore run');
    expect(got[0]).toBe('clean');
    expect(got[1]).toMatch(/^ran 3 operation\(s\) \(2 prelude \+ 1\), \d+ step\(s\), /);
    expect(got[1]).toMatch(/ page\(s\) compared \(under trace:\S*\)$/);
  });

  it('a finding is a failed command: --strict stops at `explore run` with exit status 1', async () => {
    const { text: file } = f10Script();
    const strict = await script(`${file}echo after\n`, { strict: true });
    expect(strict.code).toBe(1);
    expect(strict.out).toMatch(/\(stopped at line 9: --strict\)\n$/);
    expect(strict.out).not.toContain('echo after');
    const json = await script(file, { json: true });
    const last = JSON.parse(json.out.trim().split('\n').at(-1) ?? '');
    expect(last).toMatchObject({ command: 'explore', ok: false, error: { name: 'finding' } });
    expect(last.data).toMatchObject({ category: 'warning', schedule: expect.stringMatching(/^trace:/) });
    expect(last.data.finding).toMatch(/^WARN: remove_migration_pmd: /);
  });

  it('a two-thread scenario under a random schedule replays identically, and its trace replays it', async () => {
    const scenario = [
      'explore machine procs=1 threads=2',
      'explore prelude p0.t0 mmap r0 512 thp prot 3',
      'explore prelude p0.t0 write r0 0+512 seed 1',
      'explore op p0.t0 dm0 to-dev r0 0+512',
      'explore op p0.t1 read r0 0+64',
      'explore op p0.t1 write r0 64+8 seed 2',
      'explore op p0.t0 dm0 to-sys r0 0+512',
      'explore op p0.t1 read r0 0+512',
    ].join('\n');
    const once = async (schedule: string) => {
      const { out, code } = await script(`${scenario}\nexplore schedule ${schedule}\nexplore run`);
      expect(code).toBe(0);
      return outputOf(out, 'explore run');
    };
    const a = await once('random:seed=4,p=0.9');
    const b = await once('random:seed=4,p=0.9');
    expect(a[0]).toBe('clean');
    const trace = a.find((l) => l.startsWith('schedule: '));
    expect(trace).toMatch(/^schedule: trace:\d+(x\d+)?(\.\d+(x\d+)?)+$/);
    expect(b).toEqual(a);
    // Pinning the printed trace replays the same interleaving: same operations and results, same trace.
    const c = await once(trace!.slice('schedule: '.length));
    expect(c.filter((l) => !l.includes(' (under '))).toEqual(a.filter((l) => !l.includes(' (under ')));
  });
});

describe('explore show', () => {
  it('prints the scenario as script lines that rebuild it (round trip)', async () => {
    const s = newSession();
    run(
      s,
      'explore machine procs=2 threads=3 bugs=F10,F15 fixes=none',
      'explore prelude p0.t0 mmap r0 512 thp prot 3',
      'explore prelude p0.t0   write r0 0+512 seed 1',
      'explore op p0.t2 dm1 to-dev r0 0+512',
      'explore op p1.t0 madvise r0 0+512 dontneed',
      'explore op p0.t1 mremap r0 0+16 to r1 0 dontunmap',
      'explore op p0.t0 gpu write r2 0+4 seed 9',
      'explore op p0.t1 dm0 close',
      'explore schedule pct:seed=5,d=2,k=400',
    );
    const shown = run(s, 'explore show').result.lines;
    expect(shown).toEqual([
      'explore machine procs=2 threads=3 bugs=F10,F15 fixes=none',
      'explore prelude p0.t0 mmap r0 512 thp prot 3',
      'explore prelude p0.t0 write r0 0+512 seed 1',
      'explore op p0.t2 dm1 to-dev r0 0+512',
      'explore op p1.t0 madvise r0 0+512 dontneed',
      'explore op p0.t1 mremap r0 0+16 to r1 0 dontunmap',
      'explore op p0.t0 gpu write r2 0+4 seed 9',
      'explore op p0.t1 dm0 close',
      'explore schedule pct:seed=5,d=2,k=400',
    ]);
    const { out, code, session } = await script(shown.join('\n'), { strict: true });
    expect(code).toBe(0);
    expect(out).not.toContain('explore: usage');
    expect(run(session, 'explore show').result.lines).toEqual(shown);
    expect(session.explore).toEqual(s.explore);
  });

  it('explore machine mthp runs the scenario on an mTHP machine: the mTHP operations work there', () => {
    const s = newSession();
    run(
      s,
      'explore machine procs=1 threads=1 mthp',
      'explore prelude p0.t0 mmap r0 512 prot 3',
      'explore prelude p0.t0 write r0 0+512 seed 1',
      'explore op p0.t0 dm0 snapshot-order r0 0+16',
      'explore op p0.t0 dm0 fail-order r0 0+16 order 4',
      'explore op p0.t0 mthp 64kB never',
      'explore op p0.t0 read r0 0+16',
    );
    expect(run(s, 'explore show').result.lines[0]).toBe('explore machine procs=1 threads=1 mthp');
    expect(s.explore?.mthp).toBe(true);
    const r = run(s, 'explore run');
    expect(r.result.ok).toBe(true);
    expect(text(r)).toMatch(/^clean\n/);
    expect(text(run(s, 'explore machine mthpp'))).toMatch(/unknown machine option 'mthpp'/);
  });

  it('leaves out the schedule line while none is pinned (run uses coop)', () => {
    const s = newSession();
    run(s, 'explore machine', 'explore op p0.t0 fork');
    expect(run(s, 'explore show').result.lines).toEqual([
      'explore machine procs=3 threads=2',
      'explore op p0.t0 fork',
    ]);
    expect(text(run(s, 'explore run'))).toMatch(
      /^clean\nran 1 operation\(s\) \(0 prelude \+ 1\), .* \(under coop\)\n/,
    );
  });
});
