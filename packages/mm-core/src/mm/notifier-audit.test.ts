/**
 * One test per row of the README's mmu-notifier audit table: each path's invalidations, as a
 * recording (hlist) notifier sees them, compared with the kernel's event, range and pairing.
 */
import { describe, expect, it } from 'vitest';
import {
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_REMOVE,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_CREAT,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { makeDeviceExclusive, releaseDeviceExclusive } from './gup.js';
import { ULONG_MAX } from './notifier.js';
import { NotifierRecorder } from './notifier-record.js';

const P = PAGE_SIZE;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** A recorder on p's mm, cleared; `got()` gives [event, start - base, end - base] triples. */
function record(p: Process, base: number) {
  const r = new NotifierRecorder();
  r.attach(p.mm);
  return {
    r,
    got: () => {
      expect(r.unpaired()).toEqual([]);
      return r.events.map((e) => [e.name, e.start - base, e.end === ULONG_MAX ? 'ULONG_MAX' : e.end - base]);
    },
  };
}

/** A PMD-aligned MADV_HUGEPAGE region of n PMDs, each faulted in as a THP. */
function thp(k: Kernel, p: Process, n = 1): number {
  const a = p.mmap(0, n * PMD_SIZE, RW, ANON);
  expect(a % PMD_SIZE).toBe(0);
  expect(p.madvise(a, n * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  for (let i = 0; i < n; i++) p.writeI32(a + i * PMD_SIZE, i + 1);
  expect(pmdKind(k, p, a)).toBe('huge');
  return a;
}

function pages(p: Process, n: number, prot = RW): number {
  const a = p.mmap(0, n * P, prot, ANON);
  for (let i = 0; i < n; i++) if (prot & PROT_WRITE) p.writeI32(a + i * P, i + 1);
  return a;
}

describe('mmu-notifier audit: munmap, mmap MAP_FIXED, mremap', () => {
  it('munmap: one MMU_NOTIFY_UNMAP over the page-aligned request (unmap_vmas()); nothing over a hole', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    const { got } = record(p, a);
    expect(p.munmap(a + P, 2 * P - 100)).toBe(0);
    expect(p.munmap(a + P, 2 * P)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_UNMAP', P, 3 * P]]);
    expect(k.check()).toEqual([]);
  });

  it('munmap of part of a THP: CLEAR of the PMD (VMA split) then UNMAP of the request', () => {
    const k = machine();
    const p = k.spawn();
    const a = thp(k, p);
    const { got } = record(p, a);
    expect(p.munmap(a + P, P)).toBe(0);
    expect(got()).toEqual([
      ['MMU_NOTIFY_CLEAR', 0, PMD_SIZE],
      ['MMU_NOTIFY_UNMAP', P, 2 * P],
    ]);
    expect(k.check()).toEqual([]);
  });

  it('mmap MAP_FIXED over a mapping: UNMAP of the replaced range', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    const { got } = record(p, a);
    expect(p.mmap(a + P, P, RW, ANON | MAP_FIXED)).toBe(a + P);
    expect(got()).toEqual([['MMU_NOTIFY_UNMAP', P, 2 * P]]);
  });

  it('mremap shrink: UNMAP of the tail; grow in place: nothing', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    const { got, r } = record(p, a);
    expect(p.mremap(a, 4 * P, 2 * P, 0)).toBe(a);
    expect(got()).toEqual([['MMU_NOTIFY_UNMAP', 2 * P, 4 * P]]);
    r.clear();
    expect(p.mremap(a, 2 * P, 3 * P, 0)).toBe(a);
    expect(got()).toEqual([]);
  });

  it('mremap move: UNMAP of the old range by move_page_tables(), then again by the old VMA unmap', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    // Something right after the mapping, so that growing has to move.
    expect(p.mmap(a + 4 * P, P, RW, ANON | MAP_FIXED)).toBe(a + 4 * P);
    const { r } = record(p, a);
    const b = p.mremap(a, 4 * P, 8 * P, MREMAP_MAYMOVE);
    expect(b).not.toBe(a);
    expect(r.ranges()).toEqual([
      ['MMU_NOTIFY_UNMAP', a, a + 4 * P],
      ['MMU_NOTIFY_UNMAP', a, a + 4 * P],
    ]);
    expect(p.readI32(b + 3 * P)).toBe(4);
    expect(k.check()).toEqual([]);
  });

  it('mremap MREMAP_FIXED onto a mapping: UNMAP of the new range first, then the old twice', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 2);
    const t = pages(p, 4);
    const { r } = record(p, 0);
    expect(p.mremap(a, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, t + P)).toBe(t + P);
    expect(r.ranges()).toEqual([
      ['MMU_NOTIFY_UNMAP', t + P, t + 3 * P],
      ['MMU_NOTIFY_UNMAP', a, a + 2 * P],
      ['MMU_NOTIFY_UNMAP', a, a + 2 * P],
    ]);
  });

  it('mremap MREMAP_DONTUNMAP: only move_page_tables() UNMAP of the old range', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 2);
    const { r } = record(p, 0);
    const b = p.mremap(a, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    expect(b).toBeGreaterThan(0);
    expect(r.ranges()).toEqual([['MMU_NOTIFY_UNMAP', a, a + 2 * P]]);
  });

  it('mremap of an unaligned part of a THP: CLEAR of the PMD inside the move', () => {
    const k = machine();
    const p = k.spawn();
    const a = thp(k, p);
    const { r } = record(p, 0);
    const b = p.mremap(a + P, P, 2 * P, MREMAP_MAYMOVE);
    expect(b).toBeGreaterThan(0);
    const names = r.ranges();
    // move_page_tables() starts its UNMAP range first; split_huge_pmd() in its loop then
    // sends the CLEAR of the whole PMD (nothing splits the source before the move).
    expect(names.slice(0, 2)).toEqual([
      ['MMU_NOTIFY_UNMAP', a + P, a + 2 * P],
      ['MMU_NOTIFY_CLEAR', a, a + PMD_SIZE],
    ]);
    expect(names.filter((e) => e[0] === 'MMU_NOTIFY_UNMAP')).toEqual([
      ['MMU_NOTIFY_UNMAP', a + P, a + 2 * P],
      ['MMU_NOTIFY_UNMAP', a + P, a + 2 * P],
    ]);
    expect(p.readI32(a)).toBe(1);
  });
});

