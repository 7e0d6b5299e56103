/**
 * Global init dying: do_exit() (kernel/exit.c) panics "Attempted to kill init! exitcode=0x%08x"
 * with `tsk->signal->group_exit_code ?: code` once the last thread of global init exits.
 */
import { describe, expect, it } from 'vitest';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CREAT,
  O_RDWR,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
  SIGSEGV,
  SIGTERM,
} from './constants.js';
import { SignalDelivered } from './errors.js';
import { doExitInitPanic, initExitCode } from './exit.js';
import { KernelBug } from './kernel-bug.js';
import type { Process } from './process.js';
import { machine } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** Runs fn and returns what it threw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Global init (pid 1) with one written page, and the kernel. */
function withInit() {
  const k = machine();
  const init = k.task(1)!;
  const a = init.mmap(0, PAGE_SIZE, RW, ANON);
  init.writeI32(a, 42);
  return { k, init, a };
}

/** Expects `e` to be do_exit()'s panic with that exit code, and init left as it was. */
function expectInitPanic(e: unknown, exitcode: string, init: Process, a: number): void {
  expect(e).toBeInstanceOf(KernelBug);
  const bug = e as KernelBug;
  expect([bug.kind, bug.fn, bug.file]).toEqual(['panic', 'do_exit', 'kernel/exit.c']);
  expect(bug.what).toBe(`Attempted to kill init! exitcode=${exitcode}`);
  expect(bug.consoleLines().slice(-2)).toEqual([
    `Kernel panic - not syncing: Attempted to kill init! exitcode=${exitcode}`,
    `---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=${exitcode} ]---`,
  ]);
  // panic() stops the machine before exit_mm(): init keeps its mm and its data.
  expect(init.state).toBe('running');
  expect(init.readI32(a)).toBe(42);
}

describe('do_exit() of global init panics (kernel/exit.c)', () => {
  it('the exit code is group_exit_code ?: code: the signal number, or (status & 0xff) << 8', () => {
    expect(initExitCode(0, 0)).toBe(0);
    expect(initExitCode(1, 0)).toBe(0x100);
    expect(initExitCode(0x1ff, 0)).toBe(0xff00);
    expect(initExitCode(0, SIGSEGV)).toBe(0x0b);
    expect(initExitCode(3, SIGKILL)).toBe(0x09);
    expect(doExitInitPanic({ pid: 2 }, 0, 0)).toBeNull();
    expect(doExitInitPanic({ pid: 1 }, 0, 0)?.what).toBe('Attempted to kill init! exitcode=0x00000000');
  });

  it('exit(0) and exit(1): "Attempted to kill init! exitcode=0x00000000" / "0x00000100"', () => {
    const { k, init, a } = withInit();
    expectInitPanic(
      thrown(() => init.exit(0)),
      '0x00000000',
      init,
      a,
    );
    expectInitPanic(
      thrown(() => init.exit(1)),
      '0x00000100',
      init,
      a,
    );
    expect(k.check()).toEqual([]);
  });

  it('a SIGSEGV (force_sig_fault() clears SIGNAL_UNKILLABLE): exitcode=0x0000000b, not a SignalDelivered', () => {
    const { k, init, a } = withInit();
    const e = thrown(() => init.readI32(0x1000));
    expect(e).not.toBeInstanceOf(SignalDelivered);
    expectInitPanic(e, '0x0000000b', init, a);
    expect((e as KernelBug).consoleLines()).toContain(' get_signal');
    expect(k.check()).toEqual([]);
  });

  it('a SIGBUS beyond the end of a mapped file: exitcode=0x00000007', () => {
    const { k, init, a } = withInit();
    const fd = init.open('/tmp/short', O_RDWR | O_CREAT);
    expect(init.ftruncate(fd, PAGE_SIZE)).toBe(0);
    const m = init.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, fd, 0);
    expect(init.readI32(m)).toBe(0);
    const e = thrown(() => init.readI32(m + PAGE_SIZE));
    expect(e).not.toBeInstanceOf(SignalDelivered);
    expectInitPanic(e, '0x00000007', init, a);
    expect(k.check()).toEqual([]);
  });

  it('kill() never gets that far: global init ignores the signal (sig_task_ignored()); any other process exits normally', () => {
    const { k, init, a } = withInit();
    const c = k.task(init.fork())!;
    expect(c.kill(1, SIGKILL)).toBe(0);
    expect(c.kill(1, SIGTERM)).toBe(0);
    expect(init.state).toBe('running');
    expect(init.readI32(a)).toBe(42);
    // A child of init faulting dies of the signal; nothing panics.
    expect(thrown(() => c.readI32(0x1000))).toBeInstanceOf(SignalDelivered);
    expect(c.state).not.toBe('running');
    expect(k.check()).toEqual([]);
  });
});
