import { KernelBug, kernelBugTaint, MMAP_MIN_ADDR, ModelBug, SignalDelivered } from '@hmm-model/mm-core';
import { parseAddr, tokenize } from '../parse.js';
import { type CommandResult, fail, UsageError } from '../result.js';
import { entriesDelta, type Session, snapshotEntries, snapshotVmstat, vmstatDelta } from '../session.js';
import { signalName } from '../signals.js';
import { argTarget, staleDollar, unexpectedWords, unexpectedWordsMessage } from './args.js';
import { DATA_COMMANDS } from './data.js';
import { DEVICE_COMMANDS, dmirrorCommand } from './devices.js';
import { explore } from './explore.js';
import { GPU_COMMANDS } from './gpu.js';
import { INSPECT_COMMANDS } from './inspect.js';
import { MEMORY_COMMANDS } from './memory.js';
import { notifiers } from './notifiers.js';
import { PROCESS_COMMANDS } from './process.js';
import { makeHelp, NOT_RECORDED, SHELL_COMMANDS, VAR_NAME } from './shell.js';
import { STATS_COMMANDS } from './stats.js';
import { SYS_COMMANDS } from './sys.js';
import type { CommandSpec, Progress } from './types.js';

/** Every shell command, in help order. */
export const COMMANDS: readonly CommandSpec[] = [
  ...MEMORY_COMMANDS,
  ...DATA_COMMANDS,
  ...DEVICE_COMMANDS,
  dmirrorCommand,
  ...GPU_COMMANDS,
  ...PROCESS_COMMANDS,
  ...INSPECT_COMMANDS,
  notifiers,
  ...STATS_COMMANDS,
  ...SYS_COMMANDS,
  explore,
  makeHelp(() => COMMANDS),
  ...SHELL_COMMANDS,
];

/** Finds a command by name or alias. */
export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

/** Every command name and alias (for completion). */
export function commandNames(): string[] {
  return COMMANDS.flatMap((c) => [c.name, ...(c.aliases ?? [])]);
}

function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

/** The closest command name to a typo, if close enough. */
export function suggest(name: string): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const n of commandNames()) {
    const d = distance(name, n);
    if (d < bestD) {
      bestD = d;
      best = n;
    }
  }
  return best;
}

/** One executed command line: what ran, in which process, its result and its vmstat change. */
export interface Executed {
  readonly line: string;
  /** The command name, or null for a blank/comment line. */
  readonly command: string | null;
  /** The current process before the command ran. */
  readonly pid: number | null;
  readonly result: CommandResult;
  /** Counters the command changed. */
  readonly vmstatDelta: readonly [string, number][];
  /** Wall time of the command in milliseconds. */
  readonly ms: number;
}

/**
 * A modelled kernel failure (KernelBug): shown as the kernel reports it, headline lines first
 * and the one-line summary last; the machine is kept exactly as the failing code left it and
 * the kernel is marked tainted.
 */
function kernelBugResult(s: Session, cmd: string, e: KernelBug): CommandResult {
  const taint = kernelBugTaint(e.kind);
  // The one-line summary (the message also carries the dump, shown above it already).
  const summary = e.message.split('\n')[0];
  s.addTaint(taint, summary);
  const colon = summary.indexOf(': ');
  return {
    ok: false,
    lines: [
      ...e.consoleLines().map((l) => `  ${l}`),
      `  the machine is left as the failing code left it (kernel tainted: ${s.taint?.flags ?? taint}); inspect it with walk, folio, devices, vram, invariants`,
      `${cmd}: ${summary}`,
    ],
    error: { name: summary.slice(0, colon), why: summary.slice(colon + 2) },
  };
}

/**
 * A ModelBug: an inconsistency of the model itself, except for a wait that can never finish after
 * a modelled oops, which is what the kernel does too (the oopsed task died holding its locks and
 * migration entries): that one is a modelled hang.
 */
