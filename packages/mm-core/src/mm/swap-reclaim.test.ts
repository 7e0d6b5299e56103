import { describe, expect, it } from 'vitest';
import {
  FOLL_WRITE,
  MADV_FREE,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { walkPfn } from '../cpu.js';
import { folioGet, folioPut, folioUnlock } from '../folio.js';
import { registerRefHolder } from '../invariants.js';
import type { Kernel } from '../kernel.js';
import { KernelBug } from '../kernel-bug.js';
import { PG_lru, PG_swapbacked, PG_swapcache } from '../phys/memmap.js';
import type { Process } from '../process.js';
import { parseSchedule } from '../sched/schedule.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { meminfoKb, pageout, pageoutGen, pteAt, swapEntryAt } from '../testing/swap.js';
import { FOLL_PIN, getUserPages, putUserPages } from './gup.js';
import {
  HMM_PFN_REQ_FAULT,
  HMM_PFN_VALID,
  type HmmRange,
  hmmPfnFlags,
  hmmPfnToPfn,
  hmmRangeFault,
} from './hmm.js';
import { folioLockWait, mmapReadLock, mmapReadUnlock } from './locking.js';
import { splitFolioMapped } from './split.js';
import { swpEntryOffset } from './swapfile.js';
import { MmuIntervalNotifier, VM_LOCKED } from './types.js';
import { reclaimPages } from './vmscan.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** The pfn mapped at addr of p (a CPU walk), or -1. */
function pfnAt(k: Kernel, p: Process, addr: number): number {
  return walkPfn(k.core, p.mm, addr, false);
}

describe('what reclaim keeps (shrink_folio_list())', () => {
  it('never reclaims a folio that may be DMA-pinned (folio_maybe_dma_pinned()): no swap slot is taken', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeI32(a, 1);
    p.writeI32(a + PAGE_SIZE, 2);
    const pins = k.core.sched.runSync(
      (function* () {
        yield* mmapReadLock(k.core, p.mm, 'pin_user_pages');
        const r = yield* getUserPages(k.core, p.mm, a, 1, FOLL_PIN | FOLL_WRITE);
        mmapReadUnlock(k.core, p.mm, 'pin_user_pages');
        return r;
      })(),
      'pin_user_pages',
    );
    if (typeof pins === 'number') throw new Error(`pin failed: ${pins}`);
    const swapFree = meminfoKb(p, 'SwapFree');
    expect(pageout(k, p, a, 2 * PAGE_SIZE)).toBe(1);
    expect(swapEntryAt(k, p, a)).toBe(-1);
    expect(swapEntryAt(k, p, a + PAGE_SIZE)).toBeGreaterThan(0);
    expect(meminfoKb(p, 'SwapFree')).toBe(swapFree - 4);
    putUserPages(k.core, pins, FOLL_PIN);
    expect(pageout(k, p, a, 2 * PAGE_SIZE)).toBe(1);
    expect(p.readI32(a)).toBe(1);
    expect(p.readI32(a + PAGE_SIZE)).toBe(2);
    expect(k.check()).toEqual([]);
  });

  it('keeps an unmapped folio with an extra reference in the swap cache (pageout(): PAGE_KEEP); swap-in then finds it there', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 77);
    const refs = k.core.sched.runSync(
      (function* () {
        yield* mmapReadLock(k.core, p.mm, 'get_user_pages');
        const r = yield* getUserPages(k.core, p.mm, a, 1, 0);
        mmapReadUnlock(k.core, p.mm, 'get_user_pages');
        return r;
      })(),
      'get_user_pages',
    );
    if (typeof refs === 'number') throw new Error(`gup failed: ${refs}`);
    const unregister = registerRefHolder(k.core, (_c, add) => {
      for (const pfn of refs) add(pfn, 1);
    });
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(0);
    // Unmapped (a swap PTE), but still in memory in the swap cache, not written.
    expect(swapEntryAt(k, p, a)).toBeGreaterThan(0);
    expect(k.core.map.flags[refs[0]] & PG_swapcache).toBe(PG_swapcache);
    expect(k.core.vmstat.pswpout).toBe(0);
    expect(meminfoKb(p, 'SwapCached')).toBe(4);
    const maj = k.core.vmstat.pgmajfault;
    expect(p.readI32(a)).toBe(77);
    expect(k.core.vmstat.pgmajfault).toBe(maj);
    expect(k.core.vmstat.pswpin).toBe(0);
    expect(k.check()).toEqual([]);
    putUserPages(k.core, refs, 0);
    unregister();
    expect(k.check()).toEqual([]);
  });

  it('stops at a full swap area: what did not get a slot stays resident', () => {
    // 64 KiB of swap: 15 slots after the header.
    const k = machine('madvise', { swapBytes: 64 * 1024 });
    const p = k.spawn();
    const a = p.mmap(0, 32 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 32; i++) p.writeI32(a + i * PAGE_SIZE, i + 100);
    expect(pageout(k, p, a, 32 * PAGE_SIZE)).toBe(15);
    expect(meminfoKb(p, 'SwapFree')).toBe(0);
    expect(p.mm.rss.MM_SWAPENTS).toBe(15);
    expect(p.mm.rss.MM_ANONPAGES).toBe(17);
    for (let i = 0; i < 32; i++) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i + 100);
    expect(k.check()).toEqual([]);
  });

  it('drops the swap cache on swap-in once swap is more than half full (vm_swap_full())', () => {
    const k = machine('madvise', { swapBytes: 64 * 1024 });
    const p = k.spawn();
    const a = p.mmap(0, 10 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 10; i++) p.writeI32(a + i * PAGE_SIZE, i);
    // 10 of 15 slots used: more than half.
    expect(pageout(k, p, a, 10 * PAGE_SIZE)).toBe(10);
    expect(p.readI32(a)).toBe(0);
    expect(meminfoKb(p, 'SwapCached')).toBe(0);
    expect(meminfoKb(p, 'SwapFree')).toBe(6 * 4);
    expect(k.check()).toEqual([]);
  });
});

