import { BLOCK_PAGES, type Frames, PAGE_SHIFT } from '@hmm-model/mm-core';

/**
 * Copies nr pages from one set of frames to another (system RAM <-> a test device's memory),
 * one Uint8Array.set per run of pages inside a 2 MiB backing block; an untouched source block
 * reads as zeros. Models the copy engine / folio_copy() of a driver.
 */
export function copyFrames(dst: Frames, dpfn: number, src: Frames, spfn: number, nr: number): void {
  let d = dpfn;
  let s = spfn;
  let left = nr;
  while (left > 0) {
    const n = Math.min(left, BLOCK_PAGES - (d & (BLOCK_PAGES - 1)), BLOCK_PAGES - (s & (BLOCK_PAGES - 1)));
    if (src.untouched(s)) {
      dst.zero(d, n);
    } else {
      const soff = (s & (BLOCK_PAGES - 1)) << PAGE_SHIFT;
      const doff = (d & (BLOCK_PAGES - 1)) << PAGE_SHIFT;
      dst.block(d).set(src.block(s).subarray(soff, soff + (n << PAGE_SHIFT)), doff);
    }
    d += n;
    s += n;
    left -= n;
  }
}
