import { Kernel, type KernelOptions, type Process } from '@hmm-model/mm-core';

/** Options for {@link createMachine}: the kernel's options (RAM size, THP mode, seed, checker). */
export interface MachineOptions extends KernelOptions {}

/** A simulated machine as the shell starts it: the kernel and its first process. */
export interface Machine {
  /** The running kernel (physical memory, devices, task table). */
  readonly kernel: Kernel;
  /** The first user process (pid 1): the shell's initial current process. */
  readonly init: Process;
}

/**
 * Shell machine factory: models booting a machine (start_kernel() + loading the device drivers)
 * and exec'ing the first user process. The four dmirror devices (lib/test_hmm.c) are installed
 * here once `@hmm-model/test-hmm` provides them; nouveau's device memory likewise.
 */
export function createMachine(opts: MachineOptions = {}): Machine {
  const kernel = new Kernel(opts);
  // DEVICES: install dmirror here
  const init = kernel.spawn();
  return { kernel, init };
}
