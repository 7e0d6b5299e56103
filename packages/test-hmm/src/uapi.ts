/**
 * The test_hmm user-space ABI (lib/test_hmm_uapi.h): ioctl numbers, struct hmm_dmirror_cmd,
 * the FLAGS word, the SNAPSHOT byte encoding and the device memory types.
 */

/** Models HMM_DMIRROR_READ = _IOWR('H', 0x00, struct hmm_dmirror_cmd). */
export const HMM_DMIRROR_READ = 0xc0284800;
/** Models HMM_DMIRROR_WRITE = _IOWR('H', 0x01, struct hmm_dmirror_cmd). */
export const HMM_DMIRROR_WRITE = 0xc0284801;
/** Models HMM_DMIRROR_MIGRATE_TO_DEV = _IOWR('H', 0x02, struct hmm_dmirror_cmd). */
export const HMM_DMIRROR_MIGRATE_TO_DEV = 0xc0284802;
/** Models HMM_DMIRROR_MIGRATE_TO_SYS = _IOWR('H', 0x03, struct hmm_dmirror_cmd). */
export const HMM_DMIRROR_MIGRATE_TO_SYS = 0xc0284803;
/** Models HMM_DMIRROR_SNAPSHOT = _IOWR('H', 0x04, struct hmm_dmirror_cmd). */
export const HMM_DMIRROR_SNAPSHOT = 0xc0284804;
/**
 * Model extension (mthp.ts), not in lib/test_hmm_uapi.h: _IOWR('H', 0x80, struct
 * hmm_dmirror_cmd), SNAPSHOT with one byte per page giving the order of its folio (0xff: none).
 */
export const HMM_DMIRROR_SNAPSHOT_ORDER = 0xc0284880;
/** Models HMM_DMIRROR_EXCLUSIVE = _IOWR('H', 0x05, struct hmm_dmirror_cmd). */
export const HMM_DMIRROR_EXCLUSIVE = 0xc0284805;
/** Models HMM_DMIRROR_CHECK_EXCLUSIVE = _IOWR('H', 0x06, struct hmm_dmirror_cmd). */
export const HMM_DMIRROR_CHECK_EXCLUSIVE = 0xc0284806;
/** Models HMM_DMIRROR_RELEASE = _IOWR('H', 0x07, struct hmm_dmirror_cmd). */
export const HMM_DMIRROR_RELEASE = 0xc0284807;
/** Models HMM_DMIRROR_FLAGS = _IOWR('H', 0x08, struct hmm_dmirror_cmd) (cmd.npages carries the flags). */
export const HMM_DMIRROR_FLAGS = 0xc0284808;

/** Models HMM_DMIRROR_FLAG_FAIL_ALLOC: the next device-side allocation of a migration fails (one shot). */
export const HMM_DMIRROR_FLAG_FAIL_ALLOC = 1;
/**
 * Model extension (mthp.ts), not in lib/test_hmm.c: bits 8-15 of the HMM_DMIRROR_FLAGS value hold
 * order + 1 to make FAIL_ALLOC fail only the next allocation of that order (0: any allocation).
 */
export const HMM_DMIRROR_FLAG_FAIL_ALLOC_ORDER_SHIFT = 8;

/** Model extension: the HMM_DMIRROR_FLAGS value that fails the next device allocation of `order`. */
export function hmmDmirrorFlagFailAllocOrder(order: number): number {
  return HMM_DMIRROR_FLAG_FAIL_ALLOC | ((order + 1) << HMM_DMIRROR_FLAG_FAIL_ALLOC_ORDER_SHIFT);
}

/** Models HMM_DMIRROR_PROT_ERROR (SNAPSHOT byte). */
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

/** Models HMM_DMIRROR_MEMORY_DEVICE_PRIVATE (the driver's zone_device_type). */
export const HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1;
/** Models HMM_DMIRROR_MEMORY_DEVICE_COHERENT. */
export const HMM_DMIRROR_MEMORY_DEVICE_COHERENT = 2;
/** Models the driver's zone_device_type values. */
export type DmirrorMemoryType =
  | typeof HMM_DMIRROR_MEMORY_DEVICE_PRIVATE
  | typeof HMM_DMIRROR_MEMORY_DEVICE_COHERENT;

/** Models sizeof(struct hmm_dmirror_cmd): five __u64 fields. */
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

/** Models struct hmm_dmirror_cmd (lib/test_hmm_uapi.h), fields as unsigned 64-bit values. */
export interface HmmDmirrorCmd {
  /** addr: user virtual address the device operates on (page aligned). */
  addr: bigint;
  /** ptr: user buffer data is copied to / from (one byte per page for SNAPSHOT). */
  ptr: bigint;
  /** npages: page count (the flag word for HMM_DMIRROR_FLAGS). */
  npages: bigint;
  /** cpages: out, pages processed. */
  cpages: bigint;
  /** faults: out, device fault passes. */
  faults: bigint;
}

/** Models reading a struct hmm_dmirror_cmd from its 40 little-endian bytes. */
export function decodeCmd(bytes: Uint8Array): HmmDmirrorCmd {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HMM_DMIRROR_CMD_SIZE);
  return {
    addr: dv.getBigUint64(CMD_ADDR, true),
    ptr: dv.getBigUint64(CMD_PTR, true),
    npages: dv.getBigUint64(CMD_NPAGES, true),
    cpages: dv.getBigUint64(CMD_CPAGES, true),
    faults: dv.getBigUint64(CMD_FAULTS, true),
  };
}

/** Models writing a struct hmm_dmirror_cmd as 40 little-endian bytes (values wrap to u64). */
export function encodeCmd(cmd: {
  addr: bigint | number;
  ptr: bigint | number;
  npages: bigint | number;
  cpages?: bigint | number;
  faults?: bigint | number;
}): Uint8Array {
  const out = new Uint8Array(HMM_DMIRROR_CMD_SIZE);
  const dv = new DataView(out.buffer);
  const u = (v: bigint | number | undefined) => BigInt.asUintN(64, BigInt(v ?? 0));
  dv.setBigUint64(CMD_ADDR, u(cmd.addr), true);
  dv.setBigUint64(CMD_PTR, u(cmd.ptr), true);
  dv.setBigUint64(CMD_NPAGES, u(cmd.npages), true);
  dv.setBigUint64(CMD_CPAGES, u(cmd.cpages), true);
  dv.setBigUint64(CMD_FAULTS, u(cmd.faults), true);
  return out;
}

/** Models DMIRROR_NDEVICES (lib/test_hmm.c): minors 0, 1 private; 2, 3 coherent. */
export const DMIRROR_NDEVICES = 4;

/** Models dev_set_name(&mdevice->device, "hmm_dmirror%u", id): the device path of minor n. */
export function dmirrorPath(n: number): string {
  return `/dev/hmm_dmirror${n}`;
}
