import {
  type AnonVma,
  allocDeposit,
  anonVmaPrepare,
  type Core,
  depositTable,
  EINVAL,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  folioAddNewAnonRmap,
  folioGet,
  folioIsDevicePrivate,
  folioIsZoneDevice,
  freeTable,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  type KGen,
  type KMaybe,
  linearPageIndex,
  MEMORY_DEVICE_COHERENT,
  mkHi,
  mkPmdLo,
  mkPteLo,
  mkSwpLo,
  PAGE_SIZE,
  PG_head,
  PG_large_rmappable,
  PG_lru,
  PG_uptodate,
  PMD_SIZE,
  pmdIndex,
  pmdLock,
  pmdTableOf,
  prepCompound,
  pteIndex,
  pteLock,
  pteTableOf,
  ptHi,
  ptLo,
  ptlUnlock,
  ptSet,
  RESCHED,
  reschedThen,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  splitHugePmd,
  VM_EXEC,
  VM_READ,
  VM_WRITE,
  type Vma,
} from '@hmm-model/mm-core';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  type MigrateVma,
  migratePfnToPage,
  mpfnClear,
  mpfnFlags,
} from './types.js';

/**
 * Models thp_vma_suitable_order(vma, addr, HPAGE_PMD_ORDER) for an anonymous VMA (the pgoff
 * alignment test applies to file VMAs only): the aligned PMD around addr lies inside the VMA.
 */
function thpVmaSuitableOrder(vma: Vma, addr: number): boolean {
  const haddr = addr - (addr % PMD_SIZE);
  return haddr >= vma.start && haddr + PMD_SIZE <= vma.end;
}

/** Models vma->vm_page_prot being PAGE_NONE: a PROT_NONE VMA's entries are protnone. */
function protNone(vma: Vma): boolean {
  return (vma.flags & (VM_READ | VM_WRITE | VM_EXEC)) === 0;
}

/**
 * Models migrate_vma_insert_huge_pmd_page(): map a PMD-order destination folio into an empty
 * (or huge-zero) PMD: a device-private PMD entry or a huge PMD, MM_ANONPAGES += 512, exclusive
 * PMD rmap, deposited table, THP_FAULT_ALLOC. The page table to deposit is allocated before the
 * PMD lock is taken (a window in which another thread may fault the PMD in); under the lock the
 * address space must be stable (not being reaped) and the PMD still none or huge zero. Any abort
 * clears MIGRATE on all 512 src slots; -EINVAL when the VMA cannot hold the PMD (then only the
 * head slot loses MIGRATE). Bugs: F11, the unstable-address-space abort keeps the PMD lock;
 * F12, the aborts after the allocation leak the page table.
 */
