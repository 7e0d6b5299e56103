/**
 * The device-migration half of the invariant checker (kernel-mechanics.md §9): what mm core's
 * checker (invariants.ts) does not know about because it lives in this package — the
 * migrations in flight, their src/dst slots, the device pages of every pgmap and the drivers'
 * free lists. It is pushed onto `kernel.checkers` next to mm core's checker.
 */
import { Buffer } from 'node:buffer';
import {
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  type Core,
  dumpFolio,
  entryPfn,
  HPAGE_PMD_ORDER,
  isDevicePrivateType,
  isMigrationType,
  type Kernel,
  MEMORY_DEVICE_COHERENT,
  MEMORY_DEVICE_PRIVATE,
  PAGES_PER_SECTION,
  PG_anon,
  PG_deferred_split,
  PG_head,
  PG_locked,
  PG_partially_mapped,
  PG_tail,
  Process,
  ScratchBytes,
  SWP_MIG_DIRTY,
  SWP_MIG_YOUNG,
  swpType,
  walkPageTables,
} from '@hmm-model/mm-core';
import { type InflightMigration, inflightMigrations } from './inflight.js';
import { MIGRATE_PFN_COMPOUND, MIGRATE_PFN_MIGRATE, migratePfnToPage, mpfnFlags } from './types.js';

/**
 * Models a driver's free lists (dmirror's / nouveau's free_pages and free_folios) for one pgmap,
 * as ranges of free device pages (a free PMD-order slot is
 * one range of 512). Models dmirror's/nouveau's free_pages and free_folios lists (§9 #1, #19).
 */
export interface DeviceFreeLists {
  /** pgmap id (DevPagemap.id) the lists belong to. */
  readonly pgmapId: number;
  /** Calls `add(pfn, nr)` for every free range: first pfn and page count. */
  forEach(add: (pfn: number, nr: number) => void): void;
}

/** Model-only (no kernel symbol): options of {@link installMigrateChecker}. */
export interface MigrateCheckerOptions {
  /** Drivers' free lists to audit (dmirror_device / nouveau_dmem free_pages + free_folios). */
  freeLists?: () => readonly DeviceFreeLists[];
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** Per-pfn marks of checkPgmap(): pages allocated, pages on a free list. */
const liveScratch = new ScratchBytes();
const listedScratch = new ScratchBytes();

/** A compound unit's order: the PMD order, or one the driver declared in mthpOrders (mthp.ts). */
function compoundOrderOk(r: InflightMigration, order: number): boolean {
  return order === HPAGE_PMD_ORDER || (order > 0 && ((r.mig?.mthpOrders ?? 0) & (1 << order)) !== 0);
}

/**
 * checkEntries()' page-table visitor: a class, so that walkPageTables() always calls the same
 * two functions (a visitor of closures made per process would be optimized again every check).
 */
class EntryVisitor {
  constructor(
    private readonly check: MigrateCheck,
    private readonly tag: string,
  ) {}
  pmdLeaf(a: number, lo: number, hi: number): void {
    this.check.entryLeaf(this.tag, a, lo, hi, 'PMD');
  }
  pte(a: number, lo: number, hi: number): void {
    this.check.entryLeaf(this.tag, a, lo, hi, 'PTE');
  }
}

/** Pages per block that checkPgmap() tests for quiet at once. */
const QUIET_BLOCK = 1024;
const zeroWords = Buffer.alloc(QUIET_BLOCK * 4);

/** The bytes of pfns [p, p + QUIET_BLOCK) of a 32-bit memmap field (`shift`: 0 for the same pfns, 1 for the next ones). */
function words(a: Uint32Array | Int32Array, p: number, shift = 0): Buffer {
  return Buffer.from(a.buffer, a.byteOffset + (p + shift) * 4, (QUIET_BLOCK - shift) * 4);
}

/**
 * checkPgmap()'s fast path: pfns [p, p + QUIET_BLOCK) all have the flags of pfn p (which has
 * none of tail, head, locked, anon or the deferred-split bits) and zero refcount, mapping and
 * mapcount: free base pages the per-pfn checks would pass. Native comparisons, no loop.
 */
function quietBlock(m: Core['map'], p: number): boolean {
  return (
    words(m.refcount, p).equals(zeroWords) &&
    words(m.mapping, p).equals(zeroWords) &&
    words(m.mapcount, p).equals(zeroWords) &&
    words(m.flags, p, 0)
      .subarray(0, (QUIET_BLOCK - 1) * 4)
      .equals(words(m.flags, p, 1))
  );
}

class MigrateCheck {
  readonly out: string[] = [];
  private readonly core: Core;
  private readonly recs: readonly InflightMigration[];
  /** Heads of folios a migration in flight may hold locked or behind migration entries. */
  private readonly held = new Set<number>();
  /** False while a pfn-based migration has not handed over its dst array yet. */
  private readonly lockAudit: boolean;

