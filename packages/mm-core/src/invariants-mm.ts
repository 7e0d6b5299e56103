/**
 * The per-mm half of the mm-core checker (invariants.ts): one walk of a process's page tables,
 * checking every leaf entry against its VMA, its folio and the rmap, and counting what the
 * mm's rss counters and page-table bytes must say. A class (one per mm and check) rather than
 * closures, so that walkPageTables() always calls the same functions: a visitor of closures
 * made per check would be optimized again for every check.
 */
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from './constants.js';
import { type Core, MEMORY_DEVICE_PRIVATE } from './core.js';
import type { PageTableVisitor, WalkLevel } from './invariants-walk.js';
import { addRss, mmCounter } from './mm/counters.js';
import { swapEntryToInfo, swpEntryName, swpEntryVal } from './mm/swapfile.js';
import {
  AnonVma,
  Inode,
  type MmStruct,
  type RssCounters,
  VM_EXEC,
  VM_HUGETLB,
  VM_MIXEDMAP,
  VM_READ,
  VM_WRITE,
  type Vma,
} from './mm/types.js';
import {
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_RW,
  _PAGE_SPECIAL,
  entryPfn,
  isDevicePrivateType,
  isMigrationType,
  isSwapType,
  SWP_DEVICE_EXCLUSIVE,
  SWP_DEVICE_WRITE,
  swpType,
} from './pgtable/entry.js';
import { PG_anon, PG_anon_exclusive, PG_hugetlb, PG_zone_device } from './phys/memmap.js';

const hex = (n: number) => `0x${n.toString(16)}`;

/** What the per-mm walk reads from and reports into: the checker of invariants.ts. */
export interface MmCheckSink {
  readonly core: Core;
  readonly m: Core['map'];
  /** Per-pfn stamps of the mm being walked (an anonymous page mapped twice in one mm). */
  readonly s: { mmSeen: Uint32Array };
  /** A migration is in flight somewhere (migration entries are expected). */
  readonly inFlight: boolean;
  /** References per swap entry seen in page tables. */
  readonly swapRefs: Map<number, number>;
  report(msg: string, pfn?: number): void;
  addRef(head: number, refs: number): void;
  addPte(pfn: number): void;
  addEntire(head: number): void;
  markTable(pfn: number, what: () => string): void;
}

/** Models check_mm()'s walk of one mm (see the file comment): a {@link PageTableVisitor}. */
export class MmWalkCheck implements PageTableVisitor {
  /** Page-table pages found (PUD, PMD and PTE tables). */
  tables = 0;
  /** Addresses of huge (or non-present) PMD leaves (where a deposited table must be). */
  readonly leafPmds = new Set<number>();
  /** The rss counters the entries add up to. */
  readonly rss: RssCounters = { MM_FILEPAGES: 0, MM_ANONPAGES: 0, MM_SWAPENTS: 0, MM_SHMEMPAGES: 0 };
  private last: Vma | undefined;

  constructor(
    private readonly c: MmCheckSink,
    private readonly mm: MmStruct,
    private readonly tag: string,
    private readonly mmStamp: number,
  ) {}

  private at(addr: number): string {
    return `${this.tag} ${hex(addr)}`;
  }

  private vmaFor(addr: number, len: number, what: string): Vma | undefined {
    const v =
      this.last && addr >= this.last.start && addr < this.last.end ? this.last : this.mm.vmaLookup(addr);
    this.last = v;
    if (!v || addr + len > v.end) {
      this.c.report(`${this.at(addr)}: ${what} outside any VMA`);
      return undefined;
    }
    return v;
  }

  private checkPerm(v: Vma, addr: number, lo: number, head: number, pfn: number, what: string): void {
    const m = this.c.m;
    if (lo & _PAGE_PRESENT && !(v.flags & (VM_READ | VM_WRITE | VM_EXEC)))
      this.c.report(`${this.at(addr)}: accessible ${what} in a PROT_NONE VMA`, pfn);
    if (lo & _PAGE_RW && !(v.flags & VM_WRITE))
      this.c.report(`${this.at(addr)}: writable ${what} in a VMA without VM_WRITE`, pfn);
    if (lo & _PAGE_RW && m.flags[head] & PG_anon && !(m.flags[pfn] & PG_anon_exclusive))
      this.c.report(
        `${this.at(addr)}: writable ${what} maps an anonymous page that is not AnonExclusive`,
        pfn,
      );
  }

