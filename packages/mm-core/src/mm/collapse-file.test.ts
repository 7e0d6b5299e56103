/**
 * Huge tmpfs and shmem collapse (mm/shmem.c, mm/khugepaged.c, mm/memory.c v6.19):
 * shmem_huge_global_enabled() / shmem_allowable_huge_orders(), shmem_get_folio_gfp()'s PMD
 * allocation, do_set_pmd() in finish_fault(), hpage_collapse_scan_file(), collapse_file(),
 * retract_page_tables(), collapse_pte_mapped_thp(), MADV_COLLAPSE and khugepaged on shmem, and
 * the split, truncation, munmap and fork of a PMD-mapped shmem THP. The invariant checker runs
 * after every syscall (machine()).
 */
import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  HPAGE_PMD_NR,
  MADV_COLLAPSE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_SHARED,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import { smaps } from '../proc.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { khugepagedSettings } from './khugepaged-state.js';
import { shmemHugeGlobalEnabled, shmemVmaAllowableOrders } from './shmem-huge.js';
import { thpSysfsState } from './thp-state.js';
import { VM_HUGEPAGE } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const P = PAGE_SIZE;
const PMD_BIT = 1 << 9;

function setShmemEnabled(p: Process, v: string): void {
  const fd = p.open('/sys/kernel/mm/transparent_hugepage/shmem_enabled', O_RDWR);
  const b = new TextEncoder().encode(v);
  expect(p.pwrite(fd, b, b.length, 0)).toBe(b.length);
  p.close(fd);
}

/** A memfd of `n` PMDs mapped MAP_SHARED at a PMD-aligned address. */
function memfdMap(p: Process, n: number): { fd: number; a: number } {
  const fd = p.memfdCreate('t', 0);
  expect(fd).toBeGreaterThanOrEqual(0);
  expect(p.ftruncate(fd, n * PMD_SIZE)).toBe(0);
  const hint = Math.ceil(p.mmap(0, (n + 1) * PMD_SIZE, RW, MAP_SHARED, fd, 0) / PMD_SIZE) * PMD_SIZE;
  p.munmap(hint - PMD_SIZE, (n + 2) * PMD_SIZE);
  const a = p.mmap(hint, n * PMD_SIZE, RW, MAP_SHARED | 0x10 /* MAP_FIXED */, fd, 0);
  expect(a).toBe(hint);
  return { fd, a };
}

function fill(p: Process, a: number, pages: number): void {
  for (let i = 0; i < pages; i++) p.writeI32(a + i * P, 0x1000 + i);
}

function shmemPmdMapped(k: Kernel, p: Process, a: number): number {
  const e = smaps(k.core, p.mm).find((s) => s.start <= a && a < s.end);
  return e ? e.shmemPmdMapped : -1;
}