function* insertHugePmdPage(
  core: Core,
  vma: Vma,
  addr: number,
  folio: number,
  src: Float64Array,
  si: number,
  pmdT: number,
): KGen<number> {
  const mm = vma.mm;
  if (!thpVmaSuitableOrder(vma, addr)) return -EINVAL;
  if (addr % PMD_SIZE !== 0) {
    // The kernel would map the PMD at the aligned-down address with the rmap index of `addr`;
    // only a driver that gives a compound destination to an unaligned small hole gets here.
    core.warn('migrate_vma_insert_huge_pmd_page: unaligned address');
    return -EINVAL;
  }
  const av = anonVmaPrepare(core, vma);
  const m = core.map;
  if (!(m.flags[folio] & PG_head)) prepCompound(core, folio, HPAGE_PMD_ORDER, true);
  m.flags[folio] |= PG_large_rmappable | PG_uptodate;
  const abort = () => {
    for (let k = 0; k < HPAGE_PMD_NR; k++) src[si + k] = mpfnClear(src[si + k], MIGRATE_PFN_MIGRATE);
    return 0;
  };
  const table = allocDeposit(core, mm);
  if (table < 0) return abort();
  const freeAbort = () => {
    if (!core.bug('F12')) freeTable(core, mm, table);
    return abort();
  };
  let lo: number;
  if (folioIsDevicePrivate(core, folio)) {
    lo = mkSwpLo(vma.flags & VM_WRITE ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, folio);
  } else {
    if (folioIsZoneDevice(core, folio) && core.pgmapOf(folio)?.type !== MEMORY_DEVICE_COHERENT)
      return freeAbort();
    const w = (vma.flags & VM_WRITE) !== 0;
    lo = mkPmdLo(folio, w, w, true, protNone(vma));
  }
  if (core.sched.preempt('migrate_vma_insert_huge_pmd_page: page table allocated, PMD lock not taken'))
    yield RESCHED;
  const ptl = pmdLock(core, pmdT, 'migrate_vma_insert_huge_pmd_page');
  // check_stable_address_space(): the OOM reaper is tearing the mm down.
  if (mm.unstable) {
    if (core.bug('F11')) return abort();
    ptlUnlock(core, ptl, 'migrate_vma_insert_huge_pmd_page');
    return freeAbort();
  }
  const mi = pmdIndex(addr);
  const olo = ptLo(core, pmdT, mi);
  const ohi = ptHi(core, pmdT, mi);
  let flush = false;
  if (!entryNone(olo, ohi)) {
    if (!(entryPresent(olo) && entryHuge(olo) && entryPfn(olo, ohi) === core.hugeZeroPfn)) {
      ptlUnlock(core, ptl, 'migrate_vma_insert_huge_pmd_page');
      return freeAbort();
    }
    flush = true;
  }
  mm.rss.MM_ANONPAGES += HPAGE_PMD_NR;
  folioAddNewAnonRmap(core, folio, av.id, linearPageIndex(vma, addr), true);
  if (!folioIsZoneDevice(core, folio)) m.flags[folio] |= PG_lru;
  folioGet(core, folio);
  if (flush) {
    freeTable(core, mm, table);
    mm.tlb.flushRange(addr, addr + PMD_SIZE);
  } else depositTable(mm, addr, table);
  ptSet(core, pmdT, mi, lo, mkHi(folio));
  ptlUnlock(core, ptl, 'migrate_vma_insert_huge_pmd_page');
  core.vmstat.thp_fault_alloc++;
  return 0;
}

/**
 * Models migrate_vma_insert_page() (mm/migrate_device.c): populate a hole (none or zero-page
 * PTE, or with a compound destination an empty PMD) of an anonymous VMA with the destination
 * page. On success src becomes exactly MIGRATE_PFN_MIGRATE; on abort MIGRATE is cleared.
 * Without a generator when nothing schedules (KMaybe: start a returned generator at once).
 */
export function migrateVmaInsertPage(
  core: Core,
  mig: MigrateVma,
  addr: number,
  di: number,
  si: number,
): KMaybe<void> {
  const ok = insertPage(core, mig, addr, di, si);
  if (typeof ok !== 'boolean') return insertPageThenAbort(mig, si, ok);
  if (!ok) mig.src[si] = mpfnClear(mig.src[si], MIGRATE_PFN_MIGRATE);
}

/** {@link migrateVmaInsertPage} when its body schedules: the abort once the body ends. */
function* insertPageThenAbort(mig: MigrateVma, si: number, body: KGen<boolean>): KGen {
  if (!(yield* body)) mig.src[si] = mpfnClear(mig.src[si], MIGRATE_PFN_MIGRATE);
}

/** The body of migrate_vma_insert_page(): false means "goto abort". */
function insertPage(core: Core, mig: MigrateVma, addr: number, di: number, si: number): KMaybe<boolean> {
  const vma = mig.vma!;
  const mm = vma.mm;
  const page = migratePfnToPage(mig.dst[di]);
  if (!vma.isAnonymous) return false;
  const pmdT = pmdTableOf(core, mm, addr, true);
  if (pmdT < 0) return false;
  if (mpfnFlags(mig.dst[di]) & MIGRATE_PFN_COMPOUND)
    return insertHugePmdPageOk(core, vma, addr, page, mig.src, si, pmdT);
  const mi = pmdIndex(addr);
  const plo = ptLo(core, pmdT, mi);
  const phi = ptHi(core, pmdT, mi);
  if (!entryNone(plo, phi)) {
    if (entryPresent(plo) && entryHuge(plo)) {
      if (entryPfn(plo, phi) !== core.hugeZeroPfn) return false;
      return insertPageAfterSplit(core, mig, addr, page, si, pmdT);
    }
    if (!entryPresent(plo)) return false;
  }
  return insertPagePte(core, mig, addr, page, si);
}

