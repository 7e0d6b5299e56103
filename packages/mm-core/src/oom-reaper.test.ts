import { describe, expect, it } from 'vitest';
import {
  EAGAIN,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  SIGBUS,
} from './constants.js';
import type { SignalDelivered } from './errors.js';
import type { Kernel } from './kernel.js';
import { mmgetNotZero, mmput } from './mm/exit.js';
import { mmapWriteLock, mmapWriteUnlock } from './mm/locking.js';
import {
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierRegister,
  withInvalidationSync,
} from './mm/notifier.js';
import {
  MMU_NOTIFY_CLEAR,
  type MmStruct,
  MmuIntervalNotifier,
  MmuNotifier,
  type MmuNotifierRange,
  mmuNotifierRangeBlockable,
} from './mm/types.js';
import { type OomTask, oomKillProcess } from './oom.js';
import { MAX_OOM_REAP_RETRIES, oomReapTask, oomReapTaskMm } from './oom-reaper.js';
import type { Process } from './process.js';
import { LockFinding } from './sched/findings.js';
import type { KGen } from './sched/task.js';
import { childWithPages, machine } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const SHARED_ANON = MAP_SHARED | MAP_ANONYMOUS;
const P = PAGE_SIZE;

/** A driver-like interval notifier over the whole address space that never needs to sleep. */
function interval(mm: MmStruct): MmuIntervalNotifier {
  const sub = new MmuIntervalNotifier(mm, 0, 2 ** 47, {
    invalidate(s, _r, cur) {
      mmuIntervalSetSeq(s, cur);
      return true;
    },
  });
  expect(mmuIntervalNotifierInsert(sub)).toBe(0);
  return sub;
}

/**
 * An hlist subscription with the rule of nouveau_svmm_invalidate_range_start() (nouveau_svm.c):
 * "if (!mmu_notifier_range_blockable(update)) return -EAGAIN;". Records what it was called with.
 */
function refusingHlist(mm: MmStruct): string[] {
  const log: string[] = [];
  const sub = new MmuNotifier({
    invalidateRangeStart: (_s, r) => {
      log.push(mmuNotifierRangeBlockable(r) ? 'start' : 'start nonblock');
      return mmuNotifierRangeBlockable(r) ? 0 : -EAGAIN;
    },
  });
  expect(mmuNotifierRegister(sub, mm)).toBe(0);
  return log;
}

function nonblockRange(mm: MmStruct, start: number, end: number): MmuNotifierRange {
  return { mm, start, end, event: MMU_NOTIFY_CLEAR, owner: null, nonblock: true };
}

function run<T>(k: Kernel, gen: KGen<T>, name = 'oom_reaper'): T {
  return k.core.sched.runSync(gen, name);
}

describe('the OOM reaper (mm/oom_kill.c)', () => {
  it('zaps the private memory of the victim, leaves shared memory, and marks the mm unstable and skipped', () => {
    const k = machine();
    const p = k.task(1)!;
    const priv = p.mmap(0, 64 * P, RW, ANON);
    const shared = p.mmap(0, 16 * P, RW, SHARED_ANON);
    for (let i = 0; i < 64; i++) p.writeI32(priv + i * P, i + 1);
    for (let i = 0; i < 16; i++) p.writeI32(shared + i * P, 100 + i);
    expect(p.mm.rss.MM_ANONPAGES).toBe(64);
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(16);
    const r = run(k, oomReapTask(k.core, p.mm));
    expect(r).toEqual({ attempts: 1, reaped: true });
    expect(p.mm.unstable).toBe(true);
    expect(p.mm.oomSkip).toBe(true);
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    expect(p.mm.rss.MM_SHMEMPAGES).toBe(16);
    // The shared pages are still mapped with their data; the private ones are gone.
    expect(p.readI32(shared + 3 * P)).toBe(103);
    expect(k.check()).toEqual([]);
  });

  it('never waits for the mmap_lock: with a writer holding it every attempt fails, then MMF_OOM_SKIP is set anyway', () => {
    const k = machine();
    const p = k.task(1)!;
    const a = p.mmap(0, 8 * P, RW, ANON);
    p.writeI32(a, 7);
    const core = k.core;
    const result = run(
      k,
      (function* () {
        yield* mmapWriteLock(core, p.mm, 'test writer');
        try {
          expect(yield* oomReapTaskMm(core, p.mm)).toBe(false);
          return yield* oomReapTask(core, p.mm);
        } finally {
          mmapWriteUnlock(core, p.mm, 'test writer');
        }
      })(),
    );
    expect(result).toEqual({ attempts: MAX_OOM_REAP_RETRIES, reaped: false });
    expect(p.mm.oomSkip).toBe(true);
    expect(p.mm.unstable).toBe(false);
    expect(p.readI32(a)).toBe(7);
  });

  it('an mm that exit_mmap() tore down (MMF_OOM_SKIP) is left alone', () => {
    const k = machine();
    const p = k.task(1)!;
    const c = k.task(p.fork())!;
    const mm = c.mm;
    c.exit(0);
    expect(mm.oomSkip).toBe(true);
    expect(run(k, oomReapTaskMm(k.core, mm))).toBe(true);
    expect(mm.unstable).toBe(false);
  });

  it('a VMA whose interval notifier refuses the non-blockable range is skipped, and the interval part is ended', () => {
    const k = machine();
    const p = k.task(1)!;
    const a = p.mmap(0, 8 * P, RW, ANON);
    p.writeI32(a, 9);
    let refuse = true;
    const sub = new MmuIntervalNotifier(p.mm, 0, 2 ** 47, {
      invalidate(s, r, cur) {
        // A driver whose lock is taken: dmirror_interval_invalidate()'s mutex_trylock() failing.
        if (!mmuNotifierRangeBlockable(r) && refuse) return false;
        mmuIntervalSetSeq(s, cur);
        return true;
      },
    });
    expect(mmuIntervalNotifierInsert(sub)).toBe(0);
    expect(run(k, oomReapTaskMm(k.core, p.mm))).toBe(false);
    expect(p.mm.activeInvalidations).toBe(0);
    expect(p.mm.notifierSeq & 1).toBe(0);
    expect(p.readI32(a)).toBe(9);
    refuse = false;
    expect(run(k, oomReapTaskMm(k.core, p.mm))).toBe(true);
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
  });
});

