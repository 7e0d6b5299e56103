import type { Frames } from '@hmm-model/mm-core';

/**
 * Copies nr pages from one set of frames to another (system RAM <-> a test device's memory):
 * Frames.copy() across stores, so known-zero and one-word pages move as their word and other
 * pages as bytes. Models the copy engine / folio_copy() of a driver.
 */
export function copyFrames(dst: Frames, dpfn: number, src: Frames, spfn: number, nr: number): void {
  dst.copy(dpfn, spfn, nr, src);
}
