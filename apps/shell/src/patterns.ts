import { Rng } from '@hmm-model/mm-core';
import { hex } from './format.js';
import { parseNumber } from './parse.js';
import { UsageError } from './result.js';

/**
 * A data pattern for write/check/dwrite: every byte the same, the int-index pattern the
 * hmm-tests use (`ptr[i] = start + i * step` over 32-bit ints), explicit bytes (repeated to the
 * length), or seeded pseudo-random bytes.
 */
export type Pattern =
  | { readonly kind: 'fill'; readonly byte: number }
  | { readonly kind: 'index'; readonly start: number; readonly step: number }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'random'; readonly seed: number };

/** The words that start a pattern (for parsing and completion). */
export const PATTERN_WORDS = ['fill', 'zero', 'index', 'bytes', 'random'] as const;

/** True when a word starts a pattern. */
export function isPatternWord(w: string | undefined): boolean {
  return w !== undefined && (PATTERN_WORDS as readonly string[]).includes(w);
}

/**
 * How many of `words` (a pattern, its kind word first) the pattern takes: `fill <byte>` 2,
 * `zero` 1, `index [start] [step]` up to 3, `random <seed>` 2, `bytes` its kind word and the hex
 * words after it. A pattern {@link parsePattern} will refuse anyway (an unknown kind, `bytes`
 * without a hex word) counts them all, so that its own message is the one shown.
 */
export function patternWordCount(words: readonly string[]): number {
  switch (words[0]) {
    case 'fill':
    case 'random':
      return 2;
    case 'zero':
      return 1;
    case 'index':
      return 3;
    case 'bytes': {
      const hexWords = words.slice(1).findIndex((w) => !/^(0x)?[0-9a-f]+$/i.test(w));
      const n = hexWords < 0 ? words.length - 1 : hexWords;
      return n === 0 ? Number.POSITIVE_INFINITY : 1 + n;
    }
    default:
      return Number.POSITIVE_INFINITY;
  }
}

function int(tok: string, what: string): number {
  const neg = tok.startsWith('-');
  const v = parseNumber(neg ? tok.slice(1) : tok);
  if (v === undefined) throw new UsageError(`bad ${what} "${tok}"`);
  return neg ? -v : v;
}

/** Parses a pattern from words: `fill 0xab`, `zero`, `index [start] [step]`, `bytes de ad be ef`, `random 7`. */
export function parsePattern(words: readonly string[]): Pattern {
  const [kind, ...rest] = words;
  switch (kind) {
    case 'fill': {
      if (rest.length !== 1) throw new UsageError('fill takes one byte value: fill 0xab');
      const b = int(rest[0], 'byte');
      if (b < 0 || b > 255) throw new UsageError(`fill byte ${rest[0]} is not in 0..255`);
      return { kind: 'fill', byte: b };
    }
    case 'zero':
      if (rest.length) throw new UsageError('zero takes no value');
      return { kind: 'fill', byte: 0 };
    case 'index': {
      if (rest.length > 2) throw new UsageError('index takes [start] [step]');
      return {
        kind: 'index',
        start: rest[0] === undefined ? 0 : int(rest[0], 'index start'),
        step: rest[1] === undefined ? 1 : int(rest[1], 'index step'),
      };
    }
    case 'bytes': {
      const hexText = rest.map((w) => w.replace(/^0x/i, '')).join('');
      if (!hexText.length || !/^[0-9a-f]+$/i.test(hexText) || hexText.length % 2)
        throw new UsageError('bytes takes hex bytes: bytes de ad be ef (or deadbeef)');
      const bytes = new Uint8Array(hexText.length / 2);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(hexText.slice(i * 2, i * 2 + 2), 16);
      return { kind: 'bytes', bytes };
    }
    case 'random': {
      if (rest.length !== 1) throw new UsageError('random takes a seed: random 42');
      return { kind: 'random', seed: int(rest[0], 'seed') };
    }
    default:
      throw new UsageError(
        kind === undefined
          ? 'missing pattern: fill <byte> | zero | index [start] [step] | bytes <hex..> | random <seed>'
          : `unknown pattern "${kind}": fill, zero, index, bytes, random`,
      );
  }
}

