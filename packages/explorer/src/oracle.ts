/**
 * The explorer's oracle: per process, a flat map from virtual page to what it holds (bytes, zero,
 * or unknown) and its protection, knowing nothing of folios, page tables or devices. Operations
 * take effect when they complete, in completion order. Two operations that overlap in time and
 * conflict on the same pages (a store and a load, a store and an unmap, two stores) make the
 * overlap uncertain: a load there is not checked, and a page left uncertain becomes "unknown"
 * until the next checked load fixes it. Migrations, lazy frees, cold/pageout, collapse and
 * evictions must preserve data exactly: loads concurrent with them are always checked. A lazy free
 * (MADV_FREE) lets reclaim drop a page until the CPU writes it again: such a page reads its
 * contents or zeros. It also drops a swapped-out page at once (its swap entry is freed), so a
 * load concurrent with it may read zeros too.
 */
import {
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_KEEPONFORK,
  MADV_WIPEONFORK,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { DM_CMDS, GPU_CMDS, type Op, type OpOutcome } from './op.js';
import { NREGIONS, regionAddr } from './world.js';

/** First vpn the oracle tracks (region 0, page 0). */
const BASE_VPN = regionAddr(0, 0) / PAGE_SIZE;
/** Pages the oracle tracks per process (every region's window). */
const SPAN = (regionAddr(NREGIONS, 0) - regionAddr(0, 0)) / PAGE_SIZE;

const MAPPED = 1;
const UNKNOWN = 2;
/** Whether the page is mapped at all is not known (two mapping changes raced on it). */
const MAYBE = 4;
/**
 * MADV_FREE'd (lazy free) and not written by the CPU since: reclaim may discard it at any time
 * (shrink_folio_list()'s lazy-free path), so a load reads its word or zeros.
 */
const LAZY = 8;
/** The operations that change what is mapped (or its protection). */
const MAPPING_OPS = new Set(['mmap', 'munmap', 'mremap', 'mprotect']);

/** Bytes per page of a {@link Mem}: lazyAt (8), word (4), lazyWas (4), state, prot, flags (1 each). */
const MEM_BYTES_PER_PAGE = 19;

/**
 * Buffers of memories no record refers to any more, for the next fork's copy (a fresh 467 KiB
 * host allocation per fork cost more than the copy). Shared by consecutive runs, at most
 * MEM_POOL_KEPT.
 */
const memPool: ArrayBuffer[] = [];
const MEM_POOL_KEPT = 16;

/** Per-page VMA flags that fork() obeys: MADV_DONTFORK (VM_DONTCOPY). */
const F_DONTFORK = 1;
/** MADV_WIPEONFORK (VM_WIPEONFORK): the child gets zeros. */
const F_WIPE = 2;
/** Whether those flags are set is not known (a flag advice raced a mapping change). */
const F_UNKNOWN = 4;

/** The advices that change what fork() does with a page (VM_DONTCOPY, VM_WIPEONFORK). */
const FORK_ADVICE = new Set([MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK]);

/** A madvise op whose advice fork() obeys. */
function forkAdvice(op: Op): boolean {
  return op.k === 'madvise' && FORK_ADVICE.has(op.a ?? -1);
}

const NO_RANGES: [number, number][] = [];

/** Whether v lies in one of the [first, end) ranges. */
function inRanges(ranges: readonly [number, number][], v: number): boolean {
  for (const [s, e] of ranges) if (v >= s && v < e) return true;
  return false;
}

/** A madvise op that frees lazily (MADV_FREE). */
function lazyAdvice(op: Op): boolean {
  return op.k === 'madvise' && op.a === MADV_FREE;
}

/** A madvise op that zaps (the page reads zeros afterwards). */
function zapAdvice(op: Op): boolean {
  return op.k === 'madvise' && (op.a === MADV_DONTNEED || op.a === MADV_DONTNEED_LOCKED);
}

/**
 * One process's memory as the oracle sees it, one entry per page of the fuzzed windows: whether
 * it is mapped, whether its contents are known, its protection, and its contents (one 32-bit word
 * repeated, {@link patternWord}; 0 = a zero page).
 */
class Mem {
  /** One host allocation holds every per-page array (a fork copies it at once). */
  readonly buf: ArrayBuffer;
  readonly lazyAt: Float64Array;
  readonly word: Uint32Array;
  /**
   * A lazy-free page a load found discarded: its contents before (lazyWas) and the tick when the
   * oracle learnt it (lazyAt, 0: never). A load that began earlier may have read the old contents
   * before reclaim dropped the page.
   */
  readonly lazyWas: Uint32Array;
  readonly state: Uint8Array;
  readonly prot: Uint8Array;
  /** F_DONTFORK, F_WIPE, F_UNKNOWN per page. */
  readonly flags: Uint8Array;

  /** A zeroed memory, or one on `buf` as it is. */
  constructor(buf: ArrayBuffer = new ArrayBuffer(SPAN * MEM_BYTES_PER_PAGE)) {
    this.buf = buf;
    this.lazyAt = new Float64Array(buf, 0, SPAN);
    this.word = new Uint32Array(buf, SPAN * 8, SPAN);
    this.lazyWas = new Uint32Array(buf, SPAN * 12, SPAN);
    this.state = new Uint8Array(buf, SPAN * 16, SPAN);
    this.prot = new Uint8Array(buf, SPAN * 17, SPAN);
    this.flags = new Uint8Array(buf, SPAN * 18, SPAN);
  }

  clone(): Mem {
    const reused = memPool.pop();
    if (!reused) return new Mem(this.buf.slice(0));
    new Uint8Array(reused).set(new Uint8Array(this.buf));
    return new Mem(reused);
  }

  /**
   * The child's memory after fork() (dup_mmap()): VM_DONTCOPY pages are not mapped in it,
   * VM_WIPEONFORK pages read zeros (the flag stays), pages whose flags are unknown may be either.
   */
  forkChild(): Mem {
    const c = this.clone();
    for (let i = 0; i < SPAN; i++) {
      const f = c.flags[i];
      if (!f || !(c.state[i] & MAPPED)) continue;
      if (f & F_UNKNOWN) c.setMaybe(BASE_VPN + i);
      else if (f & F_DONTFORK) {
        c.state[i] = 0;
        c.flags[i] = 0;
      } else if (f & F_WIPE) {
        c.word[i] = 0;
        c.state[i] &= ~(UNKNOWN | LAZY);
      }
    }
    return c;
  }

  mapped(v: number): boolean {
    const i = v - BASE_VPN;
    return i >= 0 && i < SPAN && (this.state[i] & MAPPED) !== 0;
  }

  maybe(v: number): boolean {
    const i = v - BASE_VPN;
    return i >= 0 && i < SPAN && (this.state[i] & MAYBE) !== 0;
  }

  /** Page v may or may not be mapped, with unknown contents, protection and flags. */
  setMaybe(v: number): void {
    const i = v - BASE_VPN;
    if (i < 0 || i >= SPAN) return;
    this.state[i] = MAPPED | UNKNOWN | MAYBE;
    this.word[i] = 0;
    this.flags[i] = F_UNKNOWN;
  }
}

type Role = 'reader' | 'writer' | 'remapper' | 'preserver' | 'global' | 'fork' | 'none';

/** The pages an operation touches and how. */
interface Footprint {
  readonly slot: number;
  readonly role: Role;
  /** [firstVpn, endVpn) ranges. */
  readonly ranges: readonly [number, number][];
}

/** An operation in flight or recently completed. */
interface Rec {
  readonly op: Op;
  readonly fp: Footprint;
  /**
   * The memory of the process the operation acts on, as it was when the operation began: a slot
   * can be reused by a new process (fork after exit) while an operation of the old one runs.
   */
  readonly mem: Mem | null;
  readonly start: number;
  end: number;
  out: OpOutcome | null;
}

function vpnRange(r: number, off: number, n: number): [number, number] {
  const a = regionAddr(r, off) / PAGE_SIZE;
  return [a, a + n];
}

function footprint(op: Op): Footprint {
  const range = (): [number, number][] => [vpnRange(op.r ?? 0, op.off ?? 0, op.n ?? 0)];
  switch (op.k) {
    case 'read':
      return { slot: op.p, role: 'reader', ranges: range() };
    case 'write':
      return { slot: op.p, role: 'writer', ranges: range() };
    case 'mmap':
      return { slot: op.p, role: 'remapper', ranges: [vpnRange(op.r ?? 0, 0, op.n ?? 0)] };
    case 'munmap':
    case 'mprotect':
      return { slot: op.p, role: 'remapper', ranges: range() };
    case 'mremap':
      return {
        slot: op.p,
        role: 'remapper',
        ranges: [vpnRange(op.r ?? 0, op.off ?? 0, op.n ?? 0), vpnRange(op.r2 ?? 0, op.off2 ?? 0, op.n ?? 0)],
      };
    case 'madvise':
      return { slot: op.p, role: zapAdvice(op) ? 'remapper' : 'preserver', ranges: range() };
    case 'fork':
      return { slot: op.p, role: 'fork', ranges: [] };
    case 'exit':
      return { slot: op.p, role: 'global', ranges: [] };
    case 'kill':
    case 'oom':
      return { slot: op.a ?? -1, role: 'global', ranges: [] };
    case 'dm': {
      const cmd = DM_CMDS[op.b ?? 0];
      const role: Role = cmd === 'read' ? 'reader' : cmd === 'write' ? 'writer' : 'preserver';
      return { slot: op.p, role, ranges: range() };
    }
    case 'gpu': {
      const cmd = GPU_CMDS[op.b ?? 0];
      const role: Role =
        cmd === 'read' || cmd === 'job-read'
          ? 'reader'
          : cmd === 'write' || cmd === 'job-write'
            ? 'writer'
            : 'preserver';
      return { slot: op.p, role, ranges: range() };
    }
    case 'split':
      // A debugfs split remaps the THPs of the range by smaller folios: the data stays.
      return { slot: op.p, role: 'preserver', ranges: range() };
    case 'pin':
      // A long-term pin faults the pages in (breaking COW for a write pin, migrating device pages
      // back to RAM): the data stays. An unpin touches no page of the process.
      return op.b === 2
        ? { slot: op.p, role: 'none', ranges: [] }
        : { slot: op.p, role: 'preserver', ranges: range() };
    default:
      return { slot: op.p, role: 'none', ranges: [] };
  }
}

function overlap(a: readonly [number, number][], b: readonly [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [s1, e1] of a)
    for (const [s2, e2] of b) {
      const s = Math.max(s1, s2);
      const e = Math.min(e1, e2);
      if (s < e) out.push([s, e]);
    }
  return out;
}

function readable(prot: number): boolean {
  return (prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0;
}

/** Model-only: the oracle of one explorer run. */
export class Oracle {
  private readonly mems: (Mem | null)[];
  private readonly inflight = new Set<Rec>();
  /** Memories of dead processes that records may still refer to (pooled once none does). */
  private readonly dropped: Mem[] = [];
  private history: Rec[] = [];
  private tick = 0;
  /** Loads compared byte for byte with the oracle. */
  checkedPages = 0;
  /**
   * Whether a device write dirties the page it writes, per driver: on v6.19 neither dmirror's
   * WRITE nor a GPU store does (a written lazy-free page may still be discarded), with the fix
   * switches K11 (dmirror) and K12 (nouveau) both do.
   */
  private readonly deviceWritesDirty: { readonly dm: boolean; readonly gpu: boolean };

  constructor(slots: number, deviceWritesDirty: { dm: boolean; gpu: boolean } = { dm: false, gpu: false }) {
    this.mems = new Array(slots).fill(null);
    const reused = memPool.pop();
    if (reused) new Uint8Array(reused).fill(0);
    this.mems[0] = new Mem(reused);
    this.deviceWritesDirty = deviceWritesDirty;
  }

  /** The run is over: every memory's buffer goes to the pool (nothing may use this oracle afterwards). */
  dispose(): void {
    for (const mem of [...this.mems, ...this.dropped])
      if (mem && memPool.length < MEM_POOL_KEPT && !memPool.includes(mem.buf)) memPool.push(mem.buf);
    this.mems.fill(null);
    this.dropped.length = 0;
  }

  /** Whether the oracle says [first, end) of slot s is fully mapped with an accessible protection. */
  accessible(s: number, firstVpn: number, endVpn: number, write: boolean): boolean {
    const mem = this.mems[s];
    if (!mem) return false;
    if (firstVpn < BASE_VPN || endVpn > BASE_VPN + SPAN) return false;
    for (let i = firstVpn - BASE_VPN; i < endVpn - BASE_VPN; i++) {
      if (!(mem.state[i] & MAPPED) || mem.state[i] & MAYBE) return false;
      if (write ? !(mem.prot[i] & PROT_WRITE) : !readable(mem.prot[i])) return false;
    }
    return true;
  }

  /** An operation starts. Returns its record (pass it to {@link end}). */
  begin(op: Op): Rec {
    const fp = footprint(op);
    const mem = fp.slot >= 0 ? (this.mems[fp.slot] ?? null) : null;
    const rec: Rec = { op, fp, mem, start: this.tick++, end: Infinity, out: null };
    this.inflight.add(rec);
    return rec;
  }

  /** The operations that overlapped `rec` in time (in flight now, or completed after it began). */
  private concurrent(rec: Rec): Rec[] {
    const out: Rec[] = [];
    for (const r of this.inflight) if (r !== rec) out.push(r);
    for (const r of this.history) if (r.end > rec.start) out.push(r);
    return out;
  }

  /**
   * An operation completed: check what it read, apply what it did, mark uncertain pages.
   * Returns a divergence message, or null.
   */
  end(rec: Rec, out: OpOutcome, alive: (slot: number) => boolean): string | null {
    this.inflight.delete(rec);
    rec.end = this.tick++;
    rec.out = out;
    const conc = this.concurrent(rec);
    let bad: string | null = null;
    if (!out.skipped) {
      bad = this.check(rec, out, conc);
      this.apply(rec, out);
      this.markUncertain(rec, conc);
    }
    for (let s = 0; s < this.mems.length; s++) {
      const mem = this.mems[s];
      if (mem && !alive(s)) {
        this.mems[s] = null;
        this.dropped.push(mem);
      }
    }
    this.history.push(rec);
    if (this.inflight.size === 0) {
      this.history = [];
      // No record refers to a dropped memory any more (rec.mem): its buffer can be reused.
      for (const mem of this.dropped) if (memPool.length < MEM_POOL_KEPT) memPool.push(mem.buf);
      this.dropped.length = 0;
    } else {
      let min = Infinity;
      for (const r of this.inflight) min = Math.min(min, r.start);
      this.history = this.history.filter((r) => r.end > min);
    }
    return bad;
  }

  private conflicts(rec: Rec, conc: readonly Rec[], roles: readonly Role[]): [number, number][] {
    const out: [number, number][] = [];
    for (const c of conc) {
      if (c.fp.role === 'global' && c.mem === rec.mem) return rec.fp.ranges.slice();
      if (c.mem !== rec.mem || !roles.includes(c.fp.role)) continue;
      out.push(...overlap(rec.fp.ranges, c.fp.ranges));
    }
    return out;
  }

  /** The ranges of rec's pages that a concurrent MADV_FREE of the same process covers. */
  private lazyFrees(rec: Rec, conc: readonly Rec[]): [number, number][] {
    let out: [number, number][] | null = null;
    for (const c of conc)
      if (c.mem === rec.mem && lazyAdvice(c.op)) (out ??= []).push(...overlap(rec.fp.ranges, c.fp.ranges));
    return out ?? NO_RANGES;
  }

  private check(rec: Rec, out: OpOutcome, conc: readonly Rec[]): string | null {
    const op = rec.op;
    const mem = rec.mem;
    if (!mem) return null;
    const uncertain = this.conflicts(rec, conc, ['writer', 'remapper']);
    // Pages a concurrent MADV_FREE covers: madvise_free_pte_range() frees a swapped-out page's
    // swap entry (free_swap_and_cache_nr(), then the PTE is cleared), so a load that faults it
    // in after that reads a fresh zero page, before the advice completes and marks the range lazy.
    const freeing = this.lazyFrees(rec, conc);
    // Running out of memory is the machine's limit, not a divergence (the OOM killer's SIGKILL).
    if (out.oom) return null;
    if ((op.k === 'read' || op.k === 'write') && out.signal) {
      const [s, e] = rec.fp.ranges[0];
      for (let v = s; v < e; v++) if (inRanges(uncertain, v)) return null;
      if (this.accessible(op.p, s, e, op.k === 'write'))
        return `${op.k} of p${op.p} at 0x${(s * PAGE_SIZE).toString(16)}: signal ${out.signal}, but the oracle says every page is mapped and accessible`;
      return null;
    }
    const got = out.readWords;
    if (!got) return null;
    const first = out.readAddr / PAGE_SIZE;
    const n = got.length;
    for (let k = 0; k < n; k++) {
      const v = first + k;
      if (uncertain.length && inRanges(uncertain, v)) continue;
      if (mem.maybe(v)) continue;
      if (!mem.mapped(v)) {
        if (op.k === 'read')
          return `read of p${op.p} at 0x${(v * PAGE_SIZE).toString(16)} succeeded, but the oracle has nothing mapped there`;
        continue;
      }
      const i = v - BASE_VPN;
      const g = got[k];
      if (mem.state[i] & UNKNOWN) {
        // A checked load fixes an unknown page (pages are always one word repeated).
        if (g >= 0) {
          mem.word[i] = g;
          mem.state[i] &= ~UNKNOWN;
        }
        continue;
      }
      this.checkedPages++;
      const differs = g !== mem.word[i];
      if (differs && (mem.state[i] & LAZY || inRanges(freeing, v)) && g === 0) {
        // Reclaim discarded the lazy-free page: a fresh zero page is mapped now. A load that
        // began before this one ended may still have read the old contents (lazyWas).
        mem.lazyWas[i] = mem.word[i];
        mem.lazyAt[i] = this.tick;
        mem.word[i] = 0;
        mem.state[i] &= ~LAZY;
        continue;
      }
      if (differs && mem.word[i] === 0 && rec.start < mem.lazyAt[i] && g === mem.lazyWas[i]) continue;
      if (differs)
        return (
          `${op.k === 'read' ? 'CPU read' : op.k === 'dm' ? 'dmirror READ' : 'GPU read'} of p${op.p} at ` +
          `0x${(v * PAGE_SIZE).toString(16)}: read ${g < 0 ? 'a page whose words differ' : `0x${g.toString(16)}`}, the oracle says 0x${mem.word[i].toString(16)}`
        );
    }
    return null;
  }

  private apply(rec: Rec, out: OpOutcome): void {
    const op = rec.op;
    const mem = rec.mem;
    if (op.k === 'fork') {
      if (out.child >= 0 && mem) this.mems[out.child] = mem.forkChild();
      return;
    }
    if (!mem) return;
    const [s, e] = rec.fp.ranges[0] ?? [0, 0];
    const a = s - BASE_VPN;
    const b = e - BASE_VPN;
    switch (op.k) {
      case 'mmap':
        if (out.ret === regionAddr(op.r ?? 0, 0)) {
          mem.state.fill(MAPPED, a, b);
          mem.prot.fill(op.a ?? 0, a, b);
          mem.word.fill(0, a, b);
          mem.flags.fill(0, a, b);
        }
        return;
      case 'munmap':
        if (out.ret === 0) {
          mem.state.fill(0, a, b);
          mem.flags.fill(0, a, b);
        }
        return;
      case 'mprotect':
        // Applied VMA by VMA up to the first hole (then -ENOMEM); other errors change nothing.
        if (out.ret !== 0 && out.ret !== -12) return;
        for (let i = a; i < b; i++) {
          // Past a page whose mapping is uncertain, the kernel may have stopped at a hole.
          if (mem.state[i] & MAYBE) {
            for (let j = i; j < b; j++) if (mem.state[j] & MAPPED) mem.setMaybe(BASE_VPN + j);
            break;
          }
          if (!(mem.state[i] & MAPPED)) break;
          mem.prot[i] = op.a ?? 0;
        }
        return;
      case 'madvise':
        if (zapAdvice(op) && (out.ret === 0 || out.ret === -12))
          for (let i = a; i < b; i++) {
            if (!(mem.state[i] & MAPPED)) continue;
            mem.word[i] = 0;
            mem.state[i] &= ~(UNKNOWN | LAZY);
          }
        // madvise_free_pte_range(): whatever part of the range was advised may be dropped by
        // reclaim (marking every mapped page only weakens the checks).
        if (lazyAdvice(op)) for (let i = a; i < b; i++) if (mem.state[i] & MAPPED) mem.state[i] |= LAZY;
        if (forkAdvice(op))
          // madvise_walk_vmas(): every VMA of the range is advised, holes only make it -ENOMEM.
          for (let i = a; i < b; i++) {
            if (!(mem.state[i] & MAPPED)) continue;
            if (mem.state[i] & MAYBE || (out.ret !== 0 && out.ret !== -12)) mem.flags[i] = F_UNKNOWN;
            else if (op.a === MADV_DONTFORK) mem.flags[i] |= F_DONTFORK;
            else if (op.a === MADV_DOFORK) mem.flags[i] &= ~F_DONTFORK;
            else if (op.a === MADV_WIPEONFORK) mem.flags[i] |= F_WIPE;
            else mem.flags[i] &= ~F_WIPE;
          }
        return;
      case 'mremap': {
        const d = rec.fp.ranges[1][0] - BASE_VPN;
        if (out.ret === -12) {
          // -ENOMEM comes after mremap_to() unmapped the destination of the piece it was moving
          // (and remap_move() may have moved the pieces before it): a memory that ran out in the
          // move (page tables) leaves both ranges uncertain.
          for (let k = 0; k < b - a; k++) {
            if (mem.state[a + k] & MAPPED) {
              mem.setMaybe(BASE_VPN + a + k);
              mem.setMaybe(BASE_VPN + d + k);
            } else if (mem.state[d + k] & MAPPED) mem.setMaybe(BASE_VPN + d + k);
          }
          return;
        }
        if (out.ret !== regionAddr(op.r2 ?? 0, op.off2 ?? 0)) return;
        const st = mem.state.slice(a, b);
        const pr = mem.prot.slice(a, b);
        const wd = mem.word.slice(a, b);
        const fl = mem.flags.slice(a, b);
        if (op.b) {
          // MREMAP_DONTUNMAP: the old range stays mapped, empty.
          for (let i = a; i < b; i++) {
            if (!(mem.state[i] & MAPPED)) continue;
            mem.word[i] = 0;
            mem.state[i] = mem.state[i] & MAYBE ? MAPPED | UNKNOWN | MAYBE : MAPPED;
          }
        } else {
          mem.state.fill(0, a, b);
          mem.flags.fill(0, a, b);
        }
        // remap_move() (v6.17+): each VMA of the source range moves on its own; a gap between
        // them is kept, so the destination pages facing a source hole keep whatever was there.
        for (let k = 0; k < st.length; k++) {
          if (!(st[k] & MAPPED)) continue;
          mem.state[d + k] = st[k];
          mem.prot[d + k] = pr[k];
          mem.word[d + k] = wd[k];
          mem.flags[d + k] = fl[k];
        }
        return;
      }
      case 'write':
      case 'dm':
      case 'gpu':
        // A CPU store stopped by a SIGSEGV its program caught: the pages before the faulting one
        // were written, the rest were not (the oracle does not learn which page faulted).
        if (op.k === 'write' && out.handled) for (let v = s; v < e; v++) this.forget(mem, v);
        if (out.writeWords) {
          const first = out.writeAddr / PAGE_SIZE - BASE_VPN;
          const words = out.writeWords;
          const full = words.length;
          const dirties =
            op.k === 'write' ||
            (op.k === 'dm' && this.deviceWritesDirty.dm) ||
            (op.k === 'gpu' && this.deviceWritesDirty.gpu);
          for (let k = 0; k < full; k++) {
            const i = first + k;
            if (!(mem.state[i] & MAPPED)) continue;
            mem.word[i] = words[k];
            // A CPU store dirties the PTE, so reclaim keeps the page; a device write through
            // the kernel mapping does not (the page stays lazy-free) unless the driver dirties
            // the folio (K11, K12).
            mem.state[i] &= dirties ? ~(UNKNOWN | LAZY) : ~UNKNOWN;
          }
          // A device write that failed part way: what it stored is not known.
          if (out.ret !== 0) for (let v = s; v < e; v++) this.forget(mem, v);
        }
        return;
    }
  }

  private forget(mem: Mem, v: number): void {
    const i = v - BASE_VPN;
    if (i < 0 || i >= SPAN || !(mem.state[i] & MAPPED)) return;
    mem.state[i] |= UNKNOWN;
    mem.word[i] = 0;
  }

  private markUncertain(rec: Rec, conc: readonly Rec[]): void {
    const role = rec.fp.role;
    for (const c of conc) {
      const pair = new Set([role, c.fp.role]);
      if (role === 'fork' || c.fp.role === 'fork') {
        // A store, an unmap or a fork advice racing with fork(): the child's copy of those pages
        // is uncertain.
        const f = role === 'fork' ? rec : c;
        const o = role === 'fork' ? c : rec;
        if (o.mem !== f.mem) continue;
        if (forkAdvice(o.op)) {
          const child = (f.out ?? rec.out)?.child ?? -1;
          const cm = child >= 0 ? this.mems[child] : null;
          if (cm) for (const [s, e] of o.fp.ranges) for (let v = s; v < e; v++) cm.setMaybe(v);
          continue;
        }
        if (lazyAdvice(o.op)) {
          // MADV_FREE before the fork may be recorded after it: the child shares lazy pages.
          const child = (f.out ?? rec.out)?.child ?? -1;
          const cm = child >= 0 ? this.mems[child] : null;
          if (cm)
            for (const [s, e] of o.fp.ranges)
              for (let v = s; v < e; v++) {
                const i = v - BASE_VPN;
                if (i >= 0 && i < SPAN && cm.state[i] & MAPPED) cm.state[i] |= LAZY;
              }
          continue;
        }
        if (o.fp.role !== 'writer' && o.fp.role !== 'remapper') continue;
        const child = (f.out ?? rec.out)?.child ?? -1;
        const cm = child >= 0 ? this.mems[child] : null;
        if (!cm) continue;
        const remaps = MAPPING_OPS.has(o.op.k);
        for (const [s, e] of o.fp.ranges)
          for (let v = s; v < e; v++) {
            if (remaps) cm.setMaybe(v);
            else this.forget(cm, v);
          }
        continue;
      }
      if (c.mem !== rec.mem || !rec.mem) continue;
      // A store racing MADV_FREE may land before the advice cleans the PTE: still lazy.
      if ((lazyAdvice(rec.op) && c.fp.role === 'writer') || (lazyAdvice(c.op) && role === 'writer')) {
        const mem = rec.mem;
        for (const [s, e] of overlap(rec.fp.ranges, c.fp.ranges))
          for (let v = s; v < e; v++) {
            const i = v - BASE_VPN;
            if (i >= 0 && i < SPAN && mem.state[i] & MAPPED) mem.state[i] |= LAZY;
          }
        continue;
      }
      // A fork advice racing a mapping change: whether the pages (or their moved copy) got the
      // flag depends on which took the mmap_lock first.
      if (
        (forkAdvice(rec.op) && MAPPING_OPS.has(c.op.k)) ||
        (forkAdvice(c.op) && MAPPING_OPS.has(rec.op.k))
      ) {
        const adv = forkAdvice(rec.op) ? rec : c;
        const map = adv === rec ? c : rec;
        const mem = rec.mem;
        if (overlap(adv.fp.ranges, map.fp.ranges).length)
          for (const r of [adv, map])
            for (const [s, e] of r.fp.ranges)
              for (let v = s; v < e; v++) {
                const i = v - BASE_VPN;
                if (i >= 0 && i < SPAN && mem.state[i] & MAPPED) mem.flags[i] |= F_UNKNOWN;
              }
        continue;
      }
      // Two mapping changes racing on the same pages: which one the oracle applied last may not
      // be the order they took the mmap_lock in, so whether those pages are mapped is unknown.
      if (
        MAPPING_OPS.has(rec.op.k) &&
        MAPPING_OPS.has(c.op.k) &&
        overlap(rec.fp.ranges, c.fp.ranges).length
      ) {
        const mem = rec.mem;
        if (mem)
          for (const r of [rec, c])
            for (const [s, e] of r.fp.ranges) for (let v = s; v < e; v++) mem.setMaybe(v);
        continue;
      }
      const conflicting = pair.has('writer') && (pair.size === 1 || pair.has('remapper'));
      if (!conflicting) continue;
      const mem = rec.mem;
      if (!mem) continue;
      for (const [s, e] of overlap(rec.fp.ranges, c.fp.ranges))
        for (let v = s; v < e; v++) this.forget(mem, v);
      // A store racing with mremap() may land before the move: the moved copy is uncertain too.
      const w = rec.fp.role === 'writer' ? rec : c;
      const m = rec.fp.role === 'writer' ? c : rec;
      if (m.op.k === 'mremap' && m.fp.ranges.length === 2) {
        const [src, dst] = m.fp.ranges;
        for (const [s, e] of overlap(w.fp.ranges, [src]))
          for (let v = s; v < e; v++) this.forget(mem, dst[0] + (v - src[0]));
      }
    }
  }

  /** Mapped pages of slot s with known contents, for a final verification read. */
  knownPages(s: number): number[] {
    const mem = this.mems[s];
    if (!mem) return [];
    const out: number[] = [];
    for (let i = 0; i < SPAN; i++)
      if (mem.state[i] === MAPPED && readable(mem.prot[i])) out.push(BASE_VPN + i);
    return out;
  }

  /** The word the oracle expects to fill page vpn of slot s (0: a zero page). */
  expected(s: number, vpn: number): number {
    return this.mems[s]?.word[vpn - BASE_VPN] ?? 0;
  }
}
