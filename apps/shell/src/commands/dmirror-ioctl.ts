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
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  translate,
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
  HMM_DMIRROR_SNAPSHOT_ORDER,
  HMM_DMIRROR_WRITE,
} from '../dmirror-uapi.js';
import { fmtSize, hex } from '../format.js';
import { type CommandResult, errnoName, fail, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { coverage, currentProc, isResult, notAligned } from './util.js';

/** What one dmirror ioctl returned: the result, the struct's out fields and the buffer. */
export interface IoctlOutcome {
  readonly ret: number;
  readonly cpages: number;
  readonly faults: number;
  /** Kernel events of the ioctl itself (core.events, without the shell's scaffolding). */
  readonly events: EventCounts;
  /**
   * The shell could not prepare the ptr buffer (too little free memory): the ioctl's
   * copy_to_user() faulted its pages in, and those faults are in `events`.
   */
  readonly lazyBuffer: boolean;
}

/** The argument block of a dmirror ioctl as the selftests' hmm_dmirror_cmd() builds it. */
export interface IoctlArgs {
  readonly cmd: number;
  /** cmd.addr; left out, the shell's own scratch page (for RELEASE and FLAGS, which only check it). */
  readonly addr?: number;
  readonly npages: number;
  /** Bytes of the ptr buffer (0: none, ptr = 0). */
  readonly bufLen: number;
  /** Initial contents of the ptr buffer (for WRITE: what copy_from_user() takes). */
  readonly init?: Uint8Array;
  /**
   * Reads the ptr buffer back after a successful ioctl (READ, MIGRATE_TO_DEV, SNAPSHOT): called
   * with its bytes in order, in pieces of at most {@link READBACK_PIECE_BYTES} (a view valid only
   * during the call).
   */
  readonly readBack?: (piece: Uint8Array) => void;
}

/** Bytes of one piece of a read-back (one user load into a reused host buffer). */
export const READBACK_PIECE_BYTES = 4 << 20;

const IOCTL_NAMES: Readonly<Record<number, string>> = {
  [HMM_DMIRROR_READ]: 'HMM_DMIRROR_READ',
  [HMM_DMIRROR_WRITE]: 'HMM_DMIRROR_WRITE',
  [HMM_DMIRROR_MIGRATE_TO_DEV]: 'HMM_DMIRROR_MIGRATE_TO_DEV',
  [HMM_DMIRROR_MIGRATE_TO_SYS]: 'HMM_DMIRROR_MIGRATE_TO_SYS',
  [HMM_DMIRROR_SNAPSHOT]: 'HMM_DMIRROR_SNAPSHOT',
  [HMM_DMIRROR_SNAPSHOT_ORDER]: 'HMM_DMIRROR_SNAPSHOT_ORDER',
  [HMM_DMIRROR_EXCLUSIVE]: 'HMM_DMIRROR_EXCLUSIVE',
  [HMM_DMIRROR_CHECK_EXCLUSIVE]: 'HMM_DMIRROR_CHECK_EXCLUSIVE',
  [HMM_DMIRROR_RELEASE]: 'HMM_DMIRROR_RELEASE',
  [HMM_DMIRROR_FLAGS]: 'HMM_DMIRROR_FLAGS',
};

/**
 * The first address of [start, end) outside a readable VMA, or -1: where the dmirror migrations'
 * VMA walk (vma_lookup(), VM_READ) stops.
 */
function firstUnreadable(proc: Process, start: number, end: number): number {
  for (let a = start; a < end; ) {
    const v = proc.mm.vmaLookup(a);
    if (!v || !(v.flags & VM_READ)) return a;
    a = v.end;
  }
  return -1;
}

/** Why a dmirror ioctl failed, in words (from lib/test_hmm.c's error paths). */
function whyIoctl(
  s: Session,
  proc: Process,
  a: IoctlArgs & { addr: number },
  errno: number,
  /** The buffer was left for the ioctl's copy to fault in. */
  lazy: boolean,
  /** Free pages before the shell allocated anything for the ioctl. */
  freeBefore: number,
): string {
  const len = a.npages * PAGE_SIZE;
  switch (errno) {
    case EINVAL: {
      if (a.cmd === HMM_DMIRROR_FLAGS && a.npages === 0)
        return 'a flag word of 0 is npages 0, which the ioctl wrapper rejects (the fail-alloc flag is one-shot and clears itself)';
      const al = notAligned(a.addr, PAGE_SIZE, 'address');
      if (al) return al;
      if (a.cmd === HMM_DMIRROR_MIGRATE_TO_DEV || a.cmd === HMM_DMIRROR_MIGRATE_TO_SYS) {
        const stop = firstUnreadable(proc, a.addr, a.addr + len);
        if (stop >= 0) {
          const fn =
            a.cmd === HMM_DMIRROR_MIGRATE_TO_DEV ? 'dmirror_migrate_to_device' : 'dmirror_migrate_to_system';
          const before =
            stop === a.addr
              ? 'nothing was migrated'
              : `the ${(stop - a.addr) / PAGE_SIZE} page(s) before it were migrated (\`snapshot\` shows them)`;
          return `range not covered by a readable VMA: ${hex(stop)} is ${
            proc.mm.vmaLookup(stop) ? 'in a VMA without read permission' : 'not mapped'
          }. ${fn}() (lib/test_hmm.c) migrates the range VMA by VMA and returns -EINVAL at the first address vma_lookup() does not find or cannot read: ${before}`;
        }
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
      if (lazy && reachesCopy(proc, a))
        return `the ioctl's copy_to_user() into the shell's ${fmtSize(copiedOut(a.cmd, a.npages))} read-back buffer could not get memory (${fmtSize(freeBefore * PAGE_SIZE)} was free before the ioctl, too little for the shell to prepare the buffer); the ioctl's work before the copy was done${
          a.cmd === HMM_DMIRROR_MIGRATE_TO_DEV ? ' (the pages were migrated: `snapshot` shows them)' : ''
        }`;
      return a.cmd === HMM_DMIRROR_EXCLUSIVE
        ? 'make_device_exclusive() failed: a page is unmapped or not writable'
        : 'hmm_range_fault failed: a page is unmapped or PROT_NONE, or a user copy faulted';
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
 * Free pages the shell leaves to the kernel beyond what an ioctl itself may allocate when it
 * decides whether to prepare a buffer up front: a THP's rounding and the page tables.
 */
const PREPARE_SLACK_PAGES = 512 + 64;

/**
 * Models malloc() of a scratch buffer for an ioctl: an anonymous private mapping at the scratch
 * hint, booked as shell overhead. Like any fresh anonymous mapping it costs no memory until a
 * page is touched. Returns the address, or the mmap's -errno.
 */
export function scratchAlloc(s: Session, proc: Process, len: number): number {
  return s.untracked(() =>
    proc.mmap(SCRATCH_HINT, Math.max(len, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS),
  );
}

/** Models free() of a {@link scratchAlloc} buffer (nothing when the process is gone or addr is 0). */
export function scratchFree(s: Session, proc: Process, addr: number, len: number): void {
  if (!addr || proc.state !== 'running') return;
  s.untracked(() => proc.munmap(addr, Math.max(len, 1)));
}

/**
 * Touches [addr, addr + len) of the shell's own buffer for writing, page by page, the way the CPU
 * would (translate(): the fault handler allocates), as shell overhead. Unlike a store through
 * the process it never invokes the OOM killer: it stops at the first page it cannot get and
 * returns false. Never used on the user's memory.
 */
function touchScratch(s: Session, proc: Process, addr: number, len: number): boolean {
  const core = s.kernel.core;
  return s.untracked(() => {
    const end = addr + len;
    for (let a = addr - (addr % PAGE_SIZE); a < end; a += PAGE_SIZE)
      if (translate(core, proc.mm, a, true) < 0) return false;
    return true;
  });
}

/**
 * The bytes a dmirror ioctl copies out to cmd.ptr (lib/test_hmm.c): READ, MIGRATE_TO_DEV and
 * EXCLUSIVE copy the range's bytes (dmirror_bounce_init(size) then copy_to_user()), SNAPSHOT a
 * byte per page; WRITE only reads ptr, the others leave it alone.
 */
function copiedOut(cmd: number, npages: number): number {
  if (cmd === HMM_DMIRROR_READ || cmd === HMM_DMIRROR_MIGRATE_TO_DEV || cmd === HMM_DMIRROR_EXCLUSIVE)
    return npages * PAGE_SIZE;
  return cmd === HMM_DMIRROR_SNAPSHOT || cmd === HMM_DMIRROR_SNAPSHOT_ORDER ? npages : 0;
}

/**
 * Pages an ioctl may allocate from system memory itself: READ and EXCLUSIVE fault the range in
 * (hmm_range_fault(), make_device_exclusive()), MIGRATE_TO_SYS allocates the destination pages,
 * and MIGRATE_TO_DEV a system page behind each device-private page (dmirror_devmem_alloc_page():
 * test_hmm's device memory is backed by system RAM) before the sources are freed.
 */
function ioctlNeeds(cmd: number, npages: number): number {
  return cmd === HMM_DMIRROR_READ ||
    cmd === HMM_DMIRROR_EXCLUSIVE ||
    cmd === HMM_DMIRROR_MIGRATE_TO_SYS ||
    cmd === HMM_DMIRROR_MIGRATE_TO_DEV
    ? npages
    : 0;
}

/**
 * Whether the ioctl will get as far as copying out: every page of its range is in a VMA
 * (dmirror_migrate_to_device() stops at the first address vma_lookup() does not find or that is
 * not VM_READ, hmm_range_fault() and make_device_exclusive() fail on a hole before anything is
 * copied); SNAPSHOT copies even over holes.
 */
function reachesCopy(proc: Process, a: IoctlArgs & { addr: number }): boolean {
  if (a.cmd === HMM_DMIRROR_SNAPSHOT || a.cmd === HMM_DMIRROR_SNAPSHOT_ORDER) return true;
  const { vmas, hole } = coverage(proc.mm, a.addr, a.addr + a.npages * PAGE_SIZE);
  return hole < 0 && vmas.every((v) => (v.flags & VM_READ) !== 0);
}

/** The shell's own failure to get memory for its scaffolding: nothing was run, nothing died. */
function noScratch(name: string, what: string, bytes: number, freePages: number): CommandResult {
  return fail(
    name,
    'ENOMEM',
    `the shell could not allocate ${what} (${fmtSize(bytes)}; ${fmtSize(freePages * PAGE_SIZE)} of memory was free): the ioctl was not issued`,
    ENOMEM,
  );
}

/**
 * Models a user program issuing one dmirror ioctl, as hmm-tests' hmm_dmirror_cmd() does:
 * open the device (once per process), allocate the 40-byte struct hmm_dmirror_cmd and the ptr
 * buffer in the process's memory, fill them, ioctl(fd, cmd, &cmd), read back cpages, faults
 * and the buffer, and free them.
 *
 * The buffer costs what the ioctl copies: it is a fresh anonymous mapping (hmm-tests' malloc()ed
 * mirror), and the shell touches it up front, as overhead, only for an ioctl that will copy into
 * it and only while memory is plentiful (so the ioctl's kernel events are its own). Otherwise the
 * ioctl's copy_to_user() faults it in, as in hmm-tests. When the shell cannot get the memory it
 * must write (the struct, WRITE's data) it fails with ENOMEM before the ioctl: it never invokes
 * the OOM killer for its scaffolding.
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
  // One scratch region holds the data buffer (first, 2 MiB aligned at the hint, so a long one
  // is backed by THPs: the shell's own faults stay few) and the struct (the page after it). It is
  // the shell's scaffolding: its faults and frees are booked as overhead.
  const bufBytes = Math.ceil(a.bufLen / PAGE_SIZE) * PAGE_SIZE;
  const size = bufBytes + PAGE_SIZE;
  const free = s.kernel.core.zone.nrFree;
  const base = scratchAlloc(s, proc, size);
  if (base < 0) {
    const r = noScratch(name, `its ${IOCTL_NAMES[a.cmd] ?? 'ioctl'} buffers`, size, free);
    return {
      ...r,
      lines: [`${r.lines[0]} (mmap: ${errnoName(-base)}; see \`meminfo\`, \`sysctl vm.overcommit_memory\`)`],
    };
  }
  if (bufBytes >= PMD_SIZE) s.untracked(() => proc.madvise(base, bufBytes, MADV_HUGEPAGE));
  const ptr = a.bufLen > 0 ? base : 0;
  const cmdAddr = base + bufBytes;
  const args = { ...a, addr: a.addr ?? cmdAddr };
  // The buffer was left for the ioctl to fault in (then freeing it is the command's own work).
  let lazy = false;
  try {
    if (!touchScratch(s, proc, cmdAddr, PAGE_SIZE))
      return noScratch(name, 'the page for struct hmm_dmirror_cmd', PAGE_SIZE, free);
    if (a.init && !touchScratch(s, proc, ptr, a.bufLen))
      return noScratch(name, 'the buffer of the data to write', a.bufLen, free);
    // Prepare the buffer the ioctl copies into when memory is plentiful; else it stays lazy.
    const out = Math.min(a.bufLen, copiedOut(a.cmd, a.npages));
    const outPages = Math.ceil(out / PAGE_SIZE);
    let prepared = true;
    if (out > 0 && !a.init) {
      if (
        reachesCopy(proc, args) &&
        // Free pages above the min watermark (vm.min_free_kbytes): what a user fault may take.
        s.kernel.core.zone.nrFree - s.kernel.core.zone.minFree >=
          outPages + ioctlNeeds(a.cmd, a.npages) + PREPARE_SLACK_PAGES
      )
        prepared = touchScratch(s, proc, ptr, out);
      else {
        // Left to the ioctl's copy_to_user(): what it faults in is the command's own work (it
        // is counted), and so is freeing it again.
        prepared = false;
        lazy = true;
      }
    }
    s.untracked(() => {
      if (ptr && a.init) proc.writeBytes(ptr, a.init);
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
      if (ret < 0) return fail(name, errnoName(-ret), whyIoctl(s, proc, args, -ret, !prepared, free), -ret);
      if (a.readBack && ptr) readBackPieces(proc, ptr, a.bufLen, a.readBack);
      return { ret, cpages, faults, events, lazyBuffer: !prepared };
    });
  } finally {
    if (lazy && proc.state === 'running') {
      proc.munmap(ptr, bufBytes);
      scratchFree(s, proc, cmdAddr, PAGE_SIZE);
    } else scratchFree(s, proc, base, size);
  }
}

/** One host buffer the read-backs reuse (a user load of a piece at a time). */
let pieceBuf: Uint8Array | undefined;

/** Reads [ptr, ptr + len) of the process back in pieces of READBACK_PIECE_BYTES, in order. */
function readBackPieces(proc: Process, ptr: number, len: number, fn: (piece: Uint8Array) => void): void {
  pieceBuf ??= new Uint8Array(READBACK_PIECE_BYTES);
  for (let off = 0; off < len; off += READBACK_PIECE_BYTES) {
    const piece = pieceBuf.subarray(0, Math.min(READBACK_PIECE_BYTES, len - off));
    proc.readInto(ptr + off, piece);
    fn(piece);
  }
}

/** Type guard: did the ioctl run (rather than fail before or in the call)? */
export function isOutcome(x: IoctlOutcome | CommandResult): x is IoctlOutcome {
  return 'cpages' in x;
}
