/**
 * hmm-tests.c, first group (C lines 292-531): open_close, anon_read, anon_read_prot, anon_write,
 * anon_write_prot.
 */

import {
  EFAULT,
  EPERM,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { assertInts, type Fixtures, hmm_buffer_free, hmm_dmirror_cmd, stdBuffer } from './common.js';
import { u64 } from './harness/index.js';
import { SIZEOF_INT } from './libc.js';
import { HMM_DMIRROR_READ, HMM_DMIRROR_WRITE } from './uapi.js';

const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** Registers this group's TEST_F()s in file order. */
export function registerAnon({ hmm }: Fixtures): void {
  /*
   * Simple NULL test of device open/close.
   */
  hmm.TEST_F('open_close', () => {});

  /*
   * Read private anonymous memory.
   */
  hmm.TEST_F('anon_read', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages, size } = stdBuffer(ctx, self, RW, PRIV_ANON, [313, 317, 322, 328]);

    /*
     * Initialize buffer in system memory but leave the first two pages
     * zero (pte_none and pfn_zero).
     */
    const first = (2 * self.page_size) / SIZEOF_INT;
    libc.fillInts(buffer.ptr, first, size / SIZEOF_INT, (i) => i);

    /* Set buffer permission to read-only. */
    let ret = libc.mprotect(buffer.ptr, size, PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 340);

    /* Populate the CPU page table with a special zero page. */
    const val = libc.intAt(buffer.ptr + self.page_size, 0);
    ctx.ASSERT_EQ(val, 0, 'val', '0', 344);

    /* Simulate a device reading system memory. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_READ, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 348);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 349);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 350);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, first, () => 0, 'int', 'ptr[i]', '0', 355);
    assertInts(ctx, libc, buffer.mirror, first, size / SIZEOF_INT, (i) => i, 'ulong', 'ptr[i]', 'i', 357);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Read private anonymous memory which has been protected with
   * mprotect() PROT_NONE.
   */
  hmm.TEST_F('anon_read_prot', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages, size } = stdBuffer(ctx, self, RW, PRIV_ANON, [376, 380, 385, 391]);
    const n = size / SIZEOF_INT;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Initialize mirror buffer so we can verify it isn't written. */
    libc.fillInts(buffer.mirror, 0, n, (i) => -i);

    /* Protect buffer from reading. */
    let ret = libc.mprotect(buffer.ptr, size, PROT_NONE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 403);

    /* Simulate a device reading system memory. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_READ, buffer, npages);
    ctx.ASSERT_EQ(ret, -EFAULT, 'ret', '-EFAULT', 407);

    /* Allow CPU to read the buffer so we can check it. */
    ret = libc.mprotect(buffer.ptr, size, PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 411);
    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 413);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => -i, 'ulong', 'ptr[i]', '-i', 417);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Write private anonymous memory.
   */
  hmm.TEST_F('anon_write', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages, size } = stdBuffer(ctx, self, RW, PRIV_ANON, [435, 439, 444, 450]);
    const n = size / SIZEOF_INT;

    /* Initialize data that the device will write to buffer->ptr. */
    libc.fillInts(buffer.mirror, 0, n, (i) => i);

    /* Simulate a device writing system memory. */
    const ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 458);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 459);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 460);

    /* Check what the device wrote. */
    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 464);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Write private anonymous memory which has been protected with
   * mprotect() PROT_READ.
   */
  hmm.TEST_F('anon_write_prot', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages, size } = stdBuffer(ctx, self, PROT_READ, PRIV_ANON, [483, 487, 492, 498]);
    const n = size / SIZEOF_INT;

    /* Simulate a device reading a zero page of memory. */
    let ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_READ, buffer, 1);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 502);
    ctx.ASSERT_EQ(u64(buffer.cpages), 1, 'buffer->cpages', '1', 503);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 504);

    /* Initialize data that the device will write to buffer->ptr. */
    libc.fillInts(buffer.mirror, 0, n, (i) => i);

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ctx.ASSERT_EQ(ret, -EPERM, 'ret', '-EPERM', 512);

    /* Check what the device wrote. */
    assertInts(ctx, libc, buffer.ptr, 0, n, () => 0, 'int', 'ptr[i]', '0', 516);

    /* Now allow writing and see that the zero page is replaced. */
    ret = libc.mprotect(buffer.ptr, size, PROT_WRITE | PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 520);

    /* Simulate a device writing system memory. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 524);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 525);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 526);

    /* Check what the device wrote. */
    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 530);

    hmm_buffer_free(libc, buffer);
  });
}
