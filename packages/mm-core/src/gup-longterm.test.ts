import { describe, expect, it } from 'vitest';
import {
  EFAULT,
  EINVAL,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { walkPfn } from './cpu.js';
import {
  PIN_LONGTERM_TEST_FLAG_USE_FAST,
  PIN_LONGTERM_TEST_FLAG_USE_WRITE,
  PIN_LONGTERM_TEST_READ,
  PIN_LONGTERM_TEST_START,
  PIN_LONGTERM_TEST_STOP,
  PIN_LONGTERM_TEST_STRUCT_SIZE,
} from './gup-test.js';
import { readPmd } from './mm/pgtable.js';
import { _PAGE_DIRTY, _PAGE_RW } from './pgtable/entry.js';
import { PG_anon_exclusive } from './phys/memmap.js';
import type { Process } from './process.js';
import { machine, pmdKind, ptePfn } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** struct pin_longterm_test in the process's memory, as cow.c passes it. */
function startArgs(p: Process, addr: number, size: number, flags: number): number {
  const a = p.malloc(PIN_LONGTERM_TEST_STRUCT_SIZE);
  const b = new Uint8Array(PIN_LONGTERM_TEST_STRUCT_SIZE);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, BigInt(addr), true);
  dv.setBigUint64(8, BigInt(size), true);
  dv.setUint32(16, flags, true);
  p.writeBytes(a, b);
  return a;
}

/** PIN_LONGTERM_TEST_READ into a fresh buffer; returns the first byte of each pinned page. */
function readPins(p: Process, fd: number, pages: number): number[] {
  const buf = p.mmap(0, pages * PAGE_SIZE, RW, ANON);
  const arg = p.malloc(8);
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(buf), true);
  p.writeBytes(arg, b);
  expect(p.ioctl(fd, PIN_LONGTERM_TEST_READ, arg)).toBe(0);
  const out: number[] = [];
  for (let i = 0; i < pages; i++) out.push(p.readBytes(buf + i * PAGE_SIZE, 1)[0]);
  return out;
}

