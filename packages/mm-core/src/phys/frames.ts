import { PAGE_SHIFT, PAGE_SIZE } from '../constants.js';
import type { HostMemoryPool } from './hostpool.js';

/** Pages per lazily allocated backing block (2 MiB). */
export const BLOCK_PAGES = 512;
const BLOCK_BYTES = BLOCK_PAGES * PAGE_SIZE;
const PAGE_MASK_IN_BLOCK = BLOCK_PAGES - 1;

/** Page state: the host bytes are zero (never written since the block was allocated, or filled). */
const CLEAN = 0;
/** Page state: the host bytes are the page's contents. */
const DATA = 1;
/** Page state: the page is known to be zero but its host bytes are stale (a clear not yet done). */
const STALE = 2;
/** Index of the per-block count of pages that are not DATA, stored after the 512 page states. */
const NOT_DATA = BLOCK_PAGES;

let zeroBlock: Uint8Array | undefined;

/**
 * Models the bytes of physical memory (what kmap_local_page() reaches): lazily allocated 2 MiB
 * blocks indexed by pfn >> 9, with known-zero tracking per 4 KiB page.
 *
 * A page never written costs no host memory and no zeroing: a block that does not exist reads as
 * zero, and within a block each page is CLEAN (host bytes zero, never written), DATA (the bytes
 * are its contents) or STALE (known zero, bytes not cleared yet). {@link Frames.zero} (clear_page)
 * only marks DATA pages STALE; {@link Frames.copy} from a known-zero page is a clear; the bytes of
 * a STALE page are filled only when somebody asks for them. A block whose pages are all DATA
 * carries no state array, so the hot accessors cost one extra load.
 *
 * Accessors return the whole block (offset of pfn is (pfn & 511) << 12); they differ in what the
 * caller may do with it: {@link Frames.readBlock} (read pages [pfn, pfn+nr)), {@link Frames.writeBlock}
 * (read and write those pages), {@link Frames.block32} and {@link Frames.page} (one page) and
 * {@link Frames.block} (any page of the block: conservative, makes all of them DATA).
 * Device-private pfns have no bytes (the caller must not ask for them).
 */
/** One 2 MiB block: its bytes (two views) and the page states (undefined while every page is DATA). */
class FrameBlock {
  readonly u32: Uint32Array;
  /** Page states and [NOT_DATA] = how many are not DATA; undefined = every page DATA. */
  st: Uint16Array | undefined;
  /** The state array while unused (all DATA), kept so that clears do not allocate. */
  spare: Uint16Array | undefined = undefined;

  constructor(
    readonly u8: Uint8Array,
    stale: boolean,
  ) {
    this.u32 = new Uint32Array(u8.buffer, 0, BLOCK_BYTES >>> 2);
    const st = new Uint16Array(BLOCK_PAGES + 1);
    if (stale) st.fill(STALE, 0, BLOCK_PAGES);
    st[NOT_DATA] = BLOCK_PAGES;
    this.st = st;
  }
}

export class Frames {
  /** @param pool Model-only: 2 MiB buffers of released machines to reuse ({@link HostMemoryPool}). */
  constructor(private readonly pool?: HostMemoryPool) {}

  /**
   * Blocks by pfn >> 9, a dense array (filled with undefined up to the highest block used) so
   * that lookups stay on V8's fast elements rather than a dictionary.
   */
  private readonly blocks: (FrameBlock | undefined)[] = [];
  /** Number of 2 MiB blocks that have been materialised. */
  allocatedBlocks = 0;
  /** Pages cleared without touching bytes (clear of a known-zero page, or a deferred clear). */
  clearsElided = 0;
  /** Pages whose bytes were actually zero-filled (a deferred clear made real). */
  pagesFilled = 0;

  private materialise(b: number): FrameBlock {
    const blocks = this.blocks;
    while (blocks.length <= b) blocks.push(undefined);
    // A buffer of a released machine has stale bytes: its pages start STALE (known zero, cleared
    // on first access), like a block whose pages were all cleared.
    const reused = this.pool?.blocks.pop();
    const fb = new FrameBlock(reused ?? new Uint8Array(BLOCK_BYTES), reused !== undefined);
    blocks[b] = fb;
    this.allocatedBlocks++;
    return fb;
  }

