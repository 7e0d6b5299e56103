/** A key event as the line editor understands it (decoded from Ink's input callback). */
export type KeyEvent =
  | { readonly type: 'text'; readonly text: string }
  | {
      readonly type:
        | 'enter'
        | 'backspace'
        | 'delete'
        | 'left'
        | 'right'
        | 'home'
        | 'end'
        | 'up'
        | 'down'
        | 'tab'
        | 'ctrl-c'
        | 'ctrl-d'
        | 'kill-line'
        | 'kill-word'
        | 'clear-screen';
    };

/** The subset of Ink's Key object the decoder reads. */
export interface InkKey {
  readonly upArrow: boolean;
  readonly downArrow: boolean;
  readonly leftArrow: boolean;
  readonly rightArrow: boolean;
  readonly home: boolean;
  readonly end: boolean;
  readonly return: boolean;
  readonly ctrl: boolean;
  readonly tab: boolean;
  readonly backspace: boolean;
  readonly delete: boolean;
}

const CONTROL: Readonly<Record<string, KeyEvent>> = {
  '\r': { type: 'enter' },
  '\n': { type: 'enter' },
  '\t': { type: 'tab' },
  '\x7f': { type: 'backspace' },
  '\b': { type: 'backspace' },
  '\x03': { type: 'ctrl-c' },
  '\x04': { type: 'ctrl-d' },
  '\x15': { type: 'kill-line' },
  '\x17': { type: 'kill-word' },
  '\x01': { type: 'home' },
  '\x05': { type: 'end' },
  '\x0c': { type: 'clear-screen' },
};

/** Splits a pasted chunk (text with embedded Enter, Tab, Backspace, Ctrl keys) into key events. */
export function decodeChunk(chunk: string): KeyEvent[] {
  const out: KeyEvent[] = [];
  let text = '';
  for (const ch of chunk) {
    const c = CONTROL[ch];
    if (c || ch < ' ') {
      if (text) out.push({ type: 'text', text });
      text = '';
      if (c) out.push(c);
      continue;
    }
    text += ch;
  }
  if (text) out.push({ type: 'text', text });
  return out;
}

/**
 * Decodes Ink's useInput callback arguments into key events. Terminals deliver pastes and
 * fast typing (tmux send-keys) as one chunk, so text may carry Enter and control characters.
 */
export function decodeInk(input: string, key: InkKey): KeyEvent[] {
  if (key.ctrl) {
    const map: Readonly<Record<string, KeyEvent>> = {
      c: { type: 'ctrl-c' },
      d: { type: 'ctrl-d' },
      u: { type: 'kill-line' },
      w: { type: 'kill-word' },
      a: { type: 'home' },
      e: { type: 'end' },
      l: { type: 'clear-screen' },
    };
    const ev = map[input];
    if (ev) return [ev];
  }
  if (key.return) return [{ type: 'enter' }];
  if (key.tab) return [{ type: 'tab' }];
  if (key.backspace) return [{ type: 'backspace' }];
  if (key.delete) return [{ type: 'backspace' }];
  if (key.upArrow) return [{ type: 'up' }];
  if (key.downArrow) return [{ type: 'down' }];
  if (key.leftArrow) return [{ type: 'left' }];
  if (key.rightArrow) return [{ type: 'right' }];
  if (key.home) return [{ type: 'home' }];
  if (key.end) return [{ type: 'end' }];
  return decodeChunk(input);
}

/**
 * The prompt's line editor (models a small readline): text and cursor, history navigation with
 * the unsent line kept as a draft, and the two-step Ctrl-C (first cancels, second quits).
 */
export class LineEditor {
  line = '';
  cursor = 0;
  /** Position in history while browsing (history.length = the draft). */
  private histPos = -1;
  private draft = '';
  /** A Ctrl-C on an empty line arms quitting; any other key disarms. */
  armedQuit = false;

  constructor(private readonly history: () => readonly string[]) {}

  /** Replaces the line (e.g. after completion). */
  set(line: string, cursor = line.length): void {
    this.line = line;
    this.cursor = Math.max(0, Math.min(cursor, line.length));
  }

  /** Inserts text at the cursor. */
  insert(text: string): void {
    this.line = this.line.slice(0, this.cursor) + text + this.line.slice(this.cursor);
    this.cursor += text.length;
  }

  /** Deletes the character before the cursor. */
  backspace(): void {
    if (this.cursor === 0) return;
    this.line = this.line.slice(0, this.cursor - 1) + this.line.slice(this.cursor);
    this.cursor--;
  }

  /** Deletes the word before the cursor (Ctrl-W). */
  killWord(): void {
    const before = this.line.slice(0, this.cursor).replace(/\S+\s*$/, '');
    this.line = before + this.line.slice(this.cursor);
    this.cursor = before.length;
  }

  /** Moves the cursor by n characters. */
  move(n: number): void {
    this.cursor = Math.max(0, Math.min(this.line.length, this.cursor + n));
  }

  /** Steps through history: -1 older, +1 newer (back to the draft). */
  browse(dir: -1 | 1): void {
    const h = this.history();
    if (this.histPos < 0) {
      if (dir > 0) return;
      this.draft = this.line;
      this.histPos = h.length;
    }
    const next = this.histPos + dir;
    if (next < 0 || next > h.length) return;
    this.histPos = next;
    this.set(next === h.length ? this.draft : h[next]);
    if (next === h.length) this.histPos = -1;
  }

  /** Takes the line for submission and resets the editor. */
  take(): string {
    const l = this.line;
    this.line = '';
    this.cursor = 0;
    this.histPos = -1;
    this.draft = '';
    return l;
  }

  /** Ctrl-C: returns true if this press should quit (a second press on an empty line). */
  ctrlC(): boolean {
    if (this.line === '' && this.armedQuit) return true;
    this.take();
    this.armedQuit = true;
    return false;
  }
}
