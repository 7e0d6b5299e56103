import { MADV_COLD, MADV_DONTNEED, MADV_FREE, PAGE_SIZE, PROT_READ, PROT_WRITE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { newOutcome, type Op, type OpOutcome, patternWords } from './op.js';
import { Oracle } from './oracle.js';
import { regionAddr } from './world.js';

const RW = PROT_READ | PROT_WRITE;
const alive = () => true;

function done(o: Oracle, op: Op, out: Partial<OpOutcome> = {}): string | null {
  const rec = o.begin(op);
  return o.end(rec, { ...newOutcome(), ...out }, alive);
}

/** A completed load of the pages of op: words[k] is the word page k read (-1: its words differ). */
function readOf(o: Oracle, op: Op, words: Float64Array): string | null {
  return done(o, op, { readAddr: regionAddr(op.r ?? 0, op.off ?? 0), readWords: words });
}

/** A completed CPU store of pattern `seed` to pages [off, off + n) of region 0 (checked clean); its words. */
function store(o: Oracle, off: number, n: number, seed: number): Float64Array {
  const data = patternWords(seed, regionAddr(0, off), n);
  const op: Op = { k: 'write', p: 0, t: 0, r: 0, off, n, a: seed };
  expect(done(o, op, { writeAddr: regionAddr(0, off), writeWords: data })).toBeNull();
  return data;
}

function mapped(): Oracle {
  const o = new Oracle(2);
  expect(done(o, { k: 'mmap', p: 0, t: 0, r: 0, n: 8, a: RW }, { ret: regionAddr(0, 0) })).toBeNull();
  return o;
}

describe('the oracle', () => {
  it('a fresh mapping reads as zeros; a store is read back; a page whose words differ or of another word is a divergence naming the page', () => {
    const o = mapped();
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 2 }, new Float64Array(2))).toBeNull();
    const data = store(o, 2, 2, 7);
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 2, n: 2 }, data.slice())).toBeNull();
    const bad = data.slice();
    bad[1] = -1;
    const msg = readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 2, n: 2 }, bad);
    expect(msg).toMatch(
      /^CPU read of p0 at 0x7e0000003000: read a page whose words differ, the oracle says 0x[0-9a-f]+$/,
    );
    // A page that is another word repeated (a store that landed on the wrong page, say).
    const other = data.slice();
    other.fill(0x11111111, 1);
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 2, n: 2 }, other)).toMatch(
      /^CPU read of p0 at 0x7e0000003000: read 0x11111111, the oracle says 0x[0-9a-f]+$/,
    );
  });

  it('MADV_DONTNEED zeroes; munmap unmaps (a read there is a divergence); mremap moves the contents', () => {
    const o = mapped();
    const data = store(o, 0, 8, 3);
    done(o, { k: 'madvise', p: 0, t: 0, r: 0, off: 0, n: 1, a: MADV_DONTNEED }, { ret: 0 });
    expect(o.expected(0, regionAddr(0, 0) / PAGE_SIZE)).toBe(0);
    expect(o.expected(0, regionAddr(0, 1) / PAGE_SIZE)).toBe(data[1]);
    done(o, { k: 'mremap', p: 0, t: 0, r: 0, off: 4, n: 4, r2: 1, off2: 0 }, { ret: regionAddr(1, 0) });
    expect(o.accessible(0, regionAddr(0, 4) / PAGE_SIZE, regionAddr(0, 8) / PAGE_SIZE, false)).toBe(false);
    expect(o.expected(0, regionAddr(1, 0) / PAGE_SIZE)).toBe(data[4]);
    done(o, { k: 'munmap', p: 0, t: 0, r: 0, off: 0, n: 2 }, { ret: 0 });
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, new Float64Array(1))).toMatch(
      /succeeded, but the oracle has nothing mapped there/,
    );
  });

  it('MADV_FREE: a lazy-free page reads its contents or zeros (reclaim discarded it, then it stays zero); a CPU store ends the lazy state', () => {
    const o = mapped();
    const data = store(o, 0, 2, 9);
    done(o, { k: 'madvise', p: 0, t: 0, r: 0, off: 0, n: 2, a: MADV_FREE }, { ret: 0 });
    const page0 = data.slice(0, 1);
    const zero = new Float64Array(1);
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, page0.slice())).toBeNull();
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, zero)).toBeNull();
    // Discarded: the old contents cannot come back.
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, page0.slice())).toMatch(/CPU read/);
    // A CPU store redirties page 1: from then on it must keep what was stored.
    store(o, 1, 1, 4);
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 1, n: 1 }, zero)).toMatch(/CPU read/);
    expect(o.knownPages(0)).toContain(regionAddr(0, 1) / PAGE_SIZE);
  });

  it('a load concurrent with a store is not checked; the store is what the page holds after it', () => {
    const o = mapped();
    const w = o.begin({ k: 'write', p: 0, t: 1, r: 0, off: 0, n: 1, a: 5 });
    const r = o.begin({ k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 });
    const junk = Float64Array.of(0xaaaaaaaa);
    expect(o.end(r, { ...newOutcome(), readAddr: regionAddr(0, 0), readWords: junk }, alive)).toBeNull();
    const data = patternWords(5, regionAddr(0, 0), 1);
    expect(o.end(w, { ...newOutcome(), writeAddr: regionAddr(0, 0), writeWords: data }, alive)).toBeNull();
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, data.slice())).toBeNull();
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, junk)).toMatch(/CPU read/);
  });

  it('two racing stores leave the page unknown until a checked load adopts it', () => {
    const o = mapped();
    const a = o.begin({ k: 'write', p: 0, t: 1, r: 0, off: 0, n: 1, a: 5 });
    const b = o.begin({ k: 'write', p: 0, t: 0, r: 0, off: 0, n: 1, a: 6 });
    const da = patternWords(5, regionAddr(0, 0), 1);
    const db = patternWords(6, regionAddr(0, 0), 1);
    expect(o.end(b, { ...newOutcome(), writeAddr: regionAddr(0, 0), writeWords: db }, alive)).toBeNull();
    expect(o.end(a, { ...newOutcome(), writeAddr: regionAddr(0, 0), writeWords: da }, alive)).toBeNull();
    expect(o.knownPages(0)).not.toContain(regionAddr(0, 0) / PAGE_SIZE);
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, db.slice())).toBeNull();
    expect(o.knownPages(0)).toContain(regionAddr(0, 0) / PAGE_SIZE);
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, da.slice())).toMatch(/CPU read/);
  });

  it('a migration concurrent with a load does not excuse it: the load is checked', () => {
    const o = mapped();
    const m = o.begin({ k: 'dm', p: 0, t: 1, r: 0, off: 0, n: 8, a: 0, b: 0 });
    const bad = Float64Array.of(0x01010101);
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, bad)).toMatch(/CPU read of p0/);
    expect(o.end(m, { ...newOutcome(), ret: 0 }, alive)).toBeNull();
  });

  it('fork copies the parent; an access killed by the OOM killer is not a divergence', () => {
    const o = mapped();
    done(o, { k: 'fork', p: 0, t: 0 }, { child: 1 });
    expect(o.accessible(1, regionAddr(0, 0) / PAGE_SIZE, regionAddr(0, 8) / PAGE_SIZE, true)).toBe(true);
    expect(done(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 8 }, { signal: 9, oom: true })).toBeNull();
    expect(done(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 8 }, { signal: 11 })).toMatch(
      /signal 11, but the oracle says every page is mapped and accessible/,
    );
  });

  it("a dead child's memory is reused only once no operation refers to it, and a fork into it copies the parent exactly", () => {
    const o = new Oracle(3);
    expect(done(o, { k: 'mmap', p: 0, t: 0, r: 0, n: 8, a: RW }, { ret: regionAddr(0, 0) })).toBeNull();
    const parent = store(o, 0, 8, 21);
    let childAlive = true;
    const slots = (s: number) => s !== 1 || childAlive;
    const end = (op: Op, out: Partial<OpOutcome> = {}) =>
      o.end(o.begin(op), { ...newOutcome(), ...out }, slots);
    expect(end({ k: 'fork', p: 0, t: 0 }, { child: 1 })).toBeNull();
    // The child stores other words, and another store of its own is still in flight when it dies.
    const mine = patternWords(22, regionAddr(0, 0), 8);
    const w = { k: 'write', p: 1, t: 0, r: 0, off: 0, n: 8, a: 22 } as const;
    expect(end(w, { writeAddr: regionAddr(0, 0), writeWords: mine })).toBeNull();
    const late = o.begin({ k: 'write', p: 1, t: 0, r: 0, off: 0, n: 8, a: 23 });
    childAlive = false;
    expect(
      end(
        { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 },
        { readAddr: regionAddr(0, 0), readWords: parent.slice(0, 1) },
      ),
    ).toBeNull();
    // While that store is in flight the memory stays the child's: a fork now gets a fresh copy,
    // which the store's completion must not touch.
    expect(end({ k: 'fork', p: 0, t: 0 }, { child: 2 })).toBeNull();
    expect(
      o.end(
        late,
        { ...newOutcome(), writeAddr: regionAddr(0, 0), writeWords: patternWords(23, regionAddr(0, 0), 8) },
        slots,
      ),
    ).toBeNull();
    for (let k = 0; k < 8; k++) expect(o.expected(2, regionAddr(0, k) / PAGE_SIZE)).toBe(parent[k]);
    // Now nothing refers to the child's memory; the next fork may reuse it and still copies the parent.
    childAlive = true;
    expect(end({ k: 'fork', p: 0, t: 0 }, { child: 1 })).toBeNull();
    for (let k = 0; k < 8; k++) expect(o.expected(1, regionAddr(0, k) / PAGE_SIZE)).toBe(parent[k]);
  });

  it("a finished run's memories go to the next run's oracle, which starts with nothing mapped", () => {
    const bufOf = (o: Oracle) => (o as unknown as { mems: ({ buf: ArrayBuffer } | null)[] }).mems[0]?.buf;
    const o1 = mapped();
    store(o1, 0, 8, 31);
    const buf = bufOf(o1);
    o1.dispose();
    const o2 = new Oracle(2);
    expect(bufOf(o2)).toBe(buf);
    const first = regionAddr(0, 0) / PAGE_SIZE;
    expect(o2.accessible(0, first, first + 8, false)).toBe(false);
    expect(readOf(o2, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, new Float64Array([0]))).toMatch(
      /the oracle has nothing mapped there/,
    );
    expect(done(o2, { k: 'mmap', p: 0, t: 0, r: 0, n: 8, a: RW }, { ret: regionAddr(0, 0) })).toBeNull();
    expect(readOf(o2, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 8 }, new Float64Array(8))).toBeNull();
  });

  it('a store stopped by a caught SIGSEGV (a racing munmap) leaves the rest of its range unknown, not stale', () => {
    const o = mapped();
    store(o, 0, 8, 5);
    const first = regionAddr(0, 0) / PAGE_SIZE;
    expect(o.knownPages(0)).toHaveLength(8);
    // A second store races a munmap of its upper half and faults there; the program catches it.
    const w = o.begin({ k: 'write', p: 0, t: 0, r: 0, off: 0, n: 8, a: 6 });
    expect(done(o, { k: 'munmap', p: 0, t: 1, r: 0, off: 4, n: 4 }, { ret: 0 })).toBeNull();
    expect(o.end(w, { ...newOutcome(), signal: 11, handled: true }, alive)).toBeNull();
    // Pages 0..3 hold the old or the new contents (written before the fault): not judged until a
    // checked load adopts one; a load reading the new contents is no divergence.
    expect(o.knownPages(0)).toEqual([]);
    expect(o.accessible(0, first, first + 4, true)).toBe(true);
    const fresh = patternWords(6, regionAddr(0, 0), 1);
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, fresh)).toBeNull();
    expect(o.knownPages(0)).toEqual([first]);
    // Without a racing op the same caught signal is a divergence: the oracle says it is mapped.
    expect(
      done(o, { k: 'write', p: 0, t: 0, r: 0, off: 0, n: 2, a: 7 }, { signal: 11, handled: true }),
    ).toMatch(/signal 11, but the oracle says every page is mapped and accessible/);
  });

  it('two mapping changes racing on the same pages leave their mapping unknown: no access there is judged', () => {
    const o = mapped();
    const m = o.begin({ k: 'mremap', p: 0, t: 0, r: 0, off: 0, n: 4, r2: 1, off2: 0 });
    const u = o.begin({ k: 'munmap', p: 0, t: 1, r: 0, off: 2, n: 4 });
    expect(o.end(u, { ...newOutcome(), ret: 0 }, alive)).toBeNull();
    expect(o.end(m, { ...newOutcome(), ret: regionAddr(1, 0) }, alive)).toBeNull();
    const first = regionAddr(0, 0) / PAGE_SIZE;
    expect(o.accessible(0, first, first + 6, false)).toBe(false);
    expect(o.accessible(0, regionAddr(1, 0) / PAGE_SIZE, regionAddr(1, 4) / PAGE_SIZE, false)).toBe(false);
    expect(o.knownPages(0)).toEqual([first + 6, first + 7]);
    // A device read of those pages returning anything is not a divergence.
    const junk = new Float64Array(6).fill(0x03030303);
    expect(
      done(
        o,
        { k: 'dm', p: 0, t: 0, r: 0, off: 0, n: 6, a: 0, b: 2 },
        { readAddr: regionAddr(0, 0), readWords: junk },
      ),
    ).toBeNull();
    // A later mapping that is not raced makes them known again.
    done(o, { k: 'mmap', p: 0, t: 0, r: 0, n: 8, a: RW }, { ret: regionAddr(0, 0) });
    expect(o.accessible(0, first, first + 8, true)).toBe(true);
  });

  it('an mremap() that ran out of memory leaves its source and destination uncertain (the destination was unmapped first)', () => {
    const o = mapped();
    store(o, 0, 8, 5);
    // Region 1 had a mapping of its own where the move was going.
    expect(done(o, { k: 'mmap', p: 0, t: 0, r: 1, n: 8, a: RW }, { ret: regionAddr(1, 0) })).toBeNull();
    done(o, { k: 'mremap', p: 0, t: 0, r: 0, off: 2, n: 4, r2: 1, off2: 0 }, { ret: -12 });
    const src = regionAddr(0, 0) / PAGE_SIZE;
    const dst = regionAddr(1, 0) / PAGE_SIZE;
    expect(o.accessible(0, src + 2, src + 3, false)).toBe(false);
    expect(o.accessible(0, dst, dst + 1, false)).toBe(false);
    // Outside the two ranges nothing changed.
    expect(o.accessible(0, src, src + 2, true)).toBe(true);
    expect(o.accessible(0, dst + 4, dst + 8, true)).toBe(true);
    // Another error (checked before anything is touched) changes nothing.
    done(o, { k: 'mremap', p: 0, t: 0, r: 0, off: 6, n: 2, r2: 1, off2: 6 }, { ret: -22 });
    expect(o.accessible(0, src + 6, src + 8, true)).toBe(true);
    expect(o.accessible(0, dst + 6, dst + 8, true)).toBe(true);
  });

  it('an operation of a process that exits while it runs applies to that process, not to the next one in its slot', () => {
    const o = mapped();
    done(o, { k: 'fork', p: 0, t: 0 }, { child: 1 });
    const w = o.begin({ k: 'write', p: 1, t: 1, r: 0, off: 0, n: 1, a: 9 });
    let dead = false;
    o.end(o.begin({ k: 'exit', p: 1, t: 0 }), newOutcome(), (s) => s !== 1 || !dead);
    dead = true;
    o.end(o.begin({ k: 'read', p: 0, t: 0, r: 0, off: 0, n: 0 }), newOutcome(), (s) => s !== 1);
    // Slot 1 is reused by a new child of slot 0 before the old process's write completes.
    done(o, { k: 'fork', p: 0, t: 0 }, { child: 1 });
    const data = patternWords(9, regionAddr(0, 0), 1);
    expect(o.end(w, { ...newOutcome(), writeAddr: regionAddr(0, 0), writeWords: data }, alive)).toBeNull();
    expect(o.expected(1, regionAddr(0, 0) / PAGE_SIZE)).toBe(0);
  });
});

