/**
 * The simulated machine hmm-tests runs on: one Kernel for the whole run (device state persists
 * across tests, as on a real machine with test_hmm loaded), with the dmirror devices registered
 * by @hmm-model/test-hmm. This is the only file that touches the driver package.
 */

import { Kernel, type KernelOptions } from '@hmm-model/mm-core';
import { type DmirrorModule, installDmirror } from '@hmm-model/test-hmm';

/** Options of the simulated machine. */
export interface MachineOptions {
  /** Register the coherent pair /dev/hmm_dmirror2 and 3 (test_hmm's spm_addr_dev0/1 parameters). */
  readonly coherent: boolean;
  /** Load test_hmm at all (default true; false models a failed `modprobe test_hmm`). */
  readonly module?: boolean;
  /** Seed of the kernel's scheduler (the `--seed N` option). */
  readonly seed?: number;
  /** Extra kernel options (memory size, THP mode, hugetlb pool, invariant checking). */
  readonly kernel?: KernelOptions;
  /** Model extension (`--mthp`): load test_hmm with every mTHP order (2..8) declared on every device. */
  readonly mthp?: boolean;
}

/** The booted machine: the kernel and the loaded test_hmm module (null when not loaded). */
export interface Machine {
  readonly kernel: Kernel;
  readonly dmirror: DmirrorModule | null;
}

/**
 * Models booting the machine and `modprobe test_hmm` (lib/test_hmm.c hmm_dmirror_init()). Global
 * init (pid 1) is started at boot and stays idle: hmm-tests runs as one of its descendants, so
 * its processes may exit (global init's exit would panic, see do_exit()).
 */
export function createMachine(opts: MachineOptions): Machine {
  const kernel = new Kernel({ ...opts.kernel, seed: opts.seed ?? opts.kernel?.seed });
  const all = 0b111111100;
  const mthpOrders = opts.mthp ? { 0: all, 1: all, 2: all, 3: all } : undefined;
  const dmirror =
    (opts.module ?? true)
      ? installDmirror(kernel, { coherent: opts.coherent, ...(mthpOrders ? { mthpOrders } : {}) })
      : null;
  kernel.spawn();
  return { kernel, dmirror };
}
