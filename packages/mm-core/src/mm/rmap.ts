import { EBUSY, HPAGE_PMD_NR, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import {
  folioAddRmapPmd,
  folioAddRmapPtes,
  folioBugOn,
  folioGet,
  folioIsDevicePrivate,
  folioMapped,
  folioMaybeDmaPinned,
  folioPut,
  folioRemoveRmapPmd,
  folioRemoveRmapPtes,
} from '../folio.js';
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  _PAGE_SOFT_DIRTY,
  _PAGE_SPECIAL,
  _PAGE_SWP_SOFT_DIRTY,
  _PAGE_SWP_UFFD_WP,
  _PAGE_UFFD_WP,
  _PAGE_USER,
  entryHuge,
  entryNone,
  entryPfn,
  entryPresent,
  isMigrationType,
  mkHi,
  mkLo,
  mkPmdLo,
  mkPteLo,
  mkSwpLo,
  SWP_DEVICE_EXCLUSIVE,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  SWP_MIG_DIRTY,
  SWP_MIG_YOUNG,
  SWP_MIGRATION_READ,
  SWP_MIGRATION_READ_EXCLUSIVE,
  SWP_MIGRATION_WRITE,
  swpType,
} from '../pgtable/entry.js';
import { BLOCK_PAGES } from '../phys/frames.js';
import { PG_anon, PG_anon_exclusive, PG_dirty, PG_head, PG_tail } from '../phys/memmap.js';
import type { RwSem } from '../sched/locks.js';
import { isKGen, type KGen, type KMaybe } from '../sched/task.js';
import { addMmCounter } from './counters.js';
import { splitHugePmdLocked } from './huge.js';
import { assertPtlHeld, pmdLock, pteLock, ptlUnlock } from './locking.js';
import { withInvalidationNoWait } from './notifier.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo, ptSet } from './pgtable.js';
import { PageVmaMappedWalk } from './pvmw.js';
import {
  type AnonVma,
  type Inode,
  MMU_NOTIFY_CLEAR,
  type MmStruct,
  VM_EXEC,
  VM_LOCKED,
  VM_READ,
  VM_WRITE,
  type Vma,
} from './types.js';

/**
 * Models rmap_walk() (mm/rmap.c): the VMAs that may map the folio (its anon_vma's VMAs or its
 * file's i_mmap) with the address its first page would have in each.
 */
export function rmapVmas(core: Core, head: number): { vma: Vma; addr: number }[] {
  const m = core.map;
  core.events.rmapWalks++;
  const owner = core.mappingOf(m.mapping[head]);
  const vmas = owner === undefined ? undefined : owner.anon ? owner.vmas : owner.mmaps;
  if (!vmas) return [];
  const index = m.index[head];
  const nr = m.folioNrPages(head);
  const out: { vma: Vma; addr: number }[] = [];
  for (const vma of vmas) {
    const addr = vma.start + (index - vma.pgoff) * PAGE_SIZE;
    if (addr + nr * PAGE_SIZE <= vma.start || addr >= vma.end) continue;
    out.push({ vma, addr });
  }
  return out;
}

/**
 * Models folio_lock_anon_vma_read()/i_mmap_lock_read()'s lock: the rwsem protecting the folio's
 * rmap (the root anon_vma's, or the file's i_mmap_rwsem), or null for a folio without mapping.
 */
export function rmapLockOf(core: Core, head: number): RwSem | null {
  const owner = core.mappingOf(core.map.mapping[head]);
  if (owner === undefined) return null;
  return owner.anon ? owner.root.rwsem : owner.immapRwsem;
}

/** Models rmap_walk()'s locking: take the folio's rmap lock for read; returns it (or null). */
export function* rmapLockRead(core: Core, head: number, site: string): KGen<RwSem | null> {
  const l = rmapLockOf(core, head);
  if (l) yield* l.downRead(core.sched, site);
  return l;
}

