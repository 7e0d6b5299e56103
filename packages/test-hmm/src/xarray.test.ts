import { describe, expect, it } from 'vitest';
import { MirrorTable } from './xarray.js';

/** Runs the same operations on a MirrorTable and a Map and compares them after every step. */
function mirror(ops: (t: MirrorTable, m: Map<number, number>) => void): void {
  const t = new MirrorTable();
  const m = new Map<number, number>();
  ops(t, m);
  expect(t.size).toBe(m.size);
  expect([...t.entries()]).toEqual([...m.entries()].sort((a, b) => a[0] - b[0]));
  for (const [k, v] of m) expect(t.get(k)).toBe(v);
}

describe('MirrorTable (dmirror->pt as a radix of 512-index nodes)', () => {
  it('behaves like a Map for single-index stores, loads and erases', () => {
    mirror((t, m) => {
      for (const [k, v] of [
        [5, 40],
        [511, 9],
        [512, 13],
        [2 ** 35 - 1, 7],
      ]) {
        t.set(k, v);
        m.set(k, v);
      }
      t.set(5, 44);
      m.set(5, 44);
      expect(t.delete(512)).toBe(true);
      m.delete(512);
      expect(t.delete(512)).toBe(false);
      expect(t.get(6)).toBeUndefined();
    });
  });

  it('stores a folio as one run and erases inclusive ranges, across node boundaries', () => {
    mirror((t, m) => {
      t.storeRun(1000, 0x4000, 512, 3);
      for (let k = 0; k < 512; k++) m.set(1000 + k, (0x4000 + k) * 4 + 3);
      // xa_for_each_range() is inclusive of the last index.
      t.eraseRange(1100, 1200);
      for (let k = 1100; k <= 1200; k++) m.delete(k);
      t.eraseRange(1024, 1535);
      for (let k = 1024; k <= 1535; k++) m.delete(k);
    });
  });

  it('erases a huge range by visiting only the nodes present', () => {
    const t = new MirrorTable();
    t.storeRun(0, 1, 512, 0);
    t.storeRun(2 ** 34, 1, 3, 0);
    t.eraseRange(0, 2 ** 35);
    expect(t.size).toBe(0);
    expect([...t.keys()]).toEqual([]);
  });

  it('matches a Map under random operations', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    mirror((t, m) => {
      for (let i = 0; i < 2000; i++) {
        const k = rnd(4096);
        switch (rnd(4)) {
          case 0:
            t.set(k, i);
            m.set(k, i);
            break;
          case 1:
            t.delete(k);
            m.delete(k);
            break;
          case 2: {
            const n = 1 + rnd(600);
            t.storeRun(k, i, n, 1);
            for (let j = 0; j < n; j++) m.set(k + j, (i + j) * 4 + 1);
            break;
          }
          default: {
            const last = k + rnd(900);
            t.eraseRange(k, last);
            for (let j = k; j <= last; j++) m.delete(j);
          }
        }
      }
    });
  });
});
