/**
 * The syscall ABI at the user-space boundary: how a JavaScript value passed where C passes a
 * register becomes the C type the kernel function declares, and the argument checks the
 * kernel makes before it touches the mm (kept in one place so every entry path shares them).
 *
 * A syscall argument is a 64-bit register. A JavaScript number that is an integer in
 * [-2^63, 2^64) is that register's value: a negative one is what C's conversion of a `long`
 * makes of it (size_t -1 is 2^64 - 1), so `munmap(addr, -5)` fails exactly as the C call does.
 * Anything else (a fraction, NaN, ±Infinity, a number outside that range, undefined, a string,
 * a BigInt) cannot come out of a register and is refused with -EINVAL before the kernel runs.
 * The checks do their arithmetic in 64-bit unsigned BigInt, as the kernel's unsigned long
 * arithmetic wraps, and hand the model's paths JavaScript numbers only once they are known to
 * be small (at most TASK_SIZE for lengths and addresses).
 */
import {
  EFAULT,
  EINVAL,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  TASK_SIZE,
} from './constants.js';

const U64 = 1n << 64n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const PAGE = BigInt(PAGE_SIZE);
const TASK = BigInt(TASK_SIZE);
/** Models MAX_ERRNO (include/linux/err.h). */
const MAX_ERRNO = 4095n;

/** Models MAX_RW_COUNT (include/linux/fs.h): INT_MAX & PAGE_MASK, the most one read or write moves. */
export const MAX_RW_COUNT = 0x7fff_f000;

/**
 * Models the model's s_maxbytes of tmpfs (MAX_LFS_FILESIZE, include/linux/fs.h, is 2^63 - 1): file
 * sizes and offsets stay exact JavaScript integers, so the model's files end at 2^53 - PAGE_SIZE.
 * A write or truncate beyond it fails with -EFBIG as it would beyond the kernel's limit.
 */
export const MODEL_MAX_FILESIZE = Number.MAX_SAFE_INTEGER + 1 - PAGE_SIZE;

/** Models the raw 64-bit register of a syscall argument: the integer value, or undefined when v cannot be one. */
function register(v: unknown): bigint | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v)) return undefined;
  const b = BigInt(v);
  return b >= I64_MIN && b < U64 ? b : undefined;
}

/**
 * Models an `unsigned long` / `size_t` syscall argument (SYSCALL_DEFINE's __SC_CAST of the
 * register): the value in [0, 2^64), a negative integer taken modulo 2^64, or undefined (the
 * caller returns -EINVAL) for a value no register can hold.
 */
export function argULong(v: unknown): bigint | undefined {
  const r = register(v);
  return r === undefined ? undefined : BigInt.asUintN(64, r);
}

/** Models a `long` / `loff_t` syscall argument: the register as a signed 64-bit value, or undefined. */
export function argLong(v: unknown): bigint | undefined {
  const r = register(v);
  return r === undefined ? undefined : BigInt.asIntN(64, r);
}

/** Models an `int` syscall argument: the low 32 bits of the register, signed, or undefined. */
export function argInt(v: unknown): number | undefined {
  const r = register(v);
  return r === undefined ? undefined : Number(BigInt.asIntN(32, r));
}

/** Models an `unsigned int` syscall argument (a file descriptor, an ioctl command), or undefined. */
export function argUInt(v: unknown): number | undefined {
  const r = register(v);
  return r === undefined ? undefined : Number(BigInt.asUintN(32, r));
}

/** Models PAGE_ALIGN() on an unsigned long: rounds up, wrapping to 0 past 2^64 - PAGE_SIZE. */
export function pageAlignU64(x: bigint): bigint {
  return BigInt.asUintN(64, x + PAGE - 1n) & ~(PAGE - 1n);
}

/** Models offset_in_page(). */
function offsetInPage(x: bigint): boolean {
  return (x & (PAGE - 1n)) !== 0n;
}

/** Models IS_ERR_VALUE(): an unsigned long in the top MAX_ERRNO values is an error code. */
function isErrValue(x: bigint): boolean {
  return x >= U64 - MAX_ERRNO;
}

/**
 * Models access_ok() on x86-64 (arch/x86/include/asm/uaccess_64.h): [addr, addr + size) lies
 * below the top of the user address space and does not wrap.
 */
export function accessOk(addr: bigint, size: bigint): boolean {
  const sum = addr + size;
  return sum <= TASK && sum < U64;
}

/** Models the arguments of mmap(2) once sys_mmap() and do_mmap() have checked them. */
export interface MmapArgs {
  /** The hint, or the MAP_FIXED address (below TASK_SIZE). */
  readonly addr: number;
  /** The length as passed (at most TASK_SIZE; do_mmap() page-aligns it). */
  readonly len: number;
  readonly prot: number;
  readonly flags: number;
  readonly fd: number;
  /** The byte offset (page-aligned, below 2^64: an exact JavaScript integer). */
  readonly offset: number;
}

