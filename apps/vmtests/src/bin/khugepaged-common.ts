/**
 * The shared part of the khugepaged.c port (tools/testing/selftests/mm/khugepaged.c, v6.19):
 * the program's static data, its output helpers (success(), fail(), skip()), the memory types
 * (struct mem_ops: anon, shmem; file is not ported, see khugepaged.ts) and the collapse contexts
 * (struct collapse_context: khugepaged, which waits on full_scans while the model's khugepaged
 * runs in usleep(), and madvise, MADV_COLLAPSE).
 */

import {
  EAGAIN,
  MADV_COLLAPSE,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  SignalDelivered,
} from '@hmm-model/mm-core';
import { ExitRequest } from '@hmm-model/selftests';
import { fmtPtr } from '../printf.js';
import { memfd_create, type ProgramEnv, usleep } from '../program.js';
import {
  SHMEM_NEVER,
  THP_NEVER,
  type ThpEnv,
  ThpSettingsState,
  thp_current_settings,
  thp_pop_settings,
  thp_push_settings,
  thp_read_num,
  thp_restore_settings,
  thpSettingsCopy,
} from '../thp-settings.js';
import { check_huge_anon, check_huge_shmem } from '../vmutil.js';

/** Models BASE_ADDR ((void *)(1UL << 30)). */
export const BASE_ADDR = 2 ** 30;
/** Models EXIT_FAILURE. */
export const EXIT_FAILURE = 1;
/** Models TICK (usleep() between two looks at full_scans, in microseconds). */
const TICK = 500000;

/** Models enum vma_type. */
export type VmaType = 'VMA_ANON' | 'VMA_FILE' | 'VMA_SHMEM';

/** Models struct mem_ops. */
export interface MemOps {
  readonly name: string;
  setup_area(g: Khug, nrHpages: number): number;
  cleanup_area(g: Khug, p: number, size: number): void;
  fault(g: Khug, p: number, start: number, end: number): void;
  check_huge(g: Khug, addr: number, nrHpages: number): boolean;
}

/** Models struct collapse_context. */
export interface CollapseContext {
  readonly name: string;
  readonly enforce_pte_scan_limits: boolean;
  collapse(g: Khug, msg: string, p: number, nrHpages: number, ops: MemOps, expect: boolean): void;
}

/** Models struct file_info. */
export interface FileInfo {
  dir: string;
  path: string;
  type: VmaType;
  fd: number;
  dev_queue_read_ahead_path: string;
}

/**
 * Models the static data of khugepaged.c (and of thp_settings.c through `thp`) in one process;
 * fork() gives the child a copy ({@link Khug.forChild}).
 */
export class Khug implements ThpEnv {
  readonly env: ProgramEnv;
  readonly thp: ThpSettingsState;
  hpage_pmd_size = 0;
  page_size = 0;
  hpage_pmd_nr = 0;
  anon_order = 0;
  file_ops: MemOps | null = null;
  anon_ops: MemOps | null = null;
  shmem_ops: MemOps | null = null;
  khugepaged_context: CollapseContext | null = null;
  madvise_context: CollapseContext | null = null;
  finfo: FileInfo = { dir: '', path: '', type: 'VMA_ANON', fd: 0, dev_queue_read_ahead_path: '' };
  skip_settings_restore = false;
  exit_status = 0;
  /** Models atexit(restore_settings_atexit) having been called. */
  atexitRegistered = false;

  constructor(env: ProgramEnv, thp = new ThpSettingsState()) {
    this.env = env;
    this.thp = thp;
  }

  /** The child's copy of the static data after fork(), in the child's process. */
  forChild(env: ProgramEnv): Khug {
    const c = new Khug(env, this.thp.clone());
    Object.assign(c, {
      hpage_pmd_size: this.hpage_pmd_size,
      page_size: this.page_size,
      hpage_pmd_nr: this.hpage_pmd_nr,
      anon_order: this.anon_order,
      file_ops: this.file_ops,
      anon_ops: this.anon_ops,
      shmem_ops: this.shmem_ops,
      khugepaged_context: this.khugepaged_context,
      madvise_context: this.madvise_context,
      finfo: { ...this.finfo },
      skip_settings_restore: this.skip_settings_restore,
      exit_status: this.exit_status,
      atexitRegistered: this.atexitRegistered,
    });
    return c;
  }

