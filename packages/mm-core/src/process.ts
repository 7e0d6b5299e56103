import {
  ECHILD,
  EINVAL,
  ENOMEM,
  ESRCH,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  SIGBUS,
  SIGKILL,
  SIGSEGV,
} from './constants.js';
import { XLATE_BUS, XLATE_OOM } from './cpu.js';
import { SignalDelivered } from './errors.js';
import { doExitInitPanic } from './exit.js';
import type { OpenFile } from './fs.js';
import type { Host } from './host.js';
import { tryToFreePages } from './mm/direct-reclaim.js';
import { mmput } from './mm/exit.js';
import { dupMmap } from './mm/fork.js';
import { inodePut } from './mm/mmap.js';
import { forkAccount } from './mm/overcommit.js';
import { allocTable } from './mm/pgtable.js';
import { MmStruct, type Vma } from './mm/types.js';
import { oomTasks, outOfMemory } from './oom.js';
import { waitEvent } from './sched/locks.js';
import type { KGen, Task } from './sched/task.js';
import { sigTaskIgnored } from './signal.js';
import { argInt } from './syscall-args.js';
import { Syscalls } from './syscalls.js';

/** Models the task state as user space observes it through waitpid(). */
export type TaskState = 'running' | 'zombie' | 'reaped';

/** Models W* status encoding: exit code << 8, or the terminating signal. */
export function WIFEXITED(status: number): boolean {
  return (status & 0x7f) === 0;
}
/** Models WEXITSTATUS(). */
export function WEXITSTATUS(status: number): number {
  return (status >> 8) & 0xff;
}
/** Models WIFSIGNALED(). */
export function WIFSIGNALED(status: number): boolean {
  return (status & 0x7f) !== 0 && (status & 0x7f) !== 0x7f;
}
/** Models WTERMSIG(). */
export function WTERMSIG(status: number): number {
  return status & 0x7f;
}

let nextMmId = 1;

/** Models the mm ids of new processes (exported for fork's child). */
export function allocMmId(): number {
  return nextMmId++;
}

/**
 * Models a thread of a process (clone(CLONE_VM | CLONE_THREAD | CLONE_FILES)): it shares the
 * process's mm and files and runs kernel paths as its own tasks, so two threads of one process
 * can be in the kernel at once.
 */
export class Thread {
  constructor(
    readonly tid: number,
    readonly process: Process,
  ) {}

  /** The generator form of the syscalls (shared with the process). */
  get sys(): Syscalls {
    return this.process.sys;
  }

  /** Models this thread running `body` (a task owned by the thread). */
  spawn(name: string, body: KGen<unknown>, delay = 0): Task {
    return this.process.host.sched.spawn(`${this.process.pid}/${this.tid} ${name}`, body, {
      kind: 'user',
      owner: this,
      delay,
    });
  }

  /** Runs a syscall of this thread synchronously (a task owned by the thread). */
  run<T>(name: string, gen: KGen<T>): T {
    return this.process.host.sched.runSync(gen, `${this.process.pid}/${this.tid} ${name}`, this);
  }
}

/**
 * Models a user process (struct task_struct + its mm and files) behind a libc-like surface:
 * each method is named after the syscall and follows the raw-syscall convention (a
 * non-negative result or -errno). CPU accesses go through the MMU model; an access the fault
 * handler cannot satisfy kills the process with SIGSEGV/SIGBUS and throws SignalDelivered.
 * Each synchronous method runs its kernel path as a task on the scheduler; `sys` has the same
 * syscalls as generators for tasks, and `clone()` makes threads.
 */
