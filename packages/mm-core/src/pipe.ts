/**
 * Pipes (fs/pipe.c) and vmsplice(2) into a pipe (fs/splice.c), as far as the mm selftests use
 * them: a ring of pipe buffers, write(2) copies bytes into the pipe, read(2) copies them out, and
 * vmsplice() puts the user's pages themselves into the pipe with get_user_pages_fast() (a
 * reference, FOLL_GET, read-only: no FOLL_PIN), so that a later read() copies whatever those
 * pages hold then. That is what cow.c's vmsplice() cases check against COW.
 *
 * Simplified: the model's tasks do not sleep on a pipe. A read of an empty pipe that still has
 * writers, and a write or vmsplice() into a full pipe that still has readers, return -EAGAIN as
 * with O_NONBLOCK; a program that would block retries after letting its peer run. The bytes of
 * write(2) live in host buffers (the kernel's anonymous pipe pages are kernel allocations no user
 * mapping can see). No SIGPIPE is sent with -EPIPE.
 */

import { EAGAIN, EBADF, EFAULT, EINVAL, EPIPE, PAGE_SIZE } from './constants.js';
import type { Core } from './core.js';
import { accessBytes } from './cpu.js';
import { type FileOperations, OpenFile } from './fs.js';
import { registerRefHolder } from './invariants.js';
import { getUserPages, putUserPages } from './mm/gup.js';
import { mmapReadLock, mmapReadUnlock } from './mm/locking.js';
import type { MmStruct } from './mm/types.js';
import { BLOCK_PAGES } from './phys/frames.js';
import type { KGen } from './sched/task.js';

/** Models PIPE_DEF_BUFFERS (include/linux/pipe_fs_i.h): the slots of a new pipe. */
export const PIPE_DEF_BUFFERS = 16;
/** Models SPLICE_F_MOVE (include/linux/splice.h). */
export const SPLICE_F_MOVE = 0x01;
/** Models SPLICE_F_NONBLOCK. */
export const SPLICE_F_NONBLOCK = 0x02;
/** Models SPLICE_F_MORE. */
export const SPLICE_F_MORE = 0x04;
/** Models SPLICE_F_GIFT. */
export const SPLICE_F_GIFT = 0x08;
/** Models SPLICE_F_ALL. */
export const SPLICE_F_ALL = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT;
/** Models sizeof(struct iovec) on 64-bit. */
export const IOVEC_SIZE = 16;
/** Models the batch of iter_to_pipe(): `struct page *pages[16]`. */
const ITER_TO_PIPE_BATCH = 16;

/**
 * Models struct pipe_buffer: a page reference (vmsplice(): user_page_pipe_buf_ops, `pfn` the
 * page taken by GUP) or bytes written with write(2) (anon_pipe_buf_ops, `data`).
 */
interface PipeBuffer {
  readonly pfn: number;
  readonly data: Uint8Array | null;
  offset: number;
  len: number;
}

/** Models struct pipe_inode_info: the ring of buffers and the open ends. */
export class PipeInodeInfo {
  readonly bufs: PipeBuffer[] = [];
  /** Models pipe->max_usage. */
  readonly maxUsage = PIPE_DEF_BUFFERS;
  readers = 0;
  writers = 0;
  /** Removes this pipe's page references from the debug checker's holders. */
  readonly unregister: () => void;
  constructor(readonly core: Core) {
    // The references vmsplice() took are legitimate holders for the invariant checker.
    this.unregister = registerRefHolder(core, (_c, add) => {
      for (const b of this.bufs) if (b.pfn >= 0) add(b.pfn, 1);
    });
  }

  /** Models pipe_full(). */
  full(): boolean {
    return this.bufs.length >= this.maxUsage;
  }
}

/** Models pipe_buf_release(): a page buffer drops the reference GUP took (put_page()). */
function pipeBufRelease(core: Core, buf: PipeBuffer): void {
  if (buf.pfn >= 0) putUserPages(core, [buf.pfn], 0);
}

/** Models free_pipe_info(): the last end closed releases every buffer left. */
function freePipeInfo(pipe: PipeInodeInfo): void {
  for (const b of pipe.bufs.splice(0)) pipeBufRelease(pipe.core, b);
  pipe.unregister();
}

/** Models copy_page_to_iter() from a pipe buffer: `n` bytes at the buffer's offset. */
function pipeBufBytes(core: Core, b: PipeBuffer, n: number): Uint8Array {
  if (b.data) return b.data.subarray(b.offset, b.offset + n);
  // kmap_local_page() of the referenced page: whatever it holds now.
  const off = (b.pfn & (BLOCK_PAGES - 1)) * PAGE_SIZE + b.offset;
  return core.frames.readBlock(b.pfn, 1).subarray(off, off + n);
}

