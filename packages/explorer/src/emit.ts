/**
 * Writing a reproducer out: as a shell script that `pnpm shell --script` replays (the shell's
 * `explore` commands) and as a vitest regression file that asserts the finding with the bug
 * switched on and a clean run on the fixed model.
 */
import { describeOp } from './op.js';
import type { Scenario } from './run.js';

/** Model-only: what a written reproducer needs (a {@link Reproducer} is one). */
export interface ReproducerText {
  readonly scenario: Scenario;
  /** The trace that replays the failing interleaving. */
  readonly trace: string;
  readonly bugs: readonly string[];
  /** Fix switches of the run (undefined: the explorer's default, every one). */
  readonly fixes?: readonly string[];
  readonly finding: { readonly message: string };
  /** Why the shrink stopped early, if it did (see Reproducer.stopped). */
  readonly stopped?: 'runs' | 'time';
}

/** The shell script form of a reproducer. */
export function shellScript(rep: ReproducerText, title: string): string {
  const sc = rep.scenario;
  const lines = [
    `# hmm-model explorer reproducer: ${title}`,
    `# finding: ${rep.finding.message.split('\n')[0]}`,
    `# replay: pnpm shell --script <this file>`,
    ...(rep.stopped
      ? [`# not minimal: the shrink stopped at its ${rep.stopped === 'time' ? 'time limit' : 'run budget'}`]
      : []),
    `explore machine procs=${sc.procs} threads=${sc.threads}${sc.checkEvery ? ` check-every=${sc.checkEvery}` : ''}${rep.bugs.length ? ` bugs=${rep.bugs.join(',')}` : ''}${rep.fixes ? ` fixes=${rep.fixes.join(',') || 'none'}` : ''}${sc.mthp ? ' mthp' : ''}${sc.ramMiB ? ` ram=${sc.ramMiB}M` : ''}${sc.oomKillAllocatingTask !== undefined ? ` oom-kill-allocating-task=${sc.oomKillAllocatingTask}` : ''}`,
    ...sc.prelude.map((op) => `explore prelude ${describeOp(op)}`),
    ...sc.ops.map((op) => `explore op ${describeOp(op)}`),
    `explore schedule ${rep.trace}`,
    'explore run',
    '',
  ];
  return lines.join('\n');
}

function scenarioLiteral(sc: Scenario): string {
  // An empty list is `[]` (a lone comma would make a sparse array).
  const ops = (l: Scenario['ops']) =>
    l.length ? `[\n    ${l.map((op) => `'${describeOp(op)}'`).join(',\n    ')},\n  ]` : '[]';
  return `{\n  procs: ${sc.procs},\n  threads: ${sc.threads},\n  checkEvery: ${sc.checkEvery ?? 64},\n${sc.mthp ? '  mthp: true,\n' : ''}${sc.ramMiB ? `  ramMiB: ${sc.ramMiB},\n` : ''}${sc.oomKillAllocatingTask !== undefined ? `  oomKillAllocatingTask: ${sc.oomKillAllocatingTask},\n` : ''}  prelude: ${ops(sc.prelude)} as string[],\n  ops: ${ops(sc.ops)} as string[],\n}`;
}

/** A regular expression that matches the finding's first line (escaped, addresses generalised). */
export function findingPattern(message: string): string {
  const first = message.split('\n')[0];
  return first
    .replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
    .replace(/0x[0-9a-f]+/g, '0x[0-9a-f]+')
    .replace(/\b\d+\b/g, '\\d+');
}

/** The vitest regression file of a reproducer (bug switched on: found; fixed model: clean). */
export function regressionTest(rep: ReproducerText, id: string, title: string): string {
  const bugs = JSON.stringify(rep.bugs);
  const fixes = rep.fixes ? `, fixes: ${JSON.stringify(rep.fixes)}` : '';
  return `/**
 * Bug zoo regression ${id}: ${title}
 * Written by \`pnpm run bugs --write\` from the explorer's minimal reproducer.
 */
import { describe, expect, it } from 'vitest';
import { parseOp } from '../op.js';
import { runScenario, type Scenario } from '../run.js';

const text = ${scenarioLiteral(rep.scenario)};
const scenario: Scenario = {
  procs: text.procs,
  threads: text.threads,
  checkEvery: text.checkEvery,${rep.scenario.mthp ? '\n  mthp: true,' : ''}${rep.scenario.ramMiB ? `\n  ramMiB: ${rep.scenario.ramMiB},` : ''}${rep.scenario.oomKillAllocatingTask !== undefined ? `\n  oomKillAllocatingTask: ${rep.scenario.oomKillAllocatingTask},` : ''}
  prelude: text.prelude.map(parseOp),
  ops: text.ops.map(parseOp),
};
const schedule = '${rep.trace}';

describe('bug zoo: ${id}', () => {
  it('the reproducer reports the finding (with the bug and fix switches of the run)', () => {
    const r = runScenario(scenario, { schedule, bugs: ${bugs}${fixes} });
    expect(r.finding?.message).toMatch(/${findingPattern(rep.finding.message)}/);
  });

  it('the fixed model is clean on the same scenario, under this and other schedules', () => {
    for (const s of [schedule, 'coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400']) {
      const r = runScenario(scenario, { schedule: s, bugs: [] });
      expect(r.finding?.message ?? null).toBeNull();
    }
  });
});
`;
}
