import { PAGE_SIZE, PMD_SIZE } from './constants.js';
import type { Core } from './core.js';
import { AnonHugetlbFile, HUGETLB_ANON_FILE, HUGETLBFS_DEV } from './mm/hugetlbfs.js';
import { mmapReadLock, mmapReadUnlock } from './mm/locking.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo } from './mm/pgtable.js';
import { swapCount, swpEntryVal } from './mm/swapfile.js';
import type { MmStruct, Vma } from './mm/types.js';
import { VM_EXEC, VM_HUGETLB, VM_MAYSHARE, VM_READ, VM_WRITE } from './mm/types.js';
import {
  _PAGE_SOFT_DIRTY,
  _PAGE_SPECIAL,
  _PAGE_SWP_SOFT_DIRTY,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  isSwapType,
  SWP_MIGRATION_READ,
  SWP_MIGRATION_READ_EXCLUSIVE,
  SWP_MIGRATION_WRITE,
  swpType,
} from './pgtable/entry.js';
import { PG_anon, PG_anon_exclusive, PG_swapbacked } from './phys/memmap.js';
import type { KGen } from './sched/task.js';
import { RESCHED } from './sched/task.js';

/** Models PM_PRESENT (bit 63 of a /proc/pid/pagemap entry). */
export const PM_PRESENT = 1n << 63n;
/** Models PM_SWAP (bit 62). */
export const PM_SWAP = 1n << 62n;
/** Models PM_FILE (bit 61): file page or shared anonymous. */
export const PM_FILE = 1n << 61n;
/** Models PM_MMAP_EXCLUSIVE (bit 56). */
export const PM_MMAP_EXCLUSIVE = 1n << 56n;
/** Models PM_SOFT_DIRTY (bit 55). */
export const PM_SOFT_DIRTY = 1n << 55n;
const PM_PFN_MASK = (1n << 55n) - 1n;

/**
 * Models pte_to_pagemap_entry()/pagemap_pmd_range() (fs/proc/task_mmu.c): the 64-bit
 * pagemap entry of one virtual page. Present pages report the pfn; software entries
 * (device-private, migration) report PM_SWAP with type and offset; PMD-level entries report
 * each subpage.
 */
export function pagemapEntry(core: Core, mm: MmStruct, addr: number): bigint {
  const vma = mm.vmaLookup(addr);
  if (!vma || mm.pgd < 0) return 0n;
  const pmdT = pmdTableOf(core, mm, addr, false);
  if (pmdT < 0) return 0n;
  const mi = pmdIndex(addr);
  let lo = ptLo(core, pmdT, mi);
  let hi = ptHi(core, pmdT, mi);
  if (entryNone(lo, hi)) return 0n;
  let sub = 0;
  if (!entryPresent(lo) || entryHuge(lo)) {
    sub = pteIndex(addr);
  } else {
    const t = entryPfn(lo, hi);
    const i = pteIndex(addr);
    lo = ptLo(core, t, i);
    hi = ptHi(core, t, i);
    if (entryNone(lo, hi)) return 0n;
  }
  const m = core.map;
  if (entryPresent(lo)) {
    const pfn = entryPfn(lo, hi) + sub;
    let e = PM_PRESENT | (BigInt(pfn) & PM_PFN_MASK);
    if (lo & _PAGE_SOFT_DIRTY) e |= PM_SOFT_DIRTY;
    if (!(lo & _PAGE_SPECIAL) && pfn !== core.hugeZeroPfn + sub) {
      const head = m.head[pfn];
      if (!(m.flags[head] & PG_anon)) e |= PM_FILE;
      const mapped = m.flags[head] & PG_anon ? m.flags[sub ? head : pfn] & PG_anon_exclusive : 0;
      if (mapped || m.mapcount[pfn] + m.entireMapcount[head] === 1) e |= PM_MMAP_EXCLUSIVE;
    }
    return e;
  }
  const type = BigInt(swpType(lo));
  const off = BigInt(entryPfn(lo, hi) + sub);
  let e = PM_SWAP | ((type | (off << 5n)) & PM_PFN_MASK);
  if (lo & _PAGE_SWP_SOFT_DIRTY) e |= PM_SOFT_DIRTY;
  return e;
}

/**
 * Models pagemap_read() (fs/proc/task_mmu.c): with the mmap_lock held for read, the entries of
 * `count` pages from vaddr into `out` (one bigint each), PMD by PMD (pagemap_pmd_range(), a
 * preemption point between PMDs). With bug F14 switched on, a non-migration software PMD
 * (a device-private THP) trips the stale VM_WARN_ON_ONCE of pagemap_pmd_range_thp().
 */
