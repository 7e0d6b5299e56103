/**
 * The tmpfs part of the file namespace: directories, unlink, and tmpfs mounts (fs/namei.c,
 * fs/namespace.c, mm/shmem.c's mount options). The model's only writable file system is tmpfs:
 * `/tmp` and `/dev/shm`, and whatever tmpfs instances are mounted on directories below them.
 * Files are found by full path in the Kernel's `tmpfs` table; directories exist to be created,
 * removed, mounted on, and to hold new files (open(O_CREAT) in a missing directory is -ENOENT).
 * A mount's huge= option decides its files' huge pages (Inode.sbHuge, read by
 * shmem_huge_global_enabled()); size= is checked and kept but not enforced.
 */

import {
  EBUSY,
  EEXIST,
  EINVAL,
  EISDIR,
  ENODEV,
  ENOENT,
  ENOTDIR,
  ENOTEMPTY,
  EROFS,
  PAGE_SIZE,
} from './constants.js';
import type { Core } from './core.js';
import { inodePut } from './mm/mmap.js';
import type { Inode } from './mm/types.js';

/** Models the `huge=` option of a tmpfs mount (enum shmem huge: SHMEM_HUGE_*). */
export type ShmemHuge = 'never' | 'always' | 'within_size' | 'advise';

/** Models struct shmem_sb_info's options of one tmpfs instance. */
export interface TmpfsMount {
  readonly huge: ShmemHuge;
  /** Models max_blocks (size=) in pages; 0 is unlimited. */
  readonly maxPages: number;
}

/** The roots of the model's tmpfs: they exist from boot and cannot be removed. */
const ROOTS = ['/tmp', '/dev/shm'];

