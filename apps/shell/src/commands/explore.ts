/**
 * `explore`: builds and runs a scenario of the interleaving explorer (@hmm-model/explorer) — the
 * form its reproducers are written in (`shellScript()`), so a shrunk finding replays with
 * `pnpm shell --script FILE`. The scenario runs on the explorer's own machine (a fresh World per
 * run); the shell's machine, processes and variables are not touched.
 */

import { describeOp, type Op, parseOp, parseRamMiB, type RunResult, runScenario } from '@hmm-model/explorer';
import { checkBugIds, checkFixIds, parseSchedule } from '@hmm-model/mm-core';
import { type CommandResult, type Json, ok } from '../result.js';
import type { ExploreDraft, Session } from '../session.js';
import type { CommandSpec } from './types.js';

/** Largest process and thread slot counts `explore machine` accepts. */
export const EXPLORE_MAX_PROCS = 6;
export const EXPLORE_MAX_THREADS = 6;
/** Operations of the run's log `explore run` prints. */
export const EXPLORE_LOG_LINES = 8;

const SUBCOMMANDS = ['machine', 'prelude', 'op', 'schedule', 'run', 'show', 'clear'] as const;

/** A one-line error `explore: <message>` (name `usage` for bad input: `record` leaves it out). */
function bad(why: string, name = 'usage'): CommandResult {
  return { ok: false, lines: [`explore: ${why}`], error: { name, why } };
}

function needDraft(s: Session): ExploreDraft | CommandResult {
  return (
    s.explore ??
    bad('no scenario: `explore machine [procs=N] [threads=M] [check-every=N] [bugs=ID,ID]` starts one')
  );
}

function isResult(x: ExploreDraft | CommandResult): x is CommandResult {
  return 'ok' in x;
}

function slotCount(opt: string, value: string, max: number): number | string {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max)
    return `${opt} must be a whole number from 1 to ${max}, got '${value}'`;
  return Number(value);
}

function machine(s: Session, args: readonly string[]): CommandResult {
  let procs = 3;
  let threads = 2;
  let bugs: string[] = [];
  let checkEvery: number | undefined;
  let fixes: string[] | undefined;
  let mthp = false;
  let ramMiB: number | undefined;
  for (const a of args) {
    if (a === 'mthp') {
      mthp = true;
      continue;
    }
    const m = /^(procs|threads|bugs|fixes|check-every|ram)=(.*)$/.exec(a);
    if (!m)
      return bad(
        `unknown machine option '${a}' (procs=N, threads=M, check-every=N, bugs=ID,ID, fixes=ID,ID, ram=SIZE, mthp)`,
      );
    if (m[1] === 'fixes') {
      fixes = m[2] === 'none' || m[2] === '' ? [] : m[2].split(',');
      try {
        checkFixIds(fixes);
      } catch (e) {
        return bad((e as Error).message);
      }
      continue;
    }
    if (m[1] === 'ram') {
      const mib = parseRamMiB(m[2]);
      if (typeof mib === 'string') return bad(`ram: ${mib}`);
      ramMiB = mib;
      continue;
    }
    if (m[1] === 'check-every') {
      const n = slotCount(m[1], m[2], 1_000_000);
      if (typeof n === 'string') return bad(n);
      checkEvery = n;
      continue;
    }
    if (m[1] === 'bugs') {
      bugs = m[2] === '' ? [] : m[2].split(',');
      try {
        checkBugIds(bugs);
      } catch (e) {
        return bad((e as Error).message);
      }
      continue;
    }
    const n = slotCount(m[1], m[2], m[1] === 'procs' ? EXPLORE_MAX_PROCS : EXPLORE_MAX_THREADS);
    if (typeof n === 'string') return bad(n);
    if (m[1] === 'procs') procs = n;
    else threads = n;
  }
  s.explore = {
    procs,
    threads,
    bugs,
    prelude: [],
    ops: [],
    schedule: null,
    ...(checkEvery ? { checkEvery } : {}),
    ...(fixes ? { fixes } : {}),
    ...(mthp ? { mthp } : {}),
    ...(ramMiB ? { ramMiB } : {}),
  };
  return ok(
    [
      `explore: new scenario: ${procs} process slot(s) × ${threads} thread slot(s)${bugs.length ? `, bugs ${bugs.join(',')} switched on` : ''}${mthp ? ', an mTHP machine' : ''}${ramMiB ? `, ${ramMiB} MiB of RAM` : ''} (runs on its own machine)`,
    ],
    { procs, threads, bugs, mthp },
  );
}

