/**
 * The data path of pread(2)/pwrite(2) once the arguments are checked (syscall-args.ts): the
 * copy between the file and the user's buffer, in bounded pieces, so a large count costs host
 * memory for one piece at a time and a fault part way returns what was done so far, as the
 * kernel's copy_to_user()/copy_from_user() loops do.
 */

import { EFAULT, EFBIG, EINVAL, ENOMEM } from './constants.js';
import type { Core } from './core.js';
import { accessBytes } from './cpu.js';
import type { OpenFile } from './fs.js';
import { hugetlbfsRead } from './mm/hugetlbfs.js';
import { shmemRead, shmemWrite } from './mm/shmem.js';
import type { MmStruct } from './mm/types.js';
import type { KGen } from './sched/task.js';
import { MODEL_MAX_FILESIZE } from './syscall-args.js';

/** Bytes moved per step between a file and a user buffer (a multiple of every record size, e.g. pagemap's 8). */
const RW_CHUNK = 1 << 20;

/** Models KMALLOC_MAX_SIZE on x86-64 (1 << (MAX_PAGE_ORDER + PAGE_SHIFT)). */
const KMALLOC_MAX_SIZE = 4 << 20;

/** The user's buffer: an address in `mm`, or a host buffer (the model's extension for host code). */
type UserBuffer = number | Uint8Array;

/** Reads [off, off + n) of the user's buffer into a host buffer: the bytes, or -EFAULT. */
function* fromUser(
  core: Core,
  mm: MmStruct,
  buf: UserBuffer,
  off: number,
  n: number,
): KGen<Uint8Array | number> {
  if (buf instanceof Uint8Array) return buf.subarray(off, off + n);
  const b = new Uint8Array(n);
  return (yield* accessBytes(core, mm, buf + off, b, 'read')) < 0 ? -EFAULT : b;
}

/**
 * Models vfs_read() -> ->read_iter() of a tmpfs file (shmem_file_read_iter()) or a pseudo file,
 * after rw_verify_area(): the file's bytes from `pos` copied to the user's buffer a piece at a
 * time. Returns the bytes read (short at end of file, or when the buffer faults part way), or
 * -errno when nothing could be read.
 */
export function* vfsRead(
  core: Core,
  mm: MmStruct,
  f: OpenFile,
  buf: UserBuffer,
  count: number,
  pos: number,
): KGen<number> {
  const tmp = new Uint8Array(Math.min(count, RW_CHUNK));
  let done = 0;
  while (done < count) {
    const k = Math.min(RW_CHUNK, count - done);
    const t = tmp.subarray(0, k);
    let n: number;
    if (f.inode?.hugetlbfs) n = hugetlbfsRead(core, f.inode, t, pos + done);
    else if (f.inode) n = shmemRead(core, f.inode, t, pos + done);
    else if (f.fops?.pread) n = yield* f.fops.pread(f, t, pos + done);
    else return done;
    if (n < 0) return done > 0 ? done : n;
    if (n === 0) break;
    if (buf instanceof Uint8Array) buf.set(t.subarray(0, n), done);
    else if ((yield* accessBytes(core, mm, buf + done, t.subarray(0, n), 'write')) < 0)
      return done > 0 ? done : -EFAULT;
    done += n;
    if (n < k) break;
  }
  return done;
}

/**
 * Models vfs_write() -> ->write_iter(): for a tmpfs file generic_write_checks() (a position at or
 * beyond the model's s_maxbytes is -EFBIG, the count is cut to end there) and
 * shmem_file_write_iter() a piece at a time; for a pseudo file (a sysctl) the whole buffer in one
 * kernel allocation as proc_sys_call_handler() makes it (-ENOMEM at KMALLOC_MAX_SIZE). Returns the
 * bytes written (short when the buffer faults part way), or -errno when nothing was written.
 */
export function* vfsWrite(
  core: Core,
  mm: MmStruct,
  f: OpenFile,
  buf: UserBuffer,
  count: number,
  pos: number,
): KGen<number> {
  const inode = f.inode;
  if (!inode) {
    if (!f.fops?.pwrite) return 0;
    if (count >= KMALLOC_MAX_SIZE) return -ENOMEM;
    const b = yield* fromUser(core, mm, buf, 0, count);
    if (typeof b === 'number') return b;
    return yield* f.fops.pwrite(f, b, pos);
  }
  // hugetlbfs has no ->write_iter: vfs_write() is -EINVAL.
  if (inode.hugetlbfs) return -EINVAL;
  if (count === 0) return 0;
  if (pos >= MODEL_MAX_FILESIZE) return -EFBIG;
  const total = Math.min(count, MODEL_MAX_FILESIZE - pos);
  let done = 0;
  while (done < total) {
    const k = Math.min(RW_CHUNK, total - done);
    const b = yield* fromUser(core, mm, buf, done, k);
    if (typeof b === 'number') return done > 0 ? done : b;
    const w = shmemWrite(core, inode, b, pos + done, pos + total);
    if (w < 0) return done > 0 ? done : w;
    done += w;
    if (w < k) break;
  }
  return done;
}
