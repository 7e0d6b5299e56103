/**
 * The operation vocabulary of the explorer: what a simulated thread does (syscalls, CPU
 * accesses, dmirror ioctls, GPU accesses), as plain data that shrinks and prints, and the kernel
 * path that performs it inside the thread's task.
 */
import {
  EINVAL,
  type KGen,
  khugepagedDoScan,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_KEEPONFORK,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  mmgetNotZero,
  mmput,
  O_WRONLY,
  PAGE_SIZE,
  PIN_LONGTERM_TEST_FLAG_USE_WRITE,
  PIN_LONGTERM_TEST_START,
  PIN_LONGTERM_TEST_STOP,
  PIN_LONGTERM_TEST_STRUCT_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  SIGBUS,
  SIGKILL,
  SIGSEGV,
  SWAP_DEVICE_PATH,
  thpSizeDir,
  XLATE_BUS,
  XLATE_OOM,
  XLATE_SEGV,
} from '@hmm-model/mm-core';
import { gpuAccessWordsGen, svmmMigrateToVramGen } from '@hmm-model/nouveau-dmem';
import {
  decodeCmd,
  encodeCmd,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_CMD_SIZE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_SNAPSHOT_ORDER,
  HMM_DMIRROR_WRITE,
  hmmDmirrorFlagFailAllocOrder,
} from '@hmm-model/test-hmm';
import { type ProcSlot, regionAddr, SCRATCH_PER_THREAD, type World } from './world.js';

/** Where the machine has mm/gup_test.c's debugfs file. */
const GUP_TEST_PATH = '/sys/kernel/debug/gup_test';

/** The kinds of operation. */
export type OpKind =
  | 'mmap'
  | 'munmap'
  | 'mprotect'
  | 'madvise'
  | 'mremap'
  | 'write'
  | 'read'
  | 'fork'
  | 'exit'
  | 'kill'
  | 'oom'
  | 'dm'
  | 'dmclose'
  | 'gpu'
  | 'pagemap'
  | 'khugepaged'
  | 'mthp'
  | 'pin'
  | 'swap'
  | 'split';

/**
 * Model-only: one operation of one thread. `p`/`t` name the process and thread slots; (r, off,
 * n) a page range of region r; the other fields depend on the kind (see {@link describeOp}).
 */
export interface Op {
  readonly k: OpKind;
  readonly p: number;
  readonly t: number;
  readonly r?: number;
  readonly off?: number;
  readonly n?: number;
  readonly r2?: number;
  readonly off2?: number;
  /** prot, advice, device minor, write seed, target slot; the new order of a 'split'. */
  readonly a?: number;
  /**
   * thp (mmap), dontunmap (mremap), dmirror command / gpu command; for 'pin': 0 pins the range
   * (PIN_LONGTERM_TEST_START through gup_test: FOLL_PIN | FOLL_LONGTERM), 1 also with FOLL_WRITE,
   * 2 unpins (PIN_LONGTERM_TEST_STOP). The pins are the machine's one set, as gup_test keeps
   * them: a START while pinned is -EINVAL, and any gup_test file's release unpins. For 'swap':
   * 0 is swapoff(2) of the machine's swap partition, 1 swapon(2) of it.
   */
  readonly b?: number;
}

/** Encodes the text the sysfs and debugfs ops write. */
const TEXT = new TextEncoder();

/** The debugfs file of 'split' ops (mm/huge_memory.c split_huge_pages_fops). */
const SPLIT_HUGE_PAGES_PATH = '/sys/kernel/debug/split_huge_pages';

/** dmirror commands of a 'dm' op (field b). */
export const DM_CMDS = [
  'to-dev',
  'to-sys',
  'read',
  'write',
  'snapshot',
  'exclusive',
  'check-exclusive',
  'release',
  'fail-alloc',
  // Model extension (mTHP machines): fail the next device allocation of one order (op.off2),
  // then migrate to the device; SNAPSHOT_ORDER (the folio order per page).
  'fail-order',
  'snapshot-order',
] as const;

