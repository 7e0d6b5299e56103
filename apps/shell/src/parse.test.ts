import { describe, expect, it } from 'vitest';
import { decodeSnapshotByte, snapshotRuns } from './dmirror-uapi.js';
import { fmtSize, hexdump } from './format.js';
import { parseExpr, parseNumber, takeDeviceOption, tokenize } from './parse.js';
import { compare, detectPattern, PatternDetector, parsePattern, patternBytes } from './patterns.js';

describe('tokenize', () => {
  it('splits words, groups quotes, drops comments', () => {
    expect(tokenize('  mmap 4M  rw # comment')).toEqual(['mmap', '4M', 'rw']);
    expect(tokenize('echo "a b" \'c d\' e#f')).toEqual(['echo', 'a b', 'c d', 'e#f']);
    expect(tokenize('# only')).toEqual([]);
    expect(() => tokenize('echo "x')).toThrow(/unterminated/);
  });
});

describe('numbers and expressions', () => {
  it('parses decimal, hex and size suffixes', () => {
    expect(parseNumber('4096')).toBe(4096);
    expect(parseNumber('0x1000')).toBe(4096);
    expect(parseNumber('4K')).toBe(4096);
    expect(parseNumber('4kib')).toBe(4096);
    expect(parseNumber('2M')).toBe(2 << 20);
    expect(parseNumber('1G')).toBe(2 ** 30);
    expect(parseNumber('0x10k')).toBe(16 * 1024);
    expect(parseNumber('1_000')).toBe(1000);
    expect(parseNumber('4Q')).toBeUndefined();
    expect(parseNumber('x')).toBeUndefined();
  });
  it('evaluates $ and $name with + and -', () => {
    const vars = new Map([
      ['', 0x7f0000000000],
      ['buf', 0x1000],
    ]);
    const look = (n: string) => vars.get(n);
    expect(parseExpr('$', look)).toBe(0x7f0000000000);
    expect(parseExpr('$+2M', look)).toBe(0x7f0000200000);
    expect(parseExpr('$buf-4K+1', look)).toBe(1);
    expect(parseExpr('2M-4K', look)).toBe(2 * 2 ** 20 - 4096);
    expect(() => parseExpr('$nope', look)).toThrow(/unknown variable \$nope/);
    expect(() => parseExpr('4Q', look)).toThrow(/bad value "4Q"/);
    expect(() => parseExpr('$', () => undefined)).toThrow(/no last mmap yet/);
  });
  it('takes the device option in its three spellings', () => {
    expect(takeDeviceOption(['$', '2M', '-d', '1'])).toEqual({ rest: ['$', '2M'], dev: 1 });
    expect(takeDeviceOption(['--dev', '2', 'x'])).toEqual({ rest: ['x'], dev: 2 });
    expect(takeDeviceOption(['dev=3'])).toEqual({ rest: [], dev: 3 });
    expect(takeDeviceOption(['a'])).toEqual({ rest: ['a'], dev: undefined });
  });
});

