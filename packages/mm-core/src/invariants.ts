/**
 * The system-memory half of the model's invariant checker (DESIGN.md "Correctness machinery",
 * kernel-mechanics.md §9). It recomputes, from the page tables of every live process, the page
 * cache and registered reference holders, what the memmap must say, and compares:
 *
 * - per folio: refcount, per-page mapcount, entire and large mapcount (present PTEs, huge
 *   PMDs, device-private and device-exclusive entries are mappings; migration entries are not;
 *   each page-cache slot holds one reference; the zero pages are not refcounted; hugetlb pool
 *   pages are free with refcount 0), AnonExclusive consistency and rmap reachability
 *   (folio->mapping / index agree with the VMA that maps it);
 * - per mm: rss counters, pgtables_bytes (reachable tables + deposits), one deposit per huge
 *   PMD, VMA tree shape, no stale software-TLB entry;
 * - globally: every PG_table page reachable exactly once, free buddy blocks disjoint from live
 *   folios and summing to nr_free, no leaked folio, no migration entry or locked folio outside
 *   an in-flight migration (Core.migrationsInFlight), vmstat gauges;
 * - swap: every swap PTE names a slot of a swap area in a VMA with an anon_vma, each slot's swap
 *   count equals the swap PTEs naming it (MM_SWAPENTS per mm counts them), every slot in use has
 *   a count or a swap-cache folio (no leaked slot), the swap cache and the folios' PG_swapcache /
 *   page private agree both ways (each cached page holds one folio reference), and inuse_pages
 *   and nr_swapcached match.
 *
 * Other layers extend it: device-side checkers are pushed onto `kernel.checkers` like this
 * one, and code that keeps references across syscalls (drivers, GUP users) reports them with
 * {@link registerRefHolder} so they are not mistaken for leaks.
 */
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, MAX_PAGE_ORDER, PAGE_SIZE, PMD_SIZE, PUD_SIZE } from './constants.js';
import type { Core } from './core.js';
import { dumpFolio } from './folio.js';
import { MmWalkCheck } from './invariants-mm.js';
import { checkSwapcacheFolio, checkSwapSlots } from './invariants-swap.js';
import { PGDIR_SIZE, walkPageTables } from './invariants-walk.js';
import type { Kernel } from './kernel.js';
import { AnonVma, Inode, type MmStruct, type RssCounters, VM_HUGETLB, type Vma } from './mm/types.js';
import { _PAGE_PRESENT, _PAGE_PSE, _PAGE_RW, entryPfn } from './pgtable/entry.js';
import { BLOCK_PAGES } from './phys/frames.js';
import {
  PAGES_PER_SECTION,
  PG_anon,
  PG_anon_exclusive,
  PG_buddy,
  PG_deferred_split,
  PG_head,
  PG_hugetlb,
  PG_locked,
  PG_partially_mapped,
  PG_swapcache,
  PG_table,
  PG_tail,
  PG_zone_device,
} from './phys/memmap.js';
import { Process } from './process.js';

export { type PageTableVisitor, type WalkLevel, walkPageTables } from './invariants-walk.js';

/**
 * Models the references folio_expected_ref_count() (include/linux/mm.h) cannot see: a holder
 * of folio references that are neither page-table mappings nor page-cache slots (a driver's
 * pages, GUP references kept across syscalls, a migration's isolation references). It calls
 * `add(pfn, refs)` for each.
 */
export type RefHolder = (core: Core, add: (pfn: number, refs: number) => void) => void;

const refHolders = new WeakMap<Core, Set<RefHolder>>();

/**
 * Models declaring extra references to the debug checks (the kernel has no registry: this
 * tells the model's check_mm()-style checker which references are legitimate). Registers a
 * {@link RefHolder} with the checker of `core`; returns the function that removes it.
 */
export function registerRefHolder(core: Core, holder: RefHolder): () => void {
  let set = refHolders.get(core);
  if (!set) {
    set = new Set();
    refHolders.set(core, set);
  }
  set.add(holder);
  return () => set.delete(holder);
}