describe('mmu-notifier audit: mprotect', () => {
  it('PROTECTION_VMA over each changed VMA part; nothing when the flags do not change', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    const { got, r } = record(p, a);
    expect(p.mprotect(a + P, 2 * P, PROT_READ)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_PROTECTION_VMA', P, 3 * P]]);
    r.clear();
    // [a, a+P) is unchanged (rw), [a+P, a+3P) becomes rw again: one range, that VMA only.
    expect(p.mprotect(a, 3 * P, RW)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_PROTECTION_VMA', P, 3 * P]]);
    r.clear();
    expect(p.mprotect(a, 4 * P, RW)).toBe(0);
    expect(got()).toEqual([]);
  });

  it('change_pud_range() starts the range lazily: nothing where no PUD entry exists', () => {
    const k = machine();
    const p = k.spawn();
    const far = p.mmap(0x200000000000, 4 * P, RW, ANON);
    expect(far).toBe(0x200000000000);
    const { got } = record(p, far);
    expect(p.mprotect(far, 4 * P, PROT_READ)).toBe(0);
    expect(got()).toEqual([]);
    p.readI32(far);
    expect(p.mprotect(far, 4 * P, RW)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_PROTECTION_VMA', 0, 4 * P]]);
  });

  it('mprotect of part of a THP: PROTECTION_VMA with the split (CLEAR of the PMD) inside it', () => {
    const k = machine();
    const p = k.spawn();
    const a = thp(k, p);
    const { got } = record(p, a);
    expect(p.mprotect(a, P, PROT_READ)).toBe(0);
    const ev = got();
    // The VMA split (vma_adjust_trans_huge()) already split the PMD: CLEAR first.
    expect(ev[0]).toEqual(['MMU_NOTIFY_CLEAR', 0, PMD_SIZE]);
    expect(ev.at(-1)).toEqual(['MMU_NOTIFY_PROTECTION_VMA', 0, P]);
  });
});

describe('mmu-notifier audit: madvise', () => {
  it('MADV_DONTNEED: one CLEAR per VMA part (zap_page_range_single_batched())', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    expect(p.mprotect(a + 2 * P, 2 * P, PROT_READ)).toBe(0);
    const { got } = record(p, a);
    expect(p.madvise(a + P, 2 * P, MADV_DONTNEED)).toBe(0);
    expect(got()).toEqual([
      ['MMU_NOTIFY_CLEAR', P, 2 * P],
      ['MMU_NOTIFY_CLEAR', 2 * P, 3 * P],
    ]);
  });

  it('MADV_DONTNEED of part of a THP: CLEAR of the range with the PMD split nested in it', () => {
    const k = machine();
    const p = k.spawn();
    const a = thp(k, p);
    const { r } = record(p, a);
    expect(p.madvise(a, P, MADV_DONTNEED)).toBe(0);
    expect(r.events.map((e) => [e.name, e.start - a, e.end - a, e.depth])).toEqual([
      ['MMU_NOTIFY_CLEAR', 0, P, 0],
      ['MMU_NOTIFY_CLEAR', 0, PMD_SIZE, 1],
    ]);
  });

  it('MADV_DONTNEED on hugetlb: CLEAR of the range with its end aligned down to the huge page', () => {
    const k = machine();
    const p = k.spawn();
    const h = p.mmap(0, 2 * PMD_SIZE, RW, ANON | MAP_HUGETLB);
    p.writeI32(h, 1);
    p.writeI32(h + PMD_SIZE, 2);
    const { r } = record(p, 0);
    expect(p.madvise(h, PMD_SIZE + PMD_SIZE / 2, MADV_DONTNEED)).toBe(0);
    expect(r.ranges()).toEqual([['MMU_NOTIFY_CLEAR', h, h + PMD_SIZE]]);
    r.clear();
    // Aligned down to nothing: madvise_dontneed_free() returns 0 before zapping.
    expect(p.madvise(h + PMD_SIZE, PMD_SIZE / 2, MADV_DONTNEED)).toBe(0);
    expect(r.ranges()).toEqual([]);
  });

  it('MADV_FREE: one CLEAR per VMA part (madvise_free_single_vma())', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    expect(p.mprotect(a + 2 * P, 2 * P, PROT_READ)).toBe(0);
    const { got } = record(p, a);
    expect(p.madvise(a, 4 * P, MADV_FREE)).toBe(0);
    expect(got()).toEqual([
      ['MMU_NOTIFY_CLEAR', 0, 2 * P],
      ['MMU_NOTIFY_CLEAR', 2 * P, 4 * P],
    ]);
  });

  it('MADV_COLD / MADV_PAGEOUT of small pages: no invalidation (young bits only, nothing reclaimed without swap)', () => {
    const k = machine('madvise', { swapBytes: 0 });
    const p = k.spawn();
    const a = pages(p, 4);
    const { got } = record(p, a);
    expect(p.madvise(a, 4 * P, MADV_COLD)).toBe(0);
    expect(p.madvise(a, 4 * P, MADV_PAGEOUT)).toBe(0);
    expect(got()).toEqual([]);
  });

  it('MADV_COLD of part of a THP: the folio split unmaps it under CLEAR of its range (try_to_migrate_one())', () => {
    const k = machine();
    const p = k.spawn();
    const a = thp(k, p);
    const { got } = record(p, a);
    expect(p.madvise(a, P, MADV_COLD)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_CLEAR', 0, PMD_SIZE]]);
    expect(pmdKind(k, p, a)).toBe('table');
  });

  it('MADV_PAGEOUT of a whole THP without swap: shrink_folio_list() splits it, CLEAR of its range (try_to_migrate_one())', () => {
    const k = machine();
    const p = k.spawn();
    const a = thp(k, p);
    const { got } = record(p, a);
    expect(p.madvise(a, PMD_SIZE, MADV_PAGEOUT)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_CLEAR', 0, PMD_SIZE]]);
    expect(pmdKind(k, p, a)).toBe('table');
  });

  it('MADV_REMOVE: CLEAR per mapping of the hole (unmap_mapping_range() -> zap_page_range_single())', () => {
    const k = machine();
    const p = k.spawn();
    const s = p.mmap(0, 8 * P, RW, MAP_SHARED | MAP_ANONYMOUS);
    for (let i = 0; i < 8; i++) p.writeI32(s + i * P, i + 1);
    const { got } = record(p, s);
    expect(p.madvise(s + 2 * P, 3 * P, MADV_REMOVE)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_CLEAR', 2 * P, 5 * P]]);
  });

  it('MADV_POPULATE_WRITE: the faults send what they send (wp_page_copy(): CLEAR of a COWed page); POPULATE_READ of empty PTEs nothing', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 2);
    const e = p.mmap(0, 2 * P, RW, ANON);
    k.task(p.fork());
    const { got } = record(p, a);
    expect(p.madvise(e, 2 * P, MADV_POPULATE_READ)).toBe(0);
    expect(p.madvise(a, P, MADV_POPULATE_WRITE)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_CLEAR', 0, P]]);
  });

  it('MADV_DONTFORK / WIPEONFORK and fork: no PROTECTION_PAGE for VMAs whose pages are not copied', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    expect(p.madvise(a, 2 * P, MADV_WIPEONFORK)).toBe(0);
    expect(p.madvise(a + 2 * P, 2 * P, MADV_DONTFORK)).toBe(0);
    const { got } = record(p, a);
    expect(p.fork()).toBeGreaterThan(0);
    expect(got()).toEqual([]);
  });

  it('khugepaged collapse: CLEAR of the PMD (collapse_huge_page())', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    expect(a % PMD_SIZE).toBe(0);
    p.writeI32(a, 7);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    const { got } = record(p, a);
    expect(k.khugepagedScan().collapsed).toBe(1);
    expect(got()).toEqual([['MMU_NOTIFY_CLEAR', 0, PMD_SIZE]]);
  });

  it('MADV_NORMAL / HUGEPAGE / NOHUGEPAGE change VMA flags only: nothing', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    const { got } = record(p, a);
    for (const adv of [MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_NORMAL]) expect(p.madvise(a, 2 * P, adv)).toBe(0);
    expect(got()).toEqual([]);
  });

  it('MADV_COLLAPSE: CLEAR of the PMD (collapse_huge_page())', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    expect(a % PMD_SIZE).toBe(0);
    p.writeI32(a, 7);
    const { got } = record(p, a);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_CLEAR', 0, PMD_SIZE]]);
    expect(pmdKind(k, p, a)).toBe('huge');
  });
});

