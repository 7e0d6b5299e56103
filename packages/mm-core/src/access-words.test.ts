import { describe, expect, it } from 'vitest';
import {
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { accessWords, copyPagesUser, XLATE_SEGV } from './cpu.js';
import { Frames } from './phys/frames.js';
import { machine, pmdKind } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** A process with a THP-backed 2 MiB mapping (madvise mode). */
function thpProcess() {
  const k = machine();
  const p = k.spawn();
  const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
  const addr = Math.ceil(a / PMD_SIZE) * PMD_SIZE;
  expect(p.madvise(addr, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  return { k, p, addr };
}

const words = (n: number, base: number) => Float64Array.from({ length: n }, (_, i) => base + i);

describe('accessWords(): user stores and loads of whole pages of one word', () => {
  it('a store faults like a byte store (one THP), moves no bytes, and reads back as words and as bytes', () => {
    const { k, p, addr } = thpProcess();
    const core = k.core;
    const filled = core.frames.pagesFilled;
    const w = words(512, 0x1000);
    expect(p.run('store', accessWords(core, p.mm, addr, w, 'write'))).toBe(0);
    expect(core.vmstat.thp_fault_alloc).toBe(1);
    expect(pmdKind(k, p, addr)).toBe('huge');
    expect(core.frames.pagesFilled).toBe(filled);
    const back = new Float64Array(512);
    expect(p.run('load', accessWords(core, p.mm, addr, back, 'read'))).toBe(0);
    expect([...back]).toEqual([...w]);
    // A byte load sees the word repeated (little-endian) on every page.
    expect(p.readI32(addr + 7 * PAGE_SIZE + 400)).toBe(0x1007);
    // A byte store breaks the page's uniformity; the load says so with -1.
    p.writeI32(addr + 3 * PAGE_SIZE + 8, 5);
    expect(p.run('load', accessWords(core, p.mm, addr, back, 'read'))).toBe(0);
    expect(back[3]).toBe(-1);
    expect(back[4]).toBe(0x1004);
    expect(k.check()).toEqual([]);
  });

  it('pages stored as words survive fork and COW in both processes', () => {
    const { k, p, addr } = thpProcess();
    expect(p.run('store', accessWords(k.core, p.mm, addr, words(512, 0x2000), 'write'))).toBe(0);
    const c = k.task(p.fork())!;
    expect(c.run('store', accessWords(k.core, c.mm, addr + PAGE_SIZE, words(1, 0xbeef), 'write'))).toBe(0);
    const mine = new Float64Array(2);
    const theirs = new Float64Array(2);
    expect(p.run('load', accessWords(k.core, p.mm, addr, mine, 'read'))).toBe(0);
    expect(c.run('load', accessWords(k.core, c.mm, addr, theirs, 'read'))).toBe(0);
    expect([...mine]).toEqual([0x2000, 0x2001]);
    expect([...theirs]).toEqual([0x2000, 0xbeef]);
    expect(k.check()).toEqual([]);
  });

  it('an unaligned or unmapped address faults (XLATE_SEGV) and stores nothing', () => {
    const { k, p, addr } = thpProcess();
    expect(p.run('store', accessWords(k.core, p.mm, addr + 4, words(1, 1), 'write'))).toBe(XLATE_SEGV);
    expect(p.run('store', accessWords(k.core, p.mm, addr + 2 * PMD_SIZE, words(1, 1), 'write'))).toBe(
      XLATE_SEGV,
    );
    expect(p.readI32(addr)).toBe(0);
  });
});

describe('copyPagesUser(): copy_to_user()/copy_from_user() of whole pages to and from another page store', () => {
  it('pages of one word move as that word both ways; an unaligned user address copies bytes', () => {
    const { k, p, addr } = thpProcess();
    const core = k.core;
    const store = core.frames.store();
    store.fillWords(0, 4, [0xa0, 0xa1, 0xa2, 0xa3]);
    expect(p.run('to user', copyPagesUser(core, p.mm, addr, store, 0, 4, 'write'))).toBe(0);
    const back = new Float64Array(4);
    expect(p.run('load', accessWords(core, p.mm, addr, back, 'read'))).toBe(0);
    expect([...back]).toEqual([0xa0, 0xa1, 0xa2, 0xa3]);
    // From user memory into the store: the words arrive without bytes being written.
    const other = new Frames();
    expect(p.run('from user', copyPagesUser(core, p.mm, addr, other, 10, 4, 'read'))).toBe(0);
    expect(other.uniformWord(12)).toBe(0xa2);
    expect(other.pagesFilled).toBe(0);
    // An unaligned user buffer: the same data through a byte copy.
    expect(p.run('to user', copyPagesUser(core, p.mm, addr + PAGE_SIZE * 8 + 12, store, 1, 1, 'write'))).toBe(
      0,
    );
    expect(p.readI32(addr + PAGE_SIZE * 8 + 12)).toBe(0xa1);
    expect(p.readI32(addr + PAGE_SIZE * 9 + 8)).toBe(0xa1);
    expect(p.readI32(addr + PAGE_SIZE * 9 + 12)).toBe(0);
    expect(
      p.run('from user', copyPagesUser(core, p.mm, addr + PAGE_SIZE * 8 + 12, other, 0, 1, 'read')),
    ).toBe(0);
    expect(other.uniformWord(0)).toBe(0xa1);
    // A user address that is not mapped is a fault.
    expect(p.run('to user', copyPagesUser(core, p.mm, addr + 2 * PMD_SIZE, store, 0, 1, 'write'))).toBe(
      XLATE_SEGV,
    );
  });
});
