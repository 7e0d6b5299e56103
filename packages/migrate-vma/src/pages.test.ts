/**
 * migrate_vma_setup() validation, migrate_vma_pages() (insertion, split during migration,
 * refusals, folio_migrate_mapping) and migrate_vma_finalize() (kernel-mechanics.md §2.1, §2.4,
 * §2.5, §2.7, §3), plus the vmstat counters device migration moves (and those it does not).
 */
import {
  EINVAL,
  folioGet,
  folioPut,
  folioTrylock,
  folioUnlock,
  HPAGE_PMD_NR,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  VM_IO,
  VM_MIXEDMAP,
  VM_PFNMAP,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { inflightMigrations } from './inflight.js';
import { migrateVmaInsertPage } from './insert.js';
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
import {
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from './testing/sync.js';
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
const _COMPOUND = MIGRATE_VMA_SELECT_COMPOUND;

function setupAt(mc: Machine, addr: number, npages: number, flags: number): MigrateVma {
  const mig = newMigrateVma({
    vma: vmaAt(mc.p, addr),
    start: addr,
    end: addr + npages * PAGE_SIZE,
    flags,
    pgmapOwner: mc.dev,
  });
  expect(migrateVmaSetup(mc.k.core, mig)).toBe(0);
  expect(mc.check()).toEqual([]);
  return mig;
}

describe('migrate_vma_setup validation', () => {
  it('returns -EINVAL exactly where the kernel does, and 0 for an empty but valid range', () => {
    const mc = machine();
    const { k, p, dev } = mc;
    const w = thpWindow(p);
    const vma = vmaAt(p, w);
    const core = k.core;
    const bad = (f: Parameters<typeof newMigrateVma>[0]) => migrateVmaSetup(core, newMigrateVma(f));
    expect(bad({ vma: null, start: w, end: w + PAGE_SIZE })).toBe(-EINVAL);
    expect(bad({ vma, start: w, end: w })).toBe(-EINVAL);
    expect(bad({ vma, start: w + PAGE_SIZE, end: w })).toBe(-EINVAL);
    expect(bad({ vma, start: w, end: w + 100 })).toBe(-EINVAL);
    expect(bad({ vma, start: vma.start - PAGE_SIZE, end: vma.start + PAGE_SIZE })).toBe(-EINVAL);
    expect(bad({ vma, start: vma.end, end: vma.end + PAGE_SIZE })).toBe(-EINVAL);
    expect(bad({ vma, start: w, end: vma.end + PAGE_SIZE })).toBe(-EINVAL);
    const noSrc = newMigrateVma({ vma, start: w, end: w + PAGE_SIZE });
    (noSrc as { src: Float64Array | null }).src = null;
    expect(migrateVmaSetup(core, noSrc)).toBe(-EINVAL);
    const noDst = newMigrateVma({ vma, start: w, end: w + PAGE_SIZE });
    (noDst as { dst: Float64Array | null }).dst = null;
    expect(migrateVmaSetup(core, noDst)).toBe(-EINVAL);
    for (const special of [VM_IO, VM_PFNMAP, VM_MIXEDMAP]) {
      vma.flags |= special;
      expect(bad({ vma, start: w, end: w + PAGE_SIZE, flags: SYS })).toBe(-EINVAL);
      vma.flags &= ~special;
    }
    const h = p.mmap(0, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
    expect(h).toBeGreaterThan(0);
    expect(bad({ vma: vmaAt(p, h), start: h, end: h + PAGE_SIZE, flags: SYS })).toBe(-EINVAL);
    // fault_page must be a locked device-private page.
    p.writeI32(w, 1);
    const sysPfn = entryPfnAt(k, p, w, true);
    expect(bad({ vma, start: w, end: w + PAGE_SIZE, faultPage: sysPfn })).toBe(-EINVAL);
    const d = dev.alloc(0);
    folioUnlock(core, d);
    expect(bad({ vma, start: w, end: w + PAGE_SIZE, faultPage: d })).toBe(-EINVAL);
    expect(folioTrylock(core, d)).toBe(true);
    // Unaligned start/end are masked; an empty selection is success with nothing collected.
    const ok = newMigrateVma({ vma, start: w + 5, end: w + PAGE_SIZE + 7, flags: 0, faultPage: d });
    expect(migrateVmaSetup(core, ok)).toBe(0);
    expect([ok.start, ok.end, ok.npages, ok.cpages]).toEqual([w, w + PAGE_SIZE, 1, 0]);
    expect(inflightMigrations(core)).toEqual([]);
    folioUnlock(core, d);
    folioPut(core, d);
    expect(mc.check()).toEqual([]);
  });
});

describe('split during migration (source compound, destination not)', () => {
  it('system THP to small device pages: PMD split to migration PTEs, folio split, 512 units', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    const head = entryPfnAt(k, p, w, true);
    const free = k.core.zone.nrFree;
    const pmdSplits = k.core.vmstat.thp_split_pmd;
    const pageSplits = k.core.vmstat.thp_split_page;
    dev.failLarge = 1;
    const { mig } = dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    expect(mig.cpages).toBe(1);
    for (let i = 0; i < HPAGE_PMD_NR; i++) expect(mig.src[i]).toBe(migratePfn(head + i) + (MIG | WR));
    expect(k.core.vmstat.thp_split_pmd).toBe(pmdSplits + 1);
    expect(k.core.vmstat.thp_split_page).toBe(pageSplits);
    expect(dev.splitCalls).toEqual([]);
    expect(pmdKind(k, p, w)).toBe('table');
    expect(pteKind(k, p, w + 9 * PAGE_SIZE)).toBe('device-private-write');
    expect(k.core.zone.nrFree).toBe(free + HPAGE_PMD_NR);
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('device THP to small system pages: the folio_split callback runs for every new folio, then with -1', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    const head = entryPfnAt(k, p, w, true);
    dev.failLargeRam = 1;
    const { r, mig } = dev.toSystem(vmaAt(p, w), w, w + PMD_SIZE);
    expect(r).toBe(0);
    let migrated = 0;
    for (let i = 0; i < HPAGE_PMD_NR; i++) if (mpfnFlags(mig.src[i]) === (VAL | MIG | WR)) migrated++;
    expect(migrated).toBe(HPAGE_PMD_NR);
    const tails = dev.splitCalls.filter(([, t]) => t >= 0).map(([, t]) => t);
    expect(tails).toEqual(Array.from({ length: HPAGE_PMD_NR - 1 }, (_, i) => head + 1 + i));
    expect(dev.splitCalls.at(-1)).toEqual([head, -1]);
    expect(dev.splitCalls.every(([h]) => h === head)).toBe(true);
    expect(dev.frees).toBe(HPAGE_PMD_NR);
    expect(dev.pgmap.refs).toBe(0);
    expect(pteKind(k, p, w + PMD_SIZE - PAGE_SIZE)).toBe('present');
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });

  it('a PMD fault whose destination is small cannot split the fault folio: the THP ends up PTE-mapped', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    const head = entryPfnAt(k, p, w, true);
    dev.failLargeRam = 1;
    const failed = k.core.vmstat.thp_split_page_failed;
    expect(p.readI32(w + 64 * PAGE_SIZE)).toBe(64 * 1024);
    // folio_split_unmapped() refused (the fault handler's reference); the retried PTE fault split
    // the device folio in collection (a mapped split) and migrated the faulting page only.
    expect(k.core.vmstat.thp_split_page_failed).toBe(failed);
    expect(pmdKind(k, p, w)).toBe('table');
    expect(pteKind(k, p, w + 64 * PAGE_SIZE)).toBe('present');
    expect(pteKind(k, p, w + 65 * PAGE_SIZE)).toBe('device-private-write');
    expect(dev.splitCalls.at(-1)).toEqual([head, -1]);
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('a THP shared after fork splits in every process (model fix of a v6.19 kernel bug)', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    const child = k.task(p.fork())!;
    expect(pmdKind(k, child, w)).toBe('huge');
    dev.failLarge = 1;
    const { mig } = dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    expect(mpfnFlags(mig.src[1])).toBe(VAL | MIG);
    // try_to_migrate() gave the child a PMD migration entry; it was split too.
    expect(pteKind(k, p, w + 3 * PAGE_SIZE)).toBe('device-private-read');
    expect(pteKind(k, child, w + 3 * PAGE_SIZE)).toBe('device-private-read');
    expect(k.core.map.refcount[entryPfnAt(k, child, w)]).toBe(2);
    expect(check()).toEqual([]);
    child.writeI32(w, -1);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
    expect(badPattern(child, w + 4, PMD_SIZE - 4, 1)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('a small source with a compound destination is refused and restored', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    const mig = setupAt(mc, w, HPAGE_PMD_NR, SYS);
    expect(mig.cpages).toBe(HPAGE_PMD_NR);
    const d = dev.alloc(9);
    mig.dst[0] = migratePfn(d) + CMP;
    expect(check()).toEqual([]);
    migrateVmaPages(k.core, mig);
    expect(mpfnFlags(mig.src[0]) & MIG).toBe(0);
    expect(mpfnFlags(mig.src[1]) & MIG).toBe(0);
    migrateVmaFinalize(k.core, mig);
    expect(dev.frees).toBe(1);
    expect(pteKind(k, p, w)).toBe('present');
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });
});

describe('insertion into holes', () => {
  it('a compound hole with a compound destination becomes a device PMD (THP_FAULT_ALLOC, rss, deposit)', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = thpWindow(p);
    const alloc = k.core.vmstat.thp_fault_alloc;
    const { mig } = dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    // A successful huge insert leaves src as it was (the small insert rewrites it to MIGRATE).
    expect(mig.src[0]).toBe(MIG | CMP);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(k.core.vmstat.thp_fault_alloc).toBe(alloc + 1);
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    expect(p.mm.deposits.size).toBe(1);
    expect(check()).toEqual([]);
  });

  it('a huge zero PMD is replaced by the device PMD; its deposit is reused', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = thpWindow(p);
    expect(p.readI32(w)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('huge-zero');
    const bytes = p.mm.pgtablesBytes;
    dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(p.mm.pgtablesBytes).toBe(bytes);
    expect(check()).toEqual([]);
    expect(p.readI32(w + 12)).toBe(0);
    expect(check()).toEqual([]);
  });

  it('a compound hole with small destinations is expanded into 512 small inserts', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = thpWindow(p);
    const alloc = k.core.vmstat.thp_fault_alloc;
    dev.failLarge = 1;
    const { mig } = dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    for (let i = 0; i < HPAGE_PMD_NR; i++) expect(mig.src[i]).toBe(MIG);
    expect(k.core.vmstat.thp_fault_alloc).toBe(alloc);
    expect(pteKind(k, p, w + 100 * PAGE_SIZE)).toBe('device-private-write');
    expect(check()).toEqual([]);
  });

  it('a zero-page PTE is replaced; a hole the CPU filled meanwhile aborts the insert', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const raw = p.mmap(0, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(p.readI32(raw)).toBe(0);
    expect(pteKind(k, p, raw)).toBe('zero');
    const mig = setupAt(mc, raw, 2, SYS);
    expect([mig.src[0], mig.src[1]]).toEqual([MIG, MIG]);
    p.writeI32(raw + PAGE_SIZE, 99);
    expect(check()).toEqual([]);
    const d0 = dev.alloc(0);
    const d1 = dev.alloc(0);
    mig.dst[0] = migratePfn(d0);
    mig.dst[1] = migratePfn(d1);
    migrateVmaPages(k.core, mig);
    expect(mig.src[0]).toBe(MIG);
    expect(mig.src[1]).toBe(0);
    migrateVmaFinalize(k.core, mig);
    expect(pteKind(k, p, raw)).toBe('device-private-write');
    expect(pteKind(k, p, raw + PAGE_SIZE)).toBe('present');
    expect(dev.frees).toBe(1);
    expect(check()).toEqual([]);
    expect(p.readI32(raw + PAGE_SIZE)).toBe(99);
  });
});

describe('migrate_vma_insert_page() without a generator', () => {
  it('fills a hole at once when nothing schedules (no generator), as migrate_vma_pages() would', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const raw = p.mmap(0, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const mig = setupAt(mc, raw, 1, SYS);
    expect(mig.src[0]).toBe(MIG);
    mig.dst[0] = migratePfn(dev.alloc(0));
    const r = k.core.sched.runSync(
      (function* () {
        return migrateVmaInsertPage(k.core, mig, raw, 0, 0);
      })(),
      'insert',
    );
    expect(r).toBeUndefined();
    expect(mig.src[0]).toBe(MIG);
    expect(pteKind(k, p, raw)).toBe('device-private-write');
    migrateVmaFinalize(k.core, mig);
    expect(check()).toEqual([]);
  });
});

describe('folio_migrate_mapping and finalize', () => {
  it('an unexpected reference on the source fails the slot; finalize restores it and frees the destination', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const raw = p.mmap(0, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    fillPattern(p, raw, 2 * PAGE_SIZE);
    const mig = setupAt(mc, raw, 2, SYS);
    const s0 = migratePfnToPage(mig.src[0]);
    folioGet(k.core, s0);
    for (let i = 0; i < 2; i++) {
      const d = dev.alloc(0);
      dev.fillFromSrc(d, migratePfnToPage(mig.src[i]), 1);
      mig.dst[i] = migratePfn(d);
    }
    migrateVmaPages(k.core, mig);
    expect(mpfnFlags(mig.src[0]) & MIG).toBe(0);
    expect(mpfnFlags(mig.src[1]) & MIG).toBe(MIG);
    migrateVmaFinalize(k.core, mig);
    folioPut(k.core, s0);
    expect(pteKind(k, p, raw)).toBe('present');
    expect(pteKind(k, p, raw + PAGE_SIZE)).toBe('device-private-write');
    expect(dev.frees).toBe(1);
    expect(check()).toEqual([]);
    expect(badPattern(p, raw, 2 * PAGE_SIZE)).toBe(-1);
  });

  it('back to system memory: an unexpected reference on a device page fails its slot alone; finalize restores it', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const raw = p.mmap(0, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    fillPattern(p, raw, 2 * PAGE_SIZE);
    dev.toDevice(vmaAt(p, raw), raw, raw + 2 * PAGE_SIZE, SYS);
    expect(pteKind(k, p, raw)).toBe('device-private-write');
    const mig = setupAt(mc, raw, 2, MIGRATE_VMA_SELECT_DEVICE_PRIVATE);
    expect(mig.cpages).toBe(2);
    const d0 = migratePfnToPage(mig.src[0]);
    folioGet(k.core, d0);
    expect(dev.copyBack(mig)).toBe(0);
    const sys0 = migratePfnToPage(mig.dst[0]);
    migrateVmaPages(k.core, mig);
    // folio_migrate_mapping() sees one reference too many on the first device page only.
    expect(mpfnFlags(mig.src[0]) & MIG).toBe(0);
    expect(mpfnFlags(mig.src[1]) & MIG).toBe(MIG);
    const freeBefore = k.core.zone.nrFree;
    migrateVmaFinalize(k.core, mig);
    folioPut(k.core, d0);
    expect(pteKind(k, p, raw)).toBe('device-private-write');
    expect(pteKind(k, p, raw + PAGE_SIZE)).toBe('present');
    // The refused destination went back to the buddy allocator (this device keeps its data in
    // its own memory: no backing page to free).
    expect(k.core.map.refcount[sys0]).toBe(0);
    expect(k.core.zone.nrFree).toBe(freeBefore + 1);
    expect(check()).toEqual([]);
    expect(badPattern(p, raw, 2 * PAGE_SIZE)).toBe(-1);
  });

  it('device migration moves none of the migrate_pages() counters; THP_FAULT_ALLOC only on huge insert', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const v = k.core.vmstat;
    const before = { ...v };
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    dev.toSystem(vmaAt(p, w), w, w + PMD_SIZE);
    dev.failLarge = 1;
    dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
    for (const c of [
      'pgmigrate_success',
      'pgmigrate_fail',
      'thp_migration_success',
      'thp_migration_fail',
      'thp_migration_split',
    ] as const)
      expect(v[c]).toBe(before[c]);
    // One THP fault plus one huge insert (device -> system THP goes through remove_migration_pmd, not insert).
    expect(v.thp_fault_alloc).toBe(before.thp_fault_alloc + 1);
    expect(check()).toEqual([]);
  });
});

describe('pfn-based API (migrate_device_range, eviction)', () => {
  it('evicts a device THP with a compound system destination; a small destination is refused', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = thpWindow(p);
    fillPattern(p, w, PMD_SIZE);
    dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
    const head = entryPfnAt(k, p, w, true);
    const core = k.core;
    const src = new Float64Array(HPAGE_PMD_NR);
    const dst = new Float64Array(HPAGE_PMD_NR);
    expect(migrateDeviceRange(core, src, head, HPAGE_PMD_NR)).toBe(0);
    expect(src[0]).toBe(migratePfn(head) + (MIG | CMP));
    expect(pmdKind(k, p, w)).toBe('migration-write');
    expect(check()).toEqual([]);
    // No VMA to split the PMD: a small destination for a compound source is refused.
    const small = dev.alloc(0);
    dst[0] = migratePfn(small);
    migrateDevicePages(core, src, dst, HPAGE_PMD_NR);
    expect(mpfnFlags(src[0]) & (MIG | CMP)).toBe(0);
    migrateDeviceFinalize(core, src, dst, HPAGE_PMD_NR);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(check()).toEqual([]);
    src.fill(0);
    dst.fill(0);
    migrateDeviceRange(core, src, head, HPAGE_PMD_NR);
    const mig = newMigrateVma({ start: 0, end: PMD_SIZE, src, dst });
    mig.npages = HPAGE_PMD_NR;
    expect(dev.copyBack(mig)).toBe(0);
    migrateDevicePages(core, src, dst, HPAGE_PMD_NR);
    expect(mpfnFlags(src[0]) & MIG).toBe(MIG);
    migrateDeviceFinalize(core, src, dst, HPAGE_PMD_NR);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(dev.pgmap.refs).toBe(0);
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
  });
});
