import { describe, expect, it } from 'vitest';
import {
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { HUGETLBFS_DEV } from './mm/hugetlbfs.js';
import { mapsText, PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT, PM_SWAP, pagemapEntry, smaps } from './proc.js';
import type { Process } from './process.js';
import { machine } from './testing/helpers.js';
import { pageout } from './testing/swap.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const PFN_MASK = (1n << 55n) - 1n;

/** Reads /proc/self/pagemap entries the way the selftests do (pread at vaddr / 4096 * 8). */
function pagemap(p: Process, addr: number, n = 1): bigint[] {
  const fd = p.open('/proc/self/pagemap', O_RDONLY);
  const buf = new Uint8Array(8 * n);
  expect(p.pread(fd, buf, buf.length, (addr / PAGE_SIZE) * 8)).toBe(buf.length);
  p.close(fd);
  const dv = new DataView(buf.buffer);
  return Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
}

describe('/proc/self/pagemap', () => {
  it('reports present pages, pfns, exclusivity and file pages', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.writeI32(a, 1);
    p.readI32(a + PAGE_SIZE);
    const [e0, e1, e2] = pagemap(p, a, 3);
    expect(e0 & PM_PRESENT).toBe(PM_PRESENT);
    expect(e0 & PM_MMAP_EXCLUSIVE).toBe(PM_MMAP_EXCLUSIVE);
    expect(e0 & PM_FILE).toBe(0n);
    expect(e0 & PM_SWAP).toBe(0n);
    // The zero page is present but neither exclusive nor a file page.
    expect(e1 & PM_PRESENT).toBe(PM_PRESENT);
    expect(Number(e1 & PFN_MASK)).toBe(k.core.zeroPfn);
    expect(e1 & (PM_MMAP_EXCLUSIVE | PM_FILE)).toBe(0n);
    expect(e2).toBe(0n);
    const c = k.task(p.fork())!;
    const [shared] = pagemap(p, a);
    expect(shared & PM_MMAP_EXCLUSIVE).toBe(0n);
    expect(shared & PFN_MASK).toBe(e0 & PFN_MASK);
    c.writeI32(a, 2);
    expect(pagemap(p, a)[0] & PM_MMAP_EXCLUSIVE).toBe(PM_MMAP_EXCLUSIVE);
    const s = p.mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.writeI32(s, 1);
    expect(pagemap(p, s)[0] & (PM_PRESENT | PM_FILE)).toBe(PM_PRESENT | PM_FILE);
    expect(pagemapEntry(k.core, p.mm, 0x1000)).toBe(0n);
    expect(k.check()).toEqual([]);
  });

  it('reports consecutive pfns for the subpages of a THP', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    p.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    p.writeI32(a, 1);
    const e = pagemap(p, a, 512);
    const base = e[0] & PFN_MASK;
    expect(Number(base) % 512).toBe(0);
    for (let i = 0; i < 512; i++) {
      if ((e[i] & PFN_MASK) !== base + BigInt(i) || !(e[i] & PM_PRESENT)) throw new Error(`subpage ${i}`);
    }
  });
});

