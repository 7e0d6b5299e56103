/**
 * The test_hmm user-space ABI (lib/test_hmm_uapi.h) as the shell programs against it: ioctl
 * numbers, struct hmm_dmirror_cmd layout, the FLAGS word and the SNAPSHOT byte encoding.
 * Defined here until `@hmm-model/test-hmm` exports them.
 */

/** Models HMM_DMIRROR_READ = _IOWR('H', 0x00, struct hmm_dmirror_cmd). */
export const HMM_DMIRROR_READ = 0xc0284800;
/** Models HMM_DMIRROR_WRITE. */
export const HMM_DMIRROR_WRITE = 0xc0284801;
/** Models HMM_DMIRROR_MIGRATE_TO_DEV. */
export const HMM_DMIRROR_MIGRATE_TO_DEV = 0xc0284802;
/** Models HMM_DMIRROR_MIGRATE_TO_SYS. */
export const HMM_DMIRROR_MIGRATE_TO_SYS = 0xc0284803;
/** Models HMM_DMIRROR_SNAPSHOT. */
export const HMM_DMIRROR_SNAPSHOT = 0xc0284804;
/** Models HMM_DMIRROR_EXCLUSIVE. */
export const HMM_DMIRROR_EXCLUSIVE = 0xc0284805;
/** Models HMM_DMIRROR_CHECK_EXCLUSIVE. */
export const HMM_DMIRROR_CHECK_EXCLUSIVE = 0xc0284806;
/** Models HMM_DMIRROR_RELEASE. */
export const HMM_DMIRROR_RELEASE = 0xc0284807;
/** Models HMM_DMIRROR_FLAGS (cmd.npages carries the flag word). */
export const HMM_DMIRROR_FLAGS = 0xc0284808;

/** Models HMM_DMIRROR_FLAG_FAIL_ALLOC: the next device allocation fails (one shot). */
export const HMM_DMIRROR_FLAG_FAIL_ALLOC = 1;

/** Models sizeof(struct hmm_dmirror_cmd): five u64 fields. */
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

/** Models HMM_DMIRROR_PROT_ERROR (snapshot byte). */
export const HMM_DMIRROR_PROT_ERROR = 0xff;
/** Models HMM_DMIRROR_PROT_NONE. */
export const HMM_DMIRROR_PROT_NONE = 0x00;
/** Models HMM_DMIRROR_PROT_READ. */
export const HMM_DMIRROR_PROT_READ = 0x01;
/** Models HMM_DMIRROR_PROT_WRITE. */
export const HMM_DMIRROR_PROT_WRITE = 0x02;
/** Models HMM_DMIRROR_PROT_PMD. */
export const HMM_DMIRROR_PROT_PMD = 0x04;
/** Models HMM_DMIRROR_PROT_PUD. */
export const HMM_DMIRROR_PROT_PUD = 0x08;
/** Models HMM_DMIRROR_PROT_ZERO. */
export const HMM_DMIRROR_PROT_ZERO = 0x10;
/** Models HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL. */
export const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20;
/** Models HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE. */
export const HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30;
/** Models HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL. */
export const HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL = 0x40;
/** Models HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE. */
export const HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50;

/** Number of dmirror device files (DMIRROR_NDEVICES): 0, 1 private; 2, 3 coherent. */
export const DMIRROR_NDEVICES = 4;

/** Models the device path of minor n: /dev/hmm_dmirror<n>. */
export function dmirrorPath(n: number): string {
  return `/dev/hmm_dmirror${n}`;
}

const LOCATIONS: Readonly<Record<number, string>> = {
  [HMM_DMIRROR_PROT_ZERO]: 'ZERO',
  [HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL]: 'DEV_PRIVATE_LOCAL',
  [HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE]: 'DEV_PRIVATE_REMOTE',
  [HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL]: 'DEV_COHERENT_LOCAL',
  [HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE]: 'DEV_COHERENT_REMOTE',
};

/**
 * Decodes one HMM_DMIRROR_SNAPSHOT byte into its words, as the uapi header names them:
 * 0xff -> ['ERROR'], 0 -> ['NONE'], 0x26 -> ['DEV_PRIVATE_LOCAL', 'WRITE', 'PMD'].
 */
export function decodeSnapshotByte(b: number): string[] {
  if (b === HMM_DMIRROR_PROT_ERROR) return ['ERROR'];
  if (b === HMM_DMIRROR_PROT_NONE) return ['NONE'];
  const words: string[] = [];
  const loc = b & 0xf0;
  if (loc) words.push(LOCATIONS[loc] ?? `LOCATION_0x${loc.toString(16)}`);
  if (b & HMM_DMIRROR_PROT_READ) words.push('READ');
  if (b & HMM_DMIRROR_PROT_WRITE) words.push('WRITE');
  if (b & HMM_DMIRROR_PROT_PMD) words.push('PMD');
  if (b & HMM_DMIRROR_PROT_PUD) words.push('PUD');
  return words;
}

/** A run of equal snapshot bytes: `count` pages starting at page `first` of the range. */
export interface SnapshotRun {
  readonly first: number;
  readonly count: number;
  readonly byte: number;
  readonly words: readonly string[];
}

/** Run-length groups a snapshot buffer (one byte per page) for display. */
export function snapshotRuns(bytes: Uint8Array): SnapshotRun[] {
  const runs: SnapshotRun[] = [];
  let i = 0;
  while (i < bytes.length) {
    let j = i + 1;
    while (j < bytes.length && bytes[j] === bytes[i]) j++;
    runs.push({ first: i, count: j - i, byte: bytes[i], words: decodeSnapshotByte(bytes[i]) });
    i = j;
  }
  return runs;
}
