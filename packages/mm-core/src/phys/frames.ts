import { PAGE_SHIFT, PAGE_SIZE } from '../constants.js';

/** Pages per lazily allocated backing block (2 MiB). */
export const BLOCK_PAGES = 512;
const BLOCK_BYTES = BLOCK_PAGES * PAGE_SIZE;

/**
 * Models the bytes of physical memory (what kmap_local_page() reaches): lazily allocated
 * 2 MiB blocks indexed by pfn >> 9, so untouched memory costs nothing. Unallocated blocks
 * read as zero. Device-private pfns have no bytes (the caller must not ask for them).
 */
export class Frames {
  private blocks: (Uint8Array | undefined)[] = [];
  private blocks32: (Uint32Array | undefined)[] = [];
  /** Number of 2 MiB blocks that have been materialised. */
  allocatedBlocks = 0;

  /** The 2 MiB block holding pfn, allocated on first use. Offset of pfn is (pfn & 511) << 12. */
  block(pfn: number): Uint8Array {
    const b = pfn >>> 9;
    let blk = this.blocks[b];
    if (blk === undefined) {
      blk = new Uint8Array(BLOCK_BYTES);
      this.blocks[b] = blk;
      this.allocatedBlocks++;
    }
    return blk;
  }

  /** The block of pfn as 32-bit words (page tables live in frames as pairs of words). */
  block32(pfn: number): Uint32Array {
    const b = pfn >>> 9;
    let v = this.blocks32[b];
    if (v === undefined) {
      const blk = this.block(pfn);
      v = new Uint32Array(blk.buffer, blk.byteOffset, BLOCK_BYTES >>> 2);
      this.blocks32[b] = v;
    }
    return v;
  }

  /** True when the block of pfn was never written (reads as zero). */
  untouched(pfn: number): boolean {
    return this.blocks[pfn >>> 9] === undefined;
  }

  /** Models clear_page() / folio_zero_range() for nr pages starting at pfn. */
  zero(pfn: number, nr: number): void {
    let p = pfn;
    let left = nr;
    while (left > 0) {
      const inBlock = Math.min(left, BLOCK_PAGES - (p & (BLOCK_PAGES - 1)));
      const blk = this.blocks[p >>> 9];
      if (blk !== undefined) {
        const off = (p & (BLOCK_PAGES - 1)) << PAGE_SHIFT;
        blk.fill(0, off, off + (inBlock << PAGE_SHIFT));
      }
      p += inBlock;
      left -= inBlock;
    }
  }

  /** Models copy_highpage()/folio_copy() for nr pages (ranges may cross blocks). */
  copy(dstPfn: number, srcPfn: number, nr: number): void {
    let d = dstPfn;
    let s = srcPfn;
    let left = nr;
    while (left > 0) {
      const n = Math.min(left, BLOCK_PAGES - (d & (BLOCK_PAGES - 1)), BLOCK_PAGES - (s & (BLOCK_PAGES - 1)));
      const sb = this.blocks[s >>> 9];
      if (sb === undefined) {
        this.zero(d, n);
      } else {
        const soff = (s & (BLOCK_PAGES - 1)) << PAGE_SHIFT;
        const doff = (d & (BLOCK_PAGES - 1)) << PAGE_SHIFT;
        this.block(d).set(sb.subarray(soff, soff + (n << PAGE_SHIFT)), doff);
      }
      d += n;
      s += n;
      left -= n;
    }
  }

  /** A view of one page's bytes (allocates its block). */
  page(pfn: number): Uint8Array {
    const off = (pfn & (BLOCK_PAGES - 1)) << PAGE_SHIFT;
    return this.block(pfn).subarray(off, off + PAGE_SIZE);
  }

  /** Bytes of host memory materialised for simulated frames. */
  get bytesAllocated(): number {
    return this.allocatedBlocks * BLOCK_BYTES;
  }
}
