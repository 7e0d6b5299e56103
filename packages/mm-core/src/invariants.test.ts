import { describe, expect, it } from 'vitest';
import {
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_CREAT,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { allocFolio, folioPut } from './folio.js';
import { checkMmCore, installMmCoreChecker, registerRefHolder, walkPageTables } from './invariants.js';
import { Kernel } from './kernel.js';
import { allocTable, pteIndex, pteTableOf, ptHi, ptLo, ptSet, readPmd } from './mm/pgtable.js';
import { _PAGE_RW, entryPfn, mkHi, mkSwpLo, SWP_MIGRATION_READ } from './pgtable/entry.js';
import { PG_anon_exclusive, PG_locked, PG_swapbacked, PG_swapcache } from './phys/memmap.js';
import type { Process } from './process.js';
import { pageout, pteAt } from './testing/swap.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function setup(): { k: Kernel; p: Process; a: number; pfn: number; pteT: number } {
  const k = new Kernel({ ramBytes: 256 << 20 });
  installMmCoreChecker(k);
  const p = k.spawn();
  const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
  p.writeI32(a, 1);
  p.writeI32(a + PAGE_SIZE, 2);
  const pteT = pteTableOf(k.core, p.mm, a, false);
  const pfn = entryPfn(ptLo(k.core, pteT, pteIndex(a)), ptHi(k.core, pteT, pteIndex(a)));
  expect(k.check()).toEqual([]);
  return { k, p, a, pfn, pteT };
}