  constructor(
    private readonly kernel: Kernel,
    private readonly opts: MigrateCheckerOptions,
  ) {
    this.core = kernel.core;
    this.recs = inflightMigrations(this.core);
    this.lockAudit = !this.recs.some((r) => r.mig === null && r.phase !== 'pages');
  }

  private report(msg: string, pfn = -1): void {
    if (this.out.length < 64) this.out.push(pfn >= 0 ? `${msg}\n  ${dumpFolio(this.core, pfn)}` : msg);
  }

  run(): string[] {
    const core = this.core;
    if (this.recs.length !== core.migrationsInFlight)
      this.report(
        `Core.migrationsInFlight ${core.migrationsInFlight} but ${this.recs.length} migrations recorded`,
      );
    for (const r of this.recs) this.checkMigration(r);
    this.checkEntries();
    this.checkLocks();
    for (const pgmap of core.pgmaps) {
      if (!pgmap || (pgmap.type !== MEMORY_DEVICE_PRIVATE && pgmap.type !== MEMORY_DEVICE_COHERENT)) continue;
      this.checkPgmap(pgmap.id);
    }
    return this.out;
  }

  /** §9 #4, #5, #9: the slots of one migration between setup and finalize. */
  private checkMigration(r: InflightMigration): void {
    const core = this.core;
    const m = core.map;
    const faultFolio = r.faultPage >= 0 ? m.head[r.faultPage] : -1;
    if (faultFolio >= 0) this.held.add(faultFolio);
    const src = r.src;
    const dst = r.dst;
    const strict = r.phase !== 'collecting';
    for (let i = 0; i < r.npages; i++) {
      const sf = mpfnFlags(src[i]);
      const sp = migratePfnToPage(src[i]);
      const tag = `migration [slot ${i}]`;
      if (sp >= 0) {
        const h = m.head[sp];
        this.held.add(h);
        if (strict && sf & MIGRATE_PFN_MIGRATE) {
          if (!(m.flags[h] & PG_locked)) this.report(`${tag}: source folio not locked`, h);
          if (m.largeMapcount[h] + (m.folioNrPages(h) > 1 ? 0 : m.mapcount[h]) !== 0)
            this.report(`${tag}: source folio still mapped`, h);
          const want = 1 + (h === faultFolio ? 1 : 0);
          if (m.refcount[h] !== want)
            this.report(`${tag}: source refcount ${m.refcount[h]}, expected ${want}`, h);
        }
      }
      if (strict && sf & MIGRATE_PFN_COMPOUND) {
        const ord = sp >= 0 ? m.folioOrder(sp) : HPAGE_PMD_ORDER;
        if (sp >= 0 && (m.head[sp] !== sp || !compoundOrderOk(r, ord)))
          this.report(
            `${tag}: COMPOUND source is not the head of a PMD-order (or declared mTHP-order) folio`,
            sp,
          );
        for (let k = 1; k < 1 << ord && i + k < r.npages; k++)
          if (src[i + k] !== 0) {
            this.report(`${tag}: src tail slot ${i + k} of a compound unit is not 0`);
            break;
          }
      }
      if (i >= dst.length) continue;
      const dp = migratePfnToPage(dst[i]);
      if (dp < 0) continue;
      const dh = m.head[dp];
      this.held.add(dh);
      if (dh === faultFolio) this.report(`${tag}: the fault folio is a destination`, dh);
      if (!(m.flags[dh] & PG_locked)) this.report(`${tag}: destination folio not locked`, dh);
      const mapped = m.folioNrPages(dh) > 1 ? m.largeMapcount[dh] : m.mapcount[dh];
      if (r.phase !== 'pages' && (m.refcount[dh] !== 1 || mapped !== 0))
        this.report(
          `${tag}: destination refcount ${m.refcount[dh]} mapcount ${mapped}, expected 1 and 0`,
          dh,
        );
      if (r.phase === 'pages' && m.refcount[dh] !== 1 + mapped)
        this.report(`${tag}: destination refcount ${m.refcount[dh]} but ${mapped} mappings + 1`, dh);
      if (mpfnFlags(dst[i]) & MIGRATE_PFN_COMPOUND) {
        const ord = m.folioOrder(dh);
        if (dh !== dp || !compoundOrderOk(r, ord))
          this.report(
            `${tag}: COMPOUND destination is not the head of a PMD-order (or declared mTHP-order) folio`,
            dp,
          );
        for (let k = 1; k < 1 << ord && i + k < r.npages && i + k < dst.length; k++)
          if (dst[i + k] !== 0) {
            this.report(`${tag}: dst tail slot ${i + k} of a compound destination is not 0`);
            break;
          }
      }
    }
  }

