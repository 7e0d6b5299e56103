import { commandNames, findCommand } from './commands/index.js';
import type { Session } from './session.js';

/** The outcome of completing a line: the new line and cursor, and the candidates if ambiguous. */
export interface Completion {
  readonly line: string;
  readonly cursor: number;
  /** All candidates for the word (shown when more than one). */
  readonly candidates: readonly string[];
}

function commonPrefix(words: readonly string[]): string {
  if (!words.length) return '';
  let p = words[0];
  for (const w of words) while (!w.startsWith(p)) p = p.slice(0, -1);
  return p;
}

/**
 * Tab completion (models a readline completer): completes the word before the cursor as a
 * command name, a variable (`$...`) or the command's argument words (prot, advice, patterns,
 * directions, pids...). A unique match gets a trailing space; several extend to their common
 * prefix and are returned as candidates.
 */
export function complete(s: Session, line: string, cursor: number): Completion {
  const before = line.slice(0, cursor);
  const after = line.slice(cursor);
  const m = /(\S*)$/.exec(before);
  const word = m ? m[1] : '';
  const start = cursor - word.length;
  let words = before.slice(0, start).trim().split(/\s+/).filter(Boolean);
  if (words[1] === '=') words = words.slice(2);
  else if (/^\w+=$/.test(words[0] ?? '')) words = words.slice(1);
  let pool: readonly string[];
  if (word.startsWith('$')) {
    pool = [...s.vars.keys()].map((k) => `$${k}`);
  } else if (words.length === 0) {
    pool = commandNames();
  } else {
    const spec = findCommand(words[0]);
    pool = spec?.words?.(words.length - 1, words.slice(1), s) ?? [];
  }
  const candidates = [...new Set(pool.filter((w) => w.startsWith(word)))].sort();
  if (candidates.length === 0) return { line, cursor, candidates: [] };
  const fill = candidates.length === 1 ? `${candidates[0]} ` : commonPrefix(candidates);
  const newBefore = before.slice(0, start) + fill;
  return {
    line: newBefore + (candidates.length === 1 ? after.replace(/^ /, '') : after),
    cursor: newBefore.length,
    candidates: candidates.length > 1 ? candidates : [],
  };
}