export class Process {
  readonly pid: number;
  parent: Process | null;
  readonly children = new Set<Process>();
  mm: MmStruct;
  readonly fds = new Map<number, OpenFile>();
  state: TaskState = 'running';
  /** Models the wait status once a zombie. */
  status = 0;
  readonly host: Host;
  /** The generator form of the syscalls, for tasks: `yield* p.sys.madvise(...)`. */
  readonly sys: Syscalls;
  /** Threads created by clone() (the main thread is the process itself). */
  readonly threads: Thread[] = [];
  /** Syscalls of this process's threads currently in the kernel. */
  inKernel = 0;
  /** Models a pending fatal signal (SIGKILL from kill(), or exit_group() of another thread). */
  fatalSignal = 0;
  /** Models tsk_is_oom_victim() (signal->oom_mm): the OOM killer chose this process (oom.ts markOomVictim()). */
  oomVictim = false;
  /**
   * Models signal->oom_flag_origin (set_current_oom_origin()): swapoff(2) sets it around
   * try_to_unuse(), and the OOM killer then chooses this process first (oom_task_origin()).
   */
  oomFlagOrigin = false;
  /** Models task->mm: dropped by exit_mm() (mmput()) when the process exits. */
  private mmDropped = false;
  private nextTid = 1;

  constructor(host: Host, parent: Process | null, mm?: MmStruct) {
    this.host = host;
    this.pid = host.allocPid();
    this.parent = parent;
    if (mm) this.mm = mm;
    else {
      this.mm = new MmStruct(nextMmId++, host.core.events);
      this.mm.pgd = allocTable(host.core, this.mm, true);
    }
    this.mm.host ??= host.core;
    host.core.mmlist.add(this.mm);
    this.sys = new Syscalls(this);
    parent?.children.add(this);
    host.tasks.set(this.pid, this);
  }

  private get core() {
    return this.host.core;
  }

  /** Models task->mm != NULL (find_lock_task_mm()): true until exit_mm() has dropped the mm. */
  get hasMm(): boolean {
    return !this.mmDropped;
  }

  /** True while the process runs (not a zombie, no fatal signal taken yet). */
  get alive(): boolean {
    return this.state === 'running';
  }

  /**
   * Runs a kernel path of this process synchronously on the scheduler; afterwards, when no
   * other task is in flight, the post-syscall hook (the invariant checker when enabled).
   */
  run<T>(what: string, gen: KGen<T>, check = true): T {
    const sched = this.host.sched;
    const r = sched.runSync(gen, `${this.pid} ${what}`, this);
    // Model-only: the OOM reaper work and the OOM victims' exits the call queued finish before a
    // synchronous caller goes on (the kthreads would run at once on an idle machine), so the
    // checks below are not skipped.
    if (!sched.inTask)
      for (const t of [...this.host.core.oomExits, ...this.host.core.oomReapers])
        if (!t.done) {
          sched.join(t);
          // What the reaper hit (a modelled oops in its zap) is reported to the caller.
          if (t.error !== undefined) throw t.error;
        }
    if (check && sched.pending === 0 && !sched.inTask) this.host.afterSyscall(what);
    return r;
  }

  /** Models clone(CLONE_VM | CLONE_THREAD): a new thread sharing this process's mm and files. */
  clone(): Thread {
    const t = new Thread(this.nextTid++, this);
    this.threads.push(t);
    return t;
  }

  /** Models getpid(2). */
  getpid(): number {
    return this.pid;
  }

  /** Models mmap(2) (do_mmap()). Returns the address or -errno. */
  mmap(addr: number, length: number, prot: number, flags: number, fd = -1, offset = 0): number {
    return this.run('mmap', this.sys.mmap(addr, length, prot, flags, fd, offset));
  }

  /** Models munmap(2). */
  munmap(addr: number, length: number): number {
    return this.run('munmap', this.sys.munmap(addr, length));
  }

  /** Models mprotect(2). */
  mprotect(addr: number, length: number, prot: number): number {
    return this.run('mprotect', this.sys.mprotect(addr, length, prot));
  }

  /** Models madvise(2). */
  madvise(addr: number, length: number, advice: number): number {
    return this.run('madvise', this.sys.madvise(addr, length, advice));
  }

  /** Models swapoff(2) (`path`: the swap partition, e.g. SWAP_DEVICE_PATH). */
  swapoff(path: string): number {
    return this.run('swapoff', this.sys.swapoff(path));
  }

  /** Models swapon(2) (`flags`: SWAP_FLAG_*, accepted and ignored). */
  swapon(path: string, flags = 0): number {
    return this.run('swapon', this.sys.swapon(path, flags));
  }

