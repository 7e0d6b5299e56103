/**
 * hmm-tests.c, fifth group (C lines 1769-2138): exclusive, exclusive_mprotect, exclusive_cow,
 * hmm_gup_test (with gup_test_exec()), hmm_cow_in_device.
 */

import {
  EPERM,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
  WEXITSTATUS,
  WIFEXITED,
  WIFSIGNALED,
  WTERMSIG,
} from '@hmm-model/mm-core';
import {
  allocBuffer,
  assertByteRev,
  assertInts,
  assertIntsPostInc,
  type Fixtures,
  forkAndRun,
  hmm_buffer_free,
  hmm_dmirror_cmd,
  hmm_is_coherent_type,
  hmm_migrate_sys_to_dev,
  stdBuffer,
} from './common.js';
import { type TestContext, u64 } from './harness/index.js';
import { type Libc, SIZEOF_INT, strerror } from './libc.js';
import {
  FOLL_LONGTERM,
  FOLL_WRITE,
  GUP_ADDR,
  GUP_BASIC_TEST,
  GUP_FAST_BENCHMARK,
  GUP_GUP_FLAGS,
  GUP_NR_PAGES_PER_CALL,
  GUP_SIZE,
  GUP_TEST_SIZE,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
  PIN_FAST_BENCHMARK,
  PIN_LONGTERM_BENCHMARK,
} from './uapi.js';

const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/**
 * Models gup_test_exec() (hmm-tests.c): a struct gup_test on the stack with nr_pages_per_call,
 * addr, gup_flags = FOLL_WRITE | flags and size; returns 0, or errno after perror().
 */
function gup_test_exec(
  ctx: TestContext,
  libc: Libc,
  gup_fd: number,
  addr: number,
  cmd: number,
  npages: number,
  size: number,
  flags: number,
): number {
  const gup = libc.stackAlloc(GUP_TEST_SIZE);
  const proc = libc.proc;
  proc.writeU64(gup + GUP_ADDR, BigInt(addr));
  proc.writeU64(gup + GUP_SIZE, BigInt(size));
  proc.writeBytes(gup + GUP_NR_PAGES_PER_CALL, u32le(npages));
  proc.writeBytes(gup + GUP_GUP_FLAGS, u32le(FOLL_WRITE | flags));

  if (libc.ioctl(gup_fd, cmd, gup)) {
    ctx.printErr(`ioctl on error\n: ${strerror(libc.errno)}`);
    return libc.errno;
  }

  return 0;
}

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