/** Releases what {@link rmapLockRead} took. */
export function rmapUnlockRead(core: Core, l: RwSem | null, site: string): void {
  l?.upRead(core.sched, site);
}

/**
 * Models the entry-building half of set_pmd_migration_entry() and of the PTE unmap paths: the
 * low word of the migration entry replacing a present, device-private or device-exclusive
 * entry `lo` of page `pfn`: writable, readable-exclusive or readable; young/dirty only from a
 * present entry (dirty also marks the folio dirty); soft-dirty and uffd-wp carried over.
 * `exclusiveWrite`: a device-exclusive entry counts as writable (VM_WRITE on an exclusive page).
 */
function migrationEntryLo(
  core: Core,
  lo: number,
  head: number,
  pfn: number,
  exclusive: boolean,
  exclusiveWrite: boolean,
): number {
  let write: boolean;
  let bits = 0;
  if (entryPresent(lo)) {
    write = (lo & _PAGE_RW) !== 0;
    if (lo & _PAGE_ACCESSED) bits |= SWP_MIG_YOUNG;
    if (lo & _PAGE_DIRTY) {
      bits |= SWP_MIG_DIRTY;
      core.map.flags[head] |= PG_dirty;
    }
    if (lo & _PAGE_SOFT_DIRTY) bits |= _PAGE_SWP_SOFT_DIRTY;
    if (lo & _PAGE_UFFD_WP) bits |= _PAGE_SWP_UFFD_WP;
  } else {
    const t = swpType(lo);
    write = t === SWP_DEVICE_WRITE || (t === SWP_DEVICE_EXCLUSIVE && exclusiveWrite && exclusive);
    bits |= lo & (_PAGE_SWP_SOFT_DIRTY | _PAGE_SWP_UFFD_WP);
  }
  const type = write ? SWP_MIGRATION_WRITE : exclusive ? SWP_MIGRATION_READ_EXCLUSIVE : SWP_MIGRATION_READ;
  return mkSwpLo(type, pfn, bits);
}

/**
 * Models set_pmd_migration_entry() (mm/huge_memory.c): replace a present or device-private
 * PMD by a PMD migration entry, drop its rmap and reference. -EBUSY (PMD untouched) when an
 * anon-exclusive folio cannot be made shared because it may be pinned.
 */
export function setPmdMigrationEntry(core: Core, vma: Vma, pmdT: number, haddr: number): number {
  assertPtlHeld(core, pmdT, 'set_pmd_migration_entry');
  const mi = pmdIndex(haddr);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  const pfn = entryPfn(lo, hi);
  const m = core.map;
  const head = m.head[pfn];
  const exclusive = (m.flags[head] & PG_anon_exclusive) !== 0;
  if (exclusive && folioMaybeDmaPinned(core, head)) return -EBUSY;
  ptSet(core, pmdT, mi, migrationEntryLo(core, lo, head, head, exclusive, false), mkHi(head));
  vma.mm.tlb.flushRange(haddr, haddr + PMD_SIZE);
  folioRemoveRmapPmd(core, head);
  m.flags[head] &= ~PG_anon_exclusive;
  folioPut(core, head);
  return 0;
}

/**
 * Models the PTE half of try_to_migrate_one()/migrate_vma_collect_pmd(): turn one present,
 * device-private or device-exclusive PTE into a migration entry (writable, readable-exclusive
 * or readable), moving dirty to the folio; drop the rmap and the mapping's reference.
 * Returns false (entry untouched) when an exclusive page may be pinned.
 */
export function setPteMigrationEntry(core: Core, vma: Vma, pteT: number, addr: number): boolean {
  // ptLo()/ptHi() with one block lookup.
  const words = core.frames.block32(pteT);
  return setPteMigrationEntryAt(
    core,
    vma,
    pteT,
    addr,
    words,
    ((pteT & (BLOCK_PAGES - 1)) << 10) + (pteIndex(addr) << 1),
  );
}

