import { describe, expect, it } from 'vitest';
import {
  EINTR,
  ESRCH,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
  SIGTERM,
} from './constants.js';
import { XLATE_DEAD } from './cpu.js';
import type { FileOperations } from './fs.js';
import type { Kernel } from './kernel.js';
import { mmapReadLock } from './mm/locking.js';
import { type Process, WIFSIGNALED, WTERMSIG } from './process.js';
import { LockFinding } from './sched/findings.js';
import { Mutex, SpinLock, waitEvent } from './sched/locks.js';
import { parseSchedule } from './sched/schedule.js';
import type { ReplayStrategy } from './sched/strategy.js';
import type { KGen } from './sched/task.js';
import { fatalSignalPending } from './signal.js';
import { machine } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** ioctl commands of the fake device. */
const SLEEP_KILLABLE = 1; // sleeps until the caller has a fatal signal pending, then -EINTR
const LEAK_MUTEX = 2; // returns holding a driver mutex
const LEAK_SPINLOCK = 3; // returns holding a driver spinlock
const BALANCED = 4; // takes and drops the mutex around a preemption point
const LEAK_MMAP_LOCK = 5; // returns holding the caller's mmap_lock for read

/** A character device whose ioctls misbehave on purpose. */
function fakeDevice(k: Kernel) {
  const mutex = new Mutex('fake->mutex');
  const spin = new SpinLock('fake->lock');
  const dev = {
    entered: 0,
    /** What a sleeping ioctl saw when the fatal signal woke it. */
    woke: [] as { vmas: number; state: string }[],
    mutex,
    spin,
  };
  const fops: FileOperations = {
    *ioctl(_file, cmd, _arg, caller): KGen<number> {
      const p = caller as Process;
      const s = k.sched;
      dev.entered++;
      switch (cmd) {
        case SLEEP_KILLABLE:
          // The condition is evaluated by the scheduler, outside this task: read the process's state.
          yield* waitEvent('fake: wait_event_killable', () => p.fatalSignal !== 0);
          expect(fatalSignalPending(k.core)).toBe(true);
          dev.woke.push({ vmas: p.mm.vmas.length, state: p.state });
          return -EINTR;
        case LEAK_MUTEX:
          yield* mutex.lock(s, 'fake_ioctl: mutex_lock');
          return 0;
        case LEAK_SPINLOCK:
          spin.lock(s, 'fake_ioctl: spin_lock');
          return 0;
        case BALANCED:
          yield* mutex.lock(s, 'fake_ioctl: mutex_lock');
          yield 'fake_ioctl: under the mutex';
          mutex.unlock(s, 'fake_ioctl: mutex_unlock');
          return 0;
        case LEAK_MMAP_LOCK:
          yield* mmapReadLock(k.core, p.mm, 'fake_ioctl: mmap_read_lock');
          return 0;
        default:
          return -22;
      }
    },
  };
  k.registerDevice('/dev/fake', fops);
  return dev;
}

describe('Process.clone(): threads', () => {
  it('threads share the mm, the files and the syscalls of their process', () => {
    const k = machine();
    const p = k.spawn();
    fakeDevice(k);
    const t1 = p.clone();
    const t2 = p.clone();
    expect([t1.tid, t2.tid]).toEqual([1, 2]);
    expect(p.threads).toEqual([t1, t2]);
    expect(t1.process).toBe(p);
    expect(t1.sys).toBe(p.sys);
    // A mapping made by one thread is the process's: the main thread writes, another reads.
    const addr = t1.run('mmap', t1.sys.mmap(0, 2 * PAGE_SIZE, RW, ANON));
    expect(addr).toBeGreaterThan(0);
    expect(p.vmas.some((v) => v.start === addr)).toBe(true);
    p.writeI32(addr + 8, 0x1234);
    const buf = new Uint8Array(4);
    expect(t2.run('read', t2.sys.access(addr + 8, buf, 'read'))).toBe(0);
    expect(new DataView(buf.buffer).getInt32(0, true)).toBe(0x1234);
    // A descriptor opened by the process works from a thread.
    const fd = p.open('/dev/fake', O_RDWR);
    expect(t2.run('ioctl', t2.sys.ioctl(fd, BALANCED, 0))).toBe(0);
    expect(t1.run('munmap', t1.sys.munmap(addr, 2 * PAGE_SIZE))).toBe(0);
    expect(p.vmas.some((v) => v.start === addr)).toBe(false);
    expect(k.check()).toEqual([]);
  });

  it('a thread’s task is owned by the thread and named pid/tid', () => {
    const k = machine();
    const p = k.spawn();
    const th = p.clone();
    let owner: unknown = null;
    const t = th.spawn(
      'probe',
      (function* (): KGen {
        owner = k.sched.current.owner;
      })(),
    );
    expect(t.name).toBe(`${p.pid}/1 probe`);
    expect(t.kind).toBe('user');
    k.sched.join(t);
    expect(owner).toBe(th);
  });

  it('two threads can be in the kernel at once', () => {
    const k = machine();
    const p = k.spawn();
    const dev = fakeDevice(k);
    const fd = p.open('/dev/fake', O_RDWR);
    const sleeper = p.clone().spawn('ioctl', p.sys.ioctl(fd, SLEEP_KILLABLE, 0));
    k.sched.runUntil(() => sleeper.state === 'blocked');
    expect(p.inKernel).toBe(1);
    // Meanwhile the main thread maps and touches memory.
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 7);
    expect(p.readI32(a)).toBe(7);
    expect(dev.entered).toBe(1);
    expect(sleeper.done).toBe(false);
    p.exit(0); // wakes and waits for the sleeper
    expect(sleeper.result).toBe(-EINTR);
  });
});

