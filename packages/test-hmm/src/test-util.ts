/**
 * Test helpers (not exported from the package): a small machine with the dmirror module and the
 * user-side helpers of tools/testing/selftests/mm/hmm-tests.c (struct hmm_buffer, hmm_dmirror_cmd()).
 */
import {
  installMmCoreChecker,
  Kernel,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
} from '@hmm-model/mm-core';
import { Dmirror } from './dmirror.js';
import { type DmirrorModule, installDmirror } from './module.js';
import { CMD_CPAGES, CMD_FAULTS, dmirrorPath, encodeCmd, HMM_DMIRROR_CMD_SIZE } from './uapi.js';

/** A 512 MiB machine with the invariant checker on and the dmirror module loaded. */
export function machine(coherent = true): { k: Kernel; mod: DmirrorModule; p: Process } {
  const k = new Kernel({ ramBytes: 512 << 20 });
  k.checkInvariants = true;
  installMmCoreChecker(k);
  const mod = installDmirror(k, { coherent });
  k.spawn(); // global init (pid 1) stays idle: the test process may exit or die
  const p = k.spawn();
  return { k, mod, p };
}

/** Models hmm_open(): open /dev/hmm_dmirror<n> read-write. */
export function hmmOpen(p: Process, n: number): number {
  cmdPage(p);
  return p.open(dmirrorPath(n), O_RDWR);
}

/** Models struct hmm_buffer. */
export interface HmmBuffer {
  ptr: number;
  /** The malloc'd mirror buffer (a user address in the same process). */
  mirror: number;
  size: number;
  cpages: number;
  faults: number;
}

/** mmap an anonymous private buffer plus a mirror buffer of `mirrorSize` bytes (default size). */
export function hmmBuffer(
  p: Process,
  size: number,
  prot = PROT_READ | PROT_WRITE,
  mirrorSize = size,
): HmmBuffer {
  const ptr = p.mmap(0, size, prot, MAP_PRIVATE | MAP_ANONYMOUS);
  if (ptr < 0) throw new Error(`mmap failed ${ptr}`);
  const mirror = p.malloc(mirrorSize);
  if (!mirror) throw new Error('malloc failed');
  return { ptr, mirror, size, cpages: 0, faults: 0 };
}

const cmdPages = new WeakMap<Process, number>();

/** The page holding the process's struct hmm_dmirror_cmd (the C tests keep it on the stack). */
function cmdPage(p: Process): number {
  let cmd = cmdPages.get(p);
  if (cmd === undefined) {
    cmd = p.malloc(PAGE_SIZE);
    cmdPages.set(p, cmd);
  }
  return cmd;
}

/**
 * Models hmm_dmirror_cmd(): fill a struct hmm_dmirror_cmd in the process's memory, ioctl, and on
 * success copy cpages/faults into the buffer. Returns 0 or -errno.
 */
export function hmmDmirrorCmd(
  p: Process,
  fd: number,
  request: number,
  buf: HmmBuffer,
  npages: number | bigint,
): number {
  const cmd = cmdPage(p);
  p.writeBytes(cmd, encodeCmd({ addr: buf.ptr, ptr: buf.mirror, npages }));
  const r = p.ioctl(fd, request, cmd);
  if (r !== 0) return r;
  const out = p.readBytes(cmd, HMM_DMIRROR_CMD_SIZE);
  const dv = new DataView(out.buffer);
  buf.cpages = Number(dv.getBigUint64(CMD_CPAGES, true));
  buf.faults = Number(dv.getBigUint64(CMD_FAULTS, true));
  return 0;
}

/** Writes int pattern f(i) over n ints at addr. */
export function fillInts(p: Process, addr: number, n: number, f: (i: number) => number): void {
  p.writeInts(
    addr,
    Int32Array.from({ length: n }, (_, i) => f(i)),
  );
}

/** True if the n ints at addr equal f(i). */
export function intsEqual(p: Process, addr: number, n: number, f: (i: number) => number): boolean {
  const v = p.readInts(addr, n);
  for (let i = 0; i < n; i++) if (v[i] !== f(i)) return false;
  return true;
}

/** The dmirror behind an open fd (file->private_data). */
export function dmirrorOf(p: Process, fd: number): Dmirror {
  const dm = p.fds.get(fd)?.privateData;
  if (!(dm instanceof Dmirror)) throw new Error(`fd ${fd} is not a dmirror file`);
  return dm;
}

/**
 * A machine with the model's fix switches `fixes`, the checker on and the dmirror module loaded
 * (`coherent`: with the two coherent devices), /dev/hmm_dmirror<minor> open, and a 2 MiB
 * PMD-aligned MADV_HUGEPAGE buffer filled with `fill(i)` (one THP).
 */
export function thpMachine(
  fixes: string[],
  minor: number,
  coherent: boolean,
  fill: (i: number) => number,
): { k: Kernel; mod: DmirrorModule; p: Process; fd: number; buf: HmmBuffer } {
  const k = new Kernel({ ramBytes: 512 << 20, fixes });
  k.checkInvariants = true;
  installMmCoreChecker(k);
  const mod = installDmirror(k, { coherent });
  k.spawn(); // global init (pid 1) stays idle: the test process may exit or die
  const p = k.spawn();
  const fd = hmmOpen(p, minor);
  const buf = hmmBuffer(p, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, PMD_SIZE);
  buf.ptr = Math.ceil(buf.ptr / PMD_SIZE) * PMD_SIZE;
  if (p.madvise(buf.ptr, PMD_SIZE, MADV_HUGEPAGE) !== 0) throw new Error('thpMachine: madvise failed');
  fillInts(p, buf.ptr, PMD_SIZE / 4, fill);
  return { k, mod, p, fd, buf };
}
