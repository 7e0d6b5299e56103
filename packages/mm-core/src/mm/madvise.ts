import {
  EAGAIN,
  EINVAL,
  ENOMEM,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  HPAGE_PMD_SIZE,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  PMD_SIZE,
} from '../constants.js';
import type { Core } from '../core.js';
import { allocFolio, folioAddNewAnonRmap, folioPut, folioRemoveRmapPtes } from '../folio.js';
import {
  _PAGE_DIRTY,
  _PAGE_SPECIAL,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  mkHi,
  mkPmdLo,
} from '../pgtable/entry.js';
import { PG_anon, PG_dirty, PG_lru } from '../phys/memmap.js';
import type { KGen } from '../sched/task.js';
import { argInt, madviseArgs } from '../syscall-args.js';
import { anonVmaPrepare, linearPageIndex } from './anon.js';
import { addMmCounter } from './counters.js';
import { thpVmaAllowable } from './fault.js';
import { depositTable } from './huge.js';
import {
  mmapReadLock,
  mmapReadUnlock,
  mmapWriteLock,
  mmapWriteUnlock,
  pmdLock,
  pteLock,
  ptlUnlock,
} from './locking.js';
import { madviseColdOrPageout, madviseFreeSingleVma } from './madvise-lazy.js';
import { withInvalidation, withInvalidationSync } from './notifier.js';
import { pmdIndex, pmdTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import {
  MMU_NOTIFY_CLEAR,
  type MmStruct,
  VM_EXEC,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_LOCKED,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_READ,
  VM_SPECIAL,
  VM_WRITE,
  type Vma,
} from './types.js';
import { vmaModifyFlags } from './vma-merge.js';
import { zapRange } from './zap.js';

/**
 * Models collapse_huge_page() for MADV_COLLAPSE at one aligned PMD: every PTE must be none,
 * the zero page, or a present anonymous page; the data is copied into a new PMD-order folio
 * mapped by a huge PMD. Returns 0 or -errno (-EINVAL unsuitable, -ENOMEM allocation, -EAGAIN).
 */
function* collapsePmd(core: Core, vma: Vma, haddr: number): KGen<number> {
  const mm = vma.mm;
  const pmdT = pmdTableOf(core, mm, haddr, false);
  if (pmdT < 0) {
    return 0;
  }
  const mi = pmdIndex(haddr);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  if (entryNone(lo, hi)) return 0;
  if (!entryPresent(lo)) return -EAGAIN;
  if (entryHuge(lo)) return entryPfn(lo, hi) === core.hugeZeroPfn ? -EINVAL : 0;
  const pteT = entryPfn(lo, hi);
  const m = core.map;
  const scan = collapsible(core, pteT);
  if (scan) return scan;
  const folio = allocFolio(core, HPAGE_PMD_ORDER, false);
  if (folio < 0) return -ENOMEM;
  yield 'collapse_huge_page: folio allocated, PMD not yet isolated';
  return yield* withInvalidationSync(mm, haddr, haddr + PMD_SIZE, MMU_NOTIFY_CLEAR, null, () => {
    const pmdPtl = pmdLock(core, pmdT, 'collapse_huge_page');
    const ptePtl = pteLock(core, pteT, '__collapse_huge_page_isolate');
    // The PMD and its PTEs must still be what the scan saw.
    const still = ptLo(core, pmdT, mi) === lo && ptHi(core, pmdT, mi) === hi && collapsible(core, pteT) === 0;
    if (!still) {
      ptlUnlock(core, ptePtl, '__collapse_huge_page_isolate');
      ptlUnlock(core, pmdPtl, 'collapse_huge_page');
      folioPut(core, folio);
      return -EAGAIN;
    }
    let dirty = false;
    for (let i = 0; i < HPAGE_PMD_NR; i++) {
      const plo = ptLo(core, pteT, i);
      const phi = ptHi(core, pteT, i);
      if (entryNone(plo, phi) || plo & _PAGE_SPECIAL) {
        core.frames.zero(folio + i, 1);
      } else {
        const pfn = entryPfn(plo, phi);
        const head = m.head[pfn];
        core.frames.copy(folio + i, pfn, 1);
        if (plo & _PAGE_DIRTY) dirty = true;
        folioRemoveRmapPtes(core, head, pfn, 1);
        addMmCounter(mm, 'MM_ANONPAGES', -1);
        folioPut(core, head);
      }
      ptSet(core, pteT, i, 0, 0);
    }
    const av = anonVmaPrepare(core, vma);
    folioAddNewAnonRmap(core, folio, av.id, linearPageIndex(vma, haddr), true);
    m.flags[folio] |= PG_lru | (dirty ? PG_dirty : 0);
    addMmCounter(mm, 'MM_ANONPAGES', HPAGE_PMD_NR);
    // The emptied PTE table becomes the deposited table.
    depositTable(mm, haddr, pteT);
    // Models collapse_huge_page(): folio_mk_pmd(folio, vma->vm_page_prot) then
    // maybe_pmd_mkwrite(): protections come from the VMA (PROT_NONE stays inaccessible).
    const w = (vma.flags & VM_WRITE) !== 0;
    const none = !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC));
    ptSet(core, pmdT, mi, mkPmdLo(folio, w, true, true, none), mkHi(folio));
    core.vmstat.thp_collapse_alloc++;
    ptlUnlock(core, ptePtl, '__collapse_huge_page_isolate');
    ptlUnlock(core, pmdPtl, 'collapse_huge_page');
    return 0;
  });
}