describe('the oracle and reads in flight across a lazy-free discard', () => {
  it('a load that began before another found the lazy-free page discarded may hold the old contents; one that began after may not', () => {
    const o = mapped();
    const data = store(o, 0, 1, 11);
    done(o, { k: 'madvise', p: 0, t: 0, r: 0, off: 0, n: 1, a: MADV_FREE }, { ret: 0 });
    const zero = new Float64Array(1);
    const read: Op = { k: 'read', p: 0, t: 1, r: 0, off: 0, n: 1 };
    // A long load (a GPU read, say) begins and loads the page before reclaim drops it...
    const early = o.begin(read);
    // ...another load then finds it discarded: from now on the page reads zeros...
    expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, zero)).toBeNull();
    // ...and the early load ends with the old contents it read: no divergence.
    const out = { ...newOutcome(), readAddr: regionAddr(0, 0), readWords: data.slice() };
    expect(o.end(early, out, alive)).toBeNull();
    // A load that begins after the discard was seen must read zeros.
    expect(readOf(o, read, data.slice())).toMatch(/the oracle says 0x0$/);
  });

  it('a load concurrent with MADV_FREE may read zeros (a swapped-out page loses its swap entry); with MADV_COLD it may not', () => {
    for (const [advice, zerosOk] of [
      [MADV_FREE, true],
      [MADV_COLD, false],
    ] as const) {
      const o = mapped();
      const data = store(o, 0, 2, 5);
      // The advice begins, the load begins and ends (reading zeros on page 1), the advice ends.
      const adv = o.begin({ k: 'madvise', p: 0, t: 0, r: 0, off: 0, n: 2, a: advice });
      const zeros = data.slice();
      zeros.fill(0, 1);
      const msg = readOf(o, { k: 'read', p: 0, t: 1, r: 0, off: 0, n: 2 }, zeros);
      expect(o.end(adv, { ...newOutcome(), ret: 0 }, alive)).toBeNull();
      if (zerosOk) {
        expect(msg).toBeNull();
        // The page is zero from then on: reading the old contents again is a divergence.
        expect(o.expected(0, regionAddr(0, 1) / PAGE_SIZE)).toBe(0);
        expect(readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 1, n: 1 }, data.slice(1))).toMatch(
          /^CPU read of p0 at 0x7e0000001000: read 0x[0-9a-f]+, the oracle says 0x0$/,
        );
      } else expect(msg).toMatch(/^CPU read of p0 at 0x7e0000001000: read 0x0, the oracle says 0x[0-9a-f]+$/);
      // Page 0 was read with its contents under either advice and still holds them.
      expect(o.expected(0, regionAddr(0, 0) / PAGE_SIZE)).toBe(data[0]);
    }
  });
});