describe('mmu-notifier audit: fork and COW', () => {
  it("fork: PROTECTION_PAGE over each COW VMA with an anon_vma (copy_page_range()), on the parent's mm", () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 4);
    // PROT_READ: a separate VMA (an RW one would merge with `a`, vma_merge_new_range()).
    const untouched = p.mmap(0, 4 * P, PROT_READ, ANON);
    const shared = p.mmap(0, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.writeI32(shared, 1);
    const { r } = record(p, 0);
    const c = k.task(p.fork())!;
    expect(r.ranges()).toEqual([['MMU_NOTIFY_PROTECTION_PAGE', a, a + 4 * P]]);
    expect(untouched).toBeGreaterThan(0);
    expect(c.readI32(a)).toBe(1);
  });

  it('fork of a private hugetlb mapping: CLEAR of the VMA (copy_hugetlb_page_range())', () => {
    const k = machine();
    const p = k.spawn();
    const h = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    expect(h).toBeGreaterThan(0);
    p.writeI32(h, 3);
    const { r } = record(p, 0);
    const c = k.task(p.fork())!;
    expect(r.ranges()).toEqual([['MMU_NOTIFY_CLEAR', h, h + PMD_SIZE]]);
    expect(c.readI32(h)).toBe(3);
  });

  it('COW break of a shared private hugetlb page: CLEAR of the huge page (hugetlb_wp()); reuse once mapped alone: nothing', () => {
    const k = machine();
    const p = k.spawn();
    const h = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    p.writeI32(h, 3);
    const c = k.task(p.fork())!;
    const { r } = record(p, 0);
    p.writeI32(h, 4);
    expect(r.ranges()).toEqual([['MMU_NOTIFY_CLEAR', h, h + PMD_SIZE]]);
    expect(c.readI32(h)).toBe(3);
    const rc = record(c, 0);
    c.writeI32(h, 5);
    expect(rc.r.ranges()).toEqual([]);
    expect(k.check()).toEqual([]);
  });

  it('COW break: CLEAR of the page (wp_page_copy()); reuse of an exclusive page: nothing', () => {
    const k = machine();
    const p = k.spawn();
    const a = pages(p, 2);
    const c = k.task(p.fork())!;
    const { got, r } = record(p, a);
    const child = record(c, a);
    p.writeI32(a + P, 9);
    expect(got()).toEqual([['MMU_NOTIFY_CLEAR', P, 2 * P]]);
    expect(child.got()).toEqual([]);
    r.clear();
    // The child is now the only mapper of the old page: its write reuses it, no invalidation.
    c.writeI32(a + P, 10);
    expect(child.got()).toEqual([]);
    expect(got()).toEqual([]);
  });

  it('COW break of a THP: CLEAR of the PMD (the split) then CLEAR of the page', () => {
    const k = machine();
    const p = k.spawn();
    const a = thp(k, p);
    k.task(p.fork());
    const { got } = record(p, a);
    p.writeI32(a + 5 * P, 1);
    expect(got()).toEqual([
      ['MMU_NOTIFY_CLEAR', 0, PMD_SIZE],
      ['MMU_NOTIFY_CLEAR', 5 * P, 6 * P],
    ]);
  });

  it('write to the huge zero page: CLEAR of the PMD (do_huge_zero_wp_pmd())', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(p.readI32(a)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge-zero');
    const { got } = record(p, a);
    p.writeI32(a, 1);
    expect(got()).toEqual([['MMU_NOTIFY_CLEAR', 0, PMD_SIZE]]);
  });
});