/** Normalises a path the way the model keys its tables: no trailing slash (except "/"). */
function norm(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/**
 * Models memparse() (lib/cmdline.c) as shmem_parse_one() uses it for size=: a number with an
 * optional K/M/G/T suffix (a trailing % is a share of RAM). NaN when not a number.
 */
function memparse(v: string, ramPages: number): number {
  const m = /^(\d+)([kKmMgGtT%]?)$/.exec(v);
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  const suffix = m[2].toLowerCase();
  if (suffix === '%') return Math.floor((ramPages * PAGE_SIZE * n) / 100);
  const shift = { '': 0, k: 10, m: 20, g: 30, t: 40 }[suffix] ?? 0;
  return n * 2 ** shift;
}

/** The file namespace of one machine's tmpfs (directories and mounts; files live in `files`). */
export class TmpfsNamespace {
  /** Models the directories that exist (dentries of directory inodes). */
  readonly dirs = new Set<string>(ROOTS);
  /** Models the tmpfs mounts on directories below the roots: mountpoint -> options. */
  readonly mounts = new Map<string, TmpfsMount>();

  constructor(
    private readonly core: Core,
    /** The Kernel's path -> inode table of tmpfs files. */
    private readonly files: Map<string, Inode>,
  ) {}

  /** True when path lies on the model's tmpfs (a root or below one). */
  onTmpfs(path: string): boolean {
    return ROOTS.some((r) => path === r || path.startsWith(`${r}/`));
  }

  /** Models do_mkdirat(): create a directory whose parent exists. */
  mkdir(path: string): number {
    const p = norm(path);
    if (!this.onTmpfs(p)) return this.exists(p) ? -EEXIST : -EROFS;
    if (this.dirs.has(p) || this.files.has(p)) return -EEXIST;
    const parent = parentOf(p);
    if (!this.dirs.has(parent)) return this.files.has(parent) ? -ENOTDIR : -ENOENT;
    this.dirs.add(p);
    return 0;
  }

  /** Models do_rmdir(): an empty directory that is not a mountpoint (or a tmpfs root). */
  rmdir(path: string): number {
    const p = norm(path);
    if (!this.dirs.has(p)) return this.files.has(p) ? -ENOTDIR : -ENOENT;
    if (ROOTS.includes(p) || this.mounts.has(p)) return -EBUSY;
    const prefix = `${p}/`;
    for (const d of this.dirs) if (d.startsWith(prefix)) return -ENOTEMPTY;
    for (const f of this.files.keys()) if (f.startsWith(prefix)) return -ENOTEMPTY;
    this.dirs.delete(p);
    return 0;
  }

  /**
   * Models do_unlinkat(): remove the name; the inode (and its page cache) goes when the last
   * open file or mapping drops it (iput()).
   */
  unlink(path: string): number {
    const p = norm(path);
    const inode = this.files.get(p);
    if (!inode) return this.dirs.has(p) ? -EISDIR : -ENOENT;
    this.files.delete(p);
    inode.unlinked = true;
    // The name's own reference: iput() frees the inode now if nothing else holds it.
    inode.refs++;
    inodePut(this.core, inode);
    return 0;
  }

  /**
   * Models do_new_mount() of a tmpfs instance (shmem_parse_options() for `data`): the target
   * must be a directory; options are huge=never|always|within_size|advise and size=<bytes>[kmgt%],
   * anything else is -EINVAL. Other file system types are -ENODEV (not modelled).
   */
  mount(_source: string, target: string, fstype: string, data: string): number {
    if (fstype !== 'tmpfs') return -ENODEV;
    const t = norm(target);
    if (!this.dirs.has(t)) return this.files.has(t) ? -ENOTDIR : -ENOENT;
    let huge: ShmemHuge = 'never';
    let maxPages = 0;
    for (const opt of data ? data.split(',') : []) {
      if (opt === '') continue;
      const eq = opt.indexOf('=');
      const key = eq < 0 ? opt : opt.slice(0, eq);
      const val = eq < 0 ? '' : opt.slice(eq + 1);
      if (key === 'huge') {
        if (val !== 'never' && val !== 'always' && val !== 'within_size' && val !== 'advise') return -EINVAL;
        huge = val;
      } else if (key === 'size') {
        const bytes = memparse(val, this.core.ramPages);
        if (Number.isNaN(bytes)) return -EINVAL;
        maxPages = Math.ceil(bytes / PAGE_SIZE);
      } else return -EINVAL;
    }
    if (this.mounts.has(t)) return -EBUSY;
    this.mounts.set(t, { huge, maxPages });
    return 0;
  }

  /**
   * Models do_umount() of a tmpfs instance: -EINVAL when target is not a mountpoint, -EBUSY while
   * a file of the instance is open or mapped; otherwise the instance and its files go
   * (kill_litter_super()).
   */
  umount(target: string): number {
    const t = norm(target);
    if (!this.mounts.has(t)) return -EINVAL;
    const prefix = `${t}/`;
    const mine = [...this.files].filter(([path]) => path.startsWith(prefix));
    if (mine.some(([, inode]) => inode.refs > 0)) return -EBUSY;
    for (const [path] of mine) this.unlink(path);
    for (const d of [...this.dirs]) if (d.startsWith(prefix)) this.dirs.delete(d);
    this.mounts.delete(t);
    return 0;
  }

  /**
   * Models SHMEM_SB(inode->i_sb)->huge for a new file at path: the huge= option of the innermost
   * tmpfs instance mounted above it, 'never' on the roots (/tmp and /dev/shm are mounted without
   * huge=).
   */
  hugeFor(path: string): ShmemHuge {
    let best = '';
    let huge: ShmemHuge = 'never';
    for (const [mp, opts] of this.mounts)
      if (path.startsWith(`${mp}/`) && mp.length > best.length) {
        best = mp;
        huge = opts.huge;
      }
    return huge;
  }

  /** Models the lookup of a new file's parent in open(O_CREAT): 0, -ENOENT or -ENOTDIR. */
  parentDirOk(path: string): number {
    const parent = parentOf(norm(path));
    if (this.dirs.has(parent)) return 0;
    return this.files.has(parent) ? -ENOTDIR : -ENOENT;
  }

  private exists(p: string): boolean {
    return p === '/' || this.dirs.has(p) || this.files.has(p);
  }
}
