/**
 * hugetlbfs files: memfd_create(2) (mm/memfd.c sanitize_flags(), alloc_name(),
 * hugetlb_file_setup()), hugetlbfs_fallocate(), hugetlbfs_file_mmap() + hugetlb_reserve_pages(),
 * hugetlb_no_page() / hugetlb_wp() on private and shared mappings, hugetlbfs_read_iter(),
 * hugetlbfs_setattr(). The machine's checker runs after every syscall.
 */
import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  ENODEV,
  ENOMEM,
  ENOSPC,
  EOPNOTSUPP,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  MFD_CLOEXEC,
  MFD_EXEC,
  MFD_HUGE_SHIFT,
  MFD_HUGETLB,
  MFD_NOEXEC_SEAL,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import type { Process } from '../process.js';
import { machine } from '../testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;

function setup(pages = 4): { k: Kernel; p: Process; free: () => number } {
  const k = machine('madvise', { hugetlbPages: pages });
  return { k, p: k.spawn(), free: () => k.core.hugetlb.free.length };
}

function hugeMemfd(p: Process, flags = 0): number {
  const fd = p.memfdCreate('test', MFD_HUGETLB | flags);
  expect(fd).toBeGreaterThanOrEqual(0);
  return fd;
}

describe('memfd_create(2) (mm/memfd.c)', () => {
  it('checks flags and the name as sanitize_flags() and alloc_name() do; an hstate that does not exist is -ENODEV', () => {
    const { p } = setup();
    expect(p.memfdCreate('x', 0x100)).toBe(-EINVAL);
    expect(p.memfdCreate('x', 21 << MFD_HUGE_SHIFT)).toBe(-EINVAL); // a size without MFD_HUGETLB
    expect(p.memfdCreate('x', MFD_EXEC | MFD_NOEXEC_SEAL)).toBe(-EINVAL);
    expect(p.memfdCreate('x'.repeat(250), 0)).toBe(-EINVAL);
    expect(p.memfdCreate('x'.repeat(249), 0)).toBeGreaterThanOrEqual(0);
    expect(p.memfdCreate('x', MFD_HUGETLB | (30 << MFD_HUGE_SHIFT))).toBe(-ENODEV); // 1 GiB
    expect(p.memfdCreate('x', MFD_HUGETLB | (21 << MFD_HUGE_SHIFT) | MFD_CLOEXEC)).toBeGreaterThanOrEqual(0);
    expect(p.memfdCreate('x', MFD_HUGETLB)).toBeGreaterThanOrEqual(0); // the default hstate
  });

  it('a plain memfd is a tmpfs file: write(2) and read(2) round-trip', () => {
    const { p } = setup();
    const fd = p.memfdCreate('plain', 0);
    expect(p.pwrite(fd, new Uint8Array([1, 2, 3]), 3, 5000)).toBe(3);
    const b = new Uint8Array(3);
    expect(p.pread(fd, b, 3, 5000)).toBe(3);
    expect([...b]).toEqual([1, 2, 3]);
  });
});

describe('hugetlbfs_fallocate()', () => {
  it('takes zeroed huge pages from the pool for the range (rounded out) and grows i_size unless KEEP_SIZE', () => {
    const { p, free } = setup();
    const fd = hugeMemfd(p);
    expect(p.fallocate(fd, 0, 0, PMD_SIZE)).toBe(0);
    expect(free()).toBe(3);
    expect(p.lseek(fd, 0, 2)).toBe(PMD_SIZE);
    // [PMD_SIZE + 4K, PMD_SIZE + 8K) is inside the second huge page: one more page, size unchanged.
    expect(p.fallocate(fd, FALLOC_FL_KEEP_SIZE, PMD_SIZE + PAGE_SIZE, PAGE_SIZE)).toBe(0);
    expect(free()).toBe(2);
    expect(p.lseek(fd, 0, 2)).toBe(PMD_SIZE);
    // Again over allocated pages: nothing more.
    expect(p.fallocate(fd, 0, 0, 2 * PMD_SIZE)).toBe(0);
    expect(free()).toBe(2);
  });

  it('an empty pool is -ENOSPC, keeping the pages allocated before it ran out', () => {
    const { p, free } = setup(2);
    const fd = hugeMemfd(p);
    expect(p.fallocate(fd, 0, 0, 3 * PMD_SIZE)).toBe(-ENOSPC);
    expect(free()).toBe(0);
    expect(p.lseek(fd, 0, 2)).toBe(0);
  });

  it('modes: PUNCH_HOLE needs KEEP_SIZE (vfs_fallocate()), unknown modes are -EOPNOTSUPP; a punch hole frees whole huge pages', () => {
    const { p, free } = setup();
    const fd = hugeMemfd(p);
    expect(p.fallocate(fd, 0, 0, 2 * PMD_SIZE)).toBe(0);
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, PMD_SIZE)).toBe(-EOPNOTSUPP);
    expect(p.fallocate(fd, 0x10, 0, PMD_SIZE)).toBe(-EOPNOTSUPP);
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PMD_SIZE)).toBe(0);
    expect(free()).toBe(3);
  });
});