  /**
   * Makes pages [i, i+n) of block b DATA; STALE pages are zero-filled first unless `overwrite`
   * (the caller replaces every byte of them). Returns the block.
   */
  private toData(b: number, i: number, n: number, overwrite: boolean): FrameBlock {
    const fb = this.blocks[b] ?? this.materialise(b);
    const st = fb.st;
    if (st === undefined) return fb;
    let left = st[NOT_DATA];
    for (let k = i; k < i + n; k++) {
      const s = st[k];
      if (s === DATA) continue;
      if (s === STALE && !overwrite) {
        fb.u8.fill(0, k << PAGE_SHIFT, (k + 1) << PAGE_SHIFT);
        this.pagesFilled++;
      }
      st[k] = DATA;
      left--;
    }
    st[NOT_DATA] = left;
    if (left === 0) {
      fb.spare = st;
      fb.st = undefined;
    }
    return fb;
  }

  /**
   * The 2 MiB block holding pfn, allocated on first use, for access to any of its pages: every
   * page of the block becomes DATA (pending clears are done first). Prefer the ranged accessors.
   */
  block(pfn: number): Uint8Array {
    const b = pfn >>> 9;
    const fb = this.blocks[b];
    if (fb !== undefined && fb.st === undefined) return fb.u8;
    return this.toData(b, 0, BLOCK_PAGES, false).u8;
  }

  /**
   * Models kmap_local_page() for writing pages [pfn, pfn+nr) (within one block): the block,
   * allocated on first use, with those pages' pending clears done and the pages marked DATA.
   */
  writeBlock(pfn: number, nr: number): Uint8Array {
    const b = pfn >>> 9;
    const fb = this.blocks[b];
    if (fb !== undefined) {
      const st = fb.st;
      if (st === undefined || (nr === 1 && st[pfn & PAGE_MASK_IN_BLOCK] === DATA)) return fb.u8;
    }
    return this.toData(b, pfn & PAGE_MASK_IN_BLOCK, nr, false).u8;
  }

  /**
   * Models kmap_local_page() for reading pages [pfn, pfn+nr) (within one block). A block that was
   * never allocated is not allocated: a shared all-zero block comes back, which the caller must
   * not write. Pending clears of those pages are done (the pages become CLEAN).
   */
  readBlock(pfn: number, nr: number): Uint8Array {
    const fb = this.blocks[pfn >>> 9];
    if (fb === undefined) {
      zeroBlock ??= new Uint8Array(BLOCK_BYTES);
      return zeroBlock;
    }
    const st = fb.st;
    if (st === undefined) return fb.u8;
    const i = pfn & PAGE_MASK_IN_BLOCK;
    for (let k = i; k < i + nr; k++) {
      if (st[k] !== STALE) continue;
      fb.u8.fill(0, k << PAGE_SHIFT, (k + 1) << PAGE_SHIFT);
      this.pagesFilled++;
      st[k] = CLEAN;
    }
    return fb.u8;
  }

  /** Models kmap_local_page() of a page-table page: the block of pfn as 32-bit words, for reading and writing page pfn. */
  block32(pfn: number): Uint32Array {
    const b = pfn >>> 9;
    const fb = this.blocks[b];
    if (fb !== undefined) {
      const st = fb.st;
      if (st === undefined || st[pfn & PAGE_MASK_IN_BLOCK] === DATA) return fb.u32;
    }
    return this.toData(b, pfn & PAGE_MASK_IN_BLOCK, 1, false).u32;
  }

  /** Models a known-zero page (never written, or cleared since): reads return zeros. */
  isZero(pfn: number): boolean {
    const fb = this.blocks[pfn >>> 9];
    if (fb === undefined) return true;
    const st = fb.st;
    return st !== undefined && st[pfn & PAGE_MASK_IN_BLOCK] !== DATA;
  }

  /** True when page pfn reads as zero without any host bytes behind it ({@link Frames.isZero}). */
  untouched(pfn: number): boolean {
    return this.isZero(pfn);
  }