  /** Models mremap(2). */
  mremap(oldAddr: number, oldLen: number, newLen: number, flags: number, newAddr = 0): number {
    return this.run('mremap', this.sys.mremap(oldAddr, oldLen, newLen, flags, newAddr));
  }

  /** Models fd_install(): the lowest free descriptor for f. */
  installFd(f: OpenFile): number {
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    this.fds.set(fd, f);
    return fd;
  }

  /** Models fput(): the last reference runs ->release(). */
  *releaseFile(f: OpenFile): KGen {
    f.refs--;
    if (f.refs > 0) return;
    if (f.fops?.release) yield* f.fops.release(f);
    if (f.inode) inodePut(this.core, f.inode);
  }

  /** Models open(2)/openat(2): device files, tmpfs files, O_TMPFILE and pseudo files. */
  open(path: string, flags: number, _mode = 0o600): number {
    return this.run('open', this.sys.open(path, flags));
  }

  /** Models close(2). */
  close(fd: number): number {
    return this.run('close', this.sys.close(fd));
  }

  /** Models ioctl(2): `arg` is a user address in this process. */
  ioctl(fd: number, cmd: number, arg: number): number {
    return this.run('ioctl', this.sys.ioctl(fd, cmd, arg));
  }

  /** Models pwrite(2). `buf` is a user address, or (an extension for host code) a Uint8Array. */
  pwrite(fd: number, buf: number | Uint8Array, count: number, offset: number): number {
    return this.run('pwrite', this.sys.pwrite(fd, buf, count, offset));
  }

  /** Models pread(2). `buf` is a user address, or (an extension for host code) a Uint8Array. */
  pread(fd: number, buf: number | Uint8Array, count: number, offset: number): number {
    return this.run('pread', this.sys.pread(fd, buf, count, offset));
  }

  /** Models pipe(2): [readFd, writeFd], or -errno. */
  pipe(): [number, number] | number {
    return this.run('pipe', this.sys.pipe());
  }

  /** Models read(2) at the file position (a pipe: the next bytes). */
  read(fd: number, buf: number | Uint8Array, count: number): number {
    return this.run('read', this.sys.read(fd, buf, count));
  }

  /** Models write(2) at the file position (a pipe: appended). */
  write(fd: number, buf: number | Uint8Array, count: number): number {
    return this.run('write', this.sys.write(fd, buf, count));
  }

  /** Models vmsplice(2): `iov` is the user address of `nrSegs` struct iovec. */
  vmsplice(fd: number, iov: number, nrSegs: number, flags: number): number {
    return this.run('vmsplice', this.sys.vmsplice(fd, iov, nrSegs, flags));
  }

  /** Models fallocate(2) (mode 0 on a tmpfs file). */
  fallocate(fd: number, mode: number, offset: number, len: number): number {
    return this.run('fallocate', this.sys.fallocate(fd, mode, offset, len));
  }

  /** Models memfd_create(2): a tmpfs (or, with MFD_HUGETLB, hugetlbfs) file; the descriptor or -errno. */
  memfdCreate(name: string, flags: number): number {
    return this.run('memfd_create', this.sys.memfdCreate(name, flags));
  }

  /** Models ftruncate(2) on a tmpfs file: shrinking unmaps and drops pages past the end. */
  ftruncate(fd: number, length: number): number {
    return this.run('ftruncate', this.sys.ftruncate(fd, length));
  }

  /** Models lseek(2): the new position, or -errno. */
  lseek(fd: number, offset: number, whence: number): number {
    return this.run('lseek', this.sys.lseek(fd, offset, whence));
  }

  /** Models mkdir(2) on the tmpfs (see TmpfsNamespace.mkdir). */
  mkdir(path: string, _mode = 0o700): number {
    return this.run(
      'mkdir',
      this.sys.pathOp('mkdir', () => this.host.ns.mkdir(path)),
    );
  }

  /** Models rmdir(2). */
  rmdir(path: string): number {
    return this.run(
      'rmdir',
      this.sys.pathOp('rmdir', () => this.host.ns.rmdir(path)),
    );
  }

