/**
 * tools/testing/selftests/mm/thp_settings.c (v6.19) and the sysfs file helpers of vm_util.c it
 * uses (read_file(), write_file(), read_num(), write_num()): the THP and khugepaged settings
 * read from and written to /sys/kernel/mm/transparent_hugepage/, a stack of pushed settings, the
 * saved settings to restore at exit, and the per-size (mTHP) `hugepages-<size>kB/enabled` and
 * `shmem_enabled` files, read and written only for the orders whose file exists
 * (thp_supported_orders(), thp_shmem_supported_orders()), as the C code does.
 */

import { O_RDONLY, O_WRONLY } from '@hmm-model/mm-core';
import { ExitRequest, strerror } from '@hmm-model/selftests';
import type { ProgramEnv } from './program.js';

/** Models THP_SYSFS. */
export const THP_SYSFS = '/sys/kernel/mm/transparent_hugepage/';
/** Models MAX_SETTINGS_DEPTH. */
const MAX_SETTINGS_DEPTH = 4;
/** Models NR_ORDERS (thp_settings.h). */
export const NR_ORDERS = 20;

/** Models enum thp_enabled (thp_settings.h): indexes of thp_enabled_strings. */
export const THP_NEVER = 0;
export const THP_ALWAYS = 1;
export const THP_INHERIT = 2;
export const THP_MADVISE = 3;
const thp_enabled_strings = ['never', 'always', 'inherit', 'madvise'];

/** Models enum thp_defrag. */
export const THP_DEFRAG_ALWAYS = 0;
const thp_defrag_strings = ['always', 'defer', 'defer+madvise', 'madvise', 'never'];

/** Models enum shmem_enabled. */
export const SHMEM_NEVER = 0;
export const SHMEM_ALWAYS = 1;
export const SHMEM_ADVISE = 3;
export const SHMEM_INHERIT = 4;
const shmem_enabled_strings = ['never', 'always', 'within_size', 'advise', 'inherit', 'deny', 'force'];

/** Models struct khugepaged_settings. */
export interface KhugepagedSettings {
  defrag: number;
  alloc_sleep_millisecs: number;
  scan_sleep_millisecs: number;
  max_ptes_none: number;
  max_ptes_swap: number;
  max_ptes_shared: number;
  pages_to_scan: number;
}

/** Models struct thp_settings (hugepages[] and shmem_hugepages[] hold the per-order `enabled`). */
export interface ThpSettings {
  thp_enabled: number;
  thp_defrag: number;
  shmem_enabled: number;
  use_zero_page: number;
  khugepaged: KhugepagedSettings;
  read_ahead_kb: number;
  hugepages: number[];
  shmem_hugepages: number[];
}

/** A zero-initialised struct thp_settings (a C designated initializer leaves the rest 0). */
export function thpSettingsZero(): ThpSettings {
  return {
    thp_enabled: 0,
    thp_defrag: 0,
    shmem_enabled: 0,
    use_zero_page: 0,
    khugepaged: {
      defrag: 0,
      alloc_sleep_millisecs: 0,
      scan_sleep_millisecs: 0,
      max_ptes_none: 0,
      max_ptes_swap: 0,
      max_ptes_shared: 0,
      pages_to_scan: 0,
    },
    read_ahead_kb: 0,
    hugepages: new Array<number>(NR_ORDERS).fill(0),
    shmem_hugepages: new Array<number>(NR_ORDERS).fill(0),
  };
}

/** Models struct assignment (`*a = *b`): a deep copy. */
export function thpSettingsCopy(s: ThpSettings): ThpSettings {
  return {
    ...s,
    khugepaged: { ...s.khugepaged },
    hugepages: [...s.hugepages],
    shmem_hugepages: [...s.shmem_hugepages],
  };
}

/** Models the static state of thp_settings.c: settings_stack, settings_index, saved_settings, the read-ahead path. */
export class ThpSettingsState {
  stack: ThpSettings[] = [];
  saved: ThpSettings = thpSettingsZero();
  devQueueReadAheadPath = '';

