import { PAGE_SIZE, PTRS_PER_TABLE } from './constants.js';
import {
  type Core,
  FAULT_FLAG_USER,
  FAULT_FLAG_WRITE,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
} from './core.js';
import { handleMmFault } from './mm/fault.js';
import { faultRanOutOfMemory } from './mm/fault-oom.js';
import { mmapReadLock, mmapReadTrylock, mmapReadUnlock } from './mm/locking.js';
import { pgdIndex, pmdIndex, pteIndex, pudIndex } from './mm/pgtable.js';
import type { MmStruct } from './mm/types.js';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_PSE,
  _PAGE_RW,
  entryPfn,
} from './pgtable/entry.js';
import { BLOCK_PAGES, type Frames } from './phys/frames.js';
import { LivelockFinding } from './sched/findings.js';
import type { KGen, KMaybe } from './sched/task.js';
import { RESCHED } from './sched/task.js';
import { fatalSignalPending } from './signal.js';

/** Result codes of {@link translate} besides a pfn. */
export const XLATE_SEGV = -1;
export const XLATE_BUS = -2;
export const XLATE_OOM = -3;
/**
 * Model-only: the accessing thread's process has exited. A thread of a dead process runs no user
 * code (do_exit() never returns); a model caller that goes on after the syscall that took the
 * fatal signal gets this instead of touching the dying address space.
 */
export const XLATE_DEAD = -4;

const TLB_MASK = 1023;
/** The end of the user half of the x86-64 address space (TASK_SIZE_MAX + the guard page: 2^47). */
const USER_SPACE_END = 2 ** 47;

/** Where the last successful {@link walkPfn} found its leaf (module scratch: no allocation). */
let leafTable = -1;
let leafHuge = false;

/**
 * Models the MMU's page walk (no faulting): the pfn that addr maps to with the needed access,
 * or -1. Fills the software TLB on success. Like x86 hardware, the walk sets the leaf's
 * accessed bit, and its dirty bit for a write (a write through a TLB entry filled from a clean
 * PTE walks again to set it: the TLB caches write permission only for dirty entries). Reclaim
 * relies on this: a writable but clean PTE that is written must end up dirty (try_to_unmap_one()
 * moves pte_dirty() to the folio, so a swap-cache folio is written out again).
 */
export function walkPfn(core: Core, mm: MmStruct, addr: number, write: boolean): number {
  const pgd = mm.pgd;
  if (pgd < 0) return -1;
  const frames = core.frames;
  // Each level: one lookup of the table's backing block, then the entry's two words.
  let b = frames.block32(pgd);
  let o = ((pgd & (BLOCK_PAGES - 1)) << 10) + (pgdIndex(addr) << 1);
  let lo = b[o];
  if (!(lo & _PAGE_PRESENT)) return -1;
  let t = entryPfn(lo, b[o + 1]);
  b = frames.block32(t);
  o = ((t & (BLOCK_PAGES - 1)) << 10) + (pudIndex(addr) << 1);
  lo = b[o];
  if (!(lo & _PAGE_PRESENT)) return -1;
  t = entryPfn(lo, b[o + 1]);
  b = frames.block32(t);
  o = ((t & (BLOCK_PAGES - 1)) << 10) + (pmdIndex(addr) << 1);
  lo = b[o];
  if (!(lo & _PAGE_PRESENT)) return -1;
  let pfn: number;
  if (lo & _PAGE_PSE) {
    if (write && !(lo & _PAGE_RW)) return -1;
    pfn = entryPfn(lo, b[o + 1]) + pteIndex(addr);
    leafHuge = true;
  } else {
    t = entryPfn(lo, b[o + 1]);
    b = frames.block32(t);
    o = ((t & (BLOCK_PAGES - 1)) << 10) + (pteIndex(addr) << 1);
    lo = b[o];
    if (!(lo & _PAGE_PRESENT)) return -1;
    if (write && !(lo & _PAGE_RW)) return -1;
    pfn = entryPfn(lo, b[o + 1]);
    leafHuge = false;
  }
  const ad = _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
  if ((lo & ad) !== ad) {
    lo = (lo | ad) >>> 0;
    b[o] = lo;
  }
  leafTable = t;
  mm.tlb.insert(Math.floor(addr / PAGE_SIZE), pfn, (lo & _PAGE_RW) !== 0 && (lo & _PAGE_DIRTY) !== 0);
  return pfn;
}