describe("lazy-free folios (try_to_unmap_one()'s MADV_FREE branch)", () => {
  /** MADV_FREE: folio_mark_lazyfree() clears PG_swapbacked of every folio in the range. */
  function lazyfree(k: Kernel, p: Process, a: number, len: number): void {
    expect(p.madvise(a, len, MADV_FREE)).toBe(0);
    const m = k.core.map;
    for (let x = a; x < a + len; x += PAGE_SIZE) {
      const pfn = pfnAt(k, p, x);
      if (pfn >= 0) expect(m.flags[m.head[pfn]] & PG_swapbacked).toBe(0);
    }
  }

  it('discards a clean lazy-free page without swap I/O; a redirtied one becomes swap-backed again and is kept', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeI32(a, 1);
    p.writeI32(a + PAGE_SIZE, 2);
    lazyfree(k, p, a, 2 * PAGE_SIZE);
    p.writeI32(a + PAGE_SIZE, 3);
    expect(pageout(k, p, a, 2 * PAGE_SIZE)).toBe(1);
    expect(k.core.vmstat.pswpout).toBe(0);
    expect(pteAt(k, p, a)).toEqual([0, 0]);
    expect(p.readI32(a)).toBe(0);
    expect(p.readI32(a + PAGE_SIZE)).toBe(3);
    const pfn = pfnAt(k, p, a + PAGE_SIZE);
    expect(k.core.map.flags[pfn] & PG_swapbacked).toBe(PG_swapbacked);
    expect(k.check()).toEqual([]);
  });

  it('discards a clean lazy-free PMD-mapped THP whole (unmap_huge_pmd_locked())', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    p.writeI32(a + 8, 5);
    expect(pmdKind(k, p, a)).toBe('huge');
    lazyfree(k, p, a, PMD_SIZE);
    const splits = k.core.vmstat.thp_split_pmd;
    expect(pageout(k, p, a, PMD_SIZE)).toBe(512);
    expect(k.core.vmstat.thp_split_pmd).toBe(splits);
    expect(pmdKind(k, p, a)).toBe('none');
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    expect(p.readI32(a + 8)).toBe(0);
    expect(k.check()).toEqual([]);
  });
});

