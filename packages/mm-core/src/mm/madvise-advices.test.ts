/**
 * The madvise(2) advices beyond DONTNEED/FREE/HUGEPAGE (mm/madvise.c): each test names the
 * kernel function whose behaviour it checks. The invariant checker runs after every syscall.
 */
import { describe, expect, it } from 'vitest';
import {
  EACCES,
  EFAULT,
  EINVAL,
  ENOMEM,
  FOLL_WRITE,
  HPAGE_PMD_NR,
  MADV_COLD,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED_LOCKED,
  MADV_GUARD_INSTALL,
  MADV_HUGEPAGE,
  MADV_HWPOISON,
  MADV_KEEPONFORK,
  MADV_MERGEABLE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_SOFT_OFFLINE,
  MADV_UNMERGEABLE,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
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
  SIGSEGV,
} from '../constants.js';
import { SignalDelivered } from '../errors.js';
import type { FileOperations } from '../fs.js';
import type { Kernel } from '../kernel.js';
import { _PAGE_ACCESSED, _PAGE_RW, entryKind, entryPfn } from '../pgtable/entry.js';
import { PG_referenced } from '../phys/memmap.js';
import type { Process } from '../process.js';
import { machine, pmdKind, ptePfn } from '../testing/helpers.js';
import { FOLL_PIN, getUserPages, putUserPages } from './gup.js';
import { pteIndex, pteTableOf, ptHi, ptLo } from './pgtable.js';
import {
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_PFNMAP,
  VM_RAND_READ,
  VM_SEQ_READ,
  VM_WIPEONFORK,
} from './types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const P = PAGE_SIZE;

function pte(k: Kernel, p: Process, addr: number): { kind: string; pfn: number; lo: number } {
  const t = pteTableOf(k.core, p.mm, addr, false);
  if (t < 0) return { kind: 'no-table', pfn: -1, lo: 0 };
  const lo = ptLo(k.core, t, pteIndex(addr));
  const hi = ptHi(k.core, t, pteIndex(addr));
  return { kind: entryKind(lo, hi, 'pte', k.core.zeroPfn, k.core.hugeZeroPfn), pfn: entryPfn(lo, hi), lo };
}

/** The PTE maps a present page writable (pte_write()). */
function writable(k: Kernel, p: Process, addr: number): boolean {
  const e = pte(k, p, addr);
  return e.kind === 'present' && (e.lo & _PAGE_RW) !== 0;
}

function signal(fn: () => void): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof SignalDelivered) return e.signo;
    throw e;
  }
  return 0;
}

/** A device whose mmap is remap_pfn_range()-like: VM_IO | VM_PFNMAP | VM_DONTEXPAND, no pages. */
function ioDevice(k: Kernel): void {
  const fops: FileOperations = {
    mmap(_file, vma) {
      vma.flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND;
      return 0;
    },
  };
  k.registerDevice('/dev/io', fops);
}

