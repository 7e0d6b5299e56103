/**
 * Model-only: reading a reproducer back. The shell script `shellScript()` writes (the shell's
 * `explore` lines) is also the regression tests' data: the scenario, the pinned schedule and the
 * bug and fix switches of the run.
 */
import { OpSyntaxError, parseOp } from './op.js';
import type { Scenario } from './run.js';
import { ALL_FIXES, parseRamMiB } from './world.js';

/** Model-only: what a reproducer script holds. */
export interface ParsedReproducer {
  readonly scenario: Scenario;
  /** The `explore schedule` line (`coop` when there is none). */
  readonly schedule: string;
  readonly bugs: readonly string[];
  /** The `fixes=` of the machine line; the explorer's default (every fix) when absent. */
  readonly fixes: readonly string[];
  /** The `# finding:` comment, if any. */
  readonly finding: string | null;
}

/** Model-only: parses a reproducer script (throws OpSyntaxError on a malformed operation). */
export function parseReproducer(text: string): ParsedReproducer {
  const lines = text.split('\n');
  const rest = (p: string) => lines.filter((l) => l.startsWith(p)).map((l) => l.slice(p.length).trim());
  const machine = rest('explore machine ')[0] ?? '';
  const opt = (k: string) => new RegExp(`(?:^|\\s)${k}=(\\S*)`).exec(machine)?.[1];
  const list = (v: string | undefined) => (v && v !== 'none' ? v.split(',') : []);
  const fixes = opt('fixes');
  const checkEvery = opt('check-every');
  const ram = opt('ram');
  const ramMiB = ram === undefined ? undefined : parseRamMiB(ram);
  if (typeof ramMiB === 'string') throw new OpSyntaxError(`explore machine: ${ramMiB}`);
  const oomKat = opt('oom-kill-allocating-task');
  if (oomKat !== undefined && !/^[01]$/.test(oomKat))
    throw new OpSyntaxError(`explore machine: oom-kill-allocating-task must be 0 or 1, got '${oomKat}'`);
  return {
    scenario: {
      procs: Number(opt('procs') ?? 3),
      threads: Number(opt('threads') ?? 2),
      ...(checkEvery ? { checkEvery: Number(checkEvery) } : {}),
      ...(/(?:^|\s)mthp(?:\s|$)/.test(machine) ? { mthp: true } : {}),
      ...(ramMiB ? { ramMiB } : {}),
      ...(oomKat !== undefined ? { oomKillAllocatingTask: Number(oomKat) } : {}),
      prelude: rest('explore prelude ').map(parseOp),
      ops: rest('explore op ').map(parseOp),
    },
    schedule: rest('explore schedule ')[0] ?? 'coop',
    bugs: list(opt('bugs')),
    fixes: fixes === undefined ? ALL_FIXES : list(fixes),
    finding: rest('# finding: ')[0] ?? null,
  };
}
