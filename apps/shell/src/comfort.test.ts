import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { complete } from './complete.js';
import { HISTORY_MAX, History, historyPath } from './history.js';
import { newSession, run } from './testing/harness.js';
import { decodeChunk, decodeInk, type InkKey, LineEditor } from './ui/editor.js';
import { colorEnabled } from './ui/theme.js';

const noKey: InkKey = {
  upArrow: false,
  downArrow: false,
  leftArrow: false,
  rightArrow: false,
  home: false,
  end: false,
  return: false,
  ctrl: false,
  tab: false,
  backspace: false,
  delete: false,
};

describe('tab completion', () => {
  it('completes command names, uniquely with a space, ambiguously to the common prefix', () => {
    const s = newSession();
    expect(complete(s, 'mad', 3)).toEqual({ line: 'madvise ', cursor: 8, candidates: [] });
    const m = complete(s, 'mu', 2);
    expect(m.line).toBe('munmap ');
    const mm = complete(s, 'mm', 2);
    expect(mm.line).toBe('mmap ');
    const amb = complete(s, 'm', 1);
    expect(amb.candidates).toContain('mmap');
    expect(amb.candidates).toContain('migrate');
    expect(amb.line).toBe('m');
    expect(complete(s, 'che', 3).candidates).toEqual(['check', 'check-exclusive']);
    expect(complete(s, 'che', 3).line).toBe('check');
  });
  it('completes arguments: advice, prot, patterns, directions, variables, pids, help topics', () => {
    const s = newSession();
    run(s, 'buf = mmap 2M');
    expect(complete(s, 'madvise $ 2M hu', 15).line).toBe('madvise $ 2M hugepage ');
    expect(complete(s, 'mprotect $ 4K no', 16).line).toBe('mprotect $ 4K none ');
    expect(complete(s, 'write $ 2M ind', 14).line).toBe('write $ 2M index ');
    expect(complete(s, 'migrate $ 2M d', 14).line).toBe('migrate $ 2M dev ');
    expect(complete(s, 'read $b', 7).line).toBe('read $buf ');
    expect(complete(s, 'switch ', 7).candidates).toEqual([]);
    expect(complete(s, 'switch ', 7).line).toBe('switch 1 ');
    expect(complete(s, 'help mre', 8).line).toBe('help mremap ');
    expect(complete(s, 'x = mm', 6).line).toBe('x = mmap ');
    expect(complete(s, 'dmirror sn', 10).line).toBe('dmirror snapshot ');
    expect(complete(s, 'nothing zz', 10)).toEqual({ line: 'nothing zz', cursor: 10, candidates: [] });
  });
  it('completes in the middle of a line', () => {
    const s = newSession();
    const c = complete(s, 'mun $ 4K', 3);
    expect(c.line).toBe('munmap $ 4K');
    expect(c.cursor).toBe(7);
  });
});

describe('history file', () => {
  it('persists across sessions, skips blanks and repeats, honours HMM_SHELL_HISTORY', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hmm-hist-'));
    const path = join(dir, 'hist');
    expect(historyPath({ HMM_SHELL_HISTORY: path })).toBe(path);
    expect(historyPath({})).toMatch(/\.hmm_history$/);
    const h = new History(path);
    h.add('mmap 2M');
    h.add('mmap 2M');
    h.add('   ');
    h.add('ps');
    expect(readFileSync(path, 'utf8')).toBe('mmap 2M\nps\n');
    expect(new History(path).entries).toEqual(['mmap 2M', 'ps']);
    writeFileSync(path, `${Array.from({ length: 2 * HISTORY_MAX + 5 }, (_, i) => `cmd ${i}`).join('\n')}\n`);
    const big = new History(path);
    expect(big.entries).toHaveLength(HISTORY_MAX);
    expect(big.entries[HISTORY_MAX - 1]).toBe(`cmd ${2 * HISTORY_MAX + 4}`);
    expect(readFileSync(path, 'utf8').split('\n').filter(Boolean)).toHaveLength(HISTORY_MAX);
    expect(new History(null).entries).toEqual([]);
  });
});

describe('line editor', () => {
  it('edits, browses history keeping the draft, and needs two Ctrl-C to quit', () => {
    const hist = ['one', 'two'];
    const e = new LineEditor(() => hist);
    e.insert('dra');
    e.insert('ft');
    e.move(-2);
    e.backspace();
    expect(e.line).toBe('drft');
    e.browse(-1);
    expect(e.line).toBe('two');
    e.browse(-1);
    e.browse(-1);
    expect(e.line).toBe('one');
    e.browse(1);
    e.browse(1);
    expect(e.line).toBe('drft');
    e.insert(' word');
    e.killWord();
    expect(e.line).toBe('drft ');
    expect(e.ctrlC()).toBe(false);
    expect(e.line).toBe('');
    expect(e.ctrlC()).toBe(true);
    e.armedQuit = false;
    e.insert('x');
    expect(e.ctrlC()).toBe(false);
    expect(e.take()).toBe('');
  });
  it('decodes pasted chunks and Ink keys', () => {
    expect(decodeChunk('mmap 2M\rps\r')).toEqual([
      { type: 'text', text: 'mmap 2M' },
      { type: 'enter' },
      { type: 'text', text: 'ps' },
      { type: 'enter' },
    ]);
    expect(decodeChunk('a\tb\x7f\x03\x04')).toEqual([
      { type: 'text', text: 'a' },
      { type: 'tab' },
      { type: 'text', text: 'b' },
      { type: 'backspace' },
      { type: 'ctrl-c' },
      { type: 'ctrl-d' },
    ]);
    expect(decodeInk('c', { ...noKey, ctrl: true })).toEqual([{ type: 'ctrl-c' }]);
    expect(decodeInk('', { ...noKey, upArrow: true })).toEqual([{ type: 'up' }]);
    expect(decodeInk('', { ...noKey, return: true })).toEqual([{ type: 'enter' }]);
    expect(decodeInk('x', noKey)).toEqual([{ type: 'text', text: 'x' }]);
  });
  it('colour is off with NO_COLOR or without a TTY', () => {
    expect(colorEnabled({}, true)).toBe(true);
    expect(colorEnabled({ NO_COLOR: '1' }, true)).toBe(false);
    expect(colorEnabled({ NO_COLOR: '' }, true)).toBe(true);
    expect(colorEnabled({}, false)).toBe(false);
  });
});