/**
 * Models hpage_collapse_scan_pmd()'s PTE checks: every PTE none, the zero page, or a present
 * anonymous page with no references beyond its mappings. 0, -EINVAL or -EAGAIN.
 */
function collapsible(core: Core, pteT: number): number {
  const m = core.map;
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    const plo = ptLo(core, pteT, i);
    const phi = ptHi(core, pteT, i);
    if (entryNone(plo, phi)) continue;
    if (!entryPresent(plo)) return -EINVAL;
    if (plo & _PAGE_SPECIAL) continue;
    const pfn = entryPfn(plo, phi);
    if (!(m.flags[m.head[pfn]] & PG_anon)) return -EINVAL;
    if (m.refcount[m.head[pfn]] > m.mapcount[pfn] + (m.largeMapcount[m.head[pfn]] > 0 ? 511 : 0) + 1)
      return -EAGAIN;
  }
  return 0;
}

/**
 * Models madvise_need_mmap_write(): advices that change VMA flags take the mmap_lock for write.
 * MADV_COLLAPSE too, in the model: collapse_huge_page() drops the read lock and collapses under
 * mmap_write_lock(); the model holds the write lock for the whole advice (the scan cannot
 * interleave with faults, which it could in the kernel, but the collapse itself is excluded as
 * there: with the read lock only, a racing fault or zap reached the table being deposited).
 */
function needMmapWrite(advice: number): boolean {
  return (
    advice === MADV_NORMAL ||
    advice === MADV_HUGEPAGE ||
    advice === MADV_NOHUGEPAGE ||
    advice === MADV_COLLAPSE
  );
}

/**
 * Models do_madvise(): validation (-EINVAL for bad alignment or advice, -ENOMEM when part of
 * the range is unmapped, after applying to the mapped part), then the advice.
 */
export function* sysMadvise(
  core: Core,
  mm: MmStruct,
  addr: number,
  len: number,
  advice: number,
): KGen<number> {
  const adv = argInt(advice);
  if (adv === undefined) return -EINVAL;
  const known = [
    MADV_NORMAL,
    MADV_DONTNEED,
    MADV_FREE,
    MADV_COLD,
    MADV_PAGEOUT,
    MADV_HUGEPAGE,
    MADV_NOHUGEPAGE,
    MADV_COLLAPSE,
  ];
  if (!known.includes(adv)) return -EINVAL;
  const range = madviseArgs(addr, len);
  if (typeof range === 'number') return range;
  const start = range.start;
  const end = range.end;
  if (end === start) return 0;
  const write = needMmapWrite(adv);
  if (write) yield* mmapWriteLock(core, mm, 'madvise_lock');
  else yield* mmapReadLock(core, mm, 'madvise_lock');
  try {
    return yield* madviseLocked(core, mm, start, end, adv);
  } finally {
    if (write) mmapWriteUnlock(core, mm, 'madvise_unlock');
    else mmapReadUnlock(core, mm, 'madvise_unlock');
  }
}

/**
 * Models madvise_dontneed_free_valid_vma() (mm/madvise.c) for MADV_DONTNEED or MADV_FREE on one
 * VMA's part [start, end) of the range: the range to act on, or null for -EINVAL. A VM_LOCKED
 * or VM_PFNMAP VMA is refused. A hugetlb VMA takes only MADV_DONTNEED (VM_LOCKED does not
 * matter there), needs a start aligned to the huge page size, and has its end aligned down to
 * it ("madvise callers ... may be unaware that this VMA uses huge pages. Avoid unexpected data
 * loss by rounding down the number of huge pages freed"), so the range may become empty.
 */
