import {
  EACCES,
  EBADF,
  ECHILD,
  EEXIST,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOMEM,
  ENOTTY,
  ESRCH,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_TYPE,
  O_ACCMODE,
  O_RDONLY,
  O_WRONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  SIGBUS,
  SIGKILL,
  SIGSEGV,
  TASK_SIZE,
} from './constants.js';
import { accessBytes, XLATE_BUS, XLATE_OOM } from './cpu.js';
import { SignalDelivered } from './errors.js';
import { OpenFile } from './fs.js';
import type { Host } from './host.js';
import { exitMmap } from './mm/exit.js';
import { dupMmap } from './mm/fork.js';
import { sysMadvise } from './mm/madvise.js';
import {
  getUnmappedArea,
  inodePut,
  pageAlign,
  rangeFree,
  removeVma,
  sysMunmap,
  unmapRange,
} from './mm/mmap.js';
import { protToVmFlags, sysMprotect } from './mm/mprotect.js';
import { sysMremap } from './mm/mremap.js';
import { withInvalidation } from './mm/notifier.js';
import { forkAccount, mmapAccount } from './mm/overcommit.js';
import { allocTable } from './mm/pgtable.js';
import { shmemNewInode, shmemRead, shmemTruncatePages, shmemWrite } from './mm/shmem.js';
import {
  type Inode,
  MMU_NOTIFY_CLEAR,
  MmStruct,
  VM_HUGETLB,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_SHARED,
  Vma,
} from './mm/types.js';
import { zapRange } from './mm/zap.js';

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