/**
 * {@link setPteMigrationEntry} for a caller that holds the words of table pteT
 * (Frames.block32()) and the entry's offset in them: a PTE walk under its lock.
 *
 * The TLB: try_to_migrate_one() clears a present PTE with ptep_clear_flush() (x86 flushes only
 * an accessible, i.e. present, entry) and a device-private one with ptep_get_and_clear() (no
 * flush). migrate_vma_collect_pmd() uses ptep_clear_flush() only for an anon-exclusive page and
 * flushes the rest with one flush_tlb_range() after the walk: it passes deferFlush, and must
 * flush the range itself when this returned true.
 */
export function setPteMigrationEntryAt(
  core: Core,
  vma: Vma,
  pteT: number,
  addr: number,
  words: Uint32Array,
  off: number,
  deferFlush = false,
): boolean {
  assertPtlHeld(core, pteT, 'try_to_migrate_one');
  const lo = words[off];
  const hi = words[off + 1];
  const pfn = entryPfn(lo, hi);
  const m = core.map;
  const head = m.head[pfn];
  const exclusive = (m.flags[pfn] & PG_anon_exclusive) !== 0;
  if (exclusive && folioMaybeDmaPinned(core, head)) return false;
  const exclusiveWrite = (vma.flags & VM_WRITE) !== 0;
  // set_pte_at() on the words read above.
  words[off] = migrationEntryLo(core, lo, head, pfn, exclusive, exclusiveWrite);
  words[off + 1] = mkHi(pfn);
  core.events.ptesWritten++;
  core.events.entries.note(core, pteT, words[off], words[off + 1]);
  if (entryPresent(lo) && (exclusive || !deferFlush)) vma.mm.tlb.flushRange(addr, addr + PAGE_SIZE);
  folioRemoveRmapPtes(core, head, pfn, 1);
  m.flags[pfn] &= ~PG_anon_exclusive;
  folioPut(core, head);
  return true;
}

/** Models enum ttu_flags: TTU_SPLIT_HUGE_PMD. */
export const TTU_SPLIT_HUGE_PMD = 0x4;

/**
 * Models try_to_migrate() (mm/rmap.c): replace every mapping of the folio in every process by
 * a migration entry. PMD mappings become PMD migration entries, or with TTU_SPLIT_HUGE_PMD are
 * split (freezing) into PTE migration entries. Stops at a mapping that cannot be converted
 * (possibly pinned); the caller sees the folio still mapped. Per VMA (try_to_migrate_one()): an
 * MMU_NOTIFY_CLEAR invalidation, then the page_vma_mapped_walk() under the page-table locks.
 * `rmapLocked`: the caller holds the rmap lock (TTU_RMAP_LOCKED, as the folio split does).
 */
export function* tryToMigrate(core: Core, head: number, flags = 0, rmapLocked = false): KGen {
  const r = tryToMigrateNoWait(core, head, flags, rmapLocked);
  if (isKGen(r)) yield* r;
}

/**
 * {@link tryToMigrate} without a generator when nothing sleeps (KMaybe: undefined when done,
 * else the generator that goes on from the rmap lock or the invalidation that sleeps).
 */
export function tryToMigrateNoWait(core: Core, head: number, flags = 0, rmapLocked = false): KMaybe<void> {
  const nr = core.map.folioNrPages(head);
  const lock = rmapLocked ? null : rmapLockOf(core, head);
  if (lock && !lock.downReadNoWait(core.sched, 'try_to_migrate'))
    return tryToMigrateFrom(core, head, nr, flags, lock, null, 0, null);
  let handedOn = false;
  try {
    const vmas = rmapVmas(core, head);
    for (let k = 0; k < vmas.length; k++) {
      const stop = tryToMigrateVma(core, head, nr, flags, vmas[k]);
      if (typeof stop !== 'boolean') {
        handedOn = true;
        return tryToMigrateFrom(core, head, nr, flags, lock, vmas, k, stop);
      }
      if (stop) return;
    }
  } finally {
    if (!handedOn) rmapUnlockRead(core, lock, 'try_to_migrate');
  }
}