describe('reclaim of a partially mapped THP (split_folio_to_list())', () => {
  it('splits a THP on the deferred split queue and swaps out only its mapped pages', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    // No page is all zeros (an all-zero piece of the split would become the zero page).
    for (let i = 0; i < 512; i++) p.writeI32(a + i * PAGE_SIZE, i * 3 + 1);
    // Unmapping half of it splits the PMD and queues the folio for deferred split.
    expect(p.munmap(a + PMD_SIZE / 2, PMD_SIZE / 2)).toBe(0);
    const free = k.core.zone.nrFree;
    expect(pageout(k, p, a, PMD_SIZE / 2)).toBe(256);
    expect(k.core.vmstat.thp_split_page).toBe(1);
    expect(k.core.vmstat.thp_swpout).toBe(0);
    expect(k.core.vmstat.pswpout).toBe(256);
    // The unmapped half was freed without I/O, the mapped half after its write.
    expect(k.core.zone.nrFree).toBe(free + 512);
    for (let i = 0; i < 256; i++) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i * 3 + 1);
    expect(k.check()).toEqual([]);
  });
});

describe('the invariant checker and check_mm() on swap state', () => {
  it('reports a swap count that disagrees with the swap PTEs, and a slot leaked without a swap PTE', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeI32(a, 1);
    p.writeI32(a + PAGE_SIZE, 2);
    pageout(k, p, a, 2 * PAGE_SIZE);
    const si = k.core.swapInfo[0];
    const off = swpEntryOffset(swapEntryAt(k, p, a));
    si.swapMap[off]++;
    expect(k.check().join('\n')).toMatch(/swap slot 0:0x[0-9a-f]+: swap count 2 but 1 swap PTEs/);
    si.swapMap[off]--;
    expect(k.check()).toEqual([]);
    // A swap PTE cleared behind the kernel's back: the slot leaks and MM_SWAPENTS is off.
    const off2 = swpEntryOffset(swapEntryAt(k, p, a + PAGE_SIZE));
    si.swapMap[off2]++;
    p.mm.rss.MM_SWAPENTS++;
    const v = k.check().join('\n');
    expect(v).toMatch(/swap count 2 but 1 swap PTEs/);
    expect(v).toMatch(/rss MM_SWAPENTS is 3 but page tables map 2/);
    si.swapMap[off2]--;
    p.mm.rss.MM_SWAPENTS--;
    expect(k.check()).toEqual([]);
  });

  it('check_mm() reports swap entries the page tables no longer hold ("BUG: Bad rss-counter state")', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 1);
    pageout(k, p, a, PAGE_SIZE);
    p.mm.rss.MM_SWAPENTS++;
    let err: unknown;
    try {
      k.sched.runSync(p.exitGen(0), 'exit');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelBug);
    expect((err as KernelBug).message).toMatch(/Bad rss-counter state .*swapents=1/);
  });
});