describe('gup_test PIN_LONGTERM_TEST_* and R/O pins that unshare (gup_must_unshare)', () => {
  for (const fast of [false, true]) {
    const flags = fast ? PIN_LONGTERM_TEST_FLAG_USE_FAST : 0;
    const name = fast ? 'pin_user_pages_fast' : 'pin_user_pages';

    it(`R/O longterm pin of a page shared with a child unshares it; later writes show in the pin (${name})`, () => {
      const k = machine();
      const p = k.spawn();
      const a = p.mmap(0, PAGE_SIZE, RW, ANON);
      p.madvise(a, PAGE_SIZE, MADV_NOHUGEPAGE);
      p.writeBytes(a, new Uint8Array([1]));
      const shared = ptePfn(k, p, a);
      const c = k.task(p.fork())!;
      expect(k.core.map.flags[shared] & PG_anon_exclusive).toBe(0);
      const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
      expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, flags))).toBe(0);
      // do_wp_page() with FAULT_FLAG_UNSHARE: the parent now maps an exclusive copy, read-only.
      const mine = ptePfn(k, p, a);
      expect(mine).not.toBe(shared);
      expect(k.core.map.flags[mine] & PG_anon_exclusive).toBeTruthy();
      expect(k.core.map.pincount[mine]).toBe(1);
      expect(ptePfn(k, c, a)).toBe(shared);
      // A write reuses the exclusive page in place (no copy), so the pin sees it.
      p.writeBytes(a, new Uint8Array([2]));
      expect(ptePfn(k, p, a)).toBe(mine);
      expect(readPins(p, fd, 1)).toEqual([2]);
      expect(c.readBytes(a, 1)[0]).toBe(1);
      expect(p.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0)).toBe(0);
      expect(k.core.map.pincount[mine]).toBe(0);
      expect(k.check()).toEqual([]);
    });

    it(`R/O longterm pin of the shared zero page maps a new exclusive page (${name})`, () => {
      const k = machine();
      const p = k.spawn();
      const a = p.mmap(0, PAGE_SIZE, RW, ANON);
      p.madvise(a, PAGE_SIZE, MADV_NOHUGEPAGE);
      expect(p.readBytes(a, 1)[0]).toBe(0);
      expect(ptePfn(k, p, a)).toBe(k.core.zeroPfn);
      const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
      expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, flags))).toBe(0);
      const mine = ptePfn(k, p, a);
      expect(mine).not.toBe(k.core.zeroPfn);
      expect(k.core.map.flags[mine] & PG_anon_exclusive).toBeTruthy();
      p.writeBytes(a, new Uint8Array([7]));
      expect(readPins(p, fd, 1)).toEqual([7]);
      p.close(fd);
      // gup_test_release() unpins.
      expect(k.core.map.pincount[mine]).toBe(0);
      expect(k.check()).toEqual([]);
    });
  }

  it('R/O longterm pin of the huge zero page unshares it: later writes show in the pin (cow.c "with huge zeropage")', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    expect(p.readBytes(a, 1)[0]).toBe(0);
    expect(k.core.hugeZeroPfn).toBeGreaterThanOrEqual(0);
    const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PMD_SIZE, 0))).toBe(0);
    p.writeBytes(a, new Uint8Array(PMD_SIZE).fill(0xff));
    const pins = readPins(p, fd, PMD_SIZE / PAGE_SIZE);
    expect(pins.every((b) => b === 0xff)).toBe(true);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('R/O longterm pin of a PMD-mapped THP shared with a child splits the PMD and unshares one page', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    p.writeBytes(a, new Uint8Array(PMD_SIZE).fill(3));
    const c = k.task(p.fork())!;
    const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, 0))).toBe(0);
    // do_huge_pmd_wp_page(): a shared THP cannot be reused: split, then unshare at PTE level.
    const mine = ptePfn(k, p, a);
    expect(mine).toBeGreaterThanOrEqual(0);
    expect(ptePfn(k, c, a)).toBe(-1);
    p.writeBytes(a, new Uint8Array([4]));
    expect(readPins(p, fd, 1)).toEqual([4]);
    expect(c.readBytes(a, 2)).toEqual(new Uint8Array([3, 3]));
    expect(p.readBytes(a + PAGE_SIZE, 1)[0]).toBe(3);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('R/O longterm pin of a PMD-mapped THP that is no longer shared reuses it: follow_huge_pmd() asks gup_must_unshare() of the head page', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    p.writeBytes(a, new Uint8Array(PMD_SIZE).fill(3));
    const before = ptePfn(k, p, a);
    const cpid = p.fork();
    k.task(cpid)!.exit(0);
    expect(p.waitpid(cpid)).toBe(cpid);
    const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    // A pin of the second subpage: do_huge_pmd_wp_page() reuses the THP (refcount 1) and marks
    // the head page AnonExclusive; the retried follow_huge_pmd() must then take the pin.
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a + PAGE_SIZE, PAGE_SIZE, 0))).toBe(0);
    expect(ptePfn(k, p, a)).toBe(before);
    p.writeBytes(a + PAGE_SIZE, new Uint8Array([4]));
    expect(readPins(p, fd, 1)).toEqual([4]);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('a R/W longterm pin breaks COW at pin time; the child keeps the old data', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.madvise(a, 2 * PAGE_SIZE, MADV_NOHUGEPAGE);
    p.writeBytes(a, new Uint8Array(2 * PAGE_SIZE).fill(5));
    const c = k.task(p.fork())!;
    const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    expect(
      p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, 2 * PAGE_SIZE, PIN_LONGTERM_TEST_FLAG_USE_WRITE)),
    ).toBe(0);
    p.writeBytes(a + PAGE_SIZE, new Uint8Array([6]));
    expect(readPins(p, fd, 2)).toEqual([5, 6]);
    expect(c.readBytes(a + PAGE_SIZE, 1)[0]).toBe(5);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('a pinned page is copied for the child at fork (copy_present_page), so the pin stays coherent', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.madvise(a, PAGE_SIZE, MADV_NOHUGEPAGE);
    p.writeBytes(a, new Uint8Array([1]));
    const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, 0))).toBe(0);
    const mine = ptePfn(k, p, a);
    const c = k.task(p.fork())!;
    expect(ptePfn(k, c, a)).not.toBe(mine);
    p.writeBytes(a, new Uint8Array([9]));
    expect(ptePfn(k, p, a)).toBe(mine);
    expect(readPins(p, fd, 1)).toEqual([9]);
    expect(c.readBytes(a, 1)[0]).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('the child’s copy of a pinned page takes the VMA’s protection: PROT_NONE stays inaccessible, read-only stays read-only', () => {
    // Found by the explorer's pin op (--seed 20261309): copy_present_page() mapped the copy with
    // the parent PTE's write bit and no protnone, so a PROT_NONE VMA got an accessible PTE.
    for (const [prot, read, write] of [
      [0, false, false],
      [PROT_READ, true, false],
      [RW, true, true],
    ] as const) {
      const k = machine();
      const p = k.spawn();
      const a = p.mmap(0, PAGE_SIZE, RW, ANON);
      p.madvise(a, PAGE_SIZE, MADV_NOHUGEPAGE);
      p.writeBytes(a, new Uint8Array([7]));
      const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
      expect(
        p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, PIN_LONGTERM_TEST_FLAG_USE_WRITE)),
      ).toBe(0);
      expect(p.mprotect(a, PAGE_SIZE, prot)).toBe(0);
      const mine = ptePfn(k, p, a);
      const c = k.task(p.fork())!;
      expect(ptePfn(k, c, a)).not.toBe(mine);
      expect(walkPfn(k.core, c.mm, a, false) >= 0).toBe(read);
      expect(walkPfn(k.core, c.mm, a, true) >= 0).toBe(write);
      expect(k.check()).toEqual([]);
    }
  });

  it('a R/O longterm pin of the huge zero page in a read-only private mapping maps the new THP read-only (do_huge_zero_wp_pmd(): map_anon_folio_pmd() only makes it writable for VM_WRITE)', () => {
    const k = machine('always');
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    expect(p.readBytes(a, 1)[0]).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge-zero');
    const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    // gup_must_unshare() for the zero page in a COW mapping: FAULT_FLAG_UNSHARE, a new THP.
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, 0))).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge');
    const [, lo] = readPmd(k.core, p.mm, a);
    expect(lo & _PAGE_RW).toBe(0);
    expect(lo & _PAGE_DIRTY).toBe(_PAGE_DIRTY);
    expect(walkPfn(k.core, p.mm, a, true)).toBe(-1);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('PIN_LONGTERM_TEST_* validate like mm/gup_test.c', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    // No pins yet: READ is -EINVAL; STOP is always 0.
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_READ, startArgs(p, a, 8, 0))).toBe(-EINVAL);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0)).toBe(0);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, 4))).toBe(-EINVAL);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a + 1, PAGE_SIZE, 0))).toBe(-EINVAL);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, 100, 0))).toBe(-EINVAL);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, 0, 0))).toBe(-EINVAL);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, 0))).toBe(0);
    // A second START while pages are pinned.
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, 0))).toBe(-EINVAL);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0)).toBe(0);
    // A hole: pin_user_pages() fails on its first page; nothing stays pinned.
    const across = startArgs(p, a, 2 * PAGE_SIZE, 0);
    p.munmap(a + PAGE_SIZE, PAGE_SIZE);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, across)).toBe(-EFAULT);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, startArgs(p, a, PAGE_SIZE, 0))).toBe(0);
    p.madvise(a, PAGE_SIZE, MADV_DONTNEED);
    expect(k.check()).toEqual([]);
  });
});