/** The checker the holders report to while {@link holderAdd} is handed to them. */
let holderSink: MmCoreCheck | null = null;

/**
 * The `add` every RefHolder gets: one function for every check (a closure per check would make
 * each holder's loop be optimized again for every check).
 */
function holderAdd(pfn: number, refs: number): void {
  const c = holderSink;
  if (!c) return;
  if (c.m.valid(pfn)) c.addRef(c.m.head[pfn], refs);
  else c.report(`a registered holder reports references on invalid pfn ${hex(pfn)}`);
}

/** Scratch arrays reused between runs (indexed by pfn, sized to the memmap). */
interface Scratch {
  cap: number;
  /** Expected references per folio head (mappings + page cache + holders). */
  expRef: Int32Array;
  /** Expected PTE-level mappings per page. */
  expPte: Int32Array;
  /** Expected PMD-level mappings per folio head. */
  expEntire: Int32Array;
  /** Epoch stamp: the RAM scan saw this pfn as a folio head. */
  seen: Uint32Array;
  epoch: number;
  /** Per-mm stamp: the page table walk of the mm with this stamp maps this anonymous page. */
  mmSeen: Uint32Array;
  mmEpoch: number;
}

/**
 * The scratch arrays of the last check, shared by every machine of the same memmap capacity: a
 * check leaves them zeroed (reset() in a finally; the epochs carry over), and checks never
 * overlap (they do not sleep), so a campaign that boots a machine per run allocates them once.
 */
let scratch: Scratch | null = null;

function scratchFor(core: Core): Scratch {
  const cap = core.map.capacity;
  let s = scratch;
  if (!s || s.cap !== cap) {
    s = {
      cap,
      expRef: new Int32Array(cap),
      expPte: new Int32Array(cap),
      expEntire: new Int32Array(cap),
      seen: new Uint32Array(cap),
      epoch: 0,
      mmSeen: new Uint32Array(cap),
      mmEpoch: 0,
    };
    scratch = s;
  }
  // A fresh (zero-filled, not yet committed) array needs no clearing: clearing it would commit
  // host memory proportional to the physical address space.
  const wrapped = s.epoch === 0xffffffff;
  s.epoch = (s.epoch + 1) >>> 0 || 1;
  if (wrapped) s.seen.fill(0);
  if (s.mmEpoch > 0xfffff000) {
    s.mmSeen.fill(0);
    s.mmEpoch = 0;
  }
  return s;
}

const MAX_REPORTS = 64;
const hex = (n: number) => `0x${n.toString(16)}`;

/** One run of the checker over a machine. */
class MmCoreCheck {
  readonly out: string[] = [];
  private dropped = 0;
  /** @internal (MmWalkCheck) */
  readonly core: Core;
  /** @internal */
  readonly m: Core['map'];
  /** @internal */
  readonly s: Scratch;
  private readonly touchedHeads: number[] = [];
  private readonly touchedPfns: number[] = [];
  /** Page-table pages found so far, with a (lazily formatted) description of where. */
  private readonly tablesSeen = new Map<number, () => string>();
  /** @internal */
  readonly inFlight: boolean;
  private readonly liveVmas = new Set<Vma>();
  /** Swap PTEs found per swap entry value. */
  /** @internal */
  readonly swapRefs = new Map<number, number>();
  private readonly ramStart: number;
  private readonly ramEnd: number;

  constructor(private readonly kernel: Kernel) {
    this.core = kernel.core;
    this.m = this.core.map;
    this.s = scratchFor(this.core);
    this.inFlight = this.core.migrationsInFlight > 0;
    this.ramStart = this.core.zone.start;
    this.ramEnd = this.core.zone.start + this.core.zone.nrPages;
  }

  report(msg: string, pfn = -1): void {
    if (this.out.length >= MAX_REPORTS) {
      this.dropped++;
      return;
    }
    this.out.push(pfn >= 0 ? `${msg}\n  ${dumpFolio(this.core, pfn)}` : msg);
  }