/** One VMA of try_to_migrate()'s rmap walk: the invalidation around try_to_migrate_one(). */
function tryToMigrateVma(
  core: Core,
  head: number,
  nr: number,
  flags: number,
  { vma, addr }: { vma: Vma; addr: number },
): KMaybe<boolean> {
  return withInvalidationNoWait(
    vma.mm,
    Math.max(addr, vma.start),
    Math.min(addr + nr * PAGE_SIZE, vma.end),
    MMU_NOTIFY_CLEAR,
    null,
    () => tryToMigrateOne(core, vma, head, nr, addr, flags),
  );
}

/**
 * The rest of {@link tryToMigrateNoWait} as a generator: with `vmas` null, from the rmap lock
 * (which sleeps); else from VMA k, whose invalidation sleeps in `pending` (the lock is held).
 */
function* tryToMigrateFrom(
  core: Core,
  head: number,
  nr: number,
  flags: number,
  lock: RwSem | null,
  from: { vma: Vma; addr: number }[] | null,
  k: number,
  pending: KGen<boolean> | null,
): KGen {
  if (from === null && lock) yield* lock.downRead(core.sched, 'try_to_migrate');
  try {
    const vmas = from ?? rmapVmas(core, head);
    for (let j = k; j < vmas.length; j++) {
      let stop: KMaybe<boolean>;
      if (j === k && pending) stop = yield* pending;
      else stop = tryToMigrateVma(core, head, nr, flags, vmas[j]);
      if (typeof stop !== 'boolean') stop = yield* stop;
      if (stop) return;
    }
  } finally {
    rmapUnlockRead(core, lock, 'try_to_migrate');
  }
}

/** try_to_migrate_one() after its invalidation started: true means "stop the rmap walk". */
function tryToMigrateOne(
  core: Core,
  vma: Vma,
  head: number,
  nr: number,
  addr: number,
  flags: number,
): boolean {
  const m = core.map;
  const pvmw = new PageVmaMappedWalk(core, vma, head, nr, addr, false);
  while (pvmw.walk()) {
    if (!pvmw.pte) {
      const ptl = pmdLock(core, pvmw.pmdT, 'try_to_migrate_one');
      try {
        if (flags & TTU_SPLIT_HUGE_PMD) {
          if (m.flags[head] & PG_anon_exclusive && folioMaybeDmaPinned(core, head)) return true;
          splitHugePmdLocked(core, vma, pvmw.pmdT, pvmw.address, true);
        } else if (setPmdMigrationEntry(core, vma, pvmw.pmdT, pvmw.address) < 0) return true;
      } finally {
        ptlUnlock(core, ptl, 'try_to_migrate_one');
      }
    } else {
      const ptl = pteLock(core, pvmw.pteT, 'try_to_migrate_one');
      const ok = setPteMigrationEntry(core, vma, pvmw.pteT, pvmw.address);
      ptlUnlock(core, ptl, 'try_to_migrate_one');
      if (!ok) return true;
    }
  }
  return false;
}

/**
 * Models remove_migration_ptes(src, dst) (mm/migrate.c) with remove_migration_pmd() and
 * remove_migration_pte(): every migration entry for src's pages in the VMAs of dst's rmap
 * becomes a mapping of the corresponding page of dst (a device-private entry when dst is
 * device-private), taking a reference and an rmap (exclusive unless the entry was plain
 * readable). src === dst restores a failed migration.
 */