function modelBugResult(s: Session, cmd: string, e: ModelBug): CommandResult {
  const first = e.message.split('\n')[0];
  const dump = e.dump ? e.dump.split('\n') : [];
  if (s.taint?.flags.includes('D') && first.startsWith('deadlock'))
    return fail(
      cmd,
      'kernel hang (modelled)',
      `${first}: it waits for state an earlier oopsing task left behind (its locks, migration entries), as a tainted kernel would`,
      undefined,
      dump,
    );
  const tainted = s.taint
    ? [`  (the kernel is tainted ${s.taint.flags} by an earlier modelled failure)`]
    : [];
  return fail(cmd, 'MODEL BUG', first, undefined, [...dump, ...tainted]);
}

/**
 * What the dispatcher refuses before running a command, so that nothing changes: words after a
 * complete command (a usage error) and a `$` whose mapping is gone (`stale`). Null to run it.
 */
function refuse(s: Session, spec: CommandSpec, args: readonly string[]): CommandResult | null {
  try {
    const extra = unexpectedWords(spec, args);
    if (extra.length) {
      const usage = argTarget(spec, args)?.spec.usage ?? spec.usage;
      return fail(spec.name, 'usage', `${unexpectedWordsMessage(extra)} — usage: ${usage}`);
    }
  } catch (e) {
    if (e instanceof UsageError) return fail(spec.name, 'usage', `${e.message} — usage: ${spec.usage}`);
    throw e;
  }
  const stale = staleDollar(s, spec, args);
  return stale ? fail(spec.name, 'stale', stale) : null;
}

function* runSpec(
  s: Session,
  spec: CommandSpec,
  args: readonly string[],
): Generator<Progress, CommandResult, void> {
  try {
    if (spec.steps) return yield* spec.steps(s, args);
    return spec.run(s, args);
  } catch (e) {
    if (e instanceof UsageError) return fail(spec.name, 'usage', `${e.message} — usage: ${spec.usage}`);
    if (e instanceof SignalDelivered)
      return fail(spec.name, signalName(e.signo), `${e.message}; the process was killed`);
    if (e instanceof KernelBug) return kernelBugResult(s, spec.name, e);
    if (e instanceof ModelBug) return modelBugResult(s, spec.name, e);
    if (e instanceof Error)
      return fail(spec.name, 'internal', `${e.name}: ${e.message.split('\n').join(' | ')}`);
    throw e;
  }
}

const FOCUS_GROUPS: ReadonlySet<string> = new Set(['memory', 'data', 'device', 'gpu', 'inspect']);

/**
 * The address a command touched, for the live map: the address mmap / mremap returned, else the
 * first of its first two words that is a user address.
 */
function touchedAddress(
  s: Session,
  spec: CommandSpec,
  args: readonly string[],
  result: CommandResult,
): number | null {
  if (spec.name === 'mmap' || spec.name === 'mremap')
    return result.ok && result.value !== undefined ? result.value : null;
  if (!FOCUS_GROUPS.has(spec.group)) return null;
  for (const a of args.slice(0, 2)) {
    try {
      const v = parseAddr(a, s.lookup);
      if (v >= MMAP_MIN_ADDR) return v;
    } catch {
      // not an address
    }
  }
  return null;
}

/** Adds a command line to the session history and to the `record` file in progress. */
function recordLine(s: Session, spec: CommandSpec, line: string, result: CommandResult): CommandResult {
  if (NOT_RECORDED.has(spec.name) || result.error?.name === 'usage') return result;
  s.history.push(line.trim());
  const rec = s.recording;
  if (!rec) return result;
  try {
    s.files.append(rec.path, `${line.trim()}\n`);
    rec.lines++;
    return result;
  } catch (e) {
    s.recording = null;
    return {
      ...result,
      lines: [...result.lines, `record: stopped: cannot append to ${rec.path}: ${(e as Error).message}`],
    };
  }
}

