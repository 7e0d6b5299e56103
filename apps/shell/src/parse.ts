import { UsageError } from './result.js';

/**
 * Splits a command line into words: whitespace separated, double or single quotes group, and
 * `#` at the start of a word begins a comment.
 */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = '';
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
      continue;
    }
    if (c === '#' && !inWord) break;
    if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    cur += c;
    inWord = true;
  }
  if (quote) throw new UsageError(`unterminated ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}

const SUFFIX: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kb: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mb: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gb: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tb: 2 ** 40,
  tib: 2 ** 40,
};

/** Parses one number: decimal or 0x hex, with an optional binary size suffix (4K, 2M, 1G, 0x10k). */
export function parseNumber(tok: string): number | undefined {
  const m = /^(0x[0-9a-f_]+|[0-9][0-9_]*)([a-z]*)$/i.exec(tok);
  if (!m) return undefined;
  const mult = SUFFIX[m[2].toLowerCase()];
  if (mult === undefined) return undefined;
  const digits = m[1].replace(/_/g, '');
  const base = digits.toLowerCase().startsWith('0x') ? Number.parseInt(digits.slice(2), 16) : Number(digits);
  const v = base * mult;
  return Number.isSafeInteger(v) ? v : undefined;
}

/** Variable lookup for expressions: `$` is the last mmap, `$name` a named variable. */
export type VarLookup = (name: string) => number | undefined;

/**
 * Parses an address/size expression: terms joined by + or - (no spaces), each a number with
 * optional suffix or a variable: `0x7f0000200000`, `$`, `$buf+2M`, `$-4K`, `2M-4K`.
 */
export function parseExpr(tok: string, vars: VarLookup, what = 'value'): number {
  if (tok.length === 0) throw new UsageError(`missing ${what}`);
  const parts = tok.match(/[+-]?[^+-]+/g);
  if (!parts || parts.join('') !== tok) throw new UsageError(`bad ${what} "${tok}"`);
  let total = 0;
  for (const p of parts) {
    const neg = p.startsWith('-');
    const body = p.replace(/^[+-]/, '');
    let v: number | undefined;
    if (body.startsWith('$')) {
      const name = body.slice(1);
      v = vars(name);
      if (v === undefined)
        throw new UsageError(
          name === '' ? 'no last mmap yet: `$` is set by mmap' : `unknown variable $${name} (see \`vars\`)`,
        );
    } else {
      v = parseNumber(body);
      if (v === undefined)
        throw new UsageError(
          `bad ${what} "${tok}": expected a number (4096, 0x1000, 4K, 2M, 1G) or $variable`,
        );
    }
    total += neg ? -v : v;
  }
  return total;
}

/** Parses a size: an expression that must be positive. */
export function parseSize(tok: string | undefined, vars: VarLookup, what = 'size'): number {
  if (tok === undefined) throw new UsageError(`missing ${what}`);
  const v = parseExpr(tok, vars, what);
  if (v <= 0) throw new UsageError(`bad ${what} "${tok}": must be positive`);
  return v;
}

/** Parses an address: an expression that must be non-negative. */
export function parseAddr(tok: string | undefined, vars: VarLookup, what = 'address'): number {
  if (tok === undefined) throw new UsageError(`missing ${what}`);
  const v = parseExpr(tok, vars, what);
  if (v < 0) throw new UsageError(`bad ${what} "${tok}": negative`);
  return v;
}

/** Parses a small non-negative integer (a pid, a device number, a count). */
export function parseInt10(tok: string | undefined, what: string): number {
  if (tok === undefined) throw new UsageError(`missing ${what}`);
  const v = parseNumber(tok);
  if (v === undefined || v < 0) throw new UsageError(`bad ${what} "${tok}"`);
  return v;
}

/**
 * Pulls `-d N` / `--dev N` / `dev=N` out of an argument list (the device option of the dmirror
 * commands). Returns the remaining words and the device number if given.
 */
export function takeDeviceOption(args: readonly string[]): { rest: string[]; dev: number | undefined } {
  const rest: string[] = [];
  let dev: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-d' || a === '--dev') {
      dev = parseInt10(args[++i], 'device number');
    } else if (/^dev=/.test(a)) {
      dev = parseInt10(a.slice(4), 'device number');
    } else rest.push(a);
  }
  return { rest, dev };
}