describe('smaps', () => {
  it('reports Rss, Anonymous and AnonHugePages per VMA', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE);
    p.writeI32(a, 1);
    p.readI32(a + PMD_SIZE); // huge zero: neither resident nor anonymous (vm_normal_page_pmd() is NULL)
    const b = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.writeI32(b, 1);
    p.readI32(b + PAGE_SIZE);
    const s = smaps(k.core, p.mm);
    const va = s.find((e) => e.start === a)!;
    expect(va.anonHugePages).toBe(PMD_SIZE);
    expect(va.anonymous).toBe(PMD_SIZE);
    expect(va.rss).toBe(PMD_SIZE);
    const vb = s.find((e) => e.start === b)!;
    expect(vb.anonHugePages).toBe(0);
    expect(vb.anonymous).toBe(PAGE_SIZE);
    expect(vb.rss).toBe(PAGE_SIZE); // the read page maps the zero page
    // Splitting the PMD (partial munmap) drops AnonHugePages.
    p.munmap(a + PAGE_SIZE, PAGE_SIZE);
    const after = smaps(k.core, p.mm).filter((e) => e.start >= a && e.end <= a + 2 * PMD_SIZE);
    expect(after.length).toBe(2);
    expect(after.reduce((n, e) => n + e.anonHugePages, 0)).toBe(0);
    expect(after.reduce((n, e) => n + e.anonymous, 0)).toBe(PMD_SIZE - PAGE_SIZE);
    expect(k.check()).toEqual([]);
  });

  it('does not count the zero page or the huge zero folio in Rss (smaps_pte_entry/smaps_pmd_entry: vm_normal_page() is NULL)', () => {
    const k = machine();
    const p = k.spawn();
    // 4 KiB pages: two read faults map the shared zero page (do_anonymous_page()), one write
    // fault maps a new anonymous page.
    const b = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    expect(p.readI32(b)).toBe(0);
    expect(p.readI32(b + PAGE_SIZE)).toBe(0);
    p.writeI32(b + 2 * PAGE_SIZE, 5);
    const zero = BigInt(k.core.zeroPfn);
    expect(pagemapEntry(k.core, p.mm, b) & PFN_MASK).toBe(zero);
    expect(pagemapEntry(k.core, p.mm, b + PAGE_SIZE) & PFN_MASK).toBe(zero);
    // A THP-eligible range: a read fault maps the huge zero folio (do_huge_pmd_anonymous_page()),
    // a write fault in the next PMD a THP.
    const a = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    expect(a % PMD_SIZE).toBe(0);
    p.madvise(a, 2 * PMD_SIZE, MADV_HUGEPAGE);
    expect(p.readI32(a + 100 * PAGE_SIZE)).toBe(0);
    p.writeI32(a + PMD_SIZE, 1);
    expect(k.core.hugeZeroPfn).toBeGreaterThanOrEqual(0);
    expect(pagemapEntry(k.core, p.mm, a) & PFN_MASK).toBe(BigInt(k.core.hugeZeroPfn));
    const s = smaps(k.core, p.mm);
    const vb = s.find((e) => e.start === b)!;
    expect(vb.rss).toBe(PAGE_SIZE);
    expect(vb.anonymous).toBe(PAGE_SIZE);
    const va = s.find((e) => e.start === a)!;
    expect(va.rss).toBe(PMD_SIZE);
    expect(va.anonHugePages).toBe(PMD_SIZE);
    // Writing a zero-page-mapped page (COW from the zero page) makes it count.
    p.writeI32(b, 1);
    expect(smaps(k.core, p.mm).find((e) => e.start === b)!.rss).toBe(2 * PAGE_SIZE);
    // A write to the huge zero PMD (do_huge_zero_wp_pmd()) replaces it with a THP or PTEs.
    p.writeI32(a, 1);
    const va2 = smaps(k.core, p.mm).find((e) => e.start === a)!;
    expect(va2.rss).toBeGreaterThan(PMD_SIZE);
    expect(va2.rss).toBe(va2.anonymous);
    expect(k.check()).toEqual([]);
  });
});

describe('smaps Swap and SwapPss (smaps_pte_entry() for swap entries)', () => {
  it('a swap PTE counts in Swap, and in SwapPss divided by its swap count (swp_swapcount()), truncated as do_div()', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * PAGE_SIZE, i + 1);
    const of = (q: Process) => smaps(k.core, q.mm).find((e) => e.start === a)!;
    expect(of(p).swap).toBe(0);
    expect(pageout(k, p, a, 4 * PAGE_SIZE)).toBe(4);
    expect(of(p).swap).toBe(4 * PAGE_SIZE);
    expect(of(p).swapPss).toBe(4 * PAGE_SIZE);
    expect(of(p).rss).toBe(0);
    expect(of(p).swapLike).toBe(0);
    // fork() duplicates the entries (swap count 2): each process has half of each page.
    const c1 = k.task(p.fork())!;
    expect(of(p).swap).toBe(4 * PAGE_SIZE);
    expect(of(p).swapPss).toBe(2 * PAGE_SIZE);
    expect(of(c1).swapPss).toBe(2 * PAGE_SIZE);
    // Three sharers: 16 kB / 3 shows as 5 kB (each 4096 << 12 / 3 truncated; the sum >> 10 + 12).
    const c2 = k.task(p.fork())!;
    expect(Math.floor(of(c2).swapPss / 1024)).toBe(5);
    // A swap-in by one sharer: its PTE is present again, the others keep the entry.
    expect(c2.readI32(a)).toBe(1);
    expect(of(c2).swap).toBe(3 * PAGE_SIZE);
    expect(of(p).swap).toBe(4 * PAGE_SIZE);
    expect(k.check()).toEqual([]);
  });
});

