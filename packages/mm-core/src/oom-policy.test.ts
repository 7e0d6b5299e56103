import { describe, expect, it } from 'vitest';
import {
  EAGAIN,
  EINVAL,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
} from './constants.js';
import type { Kernel } from './kernel.js';
import { allocFolioNoFail, NOFAIL_PASS_BOUND } from './mm/nofail.js';
import { mmuNotifierRegister } from './mm/notifier.js';
import { MmuNotifier, mmuNotifierRangeBlockable } from './mm/types.js';
import { OOM_SCAN_ABORT, type OomTask, oomSysctls, outOfMemory, selectBadProcess } from './oom.js';
import type { Process } from './process.js';
import { LivelockFinding } from './sched/findings.js';
import type { KGen } from './sched/task.js';
import { childWithPages, machine } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const P = PAGE_SIZE;
const TEXT = new TextEncoder();

function run<T>(k: Kernel, gen: KGen<T>, name = 'allocating task'): T {
  return k.core.sched.runSync(gen, name);
}

/** The rule of nouveau_svmm_invalidate_range_start(): every non-blockable range is refused, so the OOM reaper never reaps the mm. */
function unreapable(p: Process): void {
  const sub = new MmuNotifier({
    invalidateRangeStart: (_s, r) => (mmuNotifierRangeBlockable(r) ? 0 : -EAGAIN),
  });
  expect(mmuNotifierRegister(sub, p.mm)).toBe(0);
}

/** A __GFP_NOFAIL allocation by a thread of `p` inside a syscall (the survey's dmirror release). */
function* nofailInSyscall(k: Kernel, p: Process): KGen<number> {
  p.inKernel++;
  try {
    return yield* allocFolioNoFail(k.core, 0, false, 'test eviction');
  } finally {
    p.inKernel--;
  }
}

describe('vm.oom_kill_allocating_task (mm/oom_kill.c vm_oom_kill_table)', () => {
  it('/proc/sys/vm/oom_kill_allocating_task: the model boots with 1; one integer is accepted, anything else is -EINVAL', () => {
    const k = machine();
    const init = k.task(1)!;
    const fd = init.open('/proc/sys/vm/oom_kill_allocating_task', O_RDWR);
    expect(fd).toBeGreaterThanOrEqual(0);
    const buf = new Uint8Array(8);
    expect(new TextDecoder().decode(buf.subarray(0, init.pread(fd, buf, 8, 0)))).toBe('1\n');
    expect(init.pwrite(fd, TEXT.encode('0\n'), 2, 0)).toBe(2);
    expect(oomSysctls(k.core).oom_kill_allocating_task).toBe(0);
    expect(init.pwrite(fd, TEXT.encode('one'), 3, 0)).toBe(-EINVAL);
    expect(init.pwrite(fd, TEXT.encode('99999999999'), 11, 0)).toBe(-EINVAL);
    expect(oomSysctls(k.core).oom_kill_allocating_task).toBe(0);
    init.close(fd);
  });

  it('0 (the kernel default): a user fault kills the process with the highest badness, not itself, and its access succeeds', () => {
    const k = machine();
    oomSysctls(k.core).oom_kill_allocating_task = 0;
    const small = childWithPages(k, 2);
    const big = childWithPages(k, 64);
    const a = small.mmap(0, P, RW, ANON);
    k.core.zone.failHook = () => big.state === 'running';
    small.writeI32(a, 5);
    k.core.zone.failHook = undefined;
    expect(small.readI32(a)).toBe(5);
    expect(small.state).toBe('running');
    expect(big.state).not.toBe('running');
    expect(big.status & 0x7f).toBe(SIGKILL);
    expect(big.oomVictim).toBe(true);
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(k.check()).toEqual([]);
  });
});