  private checkRmap(v: Vma, addr: number, head: number, pfn: number, what: string): void {
    const core = this.c.core;
    const m = this.c.m;
    const id = m.mapping[head];
    const owner = id ? core.mappings.get(id) : undefined;
    const linear = v.pgoff + Math.floor((addr - v.start) / PAGE_SIZE);
    if (m.flags[head] & PG_anon) {
      if (!(owner instanceof AnonVma) || !owner.vmas.has(v))
        this.c.report(`${this.at(addr)}: ${what}: anon folio's anon_vma ${id} does not reach this VMA`, pfn);
    } else if (id !== 0) {
      if (!(owner instanceof Inode) || v.file !== owner)
        this.c.report(
          `${this.at(addr)}: ${what}: page-cache folio's mapping ${id} is not this VMA's file`,
          pfn,
        );
    } else {
      if (!v.vmOps && !(v.flags & VM_MIXEDMAP))
        this.c.report(`${this.at(addr)}: ${what}: folio has no mapping`, pfn);
      return;
    }
    if (m.index[head] + (pfn - head) !== linear)
      this.c.report(
        `${this.at(addr)}: ${what}: folio index ${m.index[head]}+${pfn - head} but linear_page_index ${linear}`,
        pfn,
      );
  }

  private checkDevicePrivate(addr: number, pfn: number): boolean {
    const core = this.c.core;
    const m = this.c.m;
    const pg = m.valid(pfn) && m.flags[pfn] & PG_zone_device ? core.pgmapOf(pfn) : undefined;
    if (!pg || pg.type !== MEMORY_DEVICE_PRIVATE || pfn < pg.startPfn || pfn >= pg.endPfn) {
      this.c.report(
        `${this.at(addr)}: device-private entry to a pfn outside a live DEVICE_PRIVATE pgmap`,
        pfn,
      );
      return false;
    }
    return true;
  }

  table(pfn: number, level: 'pud' | 'pmd' | 'pte', addr: number): void {
    this.tables++;
    this.c.markTable(pfn, () => `${this.at(addr)} ${level} table`);
  }

  bad(addr: number, level: WalkLevel, lo: number, hi: number): void {
    this.c.report(`${this.at(addr)}: unexpected ${level} entry ${hex(hi)}:${hex(lo)}`);
  }

  pte(addr: number, lo: number, hi: number): void {
    const core = this.c.core;
    const m = this.c.m;
    const v = this.vmaFor(addr, PAGE_SIZE, 'PTE');
    const pfn = entryPfn(lo, hi);
    if (v && v.flags & VM_HUGETLB) this.c.report(`${this.at(addr)}: PTE in a hugetlb VMA`);
    if (lo & (_PAGE_PRESENT | _PAGE_PROTNONE)) {
      if (lo & _PAGE_SPECIAL) {
        if (pfn !== core.zeroPfn)
          this.c.report(`${this.at(addr)}: special PTE to pfn ${hex(pfn)} (not the zero page)`);
        else if (lo & _PAGE_RW) this.c.report(`${this.at(addr)}: writable zero-page PTE`);
        if (v && lo & _PAGE_PRESENT && !(v.flags & (VM_READ | VM_WRITE | VM_EXEC)))
          this.c.report(`${this.at(addr)}: accessible zero-page PTE in a PROT_NONE VMA`);
        return;
      }
      if (pfn === core.zeroPfn || pfn === core.hugeZeroPfn || !m.valid(pfn)) {
        this.c.report(`${this.at(addr)}: PTE maps pfn ${hex(pfn)} without _PAGE_SPECIAL`);
        return;
      }
      const head = m.head[pfn];
      this.c.addRef(head, 1);
      this.c.addPte(pfn);
      addRss(this.rss, mmCounter(core, head), 1);
      // An anonymous page is mapped at most once into each mm (the assumption of
      // __wp_can_reuse_large_anon_folio() and of the large mapcount's mm ids).
      if (m.flags[head] & PG_anon) {
        if (this.c.s.mmSeen[pfn] === this.mmStamp)
          this.c.report(`${this.at(addr)}: anonymous page mapped twice in one mm`, pfn);
        this.c.s.mmSeen[pfn] = this.mmStamp;
      }
      if (v) {
        this.checkPerm(v, addr, lo, head, pfn, 'PTE');
        this.checkRmap(v, addr, head, pfn, 'PTE');
      }
      return;
    }
    const type = swpType(lo);
    if (isSwapType(type)) {
      // A swap entry: pfn is the slot offset.
      const entry = swpEntryVal(type, pfn);
      this.rss.MM_SWAPENTS++;
      if (!swapEntryToInfo(core, entry))
        this.c.report(`${this.at(addr)}: swap PTE ${swpEntryName(entry)} names no swap slot`);
      else this.c.swapRefs.set(entry, (this.c.swapRefs.get(entry) ?? 0) + 1);
      if (v && !v.anonVma) this.c.report(`${this.at(addr)}: swap PTE in a VMA without an anon_vma`);
      return;
    }
    if (!m.valid(pfn)) {
      this.c.report(`${this.at(addr)}: software PTE (type ${type}) to invalid pfn ${hex(pfn)}`);
      return;
    }
    const head = m.head[pfn];
    if (isMigrationType(type)) {
      if (!this.c.inFlight)
        this.c.report(`${this.at(addr)}: migration PTE outside an in-flight migration`, pfn);
      addRss(this.rss, mmCounter(core, head), 1);
      return;
    }
    if (isDevicePrivateType(type) || type === SWP_DEVICE_EXCLUSIVE) {
      if (isDevicePrivateType(type) && !this.checkDevicePrivate(addr, pfn)) return;
      this.c.addRef(head, 1);
      this.c.addPte(pfn);
      addRss(this.rss, mmCounter(core, head), 1);
      if (v) {
        const w = type === SWP_DEVICE_WRITE;
        if (w && !(v.flags & VM_WRITE))
          this.c.report(`${this.at(addr)}: writable device entry without VM_WRITE`, pfn);
        if (w && m.flags[head] & PG_anon && !(m.flags[pfn] & PG_anon_exclusive))
          this.c.report(
            `${this.at(addr)}: writable device-private PTE to a page that is not AnonExclusive`,
            pfn,
          );
        this.checkRmap(v, addr, head, pfn, 'device PTE');
      }
      return;
    }
    this.c.report(`${this.at(addr)}: unexpected software PTE type ${type}`, pfn);
  }

