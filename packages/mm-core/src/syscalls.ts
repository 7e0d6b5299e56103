/**
 * The syscall layer as kernel paths that may sleep (generators): what a task runs when a
 * simulated thread enters the kernel. Process (process.ts) wraps each one for synchronous
 * callers; tasks of the interleaving explorer `yield*` them directly, e.g.
 * `yield* proc.sys.madvise(addr, len, MADV_FREE)`.
 *
 * Every syscall ends with the lockdep check that nothing is held on return to user space.
 */
import {
  EACCES,
  EBADF,
  EEXIST,
  EFBIG,
  EINVAL,
  ENODEV,
  ENOMEM,
  ENOSPC,
  ENOTTY,
  EOPNOTSUPP,
  EOVERFLOW,
  ESPIPE,
  ESRCH,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_NORESERVE,
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
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
  TASK_SIZE,
} from './constants.js';
import { accessBytes, accessWords, XLATE_DEAD } from './cpu.js';

import { OpenFile } from './fs.js';
import { memfdCreateFile } from './memfd.js';
import {
  AnonHugetlbFile,
  HUGETLB_ANON_FILE,
  hugetlbfsFallocate,
  hugetlbfsNewInode,
  hugetlbfsTruncate,
  hugetlbReserveCheck,
} from './mm/hugetlbfs.js';
import { mmapWriteLock, mmapWriteUnlock } from './mm/locking.js';
import { sysMadvise } from './mm/madvise.js';
import { getUnmappedArea, pageAlign, rangeFree, removeVma, sysMunmap, unmapRange } from './mm/mmap.js';
import { protToVmFlags, sysMprotect } from './mm/mprotect.js';
import { sysMremap } from './mm/mremap.js';
import { withInvalidation } from './mm/notifier.js';
import { mmapAccount } from './mm/overcommit.js';
import { mmPopulate } from './mm/populate.js';
import { shmemGetFolio, shmemNewInode } from './mm/shmem.js';
import { shmemFallocatePunchHole, shmemTruncateRange } from './mm/shmem-fallocate.js';
import { sysSwapoff, sysSwapon } from './mm/swapoff.js';
import {
  type Inode,
  MMU_NOTIFY_CLEAR,
  VM_HUGETLB,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_SHARED,
  Vma,
} from './mm/types.js';
import { vmaMergeNewRange, vmgMmapState } from './mm/vma-merge.js';
import { zapRange } from './mm/zap.js';
import { createPipeFiles, getPipeInfo, vmsplice } from './pipe.js';
import type { Process } from './process.js';
import { vfsRead, vfsWrite } from './rw.js';
import { LockFinding } from './sched/findings.js';
import type { KGen } from './sched/task.js';
import { RESCHED } from './sched/task.js';
import {
  argInt,
  argLong,
  argUInt,
  argULong,
  MODEL_MAX_FILESIZE,
  mmapArgs,
  rwArgs,
  rwRegs,
} from './syscall-args.js';

/** Models the generator form of a process's syscalls (what a task runs in the kernel). */
export class Syscalls {
  constructor(private readonly p: Process) {}

  private get core() {
    return this.p.host.core;
  }

  /**
   * Models a syscall's entry and its return to user space: the task is counted in the kernel
   * (exit_group() waits for it), lockdep checks that it holds no lock on return (a leaked lock
   * would deadlock its next taker), and a fatal signal that arrived meanwhile is taken (the
   * process exits).
   */
  private *run<T>(what: string, body: KGen<T>): KGen<T> {
    const p = this.p;
    p.inKernel++;
    let v: T;
    try {
      v = yield* body;
    } finally {
      p.inKernel--;
    }
    const t = this.core.sched.current;
    if (t.held.length)
      throw new LockFinding('lock-leak', `${what} returned to user space with a lock held by ${t.name}`, [
        `  held: ${t.heldSummary()}`,
      ]);
    if (p.fatalSignal && p.state === 'running' && p.inKernel === 0) yield* p.exitGen(0, p.fatalSignal);
    return v;
  }

