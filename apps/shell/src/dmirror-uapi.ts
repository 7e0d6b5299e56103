/**
 * The test_hmm user-space ABI (lib/test_hmm_uapi.h) as the shell programs against it: the ioctl
 * numbers, struct hmm_dmirror_cmd layout, FLAGS word and SNAPSHOT bytes come from
 * `@hmm-model/test-hmm`; this file adds the shell's decoding of snapshot bytes into words.
 */
import {
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_NONE,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_PUD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO,
} from '@hmm-model/test-hmm';

export {
  CMD_ADDR,
  CMD_CPAGES,
  CMD_FAULTS,
  CMD_NPAGES,
  CMD_PTR,
  DMIRROR_NDEVICES,
  dmirrorPath,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_CMD_SIZE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_NONE,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_PUD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_SNAPSHOT_ORDER,
  HMM_DMIRROR_WRITE,
  hmmDmirrorFlagFailAllocOrder,
} from '@hmm-model/test-hmm';

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
