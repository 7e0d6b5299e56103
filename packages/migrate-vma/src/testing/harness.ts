/**
 * Test fixtures shared by the migrate-vma tests (test-only): a machine with both invariant
 * checkers installed and run after every syscall, a test device, THP-backed windows and
 * page-table probes.
 */
import {
  type EntryKind,
  entryKind,
  entryPfn,
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
  type Vma,
} from '@hmm-model/mm-core';
import { installMigrateChecker } from '../checker.js';
import { MiniDevice } from './minidev.js';

/** A machine under test. */
export interface Machine {
  k: Kernel;
  dev: MiniDevice;
  /** A second device (a different pgmap owner). */
  dev2: MiniDevice;
  p: Process;
  /** Runs every checker now and returns the violations (also checks no WARN fired). */
  check(): string[];
}

/** Creates a machine with mm core's and this package's checkers after every syscall. */
export function machine(opts: { ramBytes?: number; seed?: number; devPages?: number } = {}): Machine {
  const k = new Kernel({ ramBytes: opts.ramBytes ?? 128 << 20, checkInvariants: true, seed: opts.seed ?? 1 });
  installMmCoreChecker(k);
  const dev = new MiniDevice(k, opts.devPages ?? 8192, 'minidev0');
  const dev2 = new MiniDevice(k, opts.devPages ?? 8192, 'minidev1');
  installMigrateChecker(k, { freeLists: () => [dev.freeLists(), dev2.freeLists()] });
  // Global init (pid 1) stays idle: the test process may exit (init's exit panics, do_exit()).
  k.spawn();
  const p = k.spawn();
  const check = () => [...k.check(), ...k.core.warnings.map((w) => `WARN: ${w.message}`)];
  return { k, dev, dev2, p, check };
}

/** mmap 4 MiB and return the 2 MiB-aligned address inside it, MADV_HUGEPAGE'd. */
export function thpWindow(p: Process, prot = PROT_READ | PROT_WRITE): number {
  const raw = p.mmap(0, 2 * PMD_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS);
  const w = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
  if (p.madvise(w, PMD_SIZE, MADV_HUGEPAGE) !== 0) throw new Error('madvise');
  return w;
}

/** Writes the int pattern i + salt at every int of [addr, addr + len). */
export function fillPattern(p: Process, addr: number, len: number, salt = 0): void {
  p.writeInts(
    addr,
    Int32Array.from({ length: len / 4 }, (_, i) => (i + salt) | 0),
  );
}

/** The first int index in [addr, addr + len) that does not hold i + salt, or -1. */
export function badPattern(p: Process, addr: number, len: number, salt = 0): number {
  const back = p.readInts(addr, len / 4);
  for (let i = 0; i < back.length; i++) if (back[i] !== ((i + salt) | 0)) return i;
  return -1;
}

/** The kind of the PMD entry mapping addr. */
export function pmdKind(k: Kernel, p: Process, addr: number): EntryKind | 'no-table' {
  const t = pmdTableOf(k.core, p.mm, addr, false);
  if (t < 0) return 'no-table';
  const i = pmdIndex(addr);
  return entryKind(ptLo(k.core, t, i), ptHi(k.core, t, i), 'pmd', k.core.zeroPfn, k.core.hugeZeroPfn);
}

/** The kind of the PTE mapping addr ('no-table' when the PMD is not a table). */
export function pteKind(k: Kernel, p: Process, addr: number): EntryKind | 'no-table' {
  const t = pteTableOf(k.core, p.mm, addr, false);
  if (t < 0) return 'no-table';
  const i = pteIndex(addr);
  return entryKind(ptLo(k.core, t, i), ptHi(k.core, t, i), 'pte', k.core.zeroPfn, k.core.hugeZeroPfn);
}

/** The pfn in the PTE (or, with `pmd`, PMD) entry for addr, or -1. */
export function entryPfnAt(k: Kernel, p: Process, addr: number, pmd = false): number {
  const t = pmd ? pmdTableOf(k.core, p.mm, addr, false) : pteTableOf(k.core, p.mm, addr, false);
  if (t < 0) return -1;
  const i = pmd ? pmdIndex(addr) : pteIndex(addr);
  return entryPfn(ptLo(k.core, t, i), ptHi(k.core, t, i));
}

/** The VMA containing addr (throws when there is none). */
export function vmaAt(p: Process, addr: number): Vma {
  const v = p.mm.vmaLookup(addr);
  if (!v) throw new Error(`no vma at ${addr.toString(16)}`);
  return v;
}