  /**
   * Models mmap(2) (sys_mmap(), do_mmap() under mmap_write_lock). Returns the address or -errno;
   * arguments are checked as the kernel checks its registers ({@link mmapArgs}).
   */
  *mmap(addr: number, length: number, prot: number, flags: number, fd = -1, offset = 0): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    const a = mmapArgs(addr, length, prot, flags, fd, offset);
    if (typeof a === 'number') return a;
    return yield* this.run('mmap', this.mmapBody(a.addr, a.len, a.prot, a.flags, a.fd, a.offset));
  }

  private *mmapBody(
    addr: number,
    length: number,
    prot: number,
    flags: number,
    fd: number,
    offset: number,
  ): KGen<number> {
    const mm = this.p.mm;
    yield* mmapWriteLock(this.core, mm, 'vm_mmap_pgoff');
    let r: number;
    try {
      r = yield* this.doMmap(addr, length, prot, flags, fd, offset);
    } finally {
      mmapWriteUnlock(this.core, mm, 'vm_mmap_pgoff');
    }
    // Models vm_mmap_pgoff(): mm_populate() after the lock is dropped, when do_mmap() asked for
    // it ((flags & (MAP_POPULATE | MAP_NONBLOCK)) == MAP_POPULATE; MAP_NONBLOCK is ignored by
    // the model's argument check). Private writable mappings are populated with write faults;
    // errors are ignored; a fatal signal stops it (-EINTR) and the process exits on return.
    if (r >= 0 && flags & MAP_POPULATE) {
      const len = flags & MAP_HUGETLB ? Math.ceil(length / PMD_SIZE) * PMD_SIZE : pageAlign(length);
      yield* mmPopulate(this.core, mm, r, len);
    }
    return r;
  }

  private *doMmap(
    addr: number,
    length: number,
    prot: number,
    flags: number,
    fd: number,
    offset: number,
  ): KGen<number> {
    const core = this.core;
    const mm = this.p.mm;
    if (![addr, length, prot, flags, fd, offset].every(Number.isInteger)) return -EINVAL;
    if (length <= 0) return -EINVAL;
    if (offset % PAGE_SIZE !== 0 || offset < 0) return -EINVAL;
    if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) return -EINVAL;
    const type = flags & MAP_TYPE;
    if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE) return -EINVAL;
    const shared = type !== MAP_PRIVATE;
    // Models ksys_mmap_pgoff(): a hugetlbfs file is mapped in huge pages (its length rounded up);
    // MAP_HUGETLB with any other file is -EINVAL.
    const hugeFile = !(flags & MAP_ANONYMOUS) && this.p.fds.get(fd)?.inode?.hugetlbfs === true;
    const huge = (flags & MAP_HUGETLB) !== 0 || hugeFile;
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
      file = this.p.fds.get(fd);
      if (!file) return -EBADF;
      const acc = file.flags & O_ACCMODE;
      if (acc === O_WRONLY) return -EACCES;
      if (shared && prot & PROT_WRITE && acc === O_RDONLY) return -EACCES;
      if (shared && acc === O_RDONLY) vmFlags &= ~VM_MAYWRITE;
      if (huge && !hugeFile) return -EINVAL;
      if (file.inode) {
        inode = file.inode;
        // hugetlbfs_file_mmap(): the file offset must be huge-page aligned.
        if (hugeFile && offset % PMD_SIZE) return -EINVAL;
        // Models file_mmap_ok() for a regular file: the last page offset must fit in loff_t.
        if (offset / PAGE_SIZE + pageAlign(length) / PAGE_SIZE >= 2 ** 51) return -EOVERFLOW;
      } else if (!file.fops?.mmap) return -ENODEV;
    }
    if (shared) vmFlags |= VM_SHARED | VM_MAYSHARE;
    if (huge) {
      vmFlags |= VM_HUGETLB;
      if (hugeFile) {
        const r = hugetlbReserveCheck(core, inode, offset, len, shared, (flags & MAP_NORESERVE) !== 0);
        if (r < 0) return r;
      } else if (core.hugetlb.free.length < len / PMD_SIZE) return -ENOMEM;
    }
    vmFlags = mmapAccount(core, mm, flags, vmFlags, addr, len);
    if (vmFlags < 0) return vmFlags;
    let start: number;
    if (flags & MAP_FIXED_NOREPLACE) {
      if (!rangeFree(mm, addr, len)) return -EEXIST;
      start = addr;
    } else if (flags & MAP_FIXED) {
      yield* unmapRange(core, mm, addr, addr + len);
      start = addr;
    } else {
      start = getUnmappedArea(mm, addr, len, huge || (!file && !shared));
      if (start < 0) return start;
      if (huge && start % PMD_SIZE) return -ENOMEM;
    }
    if (!file && shared && !huge) {
      // Models shmem_zero_setup(): shared anonymous memory is a tmpfs file (MAP_HUGETLB: a
      // hugetlbfs one, below).
      inode = shmemNewInode(core, 'dev/zero');
      inode.sbHuge = 'shm_mnt';
      inode.size = len;
    }
    if (huge && shared && !inode) {
      inode = hugetlbfsNewInode(core, HUGETLB_ANON_FILE);
      inode.size = len;
    }
    // Models do_mmap()'s pgoff: the file offset; for private anonymous memory the address (for
    // the anon_vma); shared anonymous memory ignores the offset (pgoff 0).
    let pgoff = start / PAGE_SIZE;
    if (file || (huge && inode)) pgoff = offset / PAGE_SIZE;
    else if (inode) pgoff = 0;
    // vm_file's identity: the open file, the shmem file of shared anonymous memory, the
    // hugetlbfs file hugetlb_file_setup() makes for every MAP_HUGETLB mapping.
    const vmFile: object | null = file ?? inode ?? (huge ? new AnonHugetlbFile() : null);
    // Models __mmap_region(): try to merge with the neighbours before allocating a VMA (and so
    // before the driver's ->mmap(), which a merged range never sees).
    const vmg = vmgMmapState(mm, start, start + len, vmFlags, pgoff, inode, vmFile);
    if (vmg.prev || vmg.next) {
      if (yield* vmaMergeNewRange(core, vmg)) return start;
    }
    const vma = new Vma(mm, start, start + len, vmFlags, pgoff, inode);
    vma.vmFile = vmFile;
    if (inode) {
      inode.mmaps.add(vma);
      inode.refs++;
    }
    mm.insertVma(vma);
    if (file && !file.inode && file.fops?.mmap) {
      vma.vmOps = { name: file.path };
      const r = file.fops.mmap(file, vma);
      if (r < 0) {
        yield* unmapRange(core, mm, start, start + len);
        if (mm.vmas.includes(vma)) removeVma(core, vma);
        return r;
      }
    }
    return start;
  }

  /** Models munmap(2). */
  *munmap(addr: number, length: number): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    return yield* this.run('munmap', sysMunmap(this.core, this.p.mm, addr, length));
  }

  /** Models mprotect(2). */
  *mprotect(addr: number, length: number, prot: number): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    return yield* this.run('mprotect', sysMprotect(this.core, this.p.mm, addr, length, prot));
  }

  /** Models madvise(2). */
  *madvise(addr: number, length: number, advice: number): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    return yield* this.run('madvise', sysMadvise(this.core, this.p.mm, addr, length, advice));
  }

  /** Models swapoff(2) of a swap partition (mm/swapoff.ts sysSwapoff()): every process's swapped pages come back. */
  *swapoff(path: string): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    return yield* this.run('swapoff', sysSwapoff(this.core, path));
  }

  /** Models swapon(2) of a swap partition (mm/swapoff.ts sysSwapon()). */
  *swapon(path: string, flags = 0): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    return yield* this.run('swapon', sysSwapon(this.core, path, flags));
  }

  /** Models mremap(2). */
  *mremap(oldAddr: number, oldLen: number, newLen: number, flags: number, newAddr = 0): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    return yield* this.run(
      'mremap',
      sysMremap(this.core, this.p.mm, oldAddr, oldLen, newLen, flags, newAddr),
    );
  }

  /** Models open(2)/openat(2): device files, tmpfs files, O_TMPFILE and pseudo files. */
  *open(path: string, flags: number): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    const fl = argInt(flags);
    if (typeof path !== 'string' || fl === undefined) return -EINVAL;
    return yield* this.run('open', this.openBody(path, fl));
  }

  private *openBody(path: string, fl: number): KGen<number> {
    if (this.core.sched.preempt('open: path lookup')) yield RESCHED;
    const t = this.p.host.lookupPath(path, fl);
    if (typeof t === 'number') return t;
    const f =
      'inode' in t
        ? new OpenFile(path, fl, t.inode, null, this.p)
        : new OpenFile(path, fl, null, t.fops, this.p);
    if ('inode' in t) t.inode.refs++;
    if (f.fops?.open) {
      const r = f.fops.open(f);
      if (r < 0) return r;
    }
    return this.p.installFd(f);
  }

  /** Models close(2). */
  *close(fd: number): KGen<number> {
    const n = argUInt(fd);
    if (n === undefined) return -EINVAL;
    const f = this.p.fds.get(n);
    if (!f) return -EBADF;
    this.p.fds.delete(n);
    yield* this.run('close', this.p.releaseFile(f));
    return 0;
  }

  /**
   * Models ioctl(2): `fd` and `cmd` are unsigned int, `arg` an unsigned long (a user address in
   * this process for every ioctl of this model; one beyond the address space faults in the
   * driver's copy_from_user(), -EFAULT).
   */
  *ioctl(fd: number, cmd: number, arg: number): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    const n = argUInt(fd);
    const c = argUInt(cmd);
    const a = argULong(arg);
    if (n === undefined || c === undefined || a === undefined) return -EINVAL;
    const f = this.p.fds.get(n);
    if (!f) return -EBADF;
    if (!f.fops?.ioctl) return -ENOTTY;
    return yield* this.run('ioctl', this.fdget(f, f.fops.ioctl(f, c, Number(a), this.p)));
  }

  /**
   * Models fdget() / fdput() around a file operation: the operation holds a reference, so a
   * close() of the descriptor by another thread meanwhile does not run ->release() under it
   * (the last fput() does, when the operation returns).
   */
  private *fdget(f: OpenFile, op: KGen<number>): KGen<number> {
    f.refs++;
    const r = yield* op;
    yield* this.p.releaseFile(f);
    return r;
  }

  /**
   * Models pwrite64(2) (ksys_pwrite64(), vfs_write()). `buf` is a user address, or (an extension
   * for host code) a Uint8Array. Checks as {@link rwRegs} and {@link rwArgs}; bytes written or -errno.
   */
  *pwrite(fd: number, buf: number | Uint8Array, count: number, offset: number): KGen<number> {
    const r = rwRegs(fd, buf, count, offset);
    if (typeof r === 'number') return r;
    if (r.pos < 0n) return -EINVAL;
    const f = this.p.fds.get(r.fd);
    if (!f || (f.flags & O_ACCMODE) === O_RDONLY) return -EBADF;
    // Models FMODE_CAN_WRITE: a pseudo file without ->write_iter.
    if (!f.inode && !f.fops?.pwrite) return -EINVAL;
    const a = rwArgs(r);
    if (typeof a === 'number') return a;
    return yield* this.run('pwrite', this.fdget(f, vfsWrite(this.core, this.p.mm, f, a.buf, a.count, a.pos)));
  }

  /**
   * Models pread64(2) (ksys_pread64(), vfs_read()). `buf` is a user address, or (an extension
   * for host code) a Uint8Array. Checks as {@link rwRegs} and {@link rwArgs}; bytes read or -errno.
   */
  *pread(fd: number, buf: number | Uint8Array, count: number, offset: number): KGen<number> {
    const r = rwRegs(fd, buf, count, offset);
    if (typeof r === 'number') return r;
    if (r.pos < 0n) return -EINVAL;
    const f = this.p.fds.get(r.fd);
    if (!f || (f.flags & O_ACCMODE) === O_WRONLY) return -EBADF;
    // Models FMODE_CAN_READ: a pseudo file without ->read_iter.
    if (!f.inode && !f.fops?.pread) return -EINVAL;
    const a = rwArgs(r);
    if (typeof a === 'number') return a;
    return yield* this.run('pread', this.fdget(f, vfsRead(this.core, this.p.mm, f, a.buf, a.count, a.pos)));
  }

  /**
   * Models pipe(2) (do_pipe2() without flags): a new pipe; its read end and write end get the
   * two lowest free descriptors. Returns [readFd, writeFd].
   */
  *pipe(): KGen<[number, number] | number> {
    if (!this.p.alive) return -ESRCH;
    const [r, w] = createPipeFiles(this.core, this.p);
    return [this.p.installFd(r), this.p.installFd(w)];
  }

  /**
   * Models read(2) (ksys_read(), vfs_read() at the file position): a pipe ignores the position,
   * a tmpfs file advances it. `buf` is a user address or a host buffer; bytes read or -errno.
   */
  *read(fd: number, buf: number | Uint8Array, count: number): KGen<number> {
    const r = rwRegs(fd, buf, count, 0);
    if (typeof r === 'number') return r;
    const f = this.p.fds.get(r.fd);
    if (!f || (f.flags & O_ACCMODE) === O_WRONLY) return -EBADF;
    if (!f.inode && !f.fops?.pread) return -EINVAL;
    const a = rwArgs({ ...r, pos: BigInt(f.pos) });
    if (typeof a === 'number') return a;
    const n = yield* this.run('read', this.fdget(f, vfsRead(this.core, this.p.mm, f, a.buf, a.count, a.pos)));
    // A pipe has no position; files and pseudo files (seq_file, sysfs) advance theirs.
    if (n > 0 && !getPipeInfo(f)) f.pos += n;
    return n;
  }

  /** Models write(2) (ksys_write(), vfs_write() at the file position), as {@link read}. */
  *write(fd: number, buf: number | Uint8Array, count: number): KGen<number> {
    const r = rwRegs(fd, buf, count, 0);
    if (typeof r === 'number') return r;
    const f = this.p.fds.get(r.fd);
    if (!f || (f.flags & O_ACCMODE) === O_RDONLY) return -EBADF;
    if (!f.inode && !f.fops?.pwrite) return -EINVAL;
    const a = rwArgs({ ...r, pos: BigInt(f.pos) });
    if (typeof a === 'number') return a;
    const n = yield* this.run(
      'write',
      this.fdget(f, vfsWrite(this.core, this.p.mm, f, a.buf, a.count, a.pos)),
    );
    if (n > 0 && !getPipeInfo(f)) f.pos += n;
    return n;
  }

  /**
   * Models vmsplice(2) (fs/splice.c): `iov` is the user address of `nrSegs` struct iovec. Into a
   * pipe's write end the user pages are referenced (get_user_pages_fast(), FOLL_GET, read-only);
   * see {@link vmsplice}.
   */
  *vmsplice(fd: number, iov: number, nrSegs: number, flags: number): KGen<number> {
    const n = argUInt(fd);
    if (n === undefined) return -EBADF;
    return yield* this.run('vmsplice', vmsplice(this.core, this.p.mm, this.p.fds.get(n), iov, nrSegs, flags));
  }

  /**
   * Models fallocate(2) (vfs_fallocate() -> shmem_fallocate()) on a tmpfs file: with mode 0
   * every page of [offset, offset + len) is allocated in the page cache (zeroed) and the size
   * grows to offset + len. A negative offset or a length <= 0 is -EINVAL, a descriptor not open
   * for writing -EBADF, a pipe -ESPIPE, another non-tmpfs file -ENODEV. FALLOC_FL_PUNCH_HOLE |
   * FALLOC_FL_KEEP_SIZE punches a hole (shmem_fallocate(): unmap the whole pages, then
   * shmem_truncate_range(), which splits a large folio the hole covers in part); other modes
   * -EOPNOTSUPP. Out of memory: -ENOSPC.
   */
  *fallocate(fd: number, mode: number, offset: number, len: number): KGen<number> {
    const n = argUInt(fd);
    const off = argLong(offset);
    const l = argLong(len);
    if (n === undefined || off === undefined || l === undefined) return -EINVAL;
    if (off < 0n || l <= 0n) return -EINVAL;
    const f = this.p.fds.get(n);
    if (!f || (f.flags & O_ACCMODE) === O_RDONLY) return -EBADF;
    if (getPipeInfo(f)) return -ESPIPE;
    if (!f.inode) return -ENODEV;
    if (f.inode.hugetlbfs) {
      // vfs_fallocate(): PUNCH_HOLE needs KEEP_SIZE; then hugetlbfs_fallocate().
      if (mode & FALLOC_FL_PUNCH_HOLE && !(mode & FALLOC_FL_KEEP_SIZE)) return -EOPNOTSUPP;
      if (off + l > BigInt(MODEL_MAX_FILESIZE)) return -EFBIG;
      return yield* this.run(
        'fallocate',
        this.fdget(f, hugetlbfsFallocate(this.core, f.inode, mode, Number(off), Number(l))),
      );
    }
    if (mode === (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
      if (off + l > BigInt(MODEL_MAX_FILESIZE)) return -EFBIG;
      return yield* this.run(
        'fallocate',
        this.fdget(f, shmemFallocatePunchHole(this.core, f.inode, Number(off), Number(l))),
      );
    }
    if (mode !== 0) return -EOPNOTSUPP;
    if (off + l > BigInt(MODEL_MAX_FILESIZE)) return -EFBIG;
    const inode = f.inode;
    const end = Number(off + l);
    for (let i = Math.floor(Number(off) / PAGE_SIZE); i < Math.ceil(end / PAGE_SIZE); i++)
      if (shmemGetFolio(this.core, inode, i, true) < 0) return -ENOSPC;
    if (end > inode.size) inode.size = end;
    return 0;
  }

  /**
   * Models lseek(2) (generic_file_llseek() for tmpfs files, the same arithmetic for pseudo and
   * device files): SEEK_SET, SEEK_CUR or SEEK_END; a negative result or another whence is -EINVAL.
   */
  *lseek(fd: number, offset: number, whence: number): KGen<number> {
    const n = argUInt(fd);
    const off = argLong(offset);
    if (n === undefined || off === undefined) return -EINVAL;
    const f = this.p.fds.get(n);
    if (!f) return -EBADF;
    if (this.core.sched.preempt('lseek: f_pos_lock')) yield RESCHED;
    const base =
      whence === SEEK_SET
        ? 0n
        : whence === SEEK_CUR
          ? BigInt(f.pos)
          : whence === SEEK_END
            ? BigInt(f.inode?.size ?? 0)
            : -1n;
    if (base < 0n) return -EINVAL;
    const pos = base + off;
    if (pos < 0n || pos > BigInt(MODEL_MAX_FILESIZE)) return -EINVAL;
    f.pos = Number(pos);
    return f.pos;
  }

  /**
   * Models a path-based syscall of the tmpfs namespace (mkdir(2), rmdir(2), unlink(2), mount(2),
   * umount(2)): the path walk, then `op` under the namespace's locks (which the model does not
   * contend: nothing else sleeps in them).
   */
  *pathOp(what: string, op: () => number): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    return yield* this.run(what, this.pathBody(what, op));
  }

  private *pathBody(what: string, op: () => number): KGen<number> {
    if (this.core.sched.preempt(`${what}: path lookup`)) yield RESCHED;
    return op();
  }

  /**
   * Models ftruncate(2) on a tmpfs file (do_sys_ftruncate(): a negative length is -EINVAL before
   * the descriptor is looked up; a length beyond s_maxbytes is -EFBIG): shrinking unmaps and
   * drops pages past the end.
   */
  *ftruncate(fd: number, length: number): KGen<number> {
    const len = argLong(length);
    const n = argUInt(fd);
    if (len === undefined || n === undefined || len < 0n) return -EINVAL;
    const f = this.p.fds.get(n);
    if (!f) return -EBADF;
    if (!f.inode || (f.flags & O_ACCMODE) === O_RDONLY) return -EINVAL;
    if (len > BigInt(MODEL_MAX_FILESIZE)) return -EFBIG;
    if (f.inode.hugetlbfs)
      return yield* this.run('ftruncate', this.fdget(f, hugetlbfsTruncate(this.core, f.inode, Number(len))));
    return yield* this.run('ftruncate', this.fdget(f, this.truncateBody(f.inode, Number(len))));
  }

  /** Models memfd_create(2) (memfd.ts): the new descriptor, or -errno. */
  *memfdCreate(name: string, flags: number): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    const fl = argUInt(flags);
    if (typeof name !== 'string' || fl === undefined) return -EINVAL;
    return yield* this.run('memfd_create', this.memfdBody(name, fl));
  }

  private *memfdBody(name: string, flags: number): KGen<number> {
    if (this.core.sched.preempt('memfd_create: alloc_name')) yield RESCHED;
    const f = memfdCreateFile(this.core, name, flags, this.p);
    return typeof f === 'number' ? f : this.p.installFd(f);
  }

  /**
   * Models shmem_setattr()'s size change: i_size_write() first; then, when not growing,
   * unmap_mapping_range(holebegin, 0, even_cows) if the old size reaches past the first whole
   * page beyond the new end, shmem_truncate_range(newsize, -1) (zero the tail of the page holding
   * the new end, split a large folio straddling it and drop the pages beyond), and the same unmap
   * again "to remove racily COWed private pages".
   */
  private *truncateBody(inode: Inode, length: number): KGen<number> {
    const core = this.core;
    const oldsize = inode.size;
    inode.size = length;
    if (length > oldsize) return 0;
    const holebegin = Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
    const unmap = oldsize > holebegin;
    for (let pass = 0; pass < 2; pass++) {
      // info->alloced: only a file with pages has anything to truncate.
      if (pass === 1 && inode.pages.size > 0) yield* shmemTruncateRange(core, inode, length, -1);
      if (!unmap) continue;
      yield* inode.immapRwsem.downRead(core.sched, 'unmap_mapping_range');
      try {
        for (const v of [...inode.mmaps]) {
          const s = Math.max(v.start, v.start + (holebegin / PAGE_SIZE - v.pgoff) * PAGE_SIZE);
          if (s < v.end) {
            // Models unmap_mapping_range(): zap_page_range_single() of the VMA's part, inside an
            // MMU_NOTIFY_CLEAR invalidation.
            yield* withInvalidation(v.mm, s, v.end, MMU_NOTIFY_CLEAR, null, () =>
              zapRange(core, v, s, v.end),
            );
          }
        }
      } finally {
        inode.immapRwsem.upRead(core.sched, 'unmap_mapping_range');
      }
    }
    return 0;
  }

  /** Models fork(2): returns the child's pid, or -errno. */
  *fork(): KGen<number> {
    if (!this.p.alive) return -ESRCH;
    return yield* this.run('fork', this.p.forkGen());
  }

  /**
   * Models an ioctl into a driver entry point the model calls directly instead of through a file
   * (e.g. nouveau's DRM_NOUVEAU_SVM_BIND): the body runs as a syscall of this task, counted in the
   * kernel, so the process cannot exit and tear its mm down under it, with the lockdep check and
   * a pending fatal signal taken on return.
   */
  *driverIoctl<T>(what: string, body: KGen<T>): KGen<T> {
    return yield* this.run(what, body);
  }

  /**
   * Models a user load or store of a byte range (copy to or from a host buffer): 0, or the
   * XLATE_* code of the page that could not be accessed (the caller delivers the signal), or
   * XLATE_DEAD when the process has exited.
   */
  *access(addr: number, buf: Uint8Array, dir: 'read' | 'write'): KGen<number> {
    // A thread whose process exited (the syscall it just returned from took the fatal signal)
    // runs no more user code: nothing is touched (the mm may be torn down already).
    if (this.p.state !== 'running') return XLATE_DEAD;
    // A user access: a fatal signal arriving meanwhile is taken at the next interrupt.
    return yield* this.run('user access', accessBytes(this.core, this.p.mm, addr, buf, dir, true));
  }

  /**
   * Models user loads or stores of every word of whole pages, each page one word repeated
   * ({@link accessWords}): like {@link Syscalls.access} with no bytes moved. words[k] is page k's
   * word (a load sets it, -1 for a page whose words differ).
   */
  *accessWords(addr: number, words: Float64Array, dir: 'read' | 'write'): KGen<number> {
    if (this.p.state !== 'running') return XLATE_DEAD;
    return yield* this.run('user access', accessWords(this.core, this.p.mm, addr, words, dir, true));
  }
}