describe('invariant checker', () => {
  it('is installed once and runs after syscalls when enabled', () => {
    const { k, p, pfn } = setup();
    installMmCoreChecker(k);
    expect(k.checkers.length).toBe(1);
    k.core.map.refcount[pfn]++;
    expect(() => p.mmap(0, PAGE_SIZE, RW, ANON)).not.toThrow();
    k.checkInvariants = true;
    expect(() => p.mmap(0, PAGE_SIZE, RW, ANON)).toThrow(/invariant violated after mmap/);
  });

  it('reports refcount and mapcount mismatches with a dump of the folio', () => {
    const { k, pfn } = setup();
    k.core.map.refcount[pfn]++;
    const v = checkMmCore(k);
    expect(v.length).toBe(1);
    expect(v[0]).toMatch(/refcount 2 but 1 references/);
    expect(v[0]).toMatch(new RegExp(`page pfn:0x${pfn.toString(16)} head:`));
    k.core.map.refcount[pfn]--;
    k.core.map.mapcount[pfn] = 2;
    expect(checkMmCore(k).join('\n')).toMatch(/mapcount 2 but 1 PTE mappings/);
  });

  it('reports rss and page-table accounting drift', () => {
    const { k, p } = setup();
    p.mm.rss.MM_ANONPAGES++;
    p.mm.pgtablesBytes += PAGE_SIZE;
    const v = checkMmCore(k).join('\n');
    expect(v).toMatch(/rss MM_ANONPAGES is 3 but page tables map 2/);
    expect(v).toMatch(/pgtables_bytes/);
  });

  it('reports leaked folios unless a registered holder explains them', () => {
    const { k } = setup();
    const f = allocFolio(k.core, 0, false);
    expect(checkMmCore(k).join('\n')).toMatch(/leaked/);
    const remove = registerRefHolder(k.core, (_core, add) => add(f, 1));
    expect(checkMmCore(k)).toEqual([]);
    remove();
    folioPut(k.core, f);
    expect(checkMmCore(k)).toEqual([]);
  });

  it('pins may hold extra references', () => {
    const { k, pfn } = setup();
    k.core.map.refcount[pfn] += 1;
    k.core.map.pincount[pfn] = 1;
    expect(checkMmCore(k)).toEqual([]);
    k.core.map.pincount[pfn] = 2;
    expect(checkMmCore(k).join('\n')).toMatch(/pins/);
  });

  it('reports stale TLB entries', () => {
    const { k, p, a, pteT } = setup();
    // Make the PTE read-only behind the TLB's back.
    const i = pteIndex(a);
    ptSet(k.core, pteT, i, ptLo(k.core, pteT, i) & ~_PAGE_RW, ptHi(k.core, pteT, i));
    expect(checkMmCore(k).join('\n')).toMatch(/stale TLB entry/);
    p.mm.tlb.flushAll();
    expect(checkMmCore(k).join('\n')).not.toMatch(/stale TLB/);
  });

  it('accepts migration entries and locked folios only while a migration is in flight', () => {
    const { k, a, pfn, pteT } = setup();
    const i = pteIndex(a);
    // A hand-made migration: lock, unmap into a migration entry (keeping rss, dropping rmap+ref).
    k.core.map.flags[pfn] |= PG_locked;
    k.core.map.mapcount[pfn] = 0;
    k.core.map.flags[pfn] &= ~PG_anon_exclusive;
    ptSet(k.core, pteT, i, mkSwpLo(SWP_MIGRATION_READ, pfn), mkHi(pfn));
    const v = checkMmCore(k).join('\n');
    expect(v).toMatch(/migration PTE outside an in-flight migration/);
    expect(v).toMatch(/locked at a syscall boundary/);
    k.core.migrationsInFlight++;
    for (const t of k.tasks.values()) (t as Process).mm.tlb.flushAll();
    expect(checkMmCore(k)).toEqual([]);
    k.core.migrationsInFlight--;
  });

  it('reports a mapping of a freed page and a free-list mismatch', () => {
    const { k, a, pfn, pteT } = setup();
    // Free the page under the mapping (as a refcount bug would).
    const i = pteIndex(a);
    const lo = ptLo(k.core, pteT, i);
    const hi = ptHi(k.core, pteT, i);
    ptSet(k.core, pteT, i, 0, 0);
    k.core.map.mapcount[pfn] = 0;
    k.core.map.flags[pfn] &= ~PG_anon_exclusive;
    folioPut(k.core, pfn);
    ptSet(k.core, pteT, i, lo, hi);
    const v = checkMmCore(k).join('\n');
    expect(v).toMatch(/not a live folio head/);
    k.core.zone.nrFree++;
    expect(checkMmCore(k).join('\n')).toMatch(/nr_free_pages/);
  });

  it('reports leaked and doubly reachable page tables', () => {
    const { k, p, a } = setup();
    allocTable(k.core, null);
    expect(checkMmCore(k).join('\n')).toMatch(/not reachable \(leaked\)/);
    p.mm.deposits.set(a, pteTableOf(k.core, p.mm, a, false));
    const v = checkMmCore(k).join('\n');
    expect(v).toMatch(/reachable twice/);
    expect(v).toMatch(/deposit at 0x[0-9a-f]+ without a huge PMD/);
  });

  it('reports writable PTEs to shared anonymous pages and entries outside VMAs', () => {
    const { k, p, pfn } = setup();
    k.core.map.flags[pfn] &= ~PG_anon_exclusive;
    expect(checkMmCore(k).join('\n')).toMatch(/not AnonExclusive/);
    k.core.map.flags[pfn] |= PG_anon_exclusive;
    p.mm.vmas[0].start += PAGE_SIZE;
    expect(checkMmCore(k).join('\n')).toMatch(/PTE outside any VMA/);
  });

  it('walkPageTables reports tables, PMD leaves and PTEs', () => {
    const k = new Kernel({ ramBytes: 256 << 20 });
    const p = k.spawn();
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    p.writeI32(a, 1);
    p.writeI32(a + PMD_SIZE, 1);
    p.readI32(a + PMD_SIZE + PAGE_SIZE);
    const seen: string[] = [];
    walkPageTables(k.core, p.mm, {
      table: (_pfn, level) => seen.push(level),
      pmdLeaf: (addr) => seen.push(`leaf@${addr === a}`),
      pte: (addr) => seen.push(`pte@${(addr - a - PMD_SIZE) / PAGE_SIZE}`),
    });
    expect(seen).toEqual(['pud', 'pmd', 'leaf@true', 'pte', 'pte@0', 'pte@1']);
    expect(readPmd(k.core, p.mm, a)[0]).toBeGreaterThan(0);
  });

  it('reports a swap-cache folio that lost PG_swapbacked (only swap-backed folios are in the swap cache: folio_mark_lazyfree() skips them)', () => {
    const { k, p, a } = setup();
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(1);
    expect(p.readI32(a)).toBe(1);
    const f = k.core.map.head[entryPfn(...pteAt(k, p, a))];
    expect(k.core.map.flags[f] & PG_swapcache).toBe(PG_swapcache);
    k.core.map.flags[f] &= ~PG_swapbacked;
    expect(k.check().join('\n')).toContain('PG_swapcache without PG_swapbacked');
    k.core.map.flags[f] |= PG_swapbacked;
    expect(k.check()).toEqual([]);
  });
});

describe('invariant checker: shmem page-cache THPs', () => {
  it('reports NR_SHMEM_THPS drifting from the PMD-sized folios the page caches hold', () => {
    const k = new Kernel({ ramBytes: 256 << 20 });
    installMmCoreChecker(k);
    const p = k.spawn();
    expect(p.mkdir('/tmp/h')).toBe(0);
    expect(p.mount('tmpfs', '/tmp/h', 'tmpfs', 0, 'huge=always')).toBe(0);
    const fd = p.open('/tmp/h/f', O_CREAT | O_RDWR);
    // One write(2) covering the aligned 2 MiB chunk: a PMD-sized folio (shmem_write_begin()).
    expect(p.write(fd, new Uint8Array(PMD_SIZE), PMD_SIZE)).toBe(PMD_SIZE);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(PMD_SIZE / PAGE_SIZE);
    expect(checkMmCore(k)).toEqual([]);
    k.core.vmstat.nr_shmem_hugepages = 0;
    expect(checkMmCore(k).join('\n')).toMatch(
      /nr_shmem_hugepages 0 but page caches hold 512 pages of PMD-sized folios/,
    );
  });
});