describe('madvise_behavior_valid() and do_madvise() checks', () => {
  it('advices the model kernel does not accept are -EINVAL (KSM and MEMORY_FAILURE off, guards unmodelled)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    p.writeI32(a, 5);
    for (const adv of [
      MADV_MERGEABLE,
      MADV_UNMERGEABLE,
      MADV_HWPOISON,
      MADV_SOFT_OFFLINE,
      MADV_GUARD_INSTALL,
      5,
      6,
      7,
      26,
      -1,
    ])
      expect(p.madvise(a, P, adv)).toBe(-EINVAL);
    expect(p.readI32(a)).toBe(5);
    // The advice is checked before the range: an invalid advice on an unmapped range is -EINVAL.
    expect(p.madvise(0x100000, P, 12345)).toBe(-EINVAL);
    expect(p.madvise(0x100000, P, MADV_WILLNEED)).toBe(-ENOMEM);
    expect(p.madvise(a + 1, P, MADV_WILLNEED)).toBe(-EINVAL);
    expect(p.madvise(a, 0, MADV_WIPEONFORK)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('madvise_walk_vmas(): the first VMA that fails ends the walk; earlier VMAs keep the advice', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    const s = p.mmap(a + 4 * P, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS | 0x100000);
    expect(s).toBe(a + 4 * P);
    const b = p.mmap(a + 8 * P, 4 * P, RW, ANON | 0x100000);
    expect(b).toBe(a + 8 * P);
    // WIPEONFORK: the anonymous VMA gets it, the shared one is -EINVAL, the last is not reached.
    expect(p.madvise(a, 12 * P, MADV_WIPEONFORK)).toBe(-EINVAL);
    expect(p.mm.vmaLookup(a)!.flags & VM_WIPEONFORK).toBe(VM_WIPEONFORK);
    expect(p.mm.vmaLookup(s)!.flags & VM_WIPEONFORK).toBe(0);
    expect(p.mm.vmaLookup(b)!.flags & VM_WIPEONFORK).toBe(0);
    // A hole only turns the result into -ENOMEM after every VMA was advised.
    expect(p.munmap(s, 4 * P)).toBe(0);
    expect(p.madvise(a, 12 * P, MADV_KEEPONFORK)).toBe(-ENOMEM);
    expect(p.madvise(a, 12 * P, MADV_WIPEONFORK)).toBe(-ENOMEM);
    expect(p.mm.vmaLookup(b)!.flags & VM_WIPEONFORK).toBe(VM_WIPEONFORK);
    expect(k.check()).toEqual([]);
  });
});

describe('madvise_update_vma(): VMA-flag advices split and merge VMAs', () => {
  it('MADV_RANDOM / MADV_SEQUENTIAL set VM_RAND_READ / VM_SEQ_READ, MADV_NORMAL clears both and the VMAs merge back', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 8 * P, RW, ANON);
    expect(p.madvise(a + 2 * P, 2 * P, MADV_RANDOM)).toBe(0);
    expect(p.vmas.length).toBe(3);
    expect(p.mm.vmaLookup(a + 2 * P)!.flags & (VM_RAND_READ | VM_SEQ_READ)).toBe(VM_RAND_READ);
    expect(p.madvise(a + 2 * P, P, MADV_SEQUENTIAL)).toBe(0);
    expect(p.mm.vmaLookup(a + 2 * P)!.flags & (VM_RAND_READ | VM_SEQ_READ)).toBe(VM_SEQ_READ);
    expect(p.vmas.length).toBe(4);
    expect(p.madvise(a, 8 * P, MADV_NORMAL)).toBe(0);
    expect(p.vmas.length).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('an advice that does not change the flags does not split the VMA', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 8 * P, RW, ANON);
    expect(p.madvise(a + 2 * P, 2 * P, MADV_NORMAL)).toBe(0);
    expect(p.madvise(a + 2 * P, 2 * P, MADV_KEEPONFORK)).toBe(0);
    expect(p.madvise(a + 2 * P, 2 * P, MADV_DOFORK)).toBe(0);
    expect(p.vmas.length).toBe(1);
  });

  it('MADV_DONTDUMP / MADV_DODUMP toggle VM_DONTDUMP; MADV_DODUMP on a VM_SPECIAL mapping is -EINVAL', () => {
    const k = machine();
    ioDevice(k);
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    expect(p.madvise(a, 4 * P, MADV_DONTDUMP)).toBe(0);
    expect(p.mm.vmaLookup(a)!.flags & VM_DONTDUMP).toBe(VM_DONTDUMP);
    expect(p.madvise(a, 4 * P, MADV_DODUMP)).toBe(0);
    expect(p.mm.vmaLookup(a)!.flags & VM_DONTDUMP).toBe(0);
    const fd = p.open('/dev/io', O_RDWR);
    const io = p.mmap(0, 2 * P, RW, MAP_SHARED, fd);
    expect(io).toBeGreaterThan(0);
    expect(p.madvise(io, 2 * P, MADV_DONTDUMP)).toBe(0);
    expect(p.madvise(io, 2 * P, MADV_DODUMP)).toBe(-EINVAL);
    expect(k.check()).toEqual([]);
  });
});