/**
 * Models pipe_read() (fs/pipe.c): copy from the buffers in order, releasing each one consumed.
 * An empty pipe reads 0 (EOF) without writers, else -EAGAIN (see the file comment).
 */
function pipeRead(pipe: PipeInodeInfo, out: Uint8Array): number {
  if (out.length === 0) return 0;
  let done = 0;
  while (done < out.length && pipe.bufs.length) {
    const b = pipe.bufs[0];
    const n = Math.min(b.len, out.length - done);
    out.set(pipeBufBytes(pipe.core, b, n), done);
    done += n;
    b.offset += n;
    b.len -= n;
    if (b.len === 0) {
      pipe.bufs.shift();
      pipeBufRelease(pipe.core, b);
    }
  }
  if (done) return done;
  return pipe.writers ? -EAGAIN : 0;
}

/**
 * Models pipe_write() (fs/pipe.c): without readers -EPIPE; bytes first merge into the last
 * buffer when it is an anonymous buffer with room left in its page, then fill new page-sized
 * buffers while slots are free. A full pipe takes nothing: -EAGAIN (see the file comment).
 */
function pipeWrite(pipe: PipeInodeInfo, src: Uint8Array): number {
  if (pipe.readers === 0) return -EPIPE;
  if (src.length === 0) return 0;
  let done = 0;
  const last = pipe.bufs[pipe.bufs.length - 1];
  if (last?.data && last.offset + last.len < PAGE_SIZE) {
    const n = Math.min(PAGE_SIZE - (last.offset + last.len), src.length);
    last.data.set(src.subarray(0, n), last.offset + last.len);
    last.len += n;
    done = n;
  }
  while (done < src.length && !pipe.full()) {
    const n = Math.min(PAGE_SIZE, src.length - done);
    const data = new Uint8Array(PAGE_SIZE);
    data.set(src.subarray(done, done + n));
    pipe.bufs.push({ pfn: -1, data, offset: 0, len: n });
    done += n;
  }
  return done ? done : -EAGAIN;
}

/** The pipe behind an open file, or null (models get_pipe_info()). */
export function getPipeInfo(f: OpenFile): PipeInodeInfo | null {
  return f.privateData instanceof PipeInodeInfo ? f.privateData : null;
}

/**
 * Models do_pipe2() (fs/pipe.c) without flags: a new pipe and its two open files, the read end
 * (O_RDONLY) and the write end (O_WRONLY). The caller installs them as descriptors.
 */
export function createPipeFiles(core: Core, opener: unknown): [OpenFile, OpenFile] {
  const pipe = new PipeInodeInfo(core);
  const readOps: FileOperations = {
    *pread(_file, buf) {
      return pipeRead(pipe, buf);
    },
    *release() {
      // pipe_release(): the last close of both ends frees the pipe.
      pipe.readers--;
      if (!pipe.readers && !pipe.writers) freePipeInfo(pipe);
    },
  };
  const writeOps: FileOperations = {
    *pwrite(_file, buf) {
      return pipeWrite(pipe, buf);
    },
    *release() {
      pipe.writers--;
      if (!pipe.readers && !pipe.writers) freePipeInfo(pipe);
    },
  };
  const r = new OpenFile('pipe:', 0 /* O_RDONLY */, null, readOps, opener);
  const w = new OpenFile('pipe:', 1 /* O_WRONLY */, null, writeOps, opener);
  r.privateData = pipe;
  w.privateData = pipe;
  pipe.readers = 1;
  pipe.writers = 1;
  return [r, w];
}

/** One iovec of a vmsplice() call. */
interface Iovec {
  base: number;
  len: number;
}

/** Models import_iovec(): the user's struct iovec array, or -EFAULT / -EINVAL. */
function* importIovec(core: Core, mm: MmStruct, uiov: number, nrSegs: number): KGen<Iovec[] | number> {
  // UIO_MAXIOV.
  if (nrSegs < 0 || nrSegs > 1024) return -EINVAL;
  const raw = new Uint8Array(nrSegs * IOVEC_SIZE);
  if (nrSegs && (yield* accessBytes(core, mm, uiov, raw, 'read')) < 0) return -EFAULT;
  const dv = new DataView(raw.buffer);
  const out: Iovec[] = [];
  let total = 0;
  for (let i = 0; i < nrSegs; i++) {
    const base = Number(dv.getBigUint64(i * IOVEC_SIZE, true));
    const len = Number(dv.getBigUint64(i * IOVEC_SIZE + 8, true));
    if (len > Number.MAX_SAFE_INTEGER) return -EINVAL;
    // MAX_RW_COUNT caps the total.
    const capped = Math.min(len, 0x7ffff000 - total);
    total += capped;
    out.push({ base, len: capped });
  }
  return out;
}