describe('smaps of hugetlb VMAs (smaps_hugetlb_range())', () => {
  it('hugetlb pages are Private_Hugetlb / Shared_Hugetlb, never Rss, Anonymous or AnonHugePages', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 3 * PMD_SIZE, RW, ANON | MAP_HUGETLB);
    p.writeI32(a, 1);
    p.writeI32(a + PMD_SIZE, 2); // the third huge page is never faulted
    const s = p.mmap(0, PMD_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB);
    p.writeI32(s, 3);
    const of = (addr: number) => smaps(k.core, p.mm).find((e) => e.start === addr)!;
    expect(of(a)).toMatchObject({
      rss: 0,
      anonymous: 0,
      anonHugePages: 0,
      privateHugetlb: 2 * PMD_SIZE,
      sharedHugetlb: 0,
    });
    // A shared mapping mapped once is private too: folio_maybe_mapped_shared() is mapcount > 1.
    expect(of(s)).toMatchObject({ rss: 0, anonymous: 0, privateHugetlb: PMD_SIZE, sharedHugetlb: 0 });
    // Not in the mm's rss counters either (hugetlb_count, not MM_ANONPAGES / MM_SHMEMPAGES).
    expect(p.mm.rss.MM_ANONPAGES + p.mm.rss.MM_SHMEMPAGES).toBe(0);
    // Mapped by a second process (fork, then the child's fault: a shared hugetlb VMA has no
    // anon_vma, so fork need not copy its page table) the page is Shared_Hugetlb in both.
    // (The private mapping goes first, so the child maps the shared page alone.)
    expect(p.munmap(a, 3 * PMD_SIZE)).toBe(0);
    const c = k.task(p.fork())!;
    expect(c.readI32(s)).toBe(3);
    expect(of(s)).toMatchObject({ privateHugetlb: 0, sharedHugetlb: PMD_SIZE });
    const cs = smaps(k.core, c.mm).find((e) => e.start === s)!;
    expect(cs).toMatchObject({ rss: 0, privateHugetlb: 0, sharedHugetlb: PMD_SIZE });
    // Normal VMAs report no hugetlb bytes.
    const n = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(n, 1);
    expect(of(n)).toMatchObject({ rss: PAGE_SIZE, privateHugetlb: 0, sharedHugetlb: 0 });
    expect(k.check()).toEqual([]);
  });
});

describe('/proc/self/status (task_mem())', () => {
  it('RssAnon counts the anonymous pages faulted in; VmSize the mapped bytes', () => {
    const k = machine();
    const p = k.spawn();
    const read = () => {
      const fd = p.open('/proc/self/status', O_RDONLY);
      const buf = new Uint8Array(4096);
      const n = p.pread(fd, buf, buf.length, 0);
      p.close(fd);
      return new TextDecoder().decode(buf.subarray(0, n));
    };
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    const before = read();
    expect(before).toContain(`Pid:\t${p.pid}\n`);
    expect(before).toMatch(/^RssAnon:\t {7}0 kB$/m);
    expect(before).toMatch(/^VmSize:\t {6}32 kB$/m);
    for (let i = 0; i < 3; i++) p.writeI32(a + i * PAGE_SIZE, i);
    expect(read()).toMatch(/^RssAnon:\t {6}12 kB$/m);
  });
});

describe('/proc/pid/maps of MAP_HUGETLB mappings (show_map_vma())', () => {
  it('private and shared ones show the hugetlbfs file hugetlb_file_setup() made: its device, inode and "/anon_hugepage (deleted)"', () => {
    // ksys_mmap_pgoff() calls hugetlb_file_setup(HUGETLB_ANON_FILE, ...) for every MAP_HUGETLB
    // mapping without a file, private ones too; the pseudo file is unlinked, so d_path() says
    // "(deleted)". Each mapping has its own file (inode), on the internal hugetlbfs mount.
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    const b = p.mmap(0, PMD_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB);
    const c = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    const maps = mapsText(p.mm).split('\n');
    const line = (addr: number) => maps.find((l) => l.startsWith(`${addr.toString(16)}-`)) ?? '';
    const re = (perms: string) =>
      new RegExp(
        `^[0-9a-f]+-[0-9a-f]+ ${perms} 00000000 ${HUGETLBFS_DEV} (\\d+) +/anon_hugepage \\(deleted\\)$`,
      );
    const ino = (addr: number, perms: string) => Number(re(perms).exec(line(addr))?.[1] ?? -1);
    expect(ino(a, 'rw-p')).toBeGreaterThan(0);
    expect(ino(b, 'rw-s')).toBeGreaterThan(0);
    expect(ino(c, 'rw-p')).toBeGreaterThan(0);
    expect(new Set([ino(a, 'rw-p'), ino(b, 'rw-s'), ino(c, 'rw-p')]).size).toBe(3);
    // Two such mappings side by side have different files: never one VMA.
    expect(p.vmas.length).toBe(3);
    expect(k.check()).toEqual([]);
  });
});
