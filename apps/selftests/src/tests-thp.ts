/**
 * hmm-tests.c, sixth group (C lines 2139-2574), the zone-device THP tests:
 * migrate_anon_huge_empty, migrate_anon_huge_zero, migrate_anon_huge_free,
 * migrate_anon_huge_fault, migrate_partial_unmap_fault, migrate_remap_fault.
 */

import {
  MADV_COLLAPSE,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_RDONLY,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import {
  ALIGN,
  assertByte,
  assertInts,
  assertMapped,
  assertNotNull,
  type Fixtures,
  type HmmBuffer,
  hmm_buffer_free,
  hmm_dmirror_cmd,
  hmm_is_coherent_type,
  hmm_migrate_sys_to_dev,
  newBuffer,
  TWOMEG,
} from './common.js';
import { type TestContext, u64 } from './harness/index.js';
import { type Libc, SIZEOF_INT } from './libc.js';
import {
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_SNAPSHOT,
} from './uapi.js';
import { PAGEMAP_PRESENT, PM_SWAP, pagemap_get_entry, read_pmd_pagesize } from './vmutil.js';

const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/**
 * Models the THP tests' `buffer = malloc(..); ASSERT_NE(buffer, NULL); buffer->fd = -1;
 * buffer->size = size; buffer->mirror = malloc(m); ASSERT_NE(buffer->mirror, NULL);
 * memset(buffer->mirror, 0xFF, m);`.
 */
export function thpStruct(
  ctx: TestContext,
  libc: Libc,
  size: number,
  mirrorSize: number,
  bufLine: number,
  mirrorLine: number,
): HmmBuffer {
  const buffer = newBuffer(ctx, libc, bufLine);
  buffer.fd = -1;
  buffer.size = size;
  buffer.mirror = libc.malloc(mirrorSize);
  assertNotNull(ctx, buffer.mirror, 'buffer->mirror', mirrorLine);
  libc.memset(buffer.mirror, 0xff, mirrorSize);
  return buffer;
}

/** {@link thpStruct} followed by `buffer->ptr = mmap(NULL, buffer->size, prot, ...); ASSERT_NE(buffer->ptr, MAP_FAILED);`. */
function thpBuffer(
  ctx: TestContext,
  libc: Libc,
  size: number,
  mirrorSize: number,
  prot: number,
  lines: readonly [number, number, number],
): HmmBuffer {
  const buffer = thpStruct(ctx, libc, size, mirrorSize, lines[0], lines[1]);
  buffer.ptr = libc.mmap(0, size, prot, PRIV_ANON, buffer.fd, 0);
  assertMapped(ctx, buffer.ptr, 'buffer->ptr', lines[2]);
  return buffer;
}

/** Registers this group's TEST_F()s in file order. */
export function registerThp({ hmm }: Fixtures): void {
  /*
   * Migrate private anonymous huge empty page.
   */
  hmm.TEST_F('migrate_anon_huge_empty', (ctx, self) => {
    const { libc } = self.t;
    const size = read_pmd_pagesize(libc);

    const buffer = thpBuffer(ctx, libc, 2 * size, size, PROT_READ, [2155, 2160, 2167]);

    const npages = Math.floor(size / 2 ** self.page_shift);
    const map = ALIGN(buffer.ptr, size);
    let ret = libc.madvise(map, size, MADV_HUGEPAGE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2172);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2178);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2179);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, size / SIZEOF_INT, () => 0, 'int', 'ptr[i]', '0', 2183);

    buffer.ptr = old_ptr;
    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate private anonymous huge zero page.
   */
  hmm.TEST_F('migrate_anon_huge_zero', (ctx, self) => {
    const { libc } = self.t;
    const size = read_pmd_pagesize(libc);

    const buffer = thpBuffer(ctx, libc, 2 * size, size, PROT_READ, [2207, 2212, 2219]);

    const npages = Math.floor(size / 2 ** self.page_shift);
    const map = ALIGN(buffer.ptr, size);
    let ret = libc.madvise(map, size, MADV_HUGEPAGE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2224);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;

    /* Initialize a read-only zero huge page. */
    const val = libc.intAt(buffer.ptr, 0);
    ctx.ASSERT_EQ(val, 0, 'val', '0', 2230);

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2234);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2235);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, size / SIZEOF_INT, () => 0, 'int', 'ptr[i]', '0', 2239);

    /* Fault pages back to system memory and check them. */
    assertInts(ctx, libc, buffer.ptr, 0, size / SIZEOF_INT, () => 0, 'int', 'ptr[i]', '0', 2243);

    buffer.ptr = old_ptr;
    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate private anonymous huge page and free.
   */
  hmm.TEST_F('migrate_anon_huge_free', (ctx, self) => {
    const { libc } = self.t;
    const size = read_pmd_pagesize(libc);
    const n = size / SIZEOF_INT;

    const buffer = thpBuffer(ctx, libc, 2 * size, size, RW, [2270, 2275, 2282]);

    const npages = Math.floor(size / 2 ** self.page_shift);
    const map = ALIGN(buffer.ptr, size);
    let ret = libc.madvise(map, size, MADV_HUGEPAGE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2287);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2297);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2298);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2302);

    /* Try freeing it. */
    ret = libc.madvise(map, size, MADV_FREE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2306);

    buffer.ptr = old_ptr;
    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate private anonymous huge page and fault back to sysmem.
   */
  hmm.TEST_F('migrate_anon_huge_fault', (ctx, self, variant) => {
    const { libc } = self.t;
    const size = read_pmd_pagesize(libc);
    const n = size / SIZEOF_INT;

    const buffer = thpBuffer(ctx, libc, 2 * size, size, RW, [2332, 2337, 2344]);

    const npages = Math.floor(size / 2 ** self.page_shift);
    const map = ALIGN(buffer.ptr, size);
    const old_ptr = buffer.ptr;
    buffer.ptr = map;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    let ret = libc.madvise(map, size, MADV_COLLAPSE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2356);

    /* Migrate memory to device. */
    ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2360);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2361);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2365);

    if (!hmm_is_coherent_type(variant.device_number)) {
      ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
      ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2370);
      ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2371);

      const m = libc.proc.readBytes(buffer.mirror, npages);
      const want = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD;
      for (let i = 0; i < npages; ++i) {
        if (m[i] !== want)
          assertByte(
            ctx,
            m[i],
            want,
            'm[i]',
            'HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD',
            2375,
          );
      }

      const pagemap_fd = libc.open('/proc/self/pagemap', O_RDONLY);
      ctx.ASSERT_GE(pagemap_fd, 0, 'pagemap_fd', '0', 2380);

      for (let i = 0; i < npages; ++i) {
        const entry = pagemap_get_entry(libc, pagemap_fd, buffer.ptr + i * self.page_size);

        ctx.ASSERT_NE(u64(entry & PM_SWAP), 0, 'entry & PM_SWAP', '0', 2386);
        ctx.ASSERT_FALSE(PAGEMAP_PRESENT(entry), 'PAGEMAP_PRESENT(entry)', 2387);
      }

      libc.close(pagemap_fd);
    }

    /* Fault pages back to system memory and check them. */
    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2395);

    buffer.ptr = old_ptr;
    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate memory and fault back to sysmem after partially unmapping.
   */
  hmm.TEST_F('migrate_partial_unmap_fault', (ctx, self) => {
    const { libc } = self.t;
    let size = read_pmd_pagesize(libc);

    if (!size) size = TWOMEG;

    const unmap_size = size / 2;
    const offsets = [0, size / 4, size / 2];
    const n = size / SIZEOF_INT;

    for (let use_thp = 0; use_thp < 2; ++use_thp) {
      for (let j = 0; j < offsets.length; ++j) {
        const buffer = thpBuffer(ctx, libc, 2 * size, size, RW, [2428, 2433, 2440]);

        const npages = Math.floor(size / 2 ** self.page_shift);
        const map = ALIGN(buffer.ptr, size);
        let ret = libc.madvise(map, size, use_thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2448);
        const old_ptr = buffer.ptr;
        buffer.ptr = map;

        /* Initialize buffer in system memory. */
        libc.fillInts(buffer.ptr, 0, n, (i) => i);

        /* Migrate memory to device. */
        ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
        ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2458);
        ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2459);

        /* Check what the device read. */
        assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2463);

        libc.munmap(buffer.ptr + offsets[j], unmap_size);

        /* Fault pages back to system memory and check them. */
        const holeStart = offsets[j] / SIZEOF_INT;
        const holeEnd = (offsets[j] + unmap_size) / SIZEOF_INT;
        assertInts(ctx, libc, buffer.ptr, 0, Math.min(holeStart, n), (i) => i, 'ulong', 'ptr[i]', 'i', 2471);
        assertInts(ctx, libc, buffer.ptr, holeEnd, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2471);

        buffer.ptr = old_ptr;
        hmm_buffer_free(libc, buffer);
      }
    }
  });

  hmm.TEST_F('migrate_remap_fault', (ctx, self) => {
    const { libc } = self.t;
    let size = read_pmd_pagesize(libc);
    let new_ptr = 0;

    if (!size) size = TWOMEG;

    const offsets = [0, size / 4, size / 2];
    const n = size / SIZEOF_INT;

    for (let before = 0; before < 2; ++before) {
      for (let dont_unmap = 0; dont_unmap < 2; ++dont_unmap) {
        for (let use_thp = 0; use_thp < 2; ++use_thp) {
          for (let j = 0; j < offsets.length; ++j) {
            let flags = MREMAP_MAYMOVE | MREMAP_FIXED;

            if (dont_unmap) flags |= MREMAP_DONTUNMAP;

            const buffer = thpBuffer(ctx, libc, 8 * size, size, RW, [2508, 2513, 2520]);

            const npages = Math.floor(size / 2 ** self.page_shift);
            const map = ALIGN(buffer.ptr, size);
            let ret = libc.madvise(map, size, use_thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
            ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2528);
            const old_ptr = buffer.ptr;
            libc.munmap(map + size, size * 2);
            buffer.ptr = map;

            /* Initialize buffer in system memory. */
            libc.fillInts(buffer.ptr, 0, n, (i) => i);

            if (before) {
              new_ptr = libc.mremap(map, size, size, flags, map + size + offsets[j]);
              assertMapped(ctx, new_ptr, 'new_ptr', 2541);
              buffer.ptr = new_ptr;
            }

            /* Migrate memory to device. */
            ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
            ctx.ASSERT_EQ(ret, 0, 'ret', '0', 2547);
            ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 2548);

            /* Check what the device read. */
            assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2553);

            if (!before) {
              new_ptr = libc.mremap(map, size, size, flags, map + size + offsets[j]);
              assertMapped(ctx, new_ptr, 'new_ptr', 2558);
              buffer.ptr = new_ptr;
            }

            /* Fault pages back to system memory and check them. */
            assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 2565);

            libc.munmap(new_ptr, size);
            buffer.ptr = old_ptr;
            hmm_buffer_free(libc, buffer);
          }
        }
      }
    }
  });
}