/**
 * Models a user access as the CPU performs it: TLB hit, else page walk, else the page-fault
 * handler, retried until the walk succeeds. Returns the pfn, or XLATE_SEGV / XLATE_BUS /
 * XLATE_OOM when the fault cannot be resolved. For synchronous callers (the shell).
 */
export function translate(core: Core, mm: MmStruct, addr: number, write: boolean): number {
  const vpn = Math.floor(addr / PAGE_SIZE);
  const s = vpn & TLB_MASK;
  const tlb = mm.tlb;
  if (tlb.tag[s] === vpn + tlb.epoch && (!write || tlb.writable[s] === 1)) return tlb.pfn[s];
  const pfn = walkPfn(core, mm, addr, write);
  return pfn >= 0 ? pfn : core.sched.runSync(faultInTask(core, mm, addr, write), 'page fault');
}

/** {@link faultIn} as a whole generator (for Scheduler.runSync(): all of it runs in the task). */
function* faultInTask(core: Core, mm: MmStruct, addr: number, write: boolean): KGen<number> {
  const r = faultIn(core, mm, addr, write);
  return typeof r === 'number' ? r : yield* r;
}

/** Bound on fault retries of one access before it is reported as a livelock. */
export const FAULT_RETRY_BOUND = 10_000;

/**
 * The fault half of {@link translate} after a failed walk: the arch page-fault handler
 * (lock_mm_and_find_vma() takes the mmap_lock for read, access_error(), handle_mm_fault()),
 * then the walk again; the CPU re-executes the access until the walk succeeds. A fault that
 * does not sleep runs without a generator (KMaybe: start a returned generator at once).
 */
export function faultIn(core: Core, mm: MmStruct, addr: number, write: boolean): KMaybe<number> {
  for (let tries = 0; ; tries++) {
    faultRetryBound(tries, addr, write);
    // get_mmap_lock_carefully(): mmap_read_trylock() first, the sleeping lock only when it fails.
    if (!mmapReadTrylock(core, mm, 'lock_mm_and_find_vma'))
      return faultInFrom(core, mm, addr, write, tries, TRYLOCK_FAILED);
    const vma = mm.vmaLookup(addr);
    if (!vma) {
      mmapReadUnlock(core, mm, 'do_user_addr_fault');
      return XLATE_SEGV;
    }
    let r: KMaybe<number>;
    const short = core.sched.current.allocShortFailures;
    try {
      r = handleMmFault(core, vma, addr, (write ? FAULT_FLAG_WRITE : 0) | FAULT_FLAG_USER);
    } catch (e) {
      mmapReadUnlock(core, mm, 'do_user_addr_fault');
      throw e;
    }
    // The fault sleeps: the generator goes on with the mmap_lock held.
    if (typeof r !== 'number') return faultInFrom(core, mm, addr, write, tries, r, short);
    mmapReadUnlock(core, mm, 'do_user_addr_fault');
    const pfn = faultDone(core, mm, addr, write, r, short);
    if (pfn !== FAULT_RETRY) return pfn;
    if (core.sched.preempt('user access: fault handled, access retried'))
      return faultInFrom(core, mm, addr, write, tries + 1, RESCHED);
  }
}

/** {@link faultInFrom}'s start: the try's mmap_read_trylock() failed (take the sleeping lock). */
const TRYLOCK_FAILED = 'trylock failed';

/**
 * {@link faultIn} as a generator, from try `from`: `pending` is the fault of that try, which
 * slept (the mmap_lock is held), or TRYLOCK_FAILED, or RESCHED to yield before the try. It
 * keeps its own retry loop rather than handing the next try back to faultIn(): that would nest
 * one generator per try that schedules, up to FAULT_RETRY_BOUND deep in a livelock.
 */