describe('check_stable_address_space(): a fault that would map a new page into a reaped mm', () => {
  /** The signal a user access dies of (0: none). */
  const signo = (f: () => unknown): number => {
    try {
      f();
      return 0;
    } catch (e) {
      return (e as SignalDelivered).signo;
    }
  };

  it('gets SIGBUS for anonymous reads (zero page) and writes and for a private file mapping; a shared one still maps', () => {
    const k = machine();
    const init = k.task(1)!;
    // One victim per fault: each dies of its SIGBUS. MMF_UNSTABLE as __oom_reap_task_mm() sets it.
    const victim = () => k.task(init.fork())!;
    const a = victim();
    const aAddr = a.mmap(0, 4 * P, RW, ANON);
    a.mm.unstable = true;
    expect(signo(() => a.readI32(aAddr))).toBe(SIGBUS);
    const b = victim();
    const bAddr = b.mmap(0, 4 * P, RW, ANON);
    b.mm.unstable = true;
    expect(signo(() => b.writeI32(bAddr, 1))).toBe(SIGBUS);
    const c = victim();
    const fd = c.memfdCreate('f', 0);
    expect(c.ftruncate(fd, 4 * P)).toBe(0);
    const shared = c.mmap(0, 4 * P, RW, MAP_SHARED, fd, 0);
    const priv = c.mmap(0, 4 * P, RW, MAP_PRIVATE, fd, 0);
    c.writeI32(shared + P, 5);
    c.mm.unstable = true;
    // finish_fault() checks private mappings only.
    expect(c.readI32(shared + P)).toBe(5);
    expect(signo(() => c.readI32(priv + P))).toBe(SIGBUS);
    expect(k.check()).toEqual([]);
  });
});

/** What the OOM killer sees of process c (an OomTask), with `inKernel` threads in syscalls; its exit only counts. */
function victimOf(c: Process, inKernel: number): OomTask & { exits: number } {
  return {
    pid: c.pid,
    state: c.state,
    mm: c.mm,
    fatalSignal: 0,
    inKernel,
    oomVictim: false,
    hasMm: true,
    exits: 0,
    *exitGen() {
      this.exits++;
    },
  };
}

describe('__oom_kill_process() queues the reaper (queue_oom_reaper())', () => {
  it('for a victim with a thread in the kernel: SIGKILL pending, and the reaper reaps its memory before it exits', () => {
    const k = machine();
    const c = childWithPages(k, 32);
    expect(c.mm.rss.MM_ANONPAGES).toBe(32);
    const core = k.core;
    // The victim is inside a syscall (as when its own allocation failed in the kernel).
    const victim = victimOf(c, 1);
    run(k, oomKillProcess(core, victim), 'allocating task');
    expect(victim.fatalSignal).toBe(9);
    expect(victim.oomVictim).toBe(true);
    expect(core.oomReapers).toHaveLength(1);
    const reaper = core.oomReapers[0];
    core.sched.join(reaper);
    expect(reaper.result).toEqual({ attempts: 1, reaped: true });
    expect(c.mm.unstable).toBe(true);
    expect(c.mm.oomSkip).toBe(true);
    expect(c.mm.rss.MM_ANONPAGES).toBe(0);
  });

  it('and for a victim that exits at once in the caller (a user fault), which finds MMF_OOM_SKIP that exit_mmap() set and reaps nothing', () => {
    const k = machine();
    const c = childWithPages(k, 16);
    run(k, oomKillProcess(k.core, c), 'faulting task');
    expect(c.state).not.toBe('running');
    expect(k.core.oomReapers).toHaveLength(1);
    const reaper = k.core.oomReapers[0];
    k.core.sched.join(reaper);
    expect(reaper.result).toEqual({ attempts: 1, reaped: true });
    expect(c.mm.oomSkip).toBe(true);
    expect(c.mm.unstable).toBe(false);
  });

  it("for a victim that exits at once but whose mm has another user (a driver's mmget(): nouveau's GPU fault worker): exit_mmap() waits for that mmput(), and the reaper brings the memory back", () => {
    const k = machine();
    const c = childWithPages(k, 16);
    expect(mmgetNotZero(c.mm)).toBe(true);
    const victim = victimOf(c, 0);
    run(k, oomKillProcess(k.core, victim), 'faulting task');
    expect(victim.exits).toBe(1);
    expect(k.core.oomReapers).toHaveLength(1);
    k.core.sched.join(k.core.oomReapers[0]);
    expect(c.mm.oomSkip).toBe(true);
    expect(c.mm.rss.MM_ANONPAGES).toBe(0);
    run(k, mmput(k.core, c.mm), 'driver');
  });
});

