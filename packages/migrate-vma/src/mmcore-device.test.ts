/**
 * The series' mm-core changes seen through device-private entries: CPU faults, PMD split,
 * fork, mprotect, munmap/zap, MADV_FREE/DONTNEED, mremap, rmap walks, pagemap and
 * hmm_range_fault on device-private PTEs and PMDs (kernel-mechanics.md §4, §5, §7).
 */
import {
  folioGet,
  folioPut,
  HMM_PFN_ERROR,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  type HmmRange,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  hmmPfnFlags,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
  MADV_DONTNEED,
  MADV_FREE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MmuIntervalNotifier,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PG_anon_exclusive,
  PG_deferred_split,
  PM_PRESENT,
  PM_SWAP,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  pagemapEntry,
  pageVmaMappedWalk,
  removeMigrationPtes,
  rmapLockOf,
  rmapVmas,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  tryToMigrate,
  tryToMigrateNoWait,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
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
import { MIGRATE_VMA_SELECT_SYSTEM } from './types.js';

/** A 2 MiB THP with the int pattern, migrated whole to the test device. Returns [addr, device head]. */
function deviceThp(mc: Machine, salt = 0): [number, number] {
  const { k, dev, p, check } = mc;
  const w = thpWindow(p);
  fillPattern(p, w, PMD_SIZE, salt);
  expect(pmdKind(k, p, w)).toBe('huge');
  const { r, mig } = dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE);
  expect(r).toBe(0);
  expect(mig.cpages).toBe(1);
  expect(pmdKind(k, p, w)).toBe('device-private-write');
  expect(check()).toEqual([]);
  return [w, entryPfnAt(k, p, w, true)];
}

/** Like deviceThp but migrated without SELECT_COMPOUND: 512 small device pages behind PTEs. */
function devicePtes(mc: Machine): number {
  const { k, dev, p, check } = mc;
  const w = thpWindow(p);
  fillPattern(p, w, PMD_SIZE);
  const { mig } = dev.toDevice(vmaAt(p, w), w, w + PMD_SIZE, MIGRATE_VMA_SELECT_SYSTEM);
  expect(mig.cpages).toBe(HPAGE_PMD_NR);
  expect(pmdKind(k, p, w)).toBe('table');
  expect(pteKind(k, p, w + 5 * PAGE_SIZE)).toBe('device-private-write');
  expect(check()).toEqual([]);
  return w;
}

describe('CPU faults on device-private entries (migrate_to_ram)', () => {
  it('a PTE fault migrates only the faulting page', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const w = devicePtes(mc);
    const faults = k.core.vmstat.device_private_faults;
    expect(p.readI32(w + 3 * PAGE_SIZE + 8)).toBe(3 * 1024 + 2);
    expect(k.core.vmstat.device_private_faults).toBe(faults + 1);
    expect(pteKind(k, p, w + 3 * PAGE_SIZE)).toBe('present');
    expect(pteKind(k, p, w + 4 * PAGE_SIZE)).toBe('device-private-write');
    expect(dev.frees).toBe(1);
    expect(check()).toEqual([]);
  });

  it('a write fault on a PMD migrates the whole folio back writable', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const [w, head] = deviceThp(mc);
    p.writeI32(w + PMD_SIZE - 4, -1);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(badPattern(p, w, PMD_SIZE - 4)).toBe(-1);
    expect(k.core.map.refcount[head]).toBe(0);
    expect(dev.frees).toBe(1);
    expect(dev.pgmap.refs).toBe(0);
    expect(check()).toEqual([]);
  });

  it('a PTE fault on a PTE-mapped device THP splits the device folio and migrates one page', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const [w, head] = deviceThp(mc);
    expect(p.mprotect(w, PMD_SIZE / 2, PROT_READ)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('table');
    expect(k.core.map.folioOrder(head)).toBe(HPAGE_PMD_ORDER);
    expect(p.readI32(w + PMD_SIZE - 8)).toBe(PMD_SIZE / 4 - 2);
    expect(k.core.map.folioOrder(head)).toBe(0);
    expect(dev.splitCalls.length).toBe(HPAGE_PMD_NR);
    expect(dev.splitCalls.at(-1)).toEqual([head, -1]);
    expect(pteKind(k, p, w + PMD_SIZE - PAGE_SIZE)).toBe('present');
    expect(pteKind(k, p, w + PMD_SIZE - 2 * PAGE_SIZE)).toBe('device-private-write');
    expect(pteKind(k, p, w)).toBe('device-private-read');
    expect(check()).toEqual([]);
    expect(badPattern(p, w, PMD_SIZE)).toBe(-1);
    expect(check()).toEqual([]);
  });
});