function* faultInFrom(
  core: Core,
  mm: MmStruct,
  addr: number,
  write: boolean,
  from: number,
  pending: KGen<number> | typeof RESCHED | typeof TRYLOCK_FAILED,
  /** The task's allocShortFailures when the pending fault began. */
  pendingShort = 0,
): KGen<number> {
  let fault: KGen<number> | null = null;
  let locked = false;
  if (pending === RESCHED) yield RESCHED;
  else if (pending === TRYLOCK_FAILED) {
    yield* mmapReadLock(core, mm, 'lock_mm_and_find_vma');
    locked = true;
  } else fault = pending;
  let short = pendingShort;
  for (let tries = from; ; tries++) {
    let r: number;
    if (fault !== null) {
      try {
        r = yield* fault;
      } finally {
        mmapReadUnlock(core, mm, 'do_user_addr_fault');
      }
      fault = null;
    } else {
      if (!locked) {
        faultRetryBound(tries, addr, write);
        if (!mmapReadTrylock(core, mm, 'lock_mm_and_find_vma'))
          yield* mmapReadLock(core, mm, 'lock_mm_and_find_vma');
      }
      locked = false;
      const vma = mm.vmaLookup(addr);
      if (!vma) {
        mmapReadUnlock(core, mm, 'do_user_addr_fault');
        return XLATE_SEGV;
      }
      short = core.sched.current.allocShortFailures;
      try {
        const f = handleMmFault(core, vma, addr, (write ? FAULT_FLAG_WRITE : 0) | FAULT_FLAG_USER);
        r = typeof f === 'number' ? f : yield* f;
      } finally {
        mmapReadUnlock(core, mm, 'do_user_addr_fault');
      }
    }
    const pfn = faultDone(core, mm, addr, write, r, short);
    if (pfn !== FAULT_RETRY) return pfn;
    if (core.sched.preempt('user access: fault handled, access retried')) yield RESCHED;
  }
}

/** A try of {@link faultIn} beyond the bound is a livelock finding. */
function faultRetryBound(tries: number, addr: number, write: boolean): void {
  if (tries >= FAULT_RETRY_BOUND)
    throw new LivelockFinding(
      `user ${write ? 'write' : 'read'} at 0x${addr.toString(16)} faulted ${tries} times without progress`,
    );
}

/** What {@link faultDone} returns when the access must be tried again. */
const FAULT_RETRY = -100;

/**
 * The end of one try of {@link faultIn} with handle_mm_fault()'s result r: the pfn, an XLATE_*
 * code, or FAULT_RETRY.
 */
function faultDone(core: Core, mm: MmStruct, addr: number, write: boolean, r: number, short: number): number {
  if (r & VM_FAULT_SIGSEGV) return XLATE_SEGV;
  if (r & VM_FAULT_SIGBUS) return XLATE_BUS;
  // mm_fault_error() -> pagefault_out_of_memory() (mm/oom_kill.c, since v5.16): the #PF kills
  // nothing and the access is retried ("Huh VM_FAULT_OOM leaked out to the #PF handler.
  // Retrying PF"). An allocation that failed for lack of memory has run the allocator's OOM
  // killer first, which the model leaves to the caller (XLATE_OOM) when memory is short. A
  // handler that failed with memory to spare (test_hmm's one-shot HMM_DMIRROR_FLAG_FAIL_ALLOC
  // on a small page, a large folio the allocator could not give) is retried; a pending fatal
  // signal ends the access. A handler that ran out of memory and gave back what it got (a
  // device THP's small-page fallback) has seen an allocation fail for lack of memory: the
  // allocator's reclaim and OOM kill would have run, so that is XLATE_OOM too.
  if (r & VM_FAULT_OOM && (faultRanOutOfMemory(core, short) || fatalSignalPending(core))) return XLATE_OOM;
  const pfn = r & VM_FAULT_OOM ? -1 : walkPfn(core, mm, addr, write);
  return pfn >= 0 ? pfn : FAULT_RETRY;
}

/** Pages of the run found by the last {@link walkRun} (module scratch: no allocation). */
let runPages = 1;

