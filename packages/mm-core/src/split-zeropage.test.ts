/**
 * remap_page() with RMP_USE_SHARED_ZEROPAGE after a split (try_to_map_unused_to_zeropage()),
 * and split_huge_pages_write()'s file-path form (split_huge_pages_in_file()).
 */
import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_CREAT,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import type { Process } from './process.js';
import { machine, pmdKind, ptePfn } from './testing/helpers.js';

const DEBUGFS = '/sys/kernel/debug/split_huge_pages';

function debugfs(p: Process, text: string): number {
  const fd = p.open(DEBUGFS, O_WRONLY);
  const b = new TextEncoder().encode(text);
  const r = p.pwrite(fd, b, b.length, 0);
  p.close(fd);
  return r;
}

/** A PMD-mapped THP whose even pages hold data and odd pages stay zero. */
function halfZeroThp(p: Process): number {
  const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  for (let i = 0; i < 512; i += 2) p.writeI32(a + i * PAGE_SIZE + 8, i + 1);
  return a;
}

describe('split of an anonymous THP: all-zero pieces become the shared zero page', () => {
  it('to order 0: the 256 zero pages are freed and read as zeros; the written ones keep their data', () => {
    const k = machine();
    const p = k.spawn();
    const a = halfZeroThp(p);
    expect(pmdKind(k, p, a)).toBe('huge');
    const free = k.core.zone.nrFree;
    const line = `${p.pid},0x${a.toString(16)},0x${(a + PMD_SIZE).toString(16)},0`;
    expect(debugfs(p, line)).toBe(line.length);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(p.mm.rss.MM_ANONPAGES).toBe(256);
    expect(k.core.zone.nrFree).toBe(free + 256);
    for (let i = 0; i < 512; i++) {
      expect(ptePfn(k, p, a + i * PAGE_SIZE) === k.core.zeroPfn).toBe(i % 2 === 1);
      expect(p.readI32(a + i * PAGE_SIZE + 8)).toBe(i % 2 ? 0 : i + 1);
    }
    // A write to a zero-page piece faults in a fresh page (do_wp_page() on the zero page).
    p.writeI32(a + PAGE_SIZE, 5);
    expect(p.readI32(a + PAGE_SIZE)).toBe(5);
    expect(p.mm.rss.MM_ANONPAGES).toBe(257);
    expect(k.check()).toEqual([]);
  });

  it('to order 2: the pieces are large folios, so nothing is remapped to the zero page', () => {
    const k = machine();
    const p = k.spawn();
    const a = halfZeroThp(p);
    const line = `${p.pid},0x${a.toString(16)},0x${(a + PMD_SIZE).toString(16)},2`;
    expect(debugfs(p, line)).toBe(line.length);
    expect(p.mm.rss.MM_ANONPAGES).toBe(512);
    expect(ptePfn(k, p, a + PAGE_SIZE)).not.toBe(k.core.zeroPfn);
    expect(k.check()).toEqual([]);
  });
});

describe('split_huge_pages_write(): "<path>,0x<off_start>,0x<off_end>[,<order>]"', () => {
  it('opens the file and walks its page cache (/tmp has no huge=: small folios, nothing to split): the input length', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/f', O_CREAT | O_RDWR);
    expect(p.write(fd, new Uint8Array(4 * PAGE_SIZE).fill(3), 4 * PAGE_SIZE)).toBe(4 * PAGE_SIZE);
    for (const line of ['/tmp/f,0x0,0x400,0', '/tmp/f,0x0,0x400', '/tmp/f,0x1,0x2,3,1'])
      expect(debugfs(p, line)).toBe(line.length);
    const back = new Uint8Array(4 * PAGE_SIZE);
    expect(p.pread(fd, back, back.length, 0)).toBe(back.length);
    expect(back.every((b) => b === 3)).toBe(true);
    p.close(fd);
    // A missing file, no offsets, or offsets without 0x: -EINVAL.
    for (const bad of ['/tmp/none,0x0,0x10', '/tmp/f', '/tmp/f,0x0', '/tmp/f,0,16'])
      expect(debugfs(p, bad)).toBe(-EINVAL);
  });
});