describe('exit_group and kill with a thread inside a syscall', () => {
  it('exit waits for the other thread to leave the kernel before tearing the mm down', () => {
    const k = machine();
    const p = k.spawn();
    const dev = fakeDevice(k);
    const fd = p.open('/dev/fake', O_RDWR);
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    p.writeI32(a, 1);
    const th = p.clone();
    const inIoctl = th.spawn('ioctl', th.sys.ioctl(fd, SLEEP_KILLABLE, 0));
    k.sched.runUntil(() => inIoctl.state === 'blocked');
    expect(p.inKernel).toBe(1);
    p.exit(3);
    // The thread woke with the mm still in place (exit was waiting for it), then the mm went.
    expect(dev.woke).toEqual([{ vmas: 1, state: 'zombie' }]);
    expect(inIoctl.result).toBe(-EINTR);
    expect(inIoctl.error).toBeUndefined();
    expect(p.inKernel).toBe(0);
    expect(p.state).toBe('reaped');
    expect(p.mm.vmas).toHaveLength(0);
    expect(p.fds.size).toBe(0);
    expect(k.task(p.pid)).toBeUndefined();
    // The thread's later syscalls find the process gone.
    expect(th.run('mmap', th.sys.mmap(0, PAGE_SIZE, RW, ANON))).toBe(-ESRCH);
    // Nor does it run user code: an access touches nothing of the torn-down mm.
    expect(th.run('access', th.sys.access(a, new Uint8Array(4), 'write'))).toBe(XLATE_DEAD);
    expect(p.mm.pgtablesBytes).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('a fatal signal arriving during a syscall is taken at the return to user space', () => {
    const k = machine();
    const parent = k.spawn();
    const child = k.task(parent.fork())!;
    fakeDevice(k);
    const fd = child.open('/dev/fake', O_RDWR);
    const a = child.mmap(0, PAGE_SIZE, RW, ANON);
    child.writeI32(a, 1);
    const inIoctl = child.clone().spawn('ioctl', child.sys.ioctl(fd, SLEEP_KILLABLE, 0));
    k.sched.runUntil(() => inIoctl.state === 'blocked');
    expect(parent.kill(child.pid, SIGTERM)).toBe(0);
    // Not dead yet: a thread is in the kernel, the signal is pending.
    expect(child.state).toBe('running');
    expect(child.fatalSignal).toBe(SIGTERM);
    expect(parent.waitpid(child.pid)).toBe(0);
    k.sched.join(inIoctl);
    expect(inIoctl.result).toBe(-EINTR);
    expect(child.state).toBe('zombie');
    const st = { value: 0 };
    expect(parent.waitpid(child.pid, st)).toBe(child.pid);
    expect(WIFSIGNALED(st.value)).toBe(true);
    expect(WTERMSIG(st.value)).toBe(SIGTERM);
    expect(k.check()).toEqual([]);
  });

  it('a signal set at a preemption point of a syscall that then succeeds still ends the process', () => {
    const k = machine();
    const p = k.spawn();
    fakeDevice(k);
    const fd = p.open('/dev/fake', O_RDWR);
    const hook = (site: string) => {
      if (site === 'fake_ioctl: under the mutex') p.fatalSignal = SIGKILL;
    };
    k.sched.hooks.add(hook);
    try {
      const th = p.clone();
      // The ioctl completes (returns 0, the mutex dropped), then the signal is taken.
      expect(th.run('ioctl', th.sys.ioctl(fd, BALANCED, 0))).toBe(0);
    } finally {
      k.sched.hooks.delete(hook);
    }
    expect(p.state).toBe('reaped');
    expect(p.status & 0x7f).toBe(SIGKILL);
  });
});

describe('lockdep at the return to user space', () => {
  it.each([
    [LEAK_MUTEX, 'fake->mutex (x, at fake_ioctl: mutex_lock)'],
    [LEAK_SPINLOCK, 'fake->lock (x, at fake_ioctl: spin_lock)'],
    [LEAK_MMAP_LOCK, 'mmap_lock of mm * (r, at fake_ioctl: mmap_read_lock)'],
  ])('an ioctl returning with a lock held is a lock-leak finding (cmd %i)', (cmd, held) => {
    const k = machine();
    const p = k.spawn();
    fakeDevice(k);
    const fd = p.open('/dev/fake', O_RDWR);
    let f: unknown;
    try {
      p.ioctl(fd, cmd, 0);
    } catch (e) {
      f = e;
    }
    expect(f).toBeInstanceOf(LockFinding);
    const l = f as LockFinding;
    expect(l.category).toBe('lock-leak');
    expect(l.summary).toBe(`lock-leak: ioctl returned to user space with a lock held by ${p.pid} ioctl`);
    expect(l.details).toEqual([`  held: ${held.replace('*', String(p.mm.id))}`]);
    expect(p.inKernel).toBe(0);
  });

  it('the same from a thread; a balanced ioctl is fine and the leaked lock then blocks the next taker', () => {
    const k = machine();
    const p = k.spawn();
    const dev = fakeDevice(k);
    const fd = p.open('/dev/fake', O_RDWR);
    const th = p.clone();
    expect(th.run('ioctl', th.sys.ioctl(fd, BALANCED, 0))).toBe(0);
    expect(dev.mutex.locked).toBe(false);
    expect(() => th.run('ioctl', th.sys.ioctl(fd, LEAK_MUTEX, 0))).toThrow(
      /^ioctl returned to user space with a lock held by \d+\/1 ioctl/,
    );
    expect(dev.mutex.locked).toBe(true);
    expect(() => p.ioctl(fd, BALANCED, 0)).toThrow(/holder\(s\): \d+ \d+\/1 ioctl \(exited\)/);
  });
});

describe('a kernel-level run replays exactly from its trace', () => {
  /** Two threads race a MADV_DONTNEED against writes on a THP region; returns what can be observed. */
  function race(schedule: string) {
    const k = machine();
    const p = k.spawn();
    const len = 2 * PMD_SIZE;
    const a = p.mmap(0, len, RW, ANON);
    p.madvise(a, len, MADV_HUGEPAGE);
    p.writeBytes(a, new Uint8Array(len).fill(1));
    const strategy = parseSchedule(schedule);
    k.sched.setStrategy(strategy);
    const t1 = p.clone().spawn('dontneed', p.sys.madvise(a + PMD_SIZE / 2, PMD_SIZE, MADV_DONTNEED));
    const t2 = p.clone().spawn('write', p.sys.access(a, new Uint8Array(PMD_SIZE).fill(2), 'write'));
    const t3 = p.clone().spawn('munmap', p.sys.munmap(a + PMD_SIZE + PAGE_SIZE, PAGE_SIZE));
    k.sched.runAll();
    const sum = (b: Uint8Array) => b.reduce((x, y) => x + y, 0);
    const bytes = [a, a + PMD_SIZE / 2, a + PMD_SIZE + 2 * PAGE_SIZE].map((x) =>
      sum(p.readBytes(x, 4 * PAGE_SIZE)),
    );
    return {
      results: [t1.result, t2.result, t3.result],
      bytes,
      faults: k.core.vmstat.pgfault,
      splits: k.core.vmstat.thp_split_pmd,
      trace: k.sched.schedule().trace,
      strategy,
      violations: k.check(),
    };
  }

  it('the same seed twice, and the trace of a random run, give the same observable run', () => {
    const traces = new Set<string>();
    for (let seed = 1; seed <= 4; seed++) {
      const a = race(`random:seed=${seed},p=0.5`);
      expect(a.violations).toEqual([]);
      expect(a.results).toEqual([0, 0, 0]);
      const again = race(`random:seed=${seed},p=0.5`);
      expect(again).toMatchObject({ results: a.results, bytes: a.bytes, faults: a.faults, trace: a.trace });
      const b = race(a.trace);
      expect((b.strategy as ReplayStrategy).complete).toBe(true);
      expect(b).toMatchObject({ results: a.results, bytes: a.bytes, faults: a.faults, splits: a.splits });
      expect(b.trace).toBe(a.trace);
      traces.add(a.trace);
    }
    expect(traces.size).toBeGreaterThan(1);
  });
});