  /** @internal */
  addRef(head: number, refs: number): void {
    const s = this.s;
    if (s.expRef[head] === 0 && s.expEntire[head] === 0) this.touchedHeads.push(head);
    s.expRef[head] += refs;
  }

  /** @internal */
  addPte(pfn: number): void {
    const s = this.s;
    if (s.expPte[pfn]++ === 0) this.touchedPfns.push(pfn);
  }

  /** @internal */
  addEntire(head: number): void {
    const s = this.s;
    if (s.expRef[head] === 0 && s.expEntire[head] === 0) this.touchedHeads.push(head);
    s.expEntire[head]++;
  }

  /** @internal */
  markTable(pfn: number, what: () => string): void {
    const prev = this.tablesSeen.get(pfn);
    if (prev !== undefined) {
      this.report(`page-table page ${hex(pfn)} reachable twice: ${prev()} and ${what()}`, pfn);
      return;
    }
    this.tablesSeen.set(pfn, what);
    const m = this.m;
    if (!m.valid(pfn) || !(m.flags[pfn] & PG_table))
      this.report(`${what()}: table page without PG_table`, pfn);
    else if (m.refcount[pfn] !== 1) this.report(`${what()}: table page refcount ${m.refcount[pfn]}`, pfn);
  }

  run(): string[] {
    const mms = new Map<MmStruct, number>();
    for (const t of this.kernel.tasks.values()) {
      if (t instanceof Process && t.mm.pgd >= 0 && !mms.has(t.mm)) mms.set(t.mm, t.pid);
    }
    // An address space whose process is gone but that still has users (a driver's mmget()):
    // it is on init_mm.mmlist until its last mmput() (pid 0 in messages: no task owns it).
    for (const mm of this.core.mmlist) if (mm.pgd >= 0 && !mms.has(mm)) mms.set(mm, 0);
    for (const mm of mms.keys()) for (const v of mm.vmas) this.liveVmas.add(v);
    try {
      for (const [mm, pid] of mms) this.checkMm(mm, pid);
      this.pageCacheAndHolders();
      this.swapSlots();
      this.scanRam();
      this.checkTouchedOutsideRam();
    } finally {
      this.reset();
    }
    if (this.dropped) this.out.push(`... and ${this.dropped} more violations`);
    return this.out;
  }

  private reset(): void {
    const s = this.s;
    for (const h of this.touchedHeads) {
      s.expRef[h] = 0;
      s.expEntire[h] = 0;
    }
    for (const p of this.touchedPfns) s.expPte[p] = 0;
  }

  // ---- per mm -------------------------------------------------------------------------

  private checkVmas(mm: MmStruct, tag: string): void {
    const core = this.core;
    let prevEnd = 0;
    for (const v of mm.vmas) {
      const r = `${tag} vma [${hex(v.start)}, ${hex(v.end)})`;
      if (v.mm !== mm) this.report(`${r}: belongs to another mm`);
      if (v.start % PAGE_SIZE || v.end % PAGE_SIZE || v.start >= v.end) this.report(`${r}: malformed`);
      if (v.start < prevEnd) this.report(`${r}: overlaps or is out of order with the previous VMA`);
      prevEnd = v.end;
      if (v.anonVma && !v.anonVmaChain.includes(v.anonVma)) this.report(`${r}: anon_vma not in its chain`);
      for (const av of v.anonVmaChain) {
        if (!av.vmas.has(v)) this.report(`${r}: anon_vma ${av.id} of the chain does not list the VMA`);
        if (core.mappings.get(av.id) !== av) this.report(`${r}: anon_vma ${av.id} is not registered`);
      }
      if (v.file) {
        if (!v.file.mmaps.has(v)) this.report(`${r}: missing from its file's i_mmap`);
        if (core.mappings.get(v.file.id) !== v.file)
          this.report(`${r}: maps file ${v.file.name} whose address_space was released`);
      }
      if (v.flags & VM_HUGETLB && (v.start % PMD_SIZE || v.end % PMD_SIZE))
        this.report(`${r}: hugetlb VMA not huge-page aligned`);
      // vm_file (what VMA merging compares): file, shmem and hugetlb mappings have one, a
      // private anonymous VMA has none.
      const fileBacked = v.file !== null || (v.flags & VM_HUGETLB) !== 0;
      if (fileBacked && !v.vmFile) this.report(`${r}: vm_file missing`);
      if (!fileBacked && !v.vmOps && v.vmFile) this.report(`${r}: vm_file set on an anonymous VMA`);
    }
  }

