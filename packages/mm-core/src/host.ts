import type { Core } from './core.js';
import type { FileOperations } from './fs.js';
import type { Inode } from './mm/types.js';
import type { Scheduler } from './sched/scheduler.js';
import type { TmpfsNamespace } from './vfs.js';

/** Models the part of task_struct other tasks reach (kill(), the task table). */
export interface TaskLike {
  readonly pid: number;
  state: 'running' | 'zombie' | 'reaped';
}

/** What a path names in the model's VFS. */
export type PathTarget = { readonly inode: Inode } | { readonly fops: FileOperations };

/**
 * The machine as seen by a process (models the kernel services a task reaches through
 * syscalls): the core, the scheduler, the VFS and the task table. Implemented by Kernel.
 */
export interface Host {
  readonly core: Core;
  readonly sched: Scheduler;
  /** Models path lookup + O_CREAT/O_TMPFILE: a target or -errno. */
  lookupPath(path: string, flags: number): PathTarget | number;
  /** Models the tmpfs directories and mounts (mkdir/rmdir/unlink/mount/umount). */
  readonly ns: TmpfsNamespace;
  /** Models alloc_pid(). */
  allocPid(): number;
  /** Models the pid hash: every task ever created that is not reaped. */
  readonly tasks: Map<number, TaskLike>;
  /** Models the hook run after every syscall (the invariant checker when enabled). */
  afterSyscall(what: string): void;
}