  /** Models unlink(2) of a tmpfs file. */
  unlink(path: string): number {
    return this.run(
      'unlink',
      this.sys.pathOp('unlink', () => this.host.ns.unlink(path)),
    );
  }

  /** Models mount(2) of a tmpfs instance (`data`: its comma-separated options). */
  mount(source: string, target: string, fstype: string, _flags: number, data: string): number {
    return this.run(
      'mount',
      this.sys.pathOp('mount', () => this.host.ns.mount(source, target, fstype, data)),
    );
  }

  /** Models umount(2). */
  umount(target: string): number {
    return this.run(
      'umount',
      this.sys.pathOp('umount', () => this.host.ns.umount(target)),
    );
  }

  /** Models sync(2): the model's only file system is tmpfs, which has nothing to write back. */
  sync(): void {
    this.run(
      'sync',
      this.sys.pathOp('sync', () => 0),
    );
  }

  /** Models fork(2): returns the child's pid (the child is `host`'s task with that pid), or -errno. */
  fork(): number {
    return this.run('fork', this.sys.fork());
  }

  /** The body of fork(2): dup_mmap() and the child's task. */
  *forkGen(): KGen<number> {
    if (forkAccount(this.core, this.mm) < 0) return -ENOMEM;
    const { mm, ok } = yield* dupMmap(this.core, this.mm, nextMmId++);
    const child = new Process(this.host, this, mm);
    for (const [fd, f] of this.fds) {
      f.refs++;
      child.fds.set(fd, f);
    }
    if (!ok) {
      yield* child.exitGen(0, SIGKILL);
      return -ENOMEM;
    }
    return child.pid;
  }

  /** Models do_exit() synchronously (files closed, mm torn down, zombie until reaped). */
  doExit(code: number, signal = 0): void {
    this.run('exit', this.exitGen(code, signal));
  }

  /**
   * Models do_exit()/exit_group(): the other threads get a fatal signal and the exit waits until
   * none of them is in the kernel; then, in do_exit()'s order, exit_mm() drops the mm (its last
   * user runs exit_mmap()) and exit_files() closes the files, and the process is a zombie until
   * its parent reaps it. Global init does not exit: do_exit() panics ("Attempted to kill
   * init!", {@link doExitInitPanic}) and the machine is left as it was.
   */
  *exitGen(code: number, signal = 0): KGen {
    if (this.state !== 'running') return;
    const panic = doExitInitPanic(this, code, signal || this.fatalSignal);
    if (panic) throw panic;
    this.state = 'zombie';
    this.fatalSignal = this.fatalSignal || signal || SIGKILL;
    // Other threads in the kernel finish their syscall first (the fatal signal stops them at
    // the return to user space); the caller is never inside one of this process's syscalls.
    yield* waitEvent(`exit_group of pid ${this.pid}: threads leaving the kernel`, () => this.inKernel === 0);
    this.mmDropped = true;
    yield* mmput(this.core, this.mm);
    for (const fd of [...this.fds.keys()]) {
      const f = this.fds.get(fd)!;
      this.fds.delete(fd);
      yield* this.releaseFile(f);
    }
    this.status = signal ? signal & 0x7f : (code & 0xff) << 8;
    for (const c of this.children) {
      c.parent = null;
      if (c.state === 'zombie') c.reap();
    }
    this.children.clear();
    if (!this.parent) this.reap();
  }

  private reap(): void {
    this.state = 'reaped';
    this.host.tasks.delete(this.pid);
  }

  /** Models _exit(2)/exit_group(2). */
  exit(code: number): void {
    this.doExit(code);
  }

  /**
   * Models waitpid(2) with options 0 on an exited child: returns its pid and stores the wait
   * status in `status.value`; -ECHILD if it is not a child; a child still running cannot be
   * waited for here (it has no task of its own to finish), so this returns 0 (WNOHANG semantics).
   */
  waitpid(pid: number, status?: { value: number }, _options = 0): number {
    if (argInt(pid) === undefined) return -EINVAL;
    // Models do_wait(): any child that has already exited is reaped first.
    const matching = [...this.children].filter((c) => pid === -1 || c.pid === pid);
    const child = matching.find((c) => c.state === 'zombie') ?? matching[0];
    if (!child) return -ECHILD;
    if (child.state === 'running') return 0;
    if (status) status.value = child.status;
    child.reap();
    this.children.delete(child);
    return child.pid;
  }