describe('patterns', () => {
  it('fill, index, bytes and random give the right bytes', () => {
    expect([...patternBytes(parsePattern(['fill', '0xab']), 3)]).toEqual([0xab, 0xab, 0xab]);
    const idx = patternBytes(parsePattern(['index']), 12);
    expect([...new Int32Array(idx.buffer)]).toEqual([0, 1, 2]);
    const neg = patternBytes(parsePattern(['index', '0', '-1']), 12);
    expect([...new Int32Array(neg.buffer)]).toEqual([0, -1, -2]);
    expect([...patternBytes(parsePattern(['bytes', 'de', 'adbe']), 5)]).toEqual([
      0xde, 0xad, 0xbe, 0xde, 0xad,
    ]);
    const r1 = patternBytes(parsePattern(['random', '5']), 64);
    expect(patternBytes(parsePattern(['random', '5']), 64)).toEqual(r1);
    expect(patternBytes(parsePattern(['random', '6']), 64)).not.toEqual(r1);
    expect(patternBytes(parsePattern(['index']), 6).length).toBe(6);
  });
  it('detects fills and int indexes; compares by unit', () => {
    expect(detectPattern(new Uint8Array(8).fill(7))).toBe('fill 0x7');
    expect(detectPattern(patternBytes({ kind: 'index', start: 5, step: 1 }, 64))).toBe('index 5');
    expect(detectPattern(patternBytes({ kind: 'index', start: 0, step: -1 }, 64))).toBe('index 0 -1');
    expect(detectPattern(new Uint8Array([1, 2, 3]))).toBeUndefined();
    const a = patternBytes({ kind: 'index', start: 0, step: 1 }, 16);
    const b = a.slice();
    b[9] = 0xff;
    expect(compare(b, a, 4)).toEqual({ mismatches: 1, first: 8 });
    expect(compare(b, a, 1)).toEqual({ mismatches: 1, first: 9 });
  });
  it('the piecewise detector says what detectPattern says of the whole range', () => {
    const pieces = (bytes: Uint8Array, cuts: number[]) => {
      const d = new PatternDetector();
      let at = 0;
      for (const c of [...cuts, bytes.length]) {
        d.add(bytes.subarray(at, c));
        at = c;
      }
      return d.result();
    };
    const idx = patternBytes({ kind: 'index', start: 5, step: 1 }, 4096);
    const wrap = patternBytes({ kind: 'index', start: 2 ** 31 - 3, step: 2 ** 30 }, 64);
    const fill = new Uint8Array(4099).fill(0xa5);
    const oddEnd = idx.slice();
    oddEnd[4095] ^= 1;
    const oddFill = fill.slice();
    oddFill[4098] = 0;
    for (const bytes of [idx, wrap, fill, oddEnd, oddFill, new Uint8Array(12)]) {
      const whole = detectPattern(bytes);
      expect(pieces(bytes, [])).toBe(whole);
      expect(pieces(bytes, [8, 1024])).toBe(whole);
    }
    expect(pieces(idx, [])).toBe('index 5');
    expect(pieces(wrap, [16])).toBe(`index ${2 ** 31 - 3} ${2 ** 30}`);
    expect(pieces(fill, [4, 4096])).toBe('fill 0xa5');
    expect(pieces(oddEnd, [4092])).toBeUndefined();
    expect(pieces(oddFill, [4096])).toBeUndefined();
    // A piece at an odd offset is still checked for a fill (an int index needs whole ints).
    expect(pieces(fill, [3])).toBe('fill 0xa5');
    expect(pieces(idx, [3])).toBeUndefined();
  });
  it('rejects bad patterns', () => {
    expect(() => parsePattern([])).toThrow(/missing pattern/);
    expect(() => parsePattern(['fill'])).toThrow(/one byte/);
    expect(() => parsePattern(['bytes', 'abc'])).toThrow(/hex bytes/);
    expect(() => parsePattern(['random'])).toThrow(/seed/);
    expect(() => parsePattern(['index', '1', '2', '3'])).toThrow(/start/);
  });
});

describe('dmirror uapi decoding', () => {
  it('decodes snapshot bytes into the header names', () => {
    expect(decodeSnapshotByte(0xff)).toEqual(['ERROR']);
    expect(decodeSnapshotByte(0)).toEqual(['NONE']);
    expect(decodeSnapshotByte(0x02)).toEqual(['WRITE']);
    expect(decodeSnapshotByte(0x11)).toEqual(['ZERO', 'READ']);
    expect(decodeSnapshotByte(0x26)).toEqual(['DEV_PRIVATE_LOCAL', 'WRITE', 'PMD']);
    expect(decodeSnapshotByte(0x32)).toEqual(['DEV_PRIVATE_REMOTE', 'WRITE']);
    expect(decodeSnapshotByte(0x41)).toEqual(['DEV_COHERENT_LOCAL', 'READ']);
    expect(decodeSnapshotByte(0x5a)).toEqual(['DEV_COHERENT_REMOTE', 'WRITE', 'PUD']);
  });
  it('groups runs', () => {
    const runs = snapshotRuns(new Uint8Array([2, 2, 0x26, 0x26, 0x26, 0]));
    expect(runs.map((r) => [r.first, r.count, r.byte])).toEqual([
      [0, 2, 2],
      [2, 3, 0x26],
      [5, 1, 0],
    ]);
  });
});

describe('formatting', () => {
  it('sizes and hexdumps', () => {
    expect(fmtSize(4096)).toBe('4 KiB');
    expect(fmtSize(2 ** 21)).toBe('2 MiB');
    expect(fmtSize(2 ** 21 - 4096)).toBe('2044 KiB');
    expect(fmtSize(2 ** 31 - 4096)).toBe('2.0 GiB');
    expect(fmtSize(12)).toBe('12 B');
    expect(hexdump(0x1000, new Uint8Array([0x41, 0x42, 0]))[0]).toMatch(/^0x1000 {2}41 42 00 +\|AB\.\|$/);
    expect(hexdump(0, new Uint8Array(32))).toHaveLength(2);
  });
});