  /**
   * §9 #8 and #16: every migration entry belongs to a migration in flight (none survives a
   * finished migration); device-private entries never carry young/dirty.
   */
  private checkEntries(): void {
    const core = this.core;
    const seen = new Set<unknown>();
    for (const t of this.kernel.tasks.values()) {
      if (!(t instanceof Process) || t.mm.pgd < 0 || seen.has(t.mm)) continue;
      seen.add(t.mm);
      walkPageTables(core, t.mm, new EntryVisitor(this, `[pid ${t.pid}]`));
    }
  }

  /** checkEntries() for one leaf entry (called by EntryVisitor). */
  entryLeaf(tag: string, addr: number, lo: number, hi: number, level: string): void {
    if (lo & (_PAGE_PRESENT | _PAGE_PROTNONE)) return;
    const m = this.core.map;
    const type = swpType(lo);
    const pfn = entryPfn(lo, hi);
    if (isMigrationType(type)) {
      if (!m.valid(pfn) || !this.held.has(m.head[pfn]))
        this.report(`${tag} ${hex(addr)}: migration ${level} survives outside any migration in flight`, pfn);
    } else if (isDevicePrivateType(type) && lo & (SWP_MIG_YOUNG | SWP_MIG_DIRTY)) {
      this.report(`${tag} ${hex(addr)}: device-private ${level} carries young/dirty bits`, pfn);
    }
  }

  /** §9 #4/#8: outside a migration's src/dst/fault folios, no folio is left locked by one. */
  private checkLocks(): void {
    // Without migrations in flight mm core's checker reports every locked folio of RAM.
    if (this.recs.length === 0 || !this.lockAudit) return;
    const core = this.core;
    const m = core.map;
    const end = core.zone.start + core.zone.nrPages;
    for (let p = core.zone.start; p < end; ) {
      // A section whose struct pages were never initialised holds no folio: skip it whole, so
      // the audit of a big machine costs what has been touched.
      const next = Math.min(end, (Math.floor(p / PAGES_PER_SECTION) + 1) * PAGES_PER_SECTION);
      if (m.deferred(p)) {
        p = next;
        continue;
      }
      for (; p < next; p++)
        if (m.flags[p] & PG_locked && m.head[p] === p && !this.held.has(p))
          this.report(`folio ${hex(p)} locked while only migrations hold folio locks`, p);
    }
  }