  private checkMm(mm: MmStruct, pid: number): void {
    const core = this.core;
    const _m = this.m;
    const tag = `[pid ${pid} mm ${mm.id}]`;
    const mmStamp = ++this.s.mmEpoch;
    this.checkVmas(mm, tag);
    this.markTable(mm.pgd, () => `${tag} pgd`);
    const w = new MmWalkCheck(this, mm, tag, mmStamp);
    walkPageTables(core, mm, w);
    const { rss, tables, leafPmds } = w;

    for (const [haddr, t] of mm.deposits) {
      this.markTable(t, () => `${tag} deposit at ${hex(haddr)}`);
      if (!leafPmds.has(haddr)) this.report(`${tag} deposit at ${hex(haddr)} without a huge PMD there`);
      const b = core.frames.block32(t);
      const off = (t & (BLOCK_PAGES - 1)) << 10;
      for (let i = 0; i < 1024; i++)
        if (b[off + i] !== 0) {
          this.report(`${tag} deposited table at ${hex(haddr)} is not empty`);
          break;
        }
    }
    const bytes = (tables + mm.deposits.size) * PAGE_SIZE;
    if (mm.pgtablesBytes !== bytes)
      this.report(
        `${tag} pgtables_bytes ${mm.pgtablesBytes} but ${tables} tables + ${mm.deposits.size} deposits = ${bytes}`,
      );
    for (const k of Object.keys(rss) as (keyof RssCounters)[])
      if (mm.rss[k] !== rss[k]) this.report(`${tag} rss ${k} is ${mm.rss[k]} but page tables map ${rss[k]}`);
    this.checkTlb(mm, tag);
  }

  /** Every valid software-TLB entry must agree with the page tables (no stale translation). */
  private checkTlb(mm: MmStruct, tag: string): void {
    const tlb = mm.tlb;
    for (let s = 0; s < tlb.tag.length; s++) {
      const vpn = tlb.vpnAt(s);
      if (vpn < 0) continue;
      const addr = vpn * PAGE_SIZE;
      const [pfn, w] = leafTranslation(this.core, mm, addr);
      if (pfn !== tlb.pfn[s] || (tlb.writable[s] === 1 && !w))
        this.report(
          `${tag} ${hex(addr)}: stale TLB entry -> pfn ${hex(tlb.pfn[s])}${tlb.writable[s] ? ' (rw)' : ''}, ` +
            `page tables say ${pfn < 0 ? 'not present' : `${hex(pfn)}${w ? ' (rw)' : ''}`}`,
        );
    }
  }

  // ---- page cache and holders -----------------------------------------------------------

  private shmemPages = 0;
  /** Pages of PMD-sized shmem folios in page caches (NR_SHMEM_THPS). */
  private shmemThpPages = 0;

