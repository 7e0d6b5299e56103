/**
 * hmm-tests.c, third group (C lines 833-1337): file_read, file_write, migrate,
 * migrate_file_private, migrate_fault, migrate_release, migrate_shared, migrate_mixed (hmm2),
 * migrate_multiple.
 */

import {
  EINVAL,
  ENOENT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import {
  ALIGN,
  allocBuffer,
  assertInts,
  assertMapped,
  assertNotNull,
  type Fixtures,
  HMM_BUFFER_SIZE,
  hmm_buffer_free,
  hmm_create_file,
  hmm_dmirror_cmd,
  hmm_is_coherent_type,
  hmm_migrate_dev_to_sys,
  hmm_migrate_sys_to_dev,
  NTIMES,
  newBuffer,
  stdBuffer,
} from './common.js';
import { u64 } from './harness/index.js';
import { SIZEOF_INT } from './libc.js';
import { HMM_DMIRROR_READ, HMM_DMIRROR_RELEASE, HMM_DMIRROR_WRITE } from './uapi.js';

const RW = PROT_READ | PROT_WRITE;
const PRIV_ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** Registers this group's TEST_F()s in file order. */
export function registerMigrate({ hmm, hmm2 }: Fixtures): void {
  /*
   * Read mmap'ed file memory.
   */
  hmm.TEST_F('file_read', (ctx, self) => {
    const { libc } = self.t;
    const npages = Math.floor(ALIGN(HMM_BUFFER_SIZE, self.page_size) / 2 ** self.page_shift);
    ctx.ASSERT_NE(u64(npages), 0, 'npages', '0', 848);
    const size = npages * 2 ** self.page_shift;
    const n = size / SIZEOF_INT;

    const fd = hmm_create_file(libc, size);
    ctx.ASSERT_GE(fd, 0, 'fd', '0', 852);

    const buffer = newBuffer(ctx, libc, 855);

    buffer.fd = fd;
    buffer.size = size;
    buffer.mirror = libc.malloc(size);
    assertNotNull(ctx, buffer.mirror, 'buffer->mirror', 860);

    /* Write initial contents of the file. */
    libc.fillInts(buffer.mirror, 0, n, (i) => i);
    const len = libc.pwrite(fd, buffer.mirror, size, 0);
    ctx.ASSERT_EQ(len, u64(size), 'len', 'size', 866);
    libc.memset(buffer.mirror, 0, size);

    buffer.ptr = libc.mmap(0, size, PROT_READ, MAP_SHARED, buffer.fd, 0);
    assertMapped(ctx, buffer.ptr, 'buffer->ptr', 873);

    /* Simulate a device reading system memory. */
    const ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_READ, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 877);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 878);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 879);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 883);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Write mmap'ed file memory.
   */
  hmm.TEST_F('file_write', (ctx, self) => {
    const { libc } = self.t;
    const npages = Math.floor(ALIGN(HMM_BUFFER_SIZE, self.page_size) / 2 ** self.page_shift);
    ctx.ASSERT_NE(u64(npages), 0, 'npages', '0', 903);
    const size = npages * 2 ** self.page_shift;
    const n = size / SIZEOF_INT;

    const fd = hmm_create_file(libc, size);
    ctx.ASSERT_GE(fd, 0, 'fd', '0', 907);

    const buffer = allocBuffer(ctx, libc, size, size, RW, MAP_SHARED, fd, [910, 915, 921]);

    /* Initialize data that the device will write to buffer->ptr. */
    libc.fillInts(buffer.mirror, 0, n, (i) => i);

    /* Simulate a device writing system memory. */
    const ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_WRITE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 929);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 930);
    ctx.ASSERT_EQ(u64(buffer.faults), 1, 'buffer->faults', '1', 931);

    /* Check what the device wrote. */
    assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 935);

    /* Check that the device also wrote the file. */
    const len = libc.pread(fd, buffer.mirror, size, 0);
    ctx.ASSERT_EQ(len, u64(size), 'len', 'size', 939);
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 941);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate anonymous memory to device private memory.
   */
  hmm.TEST_F('migrate', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages, size } = stdBuffer(ctx, self, RW, PRIV_ANON, [959, 963, 968, 974]);
    const n = size / SIZEOF_INT;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Migrate memory to device. */
    const ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 982);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 983);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 987);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate private file memory to device private memory.
   */
  hmm.TEST_F('migrate_file_private', (ctx, self) => {
    const { libc } = self.t;
    const npages = Math.floor(ALIGN(HMM_BUFFER_SIZE, self.page_size) / 2 ** self.page_shift);
    ctx.ASSERT_NE(u64(npages), 0, 'npages', '0', 1006);
    const size = npages * 2 ** self.page_shift;
    const n = size / SIZEOF_INT;

    const fd = hmm_create_file(libc, size);
    ctx.ASSERT_GE(fd, 0, 'fd', '0', 1010);

    const buffer = allocBuffer(ctx, libc, size, size, RW, MAP_PRIVATE, fd, [1013, 1018, 1024]);

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Migrate memory to device. */
    const ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1032);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1033);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1037);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate anonymous memory to device private memory and fault some of it back
   * to system memory, then try migrating the resulting mix of system and device
   * private memory to the device.
   */
  hmm.TEST_F('migrate_fault', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages, size } = stdBuffer(ctx, self, RW, PRIV_ANON, [1057, 1061, 1066, 1072]);
    const n = size / SIZEOF_INT;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Migrate memory to device. */
    let ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1080);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1081);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1085);

    /* Fault half the pages back to system memory and check them. */
    assertInts(ctx, libc, buffer.ptr, 0, size / (2 * SIZEOF_INT), (i) => i, 'ulong', 'ptr[i]', 'i', 1089);

    /* Migrate memory to the device again. */
    ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1093);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1094);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1098);

    hmm_buffer_free(libc, buffer);
  });

  hmm.TEST_F('migrate_release', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages, size } = stdBuffer(ctx, self, RW, PRIV_ANON, [1113, 1117, 1122, 1126]);
    const n = size / SIZEOF_INT;

    /* Initialize buffer in system memory. */
    libc.fillInts(buffer.ptr, 0, n, (i) => i);

    /* Migrate memory to device. */
    let ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1134);
    ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1135);

    /* Check what the device read. */
    assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1139);

    /* Release device memory. */
    ret = hmm_dmirror_cmd(libc, self.fd, HMM_DMIRROR_RELEASE, buffer, npages);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1143);

    /* Fault pages back to system memory and check them. */
    assertInts(ctx, libc, buffer.ptr, 0, size / (2 * SIZEOF_INT), (i) => i, 'ulong', 'ptr[i]', 'i', 1147);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate anonymous shared memory to device private memory.
   */
  hmm.TEST_F('migrate_shared', (ctx, self) => {
    const { libc } = self.t;
    const { buffer, npages } = stdBuffer(ctx, self, RW, MAP_SHARED | MAP_ANONYMOUS, [1163, 1167, 1172, 1178]);

    /* Migrate memory to device. */
    const ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
    ctx.ASSERT_EQ(ret, -ENOENT, 'ret', '-ENOENT', 1182);

    hmm_buffer_free(libc, buffer);
  });

  /*
   * Try to migrate various memory types to device private memory.
   */
  hmm2.TEST_F('migrate_mixed', (ctx, self) => {
    const { libc } = self.t;
    const ps = self.page_size;
    const npages = 6;
    const size = npages * 2 ** self.page_shift;

    /* Reserve a range of addresses. */
    const buffer = allocBuffer(ctx, libc, size, size, PROT_NONE, PRIV_ANON, -1, [1204, 1209, 1216]);
    const p = buffer.ptr;

    /* Migrating a protected area should be an error. */
    let ret = hmm_migrate_sys_to_dev(libc, self.fd1, buffer, npages);
    ctx.ASSERT_EQ(ret, -EINVAL, 'ret', '-EINVAL', 1221);

    /* Punch a hole after the first page address. */
    ret = libc.munmap(buffer.ptr + ps, ps);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1225);

    /* We expect an error if the vma doesn't cover the range. */
    ret = hmm_migrate_sys_to_dev(libc, self.fd1, buffer, 3);
    ctx.ASSERT_EQ(ret, -EINVAL, 'ret', '-EINVAL', 1229);

    /* Page 2 will be a read-only zero page. */
    ret = libc.mprotect(buffer.ptr + 2 * ps, ps, PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1234);
    const val = (libc.intAt(buffer.ptr + 2 * ps, 0) + 3) | 0;
    ctx.ASSERT_EQ(val, 3, 'val', '3', 1237);

    /* Page 3 will be read-only. */
    ret = libc.mprotect(buffer.ptr + 3 * ps, ps, PROT_READ | PROT_WRITE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1242);
    libc.setIntAt(buffer.ptr + 3 * ps, 0, val);
    ret = libc.mprotect(buffer.ptr + 3 * ps, ps, PROT_READ);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1247);

    /* Page 4-5 will be read-write. */
    ret = libc.mprotect(buffer.ptr + 4 * ps, 2 * ps, PROT_READ | PROT_WRITE);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1252);
    libc.setIntAt(buffer.ptr + 4 * ps, 0, val);
    libc.setIntAt(buffer.ptr + 5 * ps, 0, val);

    /* Now try to migrate pages 2-5 to device 1. */
    buffer.ptr = p + 2 * ps;
    ret = hmm_migrate_sys_to_dev(libc, self.fd1, buffer, 4);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1261);
    ctx.ASSERT_EQ(u64(buffer.cpages), 4, 'buffer->cpages', '4', 1262);

    /* Page 5 won't be migrated to device 0 because it's on device 1. */
    buffer.ptr = p + 5 * ps;
    ret = hmm_migrate_sys_to_dev(libc, self.fd0, buffer, 1);
    ctx.ASSERT_EQ(ret, -ENOENT, 'ret', '-ENOENT', 1267);
    buffer.ptr = p;

    buffer.ptr = p;
    hmm_buffer_free(libc, buffer);
  });

  /*
   * Migrate anonymous memory to device memory and back to system memory
   * multiple times. In case of private zone configuration, this is done
   * through fault pages accessed by CPU. In case of coherent zone configuration,
   * the pages from the device should be explicitly migrated back to system memory.
   * The reason is Coherent device zone has coherent access by CPU, therefore
   * it will not generate any page fault.
   */
  hmm.TEST_F('migrate_multiple', (ctx, self, variant) => {
    const { libc } = self.t;
    const npages = Math.floor(ALIGN(HMM_BUFFER_SIZE, self.page_size) / 2 ** self.page_shift);
    ctx.ASSERT_NE(u64(npages), 0, 'npages', '0', 1293);
    const size = npages * 2 ** self.page_shift;
    const n = size / SIZEOF_INT;

    for (let c = 0; c < NTIMES; c++) {
      const buffer = allocBuffer(ctx, libc, size, size, RW, PRIV_ANON, -1, [1298, 1303, 1309]);

      /* Initialize buffer in system memory. */
      libc.fillInts(buffer.ptr, 0, n, (i) => i);

      /* Migrate memory to device. */
      let ret = hmm_migrate_sys_to_dev(libc, self.fd, buffer, npages);
      ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1317);
      ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1318);

      /* Check what the device read. */
      assertInts(ctx, libc, buffer.mirror, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1322);

      /* Migrate back to system memory and check them. */
      if (hmm_is_coherent_type(variant.device_number)) {
        ret = hmm_migrate_dev_to_sys(libc, self.fd, buffer, npages);
        ctx.ASSERT_EQ(ret, 0, 'ret', '0', 1327);
        ctx.ASSERT_EQ(u64(buffer.cpages), u64(npages), 'buffer->cpages', 'npages', 1328);
      }

      assertInts(ctx, libc, buffer.ptr, 0, n, (i) => i, 'ulong', 'ptr[i]', 'i', 1332);

      hmm_buffer_free(libc, buffer);
    }
  });
}
