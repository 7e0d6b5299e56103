/**
 * Models the x86-64 page geometry (arch/x86/include/asm/page_types.h, pgtable_64_types.h).
 * Orders are parameters: HPAGE_PMD_ORDER is the default THP order, never a literal 512.
 */
export const PAGE_SHIFT = 12;
/** Models PAGE_SIZE. */
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** Models PAGE_MASK as a positive mask of the in-page offset bits (PAGE_SIZE - 1). */
export const PAGE_OFFSET_MASK = PAGE_SIZE - 1;
/** Models PTRS_PER_PTE (and PTRS_PER_PMD/PUD/PGD: 512 on x86-64). */
export const PTRS_PER_TABLE = 512;
/** Models PMD_SHIFT. */
export const PMD_SHIFT = 21;
/** Models PMD_SIZE. */
export const PMD_SIZE = 1 << PMD_SHIFT;
/** Models PUD_SHIFT. */
export const PUD_SHIFT = 30;
/** Models PUD_SIZE. */
export const PUD_SIZE = 2 ** PUD_SHIFT;
/** Models PGDIR_SHIFT (4-level paging). */
export const PGDIR_SHIFT = 39;
/** Models HPAGE_PMD_ORDER. */
export const HPAGE_PMD_ORDER = PMD_SHIFT - PAGE_SHIFT;
/** Models HPAGE_PMD_NR. */
export const HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER;
/** Models HPAGE_PMD_SIZE. */
export const HPAGE_PMD_SIZE = PMD_SIZE;
/** Models MAX_PAGE_ORDER (the buddy allocator's largest order). */
export const MAX_PAGE_ORDER = 10;
/** Models TASK_SIZE for 4-level paging (47-bit user address space). */
export const TASK_SIZE = 2 ** 47 - PAGE_SIZE;
/** Models mmap_min_addr's usual default. */
export const MMAP_MIN_ADDR = 0x10000;
/** Top of the mmap area used by the top-down allocator (below a simulated stack gap). */
export const MMAP_BASE = 0x7f00_0000_0000;

/** Models the errno values of include/uapi/asm-generic/errno-base.h and errno.h. */
export const EPERM = 1;
export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const ECHILD = 10;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ENOTTY = 25;
export const EFBIG = 27;
export const ENOSPC = 28;
/** Models ENOSYS. */
export const ENOSYS = 38;
export const ESPIPE = 29;
export const EROFS = 30;
export const EPIPE = 32;
export const ERANGE = 34;
export const ENOTEMPTY = 39;
export const EOVERFLOW = 75;
export const EOPNOTSUPP = 95;
export const EHWPOISON = 133;

/** errno number to name, for messages (models strerrorname_np). */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [ESRCH]: 'ESRCH',
  [EINTR]: 'EINTR',
  [EIO]: 'EIO',
  [ENXIO]: 'ENXIO',
  [E2BIG]: 'E2BIG',
  [EBADF]: 'EBADF',
  [ECHILD]: 'ECHILD',
  [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM',
  [EACCES]: 'EACCES',
  [EFAULT]: 'EFAULT',
  [EBUSY]: 'EBUSY',
  [EEXIST]: 'EEXIST',
  [ENODEV]: 'ENODEV',
  [ENOTDIR]: 'ENOTDIR',
  [EISDIR]: 'EISDIR',
  [EINVAL]: 'EINVAL',
  [ENFILE]: 'ENFILE',
  [EMFILE]: 'EMFILE',
  [ENOTTY]: 'ENOTTY',
  [EFBIG]: 'EFBIG',
  [ENOSPC]: 'ENOSPC',
  [ENOSYS]: 'ENOSYS',
  [ESPIPE]: 'ESPIPE',
  [EPIPE]: 'EPIPE',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [EROFS]: 'EROFS',
  [ERANGE]: 'ERANGE',
  [ENOTEMPTY]: 'ENOTEMPTY',
  [EOVERFLOW]: 'EOVERFLOW',
  [EHWPOISON]: 'EHWPOISON',
};

/** Models PROT_* (include/uapi/asm-generic/mman-common.h). */
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

/** Models MAP_* (include/uapi/asm-generic/mman*.h, x86-64 values). */
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_HUGETLB = 0x40000;
export const MAP_FIXED_NOREPLACE = 0x100000;
/** Models MAP_FAILED as the raw-syscall convention sees it (a negative errno is returned instead). */
export const MAP_FAILED = -1;

/** Models MADV_* (include/uapi/asm-generic/mman-common.h). */
export const MADV_NORMAL = 0;
export const MADV_RANDOM = 1;
export const MADV_SEQUENTIAL = 2;
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_REMOVE = 9;
export const MADV_DONTFORK = 10;
export const MADV_DOFORK = 11;
export const MADV_MERGEABLE = 12;
export const MADV_UNMERGEABLE = 13;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_DONTDUMP = 16;
export const MADV_DODUMP = 17;
export const MADV_WIPEONFORK = 18;
export const MADV_KEEPONFORK = 19;
export const MADV_COLD = 20;
export const MADV_PAGEOUT = 21;
export const MADV_POPULATE_READ = 22;
export const MADV_POPULATE_WRITE = 23;
export const MADV_DONTNEED_LOCKED = 24;
export const MADV_COLLAPSE = 25;
export const MADV_HWPOISON = 100;
export const MADV_SOFT_OFFLINE = 101;
export const MADV_GUARD_INSTALL = 102;
export const MADV_GUARD_REMOVE = 103;

/** Models MREMAP_* (include/uapi/linux/mman.h). */
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MREMAP_DONTUNMAP = 4;

/** Models O_* open flags (x86-64 values). */
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
/** Models SEEK_SET / SEEK_CUR / SEEK_END (include/uapi/linux/fs.h). */
export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_DIRECTORY = 0o200000;
export const O_TMPFILE = 0o20000000 | O_DIRECTORY;

/** Models the memfd_create(2) flags (include/uapi/linux/memfd.h). */
export const MFD_CLOEXEC = 0x0001;
export const MFD_ALLOW_SEALING = 0x0002;
export const MFD_HUGETLB = 0x0004;
export const MFD_NOEXEC_SEAL = 0x0008;
export const MFD_EXEC = 0x0010;
/** Models MFD_HUGE_SHIFT / MFD_HUGE_MASK: log2 of the huge page size in bits 26..31 (0: the default size). */
export const MFD_HUGE_SHIFT = 26;
export const MFD_HUGE_MASK = 0x3f;
/** Models MFD_NAME_MAX_LEN (mm/memfd.c): NAME_MAX minus the "memfd:" prefix. */
export const MFD_NAME_MAX_LEN = 255 - 6;

/** Models the fallocate(2) modes the model knows (include/uapi/linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;

/** Models the signal numbers (x86-64). */
export const SIGINT = 2;
export const SIGKILL = 9;
export const SIGSEGV = 11;
export const SIGBUS = 7;
export const SIGTERM = 15;
export const SIGABRT = 6;
export const SIGCHLD = 17;

/** Models FOLL_* (include/linux/mm_types.h) as used by gup_test. */
export const FOLL_WRITE = 0x01;
/** Models FOLL_FORCE: get_user_pages() read access despite missing VM_READ (needs VM_MAYREAD). */
export const FOLL_FORCE = 0x08;
export const FOLL_LONGTERM = 0x100;