  /** Models fork(): the child has a copy of the static data. */
  clone(): ThpSettingsState {
    const c = new ThpSettingsState();
    c.stack = this.stack.map(thpSettingsCopy);
    c.saved = thpSettingsCopy(this.saved);
    c.devQueueReadAheadPath = this.devQueueReadAheadPath;
    return c;
  }
}

/** What the helpers need: the program and thp_settings.c's static state. */
export interface ThpEnv {
  readonly env: ProgramEnv;
  readonly thp: ThpSettingsState;
}

/** Models exit(EXIT_FAILURE) (the caller's atexit handlers run where the ExitRequest is caught). */
function exitFailure(): never {
  throw new ExitRequest(1);
}

/**
 * Models read_file(path, buf, buflen) (vm_util.c): the text read (at most buflen - 1 bytes), or
 * null where the C function returns 0 (open() failed or read() gave less than one byte).
 */
export function read_file(env: ProgramEnv, path: string, buflen: number): string | null {
  const { libc } = env;
  const fd = libc.open(path, O_RDONLY);
  if (fd === -1) return null;
  const buf = new Uint8Array(buflen - 1);
  const numread = libc.pread(fd, buf, buflen - 1, 0);
  if (numread < 1) {
    libc.close(fd);
    return null;
  }
  libc.close(fd);
  return new TextDecoder().decode(buf.subarray(0, numread));
}

/** Models write_file(path, buf, buflen) (vm_util.c): writes buflen - 1 bytes, or ends the program. */
export function write_file(env: ProgramEnv, path: string, text: string): void {
  const { libc, ksft, proc } = env;
  const buflen = text.length + 1;
  if (buflen < 2) ksft.exit_fail_msg(`Incorrect buffer len: ${buflen}\n`);
  const fd = libc.open(path, O_WRONLY);
  if (fd === -1) ksft.exit_fail_msg(`${path} open failed: ${strerror(libc.errno)}\n`);
  const bytes = new TextEncoder().encode(text);
  const ubuf = libc.stackAlloc(bytes.length);
  proc.writeBytes(ubuf, bytes);
  const numwritten = libc.pwrite(fd, ubuf, buflen - 1, 0);
  const saved = libc.errno;
  libc.close(fd);
  libc.errno = saved;
  if (numwritten < 0) ksft.exit_fail_msg(`${path} write(${text}) failed: ${strerror(libc.errno)}\n`);
  if (numwritten !== buflen - 1)
    ksft.exit_fail_msg(
      `${path} write(${text}) is truncated, expected ${buflen - 1} bytes, got ${numwritten} bytes\n`,
    );
}

/** Models strtoul(buf, NULL, 10): leading blanks, an optional sign, decimal digits (0 if none). */
export function strtoul(buf: string): number {
  const m = /^\s*([+-]?)(\d*)/.exec(buf);
  if (!m?.[2]) return 0;
  const v = Number(m[2]);
  return m[1] === '-' ? -v : v;
}

/** Models read_num(path) (vm_util.c). */
export function read_num(env: ProgramEnv, path: string): number {
  const buf = read_file(env, path, 21);
  return strtoul(buf ?? '');
}

/** Models write_num(path, num) (vm_util.c): "%lu". */
export function write_num(env: ProgramEnv, path: string, num: number): void {
  write_file(env, path, String(num));
}

/** Models thp_read_string(name, strings): the index of the bracketed word of a THP sysfs file. */
export function thp_read_string(t: ThpEnv, name: string, strings: readonly string[]): number {
  const { stdio } = t.env;
  const path = THP_SYSFS + name;
  const buf = read_file(t.env, path, 256);
  if (buf === null) {
    stdio.perror(path, t.env.libc.errno);
    exitFailure();
  }
  const open = buf.indexOf('[');
  if (open < 0) {
    stdio.printf('thp_read_string: Parse failure\n');
    exitFailure();
  }
  const rest = buf.slice(open + 1);
  const close = rest.indexOf(']');
  if (close < 0) {
    stdio.printf('thp_read_string: Parse failure\n');
    exitFailure();
  }
  const word = rest.slice(0, close);
  const i = strings.indexOf(word);
  if (i >= 0) return i;
  stdio.printf(`Failed to parse ${name}\n`);
  exitFailure();
}