  private pageCacheAndHolders(): void {
    const core = this.core;
    const m = this.m;
    for (const obj of core.mappings.values()) {
      if (obj instanceof AnonVma) {
        for (const v of obj.vmas)
          if (!this.liveVmas.has(v)) this.report(`anon_vma ${obj.id} lists a VMA that is not mapped`);
        continue;
      }
      if (!(obj instanceof Inode)) continue;
      const inode = obj;
      let live = 0;
      for (const v of inode.mmaps) {
        if (this.liveVmas.has(v)) live++;
        else this.report(`inode ${inode.name}: i_mmap lists a VMA that is not mapped`);
      }
      if (inode.refs < live)
        this.report(`inode ${inode.name}: ${inode.refs} references but mapped by ${live} VMAs`);
      for (const [index, pfn] of inode.pages) {
        if (!m.valid(pfn)) {
          this.report(`inode ${inode.name}: page cache index ${index} holds an invalid pfn ${hex(pfn)}`);
          continue;
        }
        const head = m.head[pfn];
        const huge = (m.flags[head] & PG_hugetlb) !== 0;
        // A hugetlbfs folio has one slot (its huge index); a shmem folio one slot per page, each
        // holding that page (a large folio is a multi-index entry) and one reference.
        if (huge ? head !== pfn : m.index[head] + (pfn - head) !== index) {
          this.report(
            `inode ${inode.name}: page cache index ${index} holds pfn ${hex(pfn)} of the folio at index ${m.index[head]}`,
            pfn,
          );
          continue;
        }
        if (m.mapping[head] !== inode.id)
          this.report(
            `inode ${inode.name}: page cache folio at ${index} has mapping ${m.mapping[head]}`,
            head,
          );
        if (!huge) {
          this.shmemPages++;
          if (pfn === head && m.flags[head] & PG_head && m.folioOrder(head) === HPAGE_PMD_ORDER)
            this.shmemThpPages += HPAGE_PMD_NR;
          if (pfn === head && m.flags[head] & PG_head)
            for (let i = 1; i < m.folioNrPages(head); i++)
              if (inode.pages.get(index + i) !== head + i)
                this.report(
                  `inode ${inode.name}: large folio at ${index} misses its page-cache slot ${index + i}`,
                  head,
                );
        }
        this.addRef(head, 1);
      }
    }
    const holders = refHolders.get(core);
    if (holders) {
      holderSink = this;
      try {
        for (const h of holders) h(core, holderAdd);
      } finally {
        holderSink = null;
      }
    }
  }

  /** See {@link checkSwapSlots} (invariants-swap.ts). */
  private swapSlots(): void {
    checkSwapSlots(this.core, this.swapRefs, this);
  }

  // ---- folios ---------------------------------------------------------------------------

  private anonThp = 0;

  /** Compares one folio's memmap counts with what was found. */
  private checkFolio(h: number): void {
    const m = this.m;
    const s = this.s;
    const n = m.folioNrPages(h);
    let sumPte = 0;
    for (let i = 0; i < n; i++) {
      const p = h + i;
      if (i > 0 && (!(m.flags[p] & PG_tail) || m.head[p] !== h || m.refcount[p] !== 0))
        this.report(`tail page ${hex(p)} of folio ${hex(h)} is not a proper tail`, p);
      const e = s.expPte[p];
      sumPte += e;
      if (m.mapcount[p] !== e)
        this.report(`page ${hex(p)}: mapcount ${m.mapcount[p]} but ${e} PTE mappings`, p);
      if (m.flags[p] & PG_anon_exclusive) {
        if (!(m.flags[h] & PG_anon)) this.report(`page ${hex(p)}: AnonExclusive on a non-anonymous folio`, p);
        else if (e + (i === 0 ? s.expEntire[h] : 0) > 1)
          this.report(
            `page ${hex(p)}: AnonExclusive but mapped ${e + (i === 0 ? s.expEntire[h] : 0)} times`,
            p,
          );
      }
    }
    if (n > 1) {
      if (m.entireMapcount[h] !== s.expEntire[h])
        this.report(
          `folio ${hex(h)}: entire mapcount ${m.entireMapcount[h]} but ${s.expEntire[h]} PMD mappings`,
          h,
        );
      if (m.largeMapcount[h] !== sumPte + s.expEntire[h])
        this.report(
          `folio ${hex(h)}: large mapcount ${m.largeMapcount[h]} but ${sumPte + s.expEntire[h]} mappings`,
          h,
        );
      if (m.flags[h] & PG_anon && !(m.flags[h] & PG_hugetlb) && m.entireMapcount[h] > 0) this.anonThp++;
    } else if (m.entireMapcount[h] !== 0 || m.largeMapcount[h] !== 0 || s.expEntire[h] !== 0) {
      this.report(`small folio ${hex(h)} has PMD-level mapcounts`, h);
    }
    if (m.flags[h] & PG_swapcache) checkSwapcacheFolio(this.core, h, this);
    this.checkLargeAnon(h, n);
    const exp = s.expRef[h];
    const ref = m.refcount[h];
    const pins = m.pincount[h];
    const locked = (m.flags[h] & PG_locked) !== 0;
    if (locked && !this.inFlight) this.report(`folio ${hex(h)} locked at a syscall boundary`, h);
    if (ref < 0) this.report(`folio ${hex(h)}: negative refcount`, h);
    else if (this.inFlight && locked) {
      if (ref < exp) this.report(`folio ${hex(h)}: refcount ${ref} below its ${exp} known references`, h);
    } else if (pins > 0) {
      if (ref < exp + pins)
        this.report(`folio ${hex(h)}: refcount ${ref} below ${exp} references + ${pins} pins`, h);
    } else if (ref !== exp) {
      this.report(
        exp === 0
          ? `folio ${hex(h)}: leaked (refcount ${ref}, no mapping, page-cache or swap-cache slot or registered holder)`
          : `folio ${hex(h)}: refcount ${ref} but ${exp} references (mappings + page cache + swap cache + holders)`,
        h,
      );
    }
  }