export function* removeMigrationPtes(
  core: Core,
  src: number,
  dst: number,
  rmapLocked = false,
  mapUnusedToZeropage = false,
): KGen {
  const lock = rmapLocked ? null : yield* rmapLockRead(core, dst, 'remove_migration_ptes');
  try {
    removeMigrationPtesLocked(core, src, dst, mapUnusedToZeropage);
  } finally {
    rmapUnlockRead(core, lock, 'remove_migration_ptes');
  }
}

/**
 * Model-only: the PTE table the last order-0 remove_migration_ptes() walk reached (the PGD..PMD
 * lookups of page_vma_mapped_walk()), kept by a caller that restores many folios of one range in
 * a row (__migrate_device_finalize()). Page tables above the PTE level change only under locks
 * other tasks take, so the result stays right until the caller reaches a preemption point or
 * sleeps: it must {@link PteWalkCache.reset} there. Within the PMD range of the last walk in the
 * same mm the walk is skipped; the PTE itself is always read.
 */
export class PteWalkCache {
  mm: MmStruct | null = null;
  /** First address of the PMD range of the last walk. */
  start = 0;
  /** The PTE table mapping that range. */
  pteT = -1;

  /** Forgets the last walk (at a preemption point: page tables may change from here). */
  reset(): void {
    this.mm = null;
  }
}

/**
 * Models remove_migration_ptes(src, dst) when the rmap lock can be taken at once (down_read()
 * would not sleep): the same walk as {@link removeMigrationPtes} without a preemption point.
 * Returns false, having done nothing, when the lock is contended; the caller then sleeps in
 * {@link removeMigrationPtes}. Saves per-folio generator frames in finalize loops.
 */
export function tryRemoveMigrationPtes(core: Core, src: number, dst: number, walk?: PteWalkCache): boolean {
  // rmapLockOf(), with the rmap owner kept for the walk.
  const owner = core.mappingOf(core.map.mapping[dst]);
  const l = owner === undefined ? null : owner.anon ? owner.root.rwsem : owner.immapRwsem;
  if (l && !l.tryDownRead(core.sched, 'remove_migration_ptes')) return false;
  try {
    const m = core.map;
    // removeMigrationPtesLocked(), with the order-0 case (per 4 KiB page) checked here.
    if (
      (m.flags[src] & PG_head) !== 0 ||
      (m.flags[dst] & PG_head) !== 0 ||
      !removeSmallMigrationPtes(core, src, dst, owner, walk)
    )
      removeMigrationPtesLocked(core, src, dst, false, owner, false);
  } finally {
    l?.upRead(core.sched, 'remove_migration_ptes');
  }
  return true;
}

/**
 * remove_migration_ptes() with the rmap lock held (rmap_walk_locked()). `mapUnusedToZeropage`:
 * RMP_USE_SHARED_ZEROPAGE (a split's remap_page()), see {@link tryToMapUnusedToZeropage}.
 * `owner`: dst's rmap owner (core.mappings of its mapping) when the caller looked it up already.
 * `trySmall`: false when the caller already tried {@link removeSmallMigrationPtes}.
 */