function addOp(s: Session, where: 'prelude' | 'op', args: readonly string[]): CommandResult {
  const d = needDraft(s);
  if (isResult(d)) return d;
  if (args.length === 0) return bad(`missing operation: explore ${where} pP.tT <operation>`);
  let op: Op;
  try {
    op = parseOp(args.join(' '));
  } catch (e) {
    // OpSyntaxError: one line naming what is wrong.
    return bad((e as Error).message);
  }
  if (op.p >= d.procs)
    return bad(`process slot p${op.p} is outside the machine (procs=${d.procs}: p0..p${d.procs - 1})`);
  if (op.t >= d.threads)
    return bad(`thread slot t${op.t} is outside the machine (threads=${d.threads}: t0..t${d.threads - 1})`);
  const list = where === 'prelude' ? d.prelude : d.ops;
  list.push(op);
  const text = describeOp(op);
  return ok([`explore: ${where} ${list.length}: ${text}`], { [where]: text, index: list.length - 1 });
}

function schedule(s: Session, args: readonly string[]): CommandResult {
  const d = needDraft(s);
  if (isResult(d)) return d;
  if (args.length !== 1)
    return bad('expected one schedule string: coop | random:seed=N,p=P | pct:seed=N,d=D,k=K | trace:...');
  try {
    parseSchedule(args[0]);
  } catch (e) {
    // ScheduleSyntaxError: one line.
    return bad((e as Error).message);
  }
  d.schedule = args[0];
  return ok([`explore: schedule ${args[0]}`], { schedule: args[0] });
}

/** The scenario as the script lines that rebuild it (what `explore show` prints). */
export function draftScript(d: ExploreDraft): string[] {
  return [
    `explore machine procs=${d.procs} threads=${d.threads}${d.checkEvery ? ` check-every=${d.checkEvery}` : ''}${d.bugs.length ? ` bugs=${d.bugs.join(',')}` : ''}${d.fixes ? ` fixes=${d.fixes.join(',') || 'none'}` : ''}${d.mthp ? ' mthp' : ''}${d.ramMiB ? ` ram=${d.ramMiB}M` : ''}`,
    ...d.prelude.map((op) => `explore prelude ${describeOp(op)}`),
    ...d.ops.map((op) => `explore op ${describeOp(op)}`),
    ...(d.schedule ? [`explore schedule ${d.schedule}`] : []),
  ];
}

/** The report of a run: the finding (or `clean`), a summary, the replay trace, the last operations. */
function report(d: ExploreDraft, sched: string, r: RunResult): CommandResult {
  const f = r.finding;
  const [first, ...details] = f ? f.message.split('\n') : [];
  const tail = r.log.slice(-EXPLORE_LOG_LINES);
  const lines = [
    ...(f ? [`finding: ${first}`, ...details.map((l) => `  ${l}`)] : ['clean']),
    `${f ? `${f.category} after` : 'ran'} ${r.opsDone} operation(s) (${d.prelude.length} prelude + ${d.ops.length}), ${r.steps} step(s), ${r.checks} invariant check(s), ${r.checkedPages} page(s) compared (under ${sched})`,
    `schedule: ${r.trace}`,
    ...(tail.length
      ? [
          `last ${tail.length === r.log.length ? '' : `${tail.length} of `}${tail.length === 1 ? 'operation' : 'operations'}:`,
          ...tail.map((l) => `  ${l}`),
        ]
      : []),
  ];
  const data: { [k: string]: Json } = {
    finding: f ? first : null,
    category: f ? f.category : null,
    details: details,
    opsDone: r.opsDone,
    steps: r.steps,
    checks: r.checks,
    checkedPages: r.checkedPages,
    schedule: sched,
    trace: r.trace,
    log: [...r.log],
  };
  if (!f) return ok(lines, data);
  // A finding is a failed command: --strict stops the script there with exit status 1.
  return { ok: false, lines, data, error: { name: 'finding', why: first } };
}

function run(s: Session, args: readonly string[]): CommandResult {
  const d = needDraft(s);
  if (isResult(d)) return d;
  if (args.length)
    return bad(`run takes no arguments (pin a schedule with \`explore schedule\`), got '${args[0]}'`);
  const sched = d.schedule ?? 'coop';
  const r = runScenario(
    {
      procs: d.procs,
      threads: d.threads,
      prelude: [...d.prelude],
      ops: [...d.ops],
      ...(d.checkEvery ? { checkEvery: d.checkEvery } : {}),
      ...(d.mthp ? { mthp: true } : {}),
      ...(d.ramMiB ? { ramMiB: d.ramMiB } : {}),
    },
    { schedule: sched, bugs: d.bugs, ...(d.fixes ? { fixes: d.fixes } : {}) },
  );
  return report(d, sched, r);
}

function show(s: Session, args: readonly string[]): CommandResult {
  const d = needDraft(s);
  if (isResult(d)) return d;
  if (args.length) return bad(`show takes no arguments, got '${args[0]}'`);
  return ok(draftScript(d), { script: draftScript(d) });
}

