/**
 * Splitting large shmem page-cache folios (mm/huge_memory.c, mm/truncate.c, mm/shmem.c v6.19):
 * generic_perform_write()'s write_end for huge=always tmpfs, split_huge_pages_in_file() and
 * split_huge_pages_pid() on page-cache THPs (uniform and non-uniform, mapped by a PMD or by
 * PTEs, failing on an extra reference), and truncate_inode_partial_folio() under ftruncate(2),
 * fallocate(FALLOC_FL_PUNCH_HOLE) and MADV_REMOVE. The invariant checker runs after every
 * syscall (machine()): page-cache references, NR_SHMEM and NR_SHMEM_THPS among them.
 */
import { describe, expect, it } from 'vitest';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  HPAGE_PMD_NR,
  MADV_COLD,
  MADV_NOHUGEPAGE,
  MADV_REMOVE,
  MAP_FIXED,
  MAP_SHARED,
  O_CREAT,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import { smaps } from '../proc.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import type { Inode } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const P = PAGE_SIZE;
const SPLIT = '/sys/kernel/debug/split_huge_pages';

function writeText(p: Process, path: string, text: string): number {
  const fd = p.open(path, O_WRONLY);
  expect(fd).toBeGreaterThanOrEqual(0);
  const b = new TextEncoder().encode(text);
  const r = p.pwrite(fd, b, b.length, 0);
  p.close(fd);
  return r;
}

/** The byte at file offset i of the test pattern: (i & 0xff) ^ (i >> 12). */
function patternByte(i: number): number {
  return ((i & 0xff) ^ (i >>> 12)) & 0xff;
}

function pattern(len: number, from = 0): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = patternByte(from + i);
  return b;
}

/** A machine with a huge=always tmpfs at /tmp/h holding the file /tmp/h/f, open O_RDWR. */
function hugeFile(): { k: Kernel; p: Process; fd: number; inode: Inode } {
  const k = machine();
  const p = k.spawn();
  expect(p.mkdir('/tmp/h')).toBe(0);
  expect(p.mount('tmpfs', '/tmp/h', 'tmpfs', 0, 'huge=always')).toBe(0);
  const fd = p.open('/tmp/h/f', O_CREAT | O_RDWR);
  const inode = p.fds.get(fd)?.inode;
  if (!inode) throw new Error('no inode');
  return { k, p, fd, inode };
}

/** A huge=always file holding `pmds` PMD-sized THPs of the pattern, written by one write(2). */
function thpFile(pmds = 1): ReturnType<typeof hugeFile> {
  const f = hugeFile();
  const alloc = f.k.core.vmstat.thp_file_alloc;
  expect(f.p.write(f.fd, pattern(pmds * PMD_SIZE), pmds * PMD_SIZE)).toBe(pmds * PMD_SIZE);
  expect(f.k.core.vmstat.thp_file_alloc).toBe(alloc + pmds);
  return f;
}

/** The page-cache folios of the inode as [first index, order], in index order. */
function folios(k: Kernel, inode: Inode): [number, number][] {
  const m = k.core.map;
  const out: [number, number][] = [];
  for (const [index, pfn] of inode.pages) if (m.head[pfn] === pfn) out.push([index, m.folioOrder(pfn)]);
  return out.sort((a, b) => a[0] - b[0]);
}