  /**
   * What the kernel guarantees for large anonymous folios of any order: no anonymous folio of
   * order 1 (THP_ORDERS_ALL_ANON starts at 2; device folios are the driver's), and the deferred
   * split state only on large anonymous folios of order 2 or more (deferred_split_folio()), with
   * PG_partially_mapped only while queued (it is set with the queueing and cleared on split).
   */
  private checkLargeAnon(h: number, n: number): void {
    const m = this.m;
    const f = m.flags[h];
    if (f & PG_anon && n === 2 && !(f & (PG_zone_device | PG_hugetlb)))
      this.report(`folio ${hex(h)}: anonymous folio of order 1`, h);
    if (f & (PG_deferred_split | PG_partially_mapped)) {
      if (!(f & PG_anon) || n < 4)
        this.report(
          `folio ${hex(h)}: deferred split state on a folio that is not large anonymous (order >= 2)`,
          h,
        );
      if (f & PG_partially_mapped && !(f & PG_deferred_split))
        this.report(`folio ${hex(h)}: PG_partially_mapped without being on the deferred split queue`, h);
    }
  }

  /** Unmapped, never-refcounted special folio (zero page, huge zero folio). */
  private checkSpecial(h: number, name: string): void {
    const m = this.m;
    const s = this.s;
    if (m.refcount[h] < 1) this.report(`${name}: refcount ${m.refcount[h]}`, h);
    if (s.expRef[h] || s.expEntire[h]) this.report(`${name} counted as a refcounted mapping`, h);
    const n = m.folioNrPages(h);
    for (let i = 0; i < n; i++)
      if (m.mapcount[h + i] || s.expPte[h + i]) this.report(`${name} has a mapcount`, h + i);
    if (m.entireMapcount[h] || (n > 1 && m.largeMapcount[h])) this.report(`${name} has a PMD mapcount`, h);
  }