  /** Models printf() to stdout. */
  printf(text: string): void {
    this.env.stdio.printf(text);
  }

  /** Models perror(msg) with the current errno. */
  perror(msg: string): void {
    this.env.stdio.perror(msg, this.env.libc.errno);
  }
}

/** Models exit(code): the atexit handlers run where {@link withAtexit} catches it. */
export function exit(code: number): never {
  throw new ExitRequest(code);
}

/** Models success(msg): ` \e[32m<msg>\e[0m\n`. */
export function success(g: Khug, msg: string): void {
  g.printf(` \x1b[32m${msg}\x1b[0m\n`);
}

/** Models fail(msg): ` \e[31m<msg>\e[0m\n` and one more failure in exit_status. */
export function fail(g: Khug, msg: string): void {
  g.printf(` \x1b[31m${msg}\x1b[0m\n`);
  g.exit_status++;
}

/** Models skip(msg): ` \e[33m<msg>\e[0m\n`. */
export function skip(g: Khug, msg: string): void {
  g.printf(` \x1b[33m${msg}\x1b[0m\n`);
}

/** Models restore_settings_atexit(). */
export function restore_settings_atexit(g: Khug): void {
  if (g.skip_settings_restore) return;
  g.printf('Restore THP and khugepaged settings...');
  thp_restore_settings(g);
  success(g, 'OK');
  g.skip_settings_restore = true;
}

/**
 * Runs `body` as the rest of a process's life: an exit() (or a kselftest exit) inside it runs
 * the atexit handler first, as glibc's exit() does; a fatal signal does not.
 */
export function withAtexit<T>(g: Khug, body: () => T): T {
  try {
    return body();
  } catch (e) {
    if (e instanceof ExitRequest && g.atexitRegistered) restore_settings_atexit(g);
    throw e;
  }
}

/**
 * Models `if (!fork()) { <child> }` of the C tests: the child runs `child` with a copy of the
 * static data in its own process until it exits (its exit() status, or the signal that killed
 * it); the parent continues after it. Returns fork()'s result in the parent.
 */
export function forkChild(g: Khug, child: (cg: Khug) => void): number {
  const { libc, kernel } = g.env;
  const pid = libc.fork();
  if (pid <= 0) return pid;
  const proc = kernel.task(pid);
  if (!proc) throw new Error(`fork(): no task for pid ${pid}`);
  const cenv: ProgramEnv = { ...g.env, proc, libc: libc.forChild(proc) };
  const cg = g.forChild(cenv);
  let code = 0;
  try {
    withAtexit(cg, () => child(cg));
  } catch (e) {
    if (e instanceof ExitRequest) code = e.code;
    else if (e instanceof SignalDelivered && e.pid === pid) {
      if (proc.state === 'running') proc.doExit(0, e.signo);
      return pid;
    } else throw e;
  }
  if (proc.state === 'running') proc.exit(code);
  return pid;
}

/** Models wait(&wstatus) and WEXITSTATUS(wstatus). */
export function waitExitStatus(g: Khug): number {
  const st = { value: 0 };
  g.env.libc.waitpid(-1, st, 0);
  return (st.value >> 8) & 0xff;
}

/** Models alloc_mapping(nr): nr huge pages of private anonymous memory at BASE_ADDR, or exit. */
export function alloc_mapping(g: Khug, nr: number): number {
  const p = g.env.libc.mmap(
    BASE_ADDR,
    nr * g.hpage_pmd_size,
    PROT_READ | PROT_WRITE,
    MAP_ANONYMOUS | MAP_PRIVATE,
    -1,
    0,
  );
  if (p !== BASE_ADDR) {
    g.printf(`Failed to allocate VMA at ${fmtPtr(BASE_ADDR)}\n`);
    exit(EXIT_FAILURE);
  }
  return p;
}

/** Models fill_memory(p, start, end): `p[i * page_size / sizeof(int)] = i + 0xdead0000` per page. */
export function fill_memory(g: Khug, p: number, start: number, end: number): void {
  for (let i = Math.floor(start / g.page_size); i < Math.floor(end / g.page_size); i++)
    g.env.proc.writeI32(p + i * g.page_size, (i + 0xdead0000) | 0);
}

