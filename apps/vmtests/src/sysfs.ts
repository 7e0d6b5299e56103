/**
 * The /sys/kernel/mm/transparent_hugepage files that thp_settings.c reads and writes back and the
 * mm-core machine lacks (or has read-only): `enabled` gets enabled_store() (the global THP mode of
 * the model), `defrag`, `shmem_enabled` and `use_zero_page` read as a v6.19 kernel's defaults and
 * take the kernel's values. The model has no defrag or shmem THP policy and always uses the huge
 * zero page, so those three keep what is written without changing behaviour, and use_zero_page
 * refuses 0. A file mm-core registers with a store of its own is left alone.
 */

import { EINVAL, type FileOperations, type Kernel, type ThpMode } from '@hmm-model/mm-core';

const THP_SYSFS = '/sys/kernel/mm/transparent_hugepage/';

/** Models a sysfs show(): the text at `pos`. */
function readText(text: string, buf: Uint8Array, pos: number): number {
  const bytes = new TextEncoder().encode(text);
  if (pos >= bytes.length) return 0;
  const n = Math.min(buf.length, bytes.length - pos);
  buf.set(bytes.subarray(pos, pos + n));
  return n;
}

/** Models sysfs_streq(): equal up to one trailing newline on either side. */
function sysfsStreq(a: string, b: string): boolean {
  return a.replace(/\n$/, '') === b.replace(/\n$/, '');
}

/** A sysfs choice file: the choices with the selected one in brackets, and its store. */
function choiceFile(choices: readonly string[], get: () => string, set: (v: string) => void): FileOperations {
  return {
    *pread(_file, buf, pos) {
      return readText(`${choices.map((c) => (c === get() ? `[${c}]` : c)).join(' ')}\n`, buf, pos);
    },
    *pwrite(_file, buf) {
      const text = new TextDecoder().decode(buf);
      const v = choices.find((c) => sysfsStreq(text, c));
      if (v === undefined) return -EINVAL;
      set(v);
      return buf.length;
    },
  };
}

/** Registers `path` unless the machine has a file there that can be written. */
function registerStore(kernel: Kernel, path: string, fops: FileOperations): void {
  if (kernel.devices.get(path)?.pwrite) return;
  const have = kernel.devices.get(path);
  // Keep mm-core's show() when it has one; add the store.
  kernel.registerDevice(path, have?.pread ? { ...fops, pread: have.pread } : fops);
}

/** Registers the THP sysfs files of thp_settings.c on the vmtests machine. */
export function installThpSysfs(kernel: Kernel): void {
  const core = kernel.core;
  // enabled_store() (mm/huge_memory.c): "always", "madvise" or "never".
  registerStore(
    kernel,
    `${THP_SYSFS}enabled`,
    choiceFile(
      ['always', 'madvise', 'never'],
      () => core.thpMode,
      (v) => {
        core.thpMode = v as ThpMode;
      },
    ),
  );
  // defrag_store(): the kernel's default is "madvise".
  let defrag = 'madvise';
  registerStore(
    kernel,
    `${THP_SYSFS}defrag`,
    choiceFile(
      ['always', 'defer', 'defer+madvise', 'madvise', 'never'],
      () => defrag,
      (v) => {
        defrag = v;
      },
    ),
  );
  // shmem_enabled_store() (mm/shmem.c): the default is "never".
  let shmem = 'never';
  registerStore(
    kernel,
    `${THP_SYSFS}shmem_enabled`,
    choiceFile(
      ['always', 'within_size', 'advise', 'never', 'deny', 'force'],
      () => shmem,
      (v) => {
        shmem = v;
      },
    ),
  );
  // use_zero_page_store() (single_hugepage_flag_store()): the model always uses the huge zero page.
  registerStore(kernel, `${THP_SYSFS}use_zero_page`, {
    *pread(_file, buf, pos) {
      return readText('1\n', buf, pos);
    },
    *pwrite(_file, buf) {
      const text = new TextDecoder().decode(buf);
      return sysfsStreq(text, '1') ? buf.length : -EINVAL;
    },
  });
}