describe('out_of_memory() (mm/oom_kill.c)', () => {
  it('task_will_free_mem(current): a dying allocating task is marked and reaped, nothing is killed; the reaper is queued once (MMF_OOM_REAP_QUEUED)', () => {
    const k = machine();
    const p = childWithPages(k, 8);
    const other = childWithPages(k, 64);
    p.fatalSignal = SIGKILL;
    p.inKernel = 1;
    const tasks = [p, other];
    expect(run(k, outOfMemory(k.core, p, tasks, 0, 'test', false))).toBe(p);
    expect(p.oomVictim).toBe(true);
    expect(k.core.vmstat.oom_kill).toBe(0);
    expect(k.core.oomReapers).toHaveLength(1);
    expect(run(k, outOfMemory(k.core, p, tasks, 0, 'test', false))).toBe(p);
    expect(k.core.oomReapers.filter((t) => !t.done)).toHaveLength(1);
    expect(other.state).toBe('running');
    p.inKernel = 0;
  });

  it('select_bad_process() waits for an earlier victim (no kill, retry) and goes on to the next once the reaper gave up on it', () => {
    const k = machine();
    oomSysctls(k.core).oom_kill_allocating_task = 0;
    const victim = childWithPages(k, 64);
    const next = childWithPages(k, 8);
    victim.fatalSignal = SIGKILL;
    victim.inKernel = 1;
    victim.oomVictim = true;
    const tasks: OomTask[] = [victim, next];
    expect(selectBadProcess(tasks)).toBe(OOM_SCAN_ABORT);
    expect(run(k, outOfMemory(k.core, null, tasks, 0, 'test', false))).toBeNull();
    expect(k.core.vmstat.oom_kill).toBe(0);
    victim.mm.oomSkip = true;
    expect(run(k, outOfMemory(k.core, null, tasks, 0, 'test', false))).toBe(next);
    expect(k.core.vmstat.oom_kill).toBe(1);
    // The victim was in user space: it exits in a task of its own.
    expect(next.fatalSignal).toBe(SIGKILL);
    for (const t of k.core.oomExits) k.core.sched.join(t);
    expect(next.state).not.toBe('running');
    victim.inKernel = 0;
  });
});

describe('__GFP_NOFAIL from a process the OOM reaper cannot reap (the small machines\u2019 eviction livelock)', () => {
  /** The survey's setup: `p` allocates inside a syscall, its mm refuses the reaper, `big` holds the memory. */
  function setup(policy: number, fixes: string[] = []): { k: Kernel; p: Process; big: Process } {
    // No swap: direct reclaim frees nothing, so every pass goes on to the OOM killer.
    const k = machine('madvise', { swapBytes: 0, ramBytes: 16 << 20, fixes });
    oomSysctls(k.core).oom_kill_allocating_task = policy;
    const p = childWithPages(k, 8);
    unreapable(p);
    const big = childWithPages(k, 64);
    // Memory comes back only when the big process exits.
    k.core.zone.failHook = () => big.state === 'running';
    return { k, p, big };
  }

  it('oom_kill_allocating_task=1: the allocating process is the victim over and over and the allocation never gets a page', () => {
    const { k, p, big } = setup(1);
    let err: unknown;
    try {
      p.run('test eviction', nofailInSyscall(k, p), false);
    } catch (e) {
      err = e;
    }
    k.core.zone.failHook = undefined;
    expect(err).toBeInstanceOf(LivelockFinding);
    expect((err as Error).message).toBe(
      `test eviction: a __GFP_NOFAIL allocation of order 0 got no page in ${NOFAIL_PASS_BOUND} passes of reclaim and OOM kills (the OOM killer's victim: pid ${p.pid}, which the OOM reaper gave up on)`,
    );
    expect(p.oomVictim).toBe(true);
    expect(p.mm.oomSkip).toBe(true);
    expect(big.state).toBe('running');
  });

  it('oom_kill_allocating_task=0: select_bad_process() kills the big process, waits for its exit, and the allocation succeeds', () => {
    const { k, p, big } = setup(0);
    const pfn = p.run('test eviction', nofailInSyscall(k, p), false);
    k.core.zone.failHook = undefined;
    expect(pfn).toBeGreaterThanOrEqual(0);
    expect(big.state).not.toBe('running');
    expect(big.oomVictim).toBe(true);
    expect(p.state).toBe('running');
  });

  it('fix K21, oom_kill_allocating_task=1: a victim the reaper gave up on is not chosen again; select_bad_process() kills the big process and the allocation succeeds', () => {
    const { k, p, big } = setup(1, ['K21']);
    const pfn = p.run('test eviction', nofailInSyscall(k, p), false);
    k.core.zone.failHook = undefined;
    expect(pfn).toBeGreaterThanOrEqual(0);
    // The allocating process was the first victim (and still dies when its syscall returns).
    expect(p.oomVictim).toBe(true);
    expect(p.mm.oomSkip).toBe(true);
    expect(big.state).not.toBe('running');
    expect(big.oomVictim).toBe(true);
    expect(k.core.vmstat.oom_kill).toBe(2);
  });
});
