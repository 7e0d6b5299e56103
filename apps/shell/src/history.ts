import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Most history entries kept. */
export const HISTORY_MAX = 1000;

/** The history file: $HMM_SHELL_HISTORY, else ~/.hmm_history. */
export function historyPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.HMM_SHELL_HISTORY || join(homedir(), '.hmm_history');
}

/**
 * Command history kept across sessions in a file (like bash's HISTFILE): loaded at start,
 * appended as commands run, consecutive duplicates and blank lines skipped, trimmed to
 * {@link HISTORY_MAX} entries.
 */
export class History {
  readonly entries: string[] = [];
  constructor(readonly path: string | null) {
    if (!path || !existsSync(path)) return;
    try {
      const lines = readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l.trim());
      this.entries.push(...lines.slice(-HISTORY_MAX));
      if (lines.length > 2 * HISTORY_MAX) writeFileSync(path, `${this.entries.join('\n')}\n`);
    } catch {
      // An unreadable history file is not fatal: start empty.
    }
  }

  /** Records a line (in memory and in the file). */
  add(line: string): void {
    const l = line.trim();
    if (!l || this.entries[this.entries.length - 1] === l) return;
    this.entries.push(l);
    if (this.entries.length > HISTORY_MAX) this.entries.shift();
    if (!this.path) return;
    try {
      appendFileSync(this.path, `${l}\n`);
    } catch {
      // History is a comfort, not a requirement.
    }
  }
}
