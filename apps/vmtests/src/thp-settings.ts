/**
 * Port of tools/testing/selftests/mm/thp_settings.c (v6.19) as cow.c uses it: read the THP
 * sysfs settings (the global files, khugepaged's, and `hugepages-<size>kB/enabled` /
 * `shmem_enabled` for every order whose file exists), a stack of pushed settings each written
 * back whole, and the saved settings restored at the end. The sizes come from the files that
 * exist, so a machine with mTHP sysfs gets them without change here.
 */

import { O_RDONLY, O_WRONLY } from '@hmm-model/mm-core';
import { ExitRequest } from '@hmm-model/selftests';
import type { ProgramEnv } from './program.js';

const THP_SYSFS = '/sys/kernel/mm/transparent_hugepage/';
/** Models MAX_SETTINGS_DEPTH. */
const MAX_SETTINGS_DEPTH = 4;
/** Models NR_ORDERS (thp_settings.h). */
export const NR_ORDERS = 20;
/** Models EXIT_FAILURE. */
const EXIT_FAILURE = 1;

/** Models enum thp_enabled (thp_settings.h). */
export const THP_NEVER = 0;
export const THP_ALWAYS = 1;
export const THP_INHERIT = 2;
export const THP_MADVISE = 3;

/** Models thp_enabled_strings[] (v6.19 order: the enum's). */
const THP_ENABLED_STRINGS = ['never', 'always', 'inherit', 'madvise'];
/** Models thp_defrag_strings[]. */
const THP_DEFRAG_STRINGS = ['always', 'defer', 'defer+madvise', 'madvise', 'never'];
/** Models shmem_enabled_strings[] (v6.19: enum shmem_enabled's order). */
const SHMEM_ENABLED_STRINGS = ['never', 'always', 'within_size', 'advise', 'inherit', 'deny', 'force'];

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

/** Models struct thp_settings. */
export interface ThpSettings {
  thp_enabled: number;
  thp_defrag: number;
  shmem_enabled: number;
  use_zero_page: number;
  khugepaged: KhugepagedSettings;
  read_ahead_kb: number;
  hugepages: { enabled: number }[];
  shmem_hugepages: { enabled: number }[];
}

/** The static state of thp_settings.c in one program. */
interface ThpState {
  stack: ThpSettings[];
  saved: ThpSettings | null;
}
const states = new WeakMap<ProgramEnv, ThpState>();

function state(env: ProgramEnv): ThpState {
  let s = states.get(env);
  if (!s) {
    s = { stack: [], saved: null };
    states.set(env, s);
  }
  return s;
}

/** Models `*settings` struct copies. */
export function cloneSettings(s: ThpSettings): ThpSettings {
  return {
    ...s,
    khugepaged: { ...s.khugepaged },
    hugepages: s.hugepages.map((h) => ({ ...h })),
    shmem_hugepages: s.shmem_hugepages.map((h) => ({ ...h })),
  };
}

/** Models printf() + exit(EXIT_FAILURE). */
function fail(env: ProgramEnv, msg: string): never {
  env.stdio.printf(msg);
  throw new ExitRequest(EXIT_FAILURE);
}

/** Models read_file(path, buf, buflen) (vm_util.c): the text read (at most buflen - 1 bytes), or null. */
export function read_file(env: ProgramEnv, path: string, buflen: number): string | null {
  const { libc } = env;
  const fd = libc.open(path, O_RDONLY);
  if (fd === -1) return null;
  const buf = new Uint8Array(buflen - 1);
  const numread = env.proc.read(fd, buf, buflen - 1);
  if (numread < 1) {
    libc.close(fd);
    return null;
  }
  libc.close(fd);
  return new TextDecoder().decode(buf.subarray(0, numread));
}

/** Models write_file(path, buf, buflen) (vm_util.c): open or write failure exits the program. */
export function write_file(env: ProgramEnv, path: string, text: string): number {
  const { libc } = env;
  const fd = libc.open(path, O_WRONLY);
  if (fd === -1) fail(env, `open(${path})\n`);
  const bytes = new TextEncoder().encode(text);
  const numwritten = env.proc.write(fd, bytes, bytes.length);
  libc.close(fd);
  if (numwritten < 1) fail(env, `write(${text})\n`);
  return numwritten;
}