function removeMigrationPtesLocked(
  core: Core,
  src: number,
  dst: number,
  mapUnusedToZeropage = false,
  owner: AnonVma | Inode | undefined = core.mappingOf(core.map.mapping[dst]),
  trySmall = true,
): void {
  const m = core.map;
  const nr = m.folioNrPages(src);
  const dstNr = m.folioNrPages(dst);
  if (
    trySmall &&
    nr === 1 &&
    dstNr === 1 &&
    !mapUnusedToZeropage &&
    removeSmallMigrationPtes(core, src, dst, owner)
  )
    return;
  const dstDevice = folioIsDevicePrivate(core, dst);
  const dstAnon = (m.flags[dst] & PG_anon) !== 0;
  for (const { vma, addr } of rmapVmas(core, dst)) {
    const pvmw = new PageVmaMappedWalk(core, vma, src, nr, addr, true);
    // mk_pte(new, vma->vm_page_prot): a PROT_NONE VMA gets inaccessible (protnone) entries.
    const protnone = (vma.flags & (VM_READ | VM_WRITE | VM_EXEC)) === 0;
    while (pvmw.walk()) {
      if (!pvmw.pte) {
        // remove_migration_pte(): VM_BUG_ON_FOLIO(!folio_test_pmd_mappable(folio)).
        folioBugOn(
          core,
          dstNr !== HPAGE_PMD_NR,
          dst,
          'remove_migration_pmd: destination is not PMD-mappable',
        );
        const mi = pmdIndex(pvmw.address);
        const lo = ptLo(core, pvmw.pmdT, mi);
        const type = swpType(lo);
        let write = type === SWP_MIGRATION_WRITE;
        const exclusive = dstAnon && type !== SWP_MIGRATION_READ;
        let nlo: number;
        if (dstDevice && core.bug('F10')) {
          // Bug F10 (fixed in the series before merge, "fix override of entry in
          // remove_migration_pmd"): the device-private entry was built from the new PMD's
          // protection (never writable for a private mapping) and overwrote `entry`, so the
          // later migration-entry tests read a device-private entry: write lost, and the
          // young test's assertion fires.
          write = false;
          core.warn(
            'remove_migration_pmd: VM_WARN_ON_ONCE(!softleaf_is_migration(entry)) in softleaf_is_migration_young()',
          );
        }
        if (dstDevice) {
          nlo = mkSwpLo(
            write ? SWP_DEVICE_WRITE : SWP_DEVICE_READ,
            dst,
            lo & (_PAGE_SWP_SOFT_DIRTY | _PAGE_SWP_UFFD_WP),
          );
        } else {
          const dirty = (lo & SWP_MIG_DIRTY) !== 0 && (m.flags[dst] & PG_dirty) !== 0;
          nlo = mkPmdLo(dst, write, dirty, (lo & SWP_MIG_YOUNG) !== 0, protnone);
          if (lo & _PAGE_SWP_SOFT_DIRTY) nlo = (nlo | _PAGE_SOFT_DIRTY) >>> 0;
        }
        const ptl = pmdLock(core, pvmw.pmdT, 'remove_migration_pmd');
        folioGet(core, dst);
        folioAddRmapPmd(core, dst, exclusive);
        ptSet(core, pvmw.pmdT, mi, nlo, mkHi(dst));
        ptlUnlock(core, ptl, 'remove_migration_pmd');
        continue;
      }
      if (pvmw.pfn - src >= dstNr) continue;
      if (
        mapUnusedToZeropage &&
        tryToMapUnusedToZeropage(core, vma, pvmw.pteT, pvmw.address, dst + (pvmw.pfn - src))
      )
        continue;
      const lo = ptLo(core, pvmw.pteT, pteIndex(pvmw.address));
      removeMigrationPte(
        core,
        pvmw.pteT,
        pvmw.address,
        lo,
        dst + (pvmw.pfn - src),
        dstDevice,
        dstAnon,
        protnone,
      );
    }
  }
}

/**
 * Models try_to_map_unused_to_zeropage() (mm/migrate.c, v6.12+), for remove_migration_pte()
 * under RMP_USE_SHARED_ZEROPAGE: an order-0 anonymous page (the piece of a split) whose bytes
 * are all zero is not mapped back; its migration entry becomes the shared zero page (soft-dirty
 * and uffd-wp kept) and the mm's anonymous rss drops, so the split frees it. Not for mlocked
 * memory (VM_LOCKED). The model also leaves PROT_NONE VMAs alone (their zero PTE would be
 * protnone). True when the zero page was mapped.
 */