export function* pagemapRead(
  core: Core,
  mm: MmStruct,
  vaddr: number,
  count: number,
  out: BigUint64Array,
): KGen {
  yield* mmapReadLock(core, mm, 'pagemap_read');
  try {
    let lastPmd = -1;
    for (let k = 0; k < count; k++) {
      const a = vaddr + k * PAGE_SIZE;
      const pmdIdx = Math.floor(a / PMD_SIZE);
      if (pmdIdx !== lastPmd) {
        if (lastPmd >= 0 && core.sched.preempt('pagemap_pmd_range: next PMD')) yield RESCHED;
        lastPmd = pmdIdx;
        if (core.bug('F14')) pagemapWarnOnDevicePmd(core, mm, a);
      }
      out[k] = pagemapEntry(core, mm, a);
    }
  } finally {
    mmapReadUnlock(core, mm, 'pagemap_read');
  }
}

/** The pre-fix VM_WARN_ON_ONCE(!pmd_is_migration_entry(pmd)) of pagemap_pmd_range_thp() (bug F14). */
function pagemapWarnOnDevicePmd(core: Core, mm: MmStruct, addr: number): void {
  if (!mm.vmaLookup(addr)) return;
  const pmdT = pmdTableOf(core, mm, addr, false);
  if (pmdT < 0) return;
  const lo = ptLo(core, pmdT, pmdIndex(addr));
  const hi = ptHi(core, pmdT, pmdIndex(addr));
  if (entryNone(lo, hi) || entryPresent(lo)) return;
  const t = swpType(lo);
  if (t !== SWP_MIGRATION_READ && t !== SWP_MIGRATION_WRITE && t !== SWP_MIGRATION_READ_EXCLUSIVE)
    core.warn('pagemap_pmd_range_thp: VM_WARN_ON_ONCE(!pmd_is_migration_entry(pmd))');
}

/** Models one VMA's block of /proc/pid/smaps (the fields this model tracks). */
export interface SmapsEntry {
  readonly start: number;
  readonly end: number;
  readonly flags: number;
  readonly name: string;
  /** Resident bytes (Rss). */
  rss: number;
  /** AnonHugePages: bytes of anonymous memory mapped by PMDs. */
  anonHugePages: number;
  /** Anonymous bytes. */
  anonymous: number;
  /** ShmemPmdMapped: bytes of shmem (tmpfs) THPs mapped by PMDs (mss->shmem_thp). */
  shmemPmdMapped: number;
  /** FilePmdMapped: bytes of other file THPs mapped by PMDs (mss->file_thp; none in the model). */
  filePmdMapped: number;
  /** Bytes in device-private / migration / device-exclusive entries (not resident on the CPU side; model-only). */
  swapLike: number;
  /** Swap: bytes of swap PTEs (smaps_pte_entry(): `mss->swap`). */
  swap: number;
  /**
   * SwapPss: each swap PTE's page divided by its swap count (swp_swapcount()), in bytes with the
   * kernel's fixed point (PSS_SHIFT 12, each share truncated): show_smap() prints it >> 10.
   */
  swapPss: number;
  /** Shared_Hugetlb: bytes of hugetlb pages mapped more than once, or not present (smaps_hugetlb_range()). */
  sharedHugetlb: number;
  /** Private_Hugetlb: bytes of hugetlb pages mapped once (smaps_hugetlb_range()). */
  privateHugetlb: number;
}

/**
 * Models vm_normal_page() (mm/memory.c) for a present PTE: the pfn of the struct page the
 * mapping counts, or -1 when there is none. A special PTE (`pte_special()`: the zero page,
 * pfn maps) and the shared zero page (`is_zero_pfn()`) have no "normal" page, so rmap, RSS and
 * smaps never account them.
 */
export function vmNormalPage(core: Core, lo: number, hi: number): number {
  const pfn = entryPfn(lo, hi);
  if (lo & _PAGE_SPECIAL || pfn === core.zeroPfn) return -1;
  return pfn;
}

/**
 * Models vm_normal_page_pmd() (mm/memory.c) for a present huge PMD: -1 for a special PMD
 * (`pmd_special()`) or the huge zero folio (`is_huge_zero_pfn()`), else the head pfn.
 */
export function vmNormalPagePmd(core: Core, lo: number, hi: number): number {
  const pfn = entryPfn(lo, hi);
  if (lo & _PAGE_SPECIAL || pfn === core.hugeZeroPfn) return -1;
  return pfn;
}

/**
 * Models show_smap() for every VMA (fs/proc/task_mmu.c): Rss, Anonymous, AnonHugePages, Swap,
 * SwapPss, Shared_Hugetlb and Private_Hugetlb. smaps_pte_entry() and smaps_pmd_entry() account a present
 * entry only through vm_normal_page()/vm_normal_page_pmd(), so the zero page and the huge zero
 * folio are not in Rss (nor Anonymous). A hugetlb VMA is walked by smaps_hugetlb_range() only,
 * which counts its pages in Shared_Hugetlb / Private_Hugetlb and never in Rss or Anonymous.
 */
