import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../constants.js';
import { BLOCK_PAGES, Frames } from './frames.js';
import { HostMemoryPool } from './hostpool.js';

const off = (pfn: number) => (pfn & (BLOCK_PAGES - 1)) * PAGE_SIZE;

/** Page pfn's bytes as a reader sees them (readBlock: never allocates). */
function read(f: Frames, pfn: number): Uint8Array {
  return f.readBlock(pfn, 1).slice(off(pfn), off(pfn) + PAGE_SIZE);
}

function write(f: Frames, pfn: number, at: number, v: number): void {
  f.writeBlock(pfn, 1)[off(pfn) + at] = v;
}

describe('frames with known-zero pages (clear_page, copy_highpage)', () => {
  it("a released machine's buffers serve the next one: its pages read as zero and written data reads back", () => {
    const pool = new HostMemoryPool();
    const a = new Frames(pool);
    for (let b = 0; b < 4; b++) write(a, b * BLOCK_PAGES + 3, 7, 0x5a);
    a.release();
    expect(a.allocatedBlocks).toBe(0);
    expect(a.isZero(3)).toBe(true);
    expect(pool.blocks.length).toBe(4);
    const f = new Frames(pool);
    // A reused buffer still holds 0x5a at page 3: the page must read as zero all the same.
    expect(f.isZero(3)).toBe(true);
    write(f, 1, 0, 0x11);
    expect(f.allocatedBlocks).toBe(1);
    expect(pool.blocks.length).toBe(3);
    expect(f.isZero(3)).toBe(true);
    expect(read(f, 3).every((x) => x === 0)).toBe(true);
    expect(read(f, 1)[0]).toBe(0x11);
    // A copy from a stale page is a clear, and a full overwrite needs no fill.
    f.copy(BLOCK_PAGES + 3, 3, 1);
    expect(read(f, BLOCK_PAGES + 3)[7]).toBe(0);
    write(f, 2 * BLOCK_PAGES + 3, 7, 0x22);
    expect(read(f, 2 * BLOCK_PAGES + 3)[7]).toBe(0x22);
    expect(read(f, 2 * BLOCK_PAGES + 3)[8]).toBe(0);
  });

  it('a never-written page reads as zero without allocating its block', () => {
    const f = new Frames();
    expect(f.isZero(12345)).toBe(true);
    expect(read(f, 12345).every((b) => b === 0)).toBe(true);
    expect(f.allocatedBlocks).toBe(0);
  });

  it('clearing a never-written page is free: no block, no fill', () => {
    const f = new Frames();
    f.zero(4096, 1024);
    expect(f.allocatedBlocks).toBe(0);
    expect(f.pagesFilled).toBe(0);
    expect(f.clearsElided).toBe(1024);
  });

  it('written data reads back, and a clear of it is deferred until the page is read', () => {
    const f = new Frames();
    write(f, 7, 100, 0xab);
    expect(f.isZero(7)).toBe(false);
    expect(read(f, 7)[100]).toBe(0xab);
    f.zero(7, 1);
    expect(f.isZero(7)).toBe(true);
    expect(f.pagesFilled).toBe(0);
    expect(read(f, 7)[100]).toBe(0);
    expect(f.pagesFilled).toBe(1);
    // Reading again costs nothing more: the page is clean.
    read(f, 7);
    expect(f.pagesFilled).toBe(1);
  });

  it('a clean page of an allocated block is not filled when cleared and then written', () => {
    const f = new Frames();
    write(f, 0, 0, 1);
    f.zero(1, 1);
    write(f, 1, 5, 9);
    expect(f.pagesFilled).toBe(0);
    expect(read(f, 1)[5]).toBe(9);
    expect(read(f, 1)[0]).toBe(0);
  });

  it('writing part of a cleared page keeps the rest zero', () => {
    const f = new Frames();
    f.writeBlock(3, 1).fill(0xff, off(3), off(3) + PAGE_SIZE);
    f.zero(3, 1);
    write(f, 3, 10, 0x42);
    const p = read(f, 3);
    expect(p[10]).toBe(0x42);
    expect(p.every((b, i) => i === 10 || b === 0)).toBe(true);
  });

  it('page() and block32() touch only their own page; block() completes every pending clear', () => {
    const f = new Frames();
    f.writeBlock(0, BLOCK_PAGES).fill(0xff);
    f.zero(0, BLOCK_PAGES);
    f.page(3)[0] = 1;
    f.block32(4)[off(4) >> 2] = 2;
    expect(f.pagesFilled).toBe(2);
    expect(f.isZero(5)).toBe(true);
    const blk = f.block(5);
    expect(f.pagesFilled).toBe(BLOCK_PAGES);
    expect(blk[off(3)]).toBe(1);
    expect(blk[off(4)]).toBe(2);
    expect(blk[off(4) + 1]).toBe(0);
    expect(blk[off(5)]).toBe(0);
    expect(f.isZero(5)).toBe(false);
  });

  it('a copy from a known-zero page is a clear of the destination', () => {
    const f = new Frames();
    write(f, 600, 0, 5);
    f.copy(600, 9000, 1);
    expect(f.isZero(600)).toBe(true);
    expect(read(f, 600)[0]).toBe(0);
    expect(f.allocatedBlocks).toBe(1);
  });

  it('copies runs across block boundaries, mixing data and known-zero source pages', () => {
    const f = new Frames();
    const src = 510;
    const dst = 5000;
    for (let i = 0; i < 6; i++) if (i !== 2) write(f, src + i, i, 10 + i);
    for (let i = 0; i < 6; i++) write(f, dst + i, 4000, 99);
    f.copy(dst, src, 6);
    for (let i = 0; i < 6; i++) {
      const p = read(f, dst + i);
      expect(p[i]).toBe(i === 2 ? 0 : 10 + i);
      expect(p[4000]).toBe(0);
    }
    expect(f.isZero(dst + 2)).toBe(true);
  });

  it('a page filled with a word reads as that word repeated, and its copies move no bytes', () => {
    const f = new Frames();
    const words = Uint32Array.from({ length: 600 }, (_, i) => 0x1000 + i);
    f.fillWords(100, 600, words);
    expect(f.pagesFilled).toBe(0);
    expect(f.uniformWord(100)).toBe(0x1000);
    expect(f.uniformWord(699)).toBe(0x1000 + 599);
    expect(f.isZero(100)).toBe(false);
    // A copy into another store (a swap device, a driver's memory) records the words.
    const g = new Frames();
    g.copy(7, 100, 600, f);
    expect(g.pagesFilled).toBe(0);
    expect(g.uniformWord(7 + 511)).toBe(0x1000 + 511);
    // The bytes appear when somebody reads them, and a part-page write keeps the rest.
    const page = read(g, 8);
    expect(new Uint32Array(page.buffer)[1023]).toBe(0x1001);
    expect(g.pagesFilled).toBe(1);
    write(g, 8, 0, 0xee);
    expect(g.uniformWord(8)).toBe(-1);
    expect(read(g, 8)[1]).toBe(0x10);
    // A fill over written bytes replaces them; a clear makes the page zero again.
    g.fillWords(8, 1, [0xabcdef01]);
    expect(read(g, 8)[0]).toBe(0x01);
    g.zero(8, 1);
    expect(g.isZero(8)).toBe(true);
    expect(g.uniformWord(8)).toBe(0);
  });

  it('data written always reads back (random writes, clears and copies against an oracle)', () => {
    const NPAGES = 3 * BLOCK_PAGES;
    const op = fc.oneof(
      fc.record({
        k: fc.constant('w' as const),
        pfn: fc.nat(NPAGES - 1),
        at: fc.nat(PAGE_SIZE - 1),
        v: fc.nat(255),
      }),
      fc.record({
        k: fc.constant('z' as const),
        pfn: fc.nat(NPAGES - 1),
        n: fc.integer({ min: 1, max: 600 }),
      }),
      fc.record({
        k: fc.constant('c' as const),
        d: fc.nat(NPAGES - 1),
        s: fc.nat(NPAGES - 1),
        n: fc.integer({ min: 1, max: 40 }),
      }),
      fc.record({ k: fc.constant('b' as const), pfn: fc.nat(NPAGES - 1) }),
      fc.record({
        k: fc.constant('f' as const),
        pfn: fc.nat(NPAGES - 1),
        n: fc.integer({ min: 1, max: 600 }),
        w: fc.oneof(fc.constant(0), fc.nat(0xffffffff)),
      }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const f = new Frames();
        const oracle = new Map<number, Map<number, number>>();
        const get = (p: number) => oracle.get(p) ?? new Map<number, number>();
        for (const o of ops) {
          if (o.k === 'w') {
            write(f, o.pfn, o.at, o.v);
            const m = new Map(get(o.pfn));
            m.set(o.at, o.v);
            oracle.set(o.pfn, m);
          } else if (o.k === 'z') {
            const n = Math.min(o.n, NPAGES - o.pfn);
            f.zero(o.pfn, n);
            for (let i = 0; i < n; i++) oracle.delete(o.pfn + i);
          } else if (o.k === 'c') {
            const n = Math.min(o.n, NPAGES - o.d, NPAGES - o.s);
            if (Math.abs(o.d - o.s) < n) continue;
            f.copy(o.d, o.s, n);
            const snap = Array.from({ length: n }, (_, i) => get(o.s + i));
            for (let i = 0; i < n; i++) oracle.set(o.d + i, new Map(snap[i]));
          } else if (o.k === 'f') {
            const n = Math.min(o.n, NPAGES - o.pfn);
            f.fillWords(o.pfn, n, new Uint32Array(n).fill(o.w));
            const m = new Map<number, number>();
            for (let at = 0; at < PAGE_SIZE; at++)
              if ((o.w >>> (8 * (at & 3))) & 0xff) m.set(at, (o.w >>> (8 * (at & 3))) & 0xff);
            for (let i = 0; i < n; i++) oracle.set(o.pfn + i, m);
          } else {
            f.block(o.pfn);
          }
        }
        const zero = new Uint8Array(PAGE_SIZE);
        for (let p = 0; p < NPAGES; p++) {
          const want = new Uint8Array(PAGE_SIZE);
          for (const [at, v] of get(p)) want[at] = v;
          if (!Buffer.from(read(f, p)).equals(want)) return false;
          if (!Buffer.from(want).equals(zero) && f.isZero(p)) return false;
          const w32 = new Uint32Array(want.buffer);
          if (f.uniformWord(p) !== (w32.every((x) => x === w32[0]) ? w32[0] : -1)) return false;
        }
        return true;
      }),
      { numRuns: 60, seed: 10 },
    );
  });
});