  /**
   * Walks every initialised pfn of system RAM: free blocks, page tables, folios. Sections whose
   * struct page init is still deferred are skipped (O(1) each) and must be the zone's deferred
   * chunks, so the walk costs what has been materialised, not the size of RAM.
   */
  private scanRam(): void {
    const core = this.core;
    const m = this.m;
    const s = this.s;
    const epoch = s.epoch;
    const hugetlbFree = new Set(core.hugetlb.free);
    let freeBlocks = 0;
    let freePages = 0;
    let tablePages = 0;
    let hugetlbInUse = 0;
    const start = this.ramStart;
    const end = this.ramEnd;
    let deferredPages = 0;
    for (let p = start; p < end; ) {
      if (m.deferred(p)) {
        const e = Math.min(end, (Math.floor(p / PAGES_PER_SECTION) + 1) * PAGES_PER_SECTION);
        deferredPages += e - p;
        p = e;
        continue;
      }
      const f = m.flags[p];
      if (f & PG_buddy) {
        const o = m.order[p];
        if (o > MAX_PAGE_ORDER || (p - start) % (1 << o) !== 0 || p + (1 << o) > end) {
          this.report(`free block at ${hex(p)} has a bad order ${o}`, p);
          p++;
          continue;
        }
        if (
          m.refcount[p] !== 0 ||
          f & (PG_head | PG_tail | PG_table | PG_locked | PG_hugetlb) ||
          m.mapcount[p]
        )
          this.report(`free block head ${hex(p)} is not clean`, p);
        freeBlocks++;
        freePages += 1 << o;
        p += 1 << o;
        continue;
      }
      if (f & PG_tail) {
        this.report(`page ${hex(p)} is a tail outside any folio`, p);
        p++;
        continue;
      }
      if (f & PG_table) {
        tablePages++;
        if (!this.tablesSeen.has(p)) this.report(`page-table page ${hex(p)} is not reachable (leaked)`, p);
        if (s.expRef[p] || s.expPte[p])
          this.report(`page-table page ${hex(p)} is mapped by user page tables`, p);
        s.seen[p] = epoch;
        p++;
        continue;
      }
      s.seen[p] = epoch;
      const n = m.folioNrPages(p);
      if (p + n > end) {
        this.report(`folio ${hex(p)} runs past the end of RAM`, p);
        break;
      }
      if (p === core.zeroPfn) this.checkSpecial(p, 'zero page');
      else if (p === core.hugeZeroPfn) this.checkSpecial(p, 'huge zero folio');
      else if (f & PG_hugetlb && hugetlbFree.has(p)) {
        if (m.refcount[p] !== 0 || s.expRef[p] || s.expEntire[p] || m.entireMapcount[p] || m.largeMapcount[p])
          this.report(`free hugetlb page ${hex(p)} is in use`, p);
      } else {
        if (f & PG_hugetlb) hugetlbInUse++;
        this.checkFolio(p);
      }
      p += n;
    }
    let listed = 0;
    let listedPages = 0;
    core.zone.forEachFree((pfn, order) => {
      listed++;
      listedPages += 1 << order;
      if (!(m.flags[pfn] & PG_buddy) || m.order[pfn] !== order)
        this.report(`free list block ${hex(pfn)} (order ${order}) not marked PageBuddy of that order`, pfn);
    });
    if (listed !== freeBlocks || listedPages !== freePages)
      this.report(
        `buddy free lists hold ${listed} blocks / ${listedPages} pages but memmap marks ${freeBlocks} / ${freePages}`,
      );
    if (deferredPages !== core.zone.deferredPages)
      this.report(
        `memmap has ${deferredPages} deferred pages but the zone defers ${core.zone.deferredPages}`,
      );
    if (core.zone.nrFree !== freePages + deferredPages)
      this.report(
        `nr_free_pages ${core.zone.nrFree} but ${freePages} pages free + ${deferredPages} deferred`,
      );
    if (core.vmstat.nr_page_table_pages !== tablePages)
      this.report(`nr_page_table_pages ${core.vmstat.nr_page_table_pages} but ${tablePages} PG_table pages`);
    if (hugetlbFree.size + hugetlbInUse !== core.hugetlb.total)
      this.report(
        `hugetlb pool: ${hugetlbFree.size} free + ${hugetlbInUse} in use but nr_hugepages ${core.hugetlb.total}`,
      );
    if (core.vmstat.nr_shmem !== this.shmemPages)
      this.report(`nr_shmem ${core.vmstat.nr_shmem} but page caches hold ${this.shmemPages} pages`);
    if (core.vmstat.nr_shmem_hugepages !== this.shmemThpPages)
      this.report(
        `nr_shmem_hugepages ${core.vmstat.nr_shmem_hugepages} but page caches hold ${this.shmemThpPages} pages of PMD-sized folios`,
      );
    // Every folio referenced by a mapping or a page-cache slot must be a live folio head.
    for (const h of this.touchedHeads) {
      if (h < start || h >= end || s.seen[h] === epoch) continue;
      this.report(`pfn ${hex(h)} is referenced (mapping/page cache/holder) but is not a live folio head`, h);
    }
  }