/** insertPage() with a compound destination: migrate_vma_insert_huge_pmd_page() succeeded. */
function* insertHugePmdPageOk(
  core: Core,
  vma: Vma,
  addr: number,
  page: number,
  src: Float64Array,
  si: number,
  pmdT: number,
): KGen<boolean> {
  return (yield* insertHugePmdPage(core, vma, addr, page, src, si, pmdT)) === 0;
}

/** insertPage() on a huge zero-page PMD: split it, then insert at PTE level. */
function* insertPageAfterSplit(
  core: Core,
  mig: MigrateVma,
  addr: number,
  page: number,
  si: number,
  pmdT: number,
): KGen<boolean> {
  yield* splitHugePmd(core, mig.vma!, pmdT, Math.floor(addr / PMD_SIZE) * PMD_SIZE, false);
  const ok = insertPagePte(core, mig, addr, page, si);
  return typeof ok === 'boolean' ? ok : yield* ok;
}

/** insertPage() at PTE level: build the entry, then set it under the PTE lock. */
function insertPagePte(core: Core, mig: MigrateVma, addr: number, page: number, si: number): KMaybe<boolean> {
  const vma = mig.vma!;
  const mm = vma.mm;
  const m = core.map;
  const pteT = pteTableOf(core, mm, addr, true);
  if (pteT < 0) return false;
  const av = anonVmaPrepare(core, vma);
  const folio = m.head[page];
  m.flags[folio] |= PG_uptodate;
  let lo: number;
  if (folioIsDevicePrivate(core, folio)) {
    lo = mkSwpLo(vma.flags & VM_WRITE ? SWP_DEVICE_WRITE : SWP_DEVICE_READ, page);
  } else {
    if (folioIsZoneDevice(core, folio) && core.pgmapOf(folio)?.type !== MEMORY_DEVICE_COHERENT) {
      core.warn('Unsupported ZONE_DEVICE page type.');
      return false;
    }
    const w = (vma.flags & VM_WRITE) !== 0;
    lo = mkPteLo(page, w, w, true, protNone(vma));
  }
  if (core.sched.preempt('migrate_vma_insert_page: entry built, PTE lock not taken'))
    return reschedThen(insertPteLocked, core, mig, addr, page, si, pteT, av, lo);
  return insertPteLocked(core, mig, addr, page, si, pteT, av, lo);
}

/** The end of insertPage() under the PTE lock: the PTE must still be none or the zero page. */
function insertPteLocked(
  core: Core,
  mig: MigrateVma,
  addr: number,
  page: number,
  si: number,
  pteT: number,
  av: AnonVma,
  lo: number,
): boolean {
  const vma = mig.vma!;
  const mm = vma.mm;
  const m = core.map;
  const folio = m.head[page];
  const ptl = pteLock(core, pteT, 'migrate_vma_insert_page');
  try {
    if (mm.unstable) return false;
    const i = pteIndex(addr);
    const olo = ptLo(core, pteT, i);
    const ohi = ptHi(core, pteT, i);
    if (entryPresent(olo)) {
      if (entryPfn(olo, ohi) !== core.zeroPfn) return false;
    } else if (!entryNone(olo, ohi)) return false;
    mm.rss.MM_ANONPAGES++;
    folioAddNewAnonRmap(core, folio, av.id, linearPageIndex(vma, addr), false);
    if (!folioIsZoneDevice(core, folio)) m.flags[folio] |= PG_lru;
    folioGet(core, folio);
    if (entryPresent(olo)) mm.tlb.flushRange(addr, addr + PAGE_SIZE);
    ptSet(core, pteT, i, lo, mkHi(page));
    mig.src[si] = MIGRATE_PFN_MIGRATE;
    return true;
  } finally {
    ptlUnlock(core, ptl, 'migrate_vma_insert_page');
  }
}
