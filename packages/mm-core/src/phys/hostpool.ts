/**
 * Model-only: host memory handed from one simulated machine to the next. A campaign boots
 * thousands of small machines one after another; allocating their memmap arrays and 2 MiB frame
 * buffers is most of a boot, because the host's calloc() clears reused heap memory again. A
 * machine created with a pool ({@link CoreOptions.hostPool}) takes its arrays and buffers from it,
 * and `Kernel.dispose()` gives them back. Nothing of the simulated machine depends on whether a
 * buffer came from the pool: reused frame buffers start with every page known-zero (stale bytes
 * are cleared on first access) and reused memmap arrays are cleared where they were written.
 */
export class HostMemoryPool {
  /** 2 MiB frame buffers (stale bytes). */
  readonly blocks: Uint8Array[] = [];
  /** Cleared memmap array sets, one per released machine (keyed by their length). */
  readonly memmaps: ArrayBufferView[][] = [];

  constructor(
    /** Frame buffers kept at most (default 128: 256 MiB). */
    readonly maxBlocks = 128,
    /** Memmap array sets kept at most (default 2). */
    readonly maxMemmaps = 2,
  ) {}

  /** A cleared memmap array set for `capacity` pfns, or undefined. */
  takeMemmap(capacity: number): ArrayBufferView[] | undefined {
    const i = this.memmaps.findIndex((set) => (set[0] as Uint32Array).length === capacity);
    return i < 0 ? undefined : this.memmaps.splice(i, 1)[0];
  }
}