describe('hmm_range_fault() over a swap entry (hmm_vma_handle_pte())', () => {
  function range(p: Process, a: number, n: number, flags: number): HmmRange {
    const sub = new MmuIntervalNotifier(p.mm, a, a + n * PAGE_SIZE, {
      *invalidate() {
        return true;
      },
    });
    const r: HmmRange = {
      notifier: sub,
      notifierSeq: 0,
      start: a,
      end: a + n * PAGE_SIZE,
      hmmPfns: new Float64Array(n),
      defaultFlags: flags,
      pfnFlagsMask: 0,
      devPrivateOwner: null,
    };
    return r;
  }

  it('reports 0 without a fault request and swaps the page in with HMM_PFN_REQ_FAULT', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeI32(a, 41);
    p.writeI32(a + PAGE_SIZE, 42);
    pageout(k, p, a, 2 * PAGE_SIZE);
    const walk = (r: HmmRange) =>
      k.sched.runSync(
        (function* () {
          yield* mmapReadLock(k.core, p.mm, 'hmm');
          try {
            return yield* hmmRangeFault(k.core, r);
          } finally {
            mmapReadUnlock(k.core, p.mm, 'hmm');
          }
        })(),
        'hmm_range_fault',
      );
    const snap = range(p, a, 2, 0);
    expect(walk(snap)).toBe(0);
    expect([...snap.hmmPfns]).toEqual([0, 0]);
    expect(p.mm.rss.MM_SWAPENTS).toBe(2);
    const fault = range(p, a, 2, HMM_PFN_REQ_FAULT);
    expect(walk(fault)).toBe(0);
    expect(hmmPfnFlags(fault.hmmPfns[0]) & HMM_PFN_VALID).toBe(HMM_PFN_VALID);
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expect(k.core.vmstat.pswpin).toBe(2);
    const pfn = hmmPfnToPfn(fault.hmmPfns[1]);
    expect(
      new DataView(k.core.frames.page(pfn).buffer, k.core.frames.page(pfn).byteOffset).getInt32(0, true),
    ).toBe(42);
    expect(k.check()).toEqual([]);
  });
});

describe('swap under concurrency (seeded schedules)', () => {
  it('faults, writes, reclaim, fork and munmap racing on swapped pages keep the data and every invariant', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const k = machine();
      const p = k.spawn();
      const n = 8;
      const a = p.mmap(0, n * PAGE_SIZE, RW, ANON);
      for (let i = 0; i < n; i++) p.writeI32(a + i * PAGE_SIZE, i + 1);
      pageout(k, p, a, n * PAGE_SIZE);
      k.sched.setStrategy(parseSchedule(`random:seed=${seed},p=0.5`));
      const buf = new Uint8Array(4);
      new DataView(buf.buffer).setInt32(0, 1000 + seed, true);
      const t1 = p.clone().spawn('read', p.sys.access(a + 2 * PAGE_SIZE, new Uint8Array(4), 'read'));
      const t2 = p.clone().spawn('write', p.sys.access(a + 3 * PAGE_SIZE, buf, 'write'));
      const t3 = p.clone().spawn('pageout', pageoutGen(k.core, p.mm, a, n * PAGE_SIZE));
      const t4 = p.clone().spawn('read2', p.sys.access(a + 2 * PAGE_SIZE, new Uint8Array(4), 'read'));
      const t5 = p.clone().spawn('munmap', p.sys.munmap(a + 6 * PAGE_SIZE, PAGE_SIZE));
      const t6 = p.clone().spawn('fork', p.forkGen());
      k.sched.runAll();
      expect([t1.result, t2.result, t4.result, t5.result]).toEqual([0, 0, 0, 0]);
      expect(t3.result).toBeGreaterThanOrEqual(0);
      expect(t6.result).toBeGreaterThan(0);
      expect(k.check()).toEqual([]);
      const c = k.task(t6.result as number);
      for (const q of c ? [p, c] : [p]) {
        for (const i of [0, 1, 2, 4, 5, 7]) expect(q.readI32(a + i * PAGE_SIZE)).toBe(i + 1);
      }
      expect(p.readI32(a + 3 * PAGE_SIZE)).toBe(1000 + seed);
      expect(k.check()).toEqual([]);
    }
  });
});

