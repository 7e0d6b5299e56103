/**
 * Helpers shared by this package's tests (not exported from the package root): a machine with
 * the mm-core and nouveau checkers, a process with an SVMM, THP windows and page-table probes.
 */
import {
  entryKind,
  installMmCoreChecker,
  Kernel,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  pmdIndex,
  pmdTableOf,
  pteIndex,
  pteTableOf,
  ptHi,
  ptLo,
} from '@hmm-model/mm-core';
import { installNouveauChecker } from './checker.js';
import { createNouveauDmem, type NouveauDmemOptions } from './init.js';
import { nouveauSvmmInit } from './svmm.js';
import type { NouveauDrm, NouveauSvmm } from './types.js';

/** A machine with one nouveau GPU, one process and its SVMM, checkers installed. */
export interface Rig {
  readonly k: Kernel;
  readonly drm: NouveauDrm;
  readonly p: Process;
  readonly svmm: NouveauSvmm;
}

/**
 * Models booting a machine with a nouveau GPU and starting one SVM client. The invariant
 * checkers run after every syscall and ioctl unless `checkEach` is false.
 */
export function rig(
  opts: NouveauDmemOptions & {
    checkEach?: boolean;
    bugs?: readonly string[];
    fixes?: readonly string[];
  } = {},
): Rig {
  const k = new Kernel({
    ramBytes: 512 << 20,
    checkInvariants: opts.checkEach ?? true,
    bugs: opts.bugs ?? [],
    fixes: opts.fixes ?? [],
  });
  installMmCoreChecker(k);
  const drm = createNouveauDmem(k, opts);
  installNouveauChecker(drm);
  // Global init (pid 1) stays idle: the test process is killable, as any process but init.
  k.spawn();
  const p = k.spawn();
  const svmm = nouveauSvmmInit(drm, p.mm);
  return { k, drm, p, svmm };
}

/** mmap 4 MiB, MADV_HUGEPAGE the 2 MiB-aligned window inside and (optionally) fill it with ints i. */
export function thpWindow(p: Process, fill = true): number {
  const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const w = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  if (p.madvise(w, PMD_SIZE, MADV_HUGEPAGE) !== 0) throw new Error('madvise failed');
  if (fill) p.writeInts(w, pattern(0, PMD_SIZE / 4));
  return w;
}

/** Int32 values first .. first + n - 1. */
export function pattern(first: number, n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => first + i);
}

/** The kind of the PMD entry mapping addr (entryKind names: 'huge', 'table', 'device-private-write', ...). */
export function pmdKind(k: Kernel, p: Process, addr: number): string {
  const t = pmdTableOf(k.core, p.mm, addr, false);
  if (t < 0) return 'none';
  const i = pmdIndex(addr);
  return entryKind(ptLo(k.core, t, i), ptHi(k.core, t, i), 'pmd', k.core.zeroPfn, k.core.hugeZeroPfn);
}

/** The kind of the PTE mapping addr. */
export function pteKind(k: Kernel, p: Process, addr: number): string {
  const t = pteTableOf(k.core, p.mm, addr, false);
  if (t < 0) return 'none';
  const i = pteIndex(addr);
  return entryKind(ptLo(k.core, t, i), ptHi(k.core, t, i), 'pte', k.core.zeroPfn, k.core.hugeZeroPfn);
}

/** Index of the first int in [addr, addr + 4n) that is not first + i, or -1. */
export function firstMismatch(p: Process, addr: number, first: number, n: number): number {
  const back = p.readInts(addr, n);
  for (let i = 0; i < n; i++) if (back[i] !== first + i) return i;
  return -1;
}

/** Reads n ints through the GPU (faulting as needed). */
export function gpuInts(read: Uint8Array | number): Int32Array {
  if (typeof read === 'number') throw new Error(`GPU access failed: ${read}`);
  return new Int32Array(read.buffer, read.byteOffset, read.byteLength / 4);
}
