/**
 * khugepaged (mm/khugepaged.c v6.19): registration (khugepaged_enter_vma(), khugepaged_fork(),
 * khugepaged_exit()), the scan (khugepaged_do_scan(), khugepaged_scan_mm_slot(),
 * hpage_collapse_scan_pmd() with cc->is_khugepaged) and its sysfs knobs.
 */
import { describe, expect, it } from 'vitest';
import {
  EACCES,
  EINVAL,
  HPAGE_PMD_NR,
  MADV_COLD,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDONLY,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import type { Process } from '../process.js';
import { RandomStrategy } from '../sched/strategy.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { khugepagedThread } from './khugepaged.js';
import { khugepagedScanState, khugepagedSettings } from './khugepaged-state.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const P = PAGE_SIZE;
const KNOBS = '/sys/kernel/mm/transparent_hugepage/khugepaged';

/** n aligned PMDs faulted with small pages (`pages` written per PMD), then MADV_HUGEPAGE. */
function smallPages(p: Process, n: number, pages: number): number {
  const raw = p.mmap(0, (n + 1) * PMD_SIZE, RW, ANON);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  for (let m = 0; m < n; m++)
    for (let i = 0; i < pages; i++) p.writeI32(a + m * PMD_SIZE + i * P, m * 1000 + i + 1);
  expect(p.madvise(a, n * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  return a;
}

function readKnob(p: Process, name: string): string {
  const fd = p.open(`${KNOBS}/${name}`, O_RDONLY);
  const buf = new Uint8Array(32);
  const n = p.pread(fd, buf, buf.length, 0);
  p.close(fd);
  return new TextDecoder().decode(buf.subarray(0, n));
}

function writeKnob(p: Process, name: string, text: string): number {
  const fd = p.open(`${KNOBS}/${name}`, O_RDWR);
  const bytes = new TextEncoder().encode(text);
  const r = p.pwrite(fd, bytes, bytes.length, 0);
  p.close(fd);
  return r;
}

function registered(k: Kernel, p: Process): boolean {
  return khugepagedScanState(k.core).slots.includes(p.mm);
}

describe('khugepaged registration', () => {
  it('MADV_HUGEPAGE registers the mm (hugepage_madvise() -> khugepaged_enter_vma()); fork registers the child; exit drops it', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    expect(registered(k, p)).toBe(false);
    expect(p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(registered(k, p)).toBe(true);
    const c = k.task(p.fork())!;
    expect(registered(k, c)).toBe(true);
    c.exit(0);
    expect(registered(k, c)).toBe(false);
    expect(registered(k, p)).toBe(true);
  });

  it('a VMA khugepaged may not collapse in does not register (VM_NOHUGEPAGE, too small, THP "never")', () => {
    const k = machine();
    const p = k.spawn();
    const small = p.mmap(0, 8 * P, RW, ANON);
    expect(p.madvise(small, 8 * P, MADV_HUGEPAGE)).toBe(0);
    expect(registered(k, p)).toBe(false);
    const k2 = machine('never');
    const p2 = k2.spawn();
    const a = p2.mmap(0, 2 * PMD_SIZE, RW, ANON);
    expect(p2.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(registered(k2, p2)).toBe(false);
  });

  it('a THP fault registers the mm (do_huge_pmd_anonymous_page() -> khugepaged_enter_vma())', () => {
    const k = machine('always');
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    expect(registered(k, p)).toBe(false);
    p.writeI32(Math.ceil(raw / PMD_SIZE) * PMD_SIZE, 1);
    expect(registered(k, p)).toBe(true);
  });
});

describe('khugepaged scan (khugepaged_do_scan(), hpage_collapse_scan_pmd())', () => {
  it('collapses PTE-mapped anonymous memory with the data; pages_collapsed and full_scans move', () => {
    const k = machine();
    const p = k.spawn();
    const a = smallPages(p, 2, 40);
    expect(pmdKind(k, p, a)).toBe('table');
    const r = k.khugepagedScan();
    expect(r.collapsed).toBe(2);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge');
    for (let i = 0; i < 40; i++) expect(p.readI32(a + PMD_SIZE + i * P)).toBe(1000 + i + 1);
    expect(p.readI32(a + 100 * P)).toBe(0);
    expect(readKnob(p, 'pages_collapsed')).toBe('2\n');
    expect(Number(readKnob(p, 'full_scans'))).toBeGreaterThanOrEqual(1);
    expect(p.mm.rss.MM_ANONPAGES).toBe(2 * HPAGE_PMD_NR);
    expect(k.check()).toEqual([]);
  });

  it('never collapses a PMD without a PTE table (SCAN_NO_PTE_TABLE) or with only none PTEs (512 > max_ptes_none: SCAN_EXCEED_NONE_PTE)', () => {
    // hpage_collapse_scan_pmd(): find_pmd_or_thp_or_none() finds no table; an empty table counts
    // 512 none PTEs, one more than max_ptes_none (511) allows. The khugepaged selftest's
    // collapse_empty ("Do not collapse empty PTE table").
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 4 * PMD_SIZE, RW, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    // PMD 0: never touched, no table. PMD 1: a table emptied by MADV_DONTNEED. PMD 2: one page.
    p.writeI32(a + PMD_SIZE + 3 * P, 1);
    expect(p.madvise(a + PMD_SIZE + 3 * P, P, MADV_DONTNEED)).toBe(0);
    p.writeI32(a + 2 * PMD_SIZE + 5 * P, 5);
    expect(p.madvise(a, 3 * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect([pmdKind(k, p, a), pmdKind(k, p, a + PMD_SIZE), pmdKind(k, p, a + 2 * PMD_SIZE)]).toEqual([
      'none',
      'table',
      'table',
    ]);
    const alloc = k.core.vmstat.thp_collapse_alloc;
    const none = k.core.vmstat.thp_scan_exceed_none_pte;
    const r = k.khugepagedScan();
    expect(r.collapsed).toBe(1);
    expect(k.core.vmstat.thp_collapse_alloc).toBe(alloc + 1);
    expect(k.core.vmstat.thp_scan_exceed_none_pte).toBe(none + 1);
    expect([pmdKind(k, p, a), pmdKind(k, p, a + PMD_SIZE), pmdKind(k, p, a + 2 * PMD_SIZE)]).toEqual([
      'none',
      'table',
      'huge',
    ]);
    expect(p.readI32(a + 2 * PMD_SIZE + 5 * P)).toBe(5);
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    expect(k.check()).toEqual([]);
  });

  it('max_ptes_none: 511 none PTEs are allowed by default; with max_ptes_none 510 the PMD is SCAN_EXCEED_NONE_PTE', () => {
    const k = machine();
    const p = k.spawn();
    const a = smallPages(p, 1, 1);
    expect(writeKnob(p, 'max_ptes_none', '510\n')).toBe(4);
    const v = k.core.vmstat.thp_scan_exceed_none_pte;
    expect(k.khugepagedScan().lastResult).toBe('SCAN_EXCEED_NONE_PTE');
    expect(k.core.vmstat.thp_scan_exceed_none_pte).toBe(v + 1);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(writeKnob(p, 'max_ptes_none', '511')).toBe(3);
    expect(k.khugepagedScan().collapsed).toBe(1);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(p.readI32(a)).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('max_ptes_shared: more than 256 PTEs shared with another mm are SCAN_EXCEED_SHARED_PTE; 256 or fewer collapse', () => {
    const k = machine();
    const p = k.spawn();
    const a = smallPages(p, 2, 300);
    const c = k.task(p.fork())!;
    // In the second PMD the child writes (COW-breaks) 100 of the 300 pages: 200 stay shared.
    for (let i = 0; i < 100; i++) c.writeI32(a + PMD_SIZE + i * P, -i);
    const v = k.core.vmstat.thp_scan_exceed_share_pte;
    const r = k.khugepagedScan();
    expect(k.core.vmstat.thp_scan_exceed_share_pte).toBeGreaterThan(v);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge');
    expect(r.collapsed).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 300; i += 7) {
      expect(p.readI32(a + PMD_SIZE + i * P)).toBe(1000 + i + 1);
      expect(c.readI32(a + PMD_SIZE + i * P)).toBe(i < 100 ? -i | 0 : 1000 + i + 1);
    }
    expect(k.check()).toEqual([]);
  });

  it('a range with no young PTE (after MADV_COLD) is SCAN_LACK_REFERENCED_PAGE', () => {
    const k = machine();
    const p = k.spawn();
    const a = smallPages(p, 1, 20);
    expect(p.madvise(a, PMD_SIZE, MADV_COLD)).toBe(0);
    expect(k.khugepagedScan().lastResult).toBe('SCAN_LACK_REFERENCED_PAGE');
    expect(pmdKind(k, p, a)).toBe('table');
    // A fault maps a young PTE (the model's CPU does not set the accessed bit of a present PTE).
    p.writeI32(a + 100 * P, 5);
    expect(k.khugepagedScan().collapsed).toBe(1);
    expect(p.readI32(a + 19 * P)).toBe(20);
    expect(k.check()).toEqual([]);
  });

  it('pages_to_scan bounds a pass: with 512 one PMD is collapsed per pass, and the cursor resumes there', () => {
    const k = machine();
    const p = k.spawn();
    const a = smallPages(p, 2, 3);
    expect(writeKnob(p, 'pages_to_scan', '512')).toBe(3);
    expect(k.khugepagedScan().collapsed).toBe(1);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('table');
    expect(k.khugepagedScan().collapsed).toBe(1);
    expect(pmdKind(k, p, a + PMD_SIZE)).toBe('huge');
    expect(k.check()).toEqual([]);
  });

  it('VM_NOHUGEPAGE after registration, or THP "madvise" without VM_HUGEPAGE, is skipped', () => {
    const k = machine();
    const p = k.spawn();
    const a = smallPages(p, 1, 5);
    expect(p.madvise(a, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
    expect(registered(k, p)).toBe(true);
    expect(k.khugepagedScan().collapsed).toBe(0);
    expect(pmdKind(k, p, a)).toBe('table');
  });

  it('races with faults, MADV_DONTNEED and munmap keep the data and the invariants (khugepaged as a kthread)', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const k = machine();
      const p = k.spawn();
      const a = smallPages(p, 2, 64);
      const t1 = p.clone();
      const t2 = p.clone();
      k.sched.setStrategy(new RandomStrategy(seed, 0.5));
      const kt = k.sched.spawn('khugepaged', khugepagedThread(k.core, 2), { kind: 'kthread' });
      const buf = new Uint8Array([9, 0, 0, 0]);
      t1.spawn('write', p.sys.access(a + 70 * P, buf, 'write'));
      t2.spawn('dontneed', p.sys.madvise(a + PMD_SIZE + 10 * P, 4 * P, 4));
      k.sched.runAll();
      expect(kt.error).toBeUndefined();
      expect(p.readI32(a + 70 * P)).toBe(9);
      expect(p.readI32(a + 5 * P)).toBe(6);
      expect(p.readI32(a + PMD_SIZE + 11 * P)).toBe(0);
      expect(p.readI32(a + PMD_SIZE + 20 * P)).toBe(1021);
      expect(k.check()).toEqual([]);
    }
  });
});

describe('khugepaged sysfs (/sys/kernel/mm/transparent_hugepage/khugepaged/)', () => {
  it('defaults of khugepaged_init(): max_ptes_none 511, max_ptes_swap 64, max_ptes_shared 256, pages_to_scan 4096', () => {
    const k = machine();
    const p = k.spawn();
    expect(readKnob(p, 'max_ptes_none')).toBe('511\n');
    expect(readKnob(p, 'max_ptes_swap')).toBe('64\n');
    expect(readKnob(p, 'max_ptes_shared')).toBe('256\n');
    expect(readKnob(p, 'pages_to_scan')).toBe('4096\n');
    expect(readKnob(p, 'scan_sleep_millisecs')).toBe('10000\n');
    expect(readKnob(p, 'alloc_sleep_millisecs')).toBe('60000\n');
    expect(readKnob(p, 'defrag')).toBe('1\n');
    expect(readKnob(p, 'pages_collapsed')).toBe('0\n');
  });

  it('stores check their values: max_ptes_* at most 511, pages_to_scan not 0, defrag 0 or 1; -EINVAL otherwise', () => {
    const k = machine();
    const p = k.spawn();
    for (const name of ['max_ptes_none', 'max_ptes_swap', 'max_ptes_shared']) {
      expect(writeKnob(p, name, '512')).toBe(-EINVAL);
      expect(writeKnob(p, name, '-1')).toBe(-EINVAL);
      expect(writeKnob(p, name, 'x')).toBe(-EINVAL);
      expect(writeKnob(p, name, '0\n')).toBe(2);
    }
    expect(khugepagedSettings(k.core).maxPtesSwap).toBe(0);
    expect(writeKnob(p, 'pages_to_scan', '0')).toBe(-EINVAL);
    expect(writeKnob(p, 'pages_to_scan', '+8\n')).toBe(3);
    expect(readKnob(p, 'pages_to_scan')).toBe('8\n');
    expect(writeKnob(p, 'defrag', '2')).toBe(-EINVAL);
    // kernfs_fop_open(): the read-only counters cannot be opened for writing.
    expect(p.open(`${KNOBS}/full_scans`, O_RDWR)).toBe(-EACCES);
    expect(p.open(`${KNOBS}/pages_collapsed`, O_RDWR)).toBe(-EACCES);
    expect(writeKnob(p, 'defrag', '0')).toBe(1);
    expect(readKnob(p, 'defrag')).toBe('0\n');
  });
});