export function madviseDontneedFreeValidVma(
  vma: Vma,
  behavior: number,
  start: number,
  end: number,
): [number, number] | null {
  if (!(vma.flags & VM_HUGETLB)) return vma.flags & (VM_LOCKED | VM_PFNMAP) ? null : [start, end];
  if (behavior !== MADV_DONTNEED) return null;
  // huge_page_size(hstate_vma(vma)): the model has one hstate, 2 MiB.
  if (start % HPAGE_PMD_SIZE) return null;
  return [start, Math.floor(end / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE];
}

/** do_madvise() with the mmap_lock held: the VMAs of [addr, end) and the advice. */
function* madviseLocked(core: Core, mm: MmStruct, addr: number, end: number, advice: number): KGen<number> {
  let unmapped = false;
  let cursor = addr;
  const vmas = mm.vmas.filter((v) => v.end > addr && v.start < end);
  if (vmas.length === 0) return -ENOMEM;
  for (const v of vmas) {
    if (v.start > cursor) unmapped = true;
    cursor = v.end;
  }
  if (cursor < end) unmapped = true;
  let err = 0;
  switch (advice) {
    case MADV_NORMAL:
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE: {
      // madvise_walk_vmas() -> madvise_update_vma(): a VMA whose flags do not change is left
      // alone; the others go through vma_modify_flags() (merge or split).
      for (let c = Math.max(addr, vmas[0].start); c < end; ) {
        const v = mm.findVma(c);
        if (!v || v.start >= end) break;
        const s = Math.max(c, v.start);
        const e = Math.min(end, v.end);
        let nf = v.flags;
        if (advice === MADV_HUGEPAGE) nf = (nf | VM_HUGEPAGE) & ~VM_NOHUGEPAGE;
        else if (advice === MADV_NOHUGEPAGE) nf = (nf | VM_NOHUGEPAGE) & ~VM_HUGEPAGE;
        if (nf !== v.flags) (yield* vmaModifyFlags(core, v, s, e, nf)).flags = nf;
        c = e;
      }
      break;
    }
    case MADV_DONTNEED: {
      const ranges: [Vma, number, number][] = [];
      for (const v of vmas) {
        const r = madviseDontneedFreeValidVma(v, advice, Math.max(addr, v.start), Math.min(end, v.end));
        if (r === null) return -EINVAL;
        ranges.push([v, r[0], r[1]]);
      }
      // madvise_dontneed_single_vma() -> zap_page_range_single_batched(): one MMU_NOTIFY_CLEAR
      // invalidation per VMA, over the VMA's part of the range (madvise_dontneed_free() returns 0
      // at once when a hugetlb range was aligned down to nothing).
      for (const [v, s, e] of ranges) {
        if (s === e) continue;
        yield* withInvalidation(mm, s, e, MMU_NOTIFY_CLEAR, null, () => zapRange(core, v, s, e));
      }
      break;
    }
    case MADV_FREE: {
      // madvise_dontneed_free_valid_vma() (no hugetlb), then madvise_free_single_vma() (anonymous only).
      for (const v of vmas)
        if (!madviseDontneedFreeValidVma(v, advice, addr, end) || !v.isAnonymous) return -EINVAL;
      for (const v of vmas)
        yield* madviseFreeSingleVma(core, v, Math.max(addr, v.start), Math.min(end, v.end));
      break;
    }
    case MADV_COLD:
    case MADV_PAGEOUT: {
      for (const v of vmas) if (v.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB)) return -EINVAL;
      for (const v of vmas)
        yield* madviseColdOrPageout(
          core,
          v,
          Math.max(addr, v.start),
          Math.min(end, v.end),
          advice === MADV_PAGEOUT,
        );
      break;
    }
    case MADV_COLLAPSE: {
      for (const v of vmas) {
        if (v.flags & (VM_SPECIAL | VM_HUGETLB)) return -EINVAL;
        const s = Math.ceil(Math.max(addr, v.start) / PMD_SIZE) * PMD_SIZE;
        const e = Math.floor(Math.min(end, v.end) / PMD_SIZE) * PMD_SIZE;
        for (let h = s; h < e; h += PMD_SIZE) {
          if (!thpVmaAllowable(core, v, h, true)) {
            err = -EINVAL;
            continue;
          }
          const r = yield* collapsePmd(core, v, h);
          if (r < 0) err = r;
        }
      }
      break;
    }
  }
  if (err) return err;
  return unmapped ? -ENOMEM : 0;
}
