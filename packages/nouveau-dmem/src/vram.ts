import { EINVAL, ENOMEM, Frames, type KernelEvents, PAGE_SIZE } from '@hmm-model/mm-core';
import { NOUVEAU_APER_HOST, NOUVEAU_APER_VRAM, type NouveauAper } from './constants.js';

/**
 * Models VRAM and the pinned buffer objects of nouveau_bo_new_pin()/nouveau_bo_unpin_del() in it
 * (TTM placement reduced to first fit). Device-private pfns have no CPU-visible bytes
 * in the model (as in the kernel), so VRAM is this driver's own page store ({@link Vram.store}: a
 * {@link Frames} indexed by VRAM address / PAGE_SIZE), reading as zero until written; a page
 * that is one word repeated moves between host memory and VRAM as that word.
 */
export class Vram {
  /** VRAM contents: page i is VRAM [i * PAGE_SIZE, (i + 1) * PAGE_SIZE). */
  readonly store: Frames;
  /** Allocated buffer objects: offset -> size. */
  private readonly bos = new Map<number, number>();

  constructor(
    /** VRAM size in bytes (what the chipset reports as ram_user). */
    readonly size: number,
    /** The machine's memory: VRAM's store shares its host memory pool (default: a store of its own). */
    frames?: Frames,
  ) {
    this.store = frames ? frames.store() : new Frames();
  }

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
    this.store.discard(offset / PAGE_SIZE, Math.ceil(size / PAGE_SIZE));
  }

  /** Bytes of VRAM handed out to buffer objects. */
  get boBytes(): number {
    let n = 0;
    for (const s of this.bos.values()) n += s;
    return n;
  }

  /** Bytes of host memory materialised for VRAM contents. */
  get bytesAllocated(): number {
    return this.store.bytesAllocated;
  }

  /** Reads VRAM [addr, addr + buf.length) into buf (unwritten VRAM reads as zero). */
  read(addr: number, buf: Uint8Array): void {
    this.store.readBytes(addr, buf);
  }

  /** Writes buf into VRAM at addr. */
  write(addr: number, buf: Uint8Array): void {
    this.store.writeBytes(addr, buf);
  }
}

/**
 * Model-only: the timing model of the copy engine that gives {@link CopyEngine.deviceNs}: each
 * copy or clear launch costs `launchNs` (method submission, semaphore and fence), plus its bytes
 * over the link it crosses. The figures are assumptions for illustration, not measurements of
 * any GPU: a PCIe 4.0 x16 link for host <-> VRAM, a fraction of VRAM bandwidth for VRAM <-> VRAM.
 */
export interface CopyEngineTiming {
  /** Fixed cost of one copy_func/clear_func launch, in ns. */
  readonly launchNs: number;
  /** Bytes per ns of a copy or clear with a host (system memory) side. */
  readonly hostBytesPerNs: number;
  /** Bytes per ns of a VRAM-only copy or clear. */
  readonly vramBytesPerNs: number;
}

/** Model-only: the default {@link CopyEngineTiming} (2 us per launch, 25 GB/s host link, 400 GB/s VRAM). */
export const DEFAULT_COPY_TIMING: CopyEngineTiming = {
  launchNs: 2000,
  hostBytesPerNs: 25,
  vramBytesPerNs: 400,
};

/**
 * Models struct nouveau_dmem_migrate's copy_func/clear_func on drm->ttm.chan (the xxB5 copy class): synchronous physical copies and constant fills between VRAM and host memory.
 * Fences complete immediately (nouveau_fence_new/nouveau_dmem_fence_done are no-ops here); the
 * time the engine would take is accumulated by a timing model ({@link CopyEngine.deviceNs}).
 */
export class CopyEngine {
  /** Lines (pages) copied, for inspection. */
  linesCopied = 0;
  /** clear_func launches, for inspection. */
  clears = 0;
  /** Copy launches (one per copy_func call: a THP is one 512-line launch). */
  launches = 0;
  /** Model-only: MODELLED device time of every launch so far, in ns (see {@link CopyEngineTiming}). */
  deviceNs = 0;

  constructor(
    readonly vram: Vram,
    readonly frames: Frames,
    /** Model-only: the machine's event counters (copy commands and bytes), if any. */
    readonly events: KernelEvents | null = null,
    readonly timing: CopyEngineTiming = DEFAULT_COPY_TIMING,
  ) {}

  private launch(bytes: number, host: boolean): void {
    const t = this.timing;
    this.deviceNs += t.launchNs + bytes / (host ? t.hostBytesPerNs : t.vramBytesPerNs);
    this.events?.copy(1, bytes);
  }

  /** The page store behind an aperture (physical addressing): host memory or VRAM. */
  private store(aper: NouveauAper): Frames {
    return aper === NOUVEAU_APER_HOST ? this.frames : this.vram.store;
  }

  /**
   * Models nvc0b5_migrate_copy() (copy_func): a multi-line pitch copy of `npages` lines of
   * PAGE_SIZE from (srcAper, src) to (dstAper, dst), physical addressing on both sides.
   * Returns 0, or -EINVAL for an aperture the copy engine cannot address physically (VIRT) and,
   * in the model, for an address that is not page aligned.
   */
  copy(npages: number, dstAper: NouveauAper, dst: number, srcAper: NouveauAper, src: number): number {
    const phys = (a: NouveauAper) => a === NOUVEAU_APER_VRAM || a === NOUVEAU_APER_HOST;
    if (!phys(dstAper) || !phys(srcAper)) return -EINVAL;
    // Model-only: lines are whole pages at page addresses (nouveau passes nothing else).
    if (src % PAGE_SIZE !== 0 || dst % PAGE_SIZE !== 0) return -EINVAL;
    this.launches++;
    const bytes = npages * PAGE_SIZE;
    this.launch(bytes, srcAper === NOUVEAU_APER_HOST || dstAper === NOUVEAU_APER_HOST);
    // A page store copy: a page of one word moves as that word.
    this.store(dstAper).copy(dst / PAGE_SIZE, src / PAGE_SIZE, npages, this.store(srcAper));
    this.linesCopied += npages;
    return 0;
  }

  /**
   * Models nvc0b5_migrate_clear() (clear_func): a remap-constant fill of `length` bytes (the
   * kernel programs LINE_LENGTH_IN = length >> 3 eight-byte components) with zero at (aper, dst).
   * Returns 0, or -EINVAL for a virtual aperture and, in the model, for anything but whole pages.
   */
  clear(length: number, dstAper: NouveauAper, dst: number): number {
    if (dstAper !== NOUVEAU_APER_VRAM && dstAper !== NOUVEAU_APER_HOST) return -EINVAL;
    const len = Math.floor(length / 8) * 8;
    // Model-only: whole pages at a page address (nouveau clears a folio's pages, nothing else).
    if (dst % PAGE_SIZE !== 0 || len % PAGE_SIZE !== 0) return -EINVAL;
    this.clears++;
    this.launch(len, dstAper === NOUVEAU_APER_HOST);
    this.store(dstAper).zero(dst / PAGE_SIZE, len / PAGE_SIZE);
    return 0;
  }
}
