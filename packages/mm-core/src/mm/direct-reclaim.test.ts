import { describe, expect, it } from 'vitest';
import {
  MADV_FREE,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  O_RDWR,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import {
  PIN_LONGTERM_TEST_START,
  PIN_LONGTERM_TEST_STOP,
  PIN_LONGTERM_TEST_STRUCT_SIZE,
} from '../gup-test.js';
import type { Kernel } from '../kernel.js';
import { _PAGE_ACCESSED, entryPfn, entryPresent } from '../pgtable/entry.js';
import { PG_referenced } from '../phys/memmap.js';
import type { Process } from '../process.js';
import { machine } from '../testing/helpers.js';
import { pteAt, swapEntryAt } from '../testing/swap.js';
import { folioCheckReferences } from './direct-reclaim.js';
import { makeDeviceExclusive, releaseDeviceExclusive } from './gup.js';
import {
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  type HmmRange,
  hmmPfnFlags,
  hmmRangeFault,
} from './hmm.js';
import { mmapReadLock, mmapReadUnlock } from './locking.js';
import { MmuIntervalNotifier, VM_LOCKED } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const MiB = 1 << 20;

/** A small machine (16 MiB of RAM) with `swapMiB` of swap. */
function small(swapMiB: number) {
  return machine('never', { ramBytes: 16 * MiB, swapBytes: swapMiB * MiB, hugetlbPages: 0 });
}

/** Writes one int per page, a per-page value, n pages from addr. */
function touch(p: Process, addr: number, n: number, salt = 0): void {
  for (let i = 0; i < n; i++) p.writeI32(addr + i * PAGE_SIZE, (i * 2654435761 + salt) | 0);
}

/** The first page whose int differs from {@link touch}'s, or -1. */
function firstBad(p: Process, addr: number, n: number, salt = 0): number {
  for (let i = 0; i < n; i++) if (p.readI32(addr + i * PAGE_SIZE) !== ((i * 2654435761 + salt) | 0)) return i;
  return -1;
}

/** Free RAM in pages (the buddy zone's nr_free). */
function nrFree(k: Kernel): number {
  return k.core.zone.nrFree;
}

describe('direct reclaim before the OOM killer (__alloc_pages_slowpath() -> try_to_free_pages())', () => {
  it('a process touching more anonymous memory than RAM gets it through swap: shrink_folio_list() writes old pages out, nobody is OOM-killed, every page reads back', () => {
    const k = small(128);
    const p = k.spawn();
    const pages = (24 * MiB) / PAGE_SIZE;
    const a = p.mmap(0, pages * PAGE_SIZE, RW, ANON);
    touch(p, a, pages);
    const v = k.core.vmstat;
    expect(v.oom_kill).toBe(0);
    expect(v.allocstall_normal).toBeGreaterThan(0);
    expect(v.pswpout).toBeGreaterThanOrEqual(pages - k.core.ramPages);
    expect(v.pgsteal_direct).toBe(v.pswpout);
    expect(v.pgscan_direct).toBeGreaterThanOrEqual(v.pgsteal_direct);
    expect(p.mm.rss.MM_SWAPENTS).toBeGreaterThan(0);
    expect(p.mm.rss.MM_SWAPENTS + p.mm.rss.MM_ANONPAGES).toBe(pages);
    // Reading the first pages back swaps them in (do_swap_page()), reclaiming others to make room.
    expect(firstBad(p, a, pages)).toBe(-1);
    expect(v.pswpin).toBeGreaterThan(0);
    expect(v.oom_kill).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('a page used again before the scan comes back is not reclaimed (folio_check_references(): young -> kept, young again -> activated); pages used once are', () => {
    const k = small(64);
    const p = k.spawn();
    const hot = p.mmap(0, 64 * PAGE_SIZE, RW, ANON);
    touch(p, hot, 64, 1);
    const cold = p.mmap(0, 1024 * PAGE_SIZE, RW, ANON);
    touch(p, cold, 1024, 2);
    // Allocate three times RAM, reading the hot pages again after every 128 pages.
    const more = 3 * k.core.ramPages;
    const fillAddr = p.mmap(0, more * PAGE_SIZE, RW, ANON | MAP_NORESERVE);
    for (let done = 0; done < more; done += 128) {
      touch(p, fillAddr + done * PAGE_SIZE, 128, 3);
      for (let i = 0; i < 64; i++) p.readI32(hot + i * PAGE_SIZE);
    }
    expect(k.core.vmstat.oom_kill).toBe(0);
    const swapped = (addr: number, n: number) => {
      let c = 0;
      for (let i = 0; i < n; i++) if (!entryPresent(pteAt(k, p, addr + i * PAGE_SIZE)[0])) c++;
      return c;
    };
    expect(swapped(hot, 64)).toBe(0);
    expect(swapped(cold, 1024)).toBe(1024);
    expect(firstBad(p, cold, 1024, 2)).toBe(-1);
    expect(firstBad(p, hot, 64, 1)).toBe(-1);
    expect(k.check()).toEqual([]);
  });

  it('folio_check_references(): first look at a young page -> keep (PG_referenced set, young bit cleared); not used since -> reclaim; used again -> activate; mlocked -> activate', () => {
    const k = small(64);
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeI32(a, 5);
    const head = k.core.map.head[entryPfn(...pteAt(k, p, a))];
    const check = () => k.core.sched.runSync(folioCheckReferences(k.core, head), 'test');
    expect(pteAt(k, p, a)[0] & _PAGE_ACCESSED).toBe(_PAGE_ACCESSED);
    expect(check()).toBe('keep');
    expect(k.core.map.flags[head] & PG_referenced).toBe(PG_referenced);
    expect(pteAt(k, p, a)[0] & _PAGE_ACCESSED).toBe(0);
    expect(check()).toBe('reclaim');
    expect(k.core.map.flags[head] & PG_referenced).toBe(0);
    expect(check()).toBe('reclaim');
    // Used, looked at, used again: activated.
    expect(p.readI32(a)).toBe(5);
    expect(check()).toBe('keep');
    expect(p.readI32(a)).toBe(5);
    expect(check()).toBe('activate');
    const vma = p.mm.vmaLookup(a);
    if (!vma) throw new Error('no VMA');
    vma.flags |= VM_LOCKED;
    expect(check()).toBe('activate');
    vma.flags &= ~VM_LOCKED;
    expect(k.check()).toEqual([]);
  });

  it('without swap, anonymous memory is not scanned (can_reclaim_anon_pages()): reclaim makes no progress and the OOM killer runs', () => {
    const k = small(0);
    const init = k.spawn();
    const c = k.task(init.fork());
    if (!c) throw new Error('fork failed');
    const n = k.core.ramPages;
    const a = c.mmap(0, n * PAGE_SIZE, RW, ANON);
    expect(() => touch(c, a, n)).toThrow(/out of memory/);
    expect(c.state).not.toBe('running');
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(k.core.vmstat.allocstall_normal).toBe(1);
    expect(k.core.vmstat.pgscan_direct).toBe(0);
    expect(k.core.vmstat.pswpout).toBe(0);
    expect(init.waitpid(c.pid)).toBe(c.pid);
    expect(k.check()).toEqual([]);
  });

  it('with swap full, the OOM killer runs after reclaim frees nothing (get_nr_swap_pages() == 0)', () => {
    const k = small(8);
    const init = k.spawn();
    const c = k.task(init.fork());
    if (!c) throw new Error('fork failed');
    const n = k.core.ramPages + (8 * MiB) / PAGE_SIZE;
    const a = c.mmap(0, n * PAGE_SIZE, RW, ANON | MAP_NORESERVE);
    expect(() => touch(c, a, n)).toThrow(/out of memory/);
    expect(k.core.vmstat.oom_kill).toBe(1);
    // Every slot but the header was used before the kill.
    expect(k.core.vmstat.pswpout).toBeGreaterThanOrEqual((8 * MiB) / PAGE_SIZE - 1);
    expect(init.waitpid(c.pid)).toBe(c.pid);
    expect(k.check()).toEqual([]);
  });
  it('lazy-free folios are discarded without swap (MADV_FREE: PG_swapbacked clear, the kernel keeps them on the file LRU); a redirtied page keeps its data', () => {
    const k = small(0);
    const p = k.spawn();
    const lazy = p.mmap(0, 2048 * PAGE_SIZE, RW, ANON);
    touch(p, lazy, 2048, 7);
    expect(p.madvise(lazy, 2048 * PAGE_SIZE, MADV_FREE)).toBe(0);
    // Redirty the first page: try_to_unmap_one() makes it swap-backed again instead of dropping it.
    p.writeI32(lazy, 1234);
    // Ask for 1,000 pages more than RAM has free: only lazy-free pages can make room.
    const n = nrFree(k) + 1000;
    const b = p.mmap(0, n * PAGE_SIZE, RW, ANON);
    touch(p, b, n);
    const v = k.core.vmstat;
    expect(v.oom_kill).toBe(0);
    expect(v.pswpout).toBe(0);
    expect(v.pgsteal_direct).toBeGreaterThanOrEqual(1000);
    expect(p.readI32(lazy)).toBe(1234);
    // A discarded page reads as zero (a fresh fault), a page reclaim did not reach keeps its data.
    let zero = 0;
    for (let i = 1; i < 2048; i++) {
      const x = p.readI32(lazy + i * PAGE_SIZE);
      if (x === 0) zero++;
      else expect(x).toBe((i * 2654435761 + 7) | 0);
    }
    expect(zero).toBe(v.pgsteal_direct);
    expect(firstBad(p, b, n)).toBe(-1);
    expect(k.check()).toEqual([]);
  });
});

describe('what direct reclaim never takes', () => {
  it('mlocked (VM_LOCKED) and pinned pages stay resident; the other process is swapped out instead', () => {
    const k = small(128);
    const p = k.spawn();
    const locked = p.mmap(0, 16 * PAGE_SIZE, RW, ANON);
    touch(p, locked, 16, 11);
    const lv = p.mm.vmaLookup(locked);
    if (!lv) throw new Error('no VMA');
    lv.flags |= VM_LOCKED;
    const pinned = p.mmap(0, 16 * PAGE_SIZE, RW, ANON);
    touch(p, pinned, 16, 12);
    const fd = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    const arg = p.malloc(PIN_LONGTERM_TEST_STRUCT_SIZE);
    const s = new Uint8Array(PIN_LONGTERM_TEST_STRUCT_SIZE);
    const dv = new DataView(s.buffer);
    dv.setBigUint64(0, BigInt(pinned), true);
    dv.setBigUint64(8, BigInt(16 * PAGE_SIZE), true);
    p.writeBytes(arg, s);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_START, arg)).toBe(0);
    const n = k.core.ramPages;
    const b = p.mmap(0, n * PAGE_SIZE, RW, ANON);
    touch(p, b, n);
    expect(k.core.vmstat.oom_kill).toBe(0);
    for (let i = 0; i < 16; i++) {
      expect(entryPresent(pteAt(k, p, locked + i * PAGE_SIZE)[0])).toBe(true);
      expect(entryPresent(pteAt(k, p, pinned + i * PAGE_SIZE)[0])).toBe(true);
    }
    expect(firstBad(p, locked, 16, 11)).toBe(-1);
    expect(firstBad(p, pinned, 16, 12)).toBe(-1);
    expect(p.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('a page mapped device-exclusive is reclaimed like a present one (try_to_unmap_one(): "PFN swap PTEs ... that actually map pages"): swap PTE, no warning; the CPU reads it back', () => {
    const k = small(64);
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 77);
    const pfn = k.core.sched.runSync(
      (function* () {
        yield* mmapReadLock(k.core, p.mm, 'test');
        const r = yield* makeDeviceExclusive(k.core, p.mm, a, {});
        mmapReadUnlock(k.core, p.mm, 'test');
        return r;
      })(),
      'make_device_exclusive',
    );
    expect(pfn).toBeGreaterThan(0);
    releaseDeviceExclusive(k.core, pfn);
    expect(entryPresent(pteAt(k, p, a)[0])).toBe(false);
    const n = k.core.ramPages;
    const b = p.mmap(0, n * PAGE_SIZE, RW, ANON | MAP_NORESERVE);
    touch(p, b, n);
    expect(swapEntryAt(k, p, a)).toBeGreaterThanOrEqual(0);
    expect(k.core.warnings).toEqual([]);
    expect(p.readI32(a)).toBe(77);
    expect(k.check()).toEqual([]);
  });

  it('hmm_range_fault(HMM_PFN_REQ_FAULT) on a machine with no free page gets its pages through reclaim (hmm_vma_fault() -> handle_mm_fault())', () => {
    const k = small(64);
    const p = k.spawn();
    const n = k.core.ramPages;
    const b = p.mmap(0, n * PAGE_SIZE, RW, ANON | MAP_NORESERVE);
    touch(p, b, n);
    const a = p.mmap(0, 64 * PAGE_SIZE, RW, ANON);
    const range: HmmRange = {
      notifier: new MmuIntervalNotifier(p.mm, a, a + 64 * PAGE_SIZE, {
        *invalidate() {
          return true;
        },
      }),
      notifierSeq: 0,
      start: a,
      end: a + 64 * PAGE_SIZE,
      hmmPfns: new Float64Array(64),
      defaultFlags: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
      pfnFlagsMask: 0,
      devPrivateOwner: null,
    };
    const stalls = k.core.vmstat.allocstall_normal;
    const r = k.sched.runSync(
      (function* () {
        yield* mmapReadLock(k.core, p.mm, 'hmm');
        try {
          return yield* hmmRangeFault(k.core, range);
        } finally {
          mmapReadUnlock(k.core, p.mm, 'hmm');
        }
      })(),
      'hmm_range_fault',
    );
    expect(r).toBe(0);
    expect(k.core.vmstat.allocstall_normal).toBeGreaterThan(stalls);
    for (let i = 0; i < 64; i++) expect(hmmPfnFlags(range.hmmPfns[i]) & HMM_PFN_VALID).toBe(HMM_PFN_VALID);
    expect(k.check()).toEqual([]);
  });

  it('MAP_POPULATE larger than free RAM is populated through reclaim (__mm_populate() faults retry after try_to_free_pages())', () => {
    const k = small(128);
    const p = k.spawn();
    const n = k.core.ramPages;
    const a = p.mmap(0, n * PAGE_SIZE, RW, ANON | MAP_POPULATE);
    expect(a).toBeGreaterThan(0);
    expect(k.core.vmstat.oom_kill).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES + p.mm.rss.MM_SWAPENTS).toBe(n);
    expect(nrFree(k)).toBeLessThan(64);
    expect(k.check()).toEqual([]);
  });
});
