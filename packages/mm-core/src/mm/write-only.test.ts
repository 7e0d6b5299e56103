/**
 * PROT_WRITE without PROT_READ on x86: the page tables cannot express write-only
 * (protection_map[VM_WRITE] is PAGE_COPY, a readable PTE) and the fault handler's
 * access_error() (arch/x86/mm/fault.c) lets a read fault through when vma_is_accessible(), so
 * CPU reads work. The kernel's own walkers decide for themselves: get_user_pages()
 * (check_vma_flags(), mm/gup.c) refuses a read without VM_READ unless FOLL_FORCE, and
 * hmm_range_fault() (hmm_vma_walk_test(), mm/hmm.c) treats a VMA without VM_READ as
 * inaccessible ("HMM does not support architectures that allow write without read").
 */
import { describe, expect, it } from 'vitest';
import {
  EFAULT,
  FOLL_FORCE,
  FOLL_WRITE,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CREAT,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import { PM_PRESENT, pagemapEntry } from '../proc.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { getUserPages, putUserPages } from './gup.js';
import {
  HMM_PFN_ERROR,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  hmmPfnFlags,
  hmmRangeFault,
} from './hmm.js';
import { MmuIntervalNotifier } from './types.js';

const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const PFN_MASK = (1n << 55n) - 1n;

/** hmm_range_fault() over [start, start + n pages) with `req` in every entry; returns [ret, pfns]. */
function hmmSnapshot(k: Kernel, p: Process, start: number, n: number, req = 0): [number, Float64Array] {
  const range: HmmRange = {
    notifier: new MmuIntervalNotifier(p.mm, start, start + n * PAGE_SIZE, {
      *invalidate() {
        return true;
      },
    }),
    notifierSeq: 0,
    start,
    end: start + n * PAGE_SIZE,
    hmmPfns: new Float64Array(n).fill(req),
    defaultFlags: 0,
    pfnFlagsMask: ~0,
    devPrivateOwner: null,
  };
  const r = k.sched.runSync(hmmRangeFault(k.core, range), 'hmm_range_fault');
  return [r, range.hmmPfns];
}

/** get_user_pages() of n pages with gupFlags; the pages are released again. */
function gup(k: Kernel, p: Process, addr: number, n: number, gupFlags: number): number {
  const got = k.sched.runSync(getUserPages(k.core, p.mm, addr, n, gupFlags), 'gup');
  if (typeof got === 'number') return got;
  putUserPages(k.core, got, gupFlags);
  return got.length;
}

describe('PROT_WRITE without PROT_READ (x86)', () => {
  it('CPU reads of a write-only mapping never raise SIGSEGV: private, shared, file, THP-sized', () => {
    const k = machine();
    const p = k.spawn();
    const priv = p.mmap(0, 2 * PAGE_SIZE, PROT_WRITE, ANON);
    expect(p.readI32(priv + PAGE_SIZE)).toBe(0); // do_anonymous_page(): the zero page
    p.writeI32(priv, 5);
    expect(p.readI32(priv)).toBe(5);
    const shared = p.mmap(0, PAGE_SIZE, PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    expect(p.readI32(shared)).toBe(0);
    p.writeI32(shared, 6);
    expect(p.readI32(shared)).toBe(6);
    const fd = p.open('/tmp/wo', O_RDWR | O_CREAT);
    expect(p.pwrite(fd, new Uint8Array([1, 2, 3, 4]), 4, 0)).toBe(4);
    const file = p.mmap(0, PAGE_SIZE, PROT_WRITE, MAP_SHARED, fd, 0);
    expect(p.readU8(file + 2)).toBe(3);
    const raw = p.mmap(0, 2 * PMD_SIZE, PROT_WRITE, ANON);
    const thp = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(raw, 2 * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(p.readI32(thp + 8)).toBe(0);
    expect(pmdKind(k, p, thp)).toBe('huge-zero');
    expect(p.state).toBe('running');
    expect(k.check()).toEqual([]);
  });

  it('mprotect(PROT_WRITE) of a read-write mapping keeps its data readable', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, ANON);
    p.writeI32(a, 11);
    p.writeI32(a + PAGE_SIZE, 12);
    expect(p.mprotect(a, 2 * PAGE_SIZE, PROT_WRITE)).toBe(0);
    expect(p.readI32(a)).toBe(11);
    expect(p.readI32(a + PAGE_SIZE)).toBe(12);
    p.writeI32(a, 13);
    expect(p.readI32(a)).toBe(13);
    expect(k.check()).toEqual([]);
  });

  it('pagemap reports a write-only page like any other (pagemap_pmd_range() does not look at VM_READ)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, PROT_WRITE, ANON);
    p.writeI32(a, 1);
    const e = pagemapEntry(k.core, p.mm, a);
    expect(e & PM_PRESENT).toBe(PM_PRESENT);
    expect(Number(e & PFN_MASK)).toBeGreaterThan(0);
    expect(k.check()).toEqual([]);
  });

  it('get_user_pages(): a read needs VM_READ or FOLL_FORCE (check_vma_flags()); FOLL_WRITE is allowed', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, PROT_WRITE, ANON);
    p.writeI32(a, 1);
    expect(gup(k, p, a, 2, 0)).toBe(-EFAULT);
    expect(gup(k, p, a, 2, FOLL_FORCE)).toBe(2);
    expect(gup(k, p, a, 2, FOLL_WRITE)).toBe(2);
    const r = p.mmap(0, PAGE_SIZE, PROT_READ, ANON);
    expect(gup(k, p, r, 1, 0)).toBe(1);
    expect(gup(k, p, r, 1, FOLL_WRITE)).toBe(-EFAULT);
    expect(k.check()).toEqual([]);
  });

  it('hmm_range_fault(): a VMA without VM_READ is HMM_PFN_ERROR, or -EFAULT when a fault is requested (hmm_vma_walk_test())', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, PROT_WRITE, ANON);
    p.writeI32(a, 1);
    const [r, pfns] = hmmSnapshot(k, p, a, 2);
    expect(r).toBe(0);
    expect([...pfns]).toEqual([HMM_PFN_ERROR, HMM_PFN_ERROR]);
    expect(hmmSnapshot(k, p, a, 2, HMM_PFN_REQ_FAULT)[0]).toBe(-EFAULT);
    // The same page after mprotect(PROT_READ | PROT_WRITE) is reported valid and writable.
    expect(p.mprotect(a, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    const [r2, pfns2] = hmmSnapshot(k, p, a, 1);
    expect(r2).toBe(0);
    expect(hmmPfnFlags(pfns2[0]) & (HMM_PFN_VALID | HMM_PFN_WRITE)).toBe(HMM_PFN_VALID | HMM_PFN_WRITE);
    expect(k.check()).toEqual([]);
  });
});
