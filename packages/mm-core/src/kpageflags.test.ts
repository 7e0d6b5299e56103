import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { RAM_START_PFN } from './core.js';
import {
  KPF_ANON,
  KPF_BUDDY,
  KPF_COMPOUND_HEAD,
  KPF_COMPOUND_TAIL,
  KPF_LRU,
  KPF_MMAP,
  KPF_NOPAGE,
  KPF_PGTABLE,
  KPF_THP,
  KPF_ZERO_PAGE,
  stablePageFlags,
} from './kpageflags.js';
import { PG_buddy } from './phys/memmap.js';
import type { Process } from './process.js';
import { machine } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const PFN_MASK = (1n << 55n) - 1n;
const bit = (b: number) => 1n << BigInt(b);

/** pagemap_get_pfn() of vm_util.c: the pfn /proc/self/pagemap reports for addr. */
function pfnOf(p: Process, addr: number): number {
  const fd = p.open('/proc/self/pagemap', O_RDONLY);
  const buf = new Uint8Array(8);
  expect(p.pread(fd, buf, 8, (addr / PAGE_SIZE) * 8)).toBe(8);
  p.close(fd);
  return Number(new DataView(buf.buffer).getBigUint64(0, true) & PFN_MASK);
}

/** pageflags_get() of vm_util.c: one /proc/kpageflags entry, read through the file. */
function kpageflags(p: Process, pfn: number): bigint {
  const fd = p.open('/proc/kpageflags', O_RDONLY);
  const buf = new Uint8Array(8);
  expect(p.pread(fd, buf, 8, pfn * 8)).toBe(8);
  p.close(fd);
  return new DataView(buf.buffer).getBigUint64(0, true);
}

describe('/proc/kpageflags (stable_page_flags(), fs/proc/page.c)', () => {
  it('a PMD-mapped THP: head and tails with KPF_THP, anonymous, mapped, on the LRU', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(a / PMD_SIZE) * PMD_SIZE;
    p.madvise(h, PMD_SIZE, MADV_HUGEPAGE);
    p.writeI32(h, 7);
    const pfn = pfnOf(p, h);
    const head = kpageflags(p, pfn);
    for (const b of [KPF_THP, KPF_COMPOUND_HEAD, KPF_ANON, KPF_MMAP, KPF_LRU])
      expect(head & bit(b)).toBe(bit(b));
    expect(head & bit(KPF_COMPOUND_TAIL)).toBe(0n);
    const tail = kpageflags(p, pfnOf(p, h + 5 * PAGE_SIZE));
    expect(tail & (bit(KPF_THP) | bit(KPF_COMPOUND_TAIL))).toBe(bit(KPF_THP) | bit(KPF_COMPOUND_TAIL));
    expect(tail & bit(KPF_COMPOUND_HEAD)).toBe(0n);
    // The page after the folio is not one of its tails.
    expect(kpageflags(p, pfn + 512) & bit(KPF_COMPOUND_TAIL)).toBe(0n);
  });

  it('a base page has neither compound bit nor KPF_THP; the zero page is KPF_ZERO_PAGE', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.madvise(a, 2 * PAGE_SIZE, MADV_NOHUGEPAGE);
    p.writeI32(a, 1);
    p.readI32(a + PAGE_SIZE);
    const f = kpageflags(p, pfnOf(p, a));
    expect(f & (bit(KPF_THP) | bit(KPF_COMPOUND_HEAD) | bit(KPF_COMPOUND_TAIL))).toBe(0n);
    expect(f & (bit(KPF_ANON) | bit(KPF_MMAP))).toBe(bit(KPF_ANON) | bit(KPF_MMAP));
    const z = kpageflags(p, pfnOf(p, a + PAGE_SIZE));
    expect(z & bit(KPF_ZERO_PAGE)).toBe(bit(KPF_ZERO_PAGE));
    expect(z & bit(KPF_ANON)).toBe(0n);
  });

  it('page tables are KPF_PGTABLE; the hole below RAM is KPF_NOPAGE (no online struct page)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 1);
    expect(stablePageFlags(k.core, p.mm.pgd) & bit(KPF_PGTABLE)).toBe(bit(KPF_PGTABLE));
    expect(kpageflags(p, RAM_START_PFN - 1)).toBe(bit(KPF_NOPAGE));
    expect(kpageflags(p, 0)).toBe(bit(KPF_NOPAGE));
  });

  it('free memory: the first page of a free buddy block is KPF_BUDDY, its other pages are not', () => {
    const k = machine();
    const p = k.spawn();
    const m = k.core.map;
    const end = RAM_START_PFN + k.core.ramPages;
    let free = -1;
    for (let pfn = RAM_START_PFN; pfn < end && free < 0; pfn++)
      if (!m.deferred(pfn) && m.flags[pfn] & PG_buddy && m.order[pfn] > 0) free = pfn;
    expect(free).toBeGreaterThan(0);
    expect(kpageflags(p, free) & bit(KPF_BUDDY)).toBe(bit(KPF_BUDDY));
    expect(kpageflags(p, free + 1)).toBe(0n);
    // Memory whose struct pages the model sets up on first use reads as the kernel's free
    // MAX_PAGE_ORDER blocks.
    let deferred = -1;
    for (let pfn = RAM_START_PFN; pfn < end && deferred < 0; pfn += 1024) if (m.deferred(pfn)) deferred = pfn;
    expect(deferred).toBeGreaterThan(0);
    expect(kpageflags(p, deferred)).toBe(bit(KPF_BUDDY));
    expect(kpageflags(p, deferred + 3)).toBe(0n);
  });

  it('reads are in whole entries (-EINVAL otherwise) and end at the last section of RAM', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/proc/kpageflags', O_RDONLY);
    expect(p.pread(fd, new Uint8Array(8), 8, 4)).toBe(-EINVAL);
    expect(p.pread(fd, new Uint8Array(12), 12, 0)).toBe(-EINVAL);
    const end = RAM_START_PFN + k.core.ramPages;
    expect(p.pread(fd, new Uint8Array(16), 16, (end - 1) * 8)).toBe(8);
    expect(p.pread(fd, new Uint8Array(8), 8, end * 8)).toBe(0);
    p.close(fd);
  });
});
