import { EINVAL, ENOMEM, type Frames, PAGE_SIZE } from '@hmm-model/mm-core';
import { NOUVEAU_APER_HOST, NOUVEAU_APER_VRAM, type NouveauAper } from './constants.js';

const BLOCK_SHIFT = 21;
const BLOCK_BYTES = 1 << BLOCK_SHIFT;

/**
 * Models VRAM and the pinned buffer objects of nouveau_bo_new_pin()/nouveau_bo_unpin_del() in it
 * (TTM placement reduced to first fit). Device-private pfns have no CPU-visible bytes
 * in the model (as in the kernel), so VRAM is this driver's own byte store: lazily allocated
 * 2 MiB blocks indexed by VRAM address, reading as zero until written.
 */
export class Vram {
  private readonly blocks = new Map<number, Uint8Array>();
  /** Allocated buffer objects: offset -> size. */
  private readonly bos = new Map<number, number>();

  constructor(
    /** VRAM size in bytes (what the chipset reports as ram_user). */
    readonly size: number,
  ) {}

  /**
   * Models nouveau_bo_new_pin(NOUVEAU_GEM_DOMAIN_VRAM, size): first-fit placement of a pinned
   * buffer object. Returns its VRAM offset, or -ENOMEM when VRAM is exhausted.
   */
  allocBo(size: number): number {
    const used = [...this.bos].sort((a, b) => a[0] - b[0]);
    let offset = 0;
    for (const [o, s] of used) {
      if (o - offset >= size) break;
      offset = Math.max(offset, o + s);
    }
    if (offset + size > this.size) return -ENOMEM;
    this.bos.set(offset, size);
    return offset;
  }

  /** Models nouveau_bo_unpin_del(): the buffer object's VRAM becomes free (its bytes are dropped). */
  freeBo(offset: number): void {
    const size = this.bos.get(offset);
    if (size === undefined) return;
    this.bos.delete(offset);
    for (let a = offset; a < offset + size; a += BLOCK_BYTES) this.blocks.delete(Math.floor(a / BLOCK_BYTES));
  }

  /** Bytes of VRAM handed out to buffer objects. */
  get boBytes(): number {
    let n = 0;
    for (const s of this.bos.values()) n += s;
    return n;
  }

  /** Bytes of host memory materialised for VRAM contents. */
  get bytesAllocated(): number {
    return this.blocks.size * BLOCK_BYTES;
  }

  private block(addr: number, create: boolean): Uint8Array | undefined {
    const b = Math.floor(addr / BLOCK_BYTES);
    let blk = this.blocks.get(b);
    if (!blk && create) {
      blk = new Uint8Array(BLOCK_BYTES);
      this.blocks.set(b, blk);
    }
    return blk;
  }

  /** Reads VRAM [addr, addr + buf.length) into buf (unwritten VRAM reads as zero). */
  read(addr: number, buf: Uint8Array): void {
    let done = 0;
    while (done < buf.length) {
      const a = addr + done;
      const off = a % BLOCK_BYTES;
      const n = Math.min(BLOCK_BYTES - off, buf.length - done);
      const blk = this.block(a, false);
      if (blk) buf.set(blk.subarray(off, off + n), done);
      else buf.fill(0, done, done + n);
      done += n;
    }
  }

  /** Writes buf into VRAM at addr. */
  write(addr: number, buf: Uint8Array): void {
    let done = 0;
    while (done < buf.length) {
      const a = addr + done;
      const off = a % BLOCK_BYTES;
      const n = Math.min(BLOCK_BYTES - off, buf.length - done);
      this.block(a, true)!.set(buf.subarray(done, done + n), off);
      done += n;
    }
  }

  /** Zeroes VRAM [addr, addr + len). */
  zero(addr: number, len: number): void {
    let done = 0;
    while (done < len) {
      const a = addr + done;
      const off = a % BLOCK_BYTES;
      const n = Math.min(BLOCK_BYTES - off, len - done);
      this.block(a, false)?.fill(0, off, off + n);
      done += n;
    }
  }
}

/**
 * Models struct nouveau_dmem_migrate's copy_func/clear_func on drm->ttm.chan (the xxB5 copy class): synchronous physical copies and constant fills between VRAM and host memory.
 * Fences complete immediately (nouveau_fence_new/nouveau_dmem_fence_done are no-ops here).
 */
export class CopyEngine {
  /** Lines (pages) copied, for inspection. */
  linesCopied = 0;
  /** clear_func launches, for inspection. */
  clears = 0;
  /** Copy launches (one per copy_func call: a THP is one 512-line launch). */
  launches = 0;

  constructor(
    readonly vram: Vram,
    readonly frames: Frames,
  ) {}

  private readPage(aper: NouveauAper, addr: number, buf: Uint8Array): void {
    if (aper === NOUVEAU_APER_VRAM) {
      this.vram.read(addr, buf);
      return;
    }
    const pfn = Math.floor(addr / PAGE_SIZE);
    if (this.frames.untouched(pfn)) buf.fill(0);
    else buf.set(this.frames.page(pfn));
  }

  private writePage(aper: NouveauAper, addr: number, buf: Uint8Array): void {
    if (aper === NOUVEAU_APER_VRAM) this.vram.write(addr, buf);
    else this.frames.page(Math.floor(addr / PAGE_SIZE)).set(buf);
  }

  /**
   * Models nvc0b5_migrate_copy() (copy_func): a multi-line pitch copy of `npages` lines of
   * PAGE_SIZE from (srcAper, src) to (dstAper, dst), physical addressing on both sides.
   * Returns 0, or -EINVAL for an aperture the copy engine cannot address physically (VIRT).
   */
  copy(npages: number, dstAper: NouveauAper, dst: number, srcAper: NouveauAper, src: number): number {
    const phys = (a: NouveauAper) => a === NOUVEAU_APER_VRAM || a === NOUVEAU_APER_HOST;
    if (!phys(dstAper) || !phys(srcAper)) return -EINVAL;
    this.launches++;
    const buf = new Uint8Array(PAGE_SIZE);
    for (let i = 0; i < npages; i++) {
      this.readPage(srcAper, src + i * PAGE_SIZE, buf);
      this.writePage(dstAper, dst + i * PAGE_SIZE, buf);
    }
    this.linesCopied += npages;
    return 0;
  }

  /**
   * Models nvc0b5_migrate_clear() (clear_func): a remap-constant fill of `length` bytes (the
   * kernel programs LINE_LENGTH_IN = length >> 3 eight-byte components) with zero at (aper, dst).
   */
  clear(length: number, dstAper: NouveauAper, dst: number): number {
    if (dstAper !== NOUVEAU_APER_VRAM && dstAper !== NOUVEAU_APER_HOST) return -EINVAL;
    this.clears++;
    const len = Math.floor(length / 8) * 8;
    if (dstAper === NOUVEAU_APER_VRAM) {
      this.vram.zero(dst, len);
      return 0;
    }
    const zero = new Uint8Array(PAGE_SIZE);
    for (let off = 0; off < len; off += PAGE_SIZE) {
      const pfn = Math.floor((dst + off) / PAGE_SIZE);
      this.frames.page(pfn).set(zero.subarray(0, Math.min(PAGE_SIZE, len - off)));
    }
    return 0;
  }
}
