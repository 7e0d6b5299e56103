/**
 * mmap(MAP_POPULATE) as Linux v6.19 runs it: vm_mmap_pgoff() -> __mm_populate() ->
 * populate_vma_page_range() -> __get_user_pages() (mm/gup.c), and how it fails: the heuristic
 * overcommit check of __vm_enough_memory() (mm/util.c) refuses the mmap itself, a size that
 * passes it runs into the page allocator's OOM killer (mm/oom_kill.c).
 */
import { describe, expect, it } from 'vitest';
import {
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CREAT,
  O_RDWR,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
} from '../constants.js';
import { installMmCoreChecker } from '../invariants.js';
import { Kernel } from '../kernel.js';
import { KernelBug } from '../kernel-bug.js';
import { entryKind } from '../pgtable/entry.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { totalramPages } from './overcommit.js';
import { pteIndex, pteTableOf, ptHi, ptLo } from './pgtable.js';
import { populateGupFlags } from './populate.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const MiB = 2 ** 20;

function pteKind(k: Kernel, p: Process, addr: number): string {
  const t = pteTableOf(k.core, p.mm, addr, false);
  if (t < 0) return 'none';
  const i = pteIndex(addr);
  return entryKind(ptLo(k.core, t, i), ptHi(k.core, t, i), 'pte', k.core.zeroPfn, k.core.hugeZeroPfn);
}

function kinds(k: Kernel, p: Process, a: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => pteKind(k, p, a + i * PAGE_SIZE));
}

/** A machine of `mib` MiB with an idle global init (pid 1) and a test process (pid 2). */
/** A small machine without swap: RAM is all the memory there is (the OOM cases below). */
function small(mib: number): { k: Kernel; init: Process; p: Process } {
  const k = new Kernel({ ramBytes: mib * MiB, checkInvariants: true, hugetlbPages: 0, swapBytes: 0 });
  installMmCoreChecker(k);
  const init = k.spawn();
  return { k, init, p: k.spawn() };
}

