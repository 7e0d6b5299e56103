import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { shellScript } from './emit.js';
import type { Op } from './op.js';
import { parseReproducer } from './reproducer.js';
import { runScenario, type Scenario } from './run.js';
import { shrink } from './shrink.js';

/** Bug F10's three-operation reproducer with `extra` harmless reads of another thread added. */
function padded(extra: number): { sc: Scenario; schedule: string; bugs: readonly string[] } {
  const rep = parseReproducer(readFileSync(new URL('./regressions/F10.hmm', import.meta.url), 'utf8'));
  const reads: Op[] = Array.from({ length: extra }, (_, i) => ({
    k: 'read',
    p: 0,
    t: 1,
    r: 0,
    off: 600 + i,
    n: 1,
  }));
  return { sc: { ...rep.scenario, ops: [...reads, ...rep.scenario.ops] }, schedule: 'coop', bugs: rep.bugs };
}

describe('shrink()', () => {
  const { sc, schedule, bugs } = padded(12);
  const first = runScenario(sc, { schedule, bugs });
  const size = (s: Scenario) => s.prelude.length + s.ops.length;

  it('the padded scenario fails as F10 does', () => {
    expect(first.finding?.message).toMatch(/remove_migration_pmd/);
    expect(size(sc)).toBe(15);
  });

  it('with room to finish, drops the padding and says nothing about stopping', () => {
    const rep = shrink(sc, schedule, first, { bugs, tries: 1 });
    expect(size(rep.scenario)).toBeLessThanOrEqual(3);
    expect(rep.stopped).toBeUndefined();
    expect(rep.finding.message).toBe(first.finding?.message);
  });

  it('stops at its time limit with the failing scenario it has, and says so', () => {
    const rep = shrink(sc, schedule, first, { bugs, timeMs: 0 });
    expect(rep.stopped).toBe('time');
    expect(rep.runs).toBe(0);
    expect(size(rep.scenario)).toBe(15);
    expect(rep.finding.message).toBe(first.finding?.message);
    // The shell script says so in a comment, and still replays the whole scenario.
    const text = shellScript(rep, 'unfinished');
    expect(text).toContain('# not minimal: the shrink stopped at its time limit');
    expect(size(parseReproducer(text).scenario)).toBe(15);
  });

  it('stops at its run budget, and says so', () => {
    const none = shrink(sc, schedule, first, { bugs, budget: 0 });
    expect(none.stopped).toBe('runs');
    expect(none.runs).toBe(0);
    expect(size(none.scenario)).toBe(15);
    // One run is enough to drop the padding thread, not to finish.
    const one = shrink(sc, schedule, first, { bugs, tries: 1, budget: 1 });
    expect(one.stopped).toBe('runs');
    expect(one.runs).toBe(1);
    expect(one.finding.message).toBe(first.finding?.message);
  });
});
