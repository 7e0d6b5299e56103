/**
 * Fix switch K13 (migrate_vma_collect_pmd()'s fault_folio after a split), reached through the
 * dmirror mTHP extension: a CPU fault on a device mTHP whose unit mremap() broke. The driver now
 * migrates only the fault page then (a model bug fixed in dmirror_devmem_fault()'s unit test);
 * these tests call migrate_vma_setup() over the whole range directly, as a driver that migrates
 * more than the fault page would.
 */
import {
  entryPfn,
  folioGet,
  folioLock,
  folioPut,
  folioUnlock,
  installMmCoreChecker,
  Kernel,
  KernelBug,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MREMAP_DONTUNMAP,
  MREMAP_MAYMOVE,
  mmapReadLock,
  mmapReadUnlock,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  pteIndex,
  pteTableOf,
  ptHi,
  ptLo,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import {
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  migrateVmaFinalize,
  migrateVmaSetup,
  mthpMappedAsUnit,
  newMigrateVma,
} from './kapi.js';
import { installDmirror } from './module.js';
import { fillInts, hmmDmirrorCmd, hmmOpen } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV } from './uapi.js';

const ORDER = 4;
const UNIT = PAGE_SIZE << ORDER;

/** A 64 KiB device mTHP whose page 7 mremap(MREMAP_DONTUNMAP) moved elsewhere. */
function brokenUnit(fixes: string[]) {
  const k = new Kernel({ ramBytes: 512 << 20, thp: 'never', thpAnon: { [ORDER]: 'always' }, fixes });
  installMmCoreChecker(k);
  const mod = installDmirror(k, { mthpOrders: { 0: 1 << ORDER } });
  k.spawn();
  const p = k.spawn();
  const fd = hmmOpen(p, 0);
  const raw = p.mmap(0, UNIT + PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const ptr = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  fillInts(p, ptr, UNIT / 4, (i) => i);
  const buf = { ptr, mirror: p.malloc(UNIT), size: UNIT, cpages: 0, faults: 0 };
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, UNIT / PAGE_SIZE)).toBe(0);
  const pfnAt = (addr: number) => {
    const t = pteTableOf(k.core, p.mm, addr, false);
    return entryPfn(ptLo(k.core, t, pteIndex(addr)), ptHi(k.core, t, pteIndex(addr)));
  };
  const head = k.core.map.head[pfnAt(ptr)];
  const vma = p.mm.vmaLookup(ptr)!;
  expect(k.core.map.folioOrder(head)).toBe(ORDER);
  expect(mthpMappedAsUnit(k.core, vma, ptr, head)).toBe(true);
  const moved = p.mremap(ptr + 7 * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
  expect(moved).toBeGreaterThan(0);
  // The folio still has 16 mappings, but the range no longer maps it as a unit.
  expect(k.core.map.largeMapcount[head]).toBe(16);
  expect(mthpMappedAsUnit(k.core, p.mm.vmaLookup(ptr)!, ptr, head)).toBe(false);
  return { k, mod, p, ptr, head, fault: pfnAt(ptr + 4 * PAGE_SIZE) };
}

/** do_swap_page() + a driver's migration of the whole 64 KiB around the fault page, no copy. */
function faultWholeRange(s: ReturnType<typeof brokenUnit>): void {
  const { k, mod, p, ptr, fault } = s;
  const core = k.core;
  k.core.sched.runSync(
    (function* () {
      yield* mmapReadLock(core, p.mm, 'test');
      // do_swap_page(): the device folio is locked and referenced around ->migrate_to_ram().
      folioLock(core, core.map.head[fault]);
      folioGet(core, core.map.head[fault]);
      try {
        const args = newMigrateVma({
          vma: p.mm.vmaLookup(ptr)!,
          start: ptr,
          end: ptr + UNIT,
          pgmapOwner: mod.devices[0],
          flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_COMPOUND,
          faultPage: fault,
          mthpOrders: 1 << ORDER,
        });
        expect(yield* migrateVmaSetup(core, args)).toBe(0);
        yield* migrateVmaFinalize(core, args);
      } finally {
        mmapReadUnlock(core, p.mm, 'test');
      }
      // The fault handler unlocks and puts the folio that now holds the fault page.
      folioUnlock(core, core.map.head[fault]);
      folioPut(core, core.map.head[fault]);
    })(),
    'fault',
  );
}

describe('K13: migrate_vma_collect_pmd() keeps fault_folio across a split (latent in v6.19)', () => {
  it('v6.19: the first piece is taken for the fault folio, collected unlocked, and finalize unlocks it: VM_BUG_ON', () => {
    const s = brokenUnit([]);
    let err: unknown = null;
    try {
      faultWholeRange(s);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelBug);
    expect((err as KernelBug).fn).toBe('folio_unlock');
  });

  it('with K13 the walk reads the fault folio again after the split: every piece is restored and unlocked', () => {
    const s = brokenUnit(['K13']);
    faultWholeRange(s);
    const m = s.k.core.map;
    for (let i = 0; i < 16; i++) expect(m.flags[s.head + i] & 1, `piece ${i} unlocked`).toBe(0);
    expect(m.folioOrder(m.head[s.fault])).toBe(0);
    expect(s.k.check()).toEqual([]);
  });
});