/**
 * Models the argument checks of mmap(2): sys_mmap() (arch/x86/kernel/sys_x86_64.c, -EINVAL for
 * an offset that is not page-aligned), ksys_mmap_pgoff() (a MAP_HUGETLB length is aligned to the
 * huge page size) and the front of do_mmap() and __get_unmapped_area() (mm/mmap.c): a zero
 * length is -EINVAL, one that page-aligns to 0 or exceeds TASK_SIZE is -ENOMEM; a MAP_FIXED
 * address that is an error value is returned as it is, one that does not leave room for the
 * length below TASK_SIZE is -ENOMEM and one that is not page-aligned -EINVAL. A hint outside
 * the address space is ignored. Returns the checked arguments or -errno.
 */
export function mmapArgs(
  addr: unknown,
  length: unknown,
  prot: unknown,
  flags: unknown,
  fd: unknown,
  offset: unknown,
): MmapArgs | number {
  const a = argULong(addr);
  const l = argULong(length);
  const p = argULong(prot);
  const f = argULong(flags);
  const d = argULong(fd);
  const o = argULong(offset);
  if (a === undefined || l === undefined || p === undefined || f === undefined) return -EINVAL;
  if (d === undefined || o === undefined) return -EINVAL;
  if (offsetInPage(o)) return -EINVAL;
  const fl = Number(f & 0xffff_ffffn);
  let len = l;
  if (fl & MAP_HUGETLB && fl & MAP_ANONYMOUS) {
    const huge = BigInt(PMD_SIZE);
    len = BigInt.asUintN(64, len + huge - 1n) & ~(huge - 1n);
  }
  if (len === 0n) return -EINVAL;
  const aligned = pageAlignU64(len);
  if (aligned === 0n || aligned > TASK) return -ENOMEM;
  if (fl & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
    if (isErrValue(a)) return Number(a - U64);
    if (a > TASK - aligned) return -ENOMEM;
    if (offsetInPage(a)) return -EINVAL;
  }
  // Prot bits beyond the 32 the model keeps are unknown bits: the model's prot check refuses them.
  if (p > 0xffff_ffffn) return -EINVAL;
  return {
    addr: a > TASK ? 0 : Number(a),
    len: Number(len),
    prot: Number(p),
    flags: fl,
    fd: Number(d & 0xffff_ffffn),
    offset: Number(o),
  };
}

/** Models a checked user range [start, end) (start and page-aligned end, at most TASK_SIZE). */
export interface UserRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Models the checks of do_vmi_munmap() (mm/vma.c): -EINVAL unless start is page-aligned and at
 * most TASK_SIZE, len at most TASK_SIZE - start, and the page-aligned range is not empty.
 */
export function munmapArgs(addr: unknown, len: unknown): UserRange | number {
  const s = argULong(addr);
  const l = argULong(len);
  if (s === undefined || l === undefined) return -EINVAL;
  if (offsetInPage(s) || s > TASK || l > TASK - s) return -EINVAL;
  const end = s + pageAlignU64(l);
  if (end === s) return -EINVAL;
  return { start: Number(s), end: Number(end) };
}

/**
 * Models the checks at the top of do_mprotect_pkey() (mm/mprotect.c): -EINVAL for a start that
 * is not page-aligned, 0 for a zero length, -ENOMEM when the page-aligned end wraps. Returns the
 * range (an end beyond TASK_SIZE as Infinity: no VMA reaches it), 0 (nothing to do) or -errno.
 */
export function mprotectArgs(addr: unknown, len: unknown): UserRange | number {
  const s = argULong(addr);
  const l = argULong(len);
  if (s === undefined || l === undefined) return -EINVAL;
  if (offsetInPage(s)) return -EINVAL;
  if (l === 0n) return 0;
  const end = BigInt.asUintN(64, s + pageAlignU64(l));
  if (end <= s) return -ENOMEM;
  return { start: Number(s), end: end > TASK ? Number.POSITIVE_INFINITY : Number(end) };
}

/**
 * Models check_input_range() of madvise (mm/madvise.c): -EINVAL for a start that is not
 * page-aligned, a length that page-aligns from a small negative value to 0, or a range that
 * wraps. Returns the range (end clamped to the top of the address space: nothing is mapped
 * above it, so the walk sees the same VMAs and holes; a non-empty range that starts there is
 * all hole, -ENOMEM as the walk reports it) or -errno.
 */
export function madviseArgs(addr: unknown, len: unknown): UserRange | number {
  const s = argULong(addr);
  const l = argULong(len);
  if (s === undefined || l === undefined) return -EINVAL;
  if (offsetInPage(s)) return -EINVAL;
  const aligned = pageAlignU64(l);
  if (l !== 0n && aligned === 0n) return -EINVAL;
  const end = s + aligned;
  if (end >= U64) return -EINVAL;
  const top = TASK + PAGE;
  if (end === s) return { start: 0, end: 0 };
  if (s >= top) return -ENOMEM;
  return { start: Number(s), end: end > top ? Number(top) : Number(end) };
}