  /**
   * Models kill(2): SIGKILL/SIGTERM (and any other fatal signal) terminate the target; global
   * init (pid 1) ignores them (sig_task_ignored()) and kill() returns 0.
   */
  kill(pid: number, sig: number): number {
    return this.run('kill', this.killGen(pid, sig));
  }

  /**
   * The body of kill(2): a fatal signal. A target with threads in the kernel exits when the last
   * of them returns to user space; otherwise it exits now (the model runs its do_exit() here).
   */
  *killGen(pid: number, sig: number): KGen<number> {
    const target = argInt(pid);
    const s = argInt(sig);
    if (target === undefined || s === undefined) return -EINVAL;
    const t = this.host.tasks.get(target);
    if (!(t instanceof Process) || t.state !== 'running') return -ESRCH;
    if (s < 0 || s > 64) return -EINVAL;
    sig = s;
    if (sig === 0) return 0;
    // prepare_signal() -> sig_task_ignored(): global init ignores the signal; kill() returns 0.
    if (sigTaskIgnored(t, sig)) return 0;
    t.fatalSignal = t.fatalSignal || sig;
    if (t.inKernel === 0) yield* t.exitGen(0, sig);
    return 0;
  }

  /**
   * A user access the fault handler could not satisfy: SIGSEGV / SIGBUS kill the process. For
   * VM_FAULT_OOM direct reclaim runs, and the access is retried when it freed memory; else the
   * OOM killer (outOfMemory(): this process, unless it is global init); when it killed another
   * process the access is retried, as the allocation retries after an
   * OOM kill and pagefault_out_of_memory() retries the fault. Returns only to retry.
   */
  private fault(addr: number, code: number): void {
    if (code === XLATE_OOM) {
      // Direct reclaim without the invariant checker after every pass (it runs after the OOM
      // kill, and after the next syscall): a process thrashing through swap reclaims often.
      if (this.run('try_to_free_pages', this.directReclaim(), false)) return;
      if (this.run('out_of_memory', this.oomKill(addr, 'user fault', false))) return;
      throw new SignalDelivered(SIGKILL, this.pid, addr, 'out of memory');
    }
    const sig = code === XLATE_BUS ? SIGBUS : SIGSEGV;
    this.doExit(0, sig);
    throw new SignalDelivered(sig, this.pid, addr, code === XLATE_BUS ? 'bus error' : 'segmentation fault');
  }

  /**
   * Models the slow path of an allocation by this process that failed at `addr`
   * (__alloc_pages_slowpath()): direct reclaim (tryToFreePages(); true, retry, when it freed
   * memory), then the OOM kill (__alloc_pages_may_oom() -> out_of_memory(), {@link outOfMemory}):
   * true when another process was killed, or none because an earlier victim may still free memory,
   * so the allocation may be retried; false when this process is the victim (it exits now, or on
   * its way back to user space when a thread is in the kernel). Throws the out_of_memory() panic
   * when nothing can be killed.
   */
  *oomKill(addr: number, via = 'user fault', reclaim = true, inline = true): KGen<boolean> {
    // __alloc_pages_slowpath(): direct reclaim first; the allocation retries when it freed memory.
    if (reclaim && (yield* this.directReclaim())) return true;
    return (yield* outOfMemory(this.core, this, oomTasks(this.core), addr, via, inline)) !== this;
  }

  /**
   * Models __alloc_pages_direct_reclaim() for an allocation of this process: try_to_free_pages()
   * (mm/direct-reclaim.ts); true when it freed memory, so the allocation is retried.
   */
  *directReclaim(): KGen<boolean> {
    return (yield* tryToFreePages(this.core)).progress > 0;
  }