/** The modes an 'mthp' op writes to hugepages-<size>kB/enabled (field b). */
export const MTHP_MODES = ['always', 'inherit', 'madvise', 'never'] as const;

/** GPU commands of a 'gpu' op (field b). */
export const GPU_CMDS = ['read', 'write', 'migrate'] as const;

/** Advice names of the text form (the first seven in the order the form always had). */
const ADVICE_NAMES: readonly [string, number][] = [
  ['dontneed', MADV_DONTNEED],
  ['free', MADV_FREE],
  ['cold', MADV_COLD],
  ['pageout', MADV_PAGEOUT],
  ['hugepage', MADV_HUGEPAGE],
  ['nohugepage', MADV_NOHUGEPAGE],
  ['collapse', MADV_COLLAPSE],
  ['normal', MADV_NORMAL],
  ['random', MADV_RANDOM],
  ['sequential', MADV_SEQUENTIAL],
  ['willneed', MADV_WILLNEED],
  ['dontneed-locked', MADV_DONTNEED_LOCKED],
  ['remove', MADV_REMOVE],
  ['dontfork', MADV_DONTFORK],
  ['dofork', MADV_DOFORK],
  ['dontdump', MADV_DONTDUMP],
  ['dodump', MADV_DODUMP],
  ['wipeonfork', MADV_WIPEONFORK],
  ['keeponfork', MADV_KEEPONFORK],
  ['populate-read', MADV_POPULATE_READ],
  ['populate-write', MADV_POPULATE_WRITE],
];

const ADVICE: Record<number, string> = Object.fromEntries(ADVICE_NAMES.map(([n, v]) => [v, n]));

/** What an operation did, for the oracle. */
export interface OpOutcome {
  /** The syscall's return value (or 0 for accesses). */
  ret: number;
  /** The signal a user access raised (0: none): it killed the process unless `handled`. */
  signal: number;
  /** The program's SIGSEGV handler caught `signal`: the thread went on (see accessFault()). */
  handled: boolean;
  /** The op did not run (its process or region did not exist). */
  skipped: boolean;
  /**
   * What a load read (read, dm read, gpu read), a word per page of [readAddr, readAddr +
   * readWords.length pages): the word the page repeats, or -1 for a page whose words differ.
   */
  readAddr: number;
  readWords: Float64Array | null;
  /** What a store wrote (write, dm write, gpu write) at writeAddr: the word each page repeats. */
  writeAddr: number;
  writeWords: Float64Array | null;
  /** The child's slot of a fork. */
  child: number;
  /** The access failed for lack of memory (VM_FAULT_OOM: the OOM killer's SIGKILL). */
  oom: boolean;
}

/** A fresh outcome. */
export function newOutcome(): OpOutcome {
  return {
    ret: 0,
    signal: 0,
    handled: false,
    skipped: false,
    readAddr: 0,
    readWords: null,
    writeAddr: 0,
    writeWords: null,
    child: -1,
    oom: false,
  };
}

