/**
 * Test-only helpers shared by mm-core's unit tests (excluded from the build): a small machine
 * with the invariant checker running after every syscall, and the kind of the PMD at an address.
 */
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDONLY,
  O_RDWR,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { ThpMode } from '../core.js';
import { installMmCoreChecker } from '../invariants.js';
import { Kernel, type KernelOptions } from '../kernel.js';
import { pteIndex, pteTableOf, ptHi, ptLo, readPmd } from '../mm/pgtable.js';
import { entryKind, entryPfn } from '../pgtable/entry.js';
import type { Process } from '../process.js';

/**
 * A 256 MiB machine (with the default 1 GiB swap area unless `opts` says otherwise) with
 * checkInvariants on and the mm-core checker installed. Global init (pid 1, `k.task(1)`) is
 * spawned and stays idle, as on a booted machine: the processes a test spawns are ordinary
 * programs (they may exit or die; init's exit panics, see do_exit()).
 */
export function machine(thp: ThpMode = 'madvise', opts: KernelOptions = {}): Kernel {
  const k = new Kernel({ ramBytes: 256 << 20, thp, checkInvariants: true, ...opts });
  installMmCoreChecker(k);
  k.spawn();
  return k;
}

/** The entryKind() of the PMD covering addr in p, or 'none' when no PMD table exists. */
export function pmdKind(k: Kernel, p: Process, addr: number): string {
  const [t, lo, hi] = readPmd(k.core, p.mm, addr);
  return t < 0 ? 'none' : entryKind(lo, hi, 'pmd', k.core.zeroPfn, k.core.hugeZeroPfn);
}

/** The pfn in the PTE covering addr in p (whatever the entry is), or -1 when no PTE table exists. */
export function ptePfn(k: Kernel, p: Process, addr: number): number {
  const t = pteTableOf(k.core, p.mm, addr, false);
  return t < 0 ? -1 : entryPfn(ptLo(k.core, t, pteIndex(addr)), ptHi(k.core, t, pteIndex(addr)));
}

/** Model-only test helper: a child of init with `pages` written anonymous pages (an OOM candidate of that size). */
export function childWithPages(k: Kernel, pages: number): Process {
  const c = k.task(k.task(1)!.fork())!;
  const a = c.mmap(0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < pages; i++) c.writeI32(a + i * PAGE_SIZE, i);
  return c;
}

/** Reads a pseudo file through the process, as cat does. */
export function readProcFile(p: Process, path: string): string {
  const fd = p.open(path, O_RDONLY);
  if (fd < 0) throw new Error(`open ${path}: ${fd}`);
  const buf = new Uint8Array(4096);
  const n = p.pread(fd, buf, buf.length, 0);
  p.close(fd);
  return new TextDecoder().decode(buf.subarray(0, Math.max(0, n)));
}

/** Writes text to a pseudo file at offset 0 as `echo value > file` does; returns pwrite's result. */
export function writeProcFile(p: Process, path: string, text: string): number {
  const fd = p.open(path, O_RDWR);
  if (fd < 0) return fd;
  const bytes = new TextEncoder().encode(text);
  const r = p.pwrite(fd, bytes, bytes.length, 0);
  p.close(fd);
  return r;
}
