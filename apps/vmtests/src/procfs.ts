/**
 * The procfs files the ported selftests read that the mm-core machine does not register:
 * /proc/self/smaps (the fields mm-core's smaps() tracks and VmFlags, each VMA headed by
 * mm-core's show_map_vma() line) and /proc/sys/vm/mmap_min_addr. They are views of existing model state (the VMAs, the
 * smaps walk, the fixed minimum address of do_mmap()), registered when the machine boots like
 * any other pseudo file; a file mm-core already registers is left alone.
 */

import {
  EINVAL,
  type Kernel,
  type MmStruct,
  mapsLine,
  type Process,
  RESCHED,
  smaps,
} from '@hmm-model/mm-core';

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
 * Models /proc/<pid>/smaps (show_smap()) with the fields the model tracks, in the kernel's
 * order: Size, KernelPageSize, MMUPageSize, Rss, Anonymous, AnonHugePages, ShmemPmdMapped,
 * FilePmdMapped (0: the model has no file THP but tmpfs), Shared_Hugetlb, Private_Hugetlb, Swap and
 * VmFlags. The kernel's other fields (Pss, Shared_Clean/Dirty, Private_Clean/Dirty, Referenced,
 * LazyFree, SwapPss, Locked, THPeligible, ...) are not printed.
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
    out += `${kbLine('ShmemPmdMapped:', e.shmemPmdMapped)}\n`;
    out += `${kbLine('FilePmdMapped:', e.filePmdMapped)}\n`;
    // seq_put_decimal_ull_width(m, " kB\nShared_Hugetlb: ", ..., 7) and its Private_ twin.
    out += `Shared_Hugetlb: ${String(Math.floor(e.sharedHugetlb / 1024)).padStart(7)} kB\n`;
    out += `Private_Hugetlb: ${String(Math.floor(e.privateHugetlb / 1024)).padStart(7)} kB\n`;
    out += `${kbLine('Swap:', e.swap)}\n`;
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
      if (kernel.sched.preempt('seq_read: show')) yield RESCHED;
      return readText(proc.state === 'running' ? gen(proc) : '', buf, pos);
    },
  });
}

/**
 * Models /proc/<pid>/clear_refs (clear_refs_write(), fs/proc/task_mmu.c): kstrtoint() of the text,
 * a type from CLEAR_REFS_ALL (1) to CLEAR_REFS_MM_HIWATER_RSS (5), else -EINVAL. The model tracks
 * neither referenced/young bits nor soft-dirty (a kernel without CONFIG_MEM_SOFT_DIRTY, where
 * clear_soft_dirty() is empty), so an accepted write changes nothing.
 */
function registerClearRefs(kernel: Kernel): void {
  const path = '/proc/self/clear_refs';
  if (kernel.devices.has(path)) return;
  kernel.registerDevice(path, {
    *pwrite(_file, buf) {
      const text = new TextDecoder().decode(buf).replace(/\n$/, '');
      if (!/^[+-]?\d+$/.test(text)) return -EINVAL;
      const type = Number(text);
      if (type < 1 || type > 5) return -EINVAL;
      if (kernel.sched.preempt('clear_refs_write: walk')) yield RESCHED;
      return buf.length;
    },
  });
}

/** Registers /proc/self/maps, /proc/self/smaps and /proc/sys/vm/mmap_min_addr on the machine. */
export function installProcfs(kernel: Kernel): void {
  registerClearRefs(kernel);
  registerProcText(kernel, '/proc/self/smaps', (proc) => smapsText(kernel, proc.mm));
  registerProcText(kernel, '/proc/sys/vm/mmap_min_addr', () => `${MMAP_MIN_ADDR}\n`);
}