function tryToMapUnusedToZeropage(core: Core, vma: Vma, pteT: number, addr: number, page: number): boolean {
  const m = core.map;
  if (m.flags[page] & (PG_head | PG_tail)) return false;
  if (vma.flags & VM_LOCKED || !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC))) return false;
  // memchr_inv(addr, 0, PAGE_SIZE), a word at a time.
  if (core.frames.uniformWord(page) !== 0) return false;
  const i = pteIndex(addr);
  const lo = ptLo(core, pteT, i);
  let nlo = mkLo(core.zeroPfn, _PAGE_PRESENT | _PAGE_USER | _PAGE_SPECIAL | _PAGE_ACCESSED);
  if (lo & _PAGE_SWP_SOFT_DIRTY) nlo = (nlo | _PAGE_SOFT_DIRTY) >>> 0;
  if (lo & _PAGE_SWP_UFFD_WP) nlo = (nlo | _PAGE_UFFD_WP) >>> 0;
  const ptl = pteLock(core, pteT, 'remove_migration_pte');
  ptSet(core, pteT, i, nlo, mkHi(core.zeroPfn));
  ptlUnlock(core, ptl, 'remove_migration_pte');
  addMmCounter(vma.mm, 'MM_ANONPAGES', -1);
  return true;
}

/**
 * remove_migration_pte() for one PTE migration entry `lo` (its low word) at addr of table pteT:
 * map `page` (of the destination) in its place, device-private when the destination is, with a
 * reference and an rmap (exclusive unless the entry was plain readable).
 */
function removeMigrationPte(
  core: Core,
  pteT: number,
  addr: number,
  lo: number,
  page: number,
  dstDevice: boolean,
  dstAnon: boolean,
  protnone: boolean,
): void {
  const m = core.map;
  const i = pteIndex(addr);
  const type = swpType(lo);
  const write = type === SWP_MIGRATION_WRITE;
  const exclusive = dstAnon && type !== SWP_MIGRATION_READ;
  let nlo: number;
  if (dstDevice) {
    nlo = mkSwpLo(
      write ? SWP_DEVICE_WRITE : SWP_DEVICE_READ,
      page,
      lo & (_PAGE_SWP_SOFT_DIRTY | _PAGE_SWP_UFFD_WP),
    );
  } else {
    nlo = mkPteLo(page, write, (lo & SWP_MIG_DIRTY) !== 0, (lo & SWP_MIG_YOUNG) !== 0, protnone);
    if (lo & _PAGE_SWP_SOFT_DIRTY) nlo = (nlo | _PAGE_SOFT_DIRTY) >>> 0;
    if (lo & _PAGE_SWP_UFFD_WP) nlo = (nlo | _PAGE_UFFD_WP) >>> 0;
  }
  const dhead = m.head[page];
  const ptl = pteLock(core, pteT, 'remove_migration_pte');
  folioGet(core, dhead);
  folioAddRmapPtes(core, dhead, page, 1, exclusive);
  ptSet(core, pteT, i, nlo, mkHi(page));
  ptlUnlock(core, ptl, 'remove_migration_pte');
}

/**
 * The rmap walk of remove_migration_ptes() for an order-0 src and dst without building the
 * walk's lists: in each VMA of dst's rmap, the one PTE where src would be mapped. Returns false
 * (nothing changed in this VMA or later ones) when a PMD on the way is not a page table, for the
 * general walk to handle; VMAs already done hold no migration entry for src any more.
 */
