import {
  checkMmCore,
  FAULT_RETRY_BOUND,
  folioTrylock,
  folioUnlock,
  type KGen,
  LivelockFinding,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { folioZoneDeviceData } from '@hmm-model/zone-device';
import { describe, expect, it } from 'vitest';
import { checkNouveau } from './checker.js';
import { DMEM_CHUNK_NPAGES, DMEM_PAGEMAP_NPAGES, NR_CHUNKS } from './constants.js';
import { freeListPfns, nouveauDmemPageAddr } from './dmem.js';
import { gpuPte, gpuRead, gpuWrite } from './fault.js';
import { svmmMigrateToVram } from './migrate.js';
import { firstMismatch, gpuInts, pattern, pmdKind, pteKind, rig, thpWindow } from './testing.js';
import { toRamStats } from './toram.js';

describe('nouveau_dmem_migrate_vma with THP', () => {
  it('moves a PMD-mapped THP to VRAM whole, maps it as a 2 MiB GPU page, and faults it back at PMD level', () => {
    const { k, drm, p, svmm } = rig();
    const w = thpWindow(p);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(k.check()).toEqual([]);

    const r = svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    expect(r).toMatchObject({ ret: 0, batches: 1, cpages: 1, thps: 1, migratedPages: 512, allocFailed: 0 });
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    const dmem = drm.dmem!;
    expect(dmem.chunks).toHaveLength(1);
    expect(dmem.chunks[0].isLarge).toBe(true);
    expect(dmem.chunks[0].callocated).toBe(1);
    expect(freeListPfns(drm, dmem.freeFolios)).toHaveLength(NR_CHUNKS - 1);

    // The device folio: order 9, zone_device_data = the svmm, one copy-engine launch of 512 lines.
    const pte = gpuPte(svmm, w + 12345)!;
    expect(pte).toMatchObject({ va: w, aperture: 'vram', writable: true, pageShift: 21 });
    const head = dmem.chunks[0].pagemap.startPfn + (pte.addr - dmem.chunks[0].bo.offset) / PAGE_SIZE;
    expect(k.core.map.folioOrder(head)).toBe(9);
    expect(folioZoneDeviceData(k.core, head)).toBe(svmm.id);
    expect(nouveauDmemPageAddr(drm, head)).toBe(pte.addr);
    expect(dmem.migrate.engine).toMatchObject({ launches: 1, linesCopied: 512 });
    expect(gpuInts(gpuRead(svmm, w + 4096 * 300, 16))).toEqual(pattern(1024 * 300, 4));
    expect(k.check()).toEqual([]);

    // CPU read: do_huge_pmd_device_private -> migrate_to_ram of the whole folio.
    expect(firstMismatch(p, w, 0, PMD_SIZE / 4)).toBe(-1);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(toRamStats.get(drm)).toMatchObject({ calls: 1, thp: 1, small: 0 });
    expect(dmem.chunks[0].callocated).toBe(0);
    expect(freeListPfns(drm, dmem.freeFolios)).toHaveLength(NR_CHUNKS);
    // migrate_to_ram unmapped the range from the GPU; the next GPU access maps the system THP.
    expect(gpuPte(svmm, w)).toBeNull();
    expect(gpuInts(gpuRead(svmm, w + 8, 8))).toEqual(pattern(2, 2));
    expect(gpuPte(svmm, w)).toMatchObject({ aperture: 'host', pageShift: 21, writable: true });
    expect(k.check()).toEqual([]);
  });

  it('keeps GPU writes to VRAM and hands them back to the CPU', () => {
    const { k, p, svmm } = rig();
    const w = thpWindow(p);
    svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    expect(gpuWrite(svmm, w + PMD_SIZE - 8, new Uint8Array(new Int32Array([-7, -8]).buffer))).toBe(0);
    expect(gpuPte(svmm, w)?.aperture).toBe('vram');
    expect(p.readI32(w + PMD_SIZE - 4)).toBe(-8);
    expect(p.readI32(w + 4)).toBe(1);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(k.check()).toEqual([]);
  });

  it('populates an untouched aligned PMD as one compound hole and clears the reused VRAM', () => {
    const { k, drm, p, svmm } = rig();
    // Leave stale bytes in VRAM: migrate a THP with data, then unmap it (the folio returns to free_folios).
    const w0 = thpWindow(p);
    svmmMigrateToVram(svmm, w0, w0 + PMD_SIZE);
    const stale = gpuPte(svmm, w0)!.addr;
    expect(p.munmap(w0, PMD_SIZE)).toBe(0);
    expect(drm.dmem!.chunks[0].callocated).toBe(0);
    expect(gpuPte(svmm, w0)).toBeNull();

    const w = thpWindow(p, false);
    const engine = drm.dmem!.migrate.engine;
    const clears = engine.clears;
    const r = svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    expect(r).toMatchObject({ cpages: 1, holes: 1, thps: 1, migratedPages: 512 });
    expect(engine.clears).toBe(clears + 1);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    const pte = gpuPte(svmm, w)!;
    expect(pte).toMatchObject({ aperture: 'vram', pageShift: 21, writable: false });
    expect(pte.addr).toBe(stale); // LIFO free list: the same VRAM, now cleared
    expect(gpuInts(gpuRead(svmm, w + 4096 * 5, 8))).toEqual(new Int32Array(2));
    expect(p.readI32(w + 4096 * 5)).toBe(0);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(k.check()).toEqual([]);
  });

  it('clears small holes and copies small pages outside PMD-aligned ranges, 4 KiB GPU pages', () => {
    const { k, drm, p, svmm } = rig();
    const a = p.mmap(0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.writeI32(a + 2 * PAGE_SIZE, 42);
    const r = svmmMigrateToVram(svmm, a, a + 4 * PAGE_SIZE);
    expect(r).toMatchObject({ cpages: 4, holes: 3, thps: 0, migratedPages: 4 });
    const dmem = drm.dmem!;
    expect(dmem.chunks[0].isLarge).toBe(false);
    expect(dmem.chunks[0].callocated).toBe(4);
    for (let i = 0; i < 4; i++) {
      expect(pteKind(k, p, a + i * PAGE_SIZE)).toBe('device-private-write');
      expect(gpuPte(svmm, a + i * PAGE_SIZE)).toMatchObject({ aperture: 'vram', pageShift: 12 });
    }
    expect(gpuPte(svmm, a + 2 * PAGE_SIZE)?.writable).toBe(true);
    expect(gpuPte(svmm, a)?.writable).toBe(false); // a hole's src carries no WRITE
    expect(gpuInts(gpuRead(svmm, a + 2 * PAGE_SIZE, 4))[0]).toBe(42);
    expect(p.readI32(a + 2 * PAGE_SIZE)).toBe(42);
    expect(p.readI32(a + PAGE_SIZE)).toBe(0);
    expect(pteKind(k, p, a + 2 * PAGE_SIZE)).toBe('present');
    expect(k.check()).toEqual([]);
  });

  it('builds chunks like nouveau_dmem_chunk_alloc: 128 heads, or 511 pages per sub-chunk (quirk)', () => {
    const { drm, p, svmm } = rig();
    const a = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    svmmMigrateToVram(svmm, a, a + PAGE_SIZE);
    const dmem = drm.dmem!;
    const small = dmem.chunks[0];
    const listed = freeListPfns(drm, dmem.freePages);
    const perSub = DMEM_CHUNK_NPAGES - 1;
    expect(listed).toHaveLength(NR_CHUNKS * perSub - 1);
    // Contiguous pfns from the start; the cursor advances 511 per sub-chunk, so the listed range
    // ends 128 pages early and the last pop was its top.
    const start = small.pagemap.startPfn;
    expect(Math.max(...listed)).toBe(start + NR_CHUNKS * perSub - 2);
    expect(Math.min(...listed)).toBe(start);
    expect(DMEM_PAGEMAP_NPAGES - NR_CHUNKS * perSub).toBe(128);

    const w = thpWindow(p);
    svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    const large = dmem.chunks[0];
    expect(large.isLarge).toBe(true);
    const heads = freeListPfns(drm, dmem.freeFolios);
    expect(heads).toHaveLength(NR_CHUNKS - 1);
    for (const h of heads) expect((h - large.pagemap.startPfn) % DMEM_CHUNK_NPAGES).toBe(0);
    expect(checkNouveau(drm)).toEqual([]);
  });

  it('does not fall back to small device pages when the large allocation fails', () => {
    // 256 MiB of VRAM = one chunk; a small-page chunk takes it.
    const { k, drm, p, svmm } = rig({ vramBytes: 256 << 20 });
    const a = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.writeI32(a, 9);
    expect(svmmMigrateToVram(svmm, a, a + PAGE_SIZE)).toMatchObject({ migratedPages: 1 });
    const w = thpWindow(p);
    const splitsBefore = { ...k.core.vmstat };
    const r = svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    expect(r).toMatchObject({ cpages: 1, allocFailed: 1, thps: 0, migratedPages: 0 });
    expect(drm.dmem!.chunks).toHaveLength(1);
    expect(drm.dmem!.chunks[0].callocated).toBe(1);
    // The THP was restored whole: no split, no small device pages, no GPU mapping.
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(k.core.vmstat.thp_split_page).toBe(splitsBefore.thp_split_page);
    expect(k.core.vmstat.thp_split_pmd).toBe(splitsBefore.thp_split_pmd);
    expect(gpuPte(svmm, w)).toBeNull();
    expect(firstMismatch(p, w, 0, PMD_SIZE / 4)).toBe(-1);
    expect(p.readI32(a)).toBe(9);
    expect(k.check()).toEqual([]);
  });

  it('migrates a 4 MiB range in two batches and ignores pages already in VRAM', () => {
    const { k, drm, p, svmm } = rig();
    const raw = p.mmap(0, 3 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const w = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(w, 2 * PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    p.writeInts(w, pattern(0, (2 * PMD_SIZE) / 4));
    const r = svmmMigrateToVram(svmm, w, w + 2 * PMD_SIZE);
    expect(r).toMatchObject({ batches: 2, cpages: 2, thps: 2, migratedPages: 1024 });
    expect(drm.dmem!.chunks[0].callocated).toBe(2);
    // Already on the device: SELECT_SYSTEM does not collect device-private entries.
    expect(svmmMigrateToVram(svmm, w, w + 2 * PMD_SIZE)).toMatchObject({ cpages: 0, migratedPages: 0 });
    expect(firstMismatch(p, w + PMD_SIZE, PMD_SIZE / 4, PMD_SIZE / 4)).toBe(-1);
    expect(drm.dmem!.chunks[0].callocated).toBe(1);
    expect(k.check()).toEqual([]);
    p.exit(0);
    expect(drm.dmem!.chunks[0].callocated).toBe(0);
    expect(checkMmCore(k)).toEqual([]);
    expect(checkNouveau(drm)).toEqual([]);
  });

  it('migrate_to_ram has no fallback either: a failed order-9 system allocation is VM_FAULT_OOM, which pagefault_out_of_memory() retries, so while no THP can be had the CPU faults again and again', () => {
    const { k, drm, p, svmm } = rig();
    const w = thpWindow(p);
    svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    k.core.zone.failHook = (order) => order === 9;
    // No OOM kill (the #PF does not call the OOM killer since v5.16, and a costly order would not
    // anyway): the access repeats until the model's bound reports the livelock.
    expect(() => p.readI32(w)).toThrow(LivelockFinding);
    k.core.zone.failHook = undefined;
    expect(toRamStats.get(drm)).toMatchObject({ oom: FAULT_RETRY_BOUND, thp: 0, small: 0 });
    expect(k.core.vmstat.thp_split_page).toBe(0);
    expect(k.core.vmstat.oom_kill).toBe(0);
    expect(p.state).toBe('running');
    // Once a THP can be allocated, the next fault brings the folio back whole.
    expect(firstMismatch(p, w, 0, PMD_SIZE / 4)).toBe(-1);
    expect(toRamStats.get(drm)).toMatchObject({ thp: 1, small: 0 });
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(drm.dmem!.chunks[0].callocated).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('a CPU fault on a device THP whose folio lock another task holds spins until that holder has run', () => {
    const { k, drm, p, svmm } = rig();
    const w = thpWindow(p);
    svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    const pte = gpuPte(svmm, w)!;
    const chunk = drm.dmem!.chunks[0];
    const head = chunk.pagemap.startPfn + (pte.addr - chunk.bo.offset) / PAGE_SIZE;
    // A holder of the device folio's lock (as a racing migrate_to_ram() would be), for 5 steps.
    const holder = k.sched.spawn(
      'holder',
      (function* (): KGen {
        expect(folioTrylock(k.core, head)).toBe(true);
        for (let i = 0; i < 5; i++) yield 'holder: copying';
        folioUnlock(k.core, head);
      })(),
    );
    k.sched.runUntil(() => k.core.folioLockOwners.get(head) === holder);
    const buf = new Uint8Array(new Int32Array([-5]).buffer);
    const writer = k.sched.spawn('writer', p.sys.access(w + 64, buf, 'write'));
    k.sched.runUntil(() => writer.state === 'blocked');
    // do_huge_pmd_device_private() found the folio locked: it waits for the holder by name.
    expect(writer.wait?.retry).toBe(true);
    expect(writer.wait?.holders()).toEqual([holder]);
    expect(writer.site).toContain('spinning until holder makes progress');
    k.sched.runAll();
    expect(holder.state).toBe('done');
    expect(writer.result).toBe(0);
    expect(p.readI32(w + 64)).toBe(-5);
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(k.check()).toEqual([]);
  });
});
