/**
 * Schedules as data. A schedule string names a strategy and, optionally, the trace of choices
 * a run made (the task id chosen at each decision where more than one task could run):
 *
 *   coop                          the default cooperative policy
 *   random:seed=17,p=0.5          seeded random switching
 *   pct:seed=3,d=3,k=2000         PCT with depth d over k expected steps
 *   trace:2x5.3.2x12              replay: task 2 five times, task 3 once, task 2 twelve times
 *
 * A run's recorded trace is printed in the `trace:` form; replaying it reproduces the run.
 */
import {
  CooperativeStrategy,
  encodeTrace,
  PctStrategy,
  RandomStrategy,
  ReplayStrategy,
  type Strategy,
} from './strategy.js';

export { encodeTrace };

/** Model-only: a parse error of a schedule string; the one-line message names what is wrong. */
export class ScheduleSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScheduleSyntaxError';
  }
}

/** Model-only: decodes {@link encodeTrace}'s form; throws {@link ScheduleSyntaxError} naming the bad part. */
export function decodeTrace(s: string): number[] {
  if (s === '') return [];
  // Check every element and the total length before expanding anything.
  const runs: [number, number][] = [];
  let total = 0;
  for (const part of s.split('.')) {
    const m = /^(\d{1,6})(?:x(\d{1,7}))?$/.exec(part);
    if (!m) throw new ScheduleSyntaxError(`bad trace element '${part}' (expected ID or IDxCOUNT)`);
    const n = m[2] === undefined ? 1 : Number(m[2]);
    if (n < 1) throw new ScheduleSyntaxError(`bad repeat count in '${part}'`);
    total += n;
    if (total > 50_000_000) throw new ScheduleSyntaxError('trace too long');
    runs.push([Number(m[1]), n]);
  }
  const out = new Array<number>(total);
  let i = 0;
  for (const [id, n] of runs) out.fill(id, i, (i += n));
  return out;
}

function params(spec: string, allowed: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  if (spec === '') return out;
  for (const kv of spec.split(',')) {
    const m = /^([a-z]+)=(-?[0-9.]+(?:e[-+]?[0-9]+)?)$/.exec(kv);
    if (!m) throw new ScheduleSyntaxError(`bad parameter '${kv}' (expected name=number)`);
    if (!allowed.includes(m[1]))
      throw new ScheduleSyntaxError(`unknown parameter '${m[1]}' (allowed: ${allowed.join(', ')})`);
    const v = Number(m[2]);
    if (!Number.isFinite(v)) throw new ScheduleSyntaxError(`parameter '${m[1]}' is not a number`);
    out.set(m[1], v);
  }
  return out;
}

function intParam(p: Map<string, number>, name: string, dflt: number, min: number, max: number): number {
  const v = p.get(name) ?? dflt;
  if (!Number.isInteger(v) || v < min || v > max)
    throw new ScheduleSyntaxError(`parameter '${name}' must be an integer in [${min}, ${max}]`);
  return v;
}

/**
 * Model-only: parses a schedule string into a fresh strategy (strategies hold state: parse once per run).
 * Throws {@link ScheduleSyntaxError} with a one-line reason on malformed input.
 */
export function parseSchedule(s: string): Strategy {
  if (typeof s !== 'string') throw new ScheduleSyntaxError('schedule must be a string');
  const t = s.trim();
  const colon = t.indexOf(':');
  const name = colon < 0 ? t : t.slice(0, colon);
  const rest = colon < 0 ? '' : t.slice(colon + 1);
  switch (name) {
    case 'coop':
      if (rest) throw new ScheduleSyntaxError("'coop' takes no parameters");
      return new CooperativeStrategy();
    case 'random': {
      const p = params(rest, ['seed', 'p']);
      const prob = p.get('p') ?? 0.5;
      if (!(prob >= 0 && prob <= 1)) throw new ScheduleSyntaxError("parameter 'p' must be in [0, 1]");
      return new RandomStrategy(intParam(p, 'seed', 1, 0, 2 ** 32 - 1), prob);
    }
    case 'pct': {
      const p = params(rest, ['seed', 'd', 'k']);
      return new PctStrategy(
        intParam(p, 'seed', 1, 0, 2 ** 32 - 1),
        intParam(p, 'd', 3, 1, 64),
        intParam(p, 'k', 2000, 1, 1e9),
      );
    }
    case 'trace':
      return new ReplayStrategy(decodeTrace(rest));
    default:
      throw new ScheduleSyntaxError(
        `unknown schedule '${name}' (expected coop, random:seed=N,p=X, pct:seed=N,d=N,k=N or trace:...)`,
      );
  }
}