/**
 * Runs one command line against the session: tokenise, `name = command` assignment, lookup,
 * run (errors become results), then record what the command changed in vmstat (without the
 * shell's own scaffolding) if it changed anything.
 */
export function execute(s: Session, line: string): Executed {
  const steps = executeSteps(s, line);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * {@link execute} as steps: a long command yields its progress between bounded steps, where
 * the interactive shell renders it and may deliver Ctrl-C ({@link Session.interrupt}).
 */
export function* executeSteps(s: Session, line: string): Generator<Progress, Executed, void> {
  const t0 = performance.now();
  s.interruptedPid = null;
  const pid = s.currentPid;
  const done = (command: string | null, result: CommandResult, delta: [string, number][] = []): Executed => ({
    line,
    command,
    pid,
    result,
    vmstatDelta: delta,
    ms: performance.now() - t0,
  });
  let words: string[];
  try {
    words = tokenize(line);
  } catch (e) {
    return done('', fail('hmm', 'usage', e instanceof Error ? e.message : String(e)));
  }
  if (words.length === 0) return done(null, { ok: true, lines: [] });
  let assign: string | undefined;
  if (words[1] === '=' || /^\w+=$/.test(words[0])) {
    assign = words[0].replace(/=$/, '').replace(/^\$/, '');
    words = words.slice(words[1] === '=' ? 2 : 1);
    if (!VAR_NAME.test(assign)) return done('', fail('hmm', 'usage', `bad variable name "${assign}"`));
    if (words.length === 0) return done('', fail('hmm', 'usage', `nothing to assign to $${assign}`));
    if (words.length === 1 && !findCommand(words[0])) words = ['set', assign, words[0]];
  }
  const [name, ...args] = words;
  const spec = findCommand(name);
  if (!spec) {
    const near = suggest(name);
    return done(
      name,
      fail(
        'hmm',
        'unknown-command',
        `"${name}" is not a command${near ? ` (did you mean \`${near}\`?)` : ''}; \`help\` lists them`,
      ),
    );
  }
  const refused = refuse(s, spec, args);
  if (refused) return done(spec.name, refused);
  const before = spec.mutates ? snapshotVmstat(s.kernel) : undefined;
  const entriesBefore = spec.mutates ? snapshotEntries(s.kernel) : undefined;
  s.overhead.clear();
  if (spec.mutates) s.startNotifierRecording();
  let result = yield* runSpec(s, spec, args);
  if (spec.mutates) s.stopNotifierRecording(line);
  s.reconcile();
  const touched = touchedAddress(s, spec, args, result);
  if (touched !== null) s.focus = touched;
  result = recordLine(s, spec, line, result);
  let delta: [string, number][] = [];
  if (before && entriesBefore) {
    const own = (d: [string, number][]) =>
      d.map(([k, n]): [string, number] => [k, n - (s.overhead.get(k) ?? 0)]).filter(([, n]) => n !== 0);
    delta = own(vmstatDelta(before, snapshotVmstat(s.kernel)));
    // The entry kinds written (model-only) join vmstat in what `vmstat` and `entries` show as
    // the last command's change; a command's result reports vmstat alone.
    const entries = own(entriesDelta(entriesBefore, snapshotEntries(s.kernel)));
    if (delta.length || entries.length) {
      s.lastDelta = new Map([...delta, ...entries]);
      s.lastMutation = line.trim();
    }
  }
  if (assign !== undefined && spec.name !== 'set' && result.ok) {
    if (result.value === undefined)
      result = fail(
        spec.name,
        'usage',
        `${spec.name} produces no value to assign to $${assign}`,
        undefined,
        result.lines,
      );
    else {
      s.vars.set(assign, result.value);
      result = { ...result, lines: [...result.lines, `$${assign} = 0x${result.value.toString(16)}`] };
    }
  }
  return done(spec.name, result, delta);
}