export function smaps(core: Core, mm: MmStruct): SmapsEntry[] {
  const out: SmapsEntry[] = [];
  for (const v of mm.vmas) out.push(smapsVma(core, v));
  return out;
}

/** Models get_vma_name() (fs/proc/task_mmu.c) for the mappings this model has (null: anonymous). */
export function vmaName(v: Vma): string | null {
  if (v.vmOps) return v.vmOps.name;
  if (v.file) {
    // shmem_zero_setup()'s file of a shared anonymous mapping is "/dev/zero (deleted)".
    if (v.file.name === 'dev/zero') return '/dev/zero (deleted)';
    // hugetlb_file_setup()'s file of a MAP_SHARED|MAP_HUGETLB mapping: a pseudo file, unlinked.
    if (v.file.hugetlbfs && v.file.name === HUGETLB_ANON_FILE) return `/${HUGETLB_ANON_FILE} (deleted)`;
    return v.file.unlinked && !v.file.name.endsWith('(deleted)') ? `${v.file.name} (deleted)` : v.file.name;
  }
  return v.flags & VM_HUGETLB ? `/${HUGETLB_ANON_FILE} (deleted)` : null;
}

/** Models the width seq_setwidth() gives the maps prefix: 25 + sizeof(void *) * 6 - 1. */
const MAPS_NAME_COLUMN = 25 + 8 * 6 - 1;

/**
 * Models show_vma_header_prefix() + show_map_vma() (fs/proc/task_mmu.c): `start-end perms
 * offset dev inode ` and, for a named mapping, padding to column 72, a space and the name.
 * Offsets are pgoff << PAGE_SHIFT for file mappings; a shmem file shows the internal shm
 * mount's device (00:01), anything else 00:00.
 */
export function mapsLine(v: Vma): string {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const f = v.flags;
  const perms =
    (f & VM_READ ? 'r' : '-') +
    (f & VM_WRITE ? 'w' : '-') +
    (f & VM_EXEC ? 'x' : '-') +
    (f & VM_MAYSHARE ? 's' : 'p');
  const off = v.file || v.vmOps ? v.pgoff * PAGE_SIZE : 0;
  // A MAP_HUGETLB mapping always has a hugetlbfs file (private ones too, hugetlb_file_setup()).
  const anonHuge = v.vmFile instanceof AnonHugetlbFile ? v.vmFile : null;
  const dev = v.file?.hugetlbfs || anonHuge ? HUGETLBFS_DEV : v.file ? '00:01' : '00:00';
  const ino = v.file ? v.file.ino : anonHuge ? anonHuge.ino : 0;
  const line = `${hex(v.start)}-${hex(v.end)} ${perms} ${hex(off)} ${dev} ${ino} `;
  const name = vmaName(v);
  return name === null ? line : `${line.padEnd(MAPS_NAME_COLUMN)} ${name}`;
}

/** Models show_map() (fs/proc/task_mmu.c) for every VMA: the text of /proc/self/maps. */
export function mapsText(mm: MmStruct): string {
  let out = '';
  for (const v of mm.vmas) out += `${mapsLine(v)}\n`;
  return out;
}

/**
 * Models the memory lines of /proc/pid/status (task_mem(), fs/proc/task_mmu.c): VmSize from the
 * VMAs, VmRSS and its RssAnon / RssFile / RssShmem split from the rss counters, VmPTE and VmSwap.
 * The model's status file has these lines only (after Pid), not the kernel's other fields.
 */
export function statusText(pid: number, mm: MmStruct): string {
  let totalVm = 0;
  for (const v of mm.vmas) totalVm += v.end - v.start;
  const kb = (pages: number) => `${String(pages * (PAGE_SIZE / 1024)).padStart(8)} kB`;
  const { MM_ANONPAGES: anon, MM_FILEPAGES: file, MM_SHMEMPAGES: shmem, MM_SWAPENTS: swap } = mm.rss;
  return (
    `Pid:\t${pid}\n` +
    `VmSize:\t${kb(totalVm / PAGE_SIZE)}\n` +
    `VmRSS:\t${kb(anon + file + shmem)}\n` +
    `RssAnon:\t${kb(anon)}\n` +
    `RssFile:\t${kb(file)}\n` +
    `RssShmem:\t${kb(shmem)}\n` +
    `VmPTE:\t${String(mm.pgtablesBytes / 1024).padStart(8)} kB\n` +
    `VmSwap:\t${kb(swap)}\n`
  );
}

