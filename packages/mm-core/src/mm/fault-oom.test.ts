import { describe, expect, it } from 'vitest';
import {
  EFAULT,
  ENOMEM,
  FOLL_WRITE,
  HPAGE_PMD_ORDER,
  HPAGE_PMD_SIZE,
  MADV_HUGEPAGE,
  MADV_POPULATE_WRITE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import { markOomVictim, oomSysctls } from '../oom.js';
import { ALLOC_NO_WATERMARKS } from '../phys/buddy.js';
import type { Process } from '../process.js';
import type { KGen } from '../sched/task.js';
import { childWithPages, machine, pmdKind } from '../testing/helpers.js';
import { pageout } from '../testing/swap.js';
import { faultOomSlowpath } from './fault-oom.js';
import { FOLL_PIN, getUserPages, putUserPages } from './gup.js';
import {
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  type HmmRange,
  hmmPfnFlags,
  hmmRangeFault,
} from './hmm.js';
import { mmapReadLock, mmapReadUnlock } from './locking.js';
import { SWAP_DEVICE_PATH } from './swapoff.js';
import { MmuIntervalNotifier } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const P = PAGE_SIZE;

/**
 * A machine where `p` (small) and `big` run, every allocation fails while `big` is alive, and
 * vm.oom_kill_allocating_task is `policy`.
 */
function starved(policy: number): { k: Kernel; p: Process; big: Process } {
  const k = machine();
  oomSysctls(k.core).oom_kill_allocating_task = policy;
  const p = childWithPages(k, 2);
  const big = childWithPages(k, 64);
  k.core.zone.failHook = () => big.state === 'running';
  return { k, p, big };
}

/** Runs `body` as a thread of p inside a syscall (a driver ioctl that faults on the process's behalf). */
function inSyscall<T>(k: Kernel, p: Process, body: () => KGen<T>, kthread = false): T {
  return k.sched.runSync(
    (function* () {
      const t = k.sched.current;
      p.inKernel++;
      if (kthread) t.kthreadWork++;
      try {
        return yield* body();
      } finally {
        if (kthread) t.kthreadWork--;
        p.inKernel--;
      }
    })(),
    'ioctl',
    p,
  );
}

/** hmm_range_fault(HMM_PFN_REQ_FAULT | WRITE) of `pages` pages at a under the mmap read lock. */
function hmmFault(
  k: Kernel,
  p: Process,
  a: number,
  pages: number,
  kthread = false,
): { r: number; range: HmmRange } {
  const range: HmmRange = {
    notifier: new MmuIntervalNotifier(p.mm, a, a + pages * P, {
      *invalidate() {
        return true;
      },
    }),
    notifierSeq: 0,
    start: a,
    end: a + pages * P,
    hmmPfns: new Float64Array(pages),
    defaultFlags: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
    pfnFlagsMask: 0,
    devPrivateOwner: null,
  };
  const r = inSyscall(
    k,
    p,
    function* () {
      yield* mmapReadLock(k.core, p.mm, 'test');
      try {
        return yield* hmmRangeFault(k.core, range);
      } finally {
        mmapReadUnlock(k.core, p.mm, 'test');
      }
    },
    kthread,
  );
  return { r, range };
}

describe("faults on a process's behalf run the allocator's OOM killer (__alloc_pages_slowpath() -> __alloc_pages_may_oom())", () => {
  it('hmm_range_fault(), vm.oom_kill_allocating_task=0: the biggest process is killed and the fault gets its pages', () => {
    const { k, p, big } = starved(0);
    const a = p.mmap(0, 4 * P, RW, ANON);
    const { r, range } = hmmFault(k, p, a, 4);
    expect(r).toBe(0);
    for (let i = 0; i < 4; i++) expect(hmmPfnFlags(range.hmmPfns[i]) & HMM_PFN_VALID).toBe(HMM_PFN_VALID);
    expect(big.state).not.toBe('running');
    expect(big.status & 0x7f).toBe(SIGKILL);
    expect(p.state).toBe('running');
    expect(p.oomVictim).toBe(false);
    expect(k.core.vmstat.oom_kill).toBe(1);
    k.core.zone.failHook = undefined;
    expect(k.check()).toEqual([]);
  });

  it('hmm_range_fault(), vm.oom_kill_allocating_task=1: the faulting process is the victim, its allocation fails and hmm_vma_fault() returns -EFAULT; the other process lives', () => {
    const { k, p, big } = starved(1);
    const a = p.mmap(0, 4 * P, RW, ANON);
    expect(hmmFault(k, p, a, 4).r).toBe(-EFAULT);
    expect(p.oomVictim).toBe(true);
    expect(p.fatalSignal).toBe(SIGKILL);
    expect(big.state).toBe('running');
    expect(k.core.vmstat.oom_kill).toBe(1);
    k.core.zone.failHook = undefined;
  });

  it("a fault run as a kernel thread's work (nouveau's fault worker, Task.kthreadWork) is never current's OOM kill: select_bad_process() picks the biggest process even under vm.oom_kill_allocating_task=1", () => {
    const { k, p, big } = starved(1);
    const a = p.mmap(0, 4 * P, RW, ANON);
    expect(hmmFault(k, p, a, 4, true).r).toBe(0);
    expect(p.oomVictim).toBe(false);
    expect(big.status & 0x7f).toBe(SIGKILL);
    expect(k.core.vmstat.oom_kill).toBe(1);
    k.core.zone.failHook = undefined;
    expect(k.check()).toEqual([]);
  });

  it('pin_user_pages() (__get_user_pages() -> faultin_page()), vm.oom_kill_allocating_task=0: another process is killed and every page is pinned', () => {
    const { k, p, big } = starved(0);
    const a = p.mmap(0, 4 * P, RW, ANON);
    const pfns = inSyscall(k, p, function* () {
      yield* mmapReadLock(k.core, p.mm, 'test');
      try {
        return yield* getUserPages(k.core, p.mm, a, 4, FOLL_WRITE | FOLL_PIN);
      } finally {
        mmapReadUnlock(k.core, p.mm, 'test');
      }
    });
    expect(Array.isArray(pfns) && pfns.length).toBe(4);
    expect(big.status & 0x7f).toBe(SIGKILL);
    k.core.zone.failHook = undefined;
    if (Array.isArray(pfns)) putUserPages(k.core, pfns, FOLL_WRITE | FOLL_PIN);
    expect(k.check()).toEqual([]);
  });

  it('madvise(MADV_POPULATE_WRITE), vm.oom_kill_allocating_task=0: another process is killed and the range is populated (it was -ENOMEM after reclaim alone)', () => {
    const { k, p, big } = starved(0);
    const a = p.mmap(0, 8 * P, RW, ANON);
    expect(p.madvise(a, 8 * P, MADV_POPULATE_WRITE)).toBe(0);
    expect(big.status & 0x7f).toBe(SIGKILL);
    expect(p.mm.rss.MM_ANONPAGES).toBeGreaterThanOrEqual(8);
    k.core.zone.failHook = undefined;
    expect(k.check()).toEqual([]);
  });

  it('madvise(MADV_POPULATE_WRITE), vm.oom_kill_allocating_task=1: the populating process is the victim and madvise() returns -ENOMEM', () => {
    const { k, p, big } = starved(1);
    const a = p.mmap(0, 8 * P, RW, ANON);
    expect(p.madvise(a, 8 * P, MADV_POPULATE_WRITE)).toBe(-ENOMEM);
    expect(p.oomVictim).toBe(true);
    expect(big.state).toBe('running');
    k.core.zone.failHook = undefined;
  });

  it('a VM_FAULT_OOM with memory to spare (a handler that failed without the allocator running out) takes no slow path: no reclaim stall, no OOM kill', () => {
    const k = machine();
    const stalls = k.core.vmstat.allocstall_normal;
    const retry = k.sched.runSync(
      faultOomSlowpath(k.core, 0, 'test', k.sched.current.allocShortFailures),
      'test',
    );
    expect(retry).toBe(false);
    expect(k.core.vmstat.allocstall_normal).toBe(stalls);
    expect(k.core.vmstat.oom_kill).toBe(0);
  });
});

describe("swapoff(2)'s swap-in runs the OOM killer, which chooses swapoff's own process first (set_current_oom_origin(), oom_task_origin())", () => {
  it('vm.oom_kill_allocating_task=0: the swapoff caller is killed although another process is bigger, swapoff fails with -ENOMEM and the area stays on; the pages stay swapped out', () => {
    const k = machine();
    oomSysctls(k.core).oom_kill_allocating_task = 0;
    const p = childWithPages(k, 4);
    const caller = childWithPages(k, 2);
    const big = childWithPages(k, 64);
    const a = p.mmap(0, 4 * P, RW, ANON);
    for (let i = 0; i < 4; i++) p.writeI32(a + i * P, 700 + i);
    expect(pageout(k, p, a, 4 * P)).toBe(4);
    k.core.zone.failHook = () => caller.state === 'running';
    expect(caller.swapoff(SWAP_DEVICE_PATH)).toBe(-ENOMEM);
    k.core.zone.failHook = undefined;
    expect(caller.oomVictim).toBe(true);
    expect(caller.oomFlagOrigin).toBe(false);
    expect(big.state).toBe('running');
    expect(big.oomVictim).toBe(false);
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(p.mm.rss.MM_SWAPENTS).toBe(4);
    for (let i = 0; i < 4; i++) expect(p.readI32(a + i * P)).toBe(700 + i);
    expect(k.check()).toEqual([]);
  });
});

describe("an OOM victim's allocations may take half of the min reserve (__gfp_pfmemalloc_flags() -> ALLOC_OOM)", () => {
  /**
   * A machine with a 256-page min watermark (vm.min_free_kbytes=1024) and no swap (reclaim frees
   * nothing), its zone drained to `free` pages.
   */
  function drained(free: number): { k: Kernel; p: Process; held: [number, number][] } {
    const k = machine('madvise', { minFreeKbytes: 1024, swapBytes: 0 });
    const p = childWithPages(k, 2);
    const z = k.core.zone;
    expect(z.minFree).toBe(256);
    const held: [number, number][] = [];
    for (const order of [HPAGE_PMD_ORDER, 0])
      while (z.nrFree - (1 << order) >= free + (order ? 1 << order : 0))
        held.push([z.alloc(order, ALLOC_NO_WATERMARKS), order]);
    expect(z.nrFree).toBe(free);
    return { k, p, held };
  }
  function release(k: Kernel, held: [number, number][]): void {
    for (const [pfn, order] of held) k.core.zone.free(pfn, order);
  }

  it("hmm_range_fault() by a victim at the min watermark gets its pages from the reserve, where another process's fault fails", () => {
    const { k, p, held } = drained(256);
    const a = p.mmap(0, 4 * P, RW, ANON);
    markOomVictim(p);
    const { r, range } = hmmFault(k, p, a, 4);
    expect(r).toBe(0);
    for (let i = 0; i < 4; i++) expect(hmmPfnFlags(range.hmmPfns[i]) & HMM_PFN_VALID).toBe(HMM_PFN_VALID);
    // Four pages below the watermark (the PTE table was there: p's first pages share it).
    expect(k.core.zone.nrFree).toBe(256 - 4);
    expect(k.core.vmstat.oom_kill).toBe(0);
    release(k, held);
    expect(k.check()).toEqual([]);
  });

  it("the reserve stops at half the min watermark: a victim's fault then fails (goto nopage) and nothing is killed", () => {
    const { k, p, held } = drained(128);
    const a = p.mmap(0, 4 * P, RW, ANON);
    markOomVictim(p);
    expect(hmmFault(k, p, a, 4).r).toBe(-EFAULT);
    expect(k.core.vmstat.oom_kill).toBe(0);
    expect(k.core.zone.nrFree).toBe(128);
    release(k, held);
  });

  it("a victim's THP fault is __GFP_NOMEMALLOC (GFP_TRANSHUGE_LIGHT): no reserve for the huge folio, the fault falls back to small pages", () => {
    // 700 free pages: a PMD folio would leave 188, above half the reserve (128), below the watermark (256).
    const { k, p, held } = drained(700);
    expect(k.core.zone.canAlloc(HPAGE_PMD_ORDER)).toBe(true);
    const a = p.mmap(0, 2 * HPAGE_PMD_SIZE, RW, ANON);
    const h = Math.ceil(a / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE;
    expect(p.madvise(a, 2 * HPAGE_PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    markOomVictim(p);
    expect(hmmFault(k, p, h, 1).r).toBe(0);
    expect(pmdKind(k, p, h)).toBe('table');
    release(k, held);
    expect(k.check()).toEqual([]);
  });
});