describe('mmu-notifier audit: exit, truncate, device-exclusive', () => {
  it('exit: RELEASE of [0, ULONG_MAX) first (mmu_notifier_release()), then UNMAP of [0, ULONG_MAX)', () => {
    const k = machine();
    const p = k.spawn();
    pages(p, 2);
    const { got } = record(p, 0);
    p.exit(0);
    expect(got()).toEqual([
      ['MMU_NOTIFY_RELEASE', 0, 'ULONG_MAX'],
      ['MMU_NOTIFY_UNMAP', 0, 'ULONG_MAX'],
    ]);
  });

  it('ftruncate of a mapped tmpfs file: CLEAR of each VMA part, before and after the truncate', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/t', O_RDWR | O_CREAT);
    expect(p.ftruncate(fd, 4 * P)).toBe(0);
    const s = p.mmap(0, 4 * P, RW, MAP_SHARED, fd);
    p.writeI32(s, 1);
    const { got, r } = record(p, s);
    expect(p.ftruncate(fd, P + 1)).toBe(0);
    expect(got()).toEqual([
      ['MMU_NOTIFY_CLEAR', 2 * P, 4 * P],
      ['MMU_NOTIFY_CLEAR', 2 * P, 4 * P],
    ]);
    r.clear();
    // Growing, or shrinking within the last page: no unmap.
    expect(p.ftruncate(fd, 2 * P)).toBe(0);
    expect(p.ftruncate(fd, P + 2)).toBe(0);
    expect(got()).toEqual([]);
  });

  it('make_device_exclusive(): CLEAR of the PMD (FOLL_SPLIT_PMD), EXCLUSIVE of the page with the owner; the CPU access that restores it: CLEAR', () => {
    const k = machine();
    const p = k.spawn();
    const a = thp(k, p);
    const owner = { name: 'gpu' };
    const { r, got } = record(p, a);
    const pfn = k.core.sched.runSync(
      (function* () {
        const v = yield* makeDeviceExclusive(k.core, p.mm, a + 3 * P, owner);
        return v;
      })(),
      'make_device_exclusive',
    );
    expect(pfn).toBeGreaterThan(0);
    releaseDeviceExclusive(k.core, pfn);
    expect(got()).toEqual([
      ['MMU_NOTIFY_CLEAR', 0, PMD_SIZE],
      ['MMU_NOTIFY_EXCLUSIVE', 3 * P, 4 * P],
    ]);
    expect(r.events[1].owner).toBe(owner);
    r.clear();
    expect(p.readI32(a + 3 * P)).toBe(0);
    expect(got()).toEqual([['MMU_NOTIFY_CLEAR', 3 * P, 4 * P]]);
    expect(r.events[0].owner).toBeNull();
  });
});