describe('K20: a non-blockable invalidation refused by an hlist notifier (mm/mmu_notifier.c)', () => {
  it('v6.19: the interval part is never ended, invalidate_seq stays odd and mmu_interval_read_begin() waits for ever', () => {
    const k = machine();
    const p = k.task(1)!;
    const mm = p.mm;
    const sub = interval(mm);
    const log = refusingHlist(mm);
    expect(mmuNotifierInvalidateRangeStartNonblock(nonblockRange(mm, 0, 16 * P))).toBe(-EAGAIN);
    expect(log).toEqual(['start nonblock']);
    // The interval notifier went through (the sequence is odd), the hlist one refused, and the
    // caller (the reaper) must not end the range: nothing ever ends the interval part.
    expect(mm.activeInvalidations).toBe(1);
    expect(mm.notifierSeq & 1).toBe(1);
    // A later, ordinary invalidation starts and ends; the sequence stays odd.
    run(
      k,
      withInvalidationSync(mm, 0, P, MMU_NOTIFY_CLEAR, null, () => {}),
      'munmap',
    );
    expect(mm.activeInvalidations).toBe(1);
    expect(mm.notifierSeq & 1).toBe(1);
    // The driver's next fault: read_begin() of a subscription hit by the stuck invalidation.
    expect(() => run(k, mmuIntervalReadBegin(k.core, sub), 'driver fault')).toThrow(LockFinding);
  });

  it('v6.19: a subscription inserted after the leak makes the sequence odd itself, and its first read_begin() waits for ever', () => {
    const k = machine();
    const mm = k.task(1)!.mm;
    interval(mm);
    refusingHlist(mm);
    // No interval overlaps this range: the leak leaves the sequence even for now.
    const far = 2 ** 46;
    mmuNotifierInvalidateRangeStartNonblock({ ...nonblockRange(mm, far, far + P) });
    expect(mm.activeInvalidations).toBe(1);
    // The kernel's __mmu_interval_notifier_insert() under active invalidations: "invalidate_seq |= 1".
    const late = new MmuIntervalNotifier(mm, 0, P, { invalidate: () => true });
    expect(mmuIntervalNotifierInsert(late)).toBe(0);
    expect(mm.notifierSeq & 1).toBe(1);
    expect(() => run(k, mmuIntervalReadBegin(k.core, late), 'nouveau_range_fault')).toThrow(LockFinding);
  });

  it('fix K20: the interval part is ended before -EAGAIN; the reaper fails, and the driver goes on', () => {
    const k = machine('madvise', { fixes: ['K20'] });
    const p = k.task(1)!;
    const mm = p.mm;
    const sub = interval(mm);
    const log = refusingHlist(mm);
    const a = p.mmap(0, 8 * P, RW, ANON);
    p.writeI32(a, 5);
    expect(run(k, oomReapTask(k.core, mm))).toEqual({ attempts: MAX_OOM_REAP_RETRIES, reaped: false });
    expect(log.filter((l) => l === 'start nonblock')).toHaveLength(MAX_OOM_REAP_RETRIES);
    expect(mm.activeInvalidations).toBe(0);
    expect(mm.notifierSeq & 1).toBe(0);
    const seq = run(k, mmuIntervalReadBegin(k.core, sub), 'driver fault');
    expect(seq).toBe(sub.seq);
    expect(p.readI32(a)).toBe(5);
  });

  it('a range every notifier accepts is ended by the caller as usual', () => {
    const k = machine();
    const mm = k.task(1)!.mm;
    interval(mm);
    const range = nonblockRange(mm, 0, P);
    expect(mmuNotifierInvalidateRangeStartNonblock(range)).toBe(0);
    expect(mm.activeInvalidations).toBe(1);
    mmuNotifierInvalidateRangeEnd(range);
    expect(mm.activeInvalidations).toBe(0);
    expect(mm.notifierSeq & 1).toBe(0);
  });
});