describe('MADV_DONTFORK / MADV_DOFORK (VM_DONTCOPY, dup_mmap())', () => {
  it('the child has no mapping there; MADV_DOFORK brings it back for later forks', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * P, i + 1);
    expect(p.madvise(a + P, 2 * P, MADV_DONTFORK)).toBe(0);
    expect(p.mm.vmaLookup(a + P)!.flags & VM_DONTCOPY).toBe(VM_DONTCOPY);
    const c = k.task(p.fork())!;
    expect(c.readI32(a)).toBe(1);
    expect(c.readI32(a + 3 * P)).toBe(4);
    expect(c.mm.vmaLookup(a + P)).toBeUndefined();
    expect(signal(() => c.readI32(a + P))).toBe(SIGSEGV);
    // The parent is unaffected.
    expect(p.readI32(a + 2 * P)).toBe(3);
    expect(p.madvise(a, 4 * P, MADV_DOFORK)).toBe(0);
    expect(p.vmas.length).toBe(1);
    const c2 = k.task(p.fork())!;
    expect(c2.readI32(a + P)).toBe(2);
    expect(k.check()).toEqual([]);
  });

  it('MADV_DOFORK on a VM_IO mapping is -EINVAL (MADV_DONTFORK is allowed)', () => {
    const k = machine();
    ioDevice(k);
    const p = k.spawn();
    const fd = p.open('/dev/io', O_RDWR);
    const io = p.mmap(0, 2 * P, RW, MAP_SHARED, fd);
    expect(p.madvise(io, 2 * P, MADV_DONTFORK)).toBe(0);
    expect(p.madvise(io, 2 * P, MADV_DOFORK)).toBe(-EINVAL);
    expect(p.mm.vmaLookup(io)!.flags & VM_DONTCOPY).toBe(VM_DONTCOPY);
    expect(k.check()).toEqual([]);
  });
});

describe('MADV_WIPEONFORK / MADV_KEEPONFORK (VM_WIPEONFORK, dup_mmap())', () => {
  it('the child reads zeros (no page copied, no anon_vma); the parent keeps its data; the flag is inherited', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * P, i + 1);
    expect(p.madvise(a + P, 2 * P, MADV_WIPEONFORK)).toBe(0);
    const c = k.task(p.fork())!;
    const cv = c.mm.vmaLookup(a + P)!;
    expect(cv.flags & VM_WIPEONFORK).toBe(VM_WIPEONFORK);
    expect(cv.anonVma).toBeNull();
    expect(pte(k, c, a + P).kind).toBe('none');
    expect(c.mm.rss.MM_ANONPAGES).toBe(2);
    expect([0, 1, 2, 3].map((i) => c.readI32(a + i * P))).toEqual([1, 0, 0, 4]);
    expect([0, 1, 2, 3].map((i) => p.readI32(a + i * P))).toEqual([1, 2, 3, 4]);
    // The child's own writes there are private to it, and wiped again in a grandchild.
    c.writeI32(a + P, 9);
    const g = k.task(c.fork())!;
    expect(g.readI32(a + P)).toBe(0);
    expect(c.readI32(a + P)).toBe(9);
    // MADV_KEEPONFORK: the next child gets a copy.
    expect(p.madvise(a, 4 * P, MADV_KEEPONFORK)).toBe(0);
    expect(p.vmas.length).toBe(1);
    const c2 = k.task(p.fork())!;
    expect(c2.readI32(a + 2 * P)).toBe(3);
    expect(k.check()).toEqual([]);
  });

  it('a wiped THP is neither copied nor referenced by the child', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    p.writeI32(a, 7);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(p.madvise(a, PMD_SIZE, MADV_WIPEONFORK)).toBe(0);
    const c = k.task(p.fork())!;
    expect(pmdKind(k, c, a)).toBe('none');
    expect(c.readI32(a)).toBe(0);
    expect(p.readI32(a)).toBe(7);
    expect(k.check()).toEqual([]);
  });

  it('only private anonymous memory: shared anonymous, file and device mappings are -EINVAL', () => {
    const k = machine();
    ioDevice(k);
    const p = k.spawn();
    const s = p.mmap(0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS);
    expect(p.madvise(s, 2 * P, MADV_WIPEONFORK)).toBe(-EINVAL);
    const fd = p.open('/tmp/w', O_RDWR | O_CREAT);
    p.ftruncate(fd, 2 * P);
    expect(p.madvise(p.mmap(0, 2 * P, RW, MAP_PRIVATE, fd), 2 * P, MADV_WIPEONFORK)).toBe(-EINVAL);
    expect(p.madvise(p.mmap(0, 2 * P, RW, MAP_SHARED, fd), 2 * P, MADV_WIPEONFORK)).toBe(-EINVAL);
    const io = p.mmap(0, 2 * P, RW, MAP_SHARED, p.open('/dev/io', O_RDWR));
    expect(p.madvise(io, 2 * P, MADV_WIPEONFORK)).toBe(-EINVAL);
    // A private MAP_HUGETLB mapping has a hugetlbfs file too.
    const h = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    expect(p.madvise(h, PMD_SIZE, MADV_WIPEONFORK)).toBe(-EINVAL);
    expect(p.madvise(h, PMD_SIZE, MADV_REMOVE)).toBe(-EACCES);
    // MADV_KEEPONFORK has no such restriction.
    expect(p.madvise(s, 2 * P, MADV_KEEPONFORK)).toBe(0);
    expect(k.check()).toEqual([]);
  });
});