/**
 * The page walk of {@link walkPfn} that also measures how many pages from addr (at most
 * `maxPages`) are mapped to physically contiguous frames with the needed access: the rest of a
 * huge PMD, or following PTEs of the same table whose pfns continue the run. Stores the length
 * in `runPages`. Used by bulk accesses to copy a whole run at once; semantically the same as
 * walking each page (a walk has no side effect but the TLB fill of the first page).
 */
function walkRun(core: Core, mm: MmStruct, addr: number, write: boolean, maxPages: number): number {
  runPages = 1;
  const pfn = walkPfn(core, mm, addr, write);
  if (pfn < 0 || maxPages <= 1) return pfn;
  const i = pteIndex(addr);
  if (leafHuge) {
    runPages = Math.min(maxPages, PTRS_PER_TABLE - i);
    return pfn;
  }
  const b = core.frames.block32(leafTable);
  const base = (leafTable & (BLOCK_PAGES - 1)) << 10;
  const need = _PAGE_PRESENT | (write ? _PAGE_RW : 0);
  const ad = _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
  const last = Math.min(PTRS_PER_TABLE, i + maxPages);
  let n = 1;
  for (let j = i + 1; j < last; j++) {
    const l = b[base + (j << 1)];
    if ((l & need) !== need || entryPfn(l, b[base + (j << 1) + 1]) !== pfn + n) break;
    // The hardware sets accessed (and dirty for a write) on every page the run touches.
    if ((l & ad) !== ad) b[base + (j << 1)] = (l | ad) >>> 0;
    n++;
  }
  runPages = n;
  return pfn;
}

/**
 * What an access moves for one run of pages it reached: `run` pages from `pfn` (within one
 * 2 MiB frames block), `n` bytes of it starting `off` bytes into the first page, which are bytes
 * [done, done + n) of the access.
 */
type MoveRun = (pfn: number, run: number, off: number, done: number, n: number) => void;

/**
 * The walk of every user access ({@link accessBytes}, {@link accessWords}, {@link copyPagesUser}):
 * a TLB hit or one walk per run of physically contiguous pages (a whole THP at once), the fault
 * handler for pages that are not accessible, then `move` per run. Returns 0 or the failing
 * XLATE_* code (the runs before the failing page were moved).
 */
function* accessRuns(
  core: Core,
  mm: MmStruct,
  addr: number,
  len: number,
  write: boolean,
  user: boolean,
  move: MoveRun,
): KGen<number> {
  let done = 0;
  let sinceYield = 0;
  const tlb = mm.tlb;
  if (!Number.isInteger(addr)) return XLATE_SEGV;
  while (done < len) {
    const a = addr + done;
    if (a < 0 || a >= USER_SPACE_END) return XLATE_SEGV;
    const vpn = Math.floor(a / PAGE_SIZE);
    const off = a - vpn * PAGE_SIZE;
    const s = vpn & TLB_MASK;
    let pfn: number;
    let run = 1;
    if (tlb.tag[s] === vpn + tlb.epoch && (!write || tlb.writable[s] === 1)) {
      pfn = tlb.pfn[s];
    } else {
      pfn = walkRun(core, mm, a, write, Math.ceil((off + len - done) / PAGE_SIZE));
      if (pfn >= 0) run = runPages;
      else {
        const f = faultIn(core, mm, a, write);
        pfn = typeof f === 'number' ? f : yield* f;
        if (pfn < 0) return pfn;
      }
    }
    // Frames are backed per 2 MiB block: clamp the run to its block (a THP is exactly one).
    const inBlock = BLOCK_PAGES - (pfn & (BLOCK_PAGES - 1));
    if (run > inBlock) run = inBlock;
    const n = Math.min(run * PAGE_SIZE - off, len - done);
    move(pfn, run, off, done, n);
    done += n;
    // Another CPU can act during a long copy: a preemption point every 2 MiB copied.
    sinceYield += n;
    if (sinceYield >= BLOCK_PAGES * PAGE_SIZE && done < len) {
      sinceYield = 0;
      if (core.sched.preempt('user access: 2 MiB copied')) yield RESCHED;
      // The CPU takes a pending fatal signal at the next interrupt: the access stops here and
      // the process exits on its way back to user space (the bytes so far are written).
      if (user && fatalSignalPending(core)) return 0;
    }
  }
  return 0;
}