/** The one-line form of an op (also the shell script syntax, see script.ts). */
export function describeOp(op: Op): string {
  const who = `p${op.p}.t${op.t}`;
  const range = `r${op.r} ${op.off}+${op.n}`;
  switch (op.k) {
    case 'mmap':
      return `${who} mmap r${op.r} ${op.n}${op.b ? ' thp' : ''} prot ${op.a}`;
    case 'munmap':
    case 'read':
    case 'pagemap':
      return `${who} ${op.k} ${range}`;
    case 'mprotect':
      return `${who} mprotect ${range} prot ${op.a}`;
    case 'madvise':
      return `${who} madvise ${range} ${ADVICE[op.a ?? -1] ?? op.a}`;
    case 'mremap':
      return `${who} mremap ${range} to r${op.r2} ${op.off2}${op.b ? ' dontunmap' : ''}`;
    case 'write':
      return `${who} write ${range} seed ${op.a}`;
    case 'fork':
    case 'exit':
    case 'khugepaged':
      return `${who} ${op.k}`;
    case 'kill':
    case 'oom':
      return `${who} ${op.k} p${op.a}`;
    case 'dm':
      return `${who} dm${op.a} ${DM_CMDS[op.b ?? 0]} ${range}${DM_CMDS[op.b ?? 0] === 'fail-order' ? ` order ${op.off2 ?? 0}` : ''}`;
    case 'mthp':
      return `${who} mthp ${(PAGE_SIZE << (op.a ?? 0)) / 1024}kB ${MTHP_MODES[op.b ?? 0]}`;
    case 'dmclose':
      return `${who} dm${op.a} close`;
    case 'gpu':
      return `${who} gpu ${GPU_CMDS[op.b ?? 0]} ${range}${op.b === 1 ? ` seed ${op.a}` : ''}`;
    case 'pin':
      return op.b === 2 ? `${who} unpin` : `${who} pin ${range}${op.b === 1 ? ' write' : ''}`;
    case 'swap':
      return `${who} ${op.b === 1 ? 'swapon' : 'swapoff'}`;
    case 'split':
      return `${who} split ${range} order ${op.a ?? 0}${op.off2 !== undefined ? ` at ${op.off2}` : ''}`;
  }
}

/** A parse error of an op's text form (one line: what is wrong). */
export class OpSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OpSyntaxError';
  }
}

const ADVICE_BY_NAME = new Map(ADVICE_NAMES);

