import {
  checkMmCore,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { checkNouveau } from './checker.js';
import { nouveauDmemFini } from './evict.js';
import { gpuPte } from './fault.js';
import { svmmMigrateToVram } from './migrate.js';
import { firstMismatch, pattern, pmdKind, pteKind, rig, thpWindow } from './testing.js';

/** A THP (own large chunk) and 8 small pages (own small chunk) in VRAM. */
function populated(evictCompoundFixed: boolean) {
  const r = rig({ evictCompoundFixed });
  const { p, svmm } = r;
  const w = thpWindow(p);
  expect(svmmMigrateToVram(svmm, w, w + PMD_SIZE)).toMatchObject({ thps: 1 });
  const a = p.mmap(0, 8 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  p.writeInts(a, pattern(5000, 8 * 1024));
  expect(svmmMigrateToVram(svmm, a, a + 8 * PAGE_SIZE)).toMatchObject({ migratedPages: 8 });
  expect(r.drm.dmem!.chunks.map((c) => c.isLarge)).toEqual([false, true]);
  expect(r.k.check()).toEqual([]);
  return { ...r, w, a };
}

describe('nouveau_dmem_fini / nouveau_dmem_evict_chunk', () => {
  it('as merged, cannot evict a device THP (dst written without MIGRATE_PFN_COMPOUND) — suspected kernel bug', () => {
    const { k, drm, p, w, a } = populated(false);
    const head = drm.dmem!.chunks[1].pagemap.startPfn + 127 * 512; // last head pushed = first popped
    const freeBefore = k.core.zone.nrFree;
    const res = nouveauDmemFini(drm);
    // Newest chunk first: the small chunk evicts fully; the large one refuses its THP.
    expect(res.evictions).toEqual([
      { collected: 8, evicted: 8, refused: 0 },
      { collected: 1, evicted: 0, refused: 1 },
    ]);
    expect(res.notEvicted).toEqual([{ pfn: head, order: 9, mapped: true }]);
    expect(res).toMatchObject({ chunksFreed: 1, chunksStuck: 1 });
    expect(drm.warnings.map((x) => x.message)).toEqual([
      expect.stringContaining('WARN_ON(chunk->callocated) callocated=1'),
    ]);
    // The small pages are back in RAM, the THP is still a device PMD; nothing leaked (the order-9
    // destination the kernel allocated was freed again in finalize).
    expect(pteKind(k, p, a)).toBe('present');
    expect(firstMismatch(p, a, 5000, 8 * 1024)).toBe(-1);
    expect(pmdKind(k, p, w)).toBe('device-private-write');
    expect(k.core.zone.nrFree).toBe(freeBefore - 8);
    expect(k.check()).toEqual([]);

    // In the kernel memunmap_pages() would now wait forever. The model keeps the chunk: a CPU
    // access still migrates the THP back, after which teardown completes.
    expect(firstMismatch(p, w, 0, PMD_SIZE / 4)).toBe(-1);
    expect(pmdKind(k, p, w)).toBe('huge');
    const again = nouveauDmemFini(drm);
    expect(again).toMatchObject({ notEvicted: [], chunksFreed: 1, chunksStuck: 0 });
    expect(drm.dmem!.chunks).toHaveLength(0);
    expect(drm.dmem!.freePages).toBe(0);
    expect(drm.dmem!.freeFolios).toBe(0);
    expect(k.core.pgmaps.filter((x) => x !== undefined)).toHaveLength(0);
    expect(k.check()).toEqual([]);
  });

  it('with evictCompoundFixed (COMPOUND on the destination, as dmirror does) evicts the THP whole', () => {
    const { k, drm, p, svmm, w, a } = populated(true);
    expect(gpuPte(svmm, w)?.aperture).toBe('vram');
    const res = nouveauDmemFini(drm);
    expect(res.evictions).toEqual([
      { collected: 8, evicted: 8, refused: 0 },
      { collected: 1, evicted: 1, refused: 0 },
    ]);
    expect(res).toMatchObject({ notEvicted: [], chunksFreed: 2, chunksStuck: 0 });
    expect(drm.warnings).toEqual([]);
    // try_to_migrate() invalidated the GPU mapping; the CPU sees a system THP with the data.
    expect(gpuPte(svmm, w)).toBeNull();
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(firstMismatch(p, w, 0, PMD_SIZE / 4)).toBe(-1);
    expect(firstMismatch(p, a, 5000, 8 * 1024)).toBe(-1);
    expect(k.check()).toEqual([]);
    p.exit(0);
    expect(k.check()).toEqual([]);
  });

  it('evicts a PTE-mapped device THP as one folio with the fix, and not at all without it', () => {
    for (const fixed of [false, true]) {
      // Bug F30 (callocated underflow on a split) is switched on to show both nouveau bugs together.
      const { k, drm, p, svmm } = rig({ evictCompoundFixed: fixed, bugs: ['F30'] });
      const w = thpWindow(p);
      svmmMigrateToVram(svmm, w, w + PMD_SIZE);
      expect(p.munmap(w + PMD_SIZE / 2, PMD_SIZE / 2)).toBe(0);
      expect(pmdKind(k, p, w)).toBe('table');
      const res = nouveauDmemFini(drm);
      expect(res.notEvicted).toHaveLength(fixed ? 0 : 1);
      expect(pteKind(k, p, w + PAGE_SIZE)).toBe(fixed ? 'present' : 'device-private-write');
      expect(firstMismatch(p, w, 0, PMD_SIZE / 8)).toBe(-1);
      expect(checkMmCore(k)).toEqual([]);
      if (fixed) {
        expect(checkNouveau(drm)).toEqual([]);
        continue;
      }
      // Unfixed: the CPU faults split the device THP, and callocated underflows (see split.test.ts).
      expect(checkNouveau(drm)).toEqual([expect.stringContaining('callocated -511 but 0 allocated')]);
      expect(nouveauDmemFini(drm)).toMatchObject({ chunksStuck: 0, chunksFreed: 1, notEvicted: [] });
    }
  });

  it('callocated returns to 0 over migrate, fault back and eviction; fini without dmem is a no-op', () => {
    const { k, drm, p, svmm } = rig();
    const w = thpWindow(p);
    svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    expect(drm.dmem!.chunks[0].callocated).toBe(1);
    expect(p.readI32(w)).toBe(0);
    expect(drm.dmem!.chunks[0].callocated).toBe(0);
    svmmMigrateToVram(svmm, w, w + PMD_SIZE);
    expect(drm.dmem!.chunks[0].callocated).toBe(1);
    drm.options.evictCompoundFixed = true;
    const res = nouveauDmemFini(drm);
    expect(res.chunksFreed).toBe(1);
    expect(drm.warnings).toEqual([]);
    expect(k.check()).toEqual([]);
    const kepler = rig({ chipset: 'kepler' });
    expect(nouveauDmemFini(kepler.drm)).toMatchObject({ chunksFreed: 0, notEvicted: [] });
  });
});
