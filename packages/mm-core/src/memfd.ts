/**
 * memfd_create(2) (mm/memfd.c): an anonymous file, on tmpfs (shmem) or, with MFD_HUGETLB, on
 * hugetlbfs.
 */
import {
  EINVAL,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  MFD_EXEC,
  MFD_HUGE_MASK,
  MFD_HUGE_SHIFT,
  MFD_HUGETLB,
  MFD_NAME_MAX_LEN,
  MFD_NOEXEC_SEAL,
  O_RDWR,
} from './constants.js';
import type { Core } from './core.js';
import { OpenFile } from './fs.js';
import { hugetlbfsNewInode, hugetlbHstateForLog } from './mm/hugetlbfs.js';
import { shmemNewInode } from './mm/shmem.js';

/** Models MFD_ALL_FLAGS. */
export const MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;

/**
 * Models memfd_create(2) up to fd_install(): sanitize_flags() (unknown flags, huge-size bits
 * without MFD_HUGETLB, MFD_EXEC with MFD_NOEXEC_SEAL: -EINVAL), alloc_name() (a name longer
 * than MFD_NAME_MAX_LEN: -EINVAL), alloc_file(): a shmem file, or with MFD_HUGETLB
 * hugetlb_file_setup() (a huge page size without an hstate: -ENODEV). The file is open
 * read-write (O_RDWR | O_LARGEFILE), its inode unlinked. Sealing is not modelled (the flags are
 * accepted). Returns the open file (referencing its inode once) or -errno.
 */
export function memfdCreateFile(core: Core, name: string, flags: number, opener: unknown): OpenFile | number {
  const allowed = flags & MFD_HUGETLB ? MFD_ALL_FLAGS | (MFD_HUGE_MASK << MFD_HUGE_SHIFT) : MFD_ALL_FLAGS;
  if ((flags & ~allowed) >>> 0) return -EINVAL;
  if (flags & MFD_EXEC && flags & MFD_NOEXEC_SEAL) return -EINVAL;
  if (name.length > MFD_NAME_MAX_LEN) return -EINVAL;
  if (flags & MFD_HUGETLB) {
    const h = hugetlbHstateForLog((flags >>> MFD_HUGE_SHIFT) & MFD_HUGE_MASK);
    if (h < 0) return h;
  }
  const inode =
    flags & MFD_HUGETLB ? hugetlbfsNewInode(core, `memfd:${name}`) : shmemNewInode(core, `memfd:${name}`);
  // shmem_file_setup() puts a shmem memfd on the internal shm_mnt: its huge pages follow shmem_enabled.
  if (!(flags & MFD_HUGETLB)) inode.sbHuge = 'shm_mnt';
  inode.refs++;
  return new OpenFile(`/memfd:${name} (deleted)`, O_RDWR, inode, null, opener);
}
