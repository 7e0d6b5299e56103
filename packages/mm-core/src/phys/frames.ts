import { PAGE_SHIFT, PAGE_SIZE } from '../constants.js';
import type { HostMemoryPool } from './hostpool.js';

/** Pages per lazily allocated backing block (2 MiB). */
export const BLOCK_PAGES = 512;
const BLOCK_BYTES = BLOCK_PAGES * PAGE_SIZE;
const PAGE_MASK_IN_BLOCK = BLOCK_PAGES - 1;

/**
 * Page state: the page is {@link FrameBlock.fw}[k] repeated and its host bytes say so too (a page
 * never written since its block was allocated is FILLED with 0: CLEAN).
 */
const FILLED = 0;
/** Page state: the host bytes are the page's contents. */
const DATA = 1;
/**
 * Page state: the page is {@link FrameBlock.fw}[k] repeated but its host bytes are stale (a clear
 * or a fill not yet done, or a copy of such a page).
 */
const FILL = 2;
/** Index of the per-block count of pages that are not DATA, stored after the 512 page states. */
const NOT_DATA = BLOCK_PAGES;
const PAGE_WORDS = PAGE_SIZE >>> 2;

let zeroBlock: Uint8Array | undefined;

/**
 * Models the bytes of physical memory (what kmap_local_page() reaches): lazily allocated 2 MiB
 * blocks indexed by pfn >> 9, with pages that are one 32-bit word repeated tracked as that word.
 *
 * A page never written costs no host memory and no zeroing: a block that does not exist reads as
 * zero, and within a block each page is FILLED (host bytes are a known word repeated, zero for a
 * page never written), DATA (the bytes are its contents) or FILL (a known word repeated, bytes
 * not written yet). {@link Frames.zero} (clear_page) and {@link Frames.fillWords} (a store of a
 * word over whole pages) only record the word; {@link Frames.copy} of such a page records it in
 * the destination; the bytes of a FILL page are written only when somebody asks for them. So
 * pages that user space fills with one word move no bytes through migration, COW, swap and the
 * drivers' copies. A block whose pages are all DATA carries no state array, so the hot accessors
 * cost one extra load.
 *
 * Accessors return the whole block (offset of pfn is (pfn & 511) << 12); they differ in what the
 * caller may do with it: {@link Frames.readBlock} (read pages [pfn, pfn+nr)), {@link Frames.writeBlock}
 * (read and write those pages), {@link Frames.block32} and {@link Frames.page} (one page) and
 * {@link Frames.block} (any page of the block: conservative, makes all of them DATA).
 * Device-private pfns have no bytes (the caller must not ask for them).
 */
/** One 2 MiB block: its bytes (two views), the page states and fill words (undefined while every page is DATA). */
class FrameBlock {
  readonly u32: Uint32Array;
  /** Page states and [NOT_DATA] = how many are not DATA; undefined = every page DATA. */
  st: Uint16Array | undefined;
  /** The word each FILLED or FILL page repeats (meaningless for DATA pages). */
  readonly fw = new Uint32Array(BLOCK_PAGES);
  /** The state array while unused (all DATA), kept so that clears do not allocate. */
  spare: Uint16Array | undefined = undefined;

  constructor(
    readonly u8: Uint8Array,
    stale: boolean,
  ) {
    this.u32 = new Uint32Array(u8.buffer, 0, BLOCK_BYTES >>> 2);
    const st = new Uint16Array(BLOCK_PAGES + 1);
    if (stale) st.fill(FILL, 0, BLOCK_PAGES);
    st[NOT_DATA] = BLOCK_PAGES;
    this.st = st;
  }

