import {
  DEFAULT_RAM_BYTES,
  installMmCoreChecker,
  Kernel,
  type KernelOptions,
  minFreeKbytesFor,
  type Process,
} from '@hmm-model/mm-core';
import { createNouveauDmem, type NouveauDrm } from '@hmm-model/nouveau-dmem';
import { type DmirrorModule, installDmirror } from '@hmm-model/test-hmm';

/** Options for {@link createMachine}: the kernel's options plus which drivers are loaded. */
export interface MachineOptions extends KernelOptions {
  /** Models spm_addr_dev0/1 being set: create the coherent dmirror devices 2 and 3 (default true). */
  coherent?: boolean;
  /** Load the nouveau device-memory model (a Pascal GPU; default true). */
  nouveau?: boolean;
  /** The nouveau GPU's VRAM in bytes (default 1 GiB; e.g. 141 GiB for an H200-class GPU). */
  nouveauVramBytes?: number;
  /**
   * Model extension (test-hmm mthp.ts, DmirrorOptions.mthpOrders): per dmirror minor, the mTHP
   * orders (a bit per order, 2..8) its memory is allocated in and migrated whole. Default none.
   */
  dmirrorMthpOrders?: Readonly<Record<number, number>>;
}

/** A simulated machine as the shell starts it: the kernel, its drivers and its first process. */
export interface Machine {
  /** The running kernel (physical memory, devices, task table). */
  readonly kernel: Kernel;
  /** The first user process (pid 1): the shell's initial current process. */
  readonly init: Process;
  /** The loaded test_hmm module (the dmirror devices and their device memory). */
  readonly dmirror: DmirrorModule;
  /** The nouveau GPU's device memory, or null when not loaded. */
  readonly nouveau: NouveauDrm | null;
}

const machines = new WeakMap<Kernel, Machine>();

/** The machine a kernel belongs to (for commands that show driver state). */
export function machineOf(kernel: Kernel): Machine | undefined {
  return machines.get(kernel);
}

/**
 * Shell machine factory: models booting a machine (start_kernel() + loading the device drivers)
 * and exec'ing the first user process: the four dmirror devices of lib/test_hmm.c, nouveau's
 * device memory, and the mm-core invariant checker for `invariants`.
 */
export function createMachine(opts: MachineOptions = {}): Machine {
  // vm.min_free_kbytes as the kernel computes it at boot (calculate_min_free_kbytes()), unless given.
  const minFreeKbytes = opts.minFreeKbytes ?? minFreeKbytesFor(opts.ramBytes ?? DEFAULT_RAM_BYTES);
  const kernel = new Kernel({ ...opts, minFreeKbytes });
  installMmCoreChecker(kernel);
  // DEVICES: the dmirror driver (test_hmm) and nouveau's dmem.
  const dmirror = installDmirror(kernel, {
    coherent: opts.coherent ?? true,
    ...(opts.dmirrorMthpOrders ? { mthpOrders: opts.dmirrorMthpOrders } : {}),
  });
  const nouveau =
    (opts.nouveau ?? true) ? createNouveauDmem(kernel, { vramBytes: opts.nouveauVramBytes }) : null;
  const init = kernel.spawn();
  const m: Machine = { kernel, init, dmirror, nouveau };
  machines.set(kernel, m);
  return m;
}
