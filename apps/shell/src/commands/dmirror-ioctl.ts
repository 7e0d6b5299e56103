import {
  EBUSY,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOENT,
  ENOMEM,
  EPERM,
  type EventCounts,
  eventsSince,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  VM_READ,
} from '@hmm-model/mm-core';
import {
  CMD_ADDR,
  CMD_CPAGES,
  CMD_FAULTS,
  CMD_NPAGES,
  CMD_PTR,
  DMIRROR_NDEVICES,
  dmirrorPath,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from '../dmirror-uapi.js';
import { hex } from '../format.js';
import { type CommandResult, errnoName, fail, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { coverage, currentProc, isResult, notAligned } from './util.js';

/** What one dmirror ioctl returned: the result, the struct's out fields and the buffer. */
export interface IoctlOutcome {
  readonly ret: number;
  readonly cpages: number;
  readonly faults: number;
  readonly buf: Uint8Array | null;
  /** Kernel events of the ioctl itself (core.events, without the shell's scaffolding). */
  readonly events: EventCounts;
}

/** The argument block of a dmirror ioctl as the selftests' hmm_dmirror_cmd() builds it. */
export interface IoctlArgs {
  readonly cmd: number;
  /** cmd.addr; left out, the shell's own scratch page (for RELEASE and FLAGS, which only check it). */
  readonly addr?: number;
  readonly npages: number;
  /** Bytes of the ptr buffer (0: none, ptr = 0). */
  readonly bufLen: number;
  /** Initial contents of the ptr buffer (for WRITE). */
  readonly init?: Uint8Array;
  /** Read the ptr buffer back after the ioctl (READ, MIGRATE, SNAPSHOT, EXCLUSIVE). */
  readonly readBack: boolean;
}

const IOCTL_NAMES: Readonly<Record<number, string>> = {
  [HMM_DMIRROR_READ]: 'HMM_DMIRROR_READ',
  [HMM_DMIRROR_WRITE]: 'HMM_DMIRROR_WRITE',
  [HMM_DMIRROR_MIGRATE_TO_DEV]: 'HMM_DMIRROR_MIGRATE_TO_DEV',
  [HMM_DMIRROR_MIGRATE_TO_SYS]: 'HMM_DMIRROR_MIGRATE_TO_SYS',
  [HMM_DMIRROR_SNAPSHOT]: 'HMM_DMIRROR_SNAPSHOT',
  [HMM_DMIRROR_EXCLUSIVE]: 'HMM_DMIRROR_EXCLUSIVE',
  [HMM_DMIRROR_CHECK_EXCLUSIVE]: 'HMM_DMIRROR_CHECK_EXCLUSIVE',
  [HMM_DMIRROR_RELEASE]: 'HMM_DMIRROR_RELEASE',
  [HMM_DMIRROR_FLAGS]: 'HMM_DMIRROR_FLAGS',
};

/** Why a dmirror ioctl failed, in words (from lib/test_hmm.c's error paths). */
function whyIoctl(s: Session, proc: Process, a: IoctlArgs & { addr: number }, errno: number): string {
  const len = a.npages * PAGE_SIZE;
  switch (errno) {
    case EINVAL: {
      if (a.cmd === HMM_DMIRROR_FLAGS && a.npages === 0)
        return 'a flag word of 0 is npages 0, which the ioctl wrapper rejects (the fail-alloc flag is one-shot and clears itself)';
      const al = notAligned(a.addr, PAGE_SIZE, 'address');
      if (al) return al;
      if (a.cmd === HMM_DMIRROR_MIGRATE_TO_DEV || a.cmd === HMM_DMIRROR_MIGRATE_TO_SYS) {
        const { vmas, hole } = coverage(proc.mm, a.addr, a.addr + len);
        if (hole >= 0 || vmas.some((v) => !(v.flags & VM_READ))) return 'range not covered by a readable VMA';
      }
      return 'invalid command (npages 0, range wraps, or an unknown ioctl)';
    }
    case ENOENT:
      return 'some page of the range is not mirrored by the device (it could not be faulted in)';
    case EPERM:
      return a.cmd === HMM_DMIRROR_CHECK_EXCLUSIVE
        ? 'some page is still mapped exclusive (atomic) by the device'
        : 'the range is not writable for the device (read-only mapping)';
    case EFAULT:
      return 'hmm_range_fault failed: a page is unmapped or PROT_NONE, or a user copy faulted';
    case ENOMEM:
      return 'device or system memory allocation failed (fail-alloc flag, or memory exhausted)';
    case EBUSY:
      return 'hmm_range_fault kept being invalidated until the 1000 ms timeout';
    default:
      return `${IOCTL_NAMES[a.cmd] ?? hex(a.cmd)} returned -${errnoName(errno)} (device ${s.device})`;
  }
}

/**
 * Where the shell asks for its ioctl buffers: a hint far below the top-down mmap area, so they
 * never land in a hole the user just made (and never show up next to the user's mappings).
 */
export const SCRATCH_HINT = 0x1000_0000_0000;

/**
 * Models malloc() of a scratch buffer for an ioctl: an anonymous private mapping at the scratch
 * hint, booked as shell overhead. Returns the address, or 0 when it cannot be had.
 */
export function scratchAlloc(s: Session, proc: Process, len: number): number {
  const r = s.untracked(() =>
    proc.mmap(SCRATCH_HINT, Math.max(len, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS),
  );
  return Math.max(r, 0);
}

/** Models free() of a {@link scratchAlloc} buffer (nothing when the process is gone or addr is 0). */
export function scratchFree(s: Session, proc: Process, addr: number, len: number): void {
  if (!addr || proc.state !== 'running') return;
  s.untracked(() => proc.munmap(addr, Math.max(len, 1)));
}

/**
 * Models a user program issuing one dmirror ioctl, as hmm-tests' hmm_dmirror_cmd() does:
 * open the device (once per process), allocate the 40-byte struct hmm_dmirror_cmd and the ptr
 * buffer in the process's memory, fill them, ioctl(fd, cmd, &cmd), read back cpages, faults
 * and the buffer, and free them.
 */
export function dmirrorIoctl(
  s: Session,
  name: string,
  dev: number,
  a: IoctlArgs,
): IoctlOutcome | CommandResult {
  const proc = currentProc(s, name);
  if (isResult(proc)) return proc;
  if (dev < 0 || dev >= DMIRROR_NDEVICES)
    throw new UsageError(`device ${dev} does not exist: dmirror devices are 0..3`);
  const fd = s.deviceFd(proc, dev);
  if (fd < 0) {
    const why =
      -fd === ENOENT || -fd === ENODEV
        ? `${dmirrorPath(dev)} does not exist: the test_hmm (dmirror) driver is not installed in this machine${
            dev >= 2 ? ' (devices 2 and 3 are the coherent ones, present only with spm_addr_dev0/1)' : ''
          }`
        : `open(${dmirrorPath(dev)}) failed`;
    return fail(name, errnoName(-fd), why, -fd);
  }
  // One scratch region holds the struct (first page) and the data buffer (after it). It is the
  // shell's scaffolding: its faults and frees are booked as overhead, and the data buffer is
  // touched up front so the driver's copy into it faults nothing.
  const size = PAGE_SIZE + a.bufLen;
  const cmdAddr = scratchAlloc(s, proc, size);
  if (cmdAddr === 0) return fail(name, 'ENOMEM', 'no memory for the ioctl buffers', ENOMEM);
  const ptr = a.bufLen > 0 ? cmdAddr + PAGE_SIZE : 0;
  const args = { ...a, addr: a.addr ?? cmdAddr };
  try {
    s.untracked(() => {
      if (ptr) proc.writeBytes(ptr, a.init ?? new Uint8Array(a.bufLen));
      proc.writeU64(cmdAddr + CMD_ADDR, args.addr);
      proc.writeU64(cmdAddr + CMD_PTR, ptr);
      proc.writeU64(cmdAddr + CMD_NPAGES, a.npages);
      proc.writeU64(cmdAddr + CMD_CPAGES, 0);
      proc.writeU64(cmdAddr + CMD_FAULTS, 0);
    });
    const ev = s.kernel.core.events.snapshot();
    const ret = proc.ioctl(fd, a.cmd, cmdAddr);
    const events = eventsSince(s.kernel.core.events, ev);
    return s.untracked(() => {
      const cpages = Number(proc.readU64(cmdAddr + CMD_CPAGES));
      const faults = Number(proc.readU64(cmdAddr + CMD_FAULTS));
      const buf = a.readBack && ret === 0 && ptr ? proc.readBytes(ptr, a.bufLen) : null;
      if (ret < 0) return fail(name, errnoName(-ret), whyIoctl(s, proc, args, -ret), -ret);
      return { ret, cpages, faults, buf, events };
    });
  } finally {
    scratchFree(s, proc, cmdAddr, size);
  }
}

/** Type guard: did the ioctl run (rather than fail before or in the call)? */
export function isOutcome(x: IoctlOutcome | CommandResult): x is IoctlOutcome {
  return 'cpages' in x;
}
