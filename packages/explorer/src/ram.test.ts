import { describe, expect, it } from 'vitest';
import { shellScript } from './emit.js';
import { generateScenario } from './generate.js';
import { parseReproducer } from './reproducer.js';
import { runScenario } from './run.js';
import { parseRamMiB, RAM_DEFAULT_MIB } from './world.js';

describe('the machine size (pnpm fuzz --ram, explore machine ram=)', () => {
  it.each([
    ['16M', 16],
    ['32', 32],
    ['1G', 1024],
    ['4g', 4096],
  ])('%s is %i MiB', (text, mib) => {
    expect(parseRamMiB(text)).toBe(mib);
  });

  it.each(['8M', '15', '18M', '1.5G', '5G', '', 'lots', '32K', '-32M'])(
    "'%s' is a one-line error",
    (text) => {
      const r = parseRamMiB(text);
      expect(typeof r).toBe('string');
      expect(r).toMatch(/^RAM must be a multiple of 4 MiB from 16M to 4G \(e\.g\. 32M\), got '.*'$/);
    },
  );

  it('a scenario generated for a small machine runs on one, and a reproducer keeps the size', () => {
    const sc = generateScenario(11, { ops: 200, ramMiB: 24 });
    expect(sc.ramMiB).toBe(24);
    let pages = 0;
    const r = runScenario(sc, { schedule: 'coop', inspect: (w) => (pages = w.kernel.core.ramPages) });
    expect(pages * 4096).toBe(24 << 20);
    expect(r.opsDone).toBeGreaterThan(0);
    const text = shellScript({ scenario: sc, trace: r.trace, bugs: [], finding: { message: 'x' } }, 'ram');
    expect(text).toMatch(/^explore machine procs=\d threads=\d ram=24M$/m);
    expect(parseReproducer(text).scenario.ramMiB).toBe(24);
    // Without one the machine has the default size, and the script says nothing.
    const plain = generateScenario(11, { ops: 20 });
    runScenario(plain, { schedule: 'coop', inspect: (w) => (pages = w.kernel.core.ramPages) });
    expect(pages * 4096).toBe(RAM_DEFAULT_MIB << 20);
    expect(
      shellScript({ scenario: plain, trace: 'coop', bugs: [], finding: { message: 'x' } }, 'p'),
    ).not.toMatch(/ram=/);
  });

  it('a machine of 2 GiB or more gets all of it (the size in bytes does not fit 32 bits)', () => {
    let pages = 0;
    runScenario(
      { ...generateScenario(11, { ops: 20 }), ramMiB: 4096 },
      { schedule: 'coop', inspect: (w) => (pages = w.kernel.core.ramPages) },
    );
    expect(pages * 4096).toBe(4 * 2 ** 30);
  });

  it('a bad size in a reproducer is an OpSyntaxError naming it', () => {
    expect(() => parseReproducer('explore machine ram=2M\nexplore run\n')).toThrow(
      /^explore machine: RAM must be a multiple of 4 MiB from 16M to 4G \(e\.g\. 32M\), got '2M'$/,
    );
  });
});
