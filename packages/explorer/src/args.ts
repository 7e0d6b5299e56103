/**
 * Command-line options of `pnpm fuzz` and `pnpm run bugs`: parsing with one-line errors (a bad option
 * never becomes a stack trace).
 */
import { checkBugIds, KERNEL_BUGS } from '@hmm-model/mm-core';

/** A bad command line: the message names what is wrong. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The spec of one option: name, whether it takes a value, how to parse it. */
export interface OptSpec {
  readonly name: string;
  readonly value: 'int' | 'string' | 'none' | 'duration';
  readonly repeat?: boolean;
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
}

/** Parsed options: numbers, strings, booleans, or string lists for repeated options. */
export type Parsed = Record<string, number | string | boolean | string[]>;

/** Parses a duration: 90, 90s, 2m, 1h, 500ms (to milliseconds). */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s);
  if (!m) throw new UsageError(`bad duration '${s}' (examples: 30s, 5m, 1h)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000);
}

/** Parses argv against the specs. */
export function parseArgs(argv: readonly string[], specs: readonly OptSpec[]): Parsed {
  const out: Parsed = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const spec = specs.find((s) => s.name === name);
    if (!spec)
      throw new UsageError(
        `unknown option '--${name}' (options: ${specs.map((s) => `--${s.name}`).join(' ')})`,
      );
    if (spec.value === 'none') {
      if (eq >= 0) throw new UsageError(`option '--${name}' takes no value`);
      out[name] = true;
      continue;
    }
    const raw = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (raw === undefined) throw new UsageError(`option '--${name}' needs a value`);
    let v: number | string;
    if (spec.value === 'int') {
      if (!/^\d+$/.test(raw))
        throw new UsageError(`option '--${name}' needs a non-negative integer, got '${raw}'`);
      v = Number(raw);
      if (spec.min !== undefined && v < spec.min)
        throw new UsageError(`option '--${name}' must be at least ${spec.min}`);
      if (spec.max !== undefined && v > spec.max)
        throw new UsageError(`option '--${name}' must be at most ${spec.max}`);
    } else if (spec.value === 'duration') v = parseDuration(raw);
    else {
      v = raw;
      if (spec.choices && !spec.choices.includes(raw))
        throw new UsageError(`option '--${name}' must be one of ${spec.choices.join(', ')}, got '${raw}'`);
    }
    if (spec.repeat) {
      const l = (out[name] as string[] | undefined) ?? [];
      l.push(String(v));
      out[name] = l;
    } else out[name] = v;
  }
  return out;
}

/** Validates bug ids (repeated --bug options, or comma lists). */
export function bugList(v: unknown): string[] {
  if (!Array.isArray(v)) return [];
  const ids = v.flatMap((x: string) => x.split(',')).filter(Boolean);
  try {
    checkBugIds(ids);
  } catch {
    const bad = ids.find((id) => !KERNEL_BUGS.some((b) => b.id === id));
    throw new UsageError(`unknown bug id '${bad}' (pnpm run bugs --list shows them)`);
  }
  return ids;
}
