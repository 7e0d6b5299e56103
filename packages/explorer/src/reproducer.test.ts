import { describe, expect, it } from 'vitest';
import { shellScript } from './emit.js';
import { generateScenario } from './generate.js';
import { describeOp, OpSyntaxError } from './op.js';
import { parseReproducer } from './reproducer.js';
import { ALL_FIXES } from './world.js';

describe('reproducer scripts', () => {
  it('a written script parses back to the same scenario, schedule and switches', () => {
    const sc = { ...generateScenario(7, { ops: 20 }), checkEvery: 50 };
    const text = shellScript(
      { scenario: sc, trace: 'trace:4x3.5', bugs: ['F5'], fixes: [], finding: { message: 'boom\nmore' } },
      'round trip',
    );
    const rep = parseReproducer(text);
    expect(rep.scenario.procs).toBe(sc.procs);
    expect(rep.scenario.threads).toBe(sc.threads);
    expect(rep.scenario.checkEvery).toBe(50);
    expect(rep.scenario.prelude.map(describeOp)).toEqual(sc.prelude.map(describeOp));
    expect(rep.scenario.ops.map(describeOp)).toEqual(sc.ops.map(describeOp));
    expect([rep.schedule, rep.bugs, rep.fixes, rep.finding]).toEqual(['trace:4x3.5', ['F5'], [], 'boom']);
  });

  it('defaults: every fix, no bugs, the cooperative schedule; a bad operation is an OpSyntaxError', () => {
    const rep = parseReproducer('explore machine procs=2 threads=1\nexplore op p0.t0 fork\nexplore run\n');
    expect([rep.fixes, rep.bugs, rep.schedule, rep.scenario.ops.length]).toEqual([ALL_FIXES, [], 'coop', 1]);
    expect(() => parseReproducer('explore machine\nexplore op p0.t0 frob\n')).toThrow(OpSyntaxError);
  });
});