describe('mmap(2) of a hugetlbfs file (ksys_mmap_pgoff(), hugetlbfs_file_mmap())', () => {
  it('rounds the length up to huge pages, refuses an unaligned offset, and reserves from the pool', () => {
    const { p, k, free } = setup(2);
    const fd = hugeMemfd(p);
    const a = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED, fd, 0);
    expect(a).toBeGreaterThan(0);
    expect(a % PMD_SIZE).toBe(0);
    expect(k.core.hugetlb.free.length).toBe(2);
    const v = p.mm.vmaLookup(a);
    expect(v?.end).toBe(a + PMD_SIZE);
    expect(p.mmap(0, PMD_SIZE, RW, MAP_SHARED, fd, PAGE_SIZE)).toBe(-EINVAL);
    // A private mapping reserves every huge page of its range: 3 > 2 free.
    expect(p.mmap(0, 3 * PMD_SIZE, RW, MAP_PRIVATE, fd, 0)).toBe(-ENOMEM);
    expect(free()).toBe(2);
  });

  it('MAP_HUGETLB with a file that is not on hugetlbfs is -EINVAL', () => {
    const { p } = setup();
    const fd = p.memfdCreate('plain', 0);
    expect(p.mmap(0, PMD_SIZE, RW, MAP_SHARED | MAP_HUGETLB, fd, 0)).toBe(-EINVAL);
  });
});

describe('faults on hugetlbfs mappings (hugetlb_no_page(), hugetlb_wp())', () => {
  it('a private mapping reads the page cache, and its first write copies it: the file does not change', () => {
    const { p, free } = setup();
    const fd = hugeMemfd(p);
    expect(p.fallocate(fd, 0, 0, PMD_SIZE)).toBe(0);
    const shared = p.mmap(0, PMD_SIZE, RW, MAP_SHARED, fd, 0);
    const priv = p.mmap(0, PMD_SIZE, RW, MAP_PRIVATE, fd, 0);
    p.writeI32(shared + 8192, 0xabcd);
    expect(p.readU32(priv + 8192)).toBe(0xabcd);
    expect(free()).toBe(3);
    p.writeI32(priv + 8192, 0x1234);
    expect(free()).toBe(2); // the private copy
    expect(p.readU32(shared + 8192)).toBe(0xabcd);
    expect(p.readU32(priv + 8192)).toBe(0x1234);
    expect(p.readU32(priv + 12288)).toBe(0);
    // The file's bytes through read(2) (hugetlbfs_read_iter()).
    const b = new Uint8Array(4);
    expect(p.pread(fd, b, 4, 8192)).toBe(4);
    expect(new Uint32Array(b.buffer)[0]).toBe(0xabcd);
    expect(p.munmap(priv, PMD_SIZE)).toBe(0);
    expect(free()).toBe(3);
  });

  it('a private write with no page in the cache gets a new anonymous page; the file stays a hole', () => {
    const { p, free } = setup();
    const fd = hugeMemfd(p);
    expect(p.ftruncate(fd, PMD_SIZE)).toBe(0);
    const priv = p.mmap(0, PMD_SIZE, RW, MAP_PRIVATE, fd, 0);
    p.writeI32(priv, 7);
    expect(free()).toBe(3);
    const b = new Uint8Array(4).fill(9);
    expect(p.pread(fd, b, 4, 0)).toBe(4);
    expect([...b]).toEqual([0, 0, 0, 0]);
  });

  it('a child of fork() shares the page-cache folio of a private mapping read-only', () => {
    const { k, p } = setup();
    const fd = hugeMemfd(p);
    expect(p.fallocate(fd, 0, 0, PMD_SIZE)).toBe(0);
    const shared = p.mmap(0, PMD_SIZE, RW, MAP_SHARED, fd, 0);
    const priv = p.mmap(0, PMD_SIZE, RW, MAP_PRIVATE, fd, 0);
    p.writeI32(shared, 5);
    expect(p.readU32(priv)).toBe(5);
    const pid = p.fork();
    const c = k.task(pid);
    if (!c) throw new Error(`fork() = ${pid}`);
    expect(c.readU32(priv)).toBe(5);
    p.writeI32(shared, 6);
    expect(c.readU32(priv)).toBe(6);
    c.writeI32(priv, 1);
    expect(p.readU32(priv)).toBe(6);
    expect(c.readU32(priv)).toBe(1);
  });
});

describe('write(2), ftruncate(2) and the last close', () => {
  it('write(2) is -EINVAL (no ->write_iter); an unaligned size is -EINVAL; shrinking unmaps and frees', () => {
    const { p, free } = setup();
    const fd = hugeMemfd(p);
    expect(p.pwrite(fd, new Uint8Array(4), 4, 0)).toBe(-EINVAL);
    expect(p.ftruncate(fd, PAGE_SIZE)).toBe(-EINVAL);
    expect(p.fallocate(fd, 0, 0, 2 * PMD_SIZE)).toBe(0);
    const a = p.mmap(0, 2 * PMD_SIZE, RW, MAP_SHARED, fd, 0);
    p.writeI32(a + PMD_SIZE, 3);
    expect(free()).toBe(2);
    expect(p.ftruncate(fd, PMD_SIZE)).toBe(0);
    expect(free()).toBe(3);
    expect(p.lseek(fd, 0, 2)).toBe(PMD_SIZE);
  });

  it('pages go back to the pool when the last mapping and descriptor go', () => {
    const { p, free } = setup();
    const fd = hugeMemfd(p);
    expect(p.fallocate(fd, 0, 0, 2 * PMD_SIZE)).toBe(0);
    const a = p.mmap(0, 2 * PMD_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    expect(p.readU32(a)).toBe(0);
    expect(p.close(fd)).toBe(0);
    expect(free()).toBe(2);
    expect(p.munmap(a, 2 * PMD_SIZE)).toBe(0);
    expect(free()).toBe(4);
  });
});
