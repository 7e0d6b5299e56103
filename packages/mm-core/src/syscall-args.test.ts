import { describe, expect, it } from 'vitest';
import {
  EBADF,
  EFAULT,
  EFBIG,
  EINVAL,
  ENOMEM,
  EPERM,
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
} from './constants.js';
import { SignalDelivered } from './errors.js';
import { GUP_BASIC_TEST } from './gup-test.js';
import { argInt, argLong, argULong, MAX_RW_COUNT, MODEL_MAX_FILESIZE } from './syscall-args.js';
import { machine } from './testing/helpers.js';
import { machineState } from './testing/state.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
/** Values no 64-bit register can hold, as a plain JavaScript caller may pass them. */
const GARBAGE: unknown[] = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  -Infinity,
  1.5,
  undefined,
  null,
  '4096',
  4096n,
  {},
  2 ** 64,
  -(2 ** 64),
];

/** Calls a syscall with arguments typed as the caller typed them (a JavaScript caller types nothing). */
const js = <A extends unknown[]>(f: (...a: never[]) => number, ...args: A): number =>
  (f as unknown as (...a: A) => number)(...args);

function setup() {
  const k = machine();
  const p = k.spawn();
  const a = p.mmap(0, 16 * PAGE_SIZE, RW, ANON);
  p.writeI32(a, 7);
  return { k, p, a };
}

describe('the syscall ABI: JavaScript values as C arguments', () => {
  it('takes integers in [-2^63, 2^64) as registers and refuses everything else', () => {
    expect(argULong(-1)).toBe(2n ** 64n - 1n);
    expect(argULong(2 ** 63)).toBe(2n ** 63n);
    expect(argLong(2 ** 63)).toBe(-(2n ** 63n));
    expect(argInt(2 ** 32 + 5)).toBe(5);
    expect(argInt(-1)).toBe(-1);
    for (const g of GARBAGE) {
      expect(argULong(g)).toBeUndefined();
      expect(argInt(g)).toBeUndefined();
    }
  });

  it('refuses every value no register can hold with -EINVAL and changes nothing', () => {
    const { k, p, a } = setup();
    const fd = p.open('/tmp/f', O_CREAT | O_RDWR);
    const before = machineState(k);
    for (const g of GARBAGE) {
      expect(js(p.mmap.bind(p), g, PAGE_SIZE, RW, ANON)).toBe(-EINVAL);
      expect(js(p.mmap.bind(p), 0, g, RW, ANON)).toBe(-EINVAL);
      // (undefined for the optional offset is the default, 0.)
      if (g !== undefined) expect(js(p.mmap.bind(p), 0, PAGE_SIZE, RW, ANON, -1, g)).toBe(-EINVAL);
      expect(js(p.munmap.bind(p), a, g)).toBe(-EINVAL);
      expect(js(p.mprotect.bind(p), g, PAGE_SIZE, PROT_READ)).toBe(-EINVAL);
      expect(js(p.mprotect.bind(p), a, PAGE_SIZE, g)).toBe(-EINVAL);
      expect(js(p.madvise.bind(p), a, g, MADV_DONTNEED)).toBe(-EINVAL);
      expect(js(p.madvise.bind(p), a, PAGE_SIZE, g)).toBe(-EINVAL);
      expect(js(p.mremap.bind(p), a, PAGE_SIZE, g, MREMAP_MAYMOVE)).toBe(-EINVAL);
      expect(js(p.pread.bind(p), fd, new Uint8Array(8), g, 0)).toBe(-EINVAL);
      expect(js(p.pwrite.bind(p), fd, new Uint8Array(8), 8, g)).toBe(-EINVAL);
      expect(js(p.ftruncate.bind(p), fd, g)).toBe(-EINVAL);
      expect(js(p.ioctl.bind(p), fd, 0, g)).toBe(-EINVAL);
      expect(js(p.close.bind(p), g)).toBe(-EINVAL);
      expect(js(p.open.bind(p), '/tmp/f', g)).toBe(-EINVAL);
      expect(js(p.kill.bind(p), g, 0)).toBe(-EINVAL);
    }
    expect(machineState(k)).toBe(before);
    expect(p.readI32(a)).toBe(7);
  });
});