/** Parses {@link describeOp}'s form back into an op; throws {@link OpSyntaxError}. */
export function parseOp(text: string): Op {
  const w = text.trim().split(/\s+/);
  const who = /^p(\d)\.t(\d)$/.exec(w[0] ?? '');
  if (!who) throw new OpSyntaxError(`expected pP.tT first, got '${w[0] ?? ''}'`);
  const p = Number(who[1]);
  const t = Number(who[2]);
  const num = (s: string | undefined, what: string): number => {
    if (s === undefined || !/^\d+$/.test(s)) throw new OpSyntaxError(`expected ${what}, got '${s ?? ''}'`);
    return Number(s);
  };
  const reg = (s: string | undefined): number => {
    const m = /^r(\d)$/.exec(s ?? '');
    if (!m) throw new OpSyntaxError(`expected a region rN, got '${s ?? ''}'`);
    return Number(m[1]);
  };
  const rng = (s: string | undefined): { off: number; n: number } => {
    const m = /^(\d+)\+(\d+)$/.exec(s ?? '');
    if (!m) throw new OpSyntaxError(`expected a page range OFF+N, got '${s ?? ''}'`);
    return { off: Number(m[1]), n: Number(m[2]) };
  };
  const kind = w[1] ?? '';
  const dm = /^dm(\d)$/.exec(kind);
  if (dm) {
    const a = Number(dm[1]);
    if (w[2] === 'close') return { k: 'dmclose', p, t, a };
    const b = DM_CMDS.indexOf((w[2] ?? '') as (typeof DM_CMDS)[number]);
    if (b < 0) throw new OpSyntaxError(`unknown dmirror command '${w[2] ?? ''}' (${DM_CMDS.join(', ')})`);
    if (DM_CMDS[b] === 'fail-order') {
      if (w[5] !== 'order') throw new OpSyntaxError("expected 'order N' after a fail-order range");
      return { k: 'dm', p, t, a, b, r: reg(w[3]), ...rng(w[4]), off2: num(w[6], 'order') };
    }
    return { k: 'dm', p, t, a, b, r: reg(w[3]), ...rng(w[4]) };
  }
  switch (kind) {
    case 'mmap':
      return {
        k: 'mmap',
        p,
        t,
        r: reg(w[2]),
        n: num(w[3], 'pages'),
        b: w[4] === 'thp' ? 1 : 0,
        a: num(w[w.length - 1], 'prot'),
      };
    case 'munmap':
    case 'read':
    case 'pagemap':
      return { k: kind, p, t, r: reg(w[2]), ...rng(w[3]) };
    case 'mprotect':
      return { k: 'mprotect', p, t, r: reg(w[2]), ...rng(w[3]), a: num(w[5], 'prot') };
    case 'madvise': {
      const a = ADVICE_BY_NAME.get(w[4] ?? '');
      if (a === undefined)
        throw new OpSyntaxError(`unknown advice '${w[4] ?? ''}' (${[...ADVICE_BY_NAME.keys()].join(', ')})`);
      return { k: 'madvise', p, t, r: reg(w[2]), ...rng(w[3]), a };
    }
    case 'mremap':
      if (w[4] !== 'to') throw new OpSyntaxError("expected 'to' in mremap");
      return {
        k: 'mremap',
        p,
        t,
        r: reg(w[2]),
        ...rng(w[3]),
        r2: reg(w[5]),
        off2: num(w[6], 'page'),
        b: w[7] === 'dontunmap' ? 1 : 0,
      };
    case 'write':
      return { k: 'write', p, t, r: reg(w[2]), ...rng(w[3]), a: num(w[5], 'seed') };
    case 'fork':
    case 'exit':
    case 'khugepaged':
      return { k: kind, p, t };
    case 'mthp': {
      const m = /^(\d+)kB$/.exec(w[2] ?? '');
      const order = m ? Math.log2((Number(m[1]) * 1024) / PAGE_SIZE) : -1;
      if (!Number.isInteger(order) || order < 2 || order > 9)
        throw new OpSyntaxError(`expected an mTHP size 16kB..2048kB, got '${w[2] ?? ''}'`);
      const b = MTHP_MODES.indexOf((w[3] ?? '') as (typeof MTHP_MODES)[number]);
      if (b < 0) throw new OpSyntaxError(`unknown mTHP mode '${w[3] ?? ''}' (${MTHP_MODES.join(', ')})`);
      return { k: 'mthp', p, t, a: order, b };
    }
    case 'kill':
    case 'oom': {
      const m = /^p(\d)$/.exec(w[2] ?? '');
      if (!m) throw new OpSyntaxError(`expected a process pN, got '${w[2] ?? ''}'`);
      return { k: kind, p, t, a: Number(m[1]) };
    }
    case 'gpu': {
      const b = GPU_CMDS.indexOf((w[2] ?? '') as (typeof GPU_CMDS)[number]);
      if (b < 0) throw new OpSyntaxError(`unknown gpu command '${w[2] ?? ''}' (${GPU_CMDS.join(', ')})`);
      return { k: 'gpu', p, t, b, r: reg(w[3]), ...rng(w[4]), ...(b === 1 ? { a: num(w[6], 'seed') } : {}) };
    }
    case 'pin':
      if (w[4] !== undefined && w[4] !== 'write')
        throw new OpSyntaxError(`expected 'write' or nothing after a pin range, got '${w[4]}'`);
      return { k: 'pin', p, t, r: reg(w[2]), ...rng(w[3]), b: w[4] === 'write' ? 1 : 0 };
    case 'unpin':
      return { k: 'pin', p, t, b: 2 };
    case 'split': {
      const r = reg(w[2]);
      const range = rng(w[3]);
      if (w[4] !== 'order')
        throw new OpSyntaxError(`expected 'order N' after a split range, got '${w[4] ?? ''}'`);
      const a = num(w[5], 'order');
      if (w[6] === undefined) return { k: 'split', p, t, r, ...range, a };
      if (w[6] !== 'at')
        throw new OpSyntaxError(`expected 'at PAGE' or nothing after a split order, got '${w[6]}'`);
      return { k: 'split', p, t, r, ...range, a, off2: num(w[7], 'in-folio page') };
    }
    case 'swapoff':
    case 'swapon':
      return { k: 'swap', p, t, b: kind === 'swapon' ? 1 : 0 };
    default:
      throw new OpSyntaxError(`unknown operation '${kind}'`);
  }
}