/** Models validate_memory(p, start, end): every page's int as fill_memory() wrote it, or exit. */
export function validate_memory(g: Khug, p: number, start: number, end: number): void {
  for (let i = Math.floor(start / g.page_size); i < Math.floor(end / g.page_size); i++) {
    const v = g.env.proc.readI32(p + i * g.page_size) >>> 0;
    if (v !== (i + 0xdead0000) >>> 0) {
      g.printf(`Page ${i} is corrupted: ${v ? `0x${v.toString(16)}` : '0'}\n`);
      exit(EXIT_FAILURE);
    }
  }
}

/** Models madvise_collapse_retry(p, size): MADV_COLLAPSE, once more after EAGAIN. */
export function madvise_collapse_retry(g: Khug, p: number, size: number): number {
  const { libc } = g.env;
  let retry = true;
  for (;;) {
    const ret = libc.madvise(p, size, MADV_COLLAPSE);
    if (ret && libc.errno === EAGAIN && retry) {
      retry = false;
      continue;
    }
    return ret;
  }
}

/** Models alloc_hpage(ops): a PMD-mapped THP made by MADV_COLLAPSE in a VM_HUGEPAGE VMA, or exit. */
export function alloc_hpage(g: Khug, ops: MemOps): number {
  const p = ops.setup_area(g, 1);
  ops.fault(g, p, 0, g.hpage_pmd_size);
  g.printf('Allocate huge page...');
  if (madvise_collapse_retry(g, p, g.hpage_pmd_size)) {
    g.perror('madvise(MADV_COLLAPSE)');
    exit(EXIT_FAILURE);
  }
  if (!ops.check_huge(g, p, 1)) {
    g.perror('madvise(MADV_COLLAPSE)');
    exit(EXIT_FAILURE);
  }
  if (g.env.libc.madvise(p, g.hpage_pmd_size, MADV_HUGEPAGE)) {
    g.perror('madvise(MADV_HUGEPAGE)');
    exit(EXIT_FAILURE);
  }
  success(g, 'OK');
  return p;
}

/** Models __anon_ops. */
export const ANON_OPS: MemOps = {
  name: 'anon',
  setup_area: (g, nr) => alloc_mapping(g, nr),
  cleanup_area: (g, p, size) => {
    g.env.libc.munmap(p, size);
  },
  fault: (g, p, start, end) => fill_memory(g, p, start, end),
  check_huge: (g, addr, nr) => check_huge_anon(g.env, addr, nr, g.hpage_pmd_size),
};

/** Models __shmem_ops: a memfd mapped MAP_SHARED at BASE_ADDR, faulted by writes. */
export const SHMEM_OPS: MemOps = {
  name: 'shmem',
  setup_area: (g, nr) => {
    const { libc } = g.env;
    const size = nr * g.hpage_pmd_size;
    g.finfo.fd = memfd_create(libc, 'khugepaged-selftest-collapse-shmem', 0);
    if (g.finfo.fd < 0) {
      g.perror('memfd_create()');
      exit(EXIT_FAILURE);
    }
    if (libc.ftruncate(g.finfo.fd, size)) {
      g.perror('ftruncate()');
      exit(EXIT_FAILURE);
    }
    const p = libc.mmap(BASE_ADDR, size, PROT_READ | PROT_WRITE, MAP_SHARED, g.finfo.fd, 0);
    if (p !== BASE_ADDR) {
      g.perror('mmap()');
      exit(EXIT_FAILURE);
    }
    return p;
  },
  cleanup_area: (g, p, size) => {
    g.env.libc.munmap(p, size);
    g.env.libc.close(g.finfo.fd);
  },
  fault: (g, p, start, end) => fill_memory(g, p, start, end),
  check_huge: (g, addr, nr) => check_huge_shmem(g.env, addr, nr, g.hpage_pmd_size),
};

/** Models is_tmpfs(ops): the file mem type on a tmpfs directory. */
export function is_tmpfs(g: Khug, ops: MemOps): boolean {
  return ops === g.file_ops && g.finfo.type === 'VMA_SHMEM';
}

/** Models is_anon(ops). */
export function is_anon(ops: MemOps): boolean {
  return ops === ANON_OPS;
}

/**
 * Models __madvise_collapse(): with THP "never" for anon and shmem (MADV_COLLAPSE ignores
 * `enabled`, and khugepaged stays out of the way), MADV_HUGEPAGE then MADV_COLLAPSE; the return
 * value and check_huge() must say the collapse happened (or did not) as expected.
 */