describe('lengths, offsets and addresses the kernel refuses', () => {
  it('mmap: do_mmap() and __get_unmapped_area() errnos', () => {
    const { k, p, a } = setup();
    const before = machineState(k);
    expect(p.mmap(0, 0, RW, ANON)).toBe(-EINVAL);
    expect(p.mmap(0, -1, RW, ANON)).toBe(-ENOMEM); // PAGE_ALIGN((size_t)-1) == 0
    expect(p.mmap(0, -PAGE_SIZE, RW, ANON)).toBe(-ENOMEM); // > TASK_SIZE
    expect(p.mmap(0, TASK_SIZE + 1, RW, ANON)).toBe(-ENOMEM);
    expect(p.mmap(0, PAGE_SIZE, RW, ANON, -1, 1)).toBe(-EINVAL); // offset not page-aligned
    expect(p.mmap(TASK_SIZE, PAGE_SIZE, RW, ANON | MAP_FIXED)).toBe(-ENOMEM);
    expect(p.mmap(TASK_SIZE - PAGE_SIZE, 2 * PAGE_SIZE, RW, ANON | MAP_FIXED)).toBe(-ENOMEM);
    expect(p.mmap(-PAGE_SIZE, PAGE_SIZE, RW, ANON | MAP_FIXED_NOREPLACE)).toBe(-ENOMEM);
    // An address in the top MAX_ERRNO values comes back as it is (IS_ERR_VALUE() in
    // __get_unmapped_area()): -1 reads as -EPERM.
    expect(p.mmap(-1, PAGE_SIZE, RW, ANON | MAP_FIXED)).toBe(-EPERM);
    expect(machineState(k)).toBe(before);
    // A hint beyond the address space is only a hint; a private anonymous mapping ignores the
    // offset (sys_mmap() only checks its alignment).
    const b = p.mmap(2 ** 60, PAGE_SIZE, RW, ANON, -1, -PAGE_SIZE);
    expect(b).toBeGreaterThan(0);
    expect(b).toBeLessThan(TASK_SIZE);
    p.writeI32(b, 1);
    expect(p.readI32(a)).toBe(7);
  });

  it('mmap of a tmpfs file: an offset whose last page does not fit in loff_t is -EOVERFLOW', () => {
    const { p } = setup();
    const fd = p.open('/tmp/g', O_CREAT | O_RDWR);
    expect(p.mmap(0, PAGE_SIZE, RW, MAP_SHARED, fd, 2 ** 63)).toBe(-75);
    expect(p.mmap(0, PAGE_SIZE, RW, MAP_SHARED, fd, 2 ** 62)).toBeGreaterThan(0);
  });

  it('munmap, mprotect and madvise: do_vmi_munmap(), do_mprotect_pkey(), check_input_range()', () => {
    const { k, p, a } = setup();
    const before = machineState(k);
    expect(p.munmap(a, -5)).toBe(-EINVAL);
    expect(p.munmap(a, TASK_SIZE)).toBe(-EINVAL);
    expect(p.munmap(TASK_SIZE + PAGE_SIZE, PAGE_SIZE)).toBe(-EINVAL);
    expect(p.munmap(-PAGE_SIZE, PAGE_SIZE)).toBe(-EINVAL);
    expect(p.mprotect(a, -1, PROT_READ)).toBe(-ENOMEM);
    expect(p.mprotect(a, -2 * PAGE_SIZE, PROT_READ)).toBe(-ENOMEM); // the end wraps below start
    expect(p.mprotect(a, 2 ** 60, PROT_READ)).toBe(-ENOMEM);
    expect(p.mprotect(TASK_SIZE + PAGE_SIZE, PAGE_SIZE, PROT_READ)).toBe(-ENOMEM);
    expect(p.mprotect(a, 0, 0x40)).toBe(0); // a zero length returns before prot is looked at
    expect(p.madvise(a, -1, MADV_DONTNEED)).toBe(-EINVAL);
    expect(p.madvise(a, -2 * PAGE_SIZE, MADV_DONTNEED)).toBe(-EINVAL);
    expect(p.madvise(2 ** 60, PAGE_SIZE, MADV_DONTNEED)).toBe(-ENOMEM);
    expect(p.madvise(TASK_SIZE + PAGE_SIZE, 0, MADV_DONTNEED)).toBe(0);
    expect(machineState(k)).toBe(before);
  });

  it('mremap: a negative new length to 0x800000000000 is -EINVAL and makes no VMA', () => {
    const { k, p, a } = setup();
    const before = machineState(k);
    const flags = MREMAP_MAYMOVE | MREMAP_FIXED;
    expect(p.mremap(a, PAGE_SIZE, -PAGE_SIZE, flags, 0x800000000000)).toBe(-EINVAL);
    expect(p.mremap(a, PAGE_SIZE, -1, flags, 0x800000000000)).toBe(-EINVAL); // page-aligns to 0
    expect(p.mremap(a, PAGE_SIZE, PAGE_SIZE, flags, 0x800000000000)).toBe(-EINVAL);
    expect(p.mremap(a, PAGE_SIZE, PAGE_SIZE, flags, -PAGE_SIZE)).toBe(-EINVAL);
    // check_mremap_params(): a new length above TASK_SIZE is -EINVAL, moving or not.
    expect(p.mremap(a, 16 * PAGE_SIZE, 2 ** 48, MREMAP_MAYMOVE)).toBe(-EINVAL);
    expect(p.mremap(a, 16 * PAGE_SIZE, -PAGE_SIZE, 0)).toBe(-EINVAL);
    expect(p.mremap(a, -1, PAGE_SIZE, MREMAP_MAYMOVE)).toBe(-EINVAL); // old_len 0 of a private mapping
    expect(p.mremap(TASK_SIZE + PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, 0)).toBe(-14); // no VMA there: -EFAULT
    expect(machineState(k)).toBe(before);
    expect(p.vmas.every((v) => v.start < v.end && v.end <= TASK_SIZE)).toBe(true);
  });

  it('pread: a huge count is clamped to MAX_RW_COUNT, never a host allocation of that size', () => {
    const { k, p, a } = setup();
    const fd = p.open('/tmp/h', O_CREAT | O_RDWR);
    expect(p.pwrite(fd, new Uint8Array([1, 2, 3, 4]), 4, 0)).toBe(4);
    const before = machineState(k);
    // A count past the end of a host buffer, or past the user address space: -EFAULT.
    expect(p.pread(fd, new Uint8Array(8), 2 ** 40, 0)).toBe(-EFAULT);
    expect(p.pread(fd, a, 2 ** 62, 0)).toBe(-EFAULT);
    expect(p.pread(fd, a, -1, 0)).toBe(-EFAULT);
    // A negative position is -EINVAL even before the descriptor is looked up.
    expect(p.pread(999, a, 4, -1)).toBe(-EINVAL);
    expect(p.pread(999, a, 4, 0)).toBe(-EBADF);
    // position + count must fit in loff_t.
    expect(p.pread(fd, a, 4, 2 ** 63 - 1)).toBe(-EINVAL);
    expect(p.pread(fd, a, 4, 2 ** 62)).toBe(0);
    expect(machineState(k)).toBe(before);
    // A count that passes access_ok() is cut to MAX_RW_COUNT and then to the file.
    expect(MAX_RW_COUNT).toBe(0x7ffff000);
    expect(p.pread(fd, a, 2 ** 40, 0)).toBe(4);
    expect([...p.readBytes(a, 4)]).toEqual([1, 2, 3, 4]);
  });

  it('pwrite and ftruncate: -EFBIG past the file size limit, -EINVAL for negative lengths', () => {
    const { k, p } = setup();
    const fd = p.open('/tmp/w', O_CREAT | O_RDWR);
    const ro = p.open('/tmp/w', O_RDONLY);
    const before = machineState(k);
    expect(p.pwrite(fd, new Uint8Array(4), 4, MODEL_MAX_FILESIZE)).toBe(-EFBIG);
    expect(p.pwrite(fd, new Uint8Array(4), 0, MODEL_MAX_FILESIZE)).toBe(0);
    expect(p.pwrite(fd, new Uint8Array(4), 4, -4)).toBe(-EINVAL);
    expect(p.ftruncate(999, -1)).toBe(-EINVAL);
    expect(p.ftruncate(fd, 2 ** 60)).toBe(-EFBIG);
    expect(p.ftruncate(ro, PAGE_SIZE)).toBe(-EINVAL);
    expect(machineState(k)).toBe(before);
    // A write that ends past the limit is cut short there.
    expect(p.pwrite(fd, new Uint8Array(8), 8, MODEL_MAX_FILESIZE - 4)).toBe(4);
  });

  it('user addresses outside the user half fault instead of aliasing low addresses', () => {
    const { p, a } = setup();
    const gup = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    expect(p.ioctl(gup, GUP_BASIC_TEST, 2 ** 48 + a)).toBe(-EFAULT);
    expect(p.ioctl(gup, GUP_BASIC_TEST, -1)).toBe(-EFAULT);
    // 2^48 + a has the same page-table indices as a: the access must not reach a's page.
    expect(() => p.readI32(2 ** 48 + a)).toThrow(SignalDelivered);
  });

  it('/proc/self/pagemap has no entries at or beyond TASK_SIZE', () => {
    const { p } = setup();
    const fd = p.open('/proc/self/pagemap', O_RDONLY);
    expect(p.pread(fd, new Uint8Array(16), 16, (TASK_SIZE / PAGE_SIZE) * 8)).toBe(0);
    expect(p.pread(fd, new Uint8Array(16), 16, (TASK_SIZE / PAGE_SIZE - 1) * 8)).toBe(8);
  });
});
