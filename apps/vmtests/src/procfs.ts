/**
 * The procfs files the ported selftests read that the mm-core machine does not register:
 * /proc/self/smaps (the fields mm-core's smaps() tracks and VmFlags, each VMA headed by
 * mm-core's show_map_vma() line) and /proc/sys/vm/mmap_min_addr. They are views of existing model state (the VMAs, the
 * smaps walk, the fixed minimum address of do_mmap()), registered when the machine boots like
 * any other pseudo file; a file mm-core already registers is left alone.
 */

import { type Kernel, type MmStruct, mapsLine, type Process, smaps } from '@hmm-model/mm-core';

/** Models dac_mmap_min_addr: the lowest address do_mmap() of this model accepts (its fixed 0x10000). */
export const MMAP_MIN_ADDR = 0x10000;

/**
 * Models the mnemonics of show_smap_vma_flags() (fs/proc/task_mmu.c) for the low 32 vm_flags bits
 * of x86-64, indexed by bit number (the model uses the kernel's bit values).
 */
const VMFLAG_MNEMONICS: readonly string[] = [
  'rd',
  'wr',
  'ex',
  'sh',
  'mr',
  'mw',
  'me',
  'ms',
  'gd',
  'um',
  'pf',
  '',
  'uw',
  'lo',
  'io',
  'sr',
  'rr',
  'dc',
  'de',
  'lf',
  'ac',
  'nr',
  'ht',
  'sf',
  'ar',
  'wf',
  'dd',
  'sd',
  'mm',
  'hg',
  'nh',
  'mg',
];

/** Models show_smap_vma_flags(): `VmFlags: ` and each set flag's mnemonic followed by a space. */
export function vmFlagsLine(flags: number): string {
  let out = 'VmFlags: ';
  for (let bit = 0; bit < VMFLAG_MNEMONICS.length; bit++) {
    const m = VMFLAG_MNEMONICS[bit];
    if (m && (flags >>> bit) & 1) out += `${m} `;
  }
  return out;
}

/** Models SEQ_PUT_DEC()/show_val_kb(): the label, the value in kB right-aligned in 8, ` kB`. */
function kbLine(label: string, bytes: number): string {
  return `${label.padEnd(16)}${String(Math.floor(bytes / 1024)).padStart(8)} kB`;
}

/**
 * Models /proc/<pid>/smaps (show_smap()) with the fields the model tracks: Size,
 * KernelPageSize, MMUPageSize, Rss, Anonymous, AnonHugePages, ShmemPmdMapped, FilePmdMapped and
 * VmFlags. The kernel's other fields (Pss, Shared_*, Private_*, Referenced, Swap, ...) are not
 * printed.
 */
export function smapsText(kernel: Kernel, mm: MmStruct): string {
  const entries = smaps(kernel.core, mm);
  let out = '';
  mm.vmas.forEach((v, i) => {
    const e = entries[i];
    out += `${mapsLine(v)}\n`;
    out += `${kbLine('Size:', v.end - v.start)}\n`;
    out += `${kbLine('KernelPageSize:', 4096)}\n`;
    out += `${kbLine('MMUPageSize:', 4096)}\n`;
    out += `${kbLine('Rss:', e.rss)}\n`;
    out += `${kbLine('Anonymous:', e.anonymous)}\n`;
    out += `${kbLine('AnonHugePages:', e.anonHugePages)}\n`;
    // The model maps no shmem or file folio with a PMD (its tmpfs has no huge pages).
    out += `${kbLine('ShmemPmdMapped:', 0)}\n`;
    out += `${kbLine('FilePmdMapped:', 0)}\n`;
    out += `${vmFlagsLine(v.flags)}\n`;
  });
  return out;
}

/** Models a seq_file read at `pos` of a text generated at open/read time. */
function readText(text: string, buf: Uint8Array, pos: number): number {
  const bytes = new TextEncoder().encode(text);
  if (pos >= bytes.length) return 0;
  const n = Math.min(buf.length, bytes.length - pos);
  buf.set(bytes.subarray(pos, pos + n));
  return n;
}

/** Registers a read-only per-process text file at `path` unless the machine already has one. */
function registerProcText(kernel: Kernel, path: string, gen: (proc: Process) => string): void {
  if (kernel.devices.has(path)) return;
  kernel.registerDevice(path, {
    *pread(file, buf, pos) {
      const proc = file.opener as Process;
      yield 'seq_read: show';
      return readText(proc.state === 'running' ? gen(proc) : '', buf, pos);
    },
  });
}

/** Registers /proc/self/maps, /proc/self/smaps and /proc/sys/vm/mmap_min_addr on the machine. */
export function installProcfs(kernel: Kernel): void {
  registerProcText(kernel, '/proc/self/smaps', (proc) => smapsText(kernel, proc.mm));
  registerProcText(kernel, '/proc/sys/vm/mmap_min_addr', () => `${MMAP_MIN_ADDR}\n`);
}
