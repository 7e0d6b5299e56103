import { accessWords, PAGE_SIZE, PMD_SIZE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { gpuAccessWordsGen, gpuPte, gpuRead } from './fault.js';
import { svmmMigrateToVram } from './migrate.js';
import { gpuInts, rig, thpWindow } from './testing.js';

const words = (n: number, base: number) => Float64Array.from({ length: n }, (_, i) => base + i);

describe('pages of one word through VRAM (the copy engine and GPU accesses keep the word)', () => {
  it('a THP of word pages migrates to VRAM and back without bytes, and reads the same as bytes', () => {
    const { k, drm, p, svmm } = rig();
    const core = k.core;
    const w = thpWindow(p, false);
    expect(p.run('store', accessWords(core, p.mm, w, words(512, 0x7000), 'write'))).toBe(0);
    expect(svmmMigrateToVram(svmm, w, w + PMD_SIZE)).toMatchObject({ ret: 0, thps: 1 });
    expect(gpuPte(svmm, w)).toMatchObject({ aperture: 'vram', pageShift: 21 });
    // The VRAM store holds the words: no host bytes were written for them.
    const vram = drm.vram.store;
    expect(vram.pagesFilled).toBe(0);
    const got = new Float64Array(512);
    expect(core.sched.runSync(gpuAccessWordsGen(svmm, w, got, 'read'), 'gpu load')).toBe(0);
    expect([...got]).toEqual([...words(512, 0x7000)]);
    // A GPU byte load sees the same data.
    expect(gpuInts(gpuRead(svmm, w + 5 * PAGE_SIZE + 64, 8))).toEqual(Int32Array.from([0x7005, 0x7005]));
    // A GPU word store in VRAM, then the CPU faults the THP back: every page holds its word.
    expect(
      core.sched.runSync(gpuAccessWordsGen(svmm, w + PAGE_SIZE, words(1, 0xcafe), 'write'), 'gpu store'),
    ).toBe(0);
    const back = new Float64Array(512);
    expect(p.run('load', accessWords(core, p.mm, w, back, 'read'))).toBe(0);
    expect(back[0]).toBe(0x7000);
    expect(back[1]).toBe(0xcafe);
    expect(back[511]).toBe(0x7000 + 511);
    expect(p.readI32(w + PAGE_SIZE + 100)).toBe(0xcafe);
    expect(k.check()).toEqual([]);
  });

  it('an unaligned GPU word access is -EINVAL; freeing a buffer object drops its VRAM contents', () => {
    const { k, drm, p, svmm } = rig();
    const w = thpWindow(p, false);
    expect(
      k.core.sched.runSync(gpuAccessWordsGen(svmm, w + 8, words(1, 1), 'read'), 'gpu load'),
    ).toBeLessThan(0);
    const vram = drm.vram;
    const bo = vram.allocBo(PMD_SIZE);
    vram.write(bo + 4, Uint8Array.of(1, 2, 3));
    vram.store.fillWords(bo / PAGE_SIZE + 1, 1, [0xabc]);
    expect(vram.bytesAllocated).toBe(PMD_SIZE);
    vram.freeBo(bo);
    expect(vram.bytesAllocated).toBe(0);
    const buf = new Uint8Array(PAGE_SIZE * 2);
    vram.read(bo, buf);
    expect(buf.every((b) => b === 0)).toBe(true);
  });
});
