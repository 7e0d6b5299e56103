import { describe, expect, it } from 'vitest';
import { generateScenario } from './generate.js';
import { describeOp, OpSyntaxError, parseOp } from './op.js';

describe('operation text form', () => {
  it('parseOp(describeOp(op)) gives the op back for every generated kind', () => {
    const kinds = new Set<string>();
    const advices = new Set<string>();
    for (let seed = 1; seed <= 30; seed++) {
      const sc = generateScenario(seed, { ops: 60 });
      for (const op of [...sc.prelude, ...sc.ops]) {
        const text = describeOp(op);
        const back = parseOp(text);
        expect(describeOp(back)).toBe(text);
        kinds.add(op.k);
        if (op.k === 'madvise') advices.add(text.split(' ').at(-1) ?? '');
      }
    }
    // Every advice the model accepts is generated (and named).
    expect(advices.size).toBe(21);
    expect([...kinds].sort()).toEqual(
      [
        'dm',
        'dmclose',
        'exit',
        'fork',
        'gpu',
        'khugepaged',
        'kill',
        'madvise',
        'mmap',
        'mprotect',
        'mremap',
        'munmap',
        'oom',
        'pagemap',
        'pin',
        'read',
        'split',
        'swap',
        'write',
      ].sort(),
    );
  });

  it.each([
    ['', /expected pP\.tT first/],
    ['p0 write r0 0+1', /expected pP\.tT first/],
    ['p0.t0 frobnicate', /unknown operation 'frobnicate'/],
    ['p0.t0 write rx 0+1 seed 1', /expected a region rN, got 'rx'/],
    ['p0.t0 write r0 0-1 seed 1', /expected a page range OFF\+N, got '0-1'/],
    ['p0.t0 mremap r0 0+1 r1 0', /expected 'to' in mremap/],
    ['p0.t0 pin r0 0+1 frob', /expected 'write' or nothing after a pin range, got 'frob'/],
  ])('rejects %j with a one-line message', (text, re) => {
    let err: unknown;
    try {
      parseOp(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OpSyntaxError);
    expect((err as Error).message).toMatch(re);
    expect((err as Error).message).not.toContain('\n');
  });
});