/**
 * Models iter_to_pipe() (fs/splice.c): while bytes are left, iov_iter_get_pages2() takes
 * references on up to 16 pages of the current segment with get_user_pages_fast(addr, n, 0,
 * pages) (a source iterator: no FOLL_WRITE; FOLL_GET, not FOLL_PIN), and each page becomes a
 * buffer (add_to_pipe()); when the pipe is full, add_to_pipe() fails and the pages of that batch
 * not added are put again. Returns the bytes spliced, or the error when none was.
 */
function* iterToPipe(core: Core, mm: MmStruct, pipe: PipeInodeInfo, iov: Iovec[]): KGen<number> {
  let total = 0;
  let ret = 0;
  let seg = 0;
  let segOff = 0;
  // while (iov_iter_count(from)): a full pipe shows only when add_to_pipe() fails, after the
  // next batch was taken (and is put again).
  out: for (;;) {
    while (seg < iov.length && segOff >= iov[seg].len) {
      seg++;
      segOff = 0;
    }
    if (seg >= iov.length) break;
    const addr = iov[seg].base + segOff;
    const start = addr % PAGE_SIZE;
    const len = iov[seg].len - segOff;
    const n = Math.min(ITER_TO_PIPE_BATCH, Math.ceil((len + start) / PAGE_SIZE));
    // get_user_pages_fast(): the model takes its slow path (mmap_lock held for read).
    yield* mmapReadLock(core, mm, 'get_user_pages_fast');
    const got = yield* getUserPages(core, mm, addr - start, n, 0);
    mmapReadUnlock(core, mm, 'get_user_pages_fast');
    if (typeof got === 'number') {
      ret = got;
      break;
    }
    if (got.length === 0) {
      ret = -EFAULT;
      break;
    }
    let left = Math.min(got.length * PAGE_SIZE - start, len);
    segOff += left;
    let off = start;
    for (let i = 0; i < got.length; i++) {
      const size = Math.min(left, PAGE_SIZE - off);
      if (pipe.full()) {
        // add_to_pipe() -EAGAIN: iov_iter_revert() and put the pages not added.
        segOff -= left;
        putUserPages(core, got.slice(i), 0);
        ret = -EAGAIN;
        break out;
      }
      pipe.bufs.push({ pfn: got[i], data: null, offset: off, len: size });
      total += size;
      left -= size;
      off = 0;
    }
  }
  return total ? total : ret;
}

/**
 * Models vmsplice(2) (fs/splice.c): flags beyond SPLICE_F_ALL are -EINVAL; the descriptor must be
 * a pipe (-EBADF). Its write end takes the user pages (vmsplice_to_pipe(): no readers -EPIPE, a
 * full pipe -EAGAIN, else {@link iterToPipe}); its read end copies out as read(2) does
 * (vmsplice_to_user()). Returns bytes or -errno.
 */
export function* vmsplice(
  core: Core,
  mm: MmStruct,
  f: OpenFile | undefined,
  uiov: number,
  nrSegs: number,
  flags: number,
): KGen<number> {
  if (flags & ~SPLICE_F_ALL) return -EINVAL;
  if (!f) return -EBADF;
  const pipe = getPipeInfo(f);
  if (!pipe) return -EBADF;
  const iov = yield* importIovec(core, mm, uiov, nrSegs);
  if (typeof iov === 'number') return iov;
  if (f.flags & 1 /* FMODE_WRITE */) {
    // vmsplice_to_pipe(): wait_for_space().
    if (!pipe.readers) return -EPIPE;
    if (pipe.full()) return -EAGAIN;
    return yield* iterToPipe(core, mm, pipe, iov);
  }
  // vmsplice_to_user(): splice_from_pipe() into the user's buffers.
  let total = 0;
  for (const v of iov) {
    const tmp = new Uint8Array(v.len);
    const n = pipeRead(pipe, tmp);
    if (n <= 0) return total ? total : n;
    if ((yield* accessBytes(core, mm, v.base, tmp.subarray(0, n), 'write')) < 0)
      return total ? total : -EFAULT;
    total += n;
    if (n < v.len) break;
  }
  return total;
}