describe('split_huge_pmd of a device-private PMD', () => {
  it('mprotect of half a device PMD splits it (freeze = false): order-9 folio, 512 PTE mappings', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const [w, head] = deviceThp(mc);
    const splits = k.core.vmstat.thp_split_pmd;
    expect(p.mprotect(w + PMD_SIZE / 2, PMD_SIZE / 2, PROT_READ)).toBe(0);
    const m = k.core.map;
    expect(k.core.vmstat.thp_split_pmd).toBe(splits + 1);
    expect(m.folioOrder(head)).toBe(HPAGE_PMD_ORDER);
    expect(m.refcount[head]).toBe(HPAGE_PMD_NR);
    expect(m.largeMapcount[head]).toBe(HPAGE_PMD_NR);
    expect(m.entireMapcount[head]).toBe(0);
    expect(pteKind(k, p, w)).toBe('device-private-write');
    expect(pteKind(k, p, w + PMD_SIZE / 2)).toBe('device-private-read');
    expect(m.flags[head] & PG_deferred_split).toBe(0);
    expect(check()).toEqual([]);
  });
});

describe('fork of device-private entries', () => {
  it('a device PMD becomes read-only in both processes and is shared (refcount 2)', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const [w, head] = deviceThp(mc);
    const child = k.task(p.fork())!;
    const m = k.core.map;
    expect(pmdKind(k, p, w)).toBe('device-private-read');
    expect(pmdKind(k, child, w)).toBe('device-private-read');
    expect(m.refcount[head]).toBe(2);
    expect(m.entireMapcount[head]).toBe(2);
    expect(m.flags[head] & PG_anon_exclusive).toBe(0);
    expect(child.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    expect(child.mm.deposits.size).toBe(1);
    expect(check()).toEqual([]);
    // A write in the parent migrates the folio back for both (read-only), then COWs.
    p.writeI32(w, 77);
    expect(child.readI32(w)).toBe(0);
    expect(p.readI32(w)).toBe(77);
    expect(check()).toEqual([]);
    child.exit(0);
    expect(badPattern(p, w + 4, PMD_SIZE - 4, 1)).toBe(-1);
    expect(check()).toEqual([]);
  });

  it('device PTEs are copied read-only with a reference each', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const w = devicePtes(mc);
    const pfn = entryPfnAt(k, p, w);
    const child = k.task(p.fork())!;
    expect(pteKind(k, p, w)).toBe('device-private-read');
    expect(pteKind(k, child, w)).toBe('device-private-read');
    expect(k.core.map.refcount[pfn]).toBe(2);
    expect(check()).toEqual([]);
    child.writeI32(w, 5);
    expect(p.readI32(w)).toBe(0);
    expect(child.readI32(w)).toBe(5);
    expect(check()).toEqual([]);
  });
});