  /** Models user loads of a byte range (one translation per page). */
  readBytes(addr: number, length: number): Uint8Array {
    const b = new Uint8Array(length);
    this.readInto(addr, b);
    return b;
  }

  /** Models user loads into a host buffer. */
  readInto(addr: number, buf: Uint8Array): void {
    if (!this.alive) throw new SignalDelivered(SIGKILL, this.pid, addr, 'process is not running');
    for (;;) {
      const r = this.run('read', this.sys.access(addr, buf, 'read'), false);
      if (r >= 0) return;
      this.fault(addr, r);
    }
  }

  /** Models user stores of a byte range (one translation per page). */
  writeBytes(addr: number, data: Uint8Array): void {
    if (!this.alive) throw new SignalDelivered(SIGKILL, this.pid, addr, 'process is not running');
    for (;;) {
      const r = this.run('write', this.sys.access(addr, data, 'write'), false);
      if (r >= 0) return;
      this.fault(addr, r);
    }
  }

  private scalar = new DataView(new ArrayBuffer(8));
  private scalarBytes = new Uint8Array(this.scalar.buffer);
  // Preallocated views so scalar accesses allocate nothing.
  private scalar1 = this.scalarBytes.subarray(0, 1);
  private scalar2 = this.scalarBytes.subarray(0, 2);
  private scalar4 = this.scalarBytes.subarray(0, 4);

  /** Models a 32-bit signed load (int). */
  readI32(addr: number): number {
    const b = this.scalar4;
    this.readInto(addr, b);
    return this.scalar.getInt32(0, true);
  }

  /** Models a 32-bit store. */
  writeI32(addr: number, v: number): void {
    this.scalar.setInt32(0, v | 0, true);
    this.writeBytes(addr, this.scalar4);
  }

  /** Models an 8-bit load. */
  readU8(addr: number): number {
    const b = this.scalar1;
    this.readInto(addr, b);
    return b[0];
  }

  /** Models an 8-bit store. */
  writeU8(addr: number, v: number): void {
    this.scalarBytes[0] = v & 0xff;
    this.writeBytes(addr, this.scalar1);
  }

  /** Models a 16-bit load. */
  readU16(addr: number): number {
    const b = this.scalar2;
    this.readInto(addr, b);
    return this.scalar.getUint16(0, true);
  }

  /** Models a 16-bit store. */
  writeU16(addr: number, v: number): void {
    this.scalar.setUint16(0, v & 0xffff, true);
    this.writeBytes(addr, this.scalar2);
  }

  /** Models a 32-bit unsigned load. */
  readU32(addr: number): number {
    return this.readI32(addr) >>> 0;
  }

  /** Models a 64-bit load (as bigint). */
  readU64(addr: number): bigint {
    this.readInto(addr, this.scalarBytes);
    return this.scalar.getBigUint64(0, true);
  }

  /** Models a 64-bit store. */
  writeU64(addr: number, v: bigint | number): void {
    this.scalar.setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
    this.writeBytes(addr, this.scalarBytes);
  }

  /** Reads `count` ints (as the C tests index `int *ptr`). */
  readInts(addr: number, count: number): Int32Array {
    const b = this.readBytes(addr, count * 4);
    return new Int32Array(b.buffer, b.byteOffset, count);
  }

  /** Writes ints from a host array. */
  writeInts(addr: number, values: Int32Array): void {
    this.writeBytes(addr, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }

  /**
   * Models malloc(3) for test programs: every allocation is its own private anonymous
   * mapping (as glibc does for large blocks). Returns the address (0 on failure).
   */
  malloc(size: number): number {
    const r = this.mmap(0, Math.max(size, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (r < 0) return 0;
    this.mallocs.set(r, Math.max(size, 1));
    return r;
  }

  /** Models free(3) for blocks from {@link malloc}. */
  free(ptr: number): void {
    const n = this.mallocs.get(ptr);
    if (n === undefined) return;
    this.mallocs.delete(ptr);
    this.munmap(ptr, n);
  }

  private readonly mallocs = new Map<number, number>();

  /** Mapped VMAs, read-only (for inspection). */
  get vmas(): readonly Vma[] {
    return this.mm.vmas;
  }
}
