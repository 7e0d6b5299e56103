/**
 * One test per common driver mistake, each showing the message that reports it, so a developer
 * who sees that message knows what to look for. The machine runs mm core's, migrate-vma's and
 * the toy GPU's checkers after every syscall and driver call (testing/setup.ts).
 */

import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_WRITE,
  type MigrateVma,
  migratePfn,
  migratePfnToPage,
  mpfnFlags,
} from '@hmm-model/migrate-vma';
import {
  folioPut,
  folioUnlock,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  type HmmRange,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  hmmRangeFault,
  KernelBug,
  type KGen,
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  mmapReadLock,
  mmapReadUnlock,
  mmuIntervalReadBegin,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { folioZoneDeviceData } from '@hmm-model/zone-device';
import { describe, expect, it } from 'vitest';
import type { ToyGpu } from './gpu.js';
import { migrateToDeviceGen } from './migrate.js';
import { ToyGpuMirror } from './mirror.js';
import { fill, machine, parkAt, thpBuffer } from './testing/setup.js';

/** Visits each selected unit of a collected migration: slot index, src flags, source pfn. */
function eachUnit(mig: MigrateVma, f: (i: number, flags: number, spfn: number) => void): void {
  for (let i = 0; i < mig.npages; i++) {
    const flags = mpfnFlags(mig.src[i]);
    if (!(flags & MIGRATE_PFN_MIGRATE)) continue;
    f(i, flags, migratePfnToPage(mig.src[i]));
    if (flags & MIGRATE_PFN_COMPOUND) i += HPAGE_PMD_NR - 1;
  }
}

describe('driver mistakes and the messages that report them', () => {
  it('a destination folio left locked: "device folio locked outside any migration in flight"', () => {
    const { drv, p } = machine();
    const a = thpBuffer(p, 1);
    fill(p, a, 16, (i) => i);
    const leaky = (gpu: ToyGpu, mig: MigrateVma) =>
      eachUnit(mig, () => {
        const d = gpu.allocFolio(HPAGE_PMD_ORDER); // locked, one reference (zone_device_folio_init)
        // BUG: the driver gives up on this unit (say its copy failed) and leaves dst[i] empty,
        // but forgets folio_unlock(d) + folio_put(d): nobody will ever unlock or free it.
        void d;
      });
    expect(() => drv.migrateToDevice(p, a, PMD_SIZE, leaky)).toThrow(
      /pgmap \d+ \(toy_gpu\): device folio locked outside any migration in flight\n\s+page pfn:0x[0-9a-f]+ .*order:9 refcount:1 .*flags:locked/,
    );
    // Unload would now wait forever in memunmap_pages() for that folio.
  });

  it('MIGRATE_PFN_COMPOUND on a small destination: a VM_BUG_ON, and in flight "COMPOUND destination is not the head of a PMD-order folio"', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 1);
    fill(p, a, 16, (i) => i);
    const wrong = (gpu: ToyGpu, mig: MigrateVma) =>
      eachUnit(mig, (i, flags, spfn) => {
        const d = gpu.allocFolio(0); // an order-0 device page ...
        gpu.copyToVram(d, spfn, 1);
        // BUG: ... handed over for a THP source with the source's COMPOUND flag. COMPOUND promises
        // a PMD-order destination; for a small one leave it off (migrate_vma_pages() then splits
        // the source) and fill all 512 slots.
        mig.dst[i] = migratePfn(d) + (flags & (MIGRATE_PFN_WRITE | MIGRATE_PFN_COMPOUND));
      });
    // Without help it surfaces late, where the kernel's CONFIG_DEBUG_VM build would stop:
    let thrown: unknown;
    try {
      drv.migrateToDevice(p, a, PMD_SIZE, wrong);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(KernelBug);
    expect(String(thrown)).toMatch(
      /VM_BUG_ON \(modelled\): destination is not PMD-mappable in remove_migration_pmd/,
    );
    // Checking while the migration is stopped between its phases names the slot at fault:
    const m2 = machine();
    const b = thpBuffer(m2.p, 1);
    fill(m2.p, b, 16, (i) => i);
    const mig = parkAt(
      m2.k,
      'migrate to device',
      migrateToDeviceGen(m2.drv.gpu, m2.p.mm, b, b + PMD_SIZE, wrong),
      'toy_gpu: after alloc_and_copy',
    );
    const seen = m2.k.check();
    expect(() => mig.resume()).toThrow(KernelBug);
    expect(seen[0]).toMatch(
      /^migration \[slot 0\]: COMPOUND destination is not the head of a PMD-order \(or declared mTHP-order\) folio/,
    );
    expect(k.check().length).toBeGreaterThan(0); // and the first machine is left broken
  });

  it('a folio freed twice: "is twice on the free lists", or a refcount underflow', () => {
    const { drv, p } = machine();
    const a = thpBuffer(p, 1);
    fill(p, a, 16, (i) => i);
    const twice = (gpu: ToyGpu, mig: MigrateVma) =>
      eachUnit(mig, () => {
        const d = gpu.allocFolio(HPAGE_PMD_ORDER);
        folioUnlock(gpu.core, d);
        folioPut(gpu.core, d); // the last reference: folio_free() puts it on the free list ...
        gpu.freeLarge.push(d); // BUG: ... and the error path gives it back a second time
      });
    expect(() => drv.migrateToDevice(p, a, PMD_SIZE, twice)).toThrow(
      /pgmap \d+ \(toy_gpu\): pfn 0x[0-9a-f]+ is twice on the free lists/,
    );
    // Dropping the same reference twice is caught at once, as VM_BUG_ON_FOLIO in folio_put():
    const m2 = machine();
    const b = thpBuffer(m2.p, 1);
    const putTwice = (gpu: ToyGpu, mig: MigrateVma) =>
      eachUnit(mig, () => {
        const d = gpu.allocFolio(HPAGE_PMD_ORDER);
        folioUnlock(gpu.core, d);
        folioPut(gpu.core, d);
        folioPut(gpu.core, d); // BUG
      });
    expect(() => m2.drv.migrateToDevice(m2.p, b, PMD_SIZE, putTwice)).toThrow(
      /VM_BUG_ON \(modelled\): refcount underflow in folio_put/,
    );
  });

  const SITE = 'toy_gpu_fault: hmm_range_fault done, before the driver lock';

  it('a missing mmu_interval_read_retry(): the GPU reads another page\'s data; "GPU PTE ... is stale"', () => {
    /** BUG: commits hmm_range_fault()'s result without checking the notifier sequence. */
    class NoRetryMirror extends ToyGpuMirror {
      override *faultGen(addr: number, npages: number, write: boolean): KGen<number> {
        const core = this.gpu.core;
        const start = addr - (addr % PAGE_SIZE);
        const range: HmmRange = {
          notifier: this.notifier,
          notifierSeq: 0,
          start,
          end: start + npages * PAGE_SIZE,
          hmmPfns: new Float64Array(npages),
          defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
          pfnFlagsMask: 0,
          devPrivateOwner: this.gpu,
        };
        range.notifierSeq = yield* mmuIntervalReadBegin(core, this.notifier);
        yield* mmapReadLock(core, this.mm, 'no_retry_fault');
        const ret = yield* hmmRangeFault(core, range);
        mmapReadUnlock(core, this.mm, 'no_retry_fault');
        if (ret) return ret;
        yield SITE;
        yield* this.gpu.mutex.lock(core.sched, 'no_retry_fault');
        this.commit(range); // BUG: no mmu_interval_read_retry(this.notifier, range.notifierSeq)
        this.gpu.mutex.unlock(core.sched, 'no_retry_fault');
        return 0;
      }
    }
    const race = (good: boolean) => {
      const { k, drv, p } = machine();
      const a = p.mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      p.writeI32(a, 1);
      const m = good ? drv.bind(p) : new NoRetryMirror(drv.gpu, p.mm);
      const buf = new Uint8Array(4);
      const gpu = parkAt(k, 'gpu read', m.accessGen(a, buf, 'read'), SITE);
      // Another CPU, while the GPU fault is between hmm_range_fault() and the driver lock: the
      // page is zapped, its frame reused for another page, and the address gets a new page.
      p.madvise(a, PAGE_SIZE, MADV_DONTNEED);
      p.writeI32(a + PAGE_SIZE, 0x0bad); // takes the freed frame
      p.writeI32(a, 2);
      const r = gpu.resume();
      return { k, m, r, value: new Int32Array(buf.buffer)[0] };
    };
    const ok = race(true);
    expect([ok.r, ok.value, ok.m.retries]).toEqual([0, 2, 1]); // the retry saw the invalidation
    expect(ok.k.check()).toEqual([]);
    const bad = race(false);
    expect([bad.r, bad.value]).toEqual([0, 0x0bad]); // the GPU read someone else's page
    expect(bad.k.check().join('\n')).toMatch(
      /toy_gpu mirror of mm \d+: GPU PTE 0x[0-9a-f]+ -> pfn 0x[0-9a-f]+ is stale: the CPU maps pfn 0x[0-9a-f]+ there \(an invalidation was missed: was mmu_interval_read_retry\(\) checked under the driver lock\?\)/,
    );
  });

  it('a folio_split op that forgets the new folios: "has zone_device_data 0 ... lost in a folio_split?"', () => {
    const { k, drv, p } = machine();
    const a = thpBuffer(p, 1);
    fill(p, a, 16, (i) => i);
    drv.migrateToDevice(p, a, PMD_SIZE);
    const gpu = drv.gpu;
    const core = gpu.core;
    // BUG: the split callback does nothing, so the 511 new folios lose the driver's per-folio data.
    gpu.folioSplit = () => {};
    expect(p.mprotect(a, PAGE_SIZE, PROT_READ)).toBe(0); // splits the device-private PMD only
    expect(p.readI32(a)).toBe(0); // migrate_to_ram of one PTE splits the device THP
    expect(k.check()[0]).toMatch(
      /^toy_gpu: device folio 0x[0-9a-f]+ has zone_device_data 0, expected \d+ \(lost in a folio_split\?\)/,
    );
    expect(folioZoneDeviceData(core, gpu.pgmap.startPfn + 1)).toBe(0);
  });
});
