/**
 * The explorer's operation vocabulary as data: the kinds of operation and their fields, what an
 * operation did (for the oracle), the one-line text form that reproducers and `pnpm shell
 * --script` use, and the words a write stores. The kernel paths that perform an operation are in
 * ops.ts.
 */
import {
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
  PAGE_SIZE,
} from '@hmm-model/mm-core';

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

/**
 * GPU commands of a 'gpu' op (field b). `job-write` and `job-read` are a store and a load the
 * engine runs as a job on its own while the process waits for its fence in user space, so the
 * process may exit before they end (nouveau finding 14, fix switch K22).
 */
export const GPU_CMDS = ['read', 'write', 'migrate', 'job-write', 'job-read'] as const;

/** Whether a 'gpu' op's command carries a write seed (field a): write and job-write. */
export function gpuCmdWrites(b: number | undefined): boolean {
  return b === 1 || b === 3;
}

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
      return `${who} gpu ${GPU_CMDS[op.b ?? 0]} ${range}${gpuCmdWrites(op.b) ? ` seed ${op.a}` : ''}`;
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
      return {
        k: 'gpu',
        p,
        t,
        b,
        r: reg(w[3]),
        ...rng(w[4]),
        ...(gpuCmdWrites(b) ? { a: num(w[6], 'seed') } : {}),
      };
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