describe('MADV_WILLNEED (madvise_willneed())', () => {
  it('is 0 on anonymous, tmpfs and shared memory and changes nothing (no swap to read ahead); holes are -ENOMEM', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    p.writeI32(a, 1);
    const fd = p.open('/tmp/f', O_RDWR | O_CREAT);
    p.ftruncate(fd, 4 * P);
    const f = p.mmap(0, 4 * P, RW, MAP_SHARED, fd);
    const rss = { ...p.mm.rss };
    expect(p.madvise(a, 4 * P, MADV_WILLNEED)).toBe(0);
    expect(p.madvise(f, 4 * P, MADV_WILLNEED)).toBe(0);
    expect(p.mm.rss).toEqual(rss);
    expect(pte(k, p, a + P).kind).toBe('none');
    expect(p.madvise(a, 64 * P, MADV_WILLNEED)).toBe(-ENOMEM);
    expect(k.check()).toEqual([]);
  });
});

describe('MADV_POPULATE_READ / MADV_POPULATE_WRITE (madvise_populate(), faultin_page_range())', () => {
  it('POPULATE_READ maps the zero page in private anonymous memory; POPULATE_WRITE maps exclusive pages', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    expect(p.madvise(a, 2 * P, MADV_POPULATE_READ)).toBe(0);
    expect(pte(k, p, a).kind).toBe('zero');
    expect(pte(k, p, a + P).kind).toBe('zero');
    expect(pte(k, p, a + 2 * P).kind).toBe('none');
    expect(p.madvise(a, 4 * P, MADV_POPULATE_WRITE)).toBe(0);
    for (let i = 0; i < 4; i++) expect(writable(k, p, a + i * P)).toBe(true);
    expect(p.mm.rss.MM_ANONPAGES).toBe(4);
    expect(p.readI32(a)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('POPULATE_WRITE breaks COW: the parent gets its own copy, the child keeps the shared page', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * P, RW, ANON);
    p.writeI32(a, 11);
    const c = k.task(p.fork())!;
    const old = pte(k, p, a).pfn;
    expect(pte(k, c, a).pfn).toBe(old);
    expect(p.madvise(a, P, MADV_POPULATE_WRITE)).toBe(0);
    expect(pte(k, p, a).pfn).not.toBe(old);
    expect(writable(k, p, a)).toBe(true);
    expect(pte(k, c, a).pfn).toBe(old);
    expect(p.readI32(a)).toBe(11);
    expect(c.readI32(a)).toBe(11);
    expect(k.check()).toEqual([]);
  });

  it('POPULATE_WRITE of a private file mapping makes anonymous copies with the file data', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/pf', O_RDWR | O_CREAT);
    p.pwrite(fd, new Uint8Array([9, 0, 0, 0]), 4, 0);
    p.ftruncate(fd, 2 * P);
    const f = p.mmap(0, 2 * P, RW, MAP_PRIVATE, fd);
    expect(p.madvise(f, 2 * P, MADV_POPULATE_READ)).toBe(0);
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(2);
    expect(p.madvise(f, 2 * P, MADV_POPULATE_WRITE)).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES).toBe(2);
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(0);
    expect(p.readI32(f)).toBe(9);
    // The file is untouched by the private copy.
    p.writeI32(f, 3);
    const back = new Uint8Array(4);
    p.pread(fd, back, 4, 0);
    expect(back[0]).toBe(9);
    expect(k.check()).toEqual([]);
  });

  it('stops at the first hole with -ENOMEM, pages before it populated (no walk past it)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    expect(p.munmap(a + 2 * P, P)).toBe(0);
    expect(p.madvise(a, 4 * P, MADV_POPULATE_WRITE)).toBe(-ENOMEM);
    expect(writable(k, p, a + P)).toBe(true);
    expect(pte(k, p, a + 3 * P).kind).toBe('none');
    expect(k.check()).toEqual([]);
  });

  it('check_vma_flags(): -EINVAL for PROT_NONE, a write to a read-only mapping, a read of a write-only one, VM_IO/VM_PFNMAP', () => {
    const k = machine();
    ioDevice(k);
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    expect(p.mprotect(a + 2 * P, 2 * P, PROT_NONE)).toBe(0);
    expect(p.madvise(a, 4 * P, MADV_POPULATE_READ)).toBe(-EINVAL);
    expect(pte(k, p, a + P).kind).toBe('zero');
    const ro = p.mmap(0, P, PROT_READ, ANON);
    expect(p.madvise(ro, P, MADV_POPULATE_WRITE)).toBe(-EINVAL);
    expect(p.madvise(ro, P, MADV_POPULATE_READ)).toBe(0);
    const wo = p.mmap(0, P, PROT_WRITE, ANON);
    expect(p.madvise(wo, P, MADV_POPULATE_READ)).toBe(-EINVAL);
    expect(p.madvise(wo, P, MADV_POPULATE_WRITE)).toBe(0);
    const io = p.mmap(0, P, RW, MAP_SHARED, p.open('/dev/io', O_RDWR));
    expect(p.madvise(io, P, MADV_POPULATE_READ)).toBe(-EINVAL);
    expect(k.check()).toEqual([]);
  });

  it('a fault that would raise SIGBUS (beyond the end of a file) is -EFAULT', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/short', O_RDWR | O_CREAT);
    p.ftruncate(fd, P);
    const f = p.mmap(0, 3 * P, RW, MAP_SHARED, fd);
    expect(p.madvise(f, 3 * P, MADV_POPULATE_READ)).toBe(-EFAULT);
    expect(pte(k, p, f).kind).not.toBe('none');
    expect(pte(k, p, f + P).kind).toBe('none');
    expect(k.check()).toEqual([]);
  });

  it('POPULATE_WRITE of the huge zero page replaces it by a THP', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(p.madvise(a, PMD_SIZE, MADV_POPULATE_READ)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge-zero');
    expect(p.madvise(a, PMD_SIZE, MADV_POPULATE_WRITE)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(k.check()).toEqual([]);
  });
});

