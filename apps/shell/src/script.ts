import { type Executed, execute } from './commands/index.js';
import type { Json } from './result.js';
import type { Session } from './session.js';

/** Options for script mode. */
export interface ScriptOptions {
  /** Print one JSON object per command instead of text. */
  readonly json?: boolean;
  /** Stop at the first failing command with exit status 1. */
  readonly strict?: boolean;
}

/** The prompt the shell shows (and echoes in script transcripts): `hmm:<pid>> `. */
export function promptText(s: Session): string {
  return `hmm:${s.currentPid ?? '-'}> `;
}

/** The JSON object `--json` prints for one command. */
export function executedJson(e: Executed): { [k: string]: Json } {
  const r = e.result;
  return {
    line: e.line,
    command: e.command,
    pid: e.pid,
    ok: r.ok,
    output: [...r.lines],
    data: r.data ?? null,
    error: r.error ? { errno: r.error.errno ?? null, name: r.error.name, why: r.error.why } : null,
    vmstatDelta: Object.fromEntries(e.vmstatDelta),
    ms: Math.round(e.ms * 1000) / 1000,
  };
}

/**
 * Script mode: runs command lines one by one and writes plain text (the prompt and command,
 * then its output; comments and blank lines are echoed) or JSON lines. Returns the exit status:
 * 1 if `strict` and a command failed (processing stops there), else 0.
 */
export async function runScript(
  s: Session,
  lines: AsyncIterable<string> | Iterable<string>,
  write: (text: string) => void,
  opts: ScriptOptions = {},
): Promise<number> {
  let n = 0;
  for await (const raw of lines) {
    n++;
    const line = raw.replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) {
      if (!opts.json) write(`${line}\n`);
      continue;
    }
    const prompt = promptText(s);
    const e = execute(s, line);
    if (opts.json) write(`${JSON.stringify(executedJson(e))}\n`);
    else {
      write(`${prompt}${trimmed}\n`);
      for (const l of e.result.lines) write(`${l}\n`);
    }
    if (!e.result.ok && opts.strict) {
      if (!opts.json) write(`(stopped at line ${n}: --strict)\n`);
      return 1;
    }
    if (e.result.quit) break;
  }
  return 0;
}