describe('populate_vma_page_range(): write faults for private writable mappings', () => {
  it('chooses FOLL_WRITE exactly when (vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE, else FOLL_FORCE', () => {
    const k = machine();
    const p = k.spawn();
    const flagsOf = (prot: number, flags: number) => {
      const a = p.mmap(0, PAGE_SIZE, prot, flags);
      return populateGupFlags(p.mm.vmaLookup(a)!);
    };
    expect(flagsOf(RW, ANON)).toBe(0x01); // FOLL_WRITE
    expect(flagsOf(PROT_WRITE, ANON)).toBe(0x01);
    expect(flagsOf(PROT_READ, ANON)).toBe(0x08); // FOLL_FORCE
    expect(flagsOf(RW, MAP_SHARED | MAP_ANONYMOUS)).toBe(0x08);
    expect(flagsOf(PROT_EXEC, ANON)).toBe(0x08);
    expect(k.check()).toEqual([]);
  });

  it('a private writable anonymous mapping gets its own pages, not the zero page', () => {
    const k = machine();
    const p = k.spawn();
    const zero0 = k.core.vmstat.zero_page_faults;
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON | MAP_POPULATE);
    expect(kinds(k, p, a, 8)).toEqual(Array(8).fill('present'));
    expect(p.mm.rss.MM_ANONPAGES).toBe(8);
    expect(k.core.vmstat.zero_page_faults).toBe(zero0);
    // The pages are writable already: a store needs no fault.
    const faults = k.core.vmstat.pgfault;
    p.writeI32(a + 3 * PAGE_SIZE, 7);
    expect(k.core.vmstat.pgfault).toBe(faults);
    expect(p.readI32(a + 3 * PAGE_SIZE)).toBe(7);
    expect(k.check()).toEqual([]);
  });

  it('read-only and shared mappings are populated with read faults (zero page, page cache)', () => {
    const k = machine();
    const p = k.spawn();
    const r = p.mmap(0, 4 * PAGE_SIZE, PROT_READ, ANON | MAP_POPULATE);
    expect(kinds(k, p, r, 4)).toEqual(Array(4).fill('zero'));
    const s = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE);
    expect(kinds(k, p, s, 4)).toEqual(Array(4).fill('present'));
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(4);
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('write-only and execute-only mappings are populated too (FOLL_FORCE); PROT_NONE is not (!vma_is_accessible())', () => {
    const k = machine();
    const p = k.spawn();
    const w = p.mmap(0, 2 * PAGE_SIZE, PROT_WRITE, ANON | MAP_POPULATE);
    expect(kinds(k, p, w, 2)).toEqual(['present', 'present']);
    const ws = p.mmap(0, 2 * PAGE_SIZE, PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE);
    expect(kinds(k, p, ws, 2)).toEqual(['present', 'present']);
    const x = p.mmap(0, 2 * PAGE_SIZE, PROT_EXEC, ANON | MAP_POPULATE);
    expect(kinds(k, p, x, 2)).toEqual(['zero', 'zero']);
    const faults = k.core.vmstat.pgfault;
    const n = p.mmap(0, 2 * PAGE_SIZE, PROT_NONE, ANON | MAP_POPULATE);
    expect(n).toBeGreaterThan(0);
    expect(kinds(k, p, n, 2)).toEqual(['none', 'none']);
    expect(k.core.vmstat.pgfault).toBe(faults);
    expect(k.check()).toEqual([]);
  });

  it('a private writable file mapping is COW-broken at populate: a store through a shared mapping is not seen through it', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/populate', O_RDWR | O_CREAT);
    expect(p.pwrite(fd, new Uint8Array(2 * PAGE_SIZE).fill(1), 2 * PAGE_SIZE, 0)).toBe(2 * PAGE_SIZE);
    const priv = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    const privRo = p.mmap(0, 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    const shared = p.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, fd, 0);
    expect(p.mm.rss.MM_ANONPAGES).toBe(2); // the private copies (do_cow_fault())
    p.writeU8(shared, 9);
    p.writeU8(shared + PAGE_SIZE, 9);
    // FOLL_WRITE made private copies of the file's pages: the store is not seen.
    expect(p.readU8(priv)).toBe(1);
    expect(p.readU8(priv + PAGE_SIZE)).toBe(1);
    // A private read-only mapping was populated with read faults: it maps the page cache.
    expect(p.readU8(privRo)).toBe(9);
    expect(k.check()).toEqual([]);
  });

  it('with THP "always" a write populate allocates THPs (one fault per PMD), a read populate maps the huge zero page', () => {
    const k = machine('always');
    const p = k.spawn();
    const faults = k.core.vmstat.pgfault;
    const a = p.mmap(0, 2 * 2 * MiB, RW, ANON | MAP_POPULATE);
    expect(a % (2 * MiB)).toBe(0);
    expect([pmdKind(k, p, a), pmdKind(k, p, a + 2 * MiB)]).toEqual(['huge', 'huge']);
    expect(k.core.vmstat.thp_fault_alloc).toBe(2);
    expect(k.core.vmstat.pgfault - faults).toBe(2);
    const r = p.mmap(0, 2 * MiB, PROT_READ, ANON | MAP_POPULATE);
    expect(pmdKind(k, p, r)).toBe('huge-zero');
    expect(k.check()).toEqual([]);
  });

  it('a private writable hugetlb mapping is populated from the pool', () => {
    const k = machine();
    const p = k.spawn();
    const free0 = k.core.hugetlb.free.length;
    const a = p.mmap(0, 2 * 2 * MiB, RW, ANON | MAP_HUGETLB | MAP_POPULATE);
    expect(a).toBeGreaterThan(0);
    expect(k.core.hugetlb.free.length).toBe(free0 - 2);
    expect(k.check()).toEqual([]);
  });
});

