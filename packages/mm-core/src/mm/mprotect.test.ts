import { describe, expect, it } from 'vitest';
import {
  EACCES,
  EINVAL,
  ENOMEM,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { SignalDelivered } from '../errors.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { VM_READ, VM_WRITE } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function signalOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof SignalDelivered) return e.signo;
    throw e;
  }
  return 0;
}

describe('mprotect(2)', () => {
  it('validates arguments', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    expect(p.mprotect(a + 1, PAGE_SIZE, PROT_READ)).toBe(-EINVAL);
    expect(p.mprotect(a, PAGE_SIZE, 0x40)).toBe(-EINVAL);
    // (size_t)-1 page-aligns to 0, so do_mprotect_pkey() sees end <= start: -ENOMEM, not -EINVAL.
    expect(p.mprotect(a, -1, PROT_READ)).toBe(-ENOMEM);
    expect(p.mprotect(a, 0, PROT_READ)).toBe(0);
    expect(p.mprotect(a + 64 * PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(-ENOMEM);
  });

  it('makes pages read-only (SIGSEGV on write) and writable again with the data intact', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * PAGE_SIZE, i + 10);
    expect(p.mprotect(a + PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.vmas.length).toBe(3);
    expect(p.vmas[1].flags & (VM_READ | VM_WRITE)).toBe(VM_READ);
    expect(p.readI32(a + PAGE_SIZE)).toBe(11);
    p.writeI32(a, 1);
    expect(p.mprotect(a + PAGE_SIZE, 2 * PAGE_SIZE, RW)).toBe(0);
    // The VMAs merge back.
    expect(p.vmas.length).toBe(1);
    p.writeI32(a + 2 * PAGE_SIZE, 99);
    expect(p.readI32(a + 2 * PAGE_SIZE)).toBe(99);
    expect(p.mprotect(a, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(signalOf(() => p.writeI32(a, 5))).toBe(11);
    expect(p.state).not.toBe('running');
    expect(k.check()).toEqual([]);
  });

  it('PROT_NONE denies reads and writes; access comes back with the data', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeI32(a, 42);
    expect(p.mprotect(a, 2 * PAGE_SIZE, PROT_NONE)).toBe(0);
    expect(k.check()).toEqual([]);
    const child = k.task(p.fork())!;
    expect(signalOf(() => child.readI32(a))).toBe(11);
    expect(p.mprotect(a, 2 * PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.readI32(a)).toBe(42);
    expect(k.check()).toEqual([]);
  });

  it('returns -ENOMEM on a hole after changing the VMAs before it', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    expect(p.munmap(a + 2 * PAGE_SIZE, PAGE_SIZE)).toBe(0);
    expect(p.mprotect(a, 4 * PAGE_SIZE, PROT_READ)).toBe(-ENOMEM);
    expect(p.mm.vmaLookup(a)!.flags & VM_WRITE).toBe(0);
    expect(p.mm.vmaLookup(a + 3 * PAGE_SIZE)!.flags & VM_WRITE).toBe(VM_WRITE);
    expect(k.check()).toEqual([]);
  });

  it('returns -EACCES for PROT_WRITE on a shared mapping of a read-only file', () => {
    const k = machine();
    const p = k.spawn();
    const w = p.open('/tmp/ro', O_RDWR | O_CREAT);
    p.ftruncate(w, PAGE_SIZE);
    const fd = p.open('/tmp/ro', O_RDONLY);
    const a = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, fd);
    expect(p.mprotect(a, PAGE_SIZE, RW)).toBe(-EACCES);
    const b = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd);
    expect(p.mprotect(b, PAGE_SIZE, RW)).toBe(0);
    p.writeI32(b, 3);
    expect(p.readI32(a)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('changes a whole THP in place and splits a partly covered one', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE);
    p.writeI32(a, 1);
    p.writeI32(a + PMD_SIZE, 2);
    const splits = k.core.vmstat.thp_split_pmd;
    expect(p.mprotect(a, PMD_SIZE, PROT_READ)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(k.core.vmstat.thp_split_pmd).toBe(splits);
    expect(p.mprotect(a, PMD_SIZE, RW)).toBe(0);
    // Exclusive anonymous THP: writable again without a fault.
    p.writeI32(a + 8, 3);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(p.mprotect(a + PMD_SIZE + PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(k.core.vmstat.thp_split_pmd).toBe(splits + 1);
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('table');
    expect(p.readI32(a + PMD_SIZE)).toBe(2);
    p.writeI32(a + PMD_SIZE + 2 * PAGE_SIZE, 4);
    expect(signalOf(() => p.writeI32(a + PMD_SIZE + PAGE_SIZE, 4))).toBe(11);
    expect(k.check()).toEqual([]);
  });

  it('a PROT_NONE huge zero PMD splits into PROT_NONE zero-page PTEs', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    expect(p.readI32(a)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge-zero');
    expect(p.mprotect(a, PMD_SIZE, PROT_NONE)).toBe(0);
    expect(p.munmap(a + PAGE_SIZE, PAGE_SIZE)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(k.check()).toEqual([]);
    expect(signalOf(() => p.readI32(a + 2 * PAGE_SIZE))).toBe(11);
  });

  it('split and merge of a shared anonymous mapping keep the file references balanced', () => {
    const k = machine();
    const p = k.spawn();
    const s = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    for (let i = 0; i < 4; i++) p.writeI32(s + i * PAGE_SIZE, i);
    expect(p.mprotect(s + PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.vmas.length).toBe(3);
    expect(p.mprotect(s + PAGE_SIZE, PAGE_SIZE, RW)).toBe(0);
    expect(p.vmas.length).toBe(1);
    expect(k.core.vmstat.nr_shmem).toBe(4);
    expect(p.munmap(s, 4 * PAGE_SIZE)).toBe(0);
    // The last reference went with the last VMA: the page cache is gone.
    expect(k.core.vmstat.nr_shmem).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('a zero page stays read-only (COW) after mprotect(RW)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, PROT_READ, ANON);
    expect(p.readI32(a)).toBe(0);
    expect(p.mprotect(a, PAGE_SIZE, RW)).toBe(0);
    p.writeI32(a, 8);
    expect(p.readI32(a)).toBe(8);
    expect(p.mm.rss.MM_ANONPAGES).toBe(1);
    expect(k.check()).toEqual([]);
  });
});
