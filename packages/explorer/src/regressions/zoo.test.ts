/**
 * The bug zoo's regressions: for every switch of the zoo, its minimal reproducer (`<ID>.hmm`,
 * written by `pnpm run bugs --write`; `pnpm shell --script` replays it) must report the bug with the
 * switch on (the zoo's own matcher), and the fixed model must be clean on the same scenario under
 * its trace and three other schedules.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseReproducer } from '../reproducer.js';
import { runScenario } from '../run.js';
import { ZOO } from '../zoo.js';

const OTHER = ['coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400'];

describe('bug zoo regressions', () => {
  for (const z of ZOO) {
    const file = new URL(`./${z.id}.hmm`, import.meta.url);
    it(`${z.id}: the reproducer finds the bug with the switch on; the fixed model is clean`, () => {
      expect(existsSync(file), `${z.id}.hmm missing: pnpm run bugs --bug ${z.id} --write writes it`).toBe(
        true,
      );
      const rep = parseReproducer(readFileSync(file, 'utf8'));
      expect(rep.bugs).toEqual([z.id]);
      const r = runScenario(rep.scenario, { schedule: rep.schedule, bugs: rep.bugs, fixes: rep.fixes });
      expect(r.finding, 'the switched-on bug was not found').not.toBeNull();
      if (r.finding) expect(z.matches(r.finding), r.finding.message).toBe(true);
      for (const s of [rep.schedule, ...OTHER]) {
        const clean = runScenario(rep.scenario, { schedule: s, bugs: [], fixes: rep.fixes });
        expect(clean.finding?.message ?? null).toBeNull();
      }
    });
  }
});