/** The `explore` command family. */
export const explore: CommandSpec = {
  name: 'explore',
  group: 'explore',
  usage:
    'explore machine [procs=N] [threads=M] [check-every=N] [bugs=ID,ID] | prelude <op> | op <op> | schedule <s> | run | show | clear',
  summary: 'build and replay an interleaving-explorer scenario (the reproducers `pnpm fuzz` writes)',
  details: [
    "Model-only. A scenario runs on the explorer's own fresh machine (512 MiB unless ram= says,",
    "the four dmirror devices, a nouveau GPU, every invariant checker); the shell's machine is not",
    'touched.',
    'explore machine [procs=N] [threads=M] [check-every=N] [bugs=ID,ID]   start a new scenario (defaults 3 and 2,',
    '    no bugs; procs and threads 1..6; bugs are mm-core bug ids switched back on;',
    "    fixes=ID,ID|none picks the fix switches of the model's kernel findings, default all;",
    '    mthp boots an mTHP machine: anonymous mTHP sizes on, dmirror devices with mTHP orders;',
    '    ram=SIZE gives it SIZE of system RAM instead of 512M, 16M to 4G: a small machine reclaims,',
    '    swaps and OOM-kills)',
    'explore prelude <op>   an operation run alone, in order, before the threads start',
    'explore op <op>        an operation of the thread slot it names (pP.tT), in order per thread',
    "    <op> is the explorer's text form: pP.tT mmap rR PAGES [thp] prot N | munmap|read|pagemap",
    '    rR OFF+N | write rR OFF+N seed S | mprotect rR OFF+N prot N | madvise rR OFF+N ADVICE |',
    '    mremap rR OFF+N to rR2 PAGE [dontunmap] | fork | exit | kill pN | oom pN |',
    '    dmD to-dev|to-sys|read|write|snapshot|exclusive|check-exclusive|release|fail-alloc rR OFF+N |',
    '    dmD close | gpu read|migrate|job-read rR OFF+N | gpu write|job-write rR OFF+N seed S (job-: a',
    '    GPU job the engine runs while the process waits for its fence, so the process may exit first) |',
    '    pin rR OFF+N [write] | unpin (long-term pins: gup_test PIN_LONGTERM_TEST_START/STOP) |',
    '    swapoff | swapon (the swap partition) | split rR OFF+N order O [at PAGE] (debugfs split) |',
    '    (mthp machines)',
    '    dmD fail-order rR OFF+N order O | dmD snapshot-order rR OFF+N | mthp 64kB always|inherit|madvise|never',
    'explore schedule <s>   coop (default) | random:seed=N,p=P | pct:seed=N,d=D,k=K | trace:... (replay)',
    'explore run            run it: the finding (or `clean`), a summary, `schedule: trace:...` (replays',
    '    this exact interleaving) and the last operations. A finding fails the command: with',
    '    --strict a script stops there with exit status 1.',
    'explore show           the scenario as script lines; explore clear forgets it',
  ],
  examples: [
    'explore machine procs=2 threads=2',
    'explore prelude p0.t0 mmap r0 512 thp prot 3',
    'explore prelude p0.t0 write r0 0+512 seed 1',
    'explore op p0.t0 dm0 to-dev r0 0+512',
    'explore op p0.t1 read r0 0+16',
    'explore schedule random:seed=7,p=0.5',
    'explore run',
    'explore show',
    'explore clear',
  ],
  mutates: false,
  maxArgs: Number.POSITIVE_INFINITY,
  words(i, args) {
    if (i === 0) return SUBCOMMANDS;
    if (args[0] === 'machine')
      return ['procs=', 'threads=', 'check-every=', 'bugs=', 'fixes=', 'ram=', 'mthp'];
    if (args[0] === 'schedule' && i === 1)
      return ['coop', 'random:seed=1,p=0.5', 'pct:seed=1,d=3,k=2000', 'trace:'];
    return [];
  },
  run(s, args): CommandResult {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'machine':
        return machine(s, rest);
      case 'prelude':
      case 'op':
        return addOp(s, sub, rest);
      case 'schedule':
        return schedule(s, rest);
      case 'run':
        return run(s, rest);
      case 'show':
        return show(s, rest);
      case 'clear':
        if (rest.length) return bad(`clear takes no arguments, got '${rest[0]}'`);
        s.explore = null;
        return ok(['explore: scenario cleared']);
      default:
        return bad(
          sub === undefined
            ? `missing subcommand (${SUBCOMMANDS.join(', ')}); \`help explore\` explains them`
            : `unknown subcommand '${sub}' (${SUBCOMMANDS.join(', ')})`,
        );
    }
  },
};