describe('MADV_REMOVE (madvise_remove() -> vfs_fallocate(PUNCH_HOLE))', () => {
  it('shared anonymous memory: the range reads back zeros and its pages are freed', () => {
    const k = machine();
    const p = k.spawn();
    const s = p.mmap(0, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS);
    for (let i = 0; i < 4; i++) p.writeI32(s + i * P, i + 1);
    const c = k.task(p.fork())!;
    const shmem = k.core.vmstat.nr_shmem;
    expect(p.madvise(s + P, 2 * P, MADV_REMOVE)).toBe(0);
    expect(k.core.vmstat.nr_shmem).toBe(shmem - 2);
    expect(pte(k, p, s + P).kind).toBe('none');
    expect([0, 1, 2, 3].map((i) => c.readI32(s + i * P))).toEqual([1, 0, 0, 4]);
    expect([0, 1, 2, 3].map((i) => p.readI32(s + i * P))).toEqual([1, 0, 0, 4]);
    expect(k.check()).toEqual([]);
  });

  it('a tmpfs file: the hole reads zeros through read() and every mapping; COWed private pages stay; the size stays', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/hole', O_RDWR | O_CREAT);
    p.ftruncate(fd, 4 * P);
    const sh = p.mmap(0, 4 * P, RW, MAP_SHARED, fd);
    for (let i = 0; i < 4; i++) p.writeI32(sh + i * P, i + 1);
    const pr = p.mmap(0, 4 * P, RW, MAP_PRIVATE, fd);
    expect(p.readI32(pr + P)).toBe(2); // maps the page-cache page
    p.writeI32(pr + 2 * P, 30); // a private COWed copy
    expect(p.madvise(sh + P, 2 * P, MADV_REMOVE)).toBe(0);
    expect(p.readI32(sh + P)).toBe(0);
    expect(p.readI32(pr + P)).toBe(0);
    expect(p.readI32(pr + 2 * P)).toBe(30);
    const buf = new Uint8Array(4);
    p.pread(fd, buf, 4, 2 * P);
    expect(Array.from(buf)).toEqual([0, 0, 0, 0]);
    expect(p.vmas.find((v) => v.start === sh)!.file!.size).toBe(4 * P);
    expect(p.readI32(sh + 3 * P)).toBe(4);
    expect(k.check()).toEqual([]);
  });

  it('-EINVAL without a file (private anonymous); -EACCES unless shared and may-write', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * P, RW, ANON);
    p.writeI32(a, 1);
    expect(p.madvise(a, 2 * P, MADV_REMOVE)).toBe(-EINVAL);
    expect(p.readI32(a)).toBe(1);
    const fd = p.open('/tmp/acc', O_RDWR | O_CREAT);
    p.ftruncate(fd, 2 * P);
    const pr = p.mmap(0, 2 * P, RW, MAP_PRIVATE, fd);
    expect(p.madvise(pr, 2 * P, MADV_REMOVE)).toBe(-EACCES);
    // vma_is_shared_maywrite(): a read-only MAP_SHARED mapping of a file opened O_RDWR qualifies.
    const roShared = p.mmap(0, 2 * P, PROT_READ, MAP_SHARED, fd);
    expect(p.madvise(roShared, 2 * P, MADV_REMOVE)).toBe(0);
    const rdonly = p.open('/tmp/acc', O_RDONLY);
    const noWrite = p.mmap(0, 2 * P, PROT_READ, MAP_SHARED, rdonly);
    expect(p.madvise(noWrite, 2 * P, MADV_REMOVE)).toBe(-EACCES);
    expect(k.check()).toEqual([]);
  });

  it('shared hugetlb: hugetlbfs_punch_hole() frees the whole huge pages of the hole back to the pool', () => {
    const k = machine();
    const p = k.spawn();
    const h = p.mmap(0, 2 * PMD_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB);
    p.writeI32(h, 1);
    p.writeI32(h + PMD_SIZE, 2);
    const free = k.core.hugetlb.free.length;
    expect(p.madvise(h, PMD_SIZE, MADV_REMOVE)).toBe(0);
    expect(k.core.hugetlb.free.length).toBe(free + 1);
    expect(p.readI32(h)).toBe(0);
    expect(p.readI32(h + PMD_SIZE)).toBe(2);
    // Part of a huge page: zeroed in place.
    p.writeI32(h + PMD_SIZE + P, 3);
    expect(p.madvise(h + PMD_SIZE, 2 * P, MADV_REMOVE)).toBe(0);
    expect(p.readI32(h + PMD_SIZE)).toBe(0);
    expect(p.readI32(h + PMD_SIZE + P)).toBe(0);
    expect(k.check()).toEqual([]);
  });
});