/** Model-only: the words a 'write' op stores (page k of the range at addr repeats patternWord(seed, vpn + k)). */
export function patternWords(seed: number, addr: number, npages: number, into?: Float64Array): Float64Array {
  const out = into ?? new Float64Array(npages);
  const vpn = Math.floor(addr / PAGE_SIZE);
  for (let k = 0; k < npages; k++) out[k] = patternWord(seed, vpn + k);
  return out;
}

/**
 * Model-only: the 32-bit word that fills page `vpn` when written with `seed` (never 0, so a
 * written page never reads as a zero page). A page's contents are always one word repeated,
 * which keeps the oracle to one number per page.
 */
export function patternWord(seed: number, vpn: number): number {
  let x = (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(vpn, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) >>> 0;
  x = (x ^ (x >>> 12)) >>> 0;
  return x === 0 ? 1 : x;
}

function* dmIoctl(
  w: World,
  slot: ProcSlot,
  t: number,
  fd: number,
  cmd: number,
  addr: number,
  npages: number,
): KGen<{ ret: number; cpages: number; faults: number }> {
  const sys = slot.proc.sys;
  const cmdAddr = w.scratch(t) + SCRATCH_PER_THREAD - PAGE_SIZE;
  const ptr = w.scratch(t);
  const raw = encodeCmd({
    addr: BigInt(addr),
    ptr: BigInt(ptr),
    npages: BigInt(npages),
    cpages: 0n,
    faults: 0n,
  });
  const wr = yield* sys.access(cmdAddr, raw, 'write');
  if (wr < 0) return { ret: -EINVAL, cpages: 0, faults: 0 };
  const ret = yield* sys.ioctl(fd, cmd, cmdAddr);
  const back = new Uint8Array(HMM_DMIRROR_CMD_SIZE);
  yield* sys.access(cmdAddr, back, 'read');
  const c = decodeCmd(back);
  return { ret, cpages: Number(c.cpages), faults: Number(c.faults) };
}

/** The slot's /sys/kernel/debug/gup_test fd (opened on first use). */
function* gupFd(slot: ProcSlot): KGen<number> {
  const have = slot.gupFd;
  if (have !== undefined && slot.proc.fds.has(have)) return have;
  const fd = yield* slot.proc.sys.open(GUP_TEST_PATH, 2);
  if (fd >= 0) slot.gupFd = fd;
  return fd;
}

function* dmFd(slot: ProcSlot, d: number): KGen<number> {
  const have = slot.dmFds[d];
  if (have !== undefined && slot.proc.fds.has(have)) return have;
  const fd = yield* slot.proc.sys.open(`/dev/hmm_dmirror${d}`, 2);
  if (fd >= 0) slot.dmFds[d] = fd;
  return fd;
}

/**
 * Models the signal of a user access that faulted (accessBytes() returned an XLATE_* code):
 * force_sig_fault(SIGSEGV) for a bad address, SIGBUS, or the OOM killer's SIGKILL. The explorer's
 * programs catch SIGSEGV (a handler that siglongjmp()s past the access, as the mm selftests do for
 * faults they expect), so the thread goes on: an access racing another thread's munmap(),
 * mprotect() or mremap() no longer ends the process and every operation after it. SIGBUS and
 * SIGKILL kill the process (do_exit() with the signal), as does any signal once it is exiting.
 */
function* accessFault(slot: ProcSlot, ret: number, out: OpOutcome): KGen {
  out.signal = ret === XLATE_BUS ? SIGBUS : ret === XLATE_OOM ? SIGKILL : SIGSEGV;
  out.oom = ret === XLATE_OOM;
  if (ret === XLATE_SEGV) {
    out.handled = true;
    return;
  }
  yield* slot.proc.exitGen(0, out.signal);
}

/**
 * Runs `op` as the thread it names (the task running this generator belongs to that thread).
 * An access's SIGSEGV is caught by the program; SIGBUS and SIGKILL kill the process (accessFault()).
 */
export function* execOp(w: World, op: Op, out: OpOutcome): KGen {
  const slot = w.live(op.p);
  if (!slot) {
    out.skipped = true;
    return;
  }
  const sys = slot.proc.sys;
  const r = op.r ?? 0;
  const addr = regionAddr(r, op.off ?? 0);
  const len = (op.n ?? 0) * PAGE_SIZE;
  switch (op.k) {
    case 'mmap': {
      const a = regionAddr(r, 0);
      out.ret = yield* sys.mmap(
        a,
        len,
        op.a ?? PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      );
      if (out.ret === a && op.b) yield* sys.madvise(a, len, MADV_HUGEPAGE);
      return;
    }
    case 'munmap':
      out.ret = yield* sys.munmap(addr, len);
      return;
    case 'mprotect':
      out.ret = yield* sys.mprotect(addr, len, op.a ?? PROT_NONE);
      return;
    case 'madvise':
      out.ret = yield* sys.madvise(addr, len, op.a ?? MADV_DONTNEED);
      return;
    case 'mremap': {
      const to = regionAddr(op.r2 ?? 0, op.off2 ?? 0);
      const flags = MREMAP_MAYMOVE | MREMAP_FIXED | (op.b ? MREMAP_DONTUNMAP : 0);
      out.ret = yield* sys.mremap(addr, len, len, flags, to);
      return;
    }
    case 'write': {
      // The program stores its word over every word of each page: no bytes move in the model.
      const words = patternWords(op.a ?? 0, addr, op.n ?? 0, w.words(op.p, op.t, op.n ?? 0));
      const ret = yield* sys.accessWords(addr, words, 'write');
      if (ret < 0) {
        yield* accessFault(slot, ret, out);
        return;
      }
      out.writeAddr = addr;
      out.writeWords = words;
      return;
    }
    case 'read': {
      const words = w.words(op.p, op.t, op.n ?? 0);
      const ret = yield* sys.accessWords(addr, words, 'read');
      if (ret < 0) {
        yield* accessFault(slot, ret, out);
        return;
      }
      out.readAddr = addr;
      out.readWords = words;
      return;
    }
    case 'mthp': {
      // Models `echo MODE > /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled`.
      const fd = yield* sys.open(`${thpSizeDir(op.a ?? 0)}/enabled`, O_WRONLY);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      const bytes = TEXT.encode(`${MTHP_MODES[op.b ?? 0]}\n`);
      out.ret = yield* sys.pwrite(fd, bytes, bytes.length, 0);
      yield* sys.close(fd);
      return;
    }
    case 'khugepaged':
      // One khugepaged_do_scan() pass, run by this thread's task as khugepaged would run it.
      out.ret = (yield* khugepagedDoScan(w.kernel.core)).collapsed;
      return;
    case 'split': {
      // Models `echo PID,0xSTART,0xEND,ORDER[,OFFSET] > /sys/kernel/debug/split_huge_pages`:
      // split_huge_pages_pid() splits the THPs mapped in the range to the order (non-uniformly
      // around the in-folio page with an offset).
      const fd = yield* sys.open(SPLIT_HUGE_PAGES_PATH, O_WRONLY);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      const at = op.off2 !== undefined ? `,${op.off2}` : '';
      const line = `${slot.proc.pid},0x${addr.toString(16)},0x${(addr + len).toString(16)},${op.a ?? 0}${at}`;
      const bytes = TEXT.encode(line);
      out.ret = yield* sys.write(fd, bytes, bytes.length);
      yield* sys.close(fd);
      return;
    }
    case 'swap':
      // swapoff(2) brings every swapped-out page of every address space back (try_to_unuse());
      // swapon(2) enables the partition again (-EBUSY while it is on, -EINVAL for a swapoff
      // while it is off).
      out.ret = op.b === 1 ? yield* sys.swapon(SWAP_DEVICE_PATH, 0) : yield* sys.swapoff(SWAP_DEVICE_PATH);
      return;
    case 'fork': {
      const s = w.freeSlot();
      if (s < 0) {
        out.skipped = true;
        return;
      }
      const pid = yield* sys.fork();
      out.ret = pid;
      const child = pid > 0 ? w.kernel.task(pid) : undefined;
      if (child) {
        w.adopt(s, child, slot);
        out.child = s;
      }
      return;
    }
    case 'exit':
      yield* slot.proc.exitGen(0);
      return;
    case 'kill':
    case 'oom': {
      const target = w.live(op.a ?? 0);
      if (!target || target === slot) {
        out.skipped = true;
        return;
      }
      // The OOM killer marks the victim's mm unstable (MMF_UNSTABLE) before the reaper runs.
      if (op.k === 'oom') target.proc.mm.unstable = true;
      out.ret = yield* slot.proc.killGen(target.proc.pid, SIGKILL);
      return;
    }
    case 'dm': {
      const d = op.a ?? 0;
      const fd = yield* dmFd(slot, d);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      const cmdName = DM_CMDS[op.b ?? 0];
      if (cmdName === 'fail-alloc' || cmdName === 'fail-order') {
        const flags =
          cmdName === 'fail-alloc' ? HMM_DMIRROR_FLAG_FAIL_ALLOC : hmmDmirrorFlagFailAllocOrder(op.off2 ?? 0);
        yield* dmIoctl(w, slot, op.t, fd, HMM_DMIRROR_FLAGS, 0, flags);
        out.ret = (yield* dmIoctl(w, slot, op.t, fd, HMM_DMIRROR_MIGRATE_TO_DEV, addr, op.n ?? 0)).ret;
        return;
      }
      const cmd = {
        'to-dev': HMM_DMIRROR_MIGRATE_TO_DEV,
        'to-sys': HMM_DMIRROR_MIGRATE_TO_SYS,
        read: HMM_DMIRROR_READ,
        write: HMM_DMIRROR_WRITE,
        snapshot: HMM_DMIRROR_SNAPSHOT,
        'snapshot-order': HMM_DMIRROR_SNAPSHOT_ORDER,
        exclusive: HMM_DMIRROR_EXCLUSIVE,
        'check-exclusive': HMM_DMIRROR_CHECK_EXCLUSIVE,
        release: HMM_DMIRROR_RELEASE,
      }[cmdName];
      let words: Float64Array | null = null;
      if (cmdName === 'write') {
        words = patternWords(op.a ?? 0, addr, op.n ?? 0, w.words(op.p, op.t, op.n ?? 0));
        if ((yield* sys.accessWords(w.scratch(op.t), words, 'write')) < 0) return;
      }
      const res = yield* dmIoctl(w, slot, op.t, fd, cmd, addr, op.n ?? 0);
      out.ret = res.ret;
      if (res.ret === 0 && cmdName === 'read') {
        const got = w.words(op.p, op.t, op.n ?? 0);
        if ((yield* sys.accessWords(w.scratch(op.t), got, 'read')) === 0) {
          out.readAddr = addr;
          out.readWords = got;
        }
      }
      if (cmdName === 'write' && words) {
        // A WRITE stores page by page until it fails: what reached memory is uncertain on error.
        out.writeAddr = addr;
        out.writeWords = res.ret === 0 ? words : words.subarray(0, 0);
        if (res.ret !== 0) out.ret = res.ret;
      }
      return;
    }
    case 'dmclose': {
      const d = op.a ?? 0;
      const fd = slot.dmFds[d];
      if (fd === undefined || !slot.proc.fds.has(fd)) {
        out.skipped = true;
        return;
      }
      slot.dmFds[d] = undefined;
      out.ret = yield* sys.close(fd);
      return;
    }
    case 'gpu': {
      // The GPU's fault worker and the SVM bind ioctl work on the process's mm with a user
      // reference (nouveau_svm_fault(): mmget_not_zero()): an exit meanwhile leaves the teardown
      // to the last mmput().
      const mm = slot.proc.mm;
      if (!mmgetNotZero(mm)) {
        out.skipped = true;
        return;
      }
      try {
        yield* gpuOp(w, slot, op, addr, len, out);
      } finally {
        yield* mmput(w.kernel.core, mm);
      }
      return;
    }
    case 'pin': {
      const unpin = op.b === 2;
      if (unpin && (slot.gupFd === undefined || !slot.proc.fds.has(slot.gupFd))) {
        out.skipped = true;
        return;
      }
      const fd = yield* gupFd(slot);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      if (unpin) {
        out.ret = yield* sys.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0);
        return;
      }
      // struct pin_longterm_test { u64 addr; u64 size; u32 flags; } in the thread's scratch.
      const arg = w.scratch(op.t) + SCRATCH_PER_THREAD - PAGE_SIZE;
      const raw = new Uint8Array(PIN_LONGTERM_TEST_STRUCT_SIZE);
      const dv = new DataView(raw.buffer);
      dv.setBigUint64(0, BigInt(addr), true);
      dv.setBigUint64(8, BigInt(len), true);
      dv.setUint32(16, op.b === 1 ? PIN_LONGTERM_TEST_FLAG_USE_WRITE : 0, true);
      if ((yield* sys.access(arg, raw, 'write')) < 0) {
        out.ret = -EINVAL;
        return;
      }
      out.ret = yield* sys.ioctl(fd, PIN_LONGTERM_TEST_START, arg);
      return;
    }
    case 'pagemap': {
      const fd = yield* sys.open('/proc/self/pagemap', 0);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      const buf = new Uint8Array((op.n ?? 0) * 8);
      out.ret = yield* sys.pread(fd, buf, buf.length, (addr / PAGE_SIZE) * 8);
      yield* sys.close(fd);
      return;
    }
  }
}