/**
 * Models copy_from_user()/copy_to_user() and the CPU's bulk loads/stores: a TLB hit or one walk
 * per run of physically contiguous pages (a whole THP at once), the fault handler for pages
 * that are not accessible, then a block copy per run. `dir` 'read' copies simulated memory
 * into buf, 'write' copies buf in. Returns 0 or the failing XLATE_* code (bytes before the
 * failing page were transferred). An address outside the user half of the address space (or a
 * value that is no address) faults like an unmapped one (x86's access_ok()/#GP): XLATE_SEGV.
 */
export function accessBytes(
  core: Core,
  mm: MmStruct,
  addr: number,
  buf: Uint8Array,
  dir: 'read' | 'write',
  /** A user access (the CPU's loads/stores), not copy_{to,from}_user(): it stops for a fatal signal. */
  user = false,
): KGen<number> {
  const frames = core.frames;
  const write = dir === 'write';
  const len = buf.length;
  return accessRuns(core, mm, addr, len, write, user, (pfn, run, off, done, n) => {
    const boff = (pfn & (BLOCK_PAGES - 1)) * PAGE_SIZE + off;
    if (write) frames.writeBlock(pfn, run).set(n === len ? buf : buf.subarray(done, done + n), boff);
    else buf.set(frames.readBlock(pfn, run).subarray(boff, boff + n), done);
  });
}

/**
 * Model-only: the CPU's loads or stores of every 32-bit word of whole pages, each page one word
 * repeated (a user loop such as `for (i...) p[i] = w`): the walk, faults, accessed and dirty
 * bits of {@link accessBytes} over [addr, addr + words.length pages), with no bytes moved. A
 * store makes page k words[k] repeated ({@link Frames.fillWords}); a load sets words[k] to the
 * word page k repeats, or -1 when its words differ ({@link Frames.uniformWord}). addr must be
 * page aligned (else XLATE_SEGV, as a program that asks for it is wrong).
 */
export function* accessWords(
  core: Core,
  mm: MmStruct,
  addr: number,
  words: Float64Array,
  dir: 'read' | 'write',
  /** A user access (the CPU's loads/stores): it stops for a fatal signal, as in {@link accessBytes}. */
  user = true,
): KGen<number> {
  const frames = core.frames;
  const write = dir === 'write';
  if (addr % PAGE_SIZE !== 0) return XLATE_SEGV;
  return yield* accessRuns(
    core,
    mm,
    addr,
    words.length * PAGE_SIZE,
    write,
    user,
    (pfn, _run, _off, done, n) => {
      const first = done / PAGE_SIZE;
      const nr = n / PAGE_SIZE;
      if (write) frames.fillWords(pfn, nr, words, first);
      else for (let j = 0; j < nr; j++) words[first + j] = frames.uniformWord(pfn + j);
    },
  );
}

/**
 * Models copy_to_user() ('write') or copy_from_user() ('read') of whole pages between user
 * memory at page-aligned addr and pages [first, first + npages) of another page store (a
 * driver's bounce buffer, VRAM): {@link Frames.copy} per run, so a page known to be one word
 * repeated moves as that word. An unaligned addr falls back to a byte copy through a buffer.
 */
export function* copyPagesUser(
  core: Core,
  mm: MmStruct,
  addr: number,
  store: Frames,
  first: number,
  npages: number,
  dir: 'read' | 'write',
): KGen<number> {
  const frames = core.frames;
  const write = dir === 'write';
  if (addr % PAGE_SIZE !== 0) {
    const buf = new Uint8Array(npages * PAGE_SIZE);
    if (write) store.readBytes(first * PAGE_SIZE, buf);
    const r = yield* accessBytes(core, mm, addr, buf, dir);
    if (!write && r === 0) store.writeBytes(first * PAGE_SIZE, buf);
    return r;
  }
  return yield* accessRuns(core, mm, addr, npages * PAGE_SIZE, write, false, (pfn, _run, _off, done, n) => {
    const at = first + done / PAGE_SIZE;
    const nr = n / PAGE_SIZE;
    if (write) frames.copy(pfn, at, nr, store);
    else store.copy(at, pfn, nr, frames);
  });
}