describe('oracle and device writes', () => {
  it('a device write to a lazy-free page ends the lazy state only when the driver dirties the folio (K11, K12)', () => {
    for (const [k, dirty] of [
      ['dm', false],
      ['dm', true],
      ['gpu', false],
      ['gpu', true],
    ] as const) {
      const o = new Oracle(2, { dm: k === 'dm' && dirty, gpu: k === 'gpu' && dirty });
      done(o, { k: 'mmap', p: 0, t: 0, r: 0, n: 8, a: RW }, { ret: regionAddr(0, 0) });
      store(o, 0, 1, 3);
      done(o, { k: 'madvise', p: 0, t: 0, r: 0, off: 0, n: 1, a: MADV_FREE }, { ret: 0 });
      const dev = patternWords(9, regionAddr(0, 0), 1);
      done(
        o,
        { k, p: 0, t: 0, r: 0, off: 0, n: 1, a: 9, b: k === 'dm' ? 3 : 1 },
        { ret: 0, writeAddr: regionAddr(0, 0), writeWords: dev },
      );
      // Reclaim discarded the page after the device wrote it: zeros.
      const msg = readOf(o, { k: 'read', p: 0, t: 0, r: 0, off: 0, n: 1 }, new Float64Array(1));
      if (dirty)
        expect(msg, `${k} dirties`).toMatch(/^CPU read of p0 at 0x7e0000000000: read 0x0, the oracle says/);
      else expect(msg, `${k} does not dirty`).toBeNull();
    }
  });
});
