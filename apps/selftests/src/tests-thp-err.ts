/**
 * hmm-tests.c, seventh group (C lines 2576-2752), THP migration with injected allocation
 * failures (HMM_DMIRROR_FLAGS / HMM_DMIRROR_FLAG_FAIL_ALLOC): migrate_anon_huge_err,
 * migrate_anon_huge_zero_err.
 */

import { MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@hmm-model/mm-core';
import {
  ALIGN,
  assertInts,
  assertMapped,
  type Fixtures,
  hmm_buffer_free,
  hmm_dmirror_cmd,
  hmm_migrate_dev_to_sys,
  hmm_migrate_sys_to_dev,
} from './common.js';
import { u64 } from './harness/index.js';
import { SIZEOF_INT } from './libc.js';
import { thpStruct } from './tests-thp.js';
import { HMM_DMIRROR_FLAG_FAIL_ALLOC, HMM_DMIRROR_FLAGS } from './uapi.js';
import { read_pmd_pagesize } from './vmutil.js';

const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** Registers this group's TEST_F()s in file order. */
export function registerThpErr({ hmm }: Fixtures): void {
  /*
   * Migrate private anonymous huge page with allocation errors.
   */
  hmm.TEST_F('migrate_anon_huge_err', (ctx, self) => {
    const { libc } = self.t;
    const size = read_pmd_pagesize(libc);
    const n = size / SIZEOF_INT;

    const buffer = thpStruct(ctx, libc, 2 * size, 2 * size, 2593, 2598);

    let old_ptr = libc.mmap(0, 2 * size, RW, PRIV_ANON, buffer.fd, 0);
    assertMapped(ctx, old_ptr, 'old_ptr', 2603);

    const npages = Math.floor(size / 2 ** self.page_shift);
    let map = ALIGN(old_ptr, size);
    let ret = libc.madvise(map, size, MADV_HUGEPAGE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2608);
    buffer.ptr = map;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Migrate memory to device but force a THP allocation error. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2618);
    ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2620);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2621);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2625);

    /* Try faulting back a single (PAGE_SIZE) page. */
    let ptr = buffer.ptr;
    ctx.ASSERT_EQ(libc.intAt(ptr, 2048), 2048, 'ptr[2048]', '2048', 2632);

    /* unmap and remap the region to reset things. */
    ret = libc.munmap(old_ptr, 2 * size);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2636);
    old_ptr = libc.mmap(0, 2 * size, RW, PRIV_ANON, buffer.fd, 0);
    assertMapped(ctx, old_ptr, 'old_ptr', 2639);
    map = ALIGN(old_ptr, size);
    ret = libc.madvise(map, size, MADV_HUGEPAGE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2642);
    buffer.ptr = map;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Migrate THP to device. */
    ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2651);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2652);

    /*
     * Force an allocation error when faulting back a THP resident in the
     * device.
     */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2660);

    ret = hmm_migrate_dev_to_sys(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2663);
    ptr = buffer.ptr;
    ctx.ASSERT_EQ(libc.intAt(ptr, 2048), 2048, 'ptr[2048]', '2048', 2665);

    buffer.ptr = old_ptr;
    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate private anonymous huge zero page with allocation errors.
   */
  hmm.TEST_F('migrate_anon_huge_zero_err', (ctx, self) => {
    const { libc } = self.t;
    const size = read_pmd_pagesize(libc);
    const n = size / SIZEOF_INT;

    const buffer = thpStruct(ctx, libc, 2 * size, 2 * size, 2688, 2693);

    let old_ptr = libc.mmap(0, 2 * size, PROT_READ, PRIV_ANON, buffer.fd, 0);
    assertMapped(ctx, old_ptr, 'old_ptr', 2698);

    const npages = Math.floor(size / 2 ** self.page_shift);
    let map = ALIGN(old_ptr, size);
    let ret = libc.madvise(map, size, MADV_HUGEPAGE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2703);
    buffer.ptr = map;

    /* Migrate memory to device but force a THP allocation error. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2709);
    ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2711);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2712);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, () => 0, 'int', 'ptr[i]', '0', 2716);

    /* Try faulting back a single (PAGE_SIZE) page. */
    const ptr = buffer.ptr;
    ctx.ASSERT_EQ(libc.intAt(ptr, 2048), 0, 'ptr[2048]', '0', 2720);

    /* unmap and remap the region to reset things. */
    ret = libc.munmap(old_ptr, 2 * size);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2724);
    old_ptr = libc.mmap(0, 2 * size, PROT_READ, PRIV_ANON, buffer.fd, 0);
    assertMapped(ctx, old_ptr, 'old_ptr', 2727);
    map = ALIGN(old_ptr, size);
    ret = libc.madvise(map, size, MADV_HUGEPAGE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2730);
    buffer.ptr = map;

    /* Initialize buffer in system memory (zero THP page). */
    // As in C, this load goes through `ptr`, the window of the mapping before the remap.
    ret = libc.intAt(ptr, 0);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2735);

    /* Migrate memory to device but force a THP allocation error. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_FLAGS, buffer, HMM_DMIRROR_FLAG_FAIL_ALLOC);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2740);
    ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2742);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2743);

    /* Fault the device memory back and check it. */
    assertInts(ctx, libc, buffer.ptr, 0, n, () => 0, 'int', 'ptr[i]', '0', 2747);

    buffer.ptr = old_ptr;
    hmm_buffer_free(libc, buffer);
  });
}
