/**
 * A reader of the KTAP a kselftest.h program prints (Documentation/dev-tools/ktap.rst): the
 * version line, the plan, the result lines with their directive, the `# ` diagnostics and the
 * Totals line. Continuation lines of a multi-line description (`\tmremap time: ...`) are kept
 * with their result. Used by the tests and by anyone post-processing `vmtest` output.
 */

/** One `ok N ...` / `not ok N ...` line. */
export interface KtapResult {
  readonly ok: boolean;
  readonly number: number;
  /** `SKIP`, `XFAIL`, `XPASS`, `error` (from `not ok N # error`), or null. */
  readonly directive: string | null;
  /** The description: for a directive line, the text after the directive word. */
  readonly description: string;
  /** Lines after the result line up to the next result or diagnostic (e.g. `\tmremap time: ...`). */
  readonly continuation: string[];
}

/** A parsed KTAP stream. */
export interface Ktap {
  readonly version: string | null;
  readonly plan: number | null;
  readonly results: KtapResult[];
  /** `# ...` lines (without `# `). */
  readonly diagnostics: string[];
  /** The `Bail out! ...` text, if any. */
  readonly bailOut: string | null;
  /** The Totals counters, if printed. */
  readonly totals: Readonly<Record<'pass' | 'fail' | 'xfail' | 'xpass' | 'skip' | 'error', number>> | null;
}

const RESULT = /^(not ok|ok) (\d+) ?(.*)$/;
const DIRECTIVE = /^# (SKIP|XFAIL|XPASS|error) ?(.*)$/;
const TOTALS = /^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) error:(\d+)$/;

/** Parses the stdout of a kselftest.h program. */
export function parseKtap(text: string): Ktap {
  let version: string | null = null;
  let plan: number | null = null;
  let bailOut: string | null = null;
  let totals: Ktap['totals'] = null;
  const results: KtapResult[] = [];
  const diagnostics: string[] = [];
  let last: KtapResult | null = null;
  for (const line of text.split('\n')) {
    if (/^(TAP|KTAP) version /.test(line)) {
      version = line;
      last = null;
      continue;
    }
    const p = /^1\.\.(\d+)/.exec(line);
    if (p) {
      plan = Number(p[1]);
      last = null;
      continue;
    }
    const r = RESULT.exec(line);
    if (r) {
      const rest = r[3];
      const d = DIRECTIVE.exec(rest);
      last = {
        ok: r[1] === 'ok',
        number: Number(r[2]),
        directive: d ? d[1] : null,
        description: d ? d[2] : rest,
        continuation: [],
      };
      results.push(last);
      continue;
    }
    const t = TOTALS.exec(line);
    if (t) {
      const [pass, fail, xfail, xpass, skip, error] = t.slice(1).map(Number);
      totals = { pass, fail, xfail, xpass, skip, error };
    }
    if (line.startsWith('Bail out! ')) {
      bailOut = line.slice('Bail out! '.length);
      last = null;
      continue;
    }
    if (line.startsWith('# ')) {
      diagnostics.push(line.slice(2));
      last = null;
      continue;
    }
    if (last && line.length) last.continuation.push(line);
  }
  return { version, plan, results, diagnostics, bailOut, totals };
}