  pmdLeaf(addr: number, lo: number, hi: number): void {
    const core = this.c.core;
    const m = this.c.m;
    const v = this.vmaFor(addr, PMD_SIZE, 'huge PMD');
    const pfn = entryPfn(lo, hi);
    if (v && v.flags & VM_HUGETLB) {
      if (!(lo & (_PAGE_PRESENT | _PAGE_PROTNONE)) || !m.valid(pfn) || !(m.flags[pfn] & PG_hugetlb)) {
        this.c.report(`${this.at(addr)}: hugetlb PMD does not map a hugetlb folio`, m.valid(pfn) ? pfn : -1);
        return;
      }
      this.c.addRef(pfn, 1);
      this.c.addEntire(pfn);
      if (lo & _PAGE_RW && !(v.flags & VM_WRITE))
        this.c.report(`${this.at(addr)}: writable hugetlb PMD without VM_WRITE`);
      return;
    }
    this.leafPmds.add(addr);
    if (!this.mm.deposits.has(addr))
      this.c.report(`${this.at(addr)}: huge PMD without a deposited page table`);
    const present = (lo & (_PAGE_PRESENT | _PAGE_PROTNONE)) !== 0;
    if (present && pfn === core.hugeZeroPfn && core.hugeZeroPfn >= 0) {
      if (lo & _PAGE_RW) this.c.report(`${this.at(addr)}: writable huge zero PMD`);
      if (v && lo & _PAGE_PRESENT && !(v.flags & (VM_READ | VM_WRITE | VM_EXEC)))
        this.c.report(`${this.at(addr)}: accessible huge zero PMD in a PROT_NONE VMA`);
      if (!this.mm.hugeZeroRef)
        this.c.report(`${this.at(addr)}: huge zero PMD in an mm without MMF_HUGE_ZERO_FOLIO`);
      return;
    }
    if (!m.valid(pfn) || m.head[pfn] !== pfn || m.folioOrder(pfn) !== HPAGE_PMD_ORDER) {
      this.c.report(
        `${this.at(addr)}: huge PMD does not map the head of a PMD-order folio`,
        m.valid(pfn) ? pfn : -1,
      );
      return;
    }
    if (present) {
      this.c.addRef(pfn, 1);
      this.c.addEntire(pfn);
      addRss(this.rss, mmCounter(core, pfn), HPAGE_PMD_NR);
      if (v) {
        this.checkPerm(v, addr, lo, pfn, pfn, 'huge PMD');
        this.checkRmap(v, addr, pfn, pfn, 'huge PMD');
      }
      return;
    }
    const type = swpType(lo);
    if (isMigrationType(type)) {
      if (!this.c.inFlight)
        this.c.report(`${this.at(addr)}: migration PMD outside an in-flight migration`, pfn);
      addRss(this.rss, mmCounter(core, pfn), HPAGE_PMD_NR);
      return;
    }
    if (isDevicePrivateType(type)) {
      if (!this.checkDevicePrivate(addr, pfn)) return;
      this.c.addRef(pfn, 1);
      this.c.addEntire(pfn);
      addRss(this.rss, mmCounter(core, pfn), HPAGE_PMD_NR);
      if (v) {
        const w = type === SWP_DEVICE_WRITE;
        if (w && !(v.flags & VM_WRITE))
          this.c.report(`${this.at(addr)}: writable device PMD without VM_WRITE`, pfn);
        if (w && m.flags[pfn] & PG_anon && !(m.flags[pfn] & PG_anon_exclusive))
          this.c.report(
            `${this.at(addr)}: writable device-private PMD to a folio that is not AnonExclusive`,
            pfn,
          );
        this.checkRmap(v, addr, pfn, pfn, 'device PMD');
      }
      return;
    }
    this.c.report(`${this.at(addr)}: unexpected software PMD type ${type}`, pfn);
  }
}
