import { describe, expect, it } from 'vitest';
import { matchesRunName, testEnabled } from './filter.js';
import { getopt } from './getopt.js';

const OPTS = 'dhlF:f:V:v:t:T:r:';

describe('getopt', () => {
  it('parses clusters, attached and separate arguments, and permutes non-options', () => {
    expect(getopt(['p', 'x', '-dtfoo', 'y', '-v', 'bar', '-r', '-T'], OPTS)).toEqual([
      { kind: 'opt', opt: 'd' },
      { kind: 'opt', opt: 't', arg: 'foo' },
      { kind: 'opt', opt: 'v', arg: 'bar' },
      { kind: 'opt', opt: 'r', arg: '-T' },
    ]);
  });

  it('reports glibc errors and treats - and -- like glibc', () => {
    expect(getopt(['prog', '-', '-q'], OPTS)).toEqual([
      { kind: 'error', message: "prog: invalid option -- 'q'" },
    ]);
    expect(getopt(['prog', '-:'], OPTS)).toEqual([{ kind: 'error', message: "prog: invalid option -- ':'" }]);
    expect(getopt(['prog', '-lf'], OPTS)).toEqual([
      { kind: 'opt', opt: 'l' },
      { kind: 'error', message: "prog: option requires an argument -- 'f'" },
    ]);
    expect(getopt(['prog', '--', '-h'], OPTS)).toEqual([]);
    expect(getopt(['prog', 'a', '-h'], OPTS, true)).toEqual([]);
  });

  it('recognises the --seed and --json extensions only', () => {
    const events = getopt(['p', '--seed', '5', '--json=x.json', '--jsonx'], OPTS);
    expect(events.slice(0, 4)).toEqual([
      { kind: 'long', name: 'seed', arg: '5' },
      { kind: 'long', name: 'json', arg: 'x.json' },
      { kind: 'error', message: "p: invalid option -- '-'" },
      { kind: 'error', message: "p: invalid option -- 'j'" },
    ]);
    expect(getopt(['p', '--json'], OPTS)).toEqual([
      { kind: 'error', message: "p: option '--json' requires an argument" },
    ]);
  });
});

describe('test_enabled', () => {
  it('lets the first matching filter decide', () => {
    const f = [
      { opt: 'T', name: 'foo' },
      { opt: 'v', name: 'bla' },
    ] as const;
    expect(testEnabled(f, 'fx', 'bla', 'foo')).toBe(false);
    expect(testEnabled(f, 'fx', 'bla', 'bar')).toBe(true);
    expect(testEnabled(f, 'fx', 'other', 'bar')).toBe(false);
    expect(testEnabled([], 'fx', '', 'x')).toBe(true);
    expect(testEnabled([{ opt: 'F', name: 'zz' }], 'fx', '', 'x')).toBe(true);
  });

  it('matches -r by byte length and offsets', () => {
    expect(
      matchesRunName('hmm.hmm_device_private.open_close', 'hmm', 'hmm_device_private', 'open_close'),
    ).toBe(true);
    expect(
      matchesRunName('hmm-hmm_device_private-open_close', 'hmm', 'hmm_device_private', 'open_close'),
    ).toBe(true);
    expect(matchesRunName('hmm.open_close', 'hmm', '', 'open_close')).toBe(true);
    expect(matchesRunName('hmm..open_close', 'hmm', '', 'open_close')).toBe(false);
    expect(matchesRunName('hmm.open_closf', 'hmm', '', 'open_close')).toBe(false);
    expect(matchesRunName('é.t', 'é', '', 't')).toBe(true);
    expect(matchesRunName('e.tt', 'é', '', 't')).toBe(false);
  });
});