/** Models read_num(path): strtoul() of the file's text (0 when it cannot be read). */
function read_num(env: ProgramEnv, path: string): number {
  const t = read_file(env, path, 21);
  return t === null ? 0 : Number.parseInt(t, 10) || 0;
}

/** Models thp_read_string(name, strings): the bracketed choice's index; failures exit. */
function thp_read_string(env: ProgramEnv, name: string, strings: readonly string[]): number {
  const path = `${THP_SYSFS}${name}`;
  const buf = read_file(env, path, 256);
  if (buf === null) {
    // perror(path)
    env.stdio.eprintf(`${path}: No such file or directory\n`);
    throw new ExitRequest(EXIT_FAILURE);
  }
  const open = buf.indexOf('[');
  if (open < 0) fail(env, 'thp_read_string: Parse failure\n');
  const rest = buf.slice(open + 1);
  const close = rest.indexOf(']');
  if (close < 0) fail(env, 'thp_read_string: Parse failure\n');
  const i = strings.indexOf(rest.slice(0, close));
  if (i < 0) fail(env, `Failed to parse ${name}\n`);
  return i;
}

/** Models thp_write_string(name, val). */
function thp_write_string(env: ProgramEnv, name: string, val: string): void {
  write_file(env, `${THP_SYSFS}${name}`, val);
}

/** Models thp_read_num(name). */
function thp_read_num(env: ProgramEnv, name: string): number {
  return read_num(env, `${THP_SYSFS}${name}`);
}

/** Models thp_write_num(name, num): `%ld`. */
function thp_write_num(env: ProgramEnv, name: string, num: number): void {
  write_file(env, `${THP_SYSFS}${name}`, String(num));
}

/** Models the size of order i in the per-size directory names: (getpagesize() >> 10) << i. */
function orderKb(env: ProgramEnv, i: number): number {
  return (env.libc.sysconfPageSize() >> 10) * 2 ** i;
}

/** Models __thp_supported_orders(is_shmem): every order whose `hugepages-<kb>kB/<file>` reads. */
function supportedOrders(env: ProgramEnv, shmem: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < NR_ORDERS; i++) {
    const path = `${THP_SYSFS}hugepages-${orderKb(env, i)}kB/${shmem ? 'shmem_enabled' : 'enabled'}`;
    if (read_file(env, path, 256) !== null) out.push(i);
  }
  return out;
}

/** Models thp_supported_orders(): the anonymous mTHP orders as a bit mask. */
export function thp_supported_orders(env: ProgramEnv): number {
  return supportedOrders(env, false).reduce((m, i) => m + 2 ** i, 0);
}

/** Models thp_read_settings(settings). */
export function thp_read_settings(env: ProgramEnv): ThpSettings {
  const orders = new Set(supportedOrders(env, false));
  const shmemOrders = new Set(supportedOrders(env, true));
  const s: ThpSettings = {
    thp_enabled: thp_read_string(env, 'enabled', THP_ENABLED_STRINGS),
    thp_defrag: thp_read_string(env, 'defrag', THP_DEFRAG_STRINGS),
    shmem_enabled: thp_read_string(env, 'shmem_enabled', SHMEM_ENABLED_STRINGS),
    use_zero_page: thp_read_num(env, 'use_zero_page'),
    khugepaged: {
      defrag: thp_read_num(env, 'khugepaged/defrag'),
      alloc_sleep_millisecs: thp_read_num(env, 'khugepaged/alloc_sleep_millisecs'),
      scan_sleep_millisecs: thp_read_num(env, 'khugepaged/scan_sleep_millisecs'),
      max_ptes_none: thp_read_num(env, 'khugepaged/max_ptes_none'),
      max_ptes_swap: thp_read_num(env, 'khugepaged/max_ptes_swap'),
      max_ptes_shared: thp_read_num(env, 'khugepaged/max_ptes_shared'),
      pages_to_scan: thp_read_num(env, 'khugepaged/pages_to_scan'),
    },
    read_ahead_kb: 0,
    hugepages: [],
    shmem_hugepages: [],
  };
  for (let i = 0; i < NR_ORDERS; i++) {
    s.hugepages.push({
      enabled: orders.has(i)
        ? thp_read_string(env, `hugepages-${orderKb(env, i)}kB/enabled`, THP_ENABLED_STRINGS)
        : THP_NEVER,
    });
  }
  for (let i = 0; i < NR_ORDERS; i++) {
    s.shmem_hugepages.push({
      enabled: shmemOrders.has(i)
        ? thp_read_string(env, `hugepages-${orderKb(env, i)}kB/shmem_enabled`, SHMEM_ENABLED_STRINGS)
        : 0 /* SHMEM_NEVER */,
    });
  }
  return s;
}