/** Models thp_write_string(name, val). */
export function thp_write_string(t: ThpEnv, name: string, val: string): void {
  write_file(t.env, THP_SYSFS + name, val);
}

/** Models thp_read_num(name). */
export function thp_read_num(t: ThpEnv, name: string): number {
  return read_num(t.env, THP_SYSFS + name);
}

/** Models thp_write_num(name, num). */
export function thp_write_num(t: ThpEnv, name: string, num: number): void {
  write_num(t.env, THP_SYSFS + name, num);
}

/** Models `(getpagesize() >> 10) << i`: the size in kB of an order-i folio. */
function orderKb(t: ThpEnv, i: number): number {
  return (t.env.libc.sysconfPageSize() >> 10) << i;
}

/** Models __thp_supported_orders(is_shmem): the orders whose hugepages-<size>kB file can be read. */
function __thp_supported_orders(t: ThpEnv, isShmem: boolean): number {
  let orders = 0;
  for (let i = 0; i < NR_ORDERS; i++) {
    const path = `${THP_SYSFS}hugepages-${orderKb(t, i)}kB/${isShmem ? 'shmem_enabled' : 'enabled'}`;
    if (read_file(t.env, path, 256) !== null) orders |= 1 << i;
  }
  return orders;
}

/** Models thp_supported_orders(). */
export function thp_supported_orders(t: ThpEnv): number {
  return __thp_supported_orders(t, false);
}

/** Models thp_shmem_supported_orders(). */
export function thp_shmem_supported_orders(t: ThpEnv): number {
  return __thp_supported_orders(t, true);
}

/** Models thp_read_settings(settings). */
export function thp_read_settings(t: ThpEnv): ThpSettings {
  const orders = thp_supported_orders(t);
  const shmemOrders = thp_shmem_supported_orders(t);
  const s = thpSettingsZero();
  s.thp_enabled = thp_read_string(t, 'enabled', thp_enabled_strings);
  s.thp_defrag = thp_read_string(t, 'defrag', thp_defrag_strings);
  s.shmem_enabled = thp_read_string(t, 'shmem_enabled', shmem_enabled_strings);
  s.use_zero_page = thp_read_num(t, 'use_zero_page');
  s.khugepaged = {
    defrag: thp_read_num(t, 'khugepaged/defrag'),
    alloc_sleep_millisecs: thp_read_num(t, 'khugepaged/alloc_sleep_millisecs'),
    scan_sleep_millisecs: thp_read_num(t, 'khugepaged/scan_sleep_millisecs'),
    max_ptes_none: thp_read_num(t, 'khugepaged/max_ptes_none'),
    max_ptes_swap: thp_read_num(t, 'khugepaged/max_ptes_swap'),
    max_ptes_shared: thp_read_num(t, 'khugepaged/max_ptes_shared'),
    pages_to_scan: thp_read_num(t, 'khugepaged/pages_to_scan'),
  };
  if (t.thp.devQueueReadAheadPath) s.read_ahead_kb = read_num(t.env, t.thp.devQueueReadAheadPath);
  for (let i = 0; i < NR_ORDERS; i++) {
    if (!((1 << i) & orders)) {
      s.hugepages[i] = THP_NEVER;
      continue;
    }
    s.hugepages[i] = thp_read_string(t, `hugepages-${orderKb(t, i)}kB/enabled`, thp_enabled_strings);
  }
  for (let i = 0; i < NR_ORDERS; i++) {
    if (!((1 << i) & shmemOrders)) {
      s.shmem_hugepages[i] = SHMEM_NEVER;
      continue;
    }
    s.shmem_hugepages[i] = thp_read_string(
      t,
      `hugepages-${orderKb(t, i)}kB/shmem_enabled`,
      shmem_enabled_strings,
    );
  }
  return s;
}