/** The file's bytes [pos, pos + len) read back with pread(2). */
function readFile(p: Process, fd: number, pos: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  expect(p.pread(fd, b, len, pos)).toBe(len);
  return b;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** Maps the file's first `len` bytes MAP_SHARED at a PMD-aligned address. */
function mapAligned(p: Process, fd: number, len: number): number {
  const hint = Math.ceil(p.mmap(0, len + PMD_SIZE, RW, MAP_SHARED, fd, 0) / PMD_SIZE) * PMD_SIZE;
  p.munmap(hint - PMD_SIZE, len + 2 * PMD_SIZE);
  const a = p.mmap(hint, len, RW, MAP_SHARED | MAP_FIXED, fd, 0);
  expect(a).toBe(hint);
  return a;
}

function shmemPmdMapped(k: Kernel, p: Process, a: number): number {
  return smaps(k.core, p.mm).find((s) => s.start <= a && a < s.end)?.shmemPmdMapped ?? -1;
}

/** The folios a non-uniform split of an order-9 folio at page 256 to order 3 leaves (the selftest's expectation). */
const AT_256_TO_3: [number, number][] = [
  [0, 8],
  [256, 3],
  [264, 3],
  [272, 4],
  [288, 5],
  [320, 6],
  [384, 7],
];

describe('generic_perform_write() -> shmem_write_begin() write_end on huge=always tmpfs', () => {
  it('one 2 MiB write(2) at 0 allocates one PMD-sized folio (THP_FILE_ALLOC), as 4 MiB allocates two', () => {
    const { k, inode } = thpFile(2);
    expect(folios(k, inode)).toEqual([
      [0, 9],
      [HPAGE_PMD_NR, 9],
    ]);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(2 * HPAGE_PMD_NR);
  });

  it('a write that does not cover an aligned 2 MiB chunk gets small folios (shmem_mapping_size_orders())', () => {
    const { k, p, fd, inode } = hugeFile();
    const alloc = k.core.vmstat.thp_file_alloc;
    // Two 1 MiB writes: each write_end is 1 MiB past its start.
    expect(p.write(fd, pattern(PMD_SIZE / 2), PMD_SIZE / 2)).toBe(PMD_SIZE / 2);
    expect(p.write(fd, pattern(PMD_SIZE / 2, PMD_SIZE / 2), PMD_SIZE / 2)).toBe(PMD_SIZE / 2);
    // 2 MiB at 4 KiB: the first chunk ends at 2 MiB but starts unaligned; the second is 4 KiB.
    expect(p.pwrite(fd, pattern(PMD_SIZE, PMD_SIZE + P), PMD_SIZE, PMD_SIZE + P)).toBe(PMD_SIZE);
    expect(k.core.vmstat.thp_file_alloc).toBe(alloc);
    expect(folios(k, inode).every(([, o]) => o === 0)).toBe(true);
    expect(sameBytes(readFile(p, fd, 0, PMD_SIZE), pattern(PMD_SIZE))).toBe(true);
  });
});

describe('split_huge_pages_in_file() (debugfs "<path>,0x<start>,0x<end>[,order[,offset]]")', () => {
  it('splits the file THP uniformly to each order: data kept, THP_SPLIT_PAGE and the mTHP split stat, NR_SHMEM_THPS drops', () => {
    for (const order of [0, 1, 4, 8]) {
      const { k, p, fd, inode } = thpFile();
      const v = { ...k.core.vmstat };
      const mthp = k.core.mthpStats.split[9];
      const line = `/tmp/h/f,0x0,0x400,${order}`;
      expect(writeText(p, SPLIT, line)).toBe(line.length);
      expect(k.core.vmstat.thp_split_page).toBe(v.thp_split_page + 1);
      expect(k.core.vmstat.thp_split_page_failed).toBe(v.thp_split_page_failed);
      expect(k.core.mthpStats.split[9]).toBe(mthp + 1);
      expect(k.core.vmstat.nr_shmem_hugepages).toBe(0);
      expect(k.core.vmstat.nr_shmem).toBe(v.nr_shmem);
      const f = folios(k, inode);
      expect(f).toHaveLength(HPAGE_PMD_NR >> order);
      expect(f.every(([i, o]) => o === order && i % (1 << order) === 0)).toBe(true);
      expect(sameBytes(readFile(p, fd, 0, PMD_SIZE), pattern(PMD_SIZE))).toBe(true);
    }
  });

  it('with an in-folio offset splits non-uniformly (folio_split()): one folio of each order above new_order, two of new_order', () => {
    const { k, p, inode } = thpFile();
    expect(writeText(p, SPLIT, '/tmp/h/f,0x0,0x200,3,256')).toBeGreaterThan(0);
    expect(folios(k, inode)).toEqual(AT_256_TO_3);
    // Order 1 is fine for a file folio; at offset 0 down to order 0.
    const g = thpFile();
    expect(writeText(g.p, SPLIT, '/tmp/h/f,0x0,0x200,0,0')).toBeGreaterThan(0);
    expect(folios(g.k, g.inode)).toEqual([
      [0, 0],
      [1, 0],
      [2, 1],
      [4, 2],
      [8, 3],
      [16, 4],
      [32, 5],
      [64, 6],
      [128, 7],
      [256, 8],
    ]);
  });

  it('only folios with an order above new_order and an index in [off_start, off_end) are split; an offset past the folio means uniform', () => {
    const { k, p, inode } = thpFile(2);
    const splits = k.core.vmstat.thp_split_page;
    expect(writeText(p, SPLIT, '/tmp/h/f,0x0,0x200,9')).toBeGreaterThan(0);
    expect(writeText(p, SPLIT, '/tmp/h/f,0x400,0x100000,0')).toBeGreaterThan(0);
    expect(k.core.vmstat.thp_split_page).toBe(splits);
    // Starting inside the second THP finds it (filemap_get_folio()), with an offset beyond it.
    expect(writeText(p, SPLIT, '/tmp/h/f,0x300,0x301,5,512')).toBeGreaterThan(0);
    const f = folios(k, inode);
    expect(f[0]).toEqual([0, 9]);
    expect(f.slice(1).every(([, o]) => o === 5)).toBe(true);
    expect(f).toHaveLength(1 + 16);
  });

  it('a PMD-mapped THP is unmapped first (the file PMD zapped), the next faults map the pieces back with the same data', () => {
    const { k, p, fd, inode } = thpFile();
    const a = mapAligned(p, fd, PMD_SIZE);
    expect(p.readI32(a + 5 * P)).toBe(new DataView(pattern(4, 5 * P).buffer).getInt32(0, true));
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(shmemPmdMapped(k, p, a)).toBe(PMD_SIZE);
    const pmdSplits = k.core.vmstat.thp_split_pmd;
    expect(writeText(p, SPLIT, '/tmp/h/f,0x0,0x200,2')).toBeGreaterThan(0);
    expect(k.core.vmstat.thp_split_pmd).toBe(pmdSplits + 1);
    expect(pmdKind(k, p, a)).toBe('none');
    expect(shmemPmdMapped(k, p, a)).toBe(0);
    expect(folios(k, inode).every(([, o]) => o === 2)).toBe(true);
    expect(sameBytes(p.readBytes(a, PMD_SIZE), pattern(PMD_SIZE))).toBe(true);
    p.writeI32(a + 100 * P, 77);
    expect(new DataView(readFile(p, fd, 100 * P, 4).buffer).getInt32(0, true)).toBe(77);
  });

  it('a PTE-mapped THP in two processes: every PTE is removed (rss drops), both see the data after refaulting', () => {
    const { k, p, fd, inode } = thpFile();
    const a = mapAligned(p, fd, PMD_SIZE);
    expect(p.madvise(a, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
    p.readI32(a);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(HPAGE_PMD_NR);
    const c = k.task(p.fork());
    if (!c) throw new Error('no child');
    c.readI32(a);
    expect(writeText(p, SPLIT, '/tmp/h/f,0x0,0x200,0')).toBeGreaterThan(0);
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(0);
    expect(c.mm.rss.MM_SHMEMPAGES).toBe(0);
    expect(folios(k, inode)).toHaveLength(HPAGE_PMD_NR);
    expect(sameBytes(c.readBytes(a, PMD_SIZE), pattern(PMD_SIZE))).toBe(true);
    expect(sameBytes(p.readBytes(a + P, P), pattern(P, P))).toBe(true);
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(1);
  });

  it('a folio with a reference beyond the cache and the mappings (vmsplice()d page) is not split: -EAGAIN, THP_SPLIT_PAGE_FAILED', () => {
    const { k, p, fd, inode } = thpFile();
    const a = mapAligned(p, fd, PMD_SIZE);
    const [r, w] = p.pipe() as [number, number];
    const iov = p.malloc(16);
    p.writeBytes(iov, new Uint8Array(new BigUint64Array([BigInt(a + 3 * P), BigInt(P)]).buffer));
    expect(p.vmsplice(w, iov, 1, 0)).toBe(P);
    const v = { ...k.core.vmstat };
    expect(writeText(p, SPLIT, '/tmp/h/f,0x0,0x200,0')).toBeGreaterThan(0);
    expect(k.core.vmstat.thp_split_page_failed).toBe(v.thp_split_page_failed + 1);
    expect(k.core.vmstat.thp_split_page).toBe(v.thp_split_page);
    expect(k.core.mthpStats.split_failed[9]).toBe(1);
    expect(folios(k, inode)).toEqual([[0, 9]]);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(HPAGE_PMD_NR);
    // The pipe still reads the page's bytes; then the split goes through.
    const b = new Uint8Array(P);
    expect(p.read(r, b, P)).toBe(P);
    expect(sameBytes(b, pattern(P, 3 * P))).toBe(true);
    expect(writeText(p, SPLIT, '/tmp/h/f,0x0,0x200,0')).toBeGreaterThan(0);
    expect(folios(k, inode)).toHaveLength(HPAGE_PMD_NR);
  });

  it('a path that does not exist is -EINVAL; "1" (split_huge_pages_all()) splits page-cache THPs too', () => {
    const { k, p, inode } = thpFile();
    expect(writeText(p, SPLIT, '/tmp/h/nope,0x0,0x200')).toBe(-22);
    expect(writeText(p, SPLIT, '/tmp/h/f,0x0')).toBe(-22);
    expect(writeText(p, SPLIT, '1')).toBe(1);
    expect(folios(k, inode)).toHaveLength(HPAGE_PMD_NR);
  });
});

describe('madvise_cold_or_pageout_pte_range() on a page-cache THP', () => {
  it('MADV_COLD of part of a PMD-mapped tmpfs THP splits it (split_folio(): the PMD zapped), the data stays', () => {
    const { k, p, fd, inode } = thpFile();
    const a = mapAligned(p, fd, PMD_SIZE);
    p.readI32(a);
    expect(pmdKind(k, p, a)).toBe('huge');
    const splits = k.core.vmstat.thp_split_page;
    expect(p.madvise(a, 16 * P, MADV_COLD)).toBe(0);
    expect(k.core.vmstat.thp_split_page).toBe(splits + 1);
    expect(folios(k, inode)).toHaveLength(HPAGE_PMD_NR);
    expect(pmdKind(k, p, a)).toBe('none');
    expect(sameBytes(p.readBytes(a, PMD_SIZE), pattern(PMD_SIZE))).toBe(true);
  });
});

describe('split_huge_pages_pid() on a page-cache THP (the split_huge_page_test pagecache cases)', () => {
  it('"pid,0xaddr,0xaddr+4096,order,offset" splits the PMD-mapped file THP around the page at offset and skips its size', () => {
    const { k, p, fd, inode } = thpFile(2);
    const a = mapAligned(p, fd, 2 * PMD_SIZE);
    p.readI32(a);
    p.readI32(a + PMD_SIZE);
    for (const at of [a, a + PMD_SIZE]) {
      const line = `${p.pid},0x${at.toString(16)},0x${(at + P).toString(16)},3,256`;
      expect(writeText(p, SPLIT, line)).toBe(line.length);
    }
    expect(folios(k, inode)).toEqual([...AT_256_TO_3, ...AT_256_TO_3.map(([i, o]) => [i + HPAGE_PMD_NR, o])]);
    expect(shmemPmdMapped(k, p, a)).toBe(0);
    expect(sameBytes(p.readBytes(a, 2 * PMD_SIZE), pattern(2 * PMD_SIZE))).toBe(true);
  });

  it('uniform split to order 0 of a PMD-mapped file THP through the pid form', () => {
    const { k, p, fd, inode } = thpFile();
    const a = mapAligned(p, fd, PMD_SIZE);
    p.readI32(a);
    const line = `${p.pid},0x${a.toString(16)},0x${(a + PMD_SIZE).toString(16)},0`;
    expect(writeText(p, SPLIT, line)).toBe(line.length);
    expect(folios(k, inode)).toHaveLength(HPAGE_PMD_NR);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(0);
    expect(sameBytes(p.readBytes(a, PMD_SIZE), pattern(PMD_SIZE))).toBe(true);
  });
});

describe('truncate_inode_partial_folio() (ftruncate(2), FALLOC_FL_PUNCH_HOLE, MADV_REMOVE)', () => {
  it('ftruncate() into a THP zeroes the tail, splits at the new end and frees the pieces beyond EOF', () => {
    const { k, p, fd, inode } = thpFile();
    const a = mapAligned(p, fd, PMD_SIZE);
    p.readI32(a);
    const v = { ...k.core.vmstat };
    const size = PMD_SIZE / 2 + 100;
    expect(p.ftruncate(fd, size)).toBe(0);
    expect(k.core.vmstat.thp_split_page).toBe(v.thp_split_page + 1);
    // folio_split() at page 256 to order 0; the pieces from index 257 (EOF) on were dropped.
    expect(folios(k, inode)).toEqual([
      [0, 8],
      [256, 0],
    ]);
    expect(k.core.vmstat.nr_shmem).toBe(v.nr_shmem - (HPAGE_PMD_NR - 257));
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(0);
    expect(sameBytes(p.readBytes(a, size), pattern(size))).toBe(true);
    expect(p.ftruncate(fd, PMD_SIZE)).toBe(0);
    const tail = readFile(p, fd, size, PMD_SIZE - size);
    expect(tail.every((x) => x === 0)).toBe(true);
  });

  it('a hole punched in the middle frees exactly the pages inside (a split at each end of the hole), the rest keeps its data', () => {
    const { k, p, fd, inode } = thpFile();
    const nrShmem = k.core.vmstat.nr_shmem;
    const hole = 16 * P;
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, PMD_SIZE / 2, hole)).toBe(0);
    expect(k.core.vmstat.nr_shmem).toBe(nrShmem - 16);
    expect(inode.size).toBe(PMD_SIZE);
    for (let i = 256; i < 272; i++) expect(inode.pages.has(i)).toBe(false);
    // The piece after the hole was split at its end: [272] [273] [274, 276) ... [384, 512).
    expect(folios(k, inode)).toEqual([
      [0, 8],
      [272, 0],
      [273, 0],
      [274, 1],
      [276, 2],
      [280, 3],
      [288, 5],
      [320, 6],
      [384, 7],
    ]);
    const all = readFile(p, fd, 0, PMD_SIZE);
    const want = pattern(PMD_SIZE);
    want.fill(0, PMD_SIZE / 2, PMD_SIZE / 2 + hole);
    expect(sameBytes(all, want)).toBe(true);
  });

  it('a hole inside one page still splits the THP (the split comes before knowing what can be freed) and frees nothing', () => {
    const { k, p, fd, inode } = thpFile();
    const nrShmem = k.core.vmstat.nr_shmem;
    const off = 300 * P + 10;
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, 100)).toBe(0);
    expect(k.core.vmstat.nr_shmem).toBe(nrShmem);
    expect(folios(k, inode)).toContainEqual([300, 0]);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(0);
    const want = pattern(PMD_SIZE);
    want.fill(0, off, off + 100);
    expect(sameBytes(readFile(p, fd, 0, PMD_SIZE), want)).toBe(true);
  });

  it('MADV_REMOVE of part of a PMD-mapped THP: the PMD is zapped, the range freed, the rest refaults with its data', () => {
    const { k, p, fd, inode } = thpFile();
    const a = mapAligned(p, fd, PMD_SIZE);
    p.readI32(a);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(p.madvise(a + 64 * P, 64 * P, MADV_REMOVE)).toBe(0);
    for (let i = 64; i < 128; i++) expect(inode.pages.has(i)).toBe(false);
    expect(inode.pages.size).toBe(HPAGE_PMD_NR - 64);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(0);
    const want = pattern(PMD_SIZE);
    want.fill(0, 64 * P, 128 * P);
    expect(sameBytes(p.readBytes(a, PMD_SIZE), want)).toBe(true);
  });

  it('when the split fails (a page held by a pipe) the hole is only zeroed: the THP stays whole and THP_SPLIT_PAGE_FAILED counts', () => {
    const { k, p, fd, inode } = thpFile();
    const a = mapAligned(p, fd, PMD_SIZE);
    const [r, w] = p.pipe() as [number, number];
    const iov = p.malloc(16);
    p.writeBytes(iov, new Uint8Array(new BigUint64Array([BigInt(a), BigInt(P)]).buffer));
    expect(p.vmsplice(w, iov, 1, 0)).toBe(P);
    const v = { ...k.core.vmstat };
    expect(p.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * P, 32 * P)).toBe(0);
    expect(k.core.vmstat.thp_split_page_failed).toBe(v.thp_split_page_failed + 1);
    expect(folios(k, inode)).toEqual([[0, 9]]);
    expect(k.core.vmstat.nr_shmem).toBe(v.nr_shmem);
    expect(k.core.vmstat.nr_shmem_hugepages).toBe(HPAGE_PMD_NR);
    const want = pattern(PMD_SIZE);
    want.fill(0, 8 * P, 40 * P);
    expect(sameBytes(p.readBytes(a, PMD_SIZE), want)).toBe(true);
    // ftruncate() past the failed split zeroes the tail too; the pipe drains.
    expect(p.ftruncate(fd, PMD_SIZE - 4 * P)).toBe(0);
    expect(folios(k, inode)).toEqual([[0, 9]]);
    expect(p.read(r, new Uint8Array(P), P)).toBe(P);
    expect(p.ftruncate(fd, PMD_SIZE - 8 * P)).toBe(0);
    expect(inode.pages.size).toBe(HPAGE_PMD_NR - 8);
  });
});
