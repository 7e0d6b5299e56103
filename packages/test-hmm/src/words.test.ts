import {
  accessWords,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { type HmmBuffer, hmmDmirrorCmd, hmmOpen, machine } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_READ, HMM_DMIRROR_WRITE } from './uapi.js';

const NPAGES = 64;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const words = (n: number, base: number) => Float64Array.from({ length: n }, (_, i) => base + i);

describe('pages of one word through dmirror (the bounce buffer keeps the word)', () => {
  it('WRITE, READ and a migration move word pages without writing their bytes, and the data is right', () => {
    const { k, p } = machine();
    const core = k.core;
    const fd = hmmOpen(p, 0);
    const buf: HmmBuffer = {
      ptr: p.mmap(0, NPAGES * PAGE_SIZE, RW, ANON),
      mirror: p.mmap(0, NPAGES * PAGE_SIZE, RW, ANON),
      size: NPAGES * PAGE_SIZE,
      cpages: 0,
      faults: 0,
    };
    // The program fills its mirror buffer with one word per page; the device stores it (WRITE).
    expect(p.run('store', accessWords(core, p.mm, buf.mirror, words(NPAGES, 0x3000), 'write'))).toBe(0);
    const filled = core.frames.pagesFilled;
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_WRITE, buf, NPAGES)).toBe(0);
    expect(buf.cpages).toBe(NPAGES);
    // The CPU sees what the device wrote, as words and as bytes.
    const got = new Float64Array(NPAGES);
    expect(p.run('load', accessWords(core, p.mm, buf.ptr, got, 'read'))).toBe(0);
    expect([...got]).toEqual([...words(NPAGES, 0x3000)]);
    // To the device and back to the mirror buffer (READ): still the words, no bytes written.
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
    expect(p.run('store', accessWords(core, p.mm, buf.mirror, new Float64Array(NPAGES), 'write'))).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, NPAGES)).toBe(0);
    expect(core.frames.pagesFilled).toBe(filled);
    expect(p.run('load', accessWords(core, p.mm, buf.mirror, got, 'read'))).toBe(0);
    expect([...got]).toEqual([...words(NPAGES, 0x3000)]);
    expect(p.readI32(buf.mirror + 9 * PAGE_SIZE + 40)).toBe(0x3009);
    expect(k.check()).toEqual([]);
  });
});