export function __madvise_collapse(
  g: Khug,
  msg: string,
  p: number,
  nrHpages: number,
  ops: MemOps,
  expect: boolean,
): void {
  const settings = thpSettingsCopy(thp_current_settings(g));
  g.printf(`${msg}...`);
  settings.thp_enabled = THP_NEVER;
  settings.shmem_enabled = SHMEM_NEVER;
  thp_push_settings(g, settings);
  /* Clear VM_NOHUGEPAGE */
  g.env.libc.madvise(p, nrHpages * g.hpage_pmd_size, MADV_HUGEPAGE);
  const ret = madvise_collapse_retry(g, p, nrHpages * g.hpage_pmd_size);
  if ((ret !== 0) === expect) fail(g, 'Fail: Bad return value');
  else if (!ops.check_huge(g, p, expect ? nrHpages : 0)) fail(g, 'Fail: check_huge()');
  else success(g, 'OK');
  thp_pop_settings(g);
}

/** Models madvise_collapse(): no huge page yet (else exit), then __madvise_collapse(). */
function madvise_collapse(
  g: Khug,
  msg: string,
  p: number,
  nrHpages: number,
  ops: MemOps,
  expect: boolean,
): void {
  if (!ops.check_huge(g, p, 0)) {
    g.printf('Unexpected huge page\n');
    exit(EXIT_FAILURE);
  }
  __madvise_collapse(g, msg, p, nrHpages, ops, expect);
}

/**
 * Models wait_for_scan() as of v6.17+: MADV_HUGEPAGE, then up to 6 looks 500 ms apart until the
 * range is huge or khugepaged finished two more full scans (`khugepaged/full_scans`). True when it
 * timed out. The model's khugepaged runs while usleep() sleeps. ("selftests: khugepaged: fix the
 * shmem collapse failure" dropped the final MADV_NOHUGEPAGE: since v6.12 do_set_pmd() refuses a
 * VM_NOHUGEPAGE VMA, so the shmem refault in khugepaged_collapse() could not map a PMD.)
 */
export function wait_for_scan(g: Khug, msg: string, p: number, nrHpages: number, ops: MemOps): boolean {
  let timeout = 6; /* 3 seconds */
  if (!ops.check_huge(g, p, 0)) {
    g.printf('Unexpected huge page\n');
    exit(EXIT_FAILURE);
  }
  g.env.libc.madvise(p, nrHpages * g.hpage_pmd_size, MADV_HUGEPAGE);
  /* Wait until the second full_scan completed */
  const fullScans = thp_read_num(g, 'khugepaged/full_scans') + 2;
  g.printf(`${msg}...`);
  while (timeout--) {
    if (ops.check_huge(g, p, nrHpages)) break;
    if (thp_read_num(g, 'khugepaged/full_scans') >= fullScans) break;
    g.printf('.');
    usleep(g.env, TICK);
  }
  return timeout === -1;
}

/** Models khugepaged_collapse(): wait_for_scan(), refault file/shmem ranges, check_huge(). */
function khugepaged_collapse(
  g: Khug,
  msg: string,
  p: number,
  nrHpages: number,
  ops: MemOps,
  expect: boolean,
): void {
  if (wait_for_scan(g, msg, p, nrHpages, ops)) {
    if (expect) fail(g, 'Timeout');
    else success(g, 'OK');
    return;
  }
  // For file and shmem memory, khugepaged only retracts pte entries after putting the new
  // hugepage in the page cache. The hugepage must be subsequently refaulted.
  if (ops !== ANON_OPS) ops.fault(g, p, 0, nrHpages * g.hpage_pmd_size);
  if (ops.check_huge(g, p, expect ? nrHpages : 0)) success(g, 'OK');
  else fail(g, 'Fail');
}

/** Models __khugepaged_context. */
export const KHUGEPAGED_CONTEXT: CollapseContext = {
  name: 'khugepaged',
  enforce_pte_scan_limits: true,
  collapse: khugepaged_collapse,
};

/** Models __madvise_context. */
export const MADVISE_CONTEXT: CollapseContext = {
  name: 'madvise',
  enforce_pte_scan_limits: false,
  collapse: madvise_collapse,
};

/** Models max_ptes_shared as the child reads it back: thp_current_settings()->khugepaged.max_ptes_shared. */
export function currentMaxPtesShared(g: Khug): number {
  return thp_current_settings(g).khugepaged.max_ptes_shared;
}