describe('mprotect of device-private entries', () => {
  it('downgrades writable device entries and never upgrades them', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const w = devicePtes(mc);
    expect(p.mprotect(w, PMD_SIZE, PROT_READ)).toBe(0);
    expect(pteKind(k, p, w)).toBe('device-private-read');
    expect(p.mprotect(w, PMD_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    expect(pteKind(k, p, w)).toBe('device-private-read');
    p.writeI32(w + 4, 9);
    expect(pteKind(k, p, w)).toBe('present');
    expect(p.readI32(w + 4)).toBe(9);
    expect(check()).toEqual([]);
  });
});

describe('zap of device-private PMDs', () => {
  it('munmap of the whole PMD frees the device folio, rss and deposited table', () => {
    const mc = machine();
    const { p, dev, check } = mc;
    const [w] = deviceThp(mc);
    const bytes = p.mm.pgtablesBytes;
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR);
    expect(p.munmap(w, PMD_SIZE)).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    expect(p.mm.deposits.size).toBe(0);
    expect(p.mm.pgtablesBytes).toBeLessThan(bytes);
    expect(dev.frees).toBe(1);
    expect(dev.pgmap.refs).toBe(0);
    expect(check()).toEqual([]);
  });

  it('partial MADV_DONTNEED splits the PMD, zaps PTEs and never queues the device folio for deferred split', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const [w, head] = deviceThp(mc);
    const deferred = k.core.vmstat.thp_deferred_split_page;
    expect(p.madvise(w + PMD_SIZE / 4, PMD_SIZE / 2, MADV_DONTNEED)).toBe(0);
    const m = k.core.map;
    expect(m.refcount[head]).toBe(HPAGE_PMD_NR / 2);
    expect(p.mm.rss.MM_ANONPAGES).toBe(HPAGE_PMD_NR / 2);
    expect(m.flags[head] & PG_deferred_split).toBe(0);
    expect(k.core.vmstat.thp_deferred_split_page).toBe(deferred);
    expect(check()).toEqual([]);
    expect(p.readI32(w + PMD_SIZE / 2)).toBe(0);
    expect(p.readI32(w + PMD_SIZE - 4)).toBe(PMD_SIZE / 4 - 1);
    expect(check()).toEqual([]);
  });

  it('MADV_FREE leaves a device PMD alone; MADV_DONTNEED of the whole PMD frees it', () => {
    const mc = machine();
    const { k, p, dev, check } = mc;
    const [w] = deviceThp(mc);
    expect(p.madvise(w, PMD_SIZE, MADV_FREE)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(p.madvise(w + PAGE_SIZE, PAGE_SIZE, MADV_FREE)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(check()).toEqual([]);
    expect(p.madvise(w, PMD_SIZE, MADV_DONTNEED)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('none');
    expect(dev.frees).toBe(1);
    expect(check()).toEqual([]);
  });

  it('exit frees every device folio and the pgmap references', () => {
    const mc = machine();
    const { p, dev, check } = mc;
    deviceThp(mc);
    devicePtes(mc);
    p.exit(0);
    expect(dev.pgmap.refs).toBe(0);
    expect(check()).toEqual([]);
  });
});

describe('mremap of device-private PMDs', () => {
  it('moves an aligned PMD verbatim, splits it for an unaligned move, keeps it with DONTUNMAP', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const [w] = deviceThp(mc);
    const area = p.mmap(0, 6 * PMD_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    const d = Math.ceil(area / PMD_SIZE) * PMD_SIZE;
    expect(p.mremap(w, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, d)).toBe(d);
    expect(pmdKind(k, p, d)).toBe('device-private-write');
    expect(check()).toEqual([]);
    const u = d + 2 * PMD_SIZE + 16 * PAGE_SIZE;
    expect(p.mremap(d, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, u)).toBe(u);
    expect(pteKind(k, p, u)).toBe('device-private-write');
    expect(check()).toEqual([]);
    const v = p.mremap(u, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    expect(v).toBeGreaterThan(0);
    expect(check()).toEqual([]);
    expect(badPattern(p, v, PMD_SIZE)).toBe(-1);
    expect(p.readI32(u)).toBe(0);
    expect(check()).toEqual([]);
  });
});

describe('rmap walks on device-private PMDs', () => {
  it('try_to_migrate installs a PMD migration entry; remove_migration_ptes restores the device PMD', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const [w, head] = deviceThp(mc);
    const core = k.core;
    const [{ vma, addr }] = rmapVmas(core, head);
    expect(pageVmaMappedWalk(core, vma, head, HPAGE_PMD_NR, addr, true)).toEqual([]);
    expect(pageVmaMappedWalk(core, vma, head, HPAGE_PMD_NR, addr, false)).toHaveLength(1);
    folioGet(core, head);
    core.sched.runSync(tryToMigrate(core, head), 'try_to_migrate');
    expect(pmdKind(k, p, w)).toBe('migration-write');
    expect(core.map.refcount[head]).toBe(1);
    expect(core.map.entireMapcount[head]).toBe(0);
    expect(pageVmaMappedWalk(core, vma, head, HPAGE_PMD_NR, addr, true)).toHaveLength(1);
    expect(pageVmaMappedWalk(core, vma, head, HPAGE_PMD_NR, addr, false)).toEqual([]);
    core.sched.runSync(removeMigrationPtes(core, head, head), 'remove_migration_ptes');
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(core.map.flags[head] & PG_anon_exclusive).toBe(PG_anon_exclusive);
    folioPut(core, head);
    expect(core.map.refcount[head]).toBe(1);
    expect(check()).toEqual([]);
  });
});

describe('try_to_migrate() without a generator', () => {
  it('with the rmap lock free it finishes at once (no generator) and leaves the lock free', () => {
    const mc = machine();
    const { k, p, check } = mc;
    const [w, head] = deviceThp(mc);
    const core = k.core;
    folioGet(core, head);
    const r = core.sched.runSync(
      (function* () {
        return tryToMigrateNoWait(core, head);
      })(),
      'try_to_migrate',
    );
    expect(r).toBeUndefined();
    expect(pmdKind(k, p, w)).toBe('migration-write');
    const lock = rmapLockOf(core, head);
    expect(lock?.writer).toBeNull();
    expect([...(lock?.readers.values() ?? [])].filter((n) => n > 0)).toEqual([]);
    core.sched.runSync(removeMigrationPtes(core, head, head), 'remove_migration_ptes');
    folioPut(core, head);
    expect(check()).toEqual([]);
  });
});

describe('/proc/self/pagemap and hmm_range_fault on device-private entries', () => {
  it('pagemap reports swap entries with the device type and the subpage pfn, never present', () => {
    const mc = machine();
    const { k, p } = mc;
    const [w, head] = deviceThp(mc);
    const e = pagemapEntry(k.core, p.mm, w + 7 * PAGE_SIZE);
    expect(e & PM_PRESENT).toBe(0n);
    expect(e & PM_SWAP).toBe(PM_SWAP);
    expect(Number(e & 31n)).toBe(SWP_DEVICE_WRITE);
    expect(Number((e & ((1n << 55n) - 1n)) >> 5n)).toBe(head + 7);
    k.task(p.fork());
    expect(Number(pagemapEntry(k.core, p.mm, w) & 31n)).toBe(SWP_DEVICE_READ);
  });

  it('reports an owned device PMD as PFNs of map order 9 and faults it back for another owner', () => {
    const mc = machine();
    const { k, p, dev, dev2, check } = mc;
    const [w, head] = deviceThp(mc);
    const snapshot = (owner: unknown) => {
      const sub = new MmuIntervalNotifier(p.mm, w, w + PMD_SIZE, {
        *invalidate() {
          return true;
        },
      });
      const range: HmmRange = {
        notifier: sub,
        notifierSeq: 0,
        start: w,
        end: w + PMD_SIZE,
        hmmPfns: new Float64Array(HPAGE_PMD_NR),
        defaultFlags: 0,
        pfnFlagsMask: 0,
        devPrivateOwner: owner,
      };
      expect(k.core.sched.runSync(hmmRangeFault(k.core, range), 'hmm_range_fault')).toBe(0);
      return range.hmmPfns;
    };
    const mine = snapshot(dev);
    expect(hmmPfnToPfn(mine[9])).toBe(head + 9);
    expect(hmmPfnToMapOrder(mine[9])).toBe(HPAGE_PMD_ORDER);
    expect(hmmPfnFlags(mine[9]) & (HMM_PFN_VALID | HMM_PFN_WRITE)).toBe(HMM_PFN_VALID | HMM_PFN_WRITE);
    // hmm_vma_handle_absent_pmd(): another device's private THP with no fault requested is an error.
    expect(snapshot(dev2)[9]).toBe(HMM_PFN_ERROR);
    const buf = new Uint8Array(8);
    expect(dev.access(p.mm, w + 16, buf, false)).toBe(0);
    expect(new Int32Array(buf.buffer)[0]).toBe(4);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(dev2.access(p.mm, w + 16, buf, false)).toBe(0);
    expect(new Int32Array(buf.buffer)[1]).toBe(5);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(check()).toEqual([]);
  });
});