  /** The state array, made again (every page DATA) if the block had dropped it. */
  states(): Uint16Array {
    let st = this.st;
    if (st !== undefined) return st;
    st = this.spare;
    if (st === undefined) {
      st = new Uint16Array(BLOCK_PAGES + 1).fill(DATA);
      st[NOT_DATA] = 0;
    }
    this.st = st;
    return st;
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
  /** Pages cleared or filled without touching bytes (the word recorded instead). */
  clearsElided = 0;
  /** Pages whose bytes were actually written from their word (a deferred clear or fill made real). */
  pagesFilled = 0;
  /** Stores made by {@link Frames.store}, released with this one. */
  private readonly stores: Frames[] = [];

  /**
   * Model-only: a separate page store of the same machine (a driver's memory: VRAM, a bounce
   * buffer), backed by this one's host pool and released with it ({@link Frames.release}).
   * Copies between stores ({@link Frames.copy} with `from`) keep pages of one word as that word.
   */
  store(): Frames {
    const f = new Frames(this.pool);
    this.stores.push(f);
    return f;
  }

  private materialise(b: number): FrameBlock {
    const blocks = this.blocks;
    while (blocks.length <= b) blocks.push(undefined);
    // A buffer of a released machine has stale bytes: its pages start FILL with 0 (known zero,
    // cleared on first access), like a block whose pages were all cleared.
    const reused = this.pool?.blocks.pop();
    const fb = new FrameBlock(reused ?? new Uint8Array(BLOCK_BYTES), reused !== undefined);
    blocks[b] = fb;
    this.allocatedBlocks++;
    return fb;
  }

  /** Writes page k of fb from its fill word (a FILL page becomes FILLED). */
  private materialisePage(fb: FrameBlock, k: number): void {
    fb.u32.fill(fb.fw[k], k * PAGE_WORDS, (k + 1) * PAGE_WORDS);
    this.pagesFilled++;
  }

  /**
   * Makes pages [i, i+n) of block b DATA; FILL pages get their bytes first unless `overwrite`
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
      if (s === FILL && !overwrite) this.materialisePage(fb, k);
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
   * page of the block becomes DATA (pending fills are done first). Prefer the ranged accessors.
   */
  block(pfn: number): Uint8Array {
    const b = pfn >>> 9;
    const fb = this.blocks[b];
    if (fb !== undefined && fb.st === undefined) return fb.u8;
    return this.toData(b, 0, BLOCK_PAGES, false).u8;
  }

  /**
   * Models kmap_local_page() for writing pages [pfn, pfn+nr) (within one block): the block,
   * allocated on first use, with those pages' pending fills done and the pages marked DATA.
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
   * not write. Pending fills of those pages are done (the pages become FILLED).
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
      if (st[k] !== FILL) continue;
      this.materialisePage(fb, k);
      st[k] = FILLED;
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
    const k = pfn & PAGE_MASK_IN_BLOCK;
    return st !== undefined && st[k] !== DATA && fb.fw[k] === 0;
  }

  /** True when page pfn reads as zero without any host bytes behind it ({@link Frames.isZero}). */
  untouched(pfn: number): boolean {
    return this.isZero(pfn);
  }

  /**
   * Model-only (a load of every word of the page, as memchr_inv() does): the 32-bit word page pfn
   * is filled with, or -1 when its words differ. Free for a page whose word is recorded; a page
   * of bytes is scanned.
   */
  uniformWord(pfn: number): number {
    const fb = this.blocks[pfn >>> 9];
    if (fb === undefined) return 0;
    const k = pfn & PAGE_MASK_IN_BLOCK;
    const st = fb.st;
    if (st !== undefined && st[k] !== DATA) return fb.fw[k];
    const u = fb.u32;
    const w = u[k * PAGE_WORDS];
    for (let j = k * PAGE_WORDS + 1, e = (k + 1) * PAGE_WORDS; j < e; j++) if (u[j] !== w) return -1;
    return w;
  }

  /**
   * Models clear_page() / folio_zero_range() for nr pages starting at pfn: free for pages already
   * known to be zero; other pages become FILL with 0 (their bytes are cleared when next accessed).
   */
  zero(pfn: number, nr: number): void {
    this.fill(pfn, nr, null, 0);
  }

  /**
   * Model-only (a store of one 32-bit word over every word of whole pages, the explorer's user
   * stores and device writes): page pfn + k becomes words[wi + k] repeated, for k < nr, without
   * writing bytes. Reads see exactly what a byte-by-byte store would have left.
   */
  fillWords(pfn: number, nr: number, words: ArrayLike<number>, wi = 0): void {
    this.fill(pfn, nr, words, wi);
  }

  /**
   * Records page pfn + k as words[wi + k] repeated (all 0 when words is null), for k < nr: a page
   * already of that word is left as it is, and a block never allocated stays so for zeros.
   */
  private fill(pfn: number, nr: number, words: ArrayLike<number> | null, wi: number): void {
    let p = pfn;
    let j = wi;
    let left = nr;
    this.clearsElided += nr;
    while (left > 0) {
      const i = p & PAGE_MASK_IN_BLOCK;
      const inBlock = Math.min(left, BLOCK_PAGES - i);
      let fb = this.blocks[p >>> 9];
      if (fb === undefined && words !== null) fb = this.materialise(p >>> 9);
      if (fb !== undefined) {
        const st = fb.states();
        const fw = fb.fw;
        let stale = 0;
        for (let k = i; k < i + inBlock; k++, j++) {
          const w = words === null ? 0 : words[j] >>> 0;
          const s = st[k];
          if (s === DATA) stale++;
          else if (fw[k] === w) continue;
          st[k] = FILL;
          fw[k] = w;
        }
        st[NOT_DATA] += stale;
      } else j += inBlock;
      p += inBlock;
      left -= inBlock;
    }
  }

  /**
   * Models copy_highpage()/folio_copy() for nr pages (ranges may cross blocks): a source page
   * known to be one word repeated (zero included) records that word in the destination page;
   * other pages are copied byte for byte. `from` is the store the source pages live in (another
   * Frames, e.g. a swap device's slots: swap_read_folio()/swap_writeout()); by default this one.
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
        // Split into runs of DATA source pages (copied) and pages of a known word (recorded).
        const sst = sfb.st;
        const si = s & PAGE_MASK_IN_BLOCK;
        let k = 0;
        while (k < n) {
          const data = sst[si + k] === DATA;
          let r = 1;
          while (k + r < n && (sst[si + k + r] === DATA) === data) r++;
          if (data) this.copyData(d + k, sfb.u8, s + k, r);
          else this.fillWords(d + k, r, sfb.fw, si + k);
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

  /**
   * Model-only (memory handed back, e.g. freed VRAM): pages [pfn, pfn+nr) read as zero again and
   * the host memory of every block they cover whole is dropped.
   */
  discard(pfn: number, nr: number): void {
    let p = pfn;
    let left = nr;
    while (left > 0) {
      const i = p & PAGE_MASK_IN_BLOCK;
      const inBlock = Math.min(left, BLOCK_PAGES - i);
      const b = p >>> 9;
      if (inBlock === BLOCK_PAGES && this.blocks[b] !== undefined) {
        this.blocks[b] = undefined;
        this.allocatedBlocks--;
      } else this.zero(p, inBlock);
      p += inBlock;
      left -= inBlock;
    }
  }

  /** Model-only: reads bytes [addr, addr + buf.length) of this store (by physical address) into buf. */
  readBytes(addr: number, buf: Uint8Array): void {
    this.byteRuns(addr, buf.length, false, (blk, off, done, n) => buf.set(blk.subarray(off, off + n), done));
  }

  /** Model-only: writes buf into this store at physical address addr. */
  writeBytes(addr: number, buf: Uint8Array): void {
    this.byteRuns(addr, buf.length, true, (blk, off, done, n) => blk.set(buf.subarray(done, done + n), off));
  }

  /** Calls fn(block, offset in it, done, n) for each run of [addr, addr + len) within one block. */
  private byteRuns(
    addr: number,
    len: number,
    write: boolean,
    fn: (blk: Uint8Array, off: number, done: number, n: number) => void,
  ): void {
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const off = a % BLOCK_BYTES;
      const n = Math.min(BLOCK_BYTES - off, len - done);
      const pfn = Math.floor(a / PAGE_SIZE);
      const nr = Math.ceil((a + n) / PAGE_SIZE) - pfn;
      fn(write ? this.writeBlock(pfn, nr) : this.readBlock(pfn, nr), off, done, n);
      done += n;
    }
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
    for (const f of this.stores) f.release();
    this.stores.length = 0;
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
