import type { Inode, Vma } from './mm/types.js';
import type { KGen } from './sched/task.js';

/**
 * Models struct file_operations for the files this model has: device files register these
 * (the dmirror driver, gup_test), pseudo files implement read.
 * Every method returns a non-negative result or -errno.
 */
export interface FileOperations {
  /** Models ->open(). */
  open?(file: OpenFile): number;
  /** Models ->release() (last close of the open file description); may sleep. */
  release?(file: OpenFile): KGen;
  /**
   * Models ->unlocked_ioctl(): `arg` is a user address in the calling process; `caller` is
   * that process (current), a Process of @hmm-model/mm-core. May sleep.
   */
  ioctl?(file: OpenFile, cmd: number, arg: number, caller: unknown): KGen<number>;
  /** Models ->mmap(): set up the VMA (vm_flags, vm_ops, inserted pages). */
  mmap?(file: OpenFile, vma: Vma): number;
  /** Models ->read_iter() at a position for pseudo files: fills buf, returns bytes. May sleep. */
  pread?(file: OpenFile, buf: Uint8Array, pos: number): KGen<number>;
  /** Models ->write_iter() at a position for pseudo files (sysctls): consumes buf, returns bytes or -errno. */
  pwrite?(file: OpenFile, buf: Uint8Array, pos: number): KGen<number>;
}

/**
 * Models struct file: an open file description (shared by dup'ed and inherited fds).
 */
export class OpenFile {
  /** Models file->private_data. */
  privateData: unknown = undefined;
  /** Models file_count(). */
  refs = 1;
  pos = 0;
  constructor(
    readonly path: string,
    readonly flags: number,
    readonly inode: Inode | null,
    readonly fops: FileOperations | null,
    /** The process that opened it (current at open time). */
    readonly opener: unknown,
  ) {}
}