/** A GPU operation of slot's process: SVM migration to VRAM, or a GPU read or write (device faults). */
function* gpuOp(w: World, slot: ProcSlot, op: Op, addr: number, len: number, out: OpOutcome): KGen {
  // DRM_NOUVEAU_SVM_INIT and DRM_NOUVEAU_SVM_BIND are ioctls of the calling thread: it is in the
  // kernel meanwhile (its process cannot exit and tear the mm down under the migration).
  const sys = slot.proc.sys;
  const svmm = yield* sys.driverIoctl('DRM_NOUVEAU_SVM_INIT', w.svmm(slot));
  const cmd = GPU_CMDS[op.b ?? 0];
  if (cmd === 'migrate') {
    out.ret = (yield* sys.driverIoctl(
      'DRM_NOUVEAU_SVM_BIND',
      svmmMigrateToVramGen(svmm, addr, addr + len),
    )).ret;
    return;
  }
  if (cmd === 'write') {
    const words = patternWords(op.a ?? 0, addr, op.n ?? 0, w.words(op.p, op.t, op.n ?? 0));
    out.ret = yield* gpuAccessWordsGen(svmm, addr, words, 'write');
    out.writeAddr = addr;
    out.writeWords = out.ret === 0 ? words : words.subarray(0, 0);
    return;
  }
  const words = w.words(op.p, op.t, op.n ?? 0);
  out.ret = yield* gpuAccessWordsGen(svmm, addr, words, 'read');
  if (out.ret === 0) {
    out.readAddr = addr;
    out.readWords = words;
  }
}