  /** Device (and any other non-RAM) folios reached through mappings. */
  private checkTouchedOutsideRam(): void {
    const m = this.m;
    for (const h of this.touchedHeads) {
      if (h >= this.ramStart && h < this.ramEnd) continue;
      if (!m.valid(h)) {
        this.report(`mapping to pfn ${hex(h)} outside the memmap`);
        continue;
      }
      if (m.flags[h] & PG_tail || m.head[h] !== h) {
        this.report(`mapping to ${hex(h)}: not a folio head`, h);
        continue;
      }
      this.checkFolio(h);
    }
    if (this.core.vmstat.nr_anon_transparent_hugepages !== this.anonThp)
      this.report(
        `nr_anon_transparent_hugepages ${this.core.vmstat.nr_anon_transparent_hugepages} but ${this.anonThp} PMD-mapped anon THPs`,
      );
  }
}

/**
 * The translation the page tables give for addr: [pfn, writable], or [-1, false] when a CPU
 * access would fault. Models the hardware walk without filling the TLB.
 */
function leafTranslation(core: Core, mm: MmStruct, addr: number): [number, boolean] {
  if (mm.pgd < 0) return [-1, false];
  let t = mm.pgd;
  for (let l = 0; l < 3; l++) {
    const idx = Math.floor(addr / (l === 0 ? PGDIR_SIZE : l === 1 ? PUD_SIZE : PMD_SIZE)) & 511;
    const b = core.frames.block32(t);
    const off = ((t & (BLOCK_PAGES - 1)) << 10) + 2 * idx;
    const lo = b[off];
    const hi = b[off + 1];
    if (!(lo & _PAGE_PRESENT)) return [-1, false];
    if (lo & _PAGE_PSE) {
      if (l !== 2) return [-1, false];
      return [entryPfn(lo, hi) + (Math.floor(addr / PAGE_SIZE) & 511), (lo & _PAGE_RW) !== 0];
    }
    t = entryPfn(lo, hi);
  }
  const b = core.frames.block32(t);
  const off = ((t & (BLOCK_PAGES - 1)) << 10) + 2 * (Math.floor(addr / PAGE_SIZE) & 511);
  const lo = b[off];
  if (!(lo & _PAGE_PRESENT)) return [-1, false];
  return [entryPfn(lo, b[off + 1]), (lo & _PAGE_RW) !== 0];
}

/**
 * Models check_mm() (kernel/fork.c) and the debug checks of mm/debug_vm_pgtable.c and
 * page_table_check, generalised into a whole-machine audit of the system-memory side:
 * returns one human-readable string per violation (with dump_page() output), empty when
 * every invariant holds.
 */
export function checkMmCore(kernel: Kernel): string[] {
  return new MmCoreCheck(kernel).run();
}

const installed = new WeakSet<Kernel>();

/**
 * Models enabling CONFIG_DEBUG_VM for the machine: adds {@link checkMmCore} to
 * `kernel.checkers` (once), so `kernel.check()` and the post-syscall hook run it.
 */
export function installMmCoreChecker(kernel: Kernel): void {
  if (installed.has(kernel)) return;
  installed.add(kernel);
  kernel.checkers.push(checkMmCore);
}
