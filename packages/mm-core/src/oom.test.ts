import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, SIGKILL } from './constants.js';
import { SignalDelivered } from './errors.js';
import { KernelBug } from './kernel-bug.js';
import type { MmStruct } from './mm/types.js';
import { OOM_SCAN_ABORT, type OomTask, oomBadness, selectBadProcess } from './oom.js';
import { WIFSIGNALED, WTERMSIG } from './process.js';
import { machine } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** A fake task for select_bad_process(): `pages` resident anonymous pages, no page tables. */
function fake(pid: number, pages: number, fatalSignal = 0, oomVictim = false, oomSkip = false): OomTask {
  const mm = {
    rss: { MM_FILEPAGES: 0, MM_ANONPAGES: pages, MM_SWAPENTS: 0, MM_SHMEMPAGES: 0 },
    pgtablesBytes: 0,
    oomSkip,
  } as unknown as MmStruct;
  return { pid, state: 'running', mm, fatalSignal, inKernel: 0, oomVictim, hasMm: true, *exitGen() {} };
}

/** The pid select_bad_process() chose, null for none, or 'abort'. */
function chosen(tasks: OomTask[]): number | null | 'abort' {
  const r = selectBadProcess(tasks);
  return r === OOM_SCAN_ABORT || r === null ? r : r.pid;
}

describe('OOM killer (mm/oom_kill.c)', () => {
  it('a process other than init whose fault cannot get memory is the victim (oom_kill_allocating_task)', () => {
    const k = machine();
    const init = k.task(1)!;
    expect(init.pid).toBe(1);
    const c = k.task(init.fork())!;
    const a = c.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    k.core.zone.failHook = () => true;
    let err: unknown;
    try {
      c.writeI32(a, 1);
    } catch (e) {
      err = e;
    }
    k.core.zone.failHook = undefined;
    expect(err).toBeInstanceOf(SignalDelivered);
    expect((err as SignalDelivered).signo).toBe(SIGKILL);
    expect(c.state).not.toBe('running');
    expect(init.state).toBe('running');
    expect(k.core.vmstat.oom_kill).toBe(1);
    const st = { value: 0 };
    expect(init.waitpid(c.pid, st)).toBe(c.pid);
    expect(WIFSIGNALED(st.value) && WTERMSIG(st.value)).toBe(SIGKILL);
    expect(k.check()).toEqual([]);
  });

  it('never picks global init: select_bad_process() kills the process with the highest oom_badness() and init faults again', () => {
    const k = machine();
    const init = k.task(1)!;
    const a = init.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const small = k.task(init.fork())!;
    const big = k.task(init.fork())!;
    const b = big.mmap(0, 64 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 64; i++) big.writeI32(b + i * PAGE_SIZE, i);
    expect(oomBadness(big)).toBeGreaterThan(oomBadness(small));
    // Allocations fail until the OOM killer has freed the big process's memory.
    k.core.zone.failHook = () => big.state === 'running';
    init.writeI32(a, 42);
    k.core.zone.failHook = undefined;
    expect(init.readI32(a)).toBe(42);
    expect(init.state).toBe('running');
    expect(small.state).toBe('running');
    expect(big.state).not.toBe('running');
    expect(big.status & 0x7f).toBe(SIGKILL);
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('with only init killable, out_of_memory() panics: "Out of memory and no killable processes..."', () => {
    const k = machine();
    const init = k.task(1)!;
    const a = init.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    // An exited child not yet reaped has no mm left (find_lock_task_mm() fails): not a candidate.
    const c = k.task(init.fork())!;
    c.exit(0);
    expect(c.state).toBe('zombie');
    k.core.zone.failHook = () => true;
    let err: unknown;
    try {
      init.writeI32(a, 1);
    } catch (e) {
      err = e;
    }
    k.core.zone.failHook = undefined;
    expect(err).toBeInstanceOf(KernelBug);
    const bug = err as KernelBug;
    expect(bug.kind).toBe('panic');
    expect(bug.fn).toBe('out_of_memory');
    expect(bug.file).toBe('mm/oom_kill.c');
    expect(bug.message.split('\n')[0]).toBe(
      'kernel panic (modelled): System is deadlocked on memory in out_of_memory (mm/oom_kill.c: out of memory and no killable processes (global init is never an OOM victim))',
    );
    expect(bug.consoleLines().slice(1)).toEqual([
      'Out of memory and no killable processes...',
      'Kernel panic - not syncing: System is deadlocked on memory',
      '---[ end Kernel panic - not syncing: System is deadlocked on memory ]---',
    ]);
    // Init was not killed; the machine is left as the failed fault left it.
    expect(init.state).toBe('running');
    expect(k.core.vmstat.oom_kill).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('select_bad_process(): skips init, highest badness wins, a later task wins a tie', () => {
    expect(chosen([fake(1, 1000)])).toBeNull();
    expect(chosen([fake(1, 1000), fake(2, 5), fake(3, 7), fake(4, 6)])).toBe(3);
    expect(chosen([fake(2, 5), fake(3, 5)])).toBe(3);
    expect(chosen([fake(2, 0)])).toBe(2);
    // A task dying of another signal is not an OOM victim: it may be chosen (oom_kill_process()
    // then only marks it, task_will_free_mem()).
    expect(chosen([fake(2, 5), fake(3, 9, SIGKILL)])).toBe(3);
  });

  it('select_bad_process(): an OOM victim not yet reaped aborts the search; one with MMF_OOM_SKIP is skipped', () => {
    expect(chosen([fake(2, 5), fake(3, 9, SIGKILL, true)])).toBe('abort');
    expect(chosen([fake(2, 5), fake(3, 9, SIGKILL, true, true)])).toBe(2);
    expect(chosen([fake(3, 9, SIGKILL, true, true)])).toBeNull();
  });
});
