/**
 * hmm-tests.c, fourth group (C lines 1338-1768): anon_read_multiple, anon_teardown, mixedmap,
 * snapshot (hmm2), compound, double_map (hmm2).
 */

import {
  type KGen,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import {
  ALIGN,
  allocBuffer,
  assertByte,
  assertInts,
  assertMapped,
  assertNotNull,
  type Fixtures,
  HMM_BUFFER_SIZE,
  type HmmBuffer,
  hmm_buffer_free,
  hmm_dmirror_cmd,
  hmm_is_coherent_type,
  hmm_migrate_sys_to_dev,
  hmm_random,
  NTIMES,
  newBuffer,
  TWOMEG,
} from './common.js';
import { u64, unsigned } from './harness/index.js';
import { type Libc, MAP_FAILED, SIZEOF_INT } from './libc.js';
import {
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_NONE,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_PUD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_SNAPSHOT,
} from './uapi.js';
import { default_huge_page_size, hugetlb_free_default_pages } from './vmutil.js';

const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/**
 * Models the `hmm_random() % 32000` ns delay of unmap_buffer() as a number of the kernel's
 * preemption points. The READ of 1024 pages passes 32 of them (one per 32-page
 * hmm_range_fault() batch), so a delay drawn from [0, 64) lands the unmap inside the READ's walk
 * (the READ then fails, which the test tolerates) about half of the time and after it otherwise.
 */
export const UNMAP_DELAY_POINTS = 64;

/**
 * Models unmap_buffer() (hmm-tests.c), the thread body of anon_teardown: after its delay
 * (counted by the scheduler) it unmaps the upper half of the buffer and clears buffer->ptr.
 */
function* unmap_buffer(libc: Libc, buffer: HmmBuffer): KGen {
  /* Delay for a bit and then unmap buffer while it is being read. */
  yield* libc.proc.sys.munmap(buffer.ptr + buffer.size / 2, buffer.size / 2);
  buffer.ptr = 0;
}

/** Registers this group's TEST_F()s in file order. */
export function registerSnapshot({ hmm, hmm2 }: Fixtures): void {
  /*
   * Read anonymous memory multiple times.
   */
  hmm.TEST_F('anon_read_multiple', (ctx, self) => {
    const { libc } = self.t;
    const npages = Math.floor(ALIGN(HMM_BUFFER_SIZE, self.page_size) / 2 ** self.page_shift);
    ctx.ASSERT_NE(u64(npages), 0, 'npages', '0', 1352);
    const size = npages * 2 ** self.page_shift;
    const n = size / SIZEOF_INT;

    for (let c = 0; c < NTIMES; c++) {
      const buffer = allocBuffer(ctx, libc, size, size, RW, PRIV_ANON, -1, [1357, 1362, 1368]);

      /* Initialize buffer in system memory. */
      libc.fillInts(buffer.ptr, 0, n, (i) => i + c);

      /* Simulate a device reading system memory. */
      const ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_READ, buffer, npages);
      ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1377);
      ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1378);
      ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 1379);

      /* Check what the device read. */
      assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i + c, 'ulong', 'ptr[i]', 'i + c', 1383);

      hmm_buffer_free(libc, buffer);
    }
  });

  /*
   * Try reading anonymous memory while it is being unmapped.
   */
  hmm.TEST_F('anon_teardown', (ctx, self) => {
    const t = self.t;
    const { libc, kernel } = t;
    const npages = Math.floor(ALIGN(HMM_BUFFER_SIZE, self.page_size) / 2 ** self.page_shift);
    ctx.ASSERT_NE(u64(npages), 0, 'npages', '0', 1412);
    const size = npages * 2 ** self.page_shift;
    const n = size / SIZEOF_INT;

    for (let c = 0; c < NTIMES; ++c) {
      const buffer = allocBuffer(ctx, libc, size, size, RW, PRIV_ANON, -1, [1423, 1428, 1434]);

      /* Initialize buffer in system memory. */
      libc.fillInts(buffer.ptr, 0, n, (i) => i + c);

      // pthread_create(): a scheduler task with its own errno, sharing the address space.
      const thread = libc.proc
        .clone()
        .spawn('unmap_buffer', unmap_buffer(libc, buffer), hmm_random(t) % UNMAP_DELAY_POINTS);
      t.tasks.push(thread);
      let rc = 0;
      ctx.ASSERT_EQ(rc, 0, 'rc', '0', 1441);

      /* Simulate a device reading system memory. */
      rc = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_READ, buffer, npages);
      if (rc === 0) {
        ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1447);
        ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 1448);

        /* Check what the device read. */
        assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i + c, 'ulong', 'ptr[i]', 'i + c', 1454);
      }

      kernel.sched.join(thread);
      t.tasks.splice(t.tasks.indexOf(thread), 1);
      hmm_buffer_free(libc, buffer);
    }
  });

  /*
   * Test memory snapshot without faulting in pages accessed by the device.
   */
  hmm.TEST_F('mixedmap', (ctx, self) => {
    const { libc } = self.t;
    const npages = 1;
    const size = npages * 2 ** self.page_shift;

    const buffer = newBuffer(ctx, libc, 1477);

    buffer.fd = -1;
    buffer.size = size;
    buffer.mirror = libc.malloc(npages);
    assertNotNull(ctx, buffer.mirror, 'buffer->mirror', 1482);

    /* Reserve a range of addresses. */
    buffer.ptr = libc.mmap(0, size, RW, MAP_PRIVATE, self.fd, 0);
    assertMapped(ctx, buffer.ptr, 'buffer->ptr', 1490);

    /* Simulate a device snapshotting CPU pagetables. */
    const ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1494);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1495);

    /* Check what the device saw. */
    const m = buffer.mirror;
    assertByte(ctx, libc.byteAt(m, 0), HMM_DMIRROR_PROT_READ, 'm[0]', 'HMM_DMIRROR_PROT_READ', 1499);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Test memory snapshot without faulting in pages accessed by the device.
   */
  hmm2.TEST_F('snapshot', (ctx, self, variant) => {
    const { libc } = self.t;
    const ps = self.page_size;
    const npages = 7;
    const size = npages * 2 ** self.page_shift;

    /* Reserve a range of addresses. */
    const buffer = allocBuffer(ctx, libc, size, npages, PROT_NONE, PRIV_ANON, -1, [1522, 1527, 1534]);
    const p = buffer.ptr;

    /* Punch a hole after the first page address. */
    let ret = libc.munmap(buffer.ptr + ps, ps);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1539);

    /* Page 2 will be read-only zero page. */
    ret = libc.mprotect(buffer.ptr + 2 * ps, ps, PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1544);
    const val = (libc.intAt(buffer.ptr + 2 * ps, 0) + 3) | 0;
    ctx.ASSERT_EQ(val, 3, 'val', '3', 1547);

    /* Page 3 will be read-only. */
    ret = libc.mprotect(buffer.ptr + 3 * ps, ps, PROT_READ | PROT_WRITE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1552);
    libc.setIntAt(buffer.ptr + 3 * ps, 0, val);
    ret = libc.mprotect(buffer.ptr + 3 * ps, ps, PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1557);

    /* Page 4-6 will be read-write. */
    ret = libc.mprotect(buffer.ptr + 4 * ps, 3 * ps, PROT_READ | PROT_WRITE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1562);
    libc.setIntAt(buffer.ptr + 4 * ps, 0, val);

    /* Page 5 will be migrated to device 0. */
    buffer.ptr = p + 5 * ps;
    ret = hmm_migrate_sys_to_dev(libc, self.fd0, buffer, 1);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1569);
    ctx.ASSERT_EQ(u64(buffer.cpages), 1, 'buffer->cpages', '1', 1570);

    /* Page 6 will be migrated to device 1. */
    buffer.ptr = p + 6 * ps;
    ret = hmm_migrate_sys_to_dev(libc, self.fd1, buffer, 1);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1575);
    ctx.ASSERT_EQ(u64(buffer.cpages), 1, 'buffer->cpages', '1', 1576);

    /* Simulate a device snapshotting CPU pagetables. */
    buffer.ptr = p;
    ret = hmm_dmirror_cmd(libc, self.fd0, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1581);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1582);

    /* Check what the device saw. */
    const m = libc.proc.readBytes(buffer.mirror, npages);
    assertByte(ctx, m[0], HMM_DMIRROR_PROT_ERROR, 'm[0]', 'HMM_DMIRROR_PROT_ERROR', 1586);
    assertByte(ctx, m[1], HMM_DMIRROR_PROT_ERROR, 'm[1]', 'HMM_DMIRROR_PROT_ERROR', 1587);
    assertByte(
      ctx,
      m[2],
      HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ,
      'm[2]',
      'HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ',
      1588,
    );
    assertByte(ctx, m[3], HMM_DMIRROR_PROT_READ, 'm[3]', 'HMM_DMIRROR_PROT_READ', 1589);
    assertByte(ctx, m[4], HMM_DMIRROR_PROT_WRITE, 'm[4]', 'HMM_DMIRROR_PROT_WRITE', 1590);
    if (!hmm_is_coherent_type(variant.device_number0)) {
      assertByte(
        ctx,
        m[5],
        HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE,
        'm[5]',
        'HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE',
        1592,
      );
      assertByte(ctx, m[6], HMM_DMIRROR_PROT_NONE, 'm[6]', 'HMM_DMIRROR_PROT_NONE', 1594);
    } else {
      assertByte(
        ctx,
        m[5],
        HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE,
        'm[5]',
        'HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE',
        1596,
      );
      assertByte(
        ctx,
        m[6],
        HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | HMM_DMIRROR_PROT_WRITE,
        'm[6]',
        'HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | HMM_DMIRROR_PROT_WRITE',
        1598,
      );
    }

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Test the hmm_range_fault() handling of large pages (PMD or PUD)
   * that should be mapped by a large page table entry.
   */
  hmm.TEST_F('compound', (ctx, self) => {
    const { libc, suite } = self.t;
    const default_hsize = default_huge_page_size(libc, suite.hugetlb);

    /* Skip test if we can't allocate a hugetlbfs page. */
    if (!hugetlb_free_default_pages(libc, suite.hugetlb)) return ctx.SKIP('Not enough huge pages');

    const size = ALIGN(TWOMEG, default_hsize);
    const npages = Math.floor(size / 2 ** self.page_shift);

    const buffer = newBuffer(ctx, libc, 1629);

    buffer.ptr = libc.mmap(0, size, RW, PRIV_ANON | MAP_HUGETLB, -1, 0);
    if (buffer.ptr === MAP_FAILED) {
      libc.free(buffer.addr);
      return;
    }

    buffer.size = size;
    buffer.mirror = libc.malloc(npages);
    assertNotNull(ctx, buffer.mirror, 'buffer->mirror', 1642);

    /* Initialize the pages the device will snapshot in buffer->ptr. */
    libc.fillInts(buffer.ptr, 0, size / SIZEOF_INT, (i) => i);

    /* Simulate a device snapshotting CPU pagetables. */
    let ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1650);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1651);

    /*
     * Check what the device saw.  The region is backed by a single huge
     * page that the device reports either at PMD or at PUD level depending
     * on the configured default hugepage size.  Determine that level from
     * the first page and require every page in the range to match it
     * exactly, so that a fragmented mapping mixing levels (or a missing
     * large-page bit) is still caught and reported with its actual value.
     */
    let m = libc.proc.readBytes(buffer.mirror, npages);
    let prot =
      HMM_DMIRROR_PROT_WRITE | (m[0] & HMM_DMIRROR_PROT_PUD ? HMM_DMIRROR_PROT_PUD : HMM_DMIRROR_PROT_PMD);
    assertBytesEq(ctx, m, npages, prot, 1666);

    /* Make the region read-only. */
    ret = libc.mprotect(buffer.ptr, size, PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1670);

    /* Simulate a device snapshotting CPU pagetables. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_SNAPSHOT, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1674);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1675);

    /*
     * Check what the device saw after mprotect(PROT_READ).  Same
     * approach as above: determine the mapping level from the first
     * page and require every page to match it exactly.
     */
    m = libc.proc.readBytes(buffer.mirror, npages);
    prot =
      HMM_DMIRROR_PROT_READ | (m[0] & HMM_DMIRROR_PROT_PUD ? HMM_DMIRROR_PROT_PUD : HMM_DMIRROR_PROT_PMD);
    assertBytesEq(ctx, m, npages, prot, 1687);

    libc.munmap(buffer.ptr, buffer.size);
    buffer.ptr = 0;
    hmm_buffer_free(libc, buffer);
  });

  /*
   * Test two devices reading the same memory (double mapped).
   */
  hmm2.TEST_F('double_map', (ctx, self) => {
    const { libc } = self.t;
    const npages = 6;
    const size = npages * 2 ** self.page_shift;
    const n = size / SIZEOF_INT;

    /* Reserve a range of addresses. */
    const buffer = allocBuffer(ctx, libc, size, size, RW, PRIV_ANON, -1, [1710, 1715, 1722]);

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Make region read-only. */
    let ret = libc.mprotect(buffer.ptr, size, PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1730);

    /* Simulate device 0 reading system memory. */
    ret = hmm_dmirror_cmd(libc, self.fd0, HMM_DMIRROR_READ, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1734);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1735);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 1736);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1740);

    /* Simulate device 1 reading system memory. */
    ret = hmm_dmirror_cmd(libc, self.fd1, HMM_DMIRROR_READ, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1744);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1745);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 1746);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1750);

    /* Migrate pages to device 1 and try to read from device 0. */
    ret = hmm_migrate_sys_to_dev(libc, self.fd1, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1754);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1755);

    ret = hmm_dmirror_cmd(libc, self.fd0, HMM_DMIRROR_READ, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1758);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1759);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 1760);

    /* Check what device 0 read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1764);

    hmm_buffer_free(libc, buffer);
  });
}

/** Models `for (i = 0; i < npages; ++i) ASSERT_EQ(m[i], prot);` with `unsigned char prot`. */
function assertBytesEq(
  ctx: Parameters<typeof assertByte>[0],
  m: Uint8Array,
  npages: number,
  prot: number,
  line: number,
): void {
  for (let i = 0; i < npages; ++i) {
    if (m[i] !== prot) ctx.ASSERT_EQ(unsigned(m[i], 8), unsigned(prot, 8), 'm[i]', 'prot', line);
  }
}
