import { PAGE_SIZE, PMD_SIZE, RAM_START_PFN } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { NR_CHUNKS } from './constants.js';
import { gpuRead } from './fault.js';
import { gpuPtEntries, isNouveauDevicePfn, nouveauDmemInspect, nouveauVramAddrToPfn } from './inspect.js';
import { svmmMigrateToVram } from './migrate.js';
import { rig, thpWindow } from './testing.js';

describe('inspect: VRAM chunks, free lists and GPU page tables', () => {
  it('shows a large chunk with one folio handed out and the 2 MiB VRAM entry that maps it', () => {
    const { k, drm, p, svmm } = rig();
    expect(nouveauDmemInspect(drm)).toMatchObject({ chunks: [], freePages: 0, freeFolios: 0 });
    const w = thpWindow(p);
    expect(svmmMigrateToVram(svmm, w, w + PMD_SIZE)).toMatchObject({ ret: 0, thps: 1 });
    const info = nouveauDmemInspect(drm)!;
    expect(info.chunks).toHaveLength(1);
    const c = info.chunks[0];
    expect(c).toMatchObject({
      index: 0,
      isLarge: true,
      callocated: 1,
      freePages: 0,
      freeFolios: NR_CHUNKS - 1,
    });
    expect(info.freeFolios).toBe(NR_CHUNKS - 1);
    expect(info.freeFoliosHead).toHaveLength(4);
    expect(info.vramBoBytes).toBe(c.boSize);
    expect(info).toMatchObject({ copyLaunches: 1, linesCopied: 512 });

    const [e, ...more] = gpuPtEntries(svmm, w, w + PMD_SIZE);
    expect(more).toEqual([]);
    expect(e).toMatchObject({ va: w, aperture: 'vram', pageShift: 21, writable: true });
    const pfn = nouveauVramAddrToPfn(drm, e.addr);
    expect(pfn).toBeGreaterThanOrEqual(c.startPfn);
    expect(k.core.map.folioOrder(pfn)).toBe(9);
    expect(isNouveauDevicePfn(k.core, pfn)).toBe(true);
    expect(isNouveauDevicePfn(k.core, RAM_START_PFN)).toBe(false);
    expect(nouveauVramAddrToPfn(drm, drm.vram.size + PAGE_SIZE)).toBe(-1);

    // A GPU read of system memory elsewhere maps a host 4 KiB entry, outside the range above.
    const other = p.mmap(0, PAGE_SIZE, 3, 0x22);
    p.writeU8(other, 7);
    expect(gpuRead(svmm, other, 1)).toEqual(new Uint8Array([7]));
    expect(gpuPtEntries(svmm, other, other + PAGE_SIZE)).toEqual([
      expect.objectContaining({ va: other, aperture: 'host', pageShift: 12 }),
    ]);
    expect(gpuPtEntries(svmm, w, w + PMD_SIZE)).toHaveLength(1);
  });
});