/** Models thp_write_settings(settings). */
export function thp_write_settings(t: ThpEnv, s: ThpSettings): void {
  const k = s.khugepaged;
  const orders = thp_supported_orders(t);
  const shmemOrders = thp_shmem_supported_orders(t);
  thp_write_string(t, 'enabled', thp_enabled_strings[s.thp_enabled]);
  thp_write_string(t, 'defrag', thp_defrag_strings[s.thp_defrag]);
  thp_write_string(t, 'shmem_enabled', shmem_enabled_strings[s.shmem_enabled]);
  thp_write_num(t, 'use_zero_page', s.use_zero_page);
  thp_write_num(t, 'khugepaged/defrag', k.defrag);
  thp_write_num(t, 'khugepaged/alloc_sleep_millisecs', k.alloc_sleep_millisecs);
  thp_write_num(t, 'khugepaged/scan_sleep_millisecs', k.scan_sleep_millisecs);
  thp_write_num(t, 'khugepaged/max_ptes_none', k.max_ptes_none);
  thp_write_num(t, 'khugepaged/max_ptes_swap', k.max_ptes_swap);
  thp_write_num(t, 'khugepaged/max_ptes_shared', k.max_ptes_shared);
  thp_write_num(t, 'khugepaged/pages_to_scan', k.pages_to_scan);
  if (t.thp.devQueueReadAheadPath) write_num(t.env, t.thp.devQueueReadAheadPath, s.read_ahead_kb);
  for (let i = 0; i < NR_ORDERS; i++) {
    if (!((1 << i) & orders)) continue;
    thp_write_string(t, `hugepages-${orderKb(t, i)}kB/enabled`, thp_enabled_strings[s.hugepages[i]]);
  }
  for (let i = 0; i < NR_ORDERS; i++) {
    if (!((1 << i) & shmemOrders)) continue;
    thp_write_string(
      t,
      `hugepages-${orderKb(t, i)}kB/shmem_enabled`,
      shmem_enabled_strings[s.shmem_hugepages[i]],
    );
  }
}

/** Models thp_current_settings(). */
export function thp_current_settings(t: ThpEnv): ThpSettings {
  if (!t.thp.stack.length) {
    t.env.stdio.printf('Fail: No settings set');
    exitFailure();
  }
  return t.thp.stack[t.thp.stack.length - 1];
}

/** Models thp_push_settings(settings). */
export function thp_push_settings(t: ThpEnv, s: ThpSettings): void {
  if (t.thp.stack.length >= MAX_SETTINGS_DEPTH) {
    t.env.stdio.printf('Fail: Settings stack exceeded');
    exitFailure();
  }
  t.thp.stack.push(thpSettingsCopy(s));
  thp_write_settings(t, thp_current_settings(t));
}

/** Models thp_pop_settings(). */
export function thp_pop_settings(t: ThpEnv): void {
  if (t.thp.stack.length <= 0) {
    t.env.stdio.printf('Fail: Settings stack empty');
    exitFailure();
  }
  t.thp.stack.pop();
  thp_write_settings(t, thp_current_settings(t));
}

/** Models thp_restore_settings(). */
export function thp_restore_settings(t: ThpEnv): void {
  thp_write_settings(t, t.thp.saved);
}

/** Models thp_save_settings(). */
export function thp_save_settings(t: ThpEnv): void {
  t.thp.saved = thp_read_settings(t);
}

/** Models thp_set_read_ahead_path(path). */
export function thp_set_read_ahead_path(t: ThpEnv, path: string | null): void {
  t.thp.devQueueReadAheadPath = path ?? '';
}

/**
 * Models access(THP_SYSFS, F_OK): the directory exists when the kernel has any file below it
 * (the model's VFS has no directories).
 */
function thpSysfsExists(env: ProgramEnv): boolean {
  for (const p of env.kernel.devices.keys()) if (p.startsWith(THP_SYSFS)) return true;
  return false;
}

/** Models thp_is_enabled(): THP_SYSFS exists and `enabled` is "always" or "madvise". */
export function thp_is_enabled(t: ThpEnv): boolean {
  if (!thpSysfsExists(t.env)) return false;
  const mode = thp_read_string(t, 'enabled', thp_enabled_strings);
  return mode === THP_ALWAYS || mode === THP_MADVISE;
}