/** The bytes a pattern gives over `len` bytes (offsets relative to the start of the range). */
export function patternBytes(p: Pattern, len: number): Uint8Array {
  const out = new Uint8Array(len);
  switch (p.kind) {
    case 'fill':
      out.fill(p.byte);
      break;
    case 'index': {
      // Simulated memory is little-endian x86-64; so is every host Node runs on here.
      const ints = new Int32Array(out.buffer, 0, len >>> 2);
      for (let k = 0; k < ints.length; k++) ints[k] = (p.start + k * p.step) | 0;
      const i = ints.length * 4;
      if (i < len) {
        const tail = new DataView(new ArrayBuffer(4));
        tail.setInt32(0, (p.start + (i / 4) * p.step) | 0, true);
        for (let j = 0; i + j < len; j++) out[i + j] = tail.getUint8(j);
      }
      break;
    }
    case 'bytes':
      for (let i = 0; i < len; i++) out[i] = p.bytes[i % p.bytes.length];
      break;
    case 'random': {
      const rng = new Rng(p.seed);
      for (let i = 0; i < len; i += 4) {
        const v = rng.next();
        for (let j = 0; j < 4 && i + j < len; j++) out[i + j] = (v >>> (j * 8)) & 0xff;
      }
      break;
    }
  }
  return out;
}

/** Describes a pattern in words. */
export function describePattern(p: Pattern): string {
  switch (p.kind) {
    case 'fill':
      return `fill ${hex(p.byte)}`;
    case 'index':
      return p.step === 1
        ? p.start
          ? `int index from ${p.start}`
          : 'int index'
        : `int index ${p.start} step ${p.step}`;
    case 'bytes':
      return `bytes ${[...p.bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}${p.bytes.length > 8 ? ' ...' : ''}`;
    case 'random':
      return `random seed ${p.seed}`;
  }
}

/** Recognises a buffer as a simple pattern (a fill or an int index), for read summaries. */
export function detectPattern(bytes: Uint8Array): string | undefined {
  if (bytes.length === 0) return undefined;
  if (bytes.every((b) => b === bytes[0])) return `fill ${hex(bytes[0])}`;
  if (bytes.length >= 8 && bytes.length % 4 === 0) {
    const ints = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    const start = ints[0];
    // C int arithmetic: the step and each value wrap mod 2^32.
    const step = (ints[1] - ints[0]) | 0;
    if (step !== 0 && ints.every((v, i) => v === ((start + Math.imul(i, step)) | 0)))
      return step === 1 ? `index ${start}` : `index ${start} ${step}`;
  }
  return undefined;
}

/** The first difference between data and expected bytes, and how many 4-byte words (or bytes) differ. */
export function compare(
  got: Uint8Array,
  want: Uint8Array,
  unit: 1 | 4,
): { mismatches: number; first: number } {
  let mismatches = 0;
  let first = -1;
  for (let i = 0; i < got.length; i += unit) {
    let same = true;
    for (let j = 0; j < unit && i + j < got.length; j++) if (got[i + j] !== want[i + j]) same = false;
    if (!same) {
      mismatches++;
      if (first < 0) first = i;
    }
  }
  return { mismatches, first };
}

/**
 * A pattern's bytes produced piece by piece ({@link patternBytes} of the whole range, one piece
 * at a time), so a long `write` never holds the whole range in host memory. Pieces other than
 * the last must be a multiple of 4 bytes long.
 */
export class PatternStream {
  private offset = 0;
  private readonly rng: Rng | null;

  constructor(private readonly p: Pattern) {
    this.rng = p.kind === 'random' ? new Rng(p.seed) : null;
  }