describe('a THP kept in the swap cache (large swap-cache folios)', () => {
  /**
   * A THP shared with a child whose VMA is mlocked (VM_LOCKED set as mlock() would): reclaim
   * gives it a cluster and turns the parent's PMD into 512 swap PTEs, then try_to_unmap_one()
   * stops at the locked VMA, so the folio stays mapped by the child and in the swap cache.
   */
  function keptThp(k: Kernel, p: Process): { a: number; head: number; child: Process } {
    const a = p.mmap(0, PMD_SIZE, RW, ANON);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    for (let i = 0; i < 512; i++) p.writeI32(a + i * PAGE_SIZE, i + 9);
    const child = k.task(p.fork());
    if (!child) throw new Error('fork failed');
    const cv = child.mm.vmaLookup(a);
    if (!cv) throw new Error('no child VMA');
    cv.flags |= VM_LOCKED;
    const head = k.core.map.head[pfnAt(k, p, a)];
    k.core.map.flags[head] &= ~PG_lru;
    folioGet(k.core, head);
    expect(k.core.sched.runSync(reclaimPages(k.core, [head]), 'reclaim')).toBe(0);
    k.afterSyscall('reclaim');
    expect(p.mm.rss.MM_SWAPENTS).toBe(512);
    expect(pmdKind(k, child, a)).toBe('huge');
    expect(k.core.map.folioOrder(head)).toBe(9);
    expect(k.core.map.flags[head] & PG_swapcache).toBe(PG_swapcache);
    expect(k.core.vmstat.pswpout).toBe(0);
    return { a, head, child };
  }

  it('maps the whole folio back on one fault when all its swap PTEs are still in place (do_swap_page() large swap-cache folio)', () => {
    const k = machine();
    const p = k.spawn();
    const { a, head, child } = keptThp(k, p);
    expect(p.readI32(a + 100 * PAGE_SIZE)).toBe(109);
    expect(p.mm.rss.MM_SWAPENTS).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES).toBe(512);
    // The child's PMD mapping and the parent's 512 PTEs.
    expect(k.core.map.largeMapcount[head]).toBe(513);
    expect(k.core.vmstat.pswpin).toBe(0);
    for (let i = 0; i < 512; i += 37) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i + 9);
    expect(k.check()).toEqual([]);
    // A write COWs (the page is shared with the child); the child keeps its data.
    p.writeI32(a, -5);
    expect(child.readI32(a)).toBe(9);
    expect(k.check()).toEqual([]);
  });

  it('maps single pages of it when some swap PTEs are gone, and splits it with the swap cache references', () => {
    const k = machine();
    const p = k.spawn();
    const { a, head, child } = keptThp(k, p);
    expect(p.munmap(a + PMD_SIZE / 2, PMD_SIZE / 2)).toBe(0);
    expect(p.mm.rss.MM_SWAPENTS).toBe(256);
    expect(p.readI32(a + 3 * PAGE_SIZE)).toBe(12);
    expect(p.mm.rss.MM_SWAPENTS).toBe(255);
    expect(k.core.map.largeMapcount[head]).toBe(2);
    expect(k.check()).toEqual([]);
    child.exit(0);
    p.waitpid(child.pid);
    expect(k.check()).toEqual([]);
    // split_folio() of the mapped swap-cache folio: every piece keeps its slot's cache entry.
    const r = k.core.sched.runSync(
      (function* () {
        folioGet(k.core, head);
        yield* folioLockWait(k.core, head, 'test');
        const e = yield* splitFolioMapped(k.core, head);
        folioUnlock(k.core, head);
        folioPut(k.core, head);
        return e;
      })(),
      'split',
    );
    expect(r).toBe(0);
    expect(k.core.map.folioOrder(head)).toBe(0);
    for (let i = 0; i < 256; i++) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i + 9);
    expect(k.check()).toEqual([]);
    p.exit(0);
    expect(meminfoKb(k.spawn(), 'SwapFree')).toBe(meminfoKb(k.spawn(), 'SwapTotal'));
    expect(k.check()).toEqual([]);
  });
});