  /**
   * Models clear_page() / folio_zero_range() for nr pages starting at pfn: free for pages already
   * known to be zero; DATA pages become STALE (their bytes are cleared when next accessed).
   */
  zero(pfn: number, nr: number): void {
    let p = pfn;
    let left = nr;
    this.clearsElided += nr;
    while (left > 0) {
      const i = p & PAGE_MASK_IN_BLOCK;
      const inBlock = Math.min(left, BLOCK_PAGES - i);
      const fb = this.blocks[p >>> 9];
      if (fb !== undefined) {
        let st = fb.st;
        if (st === undefined) {
          // Every page is DATA: the spare state array already says so.
          st = fb.spare;
          if (st === undefined) {
            st = new Uint16Array(BLOCK_PAGES + 1).fill(DATA);
            st[NOT_DATA] = 0;
          }
          fb.st = st;
        }
        let stale = 0;
        for (let k = i; k < i + inBlock; k++) {
          if (st[k] !== DATA) continue;
          st[k] = STALE;
          stale++;
        }
        st[NOT_DATA] += stale;
      }
      p += inBlock;
      left -= inBlock;
    }
  }

  /**
   * Models copy_highpage()/folio_copy() for nr pages (ranges may cross blocks): a known-zero
   * source page is a clear of the destination page; other pages are copied byte for byte.
   * `from` is the store the source pages live in (another Frames, e.g. a swap device's slots:
   * swap_read_folio()/swap_writeout()); by default this one.
   */
  copy(dstPfn: number, srcPfn: number, nr: number, from: Frames = this): void {
    let d = dstPfn;
    let s = srcPfn;
    let left = nr;
    while (left > 0) {
      const n = Math.min(
        left,
        BLOCK_PAGES - (d & PAGE_MASK_IN_BLOCK),
        BLOCK_PAGES - (s & PAGE_MASK_IN_BLOCK),
      );
      const sfb = from.blocks[s >>> 9];
      if (sfb === undefined) this.zero(d, n);
      else if (sfb.st === undefined) this.copyData(d, sfb.u8, s, n);
      else {
        // Split into runs of DATA source pages (copied) and known-zero ones (cleared).
        const sst = sfb.st;
        let k = 0;
        while (k < n) {
          const data = sst[(s + k) & PAGE_MASK_IN_BLOCK] === DATA;
          let r = 1;
          while (k + r < n && (sst[(s + k + r) & PAGE_MASK_IN_BLOCK] === DATA) === data) r++;
          if (data) this.copyData(d + k, sfb.u8, s + k, r);
          else this.zero(d + k, r);
          k += r;
        }
      }
      d += n;
      s += n;
      left -= n;
    }
  }

  /** Copies n DATA pages from block bytes sb at pfn s to pfn d (both runs within their blocks). */
  private copyData(d: number, sb: Uint8Array, s: number, n: number): void {
    const dblk = this.toData(d >>> 9, d & PAGE_MASK_IN_BLOCK, n, true).u8;
    const soff = (s & PAGE_MASK_IN_BLOCK) << PAGE_SHIFT;
    dblk.set(sb.subarray(soff, soff + (n << PAGE_SHIFT)), (d & PAGE_MASK_IN_BLOCK) << PAGE_SHIFT);
  }

  /** A view of one page's bytes, for reading and writing (allocates its block). */
  page(pfn: number): Uint8Array {
    const off = (pfn & PAGE_MASK_IN_BLOCK) << PAGE_SHIFT;
    return this.writeBlock(pfn, 1).subarray(off, off + PAGE_SIZE);
  }

  /**
   * Model-only: the machine is gone (its Kernel is discarded): with a pool, the blocks' host
   * buffers go to the next machine's blocks; this machine has no frames left.
   */
  release(): void {
    const pool = this.pool;
    if (pool)
      for (const fb of this.blocks)
        if (fb !== undefined && pool.blocks.length < pool.maxBlocks) pool.blocks.push(fb.u8);
    this.blocks.length = 0;
    this.allocatedBlocks = 0;
  }

  /** Bytes of host address space reserved for simulated frames (host pages are committed on first write). */
  get bytesAllocated(): number {
    return this.allocatedBlocks * BLOCK_BYTES;
  }
}