/** Registers this group's TEST_F()s in file order. */
export function registerExclusive({ hmm }: Fixtures): void {
  /*
   * Basic check of exclusive faulting.
   */
  hmm.TEST_F('exclusive', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages, size } = stdBuffer(ctx, self, RW, PRIV_ANON, [1782, 1786, 1791, 1797]);
    const n = size / SIZEOF_INT;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Map memory exclusively for device access. */
    let ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1805);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1806);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1810);

    /* Fault pages back to system memory and check them. */
    assertIntsPostInc(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ptr[i]++', 'i', 1814);

    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i + 1, 'ulong', 'ptr[i]', 'i+1', 1817);

    /* Check atomic access revoked */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_CHECK_EXCLUSIVE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1821);

    hmm_buffer_free(libc, buffer);
  });

  hmm.TEST_F('exclusive_mprotect', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages, size } = stdBuffer(ctx, self, RW, PRIV_ANON, [1836, 1840, 1845, 1851]);
    const n = size / SIZEOF_INT;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Map memory exclusively for device access. */
    let ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1859);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1860);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1864);

    ret = libc.mprotect(buffer.ptr, size, PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1867);

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ctx.ASSERT_EQ(ret, -EPERM, 'ret', '-EPERM', 1871);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Check copy-on-write works.
   */
  hmm.TEST_F('exclusive_cow', (ctx, self) => {
    const t = self.t;
    const { libc } = t;
    const { buffer, npages, size } = stdBuffer(ctx, self, RW, PRIV_ANON, [1891, 1895, 1900, 1906]);
    const n = size / SIZEOF_INT;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Map memory exclusively for device access. */
    const ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_EXCLUSIVE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1914);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1915);

    const pid = forkAndRun(ctx, t, (cctx, clibc) => {
      /*
       * Child verifies COW independently, then _exit(0)s so it does
       * not run the test teardown.  A failed ASSERT_* here makes the
       * harness abort() the child, so the parent sees
       * !WIFEXITED(status) below and fails in turn.
       */
      assertIntsPostInc(cctx, clibc, buffer.ptr, 0, n, (i) => i, 'ptr[i]++', 'i', 1929);

      assertInts(cctx, clibc, buffer.ptr, 0, n, (i) => i + 1, 'ulong', 'ptr[i]', 'i + 1', 1932);

      cctx.exit(0);
    });
    if (pid === -1) ctx.ASSERT_EQ(pid, 0, 'pid', '0', 1919);

    /* Parent: also increment to verify COW works for both processes. */
    assertIntsPostInc(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ptr[i]++', 'i', 1939);

    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i + 1, 'ulong', 'ptr[i]', 'i + 1', 1942);

    /* Parent: wait for child and then free the buffer. */
    const status = { value: 0 };
    ctx.ASSERT_EQ(libc.waitpid(pid, status, 0), pid, 'waitpid(pid, &status, 0)', 'pid', 1945);
    ctx.ASSERT_TRUE(WIFEXITED(status.value) ? 1 : 0, 'WIFEXITED(status)', 1946);
    ctx.ASSERT_EQ(WEXITSTATUS(status.value), 0, 'WEXITSTATUS(status)', '0', 1947);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Test get user device pages through gup_test. Setting PIN_LONGTERM flag.
   * This should trigger a migration back to system memory for both, private
   * and coherent type pages.
   * This test makes use of gup_test module. Make sure GUP_TEST_CONFIG is added
   * to your configuration before you run it.
   */
  hmm.TEST_F('hmm_gup_test', (ctx, self, variant) => {
    const { libc } = self.t;
    const ps = self.page_size;

    const gup_fd = libc.open('/sys/kernel/debug/gup_test', O_RDWR);
    if (gup_fd === -1) return ctx.SKIP('Skipping test, could not find gup_test driver');

    const npages = 4;
    const size = npages * 2 ** self.page_shift;
    const n = size / SIZEOF_INT;

    const buffer = allocBuffer(ctx, libc, size, size, RW, PRIV_ANON, -1, [1996, 2001, 2007]);

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Migrate memory to device. */
    let ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2015);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2016);
    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2019);

    ctx.ASSERT_EQ(
      gup_test_exec(ctx, libc, gup_fd, buffer.ptr, GUP_BASIC_TEST, 1, ps, 0),
      0,
      'gup_test_exec(gup_fd, (unsigned long)buffer->ptr, GUP_BASIC_TEST, 1, self->page_size, 0)',
      '0',
      2021,
    );
    ctx.ASSERT_EQ(
      gup_test_exec(ctx, libc, gup_fd, buffer.ptr + 1 * ps, GUP_FAST_BENCHMARK, 1, ps, 0),
      0,
      'gup_test_exec(gup_fd, (unsigned long)buffer->ptr + 1 * self->page_size, GUP_FAST_BENCHMARK, 1, self->page_size, 0)',
      '0',
      2024,
    );
    ctx.ASSERT_EQ(
      gup_test_exec(ctx, libc, gup_fd, buffer.ptr + 2 * ps, PIN_FAST_BENCHMARK, 1, ps, FOLL_LONGTERM),
      0,
      'gup_test_exec(gup_fd, (unsigned long)buffer->ptr + 2 * self->page_size, PIN_FAST_BENCHMARK, 1, self->page_size, FOLL_LONGTERM)',
      '0',
      2027,
    );
    ctx.ASSERT_EQ(
      gup_test_exec(ctx, libc, gup_fd, buffer.ptr + 3 * ps, PIN_LONGTERM_BENCHMARK, 1, ps, 0),
      0,
      'gup_test_exec(gup_fd, (unsigned long)buffer->ptr + 3 * self->page_size, PIN_LONGTERM_BENCHMARK, 1, self->page_size, 0)',
      '0',
      2030,
    );

    /* Take snapshot to CPU pagetables */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2036);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2037);
    const m = libc.proc.readBytes(buffer.mirror, npages);
    const W = 'HMM_DMIRROR_PROT_WRITE';
    if (hmm_is_coherent_type(variant.device_number)) {
      const CW = 'HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE';
      assertByteRev(
        ctx,
        HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE,
        m[0],
        CW,
        'm[0]',
        2040,
      );
      assertByteRev(
        ctx,
        HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE,
        m[1],
        CW,
        'm[1]',
        2041,
      );
    } else {
      assertByteRev(ctx, HMM_DMIRROR_PROT_WRITE, m[0], W, 'm[0]', 2043);
      assertByteRev(ctx, HMM_DMIRROR_PROT_WRITE, m[1], W, 'm[1]', 2044);
    }
    assertByteRev(ctx, HMM_DMIRROR_PROT_WRITE, m[2], W, 'm[2]', 2046);
    assertByteRev(ctx, HMM_DMIRROR_PROT_WRITE, m[3], W, 'm[3]', 2047);
    /*
     * Check again the content on the pages. Make sure there's no
     * corrupted data.
     */
    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2053);

    libc.close(gup_fd);
    hmm_buffer_free(libc, buffer);
  });

  /*
   * Test copy-on-write in device pages.
   * In case of writing to COW private page(s), a page fault will migrate pages
   * back to system memory first. Then, these pages will be duplicated. In case
   * of COW device coherent type, pages are duplicated directly from device
   * memory.
   */
  hmm.TEST_F('hmm_cow_in_device', (ctx, self) => {
    const { libc } = self.t;
    const npages = 4;
    const size = npages * 2 ** self.page_shift;
    const n = size / SIZEOF_INT;

    const buffer = allocBuffer(ctx, libc, size, size, RW, PRIV_ANON, -1, [2082, 2087, 2093]);

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Migrate memory to device. */

    const ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2102);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2103);

    // The child only spins until the parent's SIGKILL: its process just stays runnable.
    const pid = libc.fork();
    if (pid === -1) ctx.ASSERT_EQ(pid, 0, 'pid', '0', 2107);
    /* Parent process writes to COW pages(s) and gets a
     * new copy in system. In case of device private pages,
     * this write causes a migration to system mem first.
     */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Terminate child and wait */
    const status = { value: 0 };
    ctx.EXPECT_EQ(0, libc.kill(pid, SIGKILL), '0', 'kill(pid, SIGKILL)', 2122);
    ctx.EXPECT_EQ(pid, libc.waitpid(pid, status, 0), 'pid', 'waitpid(pid, &status, 0)', 2123);
    ctx.EXPECT_NE(0, WIFSIGNALED(status.value) ? 1 : 0, '0', 'WIFSIGNALED(status)', 2124);
    ctx.EXPECT_EQ(SIGKILL, WTERMSIG(status.value), 'SIGKILL', 'WTERMSIG(status)', 2125);

    /* Take snapshot to CPU pagetables */
    const ret2 = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ctx.ASSERT_EQ(ret2, 0, 'ret', '0', 2129);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2130);
    const m = libc.proc.readBytes(buffer.mirror, npages);
    for (let i = 0; i < npages; i++)
      assertByteRev(ctx, HMM_DMIRROR_PROT_WRITE, m[i], 'HMM_DMIRROR_PROT_WRITE', 'm[i]', 2133);

    hmm_buffer_free(libc, buffer);
  });
}