/** Models thp_write_settings(settings): every file, global ones first, then each order's. */
export function thp_write_settings(env: ProgramEnv, s: ThpSettings): void {
  const orders = supportedOrders(env, false);
  const shmemOrders = supportedOrders(env, true);
  const k = s.khugepaged;
  thp_write_string(env, 'enabled', THP_ENABLED_STRINGS[s.thp_enabled]);
  thp_write_string(env, 'defrag', THP_DEFRAG_STRINGS[s.thp_defrag]);
  thp_write_string(env, 'shmem_enabled', SHMEM_ENABLED_STRINGS[s.shmem_enabled]);
  thp_write_num(env, 'use_zero_page', s.use_zero_page);
  thp_write_num(env, 'khugepaged/defrag', k.defrag);
  thp_write_num(env, 'khugepaged/alloc_sleep_millisecs', k.alloc_sleep_millisecs);
  thp_write_num(env, 'khugepaged/scan_sleep_millisecs', k.scan_sleep_millisecs);
  thp_write_num(env, 'khugepaged/max_ptes_none', k.max_ptes_none);
  thp_write_num(env, 'khugepaged/max_ptes_swap', k.max_ptes_swap);
  thp_write_num(env, 'khugepaged/max_ptes_shared', k.max_ptes_shared);
  thp_write_num(env, 'khugepaged/pages_to_scan', k.pages_to_scan);
  for (const i of orders)
    thp_write_string(
      env,
      `hugepages-${orderKb(env, i)}kB/enabled`,
      THP_ENABLED_STRINGS[s.hugepages[i].enabled],
    );
  for (const i of shmemOrders)
    thp_write_string(
      env,
      `hugepages-${orderKb(env, i)}kB/shmem_enabled`,
      SHMEM_ENABLED_STRINGS[s.shmem_hugepages[i].enabled],
    );
}

/** Models thp_current_settings(): the top of the stack (a copy the caller may change). */
export function thp_current_settings(env: ProgramEnv): ThpSettings {
  const st = state(env).stack;
  if (!st.length) fail(env, 'Fail: No settings set');
  return st[st.length - 1];
}

/** Models thp_push_settings(settings). */
export function thp_push_settings(env: ProgramEnv, s: ThpSettings): void {
  const st = state(env).stack;
  if (st.length >= MAX_SETTINGS_DEPTH) fail(env, 'Fail: Settings stack exceeded');
  st.push(cloneSettings(s));
  thp_write_settings(env, thp_current_settings(env));
}

/** Models thp_pop_settings(). */
export function thp_pop_settings(env: ProgramEnv): void {
  const st = state(env).stack;
  if (st.length <= 0) fail(env, 'Fail: Settings stack empty');
  st.pop();
  thp_write_settings(env, thp_current_settings(env));
}

/** Models thp_save_settings(). */
export function thp_save_settings(env: ProgramEnv): void {
  state(env).saved = thp_read_settings(env);
}

/** Models thp_restore_settings(). */
export function thp_restore_settings(env: ProgramEnv): void {
  const saved = state(env).saved;
  if (saved) thp_write_settings(env, saved);
}
