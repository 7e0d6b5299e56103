/**
 * The toy GPU as a caller uses it: one object per GPU with synchronous entry points, each the
 * kernel path of an ioctl run to completion on the machine's scheduler and followed, like a
 * syscall's return, by the post-syscall checks (the invariant checkers when enabled).
 */
import type { Kernel, KGen, Process, VmFault } from '@hmm-model/mm-core';
import { type EvictResult, evictAllGen } from './evict.js';
import { ToyGpu, type ToyGpuOptions } from './gpu.js';
import {
  type AllocAndCopy,
  type MigrateResult,
  migrateToDeviceGen,
  migrateToRamGen,
  toyGpuMigrateToRam,
} from './migrate.js';
import { ToyGpuMirror } from './mirror.js';

/**
 * Models probing the toy GPU (dmirror_device_init() + the chrdev's open()): the device memory
 * with its dev_pagemap_ops, and per process a mirror. Each method is one ioctl of a driver like
 * lib/test_hmm.c; the `*Gen` forms are the kernel paths for tasks of the interleaving explorer.
 */
export class ToyGpuDriver {
  readonly gpu: ToyGpu;
  private readonly mirrors = new Map<Process, ToyGpuMirror>();

  constructor(
    readonly kernel: Kernel,
    opts: ToyGpuOptions = {},
  ) {
    this.gpu = new ToyGpu(kernel, opts);
    this.gpu.setMigrateToRam((vmf: VmFault) => toyGpuMigrateToRam(this.gpu, vmf));
  }

  private run<T>(what: string, gen: KGen<T>): T {
    const r = this.kernel.sched.runSync(gen, what);
    this.kernel.afterSyscall(what);
    return r;
  }

  /** Models open() of the device by `p`: the process's mirror (created once, with its notifier). */
  bind(p: Process): ToyGpuMirror {
    let m = this.mirrors.get(p);
    if (!m) {
      m = new ToyGpuMirror(this.gpu, p.mm);
      this.mirrors.set(p, m);
    }
    return m;
  }

  /** Models release() of the device by `p`: the notifier goes, the GPU page table is dropped. */
  unbind(p: Process): void {
    this.mirrors.get(p)?.release();
    this.mirrors.delete(p);
  }

  /**
   * Models a MIGRATE_TO_DEV ioctl: [addr, addr + len) of p to VRAM ({@link migrateToDeviceGen};
   * `copy` replaces the driver's alloc-and-copy step).
   */
  migrateToDevice(p: Process, addr: number, len: number, copy?: AllocAndCopy): MigrateResult {
    return this.run('toy_gpu migrate_to_dev', migrateToDeviceGen(this.gpu, p.mm, addr, addr + len, copy));
  }

  /** Models a MIGRATE_TO_SYS ioctl: this GPU's pages in [addr, addr + len) of p back to RAM. */
  migrateToRam(p: Process, addr: number, len: number): MigrateResult {
    return this.run('toy_gpu migrate_to_sys', migrateToRamGen(this.gpu, p.mm, addr, addr + len));
  }

  /** Models a GPU kernel reading `len` bytes at addr of p's address space: the bytes, or -errno. */
  read(p: Process, addr: number, len: number): Uint8Array | number {
    const buf = new Uint8Array(len);
    const r = this.run('toy_gpu read', this.bind(p).accessGen(addr, buf, 'read'));
    return r ? r : buf;
  }

  /** Models a GPU kernel writing `data` at addr of p's address space: 0 or -errno. */
  write(p: Process, addr: number, data: Uint8Array): number {
    return this.run('toy_gpu write', this.bind(p).accessGen(addr, data, 'write'));
  }

  /** Models eviction of all VRAM ({@link evictAllGen}). */
  evictAll(): EvictResult {
    return this.run('toy_gpu evict', evictAllGen(this.gpu));
  }

  /**
   * Models driver unload: release every mirror, evict, memunmap_pages() (which waits for every
   * device page to be free; one that cannot be is a deadlock finding).
   */
  destroy(): EvictResult {
    for (const p of [...this.mirrors.keys()]) this.unbind(p);
    const gpu = this.gpu;
    return this.run(
      'toy_gpu remove',
      (function* () {
        const r = yield* evictAllGen(gpu);
        yield* gpu.destroyGen();
        return r;
      })(),
    );
  }
}