describe('MADV_COLD / MADV_PAGEOUT (madvise_cold_or_pageout_pte_range(), reclaim_pages() without swap)', () => {
  it('COLD clears the young bits and PG_referenced of pages mapped once; pages shared with a child are left alone', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * P, i);
    const c = k.task(p.fork())!;
    c.writeI32(a + 3 * P, 99); // page 3 is the parent's alone again
    k.core.map.flags[pte(k, p, a + 3 * P).pfn] |= PG_referenced;
    expect(p.madvise(a, 4 * P, MADV_COLD)).toBe(0);
    expect(pte(k, p, a).lo & _PAGE_ACCESSED).toBe(_PAGE_ACCESSED);
    expect(pte(k, p, a + 3 * P).lo & _PAGE_ACCESSED).toBe(0);
    expect(k.core.map.flags[pte(k, p, a + 3 * P).pfn] & PG_referenced).toBe(0);
    expect(p.readI32(a + 3 * P)).toBe(3);
    expect(k.check()).toEqual([]);
  });

  it('PAGEOUT with the default swap area writes anonymous pages out (reclaim_pages() -> shrink_folio_list()); a read swaps them back in', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    p.madvise(a, 4 * P, MADV_NOHUGEPAGE);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * P, i + 7);
    expect(p.madvise(a, 4 * P, MADV_PAGEOUT)).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    expect(p.mm.rss.MM_SWAPENTS).toBe(4);
    expect(k.core.vmstat.pswpout).toBe(4);
    expect([0, 1, 2, 3].map((i) => p.readI32(a + i * P))).toEqual([7, 8, 9, 10]);
    expect(k.core.vmstat.pswpin).toBe(4);
    expect(k.check()).toEqual([]);
  });

  it('PAGEOUT keeps anonymous pages without swap: mapped, data intact, back on the LRU', () => {
    const k = machine('madvise', { swapBytes: 0 });
    const p = k.spawn();
    const a = p.mmap(0, 4 * P, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * P, i + 7);
    expect(p.madvise(a, 4 * P, MADV_PAGEOUT)).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES).toBe(4);
    expect([0, 1, 2, 3].map((i) => p.readI32(a + i * P))).toEqual([7, 8, 9, 10]);
    expect(k.check()).toEqual([]);
  });

  it('PAGEOUT of a whole PMD-mapped THP without swap: shrink_folio_list() splits it (THP_SWPOUT_FALLBACK) and keeps the pieces', () => {
    const k = machine('madvise', { swapBytes: 0 });
    const p = k.spawn();
    const raw = p.mmap(0, 3 * PMD_SIZE, RW, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    for (let i = 0; i < HPAGE_PMD_NR; i += 64) p.writeI32(a + i * P, i + 1);
    const v = { ...k.core.vmstat };
    expect(p.madvise(a, PMD_SIZE, MADV_PAGEOUT)).toBe(0);
    expect(k.core.vmstat.thp_swpout_fallback).toBe(v.thp_swpout_fallback + 1);
    expect(k.core.vmstat.thp_split_page).toBe(v.thp_split_page + 1);
    expect(pmdKind(k, p, a)).toBe('table');
    // The split remaps the all-zero pieces to the shared zero page (remap_page() with
    // RMP_USE_SHARED_ZEROPAGE, try_to_map_unused_to_zeropage()): only the 8 written pages stay.
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR / 64);
    expect(ptePfn(k, p, a + P)).toBe(k.core.zeroPfn);
    for (let i = 0; i < HPAGE_PMD_NR; i += 64) expect(p.readI32(a + i * P)).toBe(i + 1);
    // COLD of a whole THP only ages it.
    const b = a + PMD_SIZE;
    p.writeI32(b, 1);
    expect(p.madvise(b, PMD_SIZE, MADV_COLD)).toBe(0);
    expect(pmdKind(k, p, b)).toBe('huge');
    expect(k.check()).toEqual([]);
  });

  it('PAGEOUT keeps a pinned THP whole (folio_maybe_dma_pinned(): keep_locked), nothing split or failed', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    p.writeI32(a, 1);
    const pins = k.core.sched.runSync(getUserPages(k.core, p.mm, a, 1, FOLL_WRITE | FOLL_PIN), 'pin');
    const v = { ...k.core.vmstat };
    expect(p.madvise(a, PMD_SIZE, MADV_PAGEOUT)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(k.core.vmstat.thp_split_page).toBe(v.thp_split_page);
    expect(k.core.vmstat.thp_split_page_failed).toBe(v.thp_split_page_failed);
    putUserPages(k.core, pins as number[], FOLL_PIN);
    expect(k.check()).toEqual([]);
  });

  it('-EINVAL on hugetlb (can_madv_lru_vma())', () => {
    const k = machine();
    const p = k.spawn();
    const h = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    expect(p.madvise(h, PMD_SIZE, MADV_COLD)).toBe(-EINVAL);
    expect(p.madvise(h, PMD_SIZE, MADV_PAGEOUT)).toBe(-EINVAL);
  });
});

describe('MADV_DONTNEED_LOCKED (madvise_dontneed_free_valid_vma())', () => {
  it('zaps like MADV_DONTNEED', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * P, RW, ANON);
    p.writeI32(a, 1);
    expect(p.madvise(a, 2 * P, MADV_DONTNEED_LOCKED)).toBe(0);
    expect(p.readI32(a)).toBe(0);
    const h = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    p.writeI32(h, 1);
    expect(p.madvise(h + P, P, MADV_DONTNEED_LOCKED)).toBe(-EINVAL);
    expect(p.madvise(h, PMD_SIZE, MADV_DONTNEED_LOCKED)).toBe(0);
    expect(p.readI32(h)).toBe(0);
    expect(k.check()).toEqual([]);
  });
});
