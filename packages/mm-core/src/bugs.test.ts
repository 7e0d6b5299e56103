import { describe, expect, it } from 'vitest';
import { checkBugIds, KERNEL_BUGS, UnknownBugError } from './bugs.js';
import { Core } from './core.js';
import { Kernel } from './kernel.js';

const KNOWN = 'R1, R3, R5, R7, F5, F6, F10, F11, F12, F14, F15, F23, F28, F30';

describe('bug switches', () => {
  it('the table has one well-formed entry per id, in series-bugs.md order (review bugs first)', () => {
    const ids = KERNEL_BUGS.map((b) => b.id);
    expect(ids.join(', ')).toBe(KNOWN);
    expect(new Set(ids).size).toBe(ids.length);
    const num = (id: string) => (id[0] === 'R' ? 0 : 1000) + Number(id.slice(1));
    expect([...ids].sort((x, y) => num(x) - num(y))).toEqual(ids);
    for (const b of KERNEL_BUGS) {
      expect(b.id).toMatch(/^[RF]\d+$/);
      expect(['mm-core', 'zone-device', 'migrate-vma', 'test-hmm', 'nouveau-dmem']).toContain(b.pkg);
      expect(b.fixes.length).toBeGreaterThan(0);
      expect(typeof b.race).toBe('boolean');
      expect(b.title).not.toContain('\n');
    }
  });

  it('checkBugIds accepts known ids (and none) and returns them', () => {
    const ids = ['F5', 'R1', 'F30'];
    expect(checkBugIds(ids)).toBe(ids);
    expect(checkBugIds([])).toEqual([]);
    expect(checkBugIds(KERNEL_BUGS.map((b) => b.id))).toHaveLength(KERNEL_BUGS.length);
  });

  it.each([
    [['NOPE'], 'NOPE'],
    [['F5', 'f6'], 'f6'],
    [['F13'], 'F13'],
    [['F5', ' F5'], ' F5'],
  ])('checkBugIds(%j) rejects the first unknown id with UnknownBugError', (ids, bad) => {
    let err: unknown;
    try {
      checkBugIds(ids);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnknownBugError);
    expect((err as Error).name).toBe('UnknownBugError');
    expect((err as Error).message).toBe(`unknown bug id '${bad}' (known: ${KNOWN})`);
  });

  it('a value that is not a list of ids is rejected too', () => {
    expect(() => checkBugIds('F5' as unknown as string[])).toThrow(UnknownBugError);
    expect(() => checkBugIds([5 as unknown as string])).toThrow("unknown bug id '5'");
  });

  it("new Kernel({ bugs: ['NOPE'] }) fails with the one-line error; known ids switch bugs on", () => {
    let err: unknown;
    try {
      new Kernel({ bugs: ['NOPE'], ramBytes: 64 << 20 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnknownBugError);
    expect((err as Error).message).toBe(`unknown bug id 'NOPE' (known: ${KNOWN})`);
    expect((err as Error).message).not.toContain('\n');
    const k = new Kernel({ bugs: ['F5', 'R7'], ramBytes: 64 << 20 });
    expect(k.core.bug('F5')).toBe(true);
    expect(k.core.bug('R7')).toBe(true);
    expect(k.core.bug('F6')).toBe(false);
    expect([...k.core.bugs]).toEqual(['F5', 'R7']);
    const plain = new Core({ ramBytes: 64 << 20 });
    expect(KERNEL_BUGS.some((b) => plain.bug(b.id))).toBe(false);
  });
});