describe('shmem_huge_global_enabled() / shmem_allowable_huge_orders() (mm/shmem.c)', () => {
  it('"deny" forbids, a forced collapse or "force" allows, else the mount: always, advise with VM_HUGEPAGE, within_size', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.memfdCreate('m', 0);
    const inode = p.fds.get(fd)?.inode;
    if (!inode) throw new Error('no inode');
    const st = thpSysfsState(k.core);
    // shm_mnt's huge= follows shmem_enabled (shmem_enabled_store()).
    setShmemEnabled(p, 'advise');
    expect(st.shmMntHuge).toBe('advise');
    expect(shmemHugeGlobalEnabled(k.core, inode, 0, 0, false, 0)).toBe(0);
    expect(shmemHugeGlobalEnabled(k.core, inode, 0, 0, false, VM_HUGEPAGE)).toBe(PMD_BIT);
    expect(shmemHugeGlobalEnabled(k.core, inode, 0, 0, true, 0)).toBe(PMD_BIT);
    setShmemEnabled(p, 'deny');
    expect(st.shmMntHuge).toBe('advise');
    expect(shmemHugeGlobalEnabled(k.core, inode, 0, 0, true, 0)).toBe(0);
    setShmemEnabled(p, 'force');
    expect(shmemHugeGlobalEnabled(k.core, inode, 0, 0, false, 0)).toBe(PMD_BIT);
    setShmemEnabled(p, 'within_size');
    inode.size = PMD_SIZE - P;
    expect(shmemHugeGlobalEnabled(k.core, inode, 0, 0, false, 0)).toBe(0);
    inode.size = PMD_SIZE;
    expect(shmemHugeGlobalEnabled(k.core, inode, 0, 0, false, 0)).toBe(PMD_BIT);
  });

  it('thp_vma_allowable_order() for a shmem VMA: MADV_NOHUGEPAGE refuses even a forced collapse', () => {
    const k = machine();
    const p = k.spawn();
    setShmemEnabled(p, 'never');
    const { a } = memfdMap(p, 1);
    const vma = p.mm.findVma(a);
    if (!vma) throw new Error('no vma');
    expect(shmemVmaAllowableOrders(k.core, vma, vma.flags, false, PMD_BIT)).toBe(0);
    expect(shmemVmaAllowableOrders(k.core, vma, vma.flags, true, PMD_BIT)).toBe(PMD_BIT);
    expect(p.madvise(a, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
    expect(shmemVmaAllowableOrders(k.core, vma, vma.flags, true, PMD_BIT)).toBe(0);
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(-EINVAL);
  });
});

describe('shmem_get_folio_gfp() huge allocation and do_set_pmd() (finish_fault())', () => {
  it('shmem_enabled=always: a fault allocates a PMD-sized folio (THP_FILE_ALLOC) and maps it by a PMD (THP_FILE_MAPPED)', () => {
    const k = machine();
    const p = k.spawn();
    setShmemEnabled(p, 'always');
    const { a } = memfdMap(p, 1);
    p.writeI32(a + 5 * P, 42);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(k.core.vmstat.thp_file_alloc).toBe(1);
    expect(k.core.vmstat.thp_file_mapped).toBe(1);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(HPAGE_PMD_NR);
    expect(k.core.vmstat.nr_shmem_pmdmapped).toBe(HPAGE_PMD_NR);
    expect(shmemPmdMapped(k, p, a)).toBe(PMD_SIZE);
    expect(p.readI32(a + 5 * P)).toBe(42);
  });

  it('do_set_pmd() refuses a VM_NOHUGEPAGE VMA: the huge folio is mapped by PTEs, the whole folio at once', () => {
    const k = machine();
    const p = k.spawn();
    setShmemEnabled(p, 'force');
    const { fd, a } = memfdMap(p, 1);
    // write(2) allocates the huge folio ("force"); a VM_NOHUGEPAGE VMA would not allocate one.
    expect(p.pwrite(fd, new Uint8Array([1, 2, 3, 4]), 4, 0)).toBe(4);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(HPAGE_PMD_NR);
    expect(p.madvise(a, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
    p.writeI32(a + 8 * P, 7);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(shmemPmdMapped(k, p, a)).toBe(0);
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(HPAGE_PMD_NR);
    expect(p.readI32(a) & 0xff).toBe(1);
  });

  it('a PMD-mapped shmem THP: MADV_NOHUGEPAGE on one page splits the VMA and zaps the PMD (__split_huge_pmd_locked() of a file PMD); data stays', () => {
    const k = machine();
    const p = k.spawn();
    setShmemEnabled(p, 'always');
    const { a } = memfdMap(p, 1);
    fill(p, a, HPAGE_PMD_NR);
    expect(pmdKind(k, p, a)).toBe('huge');
    const splits = k.core.vmstat.thp_split_pmd;
    expect(p.madvise(a, P, MADV_NOHUGEPAGE)).toBe(0);
    expect(k.core.vmstat.thp_split_pmd).toBe(splits + 1);
    expect(pmdKind(k, p, a)).toBe('none');
    expect(shmemPmdMapped(k, p, a)).toBe(0);
    for (let i = 0; i < HPAGE_PMD_NR; i += 37) expect(p.readI32(a + i * P)).toBe(0x1000 + i);
  });

  it('fork() does not copy a shmem PMD ("can be re-filled on fault"); both see the same data; munmap and ftruncate(0) free the THP', () => {
    const k = machine();
    const p = k.spawn();
    setShmemEnabled(p, 'always');
    const { fd, a } = memfdMap(p, 1);
    fill(p, a, 4);
    const c = k.task(p.fork());
    if (!c) throw new Error('no child');
    expect(pmdKind(k, c, a)).toBe('none');
    expect(c.readI32(a + 3 * P)).toBe(0x1003);
    c.writeI32(a, 99);
    expect(p.readI32(a)).toBe(99);
    c.exit(0);
    p.waitpid(c.pid);
    expect(p.munmap(a, PMD_SIZE)).toBe(0);
    expect(k.core.vmstat.nr_shmem_pmdmapped).toBe(0);
    expect(p.ftruncate(fd, 0)).toBe(0);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(0);
    p.close(fd);
  });
});

describe('collapse_file() and collapse_pte_mapped_thp() (mm/khugepaged.c)', () => {
  it('MADV_COLLAPSE: small page-cache folios become one PMD-sized folio (holes zeroed), mapped by a PMD; again is 0 (SCAN_PMD_MAPPED)', () => {
    const k = machine();
    const p = k.spawn();
    setShmemEnabled(p, 'never');
    const { a } = memfdMap(p, 2);
    fill(p, a, 3);
    fill(p, a + PMD_SIZE, HPAGE_PMD_NR);
    expect(k.core.vmstat.nr_shmem).toBe(3 + HPAGE_PMD_NR);
    expect(p.madvise(a, 2 * PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge');
    expect(k.core.vmstat.thp_collapse_alloc).toBe(2);
    expect(k.core.vmstat.nr_shmem).toBe(2 * HPAGE_PMD_NR);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(2 * HPAGE_PMD_NR);
    expect(p.readI32(a + 2 * P)).toBe(0x1002);
    expect(p.readI32(a + 100 * P)).toBe(0);
    expect(p.readI32(a + PMD_SIZE + 511 * P)).toBe(0x1000 + 511);
    expect(p.madvise(a, 2 * PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(k.core.vmstat.thp_collapse_alloc).toBe(2);
  });

  it('khugepaged collapses and retracts the page table, leaving the PMD none (no install_pmd); the next fault maps the THP by a PMD', () => {
    const k = machine();
    const p = k.spawn();
    setShmemEnabled(p, 'advise');
    khugepagedSettings(k.core).maxPtesNone = HPAGE_PMD_NR - 1;
    const { a } = memfdMap(p, 1);
    fill(p, a, 8);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    const pass = k.khugepagedScan();
    expect(pass.collapsed).toBe(1);
    expect(pmdKind(k, p, a)).toBe('none');
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(HPAGE_PMD_NR);
    // A second pass finds the PMD-sized folio (SCAN_PTE_MAPPED_HUGEPAGE) and still installs nothing.
    k.khugepagedScan();
    expect(pmdKind(k, p, a)).toBe('none');
    expect(p.readI32(a + 7 * P)).toBe(0x1007);
    expect(pmdKind(k, p, a)).toBe('huge');
  });

  it('khugepaged obeys max_ptes_none for files: fewer than HPAGE_PMD_NR - max_ptes_none pages present is SCAN_EXCEED_NONE_PTE', () => {
    const k = machine();
    const p = k.spawn();
    setShmemEnabled(p, 'advise');
    khugepagedSettings(k.core).maxPtesNone = HPAGE_PMD_NR / 2;
    const { a } = memfdMap(p, 1);
    fill(p, a, HPAGE_PMD_NR / 2 - 1);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    const before = k.core.vmstat.thp_scan_exceed_none_pte;
    expect(k.khugepagedScan().collapsed).toBe(0);
    expect(k.core.vmstat.thp_scan_exceed_none_pte).toBe(before + 1);
    fill(p, a, HPAGE_PMD_NR / 2);
    expect(k.khugepagedScan().collapsed).toBe(1);
  });

  it('collapse_file() of a range with no page at all is SCAN_TRUNCATED: MADV_COLLAPSE -EINVAL, nothing allocated kept', () => {
    const k = machine();
    const p = k.spawn();
    const { a } = memfdMap(p, 1);
    const free = k.core.vmstat.nr_free_pages;
    expect(p.madvise(a, PMD_SIZE, MADV_COLLAPSE)).toBe(-EINVAL);
    expect(k.core.vmstat.thp_collapse_alloc).toBe(1);
    expect(k.core.vmstat.nr_free_pages).toBe(free);
    expect(k.core.vmstat.nr_shmem).toBe(0);
  });
});

describe('memfd_create(2) (mm/memfd.c)', () => {
  it('a shmem memfd is a file of shm_mnt (its huge pages follow shmem_enabled), a hugetlb one is not; unknown flags -EINVAL', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.memfdCreate('x', 0x0001);
    expect(p.fds.get(fd)?.inode?.sbHuge).toBe('shm_mnt');
    expect(p.memfdCreate('x', 0x0100)).toBe(-EINVAL);
    expect(p.memfdCreate('y'.repeat(250), 0)).toBe(-EINVAL);
    expect(k.core.vmstat.nr_shmem).toBe(0);
  });
});
