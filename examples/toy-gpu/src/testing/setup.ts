/**
 * Test-only helpers of the toy GPU's tests (excluded from the build): a machine with every
 * checker installed, a THP-backed buffer, and a kernel path parked at a named preemption point.
 */
import { installMigrateChecker } from '@hmm-model/migrate-vma';
import {
  installMmCoreChecker,
  Kernel,
  type KGen,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  type Task,
} from '@hmm-model/mm-core';
import { installToyGpuChecker } from '../checker.js';
import { ToyGpuDriver } from '../driver.js';
import type { ToyGpuOptions } from '../gpu.js';

/**
 * A 256 MiB machine running the checkers after every syscall and driver call, and a toy GPU.
 * An idle init (pid 1) is spawned first: the test process may then die of a signal (global
 * init's exit would panic, see do_exit()).
 */
export function machine(opts: ToyGpuOptions = {}): { k: Kernel; drv: ToyGpuDriver; p: Process } {
  const k = new Kernel({ ramBytes: 256 << 20, checkInvariants: true });
  installMmCoreChecker(k);
  const drv = new ToyGpuDriver(k, opts);
  installMigrateChecker(k, { freeLists: () => [drv.gpu.freeLists()] });
  installToyGpuChecker(k, drv.gpu);
  k.spawn();
  return { k, drv, p: k.spawn() };
}

/** A PMD-aligned private anonymous buffer of `thps` 2 MiB pieces with MADV_HUGEPAGE. */
export function thpBuffer(p: Process, thps: number): number {
  const raw = p.mmap(0, (thps + 1) * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (raw < 0) throw new Error(`mmap: ${raw}`);
  const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  if (p.madvise(a, thps * PMD_SIZE, MADV_HUGEPAGE) !== 0) throw new Error('madvise');
  return a;
}

/** Fills n 32-bit words at addr with f(i). */
export function fill(p: Process, addr: number, n: number, f: (i: number) => number): void {
  const v = new Int32Array(n);
  for (let i = 0; i < n; i++) v[i] = f(i);
  p.writeInts(addr, v);
}

/** True when the n words at addr are f(i). */
export function holds(p: Process, addr: number, n: number, f: (i: number) => number): boolean {
  const v = p.readInts(addr, n);
  for (let i = 0; i < n; i++) if (v[i] !== f(i)) return false;
  return true;
}

/**
 * Runs the kernel path `gen` as a task until it reaches the preemption point `site`, and parks it
 * there: the task is blocked on a gate (a WaitCond only `resume()` opens), so whatever the test
 * does next (syscalls of another thread: the racing CPU) runs while the path is stopped at that
 * site, whatever the scheduling strategy. `resume()` lets it finish and returns its result.
 */
export function parkAt<T>(k: Kernel, name: string, gen: KGen<T>, site: string): { task: Task; resume(): T } {
  const task = k.sched.spawn(name, gen as KGen<unknown>, { kind: 'driver' });
  k.sched.runUntil(() => task.done || task.site === site);
  if (task.done) throw new Error(`${name} finished without reaching '${site}'`);
  let open = false;
  task.state = 'blocked';
  task.wait = { what: `test gate at ${site}`, ready: () => open, holders: () => [], sleeping: true };
  return {
    task,
    resume(): T {
      open = true;
      k.sched.join(task);
      if (task.error !== undefined) throw task.error;
      return task.result as T;
    },
  };
}
