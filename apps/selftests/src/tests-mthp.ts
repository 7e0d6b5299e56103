/**
 * The model's own hmm-tests cases (not in hmm-tests.c; run with `hmm-tests --mthp`, which loads
 * test_hmm with every mTHP order declared): device migration of anonymous mTHPs, the model
 * extension of issue 9. Each case is `hmm.<variant>.migrate_anon_mthp_*`; failures print this
 * file's name and line. Per size, the case turns hugepages-<size>kB/enabled to "always" (and the
 * PMD size to "never" below the PMD order) and restores both at the end.
 */

import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_RDONLY,
  O_WRONLY,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { hmmDmirrorFlagFailAllocOrder } from '@hmm-model/test-hmm';
import {
  ALIGN,
  type Fixtures,
  type HmmBuffer,
  hmm_buffer_free,
  hmm_dmirror_cmd,
  hmm_is_coherent_type,
  hmm_migrate_dev_to_sys,
  hmm_migrate_sys_to_dev,
} from './common.js';
import type { TestContext } from './harness/index.js';
import { type Libc, SIZEOF_INT } from './libc.js';
import { thpStruct } from './tests-thp.js';
import { HMM_DMIRROR_FLAGS } from './uapi.js';

const FILE = 'tests-mthp.ts';
const W = { file: FILE };
const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const THP = '/sys/kernel/mm/transparent_hugepage';
const PMD_ORDER = 9;

function sizeFile(order: number): string {
  return `${THP}/hugepages-${4 << order}kB/enabled`;
}

/** The selected mode of a hugepages-<size>kB/enabled file ("[always] ..." -> "always"). */
function readMode(libc: Libc, path: string): string {
  const fd = libc.open(path, O_RDONLY);
  const buf = new Uint8Array(128);
  const n = libc.pread(fd, buf, buf.length, 0);
  libc.close(fd);
  return /\[(\w+)\]/.exec(new TextDecoder().decode(buf.subarray(0, Math.max(0, n))))?.[1] ?? '';
}

function writeMode(ctx: TestContext, libc: Libc, path: string, mode: string): void {
  const fd = libc.open(path, O_WRONLY);
  ctx.ASSERT_GE(fd, 0, 'fd', '0', W);
  const b = new TextEncoder().encode(mode);
  ctx.ASSERT_EQ(libc.write(fd, b, b.length), b.length, 'write(fd, mode)', 'strlen(mode)', W);
  libc.close(fd);
}

/** Runs body with only anonymous mTHP of `order` enabled ("always"), then restores the settings. */
function withOrder(ctx: TestContext, libc: Libc, order: number, body: () => void): void {
  const saved = [sizeFile(order), sizeFile(PMD_ORDER)].map((p) => [p, readMode(libc, p)] as const);
  if (order !== PMD_ORDER) writeMode(ctx, libc, sizeFile(PMD_ORDER), 'never');
  writeMode(ctx, libc, sizeFile(order), 'always');
  try {
    body();
  } finally {
    for (const [p, m] of saved.reverse()) writeMode(ctx, libc, p, m);
  }
}

/** A buffer of `folios` folios of `order`, aligned to the folio size inside a bigger mapping, filled with i. */
function mthpBuffer(
  ctx: TestContext,
  libc: Libc,
  order: number,
  folios: number,
): { buffer: HmmBuffer; old: number } {
  const fsize = 4096 << order;
  const size = folios * fsize;
  const buffer = thpStruct(ctx, libc, size + fsize, size, 0, 0);
  buffer.ptr = libc.mmap(0, size + fsize, RW, PRIV_ANON, -1, 0);
  ctx.ASSERT_NE(buffer.ptr, -1, 'buffer->ptr', 'MAP_FAILED', W);
  const old = buffer.ptr;
  buffer.ptr = ALIGN(buffer.ptr, fsize);
  libc.fillInts(buffer.ptr, 0, size / SIZEOF_INT, (i) => i);
  return { buffer, old };
}

/** ASSERT that the n ints at addr are i + from (the first mismatch only). */
function checkInts(ctx: TestContext, libc: Libc, addr: number, from: number, n: number): void {
  const v = libc.proc.readInts(addr, n);
  for (let i = 0; i < n; i++) if (v[i] !== i + from) ctx.ASSERT_EQ(v[i], i + from, 'ptr[i]', 'i', W);
}

function free(libc: Libc, buffer: HmmBuffer, old: number, size: number): void {
  buffer.ptr = old;
  buffer.size = size;
  hmm_buffer_free(libc, buffer);
}

