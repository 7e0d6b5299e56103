/**
 * hmm-tests.c, second group (C lines 533-831): anon_write_child, anon_write_child_shared,
 * anon_write_huge, anon_write_hugetlbfs.
 */

import {
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  WIFEXITED,
} from '@hmm-model/mm-core';
import {
  ALIGN,
  allocBuffer,
  assertInts,
  assertNotNull,
  type Fixtures,
  forkAndRun,
  HMM_BUFFER_SIZE,
  hmm_buffer_free,
  hmm_dmirror_cmd,
  hmm_migrate_sys_to_dev,
  hmm_open,
  newBuffer,
  stdBuffer,
  TWOMEG,
} from './common.js';
import { u64 } from './harness/index.js';
import { MAP_FAILED, SIZEOF_INT } from './libc.js';
import { HMM_DMIRROR_WRITE } from './uapi.js';
import { default_huge_page_size, hugetlb_free_default_pages, read_pmd_pagesize } from './vmutil.js';

const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** Registers this group's TEST_F()s in file order. */
export function registerChild({ hmm }: Fixtures): void {
  /*
   * Check that a device writing an anonymous private mapping
   * will copy-on-write if a child process inherits the mapping.
   *
   * Also verifies after fork() memory the device can be read by child.
   */
  hmm.TEST_F('anon_write_child', (ctx, self) => {
    const t = self.t;
    const { libc } = t;
    for (let migrate = 0; migrate < 2; ++migrate) {
      for (let use_thp = 0; use_thp < 2; ++use_thp) {
        const npages = Math.floor(
          ALIGN(use_thp ? read_pmd_pagesize(libc) : HMM_BUFFER_SIZE, self.page_size) / 2 ** self.page_shift,
        );
        ctx.ASSERT_NE(u64(npages), 0, 'npages', '0', 558);
        const size = npages * 2 ** self.page_shift;
        const n = size / SIZEOF_INT;

        const buffer = allocBuffer(ctx, libc, size * 2, size, RW, PRIV_ANON, -1, [562, 567, 573]);

        const old_ptr = buffer.ptr;
        if (use_thp) {
          const map = ALIGN(buffer.ptr, size);
          const ret = libc.madvise(map, size, MADV_HUGEPAGE);
          ctx.ASSERT_EQ(ret, 0, 'ret', '0', 579);
          buffer.ptr = map;
        }

        /* Initialize buffer->ptr so we can tell if it is written. */
        libc.fillInts(buffer.ptr, 0, n, (i) => i);

        /* Initialize data that the device will write to buffer->ptr. */
        libc.fillInts(buffer.mirror, 0, n, (i) => -i);

        if (migrate) {
          const ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
          ctx.ASSERT_EQ(ret, 0, 'ret', '0', 593);
          ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 594);
        }

        const pid = forkAndRun(ctx, t, (cctx, clibc) => {
          const cbuf = buffer.clone();
          /* Check that we see the parent's values. */
          assertInts(cctx, clibc, cbuf.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 616);
          if (!migrate) assertInts(cctx, clibc, cbuf.mirror, 0, n, (i) => -i, 'ulong', 'ptr[i]', '-i', 619);

          /* The child process needs its own mirror to its own mm. */
          const child_fd = hmm_open(cctx, clibc, 0);
          cctx.ASSERT_GE(child_fd, 0, 'child_fd', '0', 624);

          /* Simulate a device writing system memory. */
          const ret = hmm_dmirror_cmd(clibc, child_fd, HMM_DMIRROR_WRITE, cbuf, npages);
          cctx.ASSERT_EQ(ret, 0, 'ret', '0', 628);
          cctx.ASSERT_EQ(u64(cbuf.cpages), u64(npages), 'buffer->cpages', 'npages', 629);
          cctx.ASSERT_EQ(u64(cbuf.faults), 1, 'buffer->faults', '1', 630);

          /* Check what the device wrote. */
          if (!migrate) assertInts(cctx, clibc, cbuf.ptr, 0, n, (i) => -i, 'ulong', 'ptr[i]', '-i', 635);

          clibc.close(child_fd);
          cctx.exit(0);
        });
        if (pid === -1) ctx.ASSERT_EQ(pid, 0, 'pid', '0', 600);

        const status = { value: 0 };
        libc.waitpid(pid, status, 0);
        ctx.ASSERT_EQ(WIFEXITED(status.value) ? 1 : 0, 1, 'WIFEXITED(ret)', '1', 603);

        /* Check that the parent's buffer did not change. */
        assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 607);

        buffer.ptr = old_ptr;
        hmm_buffer_free(libc, buffer);
      }
    }
  });

  /*
   * Check that a device writing an anonymous shared mapping
   * will not copy-on-write if a child process inherits the mapping.
   */
  hmm.TEST_F('anon_write_child_shared', (ctx, self) => {
    const t = self.t;
    const { libc } = t;
    const { buffer, npages, size } = stdBuffer(
      ctx,
      self,
      RW,
      MAP_SHARED | MAP_ANONYMOUS,
      [660, 664, 669, 675],
    );
    const n = size / SIZEOF_INT;

    /* Initialize buffer->ptr so we can tell if it is written. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Initialize data that the device will write to buffer->ptr. */
    libc.fillInts(buffer.mirror, 0, n, (i) => -i);

    const pid = forkAndRun(ctx, t, (cctx, clibc) => {
      const cbuf = buffer.clone();
      /* Check that we see the parent's values. */
      assertInts(cctx, clibc, cbuf.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 700);
      assertInts(cctx, clibc, cbuf.mirror, 0, n, (i) => -i, 'ulong', 'ptr[i]', '-i', 702);

      /* The child process needs its own mirror to its own mm. */
      const child_fd = hmm_open(cctx, clibc, 0);
      cctx.ASSERT_GE(child_fd, 0, 'child_fd', '0', 706);

      /* Simulate a device writing system memory. */
      const ret = hmm_dmirror_cmd(clibc, child_fd, HMM_DMIRROR_WRITE, cbuf, npages);
      cctx.ASSERT_EQ(ret, 0, 'ret', '0', 710);
      cctx.ASSERT_EQ(u64(cbuf.cpages), u64(npages), 'buffer->cpages', 'npages', 711);
      cctx.ASSERT_EQ(u64(cbuf.faults), 1, 'buffer->faults', '1', 712);

      /* Check what the device wrote. */
      assertInts(cctx, clibc, cbuf.ptr, 0, n, (i) => -i, 'ulong', 'ptr[i]', '-i', 716);

      clibc.close(child_fd);
      cctx.exit(0);
    });
    if (pid === -1) ctx.ASSERT_EQ(pid, 0, 'pid', '0', 687);

    const status = { value: 0 };
    libc.waitpid(pid, status, 0);
    ctx.ASSERT_EQ(WIFEXITED(status.value) ? 1 : 0, 1, 'WIFEXITED(ret)', '1', 690);

    /* Check that the parent's buffer did change. */
    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => -i, 'ulong', 'ptr[i]', '-i', 694);
  });

  /*
   * Write private anonymous huge page.
   */
  hmm.TEST_F('anon_write_huge', (ctx, self) => {
    const { libc } = self.t;
    let size = 2 * read_pmd_pagesize(libc);

    const buffer = allocBuffer(ctx, libc, size, size, RW, PRIV_ANON, -1, [739, 744, 750]);

    size /= 2;
    const npages = Math.floor(size / 2 ** self.page_shift);
    const map = ALIGN(buffer.ptr, size);
    const ret0 = libc.madvise(map, size, MADV_HUGEPAGE);
    ctx.ASSERT_EQ(ret0, 0, 'ret', '0', 756);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;
    const n = size / SIZEOF_INT;

    /* Initialize data that the device will write to buffer->ptr. */
    libc.fillInts(buffer.mirror, 0, n, (i) => i);

    /* Simulate a device writing system memory. */
    const ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 766);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 767);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 768);

    /* Check what the device wrote. */
    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 772);

    buffer.ptr = old_ptr;
    hmm_buffer_free(libc, buffer);
  });

  /*
   * Write huge TLBFS page.
   */
  hmm.TEST_F('anon_write_hugetlbfs', (ctx, self) => {
    const { libc, suite } = self.t;
    const default_hsize = default_huge_page_size(libc, suite.hugetlb);

    if (!hugetlb_free_default_pages(libc, suite.hugetlb)) return ctx.SKIP('Not enough huge pages');

    const size = ALIGN(TWOMEG, default_hsize);
    const npages = Math.floor(size / 2 ** self.page_shift);

    const buffer = newBuffer(ctx, libc, 798);

    buffer.ptr = libc.mmap(0, size, RW, PRIV_ANON | MAP_HUGETLB, -1, 0);
    if (buffer.ptr === MAP_FAILED) {
      libc.free(buffer.addr);
      return ctx.SKIP('Huge page could not be allocated');
    }

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = libc.malloc(size);
    assertNotNull(ctx, buffer.mirror, 'buffer->mirror', 812);
    const n = size / SIZEOF_INT;

    /* Initialize data that the device will write to buffer->ptr. */
    libc.fillInts(buffer.mirror, 0, n, (i) => i);

    /* Simulate a device writing system memory. */
    const ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 820);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 821);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 822);

    /* Check what the device wrote. */
    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 826);

    libc.munmap(buffer.ptr, buffer.size);
    buffer.ptr = 0;
    hmm_buffer_free(libc, buffer);
  });
}