function smapsVma(core: Core, v: Vma): SmapsEntry {
  const mm = v.mm;
  const e: SmapsEntry = {
    start: v.start,
    end: v.end,
    flags: v.flags,
    name: vmaName(v) ?? '',
    rss: 0,
    anonHugePages: 0,
    shmemPmdMapped: 0,
    filePmdMapped: 0,
    anonymous: 0,
    swapLike: 0,
    swap: 0,
    swapPss: 0,
    sharedHugetlb: 0,
    privateHugetlb: 0,
  };
  if (v.flags & VM_HUGETLB) {
    smapsHugetlbRange(core, v, e);
    return e;
  }
  const m = core.map;
  for (let a = v.start; a < v.end; ) {
    const pmdT = pmdTableOf(core, mm, a, false);
    const next = Math.min(v.end, (Math.floor(a / PMD_SIZE) + 1) * PMD_SIZE);
    if (pmdT < 0) {
      a = next;
      continue;
    }
    const mi = pmdIndex(a);
    const lo = ptLo(core, pmdT, mi);
    const hi = ptHi(core, pmdT, mi);
    if (entryNone(lo, hi)) {
      a = next;
      continue;
    }
    if (!entryPresent(lo)) {
      e.swapLike += next - a;
      a = next;
      continue;
    }
    if (entryHuge(lo)) {
      // smaps_pmd_entry(): vm_normal_page_pmd() is NULL for the huge zero folio.
      const pfn = vmNormalPagePmd(core, lo, hi);
      if (pfn < 0) {
        a = next;
        continue;
      }
      e.rss += next - a;
      // smaps_pmd_entry(): anonymous, else shmem (swap-backed), else file THP.
      if (m.flags[pfn] & PG_anon) {
        e.anonymous += next - a;
        e.anonHugePages += next - a;
      } else if (m.flags[pfn] & PG_swapbacked) e.shmemPmdMapped += next - a;
      else e.filePmdMapped += next - a;
      a = next;
      continue;
    }
    const t = entryPfn(lo, hi);
    for (; a < next; a += PAGE_SIZE) {
      const i = pteIndex(a);
      const plo = ptLo(core, t, i);
      const phi = ptHi(core, t, i);
      if (entryNone(plo, phi)) continue;
      if (!entryPresent(plo)) {
        if (isSwapType(swpType(plo))) smapsSwapEntry(core, plo, phi, e);
        else e.swapLike += PAGE_SIZE;
        continue;
      }
      // smaps_pte_entry(): vm_normal_page() is NULL for the zero page (a special PTE).
      const pfn = vmNormalPage(core, plo, phi);
      if (pfn < 0) continue;
      e.rss += PAGE_SIZE;
      if (m.flags[m.head[pfn]] & PG_anon) e.anonymous += PAGE_SIZE;
    }
  }
  return e;
}

/** Models PSS_SHIFT (fs/proc/task_mmu.c): the fixed point of the Pss sums. */
const PSS_SHIFT = 12;

/**
 * Models smaps_pte_entry()'s swap branch (fs/proc/task_mmu.c): a swap PTE adds a page to Swap
 * and the page divided by its swap count (swp_swapcount(): the PTEs that share the slot) to
 * SwapPss, truncated in PSS_SHIFT fixed point as do_div() truncates.
 */
function smapsSwapEntry(core: Core, lo: number, hi: number, e: SmapsEntry): void {
  e.swap += PAGE_SIZE;
  const mapcount = swapCount(core, swpEntryVal(swpType(lo), entryPfn(lo, hi)));
  const share =
    mapcount >= 2 ? Math.floor((PAGE_SIZE * 2 ** PSS_SHIFT) / mapcount) : PAGE_SIZE * 2 ** PSS_SHIFT;
  e.swapPss += share / 2 ** PSS_SHIFT;
}

/**
 * Models smaps_hugetlb_range() (fs/proc/task_mmu.c) over a hugetlb VMA (PMD-sized pages): a
 * present entry's folio, or the folio of a non-present entry that has a pfn (a migration
 * entry), counts its huge page size in Shared_Hugetlb when the entry is not present ("maybe
 * shared") or folio_maybe_mapped_shared() (a hugetlb folio: mapped more than once), else in
 * Private_Hugetlb. Nothing goes to Rss or Anonymous.
 */
function smapsHugetlbRange(core: Core, v: Vma, e: SmapsEntry): void {
  for (let a = Math.floor(v.start / PMD_SIZE) * PMD_SIZE; a < v.end; a += PMD_SIZE) {
    const pmdT = pmdTableOf(core, v.mm, a, false);
    if (pmdT < 0) continue;
    const lo = ptLo(core, pmdT, pmdIndex(a));
    const hi = ptHi(core, pmdT, pmdIndex(a));
    if (entryNone(lo, hi)) continue;
    const present = entryPresent(lo);
    const folio = core.map.head[entryPfn(lo, hi)];
    if (!present || core.map.entireMapcount[folio] > 1) e.sharedHugetlb += PMD_SIZE;
    else e.privateHugetlb += PMD_SIZE;
  }
}