  /** §9 #1, #3 (pgmap side), #14, #19: device pages of one pgmap and the driver's free lists. */
  private checkPgmap(id: number): void {
    const core = this.core;
    const m = core.map;
    const flags = m.flags;
    const refcount = m.refcount;
    const headOf = m.head;
    const pgmap = core.pgmaps[id]!;
    const tag = `pgmap ${id} (${pgmap.name})`;
    const start = pgmap.startPfn;
    const n = pgmap.endPfn - start;
    const live = liveScratch.take(n);
    const isPrivate = pgmap.type === MEMORY_DEVICE_PRIVATE;
    // Imported bindings are property loads under some loaders: keep the hot loop on locals.
    const DEFERRED = PG_deferred_split | PG_partially_mapped;
    const TAIL = PG_tail;
    const HEAD = PG_head;
    const LOCKED = PG_locked;
    const LOCKED_OR_ANON = PG_locked | PG_anon;
    const order = m.order;
    const mapping = m.mapping;
    const mapcount = m.mapcount;
    const entireMapcount = m.entireMapcount;
    const largeMapcount = m.largeMapcount;
    const end = pgmap.endPfn;
    let livePages = 0;
    const QUIET_BAD = TAIL | HEAD | LOCKED_OR_ANON | DEFERRED;
    for (let p = start; p < end; p++) {
      // A block of free base pages with nothing set (most of a chunk) has nothing to report.
      if ((p - start) % QUIET_BLOCK === 0 && p + QUIET_BLOCK <= end && !(flags[p] & QUIET_BAD)) {
        if (quietBlock(m, p)) {
          p += QUIET_BLOCK - 1;
          continue;
        }
      }
      const f = flags[p];
      if (isPrivate && f & DEFERRED) this.report(`${tag}: device-private folio on a deferred-split queue`, p);
      if (f & TAIL || headOf[p] !== p) continue;
      const nr = f & HEAD ? 1 << order[p] : 1;
      const ref = refcount[p];
      if (ref > 0) {
        livePages += nr;
        live.fill(1, p - start, Math.min(n, p - start + nr));
        if (f & LOCKED && this.lockAudit && !this.held.has(p))
          this.report(`${tag}: device folio locked outside any migration in flight`, p);
        continue;
      }
      if (ref < 0) this.report(`${tag}: negative refcount`, p);
      if (f & LOCKED_OR_ANON || mapping[p] !== 0)
        this.report(`${tag}: free device folio is locked, anonymous or has a mapping`, p);
      for (let k = 0; k < nr; k++)
        if (mapcount[p + k] !== 0) {
          this.report(`${tag}: free device folio is mapped`, p);
          break;
        }
      if (nr > 1 && (entireMapcount[p] !== 0 || largeMapcount[p] !== 0))
        this.report(`${tag}: free device folio has PMD mapcounts`, p);
    }
    if (pgmap.refs !== livePages)
      this.report(
        `${tag}: pgmap holds ${pgmap.refs} page references but ${livePages} device pages are allocated`,
      );
    const lists = this.opts.freeLists?.().filter((l) => l.pgmapId === id) ?? [];
    if (lists.length === 0) return;
    const listed = listedScratch.take(n);
    let bad = false;
    const add = (pfn: number, nr: number) => {
      for (let k = 0; k < nr && !bad; k++) {
        const i = pfn + k - start;
        if (i < 0 || i >= n) {
          this.report(`${tag}: free list holds pfn ${hex(pfn + k)} outside the pgmap`);
          bad = true;
        } else if (listed[i]++ === 1 || live[i]) {
          this.report(
            `${tag}: pfn ${hex(pfn + k)} is ${live[i] ? 'allocated but' : 'twice'} on the free lists`,
            pfn + k,
          );
          bad = true;
        }
      }
    };
    for (const l of lists) l.forEach(add);
    for (let i = 0; i < n && !bad; i++)
      if (!live[i] && !listed[i]) {
        this.report(`${tag}: free pfn ${hex(start + i)} is on no free list (leaked)`, start + i);
        bad = true;
      }
  }
}

/**
 * Models the CONFIG_DEBUG_VM checks of mm/migrate_device.c and mm/memremap.c as an audit: the
 * invariants of device migration (kernel-mechanics.md §9 #1, #3-#5, #8, #9, #14, #16, #19) that
 * mm core's checker cannot see, for a whole machine; one string per violation.
 */
export function checkMigrate(kernel: Kernel, opts: MigrateCheckerOptions = {}): string[] {
  return new MigrateCheck(kernel, opts).run();
}

/**
 * Models enabling CONFIG_DEBUG_VM for the device-migration code: adds {@link checkMigrate} to
 * `kernel.checkers`, so `kernel.check()` and the post-syscall hook run it. Returns a function
 * that removes it again.
 */
export function installMigrateChecker(kernel: Kernel, opts: MigrateCheckerOptions = {}): () => void {
  const checker = (k: Kernel) => checkMigrate(k, opts);
  kernel.checkers.push(checker);
  return () => {
    const i = kernel.checkers.indexOf(checker);
    if (i >= 0) kernel.checkers.splice(i, 1);
  };
}