  /** The next `len` bytes of the pattern. */
  next(len: number): Uint8Array {
    const p = this.p;
    const at = this.offset;
    this.offset += len;
    if (p.kind === 'index') {
      const first = at / 4;
      return patternBytes({ kind: 'index', start: (p.start + first * p.step) | 0, step: p.step }, len);
    }
    if (p.kind === 'bytes') {
      const out = new Uint8Array(len);
      for (let i = 0; i < len; i++) out[i] = p.bytes[(at + i) % p.bytes.length];
      return out;
    }
    if (p.kind === 'random') {
      const out = new Uint8Array(len);
      const rng = this.rng!;
      for (let i = 0; i < len; i += 4) {
        const v = rng.next();
        for (let j = 0; j < 4 && i + j < len; j++) out[i + j] = (v >>> (j * 8)) & 0xff;
      }
      return out;
    }
    return patternBytes(p, len);
  }
}

/** Whether every byte is `fill`. */
function sameFillBytes(bytes: Uint8Array, fill: number): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== fill) return false;
  return true;
}

/** {@link sameFillBytes} for a 4-byte aligned piece: the whole words, then the tail bytes. */
function sameFillWords(bytes: Uint8Array, fill: number): boolean {
  const n = bytes.length >>> 2;
  const words = new Int32Array(bytes.buffer, bytes.byteOffset, n);
  const w = (fill * 0x01010101) | 0;
  for (let i = 0; i < n; i++) if (words[i] !== w) return false;
  return sameFillBytes(bytes.subarray(n << 2), fill);
}

/** {@link detectPattern} over a range fed piece by piece (pieces but the last a multiple of 4 bytes). */
export class PatternDetector {
  private len = 0;
  private fill = -1;
  private fillOk = true;
  private start = 0;
  private step = 0;
  /** The int the index pattern expects next. */
  private next = 0;
  private indexOk = true;

  /** Feeds the next piece of the range: one pass over it, a word at a time where aligned. */
  add(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.len === 0) this.fill = bytes[0];
    const aligned = bytes.byteOffset % 4 === 0;
    if (this.fillOk)
      this.fillOk = aligned ? sameFillWords(bytes, this.fill) : sameFillBytes(bytes, this.fill);
    if (this.indexOk) {
      if (this.len % 4 !== 0 || !aligned) this.indexOk = false;
      else {
        const ints = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
        let i = 0;
        if (this.len === 0) {
          if (ints.length < 2) this.indexOk = false;
          else {
            this.start = ints[0];
            this.step = (ints[1] - ints[0]) | 0;
            this.next = this.start;
          }
        }
        // The int pattern wraps like C's int arithmetic: next = start + k * step (mod 2^32).
        let next = this.next;
        const step = this.step;
        const n = ints.length;
        for (; this.indexOk && i < n; i++) {
          if (ints[i] !== next) this.indexOk = false;
          next = (next + step) | 0;
        }
        this.next = next;
      }
    }
    this.len += bytes.length;
  }

  /** What {@link detectPattern} says of everything fed so far. */
  result(): string | undefined {
    if (this.len === 0) return undefined;
    if (this.fillOk) return `fill ${hex(this.fill)}`;
    if (this.indexOk && this.len >= 8 && this.len % 4 === 0 && this.step !== 0)
      return this.step === 1 ? `index ${this.start}` : `index ${this.start} ${this.step}`;
    return undefined;
  }
}

/** {@link compare} of a range fed piece by piece: mismatches, the first one and its bytes. */
export class CompareStream {
  mismatches = 0;
  /** Offset of the first mismatch, or -1. */
  first = -1;
  /** The unit's bytes at the first mismatch: what was read and what was expected. */
  firstGot = new Uint8Array(0);
  firstWant = new Uint8Array(0);
  private offset = 0;

  constructor(readonly unit: 1 | 4) {}

  /** Compares the next piece (its length a multiple of the unit, but for the last piece). */
  add(got: Uint8Array, want: Uint8Array): void {
    const { mismatches, first } = compare(got, want, this.unit);
    if (mismatches && this.first < 0) {
      this.first = this.offset + first;
      this.firstGot = got.slice(first, first + this.unit);
      this.firstWant = want.slice(first, first + this.unit);
    }
    this.mismatches += mismatches;
    this.offset += got.length;
  }
}
