/**
 * The simulated machine run_vmtests.sh runs on: one Kernel for the whole run (as one test box),
 * with the procfs files the ported tests read (procfs.ts). Every binary is a fresh process on it.
 */

import { installMmCoreChecker, Kernel, type KernelOptions } from '@hmm-model/mm-core';
import { installProcfs } from './procfs.js';

/**
 * Models the RAM of the test box: 8 GiB (lazily backed). mremap_test maps 2 GiB of shared
 * anonymous memory, which vm.overcommit_memory=0 refuses on a machine with 2 GiB or less.
 */
export const VMTESTS_RAM_BYTES = 8 * 2 ** 30;

/** Options of the vmtests machine. */
export interface VmtestsMachineOptions {
  /** Seed of the kernel's scheduler. */
  readonly seed?: number;
  /** Models CONFIG_DEBUG_VM: run mm-core's invariant checker after every syscall. */
  readonly debugVm?: boolean;
  /** Further kernel options (RAM size, THP mode, hugetlb pool, bug switches). */
  readonly kernel?: KernelOptions;
}

/**
 * Models booting the test box. Global init (pid 1) is started at boot and stays idle:
 * run_vmtests.sh and the binaries run as its descendants, so they may exit (global init's exit
 * panics, see do_exit()).
 */
export function bootVmtestsMachine(opts: VmtestsMachineOptions = {}): Kernel {
  const kernel = new Kernel({
    ramBytes: VMTESTS_RAM_BYTES,
    ...opts.kernel,
    seed: opts.seed ?? opts.kernel?.seed,
  });
  if (opts.debugVm) {
    kernel.checkInvariants = true;
    installMmCoreChecker(kernel);
  }
  installProcfs(kernel);
  kernel.spawn();
  return kernel;
}
