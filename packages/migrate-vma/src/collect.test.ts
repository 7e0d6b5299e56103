/**
 * migrate_vma_setup() collection and unmap, entry kind by entry kind, at PTE and PMD level
 * (kernel-mechanics.md §2.2, §2.3, §2.6, §2.8). Every test restores with an empty dst and checks
 * that the page tables come back and every invariant holds.
 */
import {
  FOLL_PIN,
  FOLL_WRITE,
  folioTrylock,
  folioUnlock,
  getUserPages,
  HPAGE_PMD_NR,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PAGE_SIZE,
  PG_locked,
  PG_lru,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  putUserPages,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { inflightMigrations } from './inflight.js';
import {
  badPattern,
  entryPfnAt,
  fillPattern,
  type Machine,
  machine,
  pmdKind,
  pteKind,
  thpWindow,
  vmaAt,
} from './testing/harness.js';
import { migrateVmaFinalize, migrateVmaSetup } from './testing/sync.js';
import {
  MIGRATE_PFN_COMPOUND as CMP,
  MIGRATE_PFN_MIGRATE as MIG,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migratePfn,
  migratePfnToPage,
  mpfnFlags,
  newMigrateVma,
  MIGRATE_PFN_VALID as VAL,
  MIGRATE_PFN_WRITE as WR,
} from './types.js';

const SYS = MIGRATE_VMA_SELECT_SYSTEM;
const DEV = MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
const COMPOUND = MIGRATE_VMA_SELECT_COMPOUND;

/** migrate_vma_setup() over [addr, addr + npages pages) with the test device as owner. */
function collect(
  mc: Machine,
  addr: number,
  npages: number,
  flags: number,
  owner: unknown = mc.dev,
  check = true,
): MigrateVma {
  const end = addr + npages * PAGE_SIZE;
  const mig = newMigrateVma({ vma: vmaAt(mc.p, addr), start: addr, end, flags, pgmapOwner: owner });
  expect(migrateVmaSetup(mc.k.core, mig)).toBe(0);
  // A test that plays "someone else" holding a folio lock checks once it lets go.
  if (check) expect(mc.check()).toEqual([]);
  return mig;
}

/** migrate_vma_finalize() with no destination: everything collected is restored. */
function restore(mc: Machine, mig: MigrateVma): void {
  migrateVmaFinalize(mc.k.core, mig);
  expect(inflightMigrations(mc.k.core).some((r) => r.mig === mig)).toBe(false);
  expect(mc.check()).toEqual([]);
}

/** A 2 MiB-aligned window whose faults map small pages (MADV_NOHUGEPAGE). */
function pteWindow(mc: Machine, prot = PROT_READ | PROT_WRITE): number {
  const raw = mc.p.mmap(0, 2 * PMD_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS);
  const w = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  expect(mc.p.madvise(w, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
  return w;
}

describe('collect at PTE level', () => {
  it('pte_none of an anonymous VMA is a hole; of a shared mapping it is skipped', () => {
    const mc = machine();
    const w = pteWindow(mc);
    mc.p.writeI32(w, 1);
    const mig = collect(mc, w, 4, SYS);
    expect(mpfnFlags(mig.src[1])).toBe(MIG);
    expect(migratePfnToPage(mig.src[1])).toBe(-1);
    expect(mig.cpages).toBe(4);
    expect(mig.npages).toBe(4);
    restore(mc, mig);
    const s = mc.p.mmap(0, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    const mig2 = collect(mc, s, 4, SYS);
    expect([...mig2.src.subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    expect(mig2.cpages).toBe(0);
    expect(inflightMigrations(mc.k.core).length).toBe(0);
  });

  it('a present writable page becomes a writable migration entry; the folio is locked and isolated', () => {
    const mc = machine();
    const { k, p } = mc;
    const w = pteWindow(mc);
    p.writeI32(w + 8, 42);
    const pfn = entryPfnAt(k, p, w);
    const mig = collect(mc, w, 1, SYS);
    expect(mig.src[0]).toBe(migratePfn(pfn) + (MIG | WR));
    expect(pteKind(k, p, w)).toBe('migration-write');
    const m = k.core.map;
    expect(m.flags[pfn] & PG_locked).toBe(PG_locked);
    expect(m.flags[pfn] & PG_lru).toBe(0);
    expect(m.refcount[pfn]).toBe(1);
    expect(m.mapcount[pfn]).toBe(0);
    restore(mc, mig);
    expect(pteKind(k, p, w)).toBe('present');
    expect(m.flags[pfn] & PG_lru).toBe(PG_lru);
    expect(p.readI32(w + 8)).toBe(42);
  });

  it('read-only pages: readable-exclusive when exclusive, readable when shared after fork (in both mms)', () => {
    const mc = machine();
    const { k, p } = mc;
    const w = pteWindow(mc);
    p.writeI32(w, 1);
    p.writeI32(w + PAGE_SIZE, 2);
    expect(p.mprotect(w, PAGE_SIZE, PROT_READ)).toBe(0);
    const mig = collect(mc, w, 1, SYS);
    expect(mpfnFlags(mig.src[0])).toBe(VAL | MIG);
    expect(pteKind(k, p, w)).toBe('migration-read-exclusive');
    restore(mc, mig);
    const child = k.task(p.fork())!;
    const mig2 = collect(mc, w + PAGE_SIZE, 1, SYS);
    expect(mpfnFlags(mig2.src[0])).toBe(VAL | MIG);
    expect(pteKind(k, p, w + PAGE_SIZE)).toBe('migration-read');
    expect(pteKind(k, child, w + PAGE_SIZE)).toBe('migration-read');
    restore(mc, mig2);
    expect(child.readI32(w + PAGE_SIZE)).toBe(2);
  });

  it('the zero page is a hole with SELECT_SYSTEM and skipped without it; system pages need SELECT_SYSTEM', () => {
    const mc = machine();
    const { k, p } = mc;
    const w = pteWindow(mc);
    expect(p.readI32(w)).toBe(0);
    p.writeI32(w + PAGE_SIZE, 3);
    expect(pteKind(k, p, w)).toBe('zero');
    const mig = collect(mc, w, 2, SYS);
    expect(mig.src[0]).toBe(MIG);
    expect(mig.cpages).toBe(2);
    restore(mc, mig);
    const mig2 = collect(mc, w, 2, DEV);
    expect([mig2.src[0], mig2.src[1]]).toEqual([0, 0]);
    expect(mig2.cpages).toBe(0);
    expect(pteKind(k, p, w + PAGE_SIZE)).toBe('present');
  });

  it('device-private entries: own (write and read), other owner, and without SELECT_DEVICE_PRIVATE', () => {
    const mc = machine();
    const { k, p, dev, dev2 } = mc;
    const w = pteWindow(mc);
    fillPattern(p, w, 4 * PAGE_SIZE);
    dev.toDevice(vmaAt(p, w), w, w + 2 * PAGE_SIZE, SYS);
    dev2.toDevice(vmaAt(p, w), w + 2 * PAGE_SIZE, w + 3 * PAGE_SIZE, SYS);
    expect(p.mprotect(w + PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(pteKind(k, p, w)).toBe('device-private-write');
    expect(pteKind(k, p, w + PAGE_SIZE)).toBe('device-private-read');
    expect(mc.check()).toEqual([]);
    const d0 = entryPfnAt(k, p, w);
    const d1 = entryPfnAt(k, p, w + PAGE_SIZE);
    // mprotect split the VMA in three: [w, +1), [+1, +2) read-only, [+2, ...).
    const mig = collect(mc, w, 1, DEV);
    expect(mig.src[0]).toBe(migratePfn(d0) + (MIG | WR));
    expect(pteKind(k, p, w)).toBe('migration-write');
    expect(k.core.map.refcount[d0]).toBe(1);
    const migR = collect(mc, w + PAGE_SIZE, 1, DEV);
    expect(migR.src[0]).toBe(migratePfn(d1) + MIG);
    expect(pteKind(k, p, w + PAGE_SIZE)).toBe('migration-read-exclusive');
    const migO = collect(mc, w + 2 * PAGE_SIZE, 2, DEV);
    expect([migO.src[0], migO.src[1]]).toEqual([0, 0]);
    expect(migO.cpages).toBe(0);
    restore(mc, mig);
    restore(mc, migR);
    expect(pteKind(k, p, w)).toBe('device-private-write');
    expect(pteKind(k, p, w + PAGE_SIZE)).toBe('device-private-read');
    const mig2 = collect(mc, w, 1, SYS | COMPOUND);
    expect(mig2.src[0]).toBe(0);
    expect(badPattern(p, w, 4 * PAGE_SIZE)).toBe(-1);
    expect(mc.check()).toEqual([]);
  });

  it("another migration's entries, a page locked by someone else and a pinned page are skipped", () => {
    const mc = machine();
    const { k, p } = mc;
    const w = pteWindow(mc);
    fillPattern(p, w, 3 * PAGE_SIZE);
    const first = collect(mc, w, 1, SYS);
    const pfn1 = entryPfnAt(k, p, w + PAGE_SIZE);
    expect(folioTrylock(k.core, pfn1)).toBe(true);
    const pins = k.core.sched.runSync(
      getUserPages(k.core, p.mm, w + 2 * PAGE_SIZE, 1, FOLL_PIN | FOLL_WRITE),
      'gup',
    );
    expect(pins).toHaveLength(1);
    const mig = collect(mc, w, 3, SYS, mc.dev, false);
    expect([...mig.src.subarray(0, 3)]).toEqual([0, 0, 0]);
    expect(mig.cpages).toBe(0);
    expect(pteKind(k, p, w)).toBe('migration-write');
    expect(pteKind(k, p, w + PAGE_SIZE)).toBe('present');
    expect(pteKind(k, p, w + 2 * PAGE_SIZE)).toBe('present');
    folioUnlock(k.core, pfn1);
    putUserPages(k.core, pins as number[], FOLL_PIN);
    restore(mc, first);
    expect(badPattern(p, w, 3 * PAGE_SIZE)).toBe(-1);
  });

  it('a PTE-mapped large folio is split first, then collected page by page', () => {
    const mc = machine();
    const { k, p } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    expect(p.mprotect(w, PMD_SIZE / 2, PROT_READ)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('table');
    const split = k.core.vmstat.thp_split_page;
    const mig = collect(mc, w + PMD_SIZE / 2, 4, SYS | COMPOUND);
    expect(k.core.vmstat.thp_split_page).toBe(split + 1);
    for (let i = 0; i < 4; i++) expect(mpfnFlags(mig.src[i])).toBe(VAL | MIG | WR);
    expect(mig.cpages).toBe(4);
    restore(mc, mig);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
    expect(mc.check()).toEqual([]);
  });
});

describe('collect at PMD level', () => {
  it('pmd_none: one compound hole with SELECT_COMPOUND on an aligned PMD, else one hole per page', () => {
    const mc = machine();
    const w = thpWindow(mc.p);
    const mig = collect(mc, w, HPAGE_PMD_NR, SYS | COMPOUND);
    expect(mig.src[0]).toBe(MIG | CMP);
    expect(mig.src[1]).toBe(0);
    expect(mig.cpages).toBe(1);
    expect(mig.npages).toBe(HPAGE_PMD_NR);
    restore(mc, mig);
    const mig2 = collect(mc, w, HPAGE_PMD_NR, SYS);
    expect(mig2.src[511]).toBe(MIG);
    expect(mig2.cpages).toBe(HPAGE_PMD_NR);
    restore(mc, mig2);
    const mig3 = collect(mc, w + PAGE_SIZE, 8, SYS | COMPOUND);
    expect(mig3.src[0]).toBe(MIG);
    expect(mig3.cpages).toBe(8);
    restore(mc, mig3);
    expect(['none', 'no-table']).toContain(pmdKind(mc.k, mc.p, w));
  });

  it('a span without page tables is one hole: one compound head for several PMDs (kernel quirk)', () => {
    const mc = machine();
    const raw = mc.p.mmap(0, 4 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const w = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    expect(pmdKind(mc.k, mc.p, w)).toBe('no-table');
    const mig = collect(mc, w, 2 * HPAGE_PMD_NR, SYS | COMPOUND);
    expect(mig.src[0]).toBe(MIG | CMP);
    expect(mig.src[HPAGE_PMD_NR]).toBe(0);
    expect(mig.cpages).toBe(1);
    expect(mig.npages).toBe(2 * HPAGE_PMD_NR);
    restore(mc, mig);
    mc.p.writeI32(w + 3 * PMD_SIZE - 4, 1);
    const mig2 = collect(mc, w, 2 * HPAGE_PMD_NR, SYS | COMPOUND);
    expect(mig2.src[HPAGE_PMD_NR]).toBe(MIG | CMP);
    expect(mig2.cpages).toBe(2);
    restore(mc, mig2);
  });

  it('the huge zero PMD is a hole (compound with SELECT_COMPOUND) and skipped without SELECT_SYSTEM', () => {
    const mc = machine();
    const { k, p } = mc;
    const w = thpWindow(p);
    expect(p.readI32(w)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('huge-zero');
    const mig = collect(mc, w, HPAGE_PMD_NR, SYS | COMPOUND);
    expect(mig.src[0]).toBe(MIG | CMP);
    expect(mig.cpages).toBe(1);
    restore(mc, mig);
    const mig2 = collect(mc, w, HPAGE_PMD_NR, DEV | COMPOUND);
    expect(mig2.src[0]).toBe(0);
    expect(mig2.cpages).toBe(0);
    expect(pmdKind(k, p, w)).toBe('huge-zero');
  });

  it('a PMD-mapped THP is collected whole with a PMD migration entry, or split without COMPOUND', () => {
    const mc = machine();
    const { k, p } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    const head = entryPfnAt(k, p, w, true);
    const mig = collect(mc, w, HPAGE_PMD_NR, SYS | COMPOUND);
    expect(mig.src[0]).toBe(migratePfn(head) + (MIG | CMP | WR));
    expect(mig.src[1]).toBe(0);
    expect(mig.cpages).toBe(1);
    expect(pmdKind(k, p, w)).toBe('migration-write');
    expect(k.core.map.refcount[head]).toBe(1);
    restore(mc, mig);
    expect(pmdKind(k, p, w)).toBe('huge');
    const splits = k.core.vmstat.thp_split_page;
    const mig2 = collect(mc, w, HPAGE_PMD_NR, SYS);
    expect(k.core.vmstat.thp_split_page).toBe(splits + 1);
    expect(mig2.cpages).toBe(HPAGE_PMD_NR);
    expect(mig2.src[7]).toBe(migratePfn(head + 7) + (MIG | WR));
    expect(pteKind(k, p, w + 7 * PAGE_SIZE)).toBe('migration-write');
    restore(mc, mig2);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });

  it('a THP covered only partly by the range is split even with COMPOUND', () => {
    const mc = machine();
    const { k, p } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    const mig = collect(mc, w + PMD_SIZE / 2, HPAGE_PMD_NR / 2, SYS | COMPOUND);
    expect(mig.cpages).toBe(HPAGE_PMD_NR / 2);
    expect(mpfnFlags(mig.src[0]) & CMP).toBe(0);
    expect(pmdKind(k, p, w)).toBe('table');
    restore(mc, mig);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });

  it('device-private PMDs: own one whole, split without COMPOUND; other owner and no SELECT skip', () => {
    const mc = machine();
    const { k, p, dev, dev2 } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    const head = entryPfnAt(k, p, w, true);
    expect(collect(mc, w, HPAGE_PMD_NR, DEV | COMPOUND, dev2).cpages).toBe(0);
    expect(collect(mc, w, HPAGE_PMD_NR, SYS | COMPOUND).cpages).toBe(0);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    const mig = collect(mc, w, HPAGE_PMD_NR, DEV | COMPOUND);
    expect(mig.src[0]).toBe(migratePfn(head) + (MIG | CMP | WR));
    expect(pmdKind(k, p, w)).toBe('migration-write');
    restore(mc, mig);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    const mig2 = collect(mc, w, HPAGE_PMD_NR, DEV);
    expect(mig2.cpages).toBe(HPAGE_PMD_NR);
    expect(dev.splitCalls.filter(([, t]) => t >= 0)).toHaveLength(HPAGE_PMD_NR - 1);
    expect(dev.splitCalls.at(-1)).toEqual([head, -1]);
    expect(mig2.src[3]).toBe(migratePfn(head + 3) + (MIG | WR));
    restore(mc, mig2);
    expect(pteKind(k, p, w + 3 * PAGE_SIZE)).toBe('device-private-write');
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });

  it('a read-only device PMD is collected whole without WRITE (readable-exclusive entry)', () => {
    const mc = machine();
    const { k, p, dev } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    expect(p.mprotect(w, PMD_SIZE, PROT_READ)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('device-private-read');
    const head = entryPfnAt(k, p, w, true);
    const mig = collect(mc, w, HPAGE_PMD_NR, DEV | COMPOUND);
    expect(mig.src[0]).toBe(migratePfn(head) + (MIG | CMP));
    expect(pmdKind(k, p, w)).toBe('migration-read-exclusive');
    restore(mc, mig);
    expect(pmdKind(k, p, w)).toBe('device-private-read');
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });

  it('a PMD migration entry, a THP locked by someone else and a pinned THP are skipped whole', () => {
    const mc = machine();
    const { k, p } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    const head = entryPfnAt(k, p, w, true);
    const first = collect(mc, w, HPAGE_PMD_NR, SYS | COMPOUND);
    const mig = collect(mc, w, HPAGE_PMD_NR, SYS | COMPOUND);
    expect(mig.src[0]).toBe(0);
    expect(mig.cpages).toBe(0);
    restore(mc, first);
    expect(folioTrylock(k.core, head)).toBe(true);
    expect(collect(mc, w, HPAGE_PMD_NR, SYS | COMPOUND, mc.dev, false).cpages).toBe(0);
    expect(collect(mc, w, HPAGE_PMD_NR, SYS, mc.dev, false).cpages).toBe(0);
    folioUnlock(k.core, head);
    expect(pmdKind(k, p, w)).toBe('huge');
    const pins = k.core.sched.runSync(
      getUserPages(k.core, p.mm, w + 5 * PAGE_SIZE, 1, FOLL_PIN | FOLL_WRITE),
      'gup',
    ) as number[];
    const failed = k.core.vmstat.thp_split_page_failed;
    expect(collect(mc, w, HPAGE_PMD_NR, SYS | COMPOUND).cpages).toBe(0);
    expect(k.core.vmstat.thp_split_page_failed).toBe(failed + 1);
    expect(pmdKind(k, p, w)).toBe('huge');
    putUserPages(k.core, pins, FOLL_PIN);
    expect(mc.check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });

  it('cpages counts units: a THP, a compound hole and small pages in one call', () => {
    const mc = machine();
    const { p } = mc;
    const raw = p.mmap(0, 4 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const w = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    p.madvise(w, 2 * PMD_SIZE, 14);
    p.writeI32(w, 1);
    const mig = collect(mc, w, 2 * HPAGE_PMD_NR, SYS | COMPOUND);
    expect(mig.cpages).toBe(2);
    expect(mpfnFlags(mig.src[0])).toBe(VAL | MIG | CMP | WR);
    expect(mig.src[HPAGE_PMD_NR]).toBe(MIG | CMP);
    restore(mc, mig);
  });
});
