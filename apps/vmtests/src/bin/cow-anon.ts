/**
 * cow.c (v6.19), the anonymous part: the child functions, the COW-after-fork(), vmsplice() and
 * R/O longterm-pin tests, and the ways a test gets its memory (base page, THP PMD- or PTE-mapped,
 * a single PTE of a THP, partially mremap()ed or shared, swapped out, hugetlb), plus the anon-THP
 * collapse tests. Results are reported with log_test_result() under the name log_test_start()
 * set, as the C file does since "Report unique test names for each cow test".
 */

import {
  EINVAL,
  MADV_COLLAPSE,
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PIN_LONGTERM_TEST_FLAG_USE_FAST,
  PIN_LONGTERM_TEST_READ,
  PIN_LONGTERM_TEST_START,
  PIN_LONGTERM_TEST_STOP,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { KSFT_FAIL, KSFT_PASS, KSFT_SKIP, KSFT_XFAIL, MAP_FAILED } from '@hmm-model/selftests';
import {
  clear_softdirty,
  log_test_result,
  log_test_start,
  pagemap_is_populated,
  pagemap_is_swapped,
} from '../vmutil.js';
import {
  type ChildBody,
  type CommPipes,
  type CowGlobals,
  child_wait_byte,
  close,
  close_comm_pipes,
  commPipes,
  exitAtOnce,
  exitStatusOr,
  fork,
  memcmp,
  memcpy,
  parent_wait_byte,
  pipe,
  read1,
  type Side,
  setup_comm_pipes,
  sys,
  WIFEXITED,
  wait,
  write1,
} from './cow-common.js';

/** Models the `typedef void (*test_fn)(char *mem, size_t size, bool hugetlb)`. */
export type TestFn = (g: CowGlobals, mem: number, size: number, is_hugetlb: boolean) => void;
/** Models `typedef int (*child_fn)(char *mem, size_t size, struct comm_pipes *comm_pipes)`. */
type ChildFn = (c: Side, mem: number, size: number, comm: CommPipes) => ChildBody;

/** The program's own process (the parent). */
export function self(g: CowGlobals): Side {
  return { libc: g.env.libc, proc: g.env.proc };
}

/** Models ksft_perror(msg) with the caller's errno. */
function perror(g: CowGlobals, s: Side, msg: string): void {
  g.env.ksft.perror(msg, s.libc.errno);
}

/** Models `vmsplice(fd, &iov, 1, 0)` with iov = { mem, size } on the caller's stack. */
function vmsplice1(s: Side, fd: number, mem: number, size: number): number {
  const iov = s.libc.stackAlloc(16);
  s.proc.writeU64(iov, mem);
  s.proc.writeU64(iov + 8, size);
  return sys(s, s.proc.vmsplice(fd, iov, 1, 0));
}

/** Models the `for (total = 0; total < transferred; total += cur) cur = read(...)` loops: -errno or 0. */
function readAll(s: Side, fd: number, dst: number, transferred: number, yieldTo?: () => void): number {
  for (let total = 0; total < transferred; ) {
    const cur = sys(s, s.proc.read(fd, dst + total, transferred - total));
    if (cur < 0) {
      // read() of an empty pipe that still has a writer blocks in C; the data is there already.
      if (s.libc.errno === 11 && yieldTo) {
        yieldTo();
        continue;
      }
      return -s.libc.errno;
    }
    total += cur;
  }
  return 0;
}

/** Models child_memcmp_fn(): back up, tell the parent, wait, compare. */
function* child_memcmp_fn(c: Side, mem: number, size: number, comm: CommPipes): ChildBody {
  const old = c.libc.malloc(size);
  /* Backup the original content. */
  memcpy(c, old, mem, size);
  /* Wait until the parent modified the page. */
  write1(c)(comm.child_ready[1]);
  yield* child_wait_byte(c, comm.parent_ready[0]);
  /* See if we still read the old values. */
  return memcmp(c, old, mem, size);
}

/** Models child_vmsplice_memcmp_fn(): vmsplice() (a R/O GUP reference), unmap, compare via the pipe. */
function* child_vmsplice_memcmp_fn(c: Side, mem: number, size: number, comm: CommPipes): ChildBody {
  const old = c.libc.malloc(size);
  const nw = c.libc.malloc(size);
  /* Backup the original content. */
  memcpy(c, old, mem, size);
  const fds: [number, number] = [-1, -1];
  if (pipe(c, fds) < 0) return -c.libc.errno;
  /* Trigger a read-only pin. */
  const transferred = vmsplice1(c, fds[1], mem, size);
  if (transferred < 0) return -c.libc.errno;
  if (transferred === 0) return -EINVAL;
  /* Unmap it from our page tables. */
  if (c.libc.munmap(mem, size) < 0) return -c.libc.errno;
  /* Wait until the parent modified it. */
  write1(c)(comm.child_ready[1]);
  yield* child_wait_byte(c, comm.parent_ready[0]);
  /* See if we still read the old values via the pipe. */
  const r = readAll(c, fds[0], nw, transferred);
  if (r < 0) return r;
  return memcmp(c, old, nw, transferred);
}

/** Models do_test_cow_in_parent(). */
function do_test_cow_in_parent(
  g: CowGlobals,
  mem: number,
  size: number,
  do_mprotect: boolean,
  fn: ChildFn,
  xfail: boolean,
): void {
  const p = self(g);
  const comm = commPipes();
  const status = { value: 0 };
  let ret = setup_comm_pipes(p, comm);
  if (ret) {
    log_test_result(g.env, KSFT_FAIL);
    return;
  }
  ret = fork(g, p, (c) => fn(c, mem, size, comm));
  if (ret < 0) {
    perror(g, p, 'fork() failed');
    log_test_result(g.env, KSFT_FAIL);
    close_comm_pipes(p, comm);
    return;
  }
  parent_wait_byte(g, p, comm.child_ready[0]);
  if (do_mprotect) {
    /* mprotect() optimizations might try avoiding write-faults by directly mapping pages writable. */
    for (const prot of [PROT_READ, PROT_READ | PROT_WRITE]) {
      if (p.libc.mprotect(mem, size, prot)) {
        perror(g, p, 'mprotect() failed');
        log_test_result(g.env, KSFT_FAIL);
        write1(p)(comm.parent_ready[1]);
        wait(g, p, status);
        close_comm_pipes(p, comm);
        return;
      }
    }
  }
  /* Modify the page. */
  p.libc.memset(mem, 0xff, size);
  write1(p)(comm.parent_ready[1]);
  wait(g, p, status);
  ret = exitStatusOr(status.value, -EINVAL);
  if (!ret) {
    log_test_result(g.env, KSFT_PASS);
  } else if (xfail) {
    /* With hugetlb, some vmsplice() tests are currently expected to fail. */
    g.env.ksft.print_msg('Leak from parent into child\n');
    log_test_result(g.env, KSFT_XFAIL);
  } else {
    g.env.ksft.print_msg('Leak from parent into child\n');
    log_test_result(g.env, KSFT_FAIL);
  }
  close_comm_pipes(p, comm);
}

const test_cow_in_parent: TestFn = (g, mem, size) =>
  do_test_cow_in_parent(g, mem, size, false, child_memcmp_fn, false);
const test_cow_in_parent_mprotect: TestFn = (g, mem, size) =>
  do_test_cow_in_parent(g, mem, size, true, child_memcmp_fn, false);
const test_vmsplice_in_child: TestFn = (g, mem, size, is_hugetlb) =>
  do_test_cow_in_parent(g, mem, size, false, child_vmsplice_memcmp_fn, is_hugetlb);
const test_vmsplice_in_child_mprotect: TestFn = (g, mem, size, is_hugetlb) =>
  do_test_cow_in_parent(g, mem, size, true, child_vmsplice_memcmp_fn, is_hugetlb);

/** The child of do_test_vmsplice_in_parent(): wait for the parent, then modify the pages. */
function* child_modify(c: Side, mem: number, size: number, comm: CommPipes): ChildBody {
  write1(c)(comm.child_ready[1]);
  yield* child_wait_byte(c, comm.parent_ready[0]);
  /* Modify page content in the child. */
  c.libc.memset(mem, 0xff, size);
  return 0;
}

/** Models do_test_vmsplice_in_parent(). */
function do_test_vmsplice_in_parent(
  g: CowGlobals,
  mem: number,
  size: number,
  before_fork: boolean,
  xfail: boolean,
): void {
  const p = self(g);
  const status = { value: 0 };
  let transferred = 0;
  const old = p.libc.malloc(size);
  const nw = p.libc.malloc(size);
  memcpy(p, old, mem, size);
  const comm = commPipes();
  const fds: [number, number] = [-1, -1];
  const done = (closePipe: boolean): void => {
    if (closePipe) {
      close(p, fds[0]);
      close(p, fds[1]);
    }
    close_comm_pipes(p, comm);
    p.libc.free(old);
    p.libc.free(nw);
  };
  if (setup_comm_pipes(p, comm)) {
    log_test_result(g.env, KSFT_FAIL);
    p.libc.free(old);
    p.libc.free(nw);
    return;
  }
  if (pipe(p, fds) < 0) {
    perror(g, p, 'pipe() failed');
    log_test_result(g.env, KSFT_FAIL);
    done(false);
    return;
  }
  if (before_fork) {
    transferred = vmsplice1(p, fds[1], mem, size);
    if (transferred <= 0) {
      perror(g, p, 'vmsplice() failed\n');
      log_test_result(g.env, KSFT_FAIL);
      done(true);
      return;
    }
  }
  if (fork(g, p, (c) => child_modify(c, mem, size, comm)) < 0) {
    perror(g, p, 'fork() failed\n');
    log_test_result(g.env, KSFT_FAIL);
    done(true);
    return;
  }
  if (!before_fork) {
    transferred = vmsplice1(p, fds[1], mem, size);
    if (transferred <= 0) {
      perror(g, p, 'vmsplice() failed');
      log_test_result(g.env, KSFT_FAIL);
      wait(g, p, status);
      done(true);
      return;
    }
  }
  parent_wait_byte(g, p, comm.child_ready[0]);
  if (p.libc.munmap(mem, size) < 0) {
    perror(g, p, 'munmap() failed');
    log_test_result(g.env, KSFT_FAIL);
    done(true);
    return;
  }
  write1(p)(comm.parent_ready[1]);
  /* Wait until the child is done writing. */
  wait(g, p, status);
  if (!WIFEXITED(status.value)) {
    perror(g, p, 'wait() failed');
    log_test_result(g.env, KSFT_FAIL);
    done(true);
    return;
  }
  /* See if we still read the old values. */
  if (readAll(p, fds[0], nw, transferred) < 0) {
    perror(g, p, 'read() failed');
    log_test_result(g.env, KSFT_FAIL);
    done(true);
    return;
  }
  if (!memcmp(p, old, nw, transferred)) {
    log_test_result(g.env, KSFT_PASS);
  } else if (xfail) {
    g.env.ksft.print_msg('Leak from child into parent\n');
    log_test_result(g.env, KSFT_XFAIL);
  } else {
    g.env.ksft.print_msg('Leak from child into parent\n');
    log_test_result(g.env, KSFT_FAIL);
  }
  done(true);
}

const test_vmsplice_before_fork: TestFn = (g, mem, size, is_hugetlb) =>
  do_test_vmsplice_in_parent(g, mem, size, true, is_hugetlb);
const test_vmsplice_after_fork: TestFn = (g, mem, size, is_hugetlb) =>
  do_test_vmsplice_in_parent(g, mem, size, false, is_hugetlb);

/** Models enum ro_pin_test. */
export const enum RoPinTest {
  RO_PIN_TEST,
  RO_PIN_TEST_SHARED,
  RO_PIN_TEST_PREVIOUSLY_SHARED,
  RO_PIN_TEST_RO_EXCLUSIVE,
}

/** A child that reports ready and waits to be told to quit (exit(0)). */
function* child_ready_then_quit(c: Side, comm: CommPipes): ChildBody {
  write1(c)(comm.child_ready[1]);
  yield* child_wait_byte(c, comm.parent_ready[0]);
  return 0;
}

/** Models do_test_ro_pin(): a R/O longterm pin through gup_test must see later writes. */
export function do_test_ro_pin(
  g: CowGlobals,
  mem: number,
  size: number,
  test: RoPinTest,
  fast: boolean,
): void {
  const p = self(g);
  const { ksft, libc, proc } = g.env;
  const status = { value: 0 };
  if (g.gup_fd < 0) {
    ksft.print_msg('gup_test not available\n');
    log_test_result(g.env, KSFT_SKIP);
    return;
  }
  const tmp = libc.malloc(size);
  if (!tmp) {
    perror(g, p, 'malloc() failed\n');
    log_test_result(g.env, KSFT_FAIL);
    return;
  }
  const comm = commPipes();
  if (setup_comm_pipes(p, comm)) {
    log_test_result(g.env, KSFT_FAIL);
    libc.free(tmp);
    return;
  }
  const finish = (): void => {
    close_comm_pipes(p, comm);
    libc.free(tmp);
  };
  switch (test) {
    case RoPinTest.RO_PIN_TEST:
      break;
    case RoPinTest.RO_PIN_TEST_SHARED:
    case RoPinTest.RO_PIN_TEST_PREVIOUSLY_SHARED:
      /* Share the pages with our child. As the pages are not pinned, this should just work. */
      if (fork(g, p, (c) => child_ready_then_quit(c, comm)) < 0) {
        perror(g, p, 'fork() failed');
        log_test_result(g.env, KSFT_FAIL);
        finish();
        return;
      }
      /* Wait until our child is ready. */
      parent_wait_byte(g, p, comm.child_ready[0]);
      if (test === RoPinTest.RO_PIN_TEST_PREVIOUSLY_SHARED) {
        /* Tell the child to quit now and wait until it quit. */
        write1(p)(comm.parent_ready[1]);
        wait(g, p, status);
        if (!WIFEXITED(status.value)) ksft.print_msg('[INFO] wait() failed\n');
      }
      break;
    case RoPinTest.RO_PIN_TEST_RO_EXCLUSIVE: {
      /* Map the page R/O into the page table; softdirty tracking stops mprotect() from mapping it R/W again. */
      let ret = libc.mprotect(mem, size, PROT_READ);
      clear_softdirty(g.env);
      ret |= libc.mprotect(mem, size, PROT_READ | PROT_WRITE);
      if (ret) {
        perror(g, p, 'mprotect() failed');
        log_test_result(g.env, KSFT_FAIL);
        finish();
        return;
      }
      break;
    }
  }
  const afterWait = (): void => {
    if (test === RoPinTest.RO_PIN_TEST_SHARED) {
      write1(p)(comm.parent_ready[1]);
      wait(g, p, status);
      if (!WIFEXITED(status.value)) perror(g, p, 'wait() failed');
    }
    finish();
  };
  /* Take a R/O pin. This should trigger unsharing. */
  const args = libc.stackAlloc(24);
  proc.writeU64(args, mem);
  proc.writeU64(args + 8, size);
  proc.writeBytes(
    args + 16,
    new Uint8Array(new Uint32Array([fast ? PIN_LONGTERM_TEST_FLAG_USE_FAST : 0]).buffer),
  );
  let ret = libc.ioctl(g.gup_fd, PIN_LONGTERM_TEST_START, args);
  if (ret) {
    ret = libc.errno === EINVAL ? KSFT_SKIP : KSFT_FAIL;
    perror(g, p, 'PIN_LONGTERM_TEST_START failed');
    log_test_result(g.env, ret);
    afterWait();
    return;
  }
  /* Modify the page. */
  libc.memset(mem, 0xff, size);
  /* Read back the content via the pin to the temporary buffer and test if we observed the modification. */
  const tmpVal = libc.stackAlloc(8);
  proc.writeU64(tmpVal, tmp);
  ret = libc.ioctl(g.gup_fd, PIN_LONGTERM_TEST_READ, tmpVal);
  if (ret) {
    perror(g, p, 'PIN_LONGTERM_TEST_READ failed');
    log_test_result(g.env, KSFT_FAIL);
  } else if (!memcmp(p, mem, tmp, size)) {
    log_test_result(g.env, KSFT_PASS);
  } else {
    ksft.print_msg('Longterm R/O pin is not reliable\n');
    log_test_result(g.env, KSFT_FAIL);
  }
  ret = libc.ioctl(g.gup_fd, PIN_LONGTERM_TEST_STOP, 0);
  if (ret) perror(g, p, 'PIN_LONGTERM_TEST_STOP failed');
  afterWait();
}

const test_ro_pin_on_shared: TestFn = (g, mem, size) =>
  do_test_ro_pin(g, mem, size, RoPinTest.RO_PIN_TEST_SHARED, false);
const test_ro_fast_pin_on_shared: TestFn = (g, mem, size) =>
  do_test_ro_pin(g, mem, size, RoPinTest.RO_PIN_TEST_SHARED, true);
const test_ro_pin_on_ro_previously_shared: TestFn = (g, mem, size) =>
  do_test_ro_pin(g, mem, size, RoPinTest.RO_PIN_TEST_PREVIOUSLY_SHARED, false);
const test_ro_fast_pin_on_ro_previously_shared: TestFn = (g, mem, size) =>
  do_test_ro_pin(g, mem, size, RoPinTest.RO_PIN_TEST_PREVIOUSLY_SHARED, true);
const test_ro_pin_on_ro_exclusive: TestFn = (g, mem, size) =>
  do_test_ro_pin(g, mem, size, RoPinTest.RO_PIN_TEST_RO_EXCLUSIVE, false);
const test_ro_fast_pin_on_ro_exclusive: TestFn = (g, mem, size) =>
  do_test_ro_pin(g, mem, size, RoPinTest.RO_PIN_TEST_RO_EXCLUSIVE, true);

/** Models do_run_with_base_page(fn, swapout). */
function do_run_with_base_page(g: CowGlobals, fn: TestFn, swapout: boolean): void {
  const p = self(g);
  const { libc, proc, ksft } = g.env;
  const mem = libc.mmap(0, g.pagesize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem === MAP_FAILED) {
    perror(g, p, 'mmap() failed');
    log_test_result(g.env, KSFT_FAIL);
    return;
  }
  ((): void => {
    const ret = libc.madvise(mem, g.pagesize, MADV_NOHUGEPAGE);
    /* Ignore if not around on a kernel. */
    if (ret && libc.errno !== EINVAL) {
      perror(g, p, 'MADV_NOHUGEPAGE failed');
      log_test_result(g.env, KSFT_FAIL);
      return;
    }
    /* Populate a base page. */
    libc.memset(mem, 1, g.pagesize);
    if (swapout) {
      libc.madvise(mem, g.pagesize, MADV_PAGEOUT);
      if (!pagemap_is_swapped(g.env, g.pagemap_fd, mem)) {
        ksft.print_msg('MADV_PAGEOUT did not work, is swap enabled?\n');
        log_test_result(g.env, KSFT_SKIP);
        return;
      }
    }
    fn(g, mem, g.pagesize, false);
  })();
  libc.munmap(mem, g.pagesize);
  void proc;
}

/** Models enum thp_run. */
export const enum ThpRun {
  THP_RUN_PMD,
  THP_RUN_PMD_SWAPOUT,
  THP_RUN_PTE,
  THP_RUN_PTE_SWAPOUT,
  THP_RUN_SINGLE_PTE,
  THP_RUN_SINGLE_PTE_SWAPOUT,
  THP_RUN_PARTIAL_MREMAP,
  THP_RUN_PARTIAL_SHARED,
}

/** Models range_is_swapped(addr, size). */
function range_is_swapped(g: CowGlobals, addr: number, size: number): boolean {
  for (; size; addr += g.pagesize, size -= g.pagesize)
    if (!pagemap_is_swapped(g.env, g.pagemap_fd, addr)) return false;
  return true;
}

/** Models do_run_with_thp(fn, thp_run, thpsize). */
export function do_run_with_thp(g: CowGlobals, fn: TestFn, thp_run: ThpRun, thpsize: number): void {
  const p = self(g);
  const { libc, proc, ksft } = g.env;
  const ps = g.pagesize;
  let mremap_mem = MAP_FAILED;
  let mremap_size = 0;
  const status = { value: 0 };
  /* For alignment purposes, we need twice the thp size. */
  const mmap_size = 2 * thpsize;
  const mmap_mem = libc.mmap(0, mmap_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mmap_mem === MAP_FAILED) {
    perror(g, p, 'mmap() failed');
    log_test_result(g.env, KSFT_FAIL);
    return;
  }
  /* We need a THP-aligned memory area. */
  const mem = Math.floor((mmap_mem + thpsize) / thpsize) * thpsize;
  const failWith = (msg: string): void => {
    perror(g, p, msg);
    log_test_result(g.env, KSFT_FAIL);
  };
  ((): void => {
    if (libc.madvise(mem, thpsize, MADV_HUGEPAGE)) {
      failWith('MADV_HUGEPAGE failed');
      return;
    }
    /* Try to populate a THP. Touch the first sub-page and test if we get the last sub-page populated automatically. */
    proc.writeU8(mem, 1);
    if (!pagemap_is_populated(g.env, g.pagemap_fd, mem + thpsize - ps)) {
      ksft.print_msg('Did not get a THP populated\n');
      log_test_result(g.env, KSFT_SKIP);
      return;
    }
    libc.memset(mem, 1, thpsize);
    let size = thpsize;
    switch (thp_run) {
      case ThpRun.THP_RUN_PMD:
      case ThpRun.THP_RUN_PMD_SWAPOUT:
        if (thpsize !== g.pmdsize) throw new Error('cow.c: Assertion `thpsize == pmdsize` failed.');
        break;
      case ThpRun.THP_RUN_PTE:
      case ThpRun.THP_RUN_PTE_SWAPOUT:
        /* Trigger PTE-mapping the THP by temporarily mapping a single subpage R/O. */
        if (libc.mprotect(mem + ps, ps, PROT_READ)) {
          failWith('mprotect() failed');
          return;
        }
        if (libc.mprotect(mem + ps, ps, PROT_READ | PROT_WRITE)) {
          failWith('mprotect() failed');
          return;
        }
        break;
      case ThpRun.THP_RUN_SINGLE_PTE:
      case ThpRun.THP_RUN_SINGLE_PTE_SWAPOUT:
        /* Discard all but a single subpage of that PTE-mapped THP. */
        if (libc.madvise(mem + ps, thpsize - ps, MADV_DONTNEED)) {
          failWith('MADV_DONTNEED failed');
          return;
        }
        size = ps;
        break;
      case ThpRun.THP_RUN_PARTIAL_MREMAP: {
        /* Remap half of the THP. We need some new memory location for that. */
        mremap_size = thpsize / 2;
        mremap_mem = libc.mmap(0, mremap_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mremap_mem === MAP_FAILED) {
          failWith('mmap() failed');
          return;
        }
        const tmp = libc.mremap(
          mem + mremap_size,
          mremap_size,
          mremap_size,
          MREMAP_MAYMOVE | MREMAP_FIXED,
          mremap_mem,
        );
        if (tmp !== mremap_mem) {
          failWith('mremap() failed');
          return;
        }
        size = mremap_size;
        break;
      }
      case ThpRun.THP_RUN_PARTIAL_SHARED:
        /* Share the first page of the THP with a child and quit the child. */
        if (libc.madvise(mem + ps, thpsize - ps, MADV_DONTFORK)) {
          failWith('MADV_DONTFORK failed');
          return;
        }
        if (fork(g, p, () => exitAtOnce(0)) < 0) {
          failWith('fork() failed');
          return;
        }
        wait(g, p, status);
        /* Allow for sharing all pages again. */
        if (libc.madvise(mem + ps, thpsize - ps, MADV_DOFORK)) {
          failWith('MADV_DOFORK failed');
          return;
        }
        break;
    }
    switch (thp_run) {
      case ThpRun.THP_RUN_PMD_SWAPOUT:
      case ThpRun.THP_RUN_PTE_SWAPOUT:
      case ThpRun.THP_RUN_SINGLE_PTE_SWAPOUT:
        libc.madvise(mem, size, MADV_PAGEOUT);
        if (!range_is_swapped(g, mem, size)) {
          ksft.print_msg('MADV_PAGEOUT did not work, is swap enabled?\n');
          log_test_result(g.env, KSFT_SKIP);
          return;
        }
        break;
      default:
        break;
    }
    fn(g, mem, size, false);
  })();
  libc.munmap(mmap_mem, mmap_size);
  if (mremap_mem !== MAP_FAILED) libc.munmap(mremap_mem, mremap_size);
}

/** The run_with_*() wrappers of the anonymous cases: their log_test_start() name and their run. */
export function run_with_base_page(g: CowGlobals, fn: TestFn, desc: string): void {
  log_test_start(g.env, `${desc} ... with base page`);
  do_run_with_base_page(g, fn, false);
}

export function run_with_base_page_swap(g: CowGlobals, fn: TestFn, desc: string): void {
  log_test_start(g.env, `${desc} ... with swapped out base page`);
  do_run_with_base_page(g, fn, true);
}

/** The THP variants: run_with_thp(), run_with_thp_swap(), run_with_pte_mapped_thp(), ... */
export const THP_RUNS: Readonly<Record<ThpRun, string>> = {
  [ThpRun.THP_RUN_PMD]: 'THP',
  [ThpRun.THP_RUN_PMD_SWAPOUT]: 'swapped-out THP',
  [ThpRun.THP_RUN_PTE]: 'PTE-mapped THP',
  [ThpRun.THP_RUN_PTE_SWAPOUT]: 'swapped-out, PTE-mapped THP',
  [ThpRun.THP_RUN_SINGLE_PTE]: 'single PTE of THP',
  [ThpRun.THP_RUN_SINGLE_PTE_SWAPOUT]: 'single PTE of swapped-out THP',
  [ThpRun.THP_RUN_PARTIAL_MREMAP]: "partially mremap()'ed THP",
  [ThpRun.THP_RUN_PARTIAL_SHARED]: 'partially shared THP',
};

/** Models run_with_thp() and its siblings: `<desc> ... with <variant> (<size> kB)`. */
export function run_with_thp_variant(
  g: CowGlobals,
  fn: TestFn,
  desc: string,
  run: ThpRun,
  size: number,
): void {
  log_test_start(g.env, `${desc} ... with ${THP_RUNS[run]} (${Math.floor(size / 1024)} kB)`);
  do_run_with_thp(g, fn, run, size);
}

/** Models MAP_HUGE_SHIFT (include/uapi/asm-generic/hugetlb_encode.h). */
const MAP_HUGE_SHIFT = 26;

/** Models __builtin_ctzll(). */
export function ctz(x: number): number {
  let n = 0;
  while (x > 1 && x % 2 === 0) {
    x /= 2;
    n++;
  }
  return n;
}

/** Models run_with_hugetlb(fn, desc, hugetlbsize). */
export function run_with_hugetlb(g: CowGlobals, fn: TestFn, desc: string, hugetlbsize: number): void {
  const p = self(g);
  const { libc } = g.env;
  log_test_start(g.env, `${desc} ... with hugetlb (${Math.floor(hugetlbsize / 1024)} kB)`);
  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (ctz(hugetlbsize) << MAP_HUGE_SHIFT);
  const mem = libc.mmap(0, hugetlbsize, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (mem === MAP_FAILED) {
    perror(g, p, 'need more free huge pages');
    log_test_result(g.env, KSFT_SKIP);
    return;
  }
  /* Populate an huge page. */
  libc.memset(mem, 1, hugetlbsize);
  /* We need a total of two hugetlb pages to handle COW/unsharing properly, otherwise we might get zapped by a SIGBUS. */
  const dummy = libc.mmap(0, hugetlbsize, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (dummy === MAP_FAILED) {
    perror(g, p, 'need more free huge pages');
    log_test_result(g.env, KSFT_SKIP);
  } else {
    libc.munmap(dummy, hugetlbsize);
    fn(g, mem, hugetlbsize, true);
  }
  libc.munmap(mem, hugetlbsize);
}

/** Models struct test_case. */
export interface TestCase {
  readonly desc: string;
  readonly fn: TestFn;
}

/** Models anon_test_cases[] of the build without liburing (no io_uring cases). */
export const ANON_TEST_CASES: readonly TestCase[] = [
  { desc: 'Basic COW after fork()', fn: test_cow_in_parent },
  { desc: 'Basic COW after fork() with mprotect() optimization', fn: test_cow_in_parent_mprotect },
  { desc: 'vmsplice() + unmap in child', fn: test_vmsplice_in_child },
  { desc: 'vmsplice() + unmap in child with mprotect() optimization', fn: test_vmsplice_in_child_mprotect },
  { desc: 'vmsplice() before fork(), unmap in parent after fork()', fn: test_vmsplice_before_fork },
  { desc: 'vmsplice() + unmap in parent after fork()', fn: test_vmsplice_after_fork },
  { desc: 'R/O GUP pin on R/O-mapped shared page', fn: test_ro_pin_on_shared },
  { desc: 'R/O GUP-fast pin on R/O-mapped shared page', fn: test_ro_fast_pin_on_shared },
  { desc: 'R/O GUP pin on R/O-mapped previously-shared page', fn: test_ro_pin_on_ro_previously_shared },
  {
    desc: 'R/O GUP-fast pin on R/O-mapped previously-shared page',
    fn: test_ro_fast_pin_on_ro_previously_shared,
  },
  { desc: 'R/O GUP pin on R/O-mapped exclusive page', fn: test_ro_pin_on_ro_exclusive },
  { desc: 'R/O GUP-fast pin on R/O-mapped exclusive page', fn: test_ro_fast_pin_on_ro_exclusive },
];

/** Models enum anon_thp_collapse_test. */
const enum Collapse {
  UNSHARED,
  FULLY_SHARED,
  LOWER_SHARED,
  UPPER_SHARED,
}

/** Models do_test_anon_thp_collapse(). */
function do_test_anon_thp_collapse(g: CowGlobals, mem: number, size: number, test: Collapse): void {
  const p = self(g);
  const { libc } = g.env;
  const ps = g.pagesize;
  const status = { value: 0 };
  const comm = commPipes();
  if (setup_comm_pipes(p, comm)) {
    log_test_result(g.env, KSFT_FAIL);
    return;
  }
  const failWith = (msg: string, result = KSFT_FAIL): void => {
    perror(g, p, msg);
    log_test_result(g.env, result);
  };
  ((): void => {
    /* Trigger PTE-mapping the THP by temporarily mapping a single subpage R/O. */
    if (libc.mprotect(mem + ps, ps, PROT_READ)) {
      failWith('mprotect() failed');
      return;
    }
    if (libc.mprotect(mem + ps, ps, PROT_READ | PROT_WRITE)) {
      failWith('mprotect() failed');
      return;
    }
    switch (test) {
      case Collapse.UNSHARED:
        /* Collapse before actually COW-sharing the page. */
        if (libc.madvise(mem, size, MADV_COLLAPSE)) {
          failWith('MADV_COLLAPSE failed', KSFT_SKIP);
          return;
        }
        break;
      case Collapse.FULLY_SHARED:
        break;
      case Collapse.LOWER_SHARED:
        /* Don't COW-share the upper part of the THP. */
        if (libc.madvise(mem + size / 2, size / 2, MADV_DONTFORK)) {
          failWith('MADV_DONTFORK failed');
          return;
        }
        break;
      case Collapse.UPPER_SHARED:
        /* Don't COW-share the lower part of the THP. */
        if (libc.madvise(mem, size / 2, MADV_DONTFORK)) {
          failWith('MADV_DONTFORK failed');
          return;
        }
        break;
    }
    const childRange: [number, number] =
      test === Collapse.LOWER_SHARED
        ? [mem, size / 2]
        : test === Collapse.UPPER_SHARED
          ? [mem + size / 2, size / 2]
          : [mem, size];
    if (fork(g, p, (c) => child_memcmp_fn(c, childRange[0], childRange[1], comm)) < 0) {
      failWith('fork() failed');
      return;
    }
    parent_wait_byte(g, p, comm.child_ready[0]);
    if (test !== Collapse.UNSHARED) {
      if (test === Collapse.UPPER_SHARED || test === Collapse.LOWER_SHARED) {
        /* Revert MADV_DONTFORK such that we merge the VMAs and are able to actually collapse. */
        if (libc.madvise(mem, size, MADV_DOFORK)) {
          failWith('MADV_DOFORK failed');
          write1(p)(comm.parent_ready[1]);
          wait(g, p, status);
          return;
        }
      }
      /* Collapse before anyone modified the COW-shared page. */
      if (libc.madvise(mem, size, MADV_COLLAPSE)) {
        failWith('MADV_COLLAPSE failed', KSFT_SKIP);
        write1(p)(comm.parent_ready[1]);
        wait(g, p, status);
        return;
      }
    }
    /* Modify the page. */
    libc.memset(mem, 0xff, size);
    write1(p)(comm.parent_ready[1]);
    wait(g, p, status);
    if (!exitStatusOr(status.value, -EINVAL)) {
      log_test_result(g.env, KSFT_PASS);
    } else {
      g.env.ksft.print_msg('Leak from parent into child\n');
      log_test_result(g.env, KSFT_FAIL);
    }
  })();
  close_comm_pipes(p, comm);
}

/** Models anon_thp_test_cases[]. */
export const ANON_THP_TEST_CASES: readonly TestCase[] = [
  {
    desc: 'Basic COW after fork() when collapsing before fork()',
    fn: (g, mem, size) => do_test_anon_thp_collapse(g, mem, size, Collapse.UNSHARED),
  },
  {
    desc: 'Basic COW after fork() when collapsing after fork() (fully shared)',
    fn: (g, mem, size) => do_test_anon_thp_collapse(g, mem, size, Collapse.FULLY_SHARED),
  },
  {
    desc: 'Basic COW after fork() when collapsing after fork() (lower shared)',
    fn: (g, mem, size) => do_test_anon_thp_collapse(g, mem, size, Collapse.LOWER_SHARED),
  },
  {
    desc: 'Basic COW after fork() when collapsing after fork() (upper shared)',
    fn: (g, mem, size) => do_test_anon_thp_collapse(g, mem, size, Collapse.UPPER_SHARED),
  },
];

export { read1 };