/**
 * Models a user process (struct task_struct + its mm and files) behind a libc-like surface:
 * each method is named after the syscall and follows the raw-syscall convention (a
 * non-negative result or -errno). CPU accesses go through the MMU model; an access the fault
 * handler cannot satisfy kills the process with SIGSEGV/SIGBUS and throws SignalDelivered.
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

  constructor(host: Host, parent: Process | null, mm?: MmStruct) {
    this.host = host;
    this.pid = host.allocPid();
    this.parent = parent;
    if (mm) this.mm = mm;
    else {
      this.mm = new MmStruct(nextMmId++);
      this.mm.pgd = allocTable(host.core, this.mm, true);
    }
    parent?.children.add(this);
    host.tasks.set(this.pid, this);
  }

  private get core() {
    return this.host.core;
  }

  private done<T>(what: string, v: T): T {
    this.host.afterSyscall(what);
    return v;
  }

  private alive(): boolean {
    return this.state === 'running';
  }

  /** Models getpid(2). */
  getpid(): number {
    return this.pid;
  }

  /**
   * Models mmap(2) (do_mmap()): anonymous private/shared, tmpfs files, MAP_HUGETLB and device
   * files' own mmap. Returns the address or -errno.
   */
  mmap(addr: number, length: number, prot: number, flags: number, fd = -1, offset = 0): number {
    if (!this.alive()) return -ESRCH;
    const r = this.doMmap(addr, length, prot, flags, fd, offset);
    return this.done('mmap', r);
  }

  private doMmap(
    addr: number,
    length: number,
    prot: number,
    flags: number,
    fd: number,
    offset: number,
  ): number {
    const core = this.core;
    const mm = this.mm;
    if (![addr, length, prot, flags, fd, offset].every(Number.isInteger)) return -EINVAL;
    if (length <= 0) return -EINVAL;
    if (offset % PAGE_SIZE !== 0 || offset < 0) return -EINVAL;
    if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) return -EINVAL;
    const type = flags & MAP_TYPE;
    if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE) return -EINVAL;
    const shared = type !== MAP_PRIVATE;
    const huge = (flags & MAP_HUGETLB) !== 0;
    let len = pageAlign(length);
    if (huge) len = Math.ceil(length / PMD_SIZE) * PMD_SIZE;
    if (len > TASK_SIZE || len <= 0) return -ENOMEM;
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
      if (addr % (huge ? PMD_SIZE : PAGE_SIZE) !== 0) return -EINVAL;
      if (addr < 0x10000 || addr + len > TASK_SIZE) return flags & MAP_FIXED ? -EINVAL : -ENOMEM;
    }
    let file: OpenFile | undefined;
    let inode: Inode | null = null;
    let vmFlags = protToVmFlags(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
    if (!(flags & MAP_ANONYMOUS)) {
      file = this.fds.get(fd);
      if (!file) return -EBADF;
      const acc = file.flags & O_ACCMODE;
      if (acc === O_WRONLY) return -EACCES;
      if (shared && prot & PROT_WRITE && acc === O_RDONLY) return -EACCES;
      if (shared && acc === O_RDONLY) vmFlags &= ~VM_MAYWRITE;
      if (huge) return -EINVAL;
      if (file.inode) inode = file.inode;
      else if (!file.fops?.mmap) return -ENODEV;
    }
    if (shared) vmFlags |= VM_SHARED | VM_MAYSHARE;
    if (huge) {
      vmFlags |= VM_HUGETLB;
      if (core.hugetlb.free.length < len / PMD_SIZE) return -ENOMEM;
    }
    vmFlags = mmapAccount(core, mm, flags, vmFlags, addr, len);
    if (vmFlags < 0) return vmFlags;
    let start: number;
    if (flags & MAP_FIXED_NOREPLACE) {
      if (!rangeFree(mm, addr, len)) return -EEXIST;
      start = addr;
    } else if (flags & MAP_FIXED) {
      unmapRange(core, mm, addr, addr + len);
      start = addr;
    } else {
      start = getUnmappedArea(mm, addr, len, huge || (!file && !shared));
      if (start < 0) return start;
      if (huge && start % PMD_SIZE) return -ENOMEM;
    }
    if (!file && shared) {
      // Models shmem_zero_setup(): shared anonymous memory is a tmpfs file.
      inode = shmemNewInode(core, 'dev/zero');
      inode.size = len;
    }
    if (huge && shared && !inode) {
      inode = shmemNewInode(core, 'anon_hugepage');
      inode.size = len;
    }
    const pgoff = inode || file ? offset / PAGE_SIZE : start / PAGE_SIZE;
    const vma = new Vma(mm, start, start + len, vmFlags, pgoff, inode);
    if (inode) {
      inode.mmaps.add(vma);
      inode.refs++;
    }
    mm.insertVma(vma);
    if (file && !file.inode && file.fops?.mmap) {
      vma.vmOps = { name: file.path };
      const r = file.fops.mmap(file, vma);
      if (r < 0) {
        unmapRange(core, mm, start, start + len);
        if (mm.vmas.includes(vma)) removeVma(core, vma);
        return r;
      }
    }
    if (flags & MAP_POPULATE) {
      const buf = new Uint8Array(1);
      for (let a = start; a < start + len; a += PAGE_SIZE) accessBytes(core, mm, a, buf, 'read');
    }
    return start;
  }

  /** Models munmap(2). */
  munmap(addr: number, length: number): number {
    if (!this.alive()) return -ESRCH;
    return this.done('munmap', sysMunmap(this.core, this.mm, addr, length));
  }

  /** Models mprotect(2). */
  mprotect(addr: number, length: number, prot: number): number {
    if (!this.alive()) return -ESRCH;
    return this.done('mprotect', sysMprotect(this.core, this.mm, addr, length, prot));
  }

  /** Models madvise(2). */
  madvise(addr: number, length: number, advice: number): number {
    if (!this.alive()) return -ESRCH;
    return this.done('madvise', sysMadvise(this.core, this.mm, addr, length, advice));
  }

  /** Models mremap(2). */
  mremap(oldAddr: number, oldLen: number, newLen: number, flags: number, newAddr = 0): number {
    if (!this.alive()) return -ESRCH;
    return this.done('mremap', sysMremap(this.core, this.mm, oldAddr, oldLen, newLen, flags, newAddr));
  }

  private allocFd(): number {
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    return fd;
  }

  /** Models open(2)/openat(2): device files, tmpfs files, O_TMPFILE and pseudo files. */
  open(path: string, flags: number, _mode = 0o600): number {
    if (!this.alive()) return -ESRCH;
    if (typeof path !== 'string' || !Number.isInteger(flags)) return -EINVAL;
    const t = this.host.lookupPath(path, flags);
    if (typeof t === 'number') return this.done('open', t);
    const f =
      'inode' in t
        ? new OpenFile(path, flags, t.inode, null, this)
        : new OpenFile(path, flags, null, t.fops, this);
    if ('inode' in t) t.inode.refs++;
    if (f.fops?.open) {
      const r = f.fops.open(f);
      if (r < 0) return this.done('open', r);
    }
    const fd = this.allocFd();
    this.fds.set(fd, f);
    return this.done('open', fd);
  }

  private releaseFile(f: OpenFile): void {
    f.refs--;
    if (f.refs > 0) return;
    f.fops?.release?.(f);
    if (f.inode) inodePut(this.core, f.inode);
  }

  /** Models close(2). */
  close(fd: number): number {
    const f = this.fds.get(fd);
    if (!f) return -EBADF;
    this.fds.delete(fd);
    this.releaseFile(f);
    return this.done('close', 0);
  }

  /** Models ioctl(2): `arg` is a user address in this process. */
  ioctl(fd: number, cmd: number, arg: number): number {
    if (!this.alive()) return -ESRCH;
    const f = this.fds.get(fd);
    if (!f) return -EBADF;
    if (!f.fops?.ioctl) return -ENOTTY;
    return this.done('ioctl', f.fops.ioctl(f, cmd >>> 0, arg, this));
  }

  private userBuf(buf: number | Uint8Array, count: number): Uint8Array | number {
    if (buf instanceof Uint8Array) return buf.subarray(0, count);
    const b = new Uint8Array(count);
    return accessBytes(this.core, this.mm, buf, b, 'read') < 0 ? -EFAULT : b;
  }

  /**
   * Models pwrite(2). `buf` is a user address, or (an extension for host code) a Uint8Array.
   */
  pwrite(fd: number, buf: number | Uint8Array, count: number, offset: number): number {
    const f = this.fds.get(fd);
    if (!f || (f.flags & O_ACCMODE) === O_RDONLY) return -EBADF;
    if (!Number.isInteger(count) || count < 0 || !Number.isInteger(offset) || offset < 0) return -EINVAL;
    if (!f.inode && !f.fops?.pwrite) return -EINVAL;
    const b = this.userBuf(buf, count);
    if (typeof b === 'number') return b;
    if (!f.inode) return this.done('pwrite', f.fops?.pwrite?.(f, b, offset) ?? -EINVAL);
    return this.done('pwrite', shmemWrite(this.core, f.inode, b, offset));
  }

  /** Models pread(2). `buf` is a user address, or (an extension for host code) a Uint8Array. */
  pread(fd: number, buf: number | Uint8Array, count: number, offset: number): number {
    const f = this.fds.get(fd);
    if (!f || (f.flags & O_ACCMODE) === O_WRONLY) return -EBADF;
    if (!Number.isInteger(count) || count < 0 || !Number.isInteger(offset) || offset < 0) return -EINVAL;
    const tmp = new Uint8Array(count);
    let n: number;
    if (f.inode) n = shmemRead(this.core, f.inode, tmp, offset);
    else if (f.fops?.pread) n = f.fops.pread(f, tmp, offset);
    else return -EINVAL;
    if (n < 0) return n;
    if (buf instanceof Uint8Array) buf.set(tmp.subarray(0, Math.min(n, buf.length)));
    else if (accessBytes(this.core, this.mm, buf, tmp.subarray(0, n), 'write') < 0) return -EFAULT;
    return this.done('pread', n);
  }

  /** Models ftruncate(2) on a tmpfs file: shrinking unmaps and drops pages past the end. */
  ftruncate(fd: number, length: number): number {
    const f = this.fds.get(fd);
    if (!f) return -EBADF;
    if (!Number.isInteger(length) || length < 0) return -EINVAL;
    if (!f.inode || (f.flags & O_ACCMODE) === O_RDONLY) return -EINVAL;
    const inode = f.inode;
    if (length < inode.size) {
      const from = Math.ceil(length / PAGE_SIZE);
      for (const v of [...inode.mmaps]) {
        const s = Math.max(v.start, v.start + (from - v.pgoff) * PAGE_SIZE);
        if (s < v.end) {
          // Models unmap_mapping_range(): the zap runs inside an MMU_NOTIFY_CLEAR invalidation.
          withInvalidation(v.mm, s, v.end, MMU_NOTIFY_CLEAR, null, () => zapRange(this.core, v, s, v.end));
        }
      }
      shmemTruncatePages(this.core, inode, from);
    }
    inode.size = length;
    return this.done('ftruncate', 0);
  }

  /** Models fork(2): returns the child's pid (the child is `host`'s task with that pid), or -errno. */
  fork(): number {
    if (!this.alive()) return -ESRCH;
    if (forkAccount(this.core, this.mm) < 0) return this.done('fork', -ENOMEM);
    const { mm, ok } = dupMmap(this.core, this.mm, nextMmId++);
    const child = new Process(this.host, this, mm);
    for (const [fd, f] of this.fds) {
      f.refs++;
      child.fds.set(fd, f);
    }
    if (!ok) {
      child.doExit(0, SIGKILL);
      return this.done('fork', -ENOMEM);
    }
    return this.done('fork', child.pid);
  }

  /** Models do_exit(): files closed, mm torn down, zombie until reaped. */
  doExit(code: number, signal = 0): void {
    if (this.state !== 'running') return;
    for (const fd of [...this.fds.keys()]) {
      const f = this.fds.get(fd)!;
      this.fds.delete(fd);
      this.releaseFile(f);
    }
    this.mm.users--;
    if (this.mm.users === 0) exitMmap(this.core, this.mm);
    this.status = signal ? signal & 0x7f : (code & 0xff) << 8;
    this.state = 'zombie';
    for (const c of this.children) {
      c.parent = null;
      if (c.state === 'zombie') c.reap();
    }
    this.children.clear();
    if (!this.parent) this.reap();
    this.host.afterSyscall('exit');
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
   * status in `status.value`; -ECHILD if it is not a child; a still-running child cannot be
   * waited for in a single-threaded model (-ECHILD is not right there, so this returns 0 for
   * WNOHANG semantics).
   */
  waitpid(pid: number, status?: { value: number }, _options = 0): number {
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

  /** Models kill(2): SIGKILL/SIGTERM (and any other fatal signal) terminate the target. */
  kill(pid: number, sig: number): number {
    const t = this.host.tasks.get(pid);
    if (t?.state !== 'running') return -ESRCH;
    if (!Number.isInteger(sig) || sig < 0 || sig > 64) return -EINVAL;
    if (sig === 0) return 0;
    t.doExit(0, sig);
    return 0;
  }

  private fault(addr: number, code: number): never {
    const sig = code === XLATE_BUS ? SIGBUS : code === XLATE_OOM ? SIGKILL : SIGSEGV;
    this.doExit(0, sig);
    throw new SignalDelivered(
      sig,
      this.pid,
      addr,
      code === XLATE_BUS ? 'bus error' : code === XLATE_OOM ? 'out of memory' : 'segmentation fault',
    );
  }

  /** Models user loads of a byte range (one translation per page). */
  readBytes(addr: number, length: number): Uint8Array {
    const b = new Uint8Array(length);
    this.readInto(addr, b);
    return b;
  }

  /** Models user loads into a host buffer. */
  readInto(addr: number, buf: Uint8Array): void {
    if (!this.alive()) throw new SignalDelivered(SIGKILL, this.pid, addr, 'process is not running');
    const r = accessBytes(this.core, this.mm, addr, buf, 'read');
    if (r < 0) this.fault(addr, r);
  }

  /** Models user stores of a byte range (one translation per page). */
  writeBytes(addr: number, data: Uint8Array): void {
    if (!this.alive()) throw new SignalDelivered(SIGKILL, this.pid, addr, 'process is not running');
    const r = accessBytes(this.core, this.mm, addr, data, 'write');
    if (r < 0) this.fault(addr, r);
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