/** Models the arguments of mremap(2) (struct vma_remap_struct) once check_mremap_params() has checked them. */
export interface MremapArgs {
  readonly addr: number;
  /** PAGE_ALIGN(old_len): at most TASK_SIZE, or Infinity for a larger one (no VMA is that long). */
  readonly oldLen: number;
  /** PAGE_ALIGN(new_len): non-zero; Infinity when larger than TASK_SIZE. */
  readonly newLen: number;
  readonly flags: number;
  /** The new address (page-aligned when MREMAP_FIXED); Infinity when beyond TASK_SIZE. */
  readonly newAddr: number;
}

/**
 * Models check_mremap_params() (mm/mremap.c): -EINVAL for unknown flags, an old address that is
 * not page-aligned, a new length that page-aligns to 0, and (when a new address is implied by
 * MREMAP_FIXED or MREMAP_DONTUNMAP) a new address that is not page-aligned, a missing
 * MREMAP_MAYMOVE, or MREMAP_DONTUNMAP with different lengths; then both lengths are
 * page-aligned. Lengths and a new address beyond TASK_SIZE are passed on as Infinity: the
 * checks under the mmap_lock refuse them with the kernel's errno (mremap_to(): -EINVAL;
 * growing in place or by a move: -ENOMEM).
 */
export function mremapArgs(
  addr: unknown,
  oldLen: unknown,
  newLen: unknown,
  flags: unknown,
  newAddr: unknown,
): MremapArgs | number {
  const a = argULong(addr);
  const ol = argULong(oldLen);
  const nl = argULong(newLen);
  const f = argULong(flags);
  const na = argULong(newAddr);
  if (a === undefined || ol === undefined || nl === undefined || f === undefined || na === undefined)
    return -EINVAL;
  if (f & ~BigInt(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) return -EINVAL;
  const fl = Number(f);
  if (offsetInPage(a)) return -EINVAL;
  const nLen = pageAlignU64(nl);
  if (nLen === 0n) return -EINVAL;
  if (fl & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
    if (offsetInPage(na)) return -EINVAL;
    if (!(fl & MREMAP_MAYMOVE)) return -EINVAL;
    if (fl & MREMAP_DONTUNMAP && ol !== nl) return -EINVAL;
  }
  const oLen = pageAlignU64(ol);
  const small = (x: bigint) => (x > TASK ? Number.POSITIVE_INFINITY : Number(x));
  return { addr: small(a), oldLen: small(oLen), newLen: small(nLen), flags: fl, newAddr: small(na) };
}

/** Models the registers of pread64(2)/pwrite64(2): fd (unsigned int), buf, count (size_t), pos (loff_t). */
export interface RwRegs {
  readonly fd: number;
  /** A user address, or a host buffer (the model's extension for host code). */
  readonly buf: bigint | Uint8Array;
  readonly count: bigint;
  readonly pos: bigint;
}

/** Models the registers of pread64(2)/pwrite64(2) ({@link RwRegs}), or -EINVAL for a value no register holds. */
export function rwRegs(fd: unknown, buf: unknown, count: unknown, pos: unknown): RwRegs | number {
  const f = argUInt(fd);
  const b = buf instanceof Uint8Array ? buf : argULong(buf);
  const c = argULong(count);
  const p = argLong(pos);
  if (f === undefined || b === undefined || c === undefined || p === undefined) return -EINVAL;
  return { fd: f, buf: b, count: c, pos: p };
}

/** Models the arguments of pread64(2)/pwrite64(2) once vfs_read()/vfs_write() have checked them. */
export interface RwArgs {
  /** The user address (below TASK_SIZE), or the host buffer. */
  readonly buf: number | Uint8Array;
  /** The count, clamped to MAX_RW_COUNT. */
  readonly count: number;
  /** The file position (0 ≤ pos; a huge one is passed as MODEL_MAX_FILESIZE + PAGE_SIZE). */
  readonly pos: number;
}

/**
 * Models the buffer, count and position checks of vfs_read()/vfs_write() (fs/read_write.c),
 * made after ksys_pread64() refused a negative position with -EINVAL and looked the descriptor
 * up: a buffer that fails access_ok() is -EFAULT (a host buffer shorter than the count too, as a
 * copy past its end would fault), rw_verify_area() refuses a count that is negative as ssize_t
 * or a position + count that overflows loff_t with -EINVAL, and the count is clamped to
 * MAX_RW_COUNT.
 */
export function rwArgs(r: RwRegs): RwArgs | number {
  const { buf, count: c, pos } = r;
  if (buf instanceof Uint8Array) {
    if (c > BigInt(buf.length)) return -EFAULT;
  } else if (!accessOk(buf, c)) return -EFAULT;
  if (c > I64_MAX) return -EINVAL;
  if (pos + c > I64_MAX) return -EINVAL;
  return {
    buf: buf instanceof Uint8Array ? buf : Number(buf),
    count: c > BigInt(MAX_RW_COUNT) ? MAX_RW_COUNT : Number(c),
    pos: pos > BigInt(MODEL_MAX_FILESIZE) ? MODEL_MAX_FILESIZE + PAGE_SIZE : Number(pos),
  };
}