/** Registers the model's own mTHP cases on FIXTURE(hmm). */
export function registerMthp({ hmm }: Fixtures): void {
  for (let order = 2; order <= PMD_ORDER; order++) {
    /*
     * Migrate two anonymous folios of `order` to the device and back (MIGRATE_TO_SYS: one
     * cpages per folio), then again to the device and back by CPU faults: the data survives.
     */
    hmm.TEST_F(`migrate_anon_mthp_order${order}`, (ctx, self, variant) => {
      const { libc } = self.t;
      withOrder(ctx, libc, order, () => {
        const fsize = 4096 << order;
        const { buffer, old } = mthpBuffer(ctx, libc, order, 2);
        const npages = (2 * fsize) / self.page_size;
        const n = (2 * fsize) / SIZEOF_INT;
        ctx.ASSERT_EQ(hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages), 0, 'ret', '0', W);
        ctx.ASSERT_EQ(buffer.cpages, npages, 'buffer->cpages', 'npages', W);
        checkInts(ctx, libc, buffer.mirror, 0, n);
        ctx.ASSERT_EQ(hmm_migrate_dev_to_sys(libc, self.fd, buffer, npages), 0, 'ret', '0', W);
        // dmirror_successful_migrated_pages() counts the head slot of each compound unit. A coherent
        // device has one chunk for good (test_hmm allocates its memory once): after earlier cases
        // carved it into pages, the folios went to the device as base pages, one cpages each.
        const units = hmm_is_coherent_type(variant.device_number) && buffer.cpages === npages ? npages : 2;
        ctx.ASSERT_EQ(buffer.cpages, units, 'buffer->cpages', 'units', W);
        checkInts(ctx, libc, buffer.ptr, 0, n);
        ctx.ASSERT_EQ(hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages), 0, 'ret', '0', W);
        checkInts(ctx, libc, buffer.ptr, 0, n);
        free(libc, buffer, old, 3 * fsize);
      });
    });
  }

  /* FAIL_ALLOC of the source's order: the device takes a lower order or base pages; data intact. */
  hmm.TEST_F('migrate_anon_mthp_fail_alloc_order', (ctx, self) => {
    const { libc } = self.t;
    withOrder(ctx, libc, 6, () => {
      const fsize = 4096 << 6;
      const { buffer, old } = mthpBuffer(ctx, libc, 6, 1);
      const npages = fsize / self.page_size;
      ctx.ASSERT_EQ(
        hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_FLAGS, buffer, hmmDmirrorFlagFailAllocOrder(6)),
        0,
        'ret',
        '0',
        W,
      );
      ctx.ASSERT_EQ(hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages), 0, 'ret', '0', W);
      ctx.ASSERT_EQ(buffer.cpages, npages, 'buffer->cpages', 'npages', W);
      checkInts(ctx, libc, buffer.ptr, 0, fsize / SIZEOF_INT);
      free(libc, buffer, old, 2 * fsize);
    });
  });

  /* munmap() of half of a device mTHP: the other half faults back intact. */
  hmm.TEST_F('migrate_anon_mthp_partial_unmap', (ctx, self) => {
    const { libc } = self.t;
    withOrder(ctx, libc, 5, () => {
      const fsize = 4096 << 5;
      const { buffer, old } = mthpBuffer(ctx, libc, 5, 1);
      const npages = fsize / self.page_size;
      ctx.ASSERT_EQ(hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages), 0, 'ret', '0', W);
      ctx.ASSERT_EQ(libc.munmap(buffer.ptr + fsize / 2, fsize / 2), 0, 'munmap()', '0', W);
      checkInts(ctx, libc, buffer.ptr, 0, fsize / 2 / SIZEOF_INT);
      free(libc, buffer, old, 2 * fsize);
    });
  });

  /* fork() with a device mTHP: the child and then the parent read it back. */
  hmm.TEST_F('migrate_anon_mthp_fork', (ctx, self) => {
    const { libc } = self.t;
    withOrder(ctx, libc, 4, () => {
      const fsize = 4096 << 4;
      const { buffer, old } = mthpBuffer(ctx, libc, 4, 2);
      const npages = (2 * fsize) / self.page_size;
      ctx.ASSERT_EQ(hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages), 0, 'ret', '0', W);
      const pid = libc.fork();
      ctx.ASSERT_GE(pid, 0, 'pid', '0', W);
      const child = self.t.kernel.task(pid);
      ctx.ASSERT_NE(child === undefined ? 0 : 1, 0, 'child', 'NULL', W);
      const cv = child!.readInts(buffer.ptr, (2 * fsize) / SIZEOF_INT);
      for (let i = 0; i < cv.length; i++) if (cv[i] !== i) ctx.ASSERT_EQ(cv[i], i, 'child ptr[i]', 'i', W);
      child!.exit(0);
      const status = { value: 0 };
      ctx.ASSERT_EQ(libc.waitpid(pid, status, 0), pid, 'waitpid()', 'pid', W);
      checkInts(ctx, libc, buffer.ptr, 0, (2 * fsize) / SIZEOF_INT);
      free(libc, buffer, old, 3 * fsize);
    });
  });

  /* mremap() of a device mTHP to an address that is not folio-aligned: the data moves with it. */
  hmm.TEST_F('migrate_anon_mthp_mremap_unaligned', (ctx, self) => {
    const { libc } = self.t;
    withOrder(ctx, libc, 4, () => {
      const fsize = 4096 << 4;
      const { buffer, old } = mthpBuffer(ctx, libc, 4, 1);
      const npages = fsize / self.page_size;
      ctx.ASSERT_EQ(hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages), 0, 'ret', '0', W);
      const target = libc.mmap(0, 4 * fsize, RW, PRIV_ANON, -1, 0);
      ctx.ASSERT_NE(target, -1, 'target', 'MAP_FAILED', W);
      const to = ALIGN(target, fsize) + self.page_size;
      const moved = libc.mremap(buffer.ptr, fsize, fsize, MREMAP_MAYMOVE | MREMAP_FIXED, to);
      ctx.ASSERT_EQ(moved, to, 'mremap()', 'to', W);
      checkInts(ctx, libc, to, 0, fsize / SIZEOF_INT);
      libc.munmap(target, 4 * fsize);
      free(libc, buffer, old, 2 * fsize);
    });
  });
}