describe('MAP_POPULATE larger than the machine (heuristic overcommit, then the OOM killer)', () => {
  it('mmap 3 GiB populate on a 2 GiB machine: __vm_enough_memory() refuses it with -ENOMEM, nothing mapped or allocated', () => {
    const k = new Kernel({ ramBytes: 2 * 1024 * MiB, checkInvariants: true });
    installMmCoreChecker(k);
    k.spawn();
    const p = k.spawn();
    const free0 = k.core.zone.nrFree;
    // OVERCOMMIT_GUESS: a single request larger than totalram_pages() + total_swap_pages fails.
    expect(3 * 1024 * MiB > totalramPages(k.core) * PAGE_SIZE).toBe(true);
    expect(p.mmap(0, 3 * 1024 * MiB, RW, ANON | MAP_POPULATE)).toBe(-ENOMEM);
    expect(p.mm.vmas.length).toBe(0);
    expect(k.core.zone.nrFree).toBe(free0);
    expect(p.state).toBe('running');
    expect(k.check()).toEqual([]);
  });

  it('a size that passes overcommit but not free memory: the populating process is the OOM victim; mmap returns and it dies of SIGKILL', () => {
    const { k, init, p } = small(64);
    const free0 = k.core.zone.nrFree;
    // 80 MiB is more than RAM: MAP_NORESERVE skips the __vm_enough_memory() charge, so the
    // mmap succeeds and populating it runs out of memory.
    const r = p.mmap(0, 80 * MiB, RW, ANON | MAP_NORESERVE | MAP_POPULATE);
    expect(r).toBeGreaterThan(0);
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(p.state).not.toBe('running');
    expect(p.status & 0x7f).toBe(SIGKILL);
    // Its memory is back once it exited; init is untouched.
    expect(k.core.zone.nrFree).toBeGreaterThanOrEqual(free0 - 1);
    expect(init.state).toBe('running');
    expect(k.check()).toEqual([]);
  });

  it('without MAP_NORESERVE a size below RAM passes __vm_enough_memory() and runs into the OOM killer the same way', () => {
    const { k, p } = small(64);
    expect(p.mmap(0, 100 * MiB, RW, ANON | MAP_POPULATE)).toBe(-ENOMEM);
    expect(p.state).toBe('running');
    expect(p.mmap(0, 64 * MiB, RW, ANON | MAP_POPULATE)).toBeGreaterThan(0);
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(p.status & 0x7f).toBe(SIGKILL);
    expect(k.check()).toEqual([]);
  });

  it('when global init populates, select_bad_process() kills the biggest other process and the populate completes', () => {
    const { k, init, p } = small(64);
    const b = p.mmap(0, 24 * MiB, RW, ANON | MAP_POPULATE);
    expect(b).toBeGreaterThan(0);
    expect(p.state).toBe('running');
    const a = init.mmap(0, 48 * MiB, RW, ANON | MAP_POPULATE);
    expect(a).toBeGreaterThan(0);
    expect(p.state).not.toBe('running');
    expect(p.status & 0x7f).toBe(SIGKILL);
    expect(init.state).toBe('running');
    expect(init.mm.rss.MM_ANONPAGES).toBe((48 * MiB) / PAGE_SIZE);
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('when global init populates and everything else is killed, out_of_memory() panics ("Out of memory and no killable processes...")', () => {
    const { k, init, p } = small(64);
    let err: unknown;
    try {
      init.mmap(0, 80 * MiB, RW, ANON | MAP_NORESERVE | MAP_POPULATE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelBug);
    const bug = err as KernelBug;
    expect([bug.kind, bug.fn, bug.what]).toEqual([
      'panic',
      'out_of_memory',
      'System is deadlocked on memory',
    ]);
    expect(bug.consoleLines()[0]).toMatch(
      /^pid 1 invoked oom-killer \(__mm_populate\(\) fault at 0x[0-9a-f]+\)/,
    );
    // The idle process was killed first (its badness is 0, still a candidate); then nothing was left.
    expect(p.status & 0x7f).toBe(SIGKILL);
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(init.state).toBe('running');
    expect(k.check()).toEqual([]);
  });
});
