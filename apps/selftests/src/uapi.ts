/**
 * The user-space ABI hmm-tests.c compiles against: lib/test_hmm_uapi.h (dmirror ioctls, struct
 * hmm_dmirror_cmd, SNAPSHOT bytes) and mm/gup_test.h (gup_test ioctls, struct gup_test). Defined
 * here as the test program sees them (it includes the headers; it does not link the driver).
 */

/** Models _IOWR(type, nr, size) (include/uapi/asm-generic/ioctl.h) on x86-64. */
function IOWR(type: string, nr: number, size: number): number {
  return (0xc0000000 | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
}

/** Models sizeof(struct hmm_dmirror_cmd) (lib/test_hmm_uapi.h): five __u64 fields. */
export const HMM_DMIRROR_CMD_SIZE = 40;
/** Models offsetof(struct hmm_dmirror_cmd, addr). */
export const CMD_ADDR = 0;
/** Models offsetof(struct hmm_dmirror_cmd, ptr). */
export const CMD_PTR = 8;
/** Models offsetof(struct hmm_dmirror_cmd, npages). */
export const CMD_NPAGES = 16;
/** Models offsetof(struct hmm_dmirror_cmd, cpages). */
export const CMD_CPAGES = 24;
/** Models offsetof(struct hmm_dmirror_cmd, faults). */
export const CMD_FAULTS = 32;

/** Models HMM_DMIRROR_READ = _IOWR('H', 0x00, struct hmm_dmirror_cmd) (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_READ = IOWR('H', 0x00, HMM_DMIRROR_CMD_SIZE);
/** Models HMM_DMIRROR_WRITE (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_WRITE = IOWR('H', 0x01, HMM_DMIRROR_CMD_SIZE);
/** Models HMM_DMIRROR_MIGRATE_TO_DEV (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_MIGRATE_TO_DEV = IOWR('H', 0x02, HMM_DMIRROR_CMD_SIZE);
/** Models HMM_DMIRROR_MIGRATE_TO_SYS (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_MIGRATE_TO_SYS = IOWR('H', 0x03, HMM_DMIRROR_CMD_SIZE);
/** Models HMM_DMIRROR_SNAPSHOT (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_SNAPSHOT = IOWR('H', 0x04, HMM_DMIRROR_CMD_SIZE);
/** Models HMM_DMIRROR_EXCLUSIVE (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_EXCLUSIVE = IOWR('H', 0x05, HMM_DMIRROR_CMD_SIZE);
/** Models HMM_DMIRROR_CHECK_EXCLUSIVE (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_CHECK_EXCLUSIVE = IOWR('H', 0x06, HMM_DMIRROR_CMD_SIZE);
/** Models HMM_DMIRROR_RELEASE (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_RELEASE = IOWR('H', 0x07, HMM_DMIRROR_CMD_SIZE);
/** Models HMM_DMIRROR_FLAGS (lib/test_hmm_uapi.h): cmd.npages carries the flag word. */
export const HMM_DMIRROR_FLAGS = IOWR('H', 0x08, HMM_DMIRROR_CMD_SIZE);

/** Models HMM_DMIRROR_FLAG_FAIL_ALLOC (lib/test_hmm_uapi.h): fail the next large allocation once. */
export const HMM_DMIRROR_FLAG_FAIL_ALLOC = 1 << 0;

/** Models HMM_DMIRROR_PROT_ERROR (lib/test_hmm_uapi.h): no valid mirror entry. */
export const HMM_DMIRROR_PROT_ERROR = 0xff;
/** Models HMM_DMIRROR_PROT_NONE (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_NONE = 0x00;
/** Models HMM_DMIRROR_PROT_READ (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_READ = 0x01;
/** Models HMM_DMIRROR_PROT_WRITE (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_WRITE = 0x02;
/** Models HMM_DMIRROR_PROT_PMD (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_PMD = 0x04;
/** Models HMM_DMIRROR_PROT_PUD (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_PUD = 0x08;
/** Models HMM_DMIRROR_PROT_ZERO (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_ZERO = 0x10;
/** Models HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20;
/** Models HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30;
/** Models HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL = 0x40;
/** Models HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE (lib/test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50;

/** Models sizeof(struct gup_test) (mm/gup_test.h): 4 x __u64, 3 x __u32, which_pages[8], padded to 80. */
export const GUP_TEST_SIZE = 80;
/** Models offsetof(struct gup_test, addr) (mm/gup_test.h). */
export const GUP_ADDR = 16;
/** Models offsetof(struct gup_test, size) (mm/gup_test.h). */
export const GUP_SIZE = 24;
/** Models offsetof(struct gup_test, nr_pages_per_call) (mm/gup_test.h). */
export const GUP_NR_PAGES_PER_CALL = 32;
/** Models offsetof(struct gup_test, gup_flags) (mm/gup_test.h). */
export const GUP_GUP_FLAGS = 36;

/** Models GUP_FAST_BENCHMARK = _IOWR('g', 1, struct gup_test) (mm/gup_test.h). */
export const GUP_FAST_BENCHMARK = IOWR('g', 1, GUP_TEST_SIZE);
/** Models PIN_FAST_BENCHMARK (mm/gup_test.h). */
export const PIN_FAST_BENCHMARK = IOWR('g', 2, GUP_TEST_SIZE);
/** Models PIN_LONGTERM_BENCHMARK (mm/gup_test.h). */
export const PIN_LONGTERM_BENCHMARK = IOWR('g', 3, GUP_TEST_SIZE);
/** Models GUP_BASIC_TEST (mm/gup_test.h). */
export const GUP_BASIC_TEST = IOWR('g', 4, GUP_TEST_SIZE);

/** Models FOLL_WRITE as hmm-tests.c defines it for gup_test ("copied from mm.h"). */
export const FOLL_WRITE = 0x01;
/** Models FOLL_LONGTERM as hmm-tests.c defines it for gup_test. */
export const FOLL_LONGTERM = 0x100;
