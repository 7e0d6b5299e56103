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
    /** Side arrays kept at most per type and length ({@link HostMemoryPool.give}; default 64). */
    readonly maxSpare = 64,
  ) {}

  /** A cleared memmap array set for `capacity` pfns, or undefined. */
  takeMemmap(capacity: number): ArrayBufferView[] | undefined {
    const i = this.memmaps.findIndex((set) => (set[0] as Uint32Array).length === capacity);
    return i < 0 ? undefined : this.memmaps.splice(i, 1)[0];
  }

  /** Zeroed side arrays of released machines ({@link HostMemoryPool.give}), by type and length. */
  private readonly spare = new Map<string, PooledArray[]>();

  /**
   * Model-only: a zeroed array of n elements made by `make`, reused from a released machine when
   * one of that type and length was given back. Every array a machine allocates per boot and
   * drops at dispose (swap maps, lock-owner sections, page-table level tags) comes from here: each
   * fresh one counts as V8 external memory, and external growth starts a full mark-compact, after
   * which V8 recompiles the per-call closures whose optimized code only dead closures held.
   */
  take<T extends PooledArray>(make: new (n: number) => T, n: number): T {
    const a = this.spare.get(`${make.name}:${n}`)?.pop();
    return (a as T | undefined) ?? new make(n);
  }

  /** Model-only: gives an array from {@link HostMemoryPool.take} back (cleared here), keeping at most `maxSpare` per type and length. */
  give(a: PooledArray): void {
    const key = `${a.constructor.name}:${a.length}`;
    let l = this.spare.get(key);
    if (!l) this.spare.set(key, (l = []));
    if (l.length >= this.maxSpare) return;
    a.fill(0);
    l.push(a);
  }
}

/** Model-only: the typed arrays {@link HostMemoryPool.take} hands out. */
export type PooledArray = Int32Array | Uint32Array | Uint16Array | Uint8Array | Int8Array | Float64Array;

/** Model-only: {@link HostMemoryPool.take} from `pool`, or a fresh array for a machine without one. */
export function takeArray<T extends PooledArray>(
  pool: HostMemoryPool | undefined,
  make: new (n: number) => T,
  n: number,
): T {
  return pool ? pool.take(make, n) : new make(n);
}

/** Zeroed pfn arrays of a chunk's size that evictions handed back (model-only; 8 per length). */
const pfnArrays = new HostMemoryPool(0, 0, 8);

/**
 * Model-only (the kernel's kvcalloc() of an eviction's src/dst arrays): a zeroed Float64Array of
 * n slots, reused from an earlier {@link returnPfnArray} when one of that length is free. A fresh
 * host allocation of a chunk's 512 KiB costs more than the eviction that fills it.
 */
export function borrowPfnArray(n: number): Float64Array {
  return pfnArrays.take(Float64Array, n);
}

/** Model-only (kvfree()): gives an array from {@link borrowPfnArray} back, zeroed for the next borrower. */
export function returnPfnArray(a: Float64Array): void {
  pfnArrays.give(a);
}

/**
 * Model-only: one reusable zeroed byte array for a checker's per-page marks. A checker that runs
 * at every barrier would otherwise allocate a chunk-sized array each time (V8 external memory,
 * see {@link HostMemoryPool.take}). The array {@link ScratchBytes.take} returns is valid until
 * the next call on the same scratch.
 */
export class ScratchBytes {
  private buf = new Uint8Array(0);

  /** A zeroed Uint8Array of n bytes (a view of the scratch buffer, grown when too small). */
  take(n: number): Uint8Array {
    if (n > this.buf.length) this.buf = new Uint8Array(Math.max(n, 2 * this.buf.length));
    const a = this.buf.subarray(0, n);
    a.fill(0);
    return a;
  }
}