function removeSmallMigrationPtes(
  core: Core,
  src: number,
  dst: number,
  owner: AnonVma | Inode | undefined,
  walk?: PteWalkCache,
): boolean {
  const m = core.map;
  const vmas = owner === undefined ? undefined : owner.anon ? owner.vmas.list() : owner.mmaps.list();
  core.events.rmapWalks++;
  if (!vmas) return true;
  const index = m.index[dst];
  const dstDevice = folioIsDevicePrivate(core, dst);
  const dstAnon = (m.flags[dst] & PG_anon) !== 0;
  for (let v = 0; v < vmas.length; v++) {
    const vma = vmas[v];
    const addr = vma.start + (index - vma.pgoff) * PAGE_SIZE;
    if (addr < vma.start || addr >= vma.end) continue;
    let pteT: number;
    if (walk !== undefined && walk.mm === vma.mm && addr >= walk.start && addr < walk.start + PMD_SIZE)
      pteT = walk.pteT;
    else {
      const pmdT = pmdTableOf(core, vma.mm, addr, false);
      if (pmdT < 0) continue;
      // ptLo()/ptHi() of the PMD and of the PTE, one block lookup per table.
      const mb = core.frames.block32(pmdT);
      const moff = ((pmdT & (BLOCK_PAGES - 1)) << 10) + (pmdIndex(addr) << 1);
      const lo = mb[moff];
      const hi = mb[moff + 1];
      if (entryNone(lo, hi)) continue;
      if (!entryPresent(lo) || entryHuge(lo)) {
        // A PMD migration entry cannot hold an order-0 folio; the general walk decides.
        core.events.rmapWalks--;
        return false;
      }
      pteT = entryPfn(lo, hi);
      if (walk !== undefined) {
        walk.mm = vma.mm;
        walk.start = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
        walk.pteT = pteT;
      }
    }
    const pb = core.frames.block32(pteT);
    const poff = ((pteT & (BLOCK_PAGES - 1)) << 10) + (pteIndex(addr) << 1);
    const plo = pb[poff];
    const phi = pb[poff + 1];
    if (entryNone(plo, phi) || entryPresent(plo) || entryPfn(plo, phi) !== src) continue;
    if (!isMigrationType(swpType(plo))) continue;
    const protnone = (vma.flags & (VM_READ | VM_WRITE | VM_EXEC)) === 0;
    removeSmallMigrationPte(core, pb, poff, pteT, plo, dst, dstDevice, dstAnon, protnone);
  }
  return true;
}

/**
 * {@link removeMigrationPte} for the order-0 walk: the entry is at words[off] of table pteT (the
 * block the walk read it from) and `page` is its own folio; set_pte_at() writes those words.
 */
function removeSmallMigrationPte(
  core: Core,
  words: Uint32Array,
  off: number,
  pteT: number,
  lo: number,
  page: number,
  dstDevice: boolean,
  dstAnon: boolean,
  protnone: boolean,
): void {
  const m = core.map;
  const type = swpType(lo);
  const write = type === SWP_MIGRATION_WRITE;
  let nlo: number;
  if (dstDevice) {
    nlo = mkSwpLo(
      write ? SWP_DEVICE_WRITE : SWP_DEVICE_READ,
      page,
      lo & (_PAGE_SWP_SOFT_DIRTY | _PAGE_SWP_UFFD_WP),
    );
  } else {
    nlo = mkPteLo(page, write, (lo & SWP_MIG_DIRTY) !== 0, (lo & SWP_MIG_YOUNG) !== 0, protnone);
    if (lo & _PAGE_SWP_SOFT_DIRTY) nlo = (nlo | _PAGE_SOFT_DIRTY) >>> 0;
    if (lo & _PAGE_SWP_UFFD_WP) nlo = (nlo | _PAGE_UFFD_WP) >>> 0;
  }
  const ptl = pteLock(core, pteT, 'remove_migration_pte');
  // folio_get(), folio_add_anon_rmap_pte() (exclusive unless plainly readable), set_pte_at().
  m.refcount[page]++;
  m.mapcount[page]++;
  if (dstAnon && type !== SWP_MIGRATION_READ) m.flags[page] |= PG_anon_exclusive;
  words[off] = nlo;
  words[off + 1] = mkHi(page);
  core.events.ptesWritten++;
  core.events.entries.note(core, pteT, nlo, words[off + 1]);
  ptlUnlock(core, ptl, 'remove_migration_pte');
}

/** Models folio_mapped() after an unmap attempt (re-exported for the migration code). */
export function folioStillMapped(core: Core, head: number): boolean {
  return folioMapped(core, head);
}
