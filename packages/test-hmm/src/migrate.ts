import {
  allocFolio,
  type Core,
  EINVAL,
  ENOMEM,
  folioLock,
  folioPut,
  folioUnlock,
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  KernelBug,
  type KGen,
  MEMORY_DEVICE_COHERENT,
  MEMORY_DEVICE_PRIVATE,
  type MmStruct,
  ModelBug,
  mmapReadLock,
  mmapReadUnlock,
  PAGE_SIZE,
  PTRS_PER_TABLE,
  RESCHED,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_READ,
  Vma,
  type VmFault,
} from '@hmm-model/mm-core';
import { folioZoneDeviceData, isZoneDevicePage, pageDevPagemap } from '@hmm-model/zone-device';
import { type Dmirror, type DmirrorCmd, DPT_XA_TAG_WRITE, dmirrorReadBack } from './dmirror.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  migratePfn,
  migratePfnToPage,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
  mpfnFlags,
  mthpMappedAsUnit,
  newMigrateVma,
} from './kapi.js';
import { negotiateMthpDst } from './mthp.js';
import { HMM_DMIRROR_FLAG_FAIL_ALLOC, HMM_DMIRROR_FLAG_FAIL_ALLOC_ORDER_SHIFT } from './uapi.js';

const FAIL_ALLOC = BigInt(HMM_DMIRROR_FLAG_FAIL_ALLOC);
const FAIL_ALLOC_ORDER_SHIFT = BigInt(HMM_DMIRROR_FLAG_FAIL_ALLOC_ORDER_SHIFT);

/** Models dmirror_select_device(): the SELECT flag of this device's memory type. */
export function dmirrorSelectDevice(dm: Dmirror): number {
  return dm.mdevice.isPrivate ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE : MIGRATE_VMA_SELECT_DEVICE_COHERENT;
}

/**
 * Consumes the one-shot HMM_DMIRROR_FLAG_FAIL_ALLOC for an allocation of `order`; true if it
 * applies. With the model-only order field (HMM_DMIRROR_FLAG_FAIL_ALLOC_ORDER()) only an
 * allocation of that order fails; without it, the next allocation does (lib/test_hmm.c).
 */
function takeFailAlloc(dm: Dmirror, order: number): boolean {
  // No flag set (the common case) is decided without a BigInt operation per page.
  if (dm.flags === 0n || !(dm.flags & FAIL_ALLOC)) return false;
  const want = Number((dm.flags >> FAIL_ALLOC_ORDER_SHIFT) & 0xffn);
  if (want && want - 1 !== order) return false;
  dm.flags &= ~(FAIL_ALLOC | (0xffn << FAIL_ALLOC_ORDER_SHIFT));
  return true;
}

/**
 * Model-only: batches the per-page copy_highpage()/clear_highpage() calls of one driver loop.
 * A page whose source and destination both continue the current run joins it; the run is
 * copied when it ends (or at {@link CopyRuns.flush}). Nothing reads or frees those frames before
 * the loop ends, so the bytes are the same as copying page by page; each page still counts as
 * one copy command.
 */
class CopyRuns {
  private to = -1;
  private from = -1;
  private n = 0;
  /** Pages added since the last flush: their copy commands, counted at the flush. */
  private commands = 0;
  constructor(private readonly core: Core) {}

  /** nr pages (nr copy_highpage() calls): copy from..from+nr to to..to+nr, or clear when from < 0. */
  add(to: number, from: number, nr = 1): void {
    this.commands += nr;
    const n = this.n;
    if (
      n > 0 &&
      to === this.to + n &&
      (from < 0 ? this.from < 0 : this.from >= 0 && from === this.from + n)
    ) {
      this.n = n + nr;
      return;
    }
    this.flush();
    this.to = to;
    this.from = from;
    this.n = nr;
  }

  /** Copies (or clears) the pending run; counts the copy commands added so far. */
  flush(): void {
    if (this.commands !== 0) {
      this.core.events.copy(this.commands, this.commands * PAGE_SIZE);
      this.commands = 0;
    }
    if (this.n === 0) return;
    if (this.from >= 0) this.core.frames.copy(this.to, this.from, this.n);
    else this.core.frames.zero(this.to, this.n);
    this.n = 0;
  }
}

/**
 * Models dmirror_migrate_alloc_and_copy(): for each collected slot allocate a device page (a
 * PMD-order device folio for a compound slot), copy the source (or zero a hole) into its
 * backing storage and fill dst (WRITE copied from src, COMPOUND for a large folio). A failed
 * (or FAIL_ALLOC-injected) compound allocation falls back to small device pages for every
 * subpage; a failed small allocation leaves the slot in system memory.
 */
export function dmirrorMigrateAllocAndCopy(args: MigrateVma, dm: Dmirror): void {
  const runs = new CopyRuns(dm.core);
  try {
    allocAndCopy(args, dm, runs);
  } finally {
    runs.flush();
  }
}

/** The loop of {@link dmirrorMigrateAllocAndCopy}; copies go through `runs`. */
function allocAndCopy(args: MigrateVma, dm: Dmirror, runs: CopyRuns): void {
  const core = dm.core;
  const m = core.map;
  const dev = dm.mdevice;
  const { src, dst } = args;
  let i = 0;
  for (let addr = args.start; addr < args.end; ) {
    const f = mpfnFlags(src[i]);
    const isLarge = (f & MIGRATE_PFN_COMPOUND) !== 0;
    const write = f & MIGRATE_PFN_WRITE;
    const spage = migratePfnToPage(src[i]);
    if (!(f & MIGRATE_PFN_MIGRATE) || (spage >= 0 && isZoneDevicePage(core, spage))) {
      if (f & MIGRATE_PFN_MIGRATE) core.warn(`page already in device spage pfn: 0x${spage.toString(16)}`);
      i++;
      addr += PAGE_SIZE;
      continue;
    }
    const srcOrder = isLarge && spage >= 0 ? m.folioOrder(m.head[spage]) : isLarge ? HPAGE_PMD_ORDER : 0;
    if (srcOrder > 0 && srcOrder < HPAGE_PMD_ORDER) {
      // Model extension (mthp.ts): a PTE-mapped mTHP unit, destination order negotiated.
      const nr = 1 << srcOrder;
      negotiateMthpDst(
        core,
        args,
        i,
        srcOrder,
        dev.mthpOrders,
        (o) => (takeFailAlloc(dm, o) ? -1 : dev.allocOrder(o)),
        (d, at, n) => {
          const rpage = dev.backingPage(d);
          m.priv[rpage] = dm.id;
          runs.add(rpage, spage + at, n);
        },
      );
      i += nr;
      addr += nr * PAGE_SIZE;
      continue;
    }
    const dpage = takeFailAlloc(dm, isLarge ? HPAGE_PMD_ORDER : 0) ? -1 : dev.allocPage(isLarge);
    if (dpage < 0) {
      if (!isLarge) {
        i++;
        addr += PAGE_SIZE;
        continue;
      }
      const nr = spage < 0 ? HPAGE_PMD_NR : m.folioNrPages(m.head[spage]);
      const first = i;
      for (let k = 0; k < nr && addr < args.end; k++) {
        const dp = dev.allocPage(false);
        if (dp < 0 && core.fixed('K8')) {
          // K8: give back what this unit got and leave the whole unit in system memory (a
          // compound source with some destinations would oops in migrate_vma_pages()).
          runs.flush();
          for (let j = first; j < i; j++) {
            const got = migratePfnToPage(dst[j]);
            folioUnlock(core, got);
            folioPut(core, got);
            dst[j] = 0;
          }
          const left = Math.min(nr - k, (args.end - addr) / PAGE_SIZE);
          i += left;
          addr += left * PAGE_SIZE;
          break;
        }
        if (dp < 0)
          throw new KernelBug({
            kind: 'oops',
            what: 'NULL pointer dereference',
            fn: 'dmirror_migrate_alloc_and_copy',
            file: 'lib/test_hmm.c',
            why: 'the small-page fallback does not check the allocation',
            module: 'test_hmm',
            address: 0,
          });
        const rpage = dev.backingPage(dp);
        m.priv[rpage] = dm.id;
        dst[i] = migratePfn(dp) + write;
        runs.add(rpage, spage >= 0 ? spage + k : -1);
        i++;
        addr += PAGE_SIZE;
      }
      continue;
    }
    const rpage = dev.backingPage(dpage);
    // The backing page (or the coherent page itself) points back at the mirror.
    m.priv[rpage] = dm.id;
    dst[i] = migratePfn(dpage) + write;
    if (isLarge) {
      dst[i] += MIGRATE_PFN_COMPOUND;
      const nr = m.folioNrPages(dpage);
      if (nr > 1) {
        // The kernel's loop copies (or clears) page k to backing page k: one run of nr pages.
        runs.add(rpage, spage, nr);
        i += nr;
        addr += nr * PAGE_SIZE;
        continue;
      }
    }
    runs.add(rpage, spage);
    i++;
    addr += PAGE_SIZE;
  }
}

/**
 * Models dmirror_migrate_finalize_and_map(): map every migrated destination's backing pages
 * into the mirror, tagged WRITE iff dst carried MIGRATE_PFN_WRITE. v6.19 maps whatever
 * happened meanwhile; with fix switch K2 (README, Findings) `seq` is the mirror's count of
 * foreign invalidations taken before migrate_vma_setup() and nothing is mapped when one happened
 * since (the device faults the range in later through hmm_range_fault()).
 */
export function* dmirrorMigrateFinalizeAndMap(args: MigrateVma, dm: Dmirror, seq = -1): KGen<number> {
  const core = dm.core;
  const m = core.map;
  const startVpn = args.start / PAGE_SIZE;
  const endVpn = args.end / PAGE_SIZE;
  yield* dm.lock('dmirror_migrate_finalize_and_map');
  if (seq >= 0 && dm.foreignInvalidations !== seq) {
    dm.unlock('dmirror_migrate_finalize_and_map');
    return 0;
  }
  for (let vpn = startVpn, i = 0; vpn < endVpn; vpn++, i++) {
    if (args.src[i] === 0 || !(mpfnFlags(args.src[i]) & MIGRATE_PFN_MIGRATE)) continue;
    const dpage = migratePfnToPage(args.dst[i]);
    if (dpage < 0) continue;
    const df = mpfnFlags(args.dst[i]);
    const nr = df & MIGRATE_PFN_COMPOUND ? m.folioNrPages(m.head[dpage]) : 1;
    if (endVpn < startVpn + nr) core.warn('dmirror_migrate_finalize_and_map: range shorter than the folio');
    const rhead = m.head[dm.mdevice.backingPage(dpage)];
    if (m.folioNrPages(rhead) !== nr)
      core.warn('dmirror_migrate_finalize_and_map: backing folio size mismatch');
    // The kernel's per-page xa_store() loop, stored as one run.
    dm.storeRun(vpn, rhead, nr, df & MIGRATE_PFN_WRITE ? DPT_XA_TAG_WRITE : 0);
  }
  dm.unlock('dmirror_migrate_finalize_and_map');
  return 0;
}

/** Walks [start, end) in steps of at most PTRS_PER_PTE pages clipped to each VMA, as both migrations do. */
function* forEachStep(
  dm: Dmirror,
  cmd: DmirrorCmd,
  start: number,
  end: number,
  pfns: StepPfns,
  step: MigrateStep,
): KGen<number> {
  for (let addr = start; addr < end; ) {
    const vma = dm.mm.vmaLookup(addr);
    if (!vma || !(vma.flags & VM_READ)) return -EINVAL;
    const next = Math.min(end, addr + PTRS_PER_TABLE * PAGE_SIZE, vma.end);
    const r = yield* step(dm, cmd, pfns, vma, addr, next);
    if (r) return r;
    addr = next;
  }
  return 0;
}

/** The src/dst arrays of one migrate ioctl, reused by every step. */
interface StepPfns {
  readonly srcPfns: Float64Array;
  readonly dstPfns: Float64Array;
}

/**
 * One step (up to 512 pages) of a migrate ioctl over [a, b) of vma. The steps are module-level
 * generators rather than a closure per ioctl: V8 keeps a closure's optimized code only while a
 * closure of its site is alive, so a per-call body is compiled again after every full GC.
 */
type MigrateStep = (
  dm: Dmirror,
  cmd: DmirrorCmd,
  pfns: StepPfns,
  vma: Vma,
  a: number,
  b: number,
) => KGen<number>;

/** A step's migrate_vma for [a, b) of vma: the ioctl's src/dst arrays, cleared, and this device as owner. */
function stepMigrateVma(
  dm: Dmirror,
  pfns: StepPfns,
  vma: Vma,
  a: number,
  b: number,
  flags: number,
): MigrateVma {
  const n = (b - a) / PAGE_SIZE;
  return newMigrateVma({
    vma,
    src: pfns.srcPfns.subarray(0, n).fill(0),
    dst: pfns.dstPfns.subarray(0, n).fill(0),
    start: a,
    end: b,
    pgmapOwner: dm.mdevice,
    flags,
    mthpOrders: dm.mdevice.mthpOrders,
  });
}

/** One step of dmirror_migrate_to_device() ({@link MigrateStep}). */
function* migrateToDeviceStep(
  dm: Dmirror,
  _cmd: DmirrorCmd,
  pfns: StepPfns,
  vma: Vma,
  a: number,
  b: number,
): KGen<number> {
  const core = dm.core;
  const args = stepMigrateVma(dm, pfns, vma, a, b, MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND);
  // Fix K2: the invalidation count the mirror update is checked against.
  const seq = core.fixed('K2') ? dm.foreignInvalidations : -1;
  const r = yield* migrateVmaSetup(core, args);
  if (r) return r;
  if (core.sched.preempt('dmirror_migrate_to_device: after migrate_vma_setup')) yield RESCHED;
  yield* dm.mdevice.waitDevmemLock('dmirror_allocate_chunk');
  dmirrorMigrateAllocAndCopy(args, dm);
  if (core.sched.preempt('dmirror_migrate_to_device: after dmirror_migrate_alloc_and_copy')) yield RESCHED;
  yield* migrateVmaPages(core, args);
  if (core.sched.preempt('dmirror_migrate_to_device: after migrate_vma_pages')) yield RESCHED;
  yield* dmirrorMigrateFinalizeAndMap(args, dm, seq);
  yield* migrateVmaFinalize(core, args);
  return 0;
}

/** One step of dmirror_migrate_to_system() ({@link MigrateStep}). */
function* migrateToSystemStep(
  dm: Dmirror,
  cmd: DmirrorCmd,
  pfns: StepPfns,
  vma: Vma,
  a: number,
  b: number,
): KGen<number> {
  const core = dm.core;
  const args = stepMigrateVma(dm, pfns, vma, a, b, dmirrorSelectDevice(dm) | MIGRATE_VMA_SELECT_COMPOUND);
  const r = yield* migrateVmaSetup(core, args);
  if (r) return r;
  if (core.sched.preempt('dmirror_migrate_to_system: after migrate_vma_setup')) yield RESCHED;
  if (dmirrorDevmemFaultAllocAndCopy(args, dm)) {
    yield* migrateVmaFinalize(core, args);
    return -ENOMEM;
  }
  if (core.sched.preempt('dmirror_migrate_to_system: after dmirror_devmem_fault_alloc_and_copy'))
    yield RESCHED;
  yield* migrateVmaPages(core, args);
  cmd.cpages += dmirrorSuccessfulMigratedPages(args);
  if (core.sched.preempt('dmirror_migrate_to_system: after migrate_vma_pages')) yield RESCHED;
  yield* migrateVmaFinalize(core, args);
  return 0;
}

/**
 * Models dmirror_migrate_to_device() (HMM_DMIRROR_MIGRATE_TO_DEV): per step of up to 512 pages
 * migrate_vma_setup (SELECT_SYSTEM | SELECT_COMPOUND, owner = device), alloc_and_copy, pages,
 * finalize_and_map, finalize; then read the whole range back from the mirror into cmd.ptr
 * (-ENOENT if any page is not mirrored; cpages = pages read back).
 */
export function* dmirrorMigrateToDevice(dm: Dmirror, cmd: DmirrorCmd, userMm: MmStruct): KGen<number> {
  const core = dm.core;
  const start = cmd.addr;
  const end = start + cmd.size;
  if (!dm.mmGet()) return -EINVAL;
  const srcPfns = new Float64Array(PTRS_PER_TABLE);
  const dstPfns = new Float64Array(PTRS_PER_TABLE);
  yield* mmapReadLock(core, dm.mm, 'dmirror_migrate_to_device');
  let ret: number;
  try {
    ret = yield* forEachStep(dm, cmd, start, end, { srcPfns, dstPfns }, migrateToDeviceStep);
  } finally {
    mmapReadUnlock(core, dm.mm, 'dmirror_migrate_to_device');
  }
  yield* dm.mmPut();
  if (ret) return ret;
  // Return the migrated data for verification (no fault pass: a missing page is -ENOENT).
  return yield* dmirrorReadBack(dm, cmd, userMm);
}

/** Models dmirror_successful_migrated_pages(): src slots with VALID and MIGRATE after migrate_vma_pages(). */
export function dmirrorSuccessfulMigratedPages(args: MigrateVma): number {
  let n = 0;
  for (let i = 0; i < args.npages; i++) {
    if (args.src[i] === 0) continue;
    const f = mpfnFlags(args.src[i]);
    if (f & MIGRATE_PFN_VALID && f & MIGRATE_PFN_MIGRATE) n++;
  }
  return n;
}

/**
 * Models dmirror_devmem_fault_alloc_and_copy(): for each collected device page allocate a system
 * page (a folio of the backing folio's order, COMPOUND in dst), erase the mirror entries and
 * copy the data back. FAIL_ALLOC (one shot) drops COMPOUND and allocates one order-0 page per
 * subpage, so migrate_vma_pages() splits the device folio. Returns 0 or VM_FAULT_OOM.
 */
export function dmirrorDevmemFaultAllocAndCopy(args: MigrateVma, dm: Dmirror): number {
  const runs = new CopyRuns(dm.core);
  const erases = new EraseRuns(dm);
  try {
    return faultAllocAndCopy(args, dm, runs, erases);
  } finally {
    erases.flush();
    runs.flush();
  }
}

/**
 * Fix K16 (Findings): an allocation of dmirror_devmem_fault_alloc_and_copy() failed; give back
 * the destination pages of every slot (after the copies into them) and empty the slots, so that
 * migrate_vma_finalize() restores the whole range rather than mapping pages migrate_vma_pages()
 * never saw. Returns VM_FAULT_OOM.
 */
function giveBackAll(args: MigrateVma, core: Core, runs: CopyRuns): number {
  runs.flush();
  const { dst } = args;
  for (let i = 0; i < dst.length; i++) {
    const page = migratePfnToPage(dst[i]);
    if (page >= 0) {
      folioUnlock(core, page);
      folioPut(core, page);
    }
    dst[i] = 0;
  }
  return VM_FAULT_OOM;
}

/**
 * Model-only: batches the per-page xa_erase() calls of dmirror_devmem_fault_alloc_and_copy()
 * into runs of consecutive indices (erased at the run's end or at {@link EraseRuns.flush}).
 * Nothing reads the mirror before the loop ends, so the mirror is the same as erasing page by
 * page.
 */
class EraseRuns {
  private first = -1;
  private n = 0;
  constructor(private readonly dm: Dmirror) {}

  /** xa_erase() of vpn. */
  add(vpn: number): void {
    if (this.n > 0 && vpn === this.first + this.n) {
      this.n++;
      return;
    }
    this.flush();
    this.first = vpn;
    this.n = 1;
  }

  /** Erases the pending run. */
  flush(): void {
    if (this.n === 0) return;
    if (this.n === 1) this.dm.erase(this.first);
    else this.dm.eraseRun(this.first, this.n);
    this.n = 0;
  }
}

/** The loop of {@link dmirrorDevmemFaultAllocAndCopy}; copies go through `runs`, xa_erase()s through `erases`. */
function faultAllocAndCopy(args: MigrateVma, dm: Dmirror, runs: CopyRuns, erases: EraseRuns): number {
  const core = dm.core;
  const m = core.map;
  const { src, dst } = args;
  const n = src.length;
  let si = 0;
  // `order` survives iterations (the kernel's variable is declared outside the loop).
  let order = 0;
  for (let addr = args.start; addr < args.end; ) {
    const s = si < n ? src[si] : 0;
    let spage = migratePfnToPage(s);
    if (spage < 0 || !(mpfnFlags(s) & MIGRATE_PFN_MIGRATE)) {
      addr += PAGE_SIZE;
      si += 1 << order;
      continue;
    }
    // is_device_private_page(), is_device_coherent_page() and BACKING_PAGE() read one pgmap.
    const ptype = pageDevPagemap(core, spage)?.type;
    if (ptype !== MEMORY_DEVICE_PRIVATE && ptype !== MEMORY_DEVICE_COHERENT) {
      core.warn(`dmirror_devmem_fault_alloc_and_copy: pfn 0x${spage.toString(16)} is not a device page`);
      addr += PAGE_SIZE;
      si += 1 << order;
      continue;
    }
    if (ptype === MEMORY_DEVICE_PRIVATE) spage = m.priv[spage];
    order = m.folioOrder(m.head[spage]);
    let flags = order ? MIGRATE_PFN_COMPOUND : 0;
    if (mpfnFlags(s) & MIGRATE_PFN_WRITE) flags |= MIGRATE_PFN_WRITE;
    let dpage: number;
    if (takeFailAlloc(dm, order)) {
      flags &= ~MIGRATE_PFN_COMPOUND;
      dpage = -1;
    } else {
      // Models vma_alloc_folio(GFP_HIGHUSER_MOVABLE, order) / alloc_page_vma().
      dpage = allocFolio(core, order, false);
    }
    dst[si] = flags;
    if (dpage < 0 && !order) return core.fixed('K16') ? giveBackAll(args, core, runs) : VM_FAULT_OOM;
    if (dpage >= 0) {
      folioLock(core, dpage);
      dst[si] = migratePfn(dpage) + (flags & ~MIGRATE_PFN_VALID);
    }
    const nr = 1 << order;
    if (dpage >= 0 && nr > 1) {
      // The kernel's per-page xa_erase() + copy_highpage() loop over the folio, as one run.
      dm.eraseRun(addr / PAGE_SIZE, nr);
      runs.add(dpage, spage, nr);
      addr += nr * PAGE_SIZE;
      si += nr;
      continue;
    }
    for (let k = 0; k < nr; k++) {
      let dstPage: number;
      if (dpage < 0 && order) {
        // Try with smaller pages if the large allocation failed.
        const dp = allocFolio(core, 0, false);
        if (dp < 0) {
          if (core.fixed('K16')) return giveBackAll(args, core, runs);
          // lock_page(dpage) of the unchecked alloc_page_vma().
          throw new KernelBug({
            kind: 'oops',
            what: 'NULL pointer dereference',
            fn: 'dmirror_devmem_fault_alloc_and_copy',
            file: 'lib/test_hmm.c',
            why: "the small-page fallback locks alloc_page_vma()'s result unchecked",
            module: 'test_hmm',
            address: 0,
          });
        }
        folioLock(core, dp);
        dst[si + k] = migratePfn(dp);
        dstPage = dp;
      } else {
        dstPage = dpage + k;
      }
      erases.add(addr / PAGE_SIZE);
      addr += PAGE_SIZE;
      runs.add(dstPage, spage + k);
    }
    si += 1 << order;
  }
  return 0;
}

/**
 * Models dmirror_migrate_to_system() (HMM_DMIRROR_MIGRATE_TO_SYS): per step migrate_vma_setup
 * (this device's SELECT flag | SELECT_COMPOUND), fault_alloc_and_copy (failure: finalize and
 * -ENOMEM), pages, cpages += slots still VALID+MIGRATE, finalize.
 */
export function* dmirrorMigrateToSystem(dm: Dmirror, cmd: DmirrorCmd): KGen<number> {
  const core = dm.core;
  const start = cmd.addr;
  const end = start + cmd.size;
  if (!dm.mmGet()) return -EINVAL;
  const srcPfns = new Float64Array(PTRS_PER_TABLE);
  const dstPfns = new Float64Array(PTRS_PER_TABLE);
  cmd.cpages = 0;
  yield* mmapReadLock(core, dm.mm, 'dmirror_migrate_to_system');
  let ret: number;
  try {
    ret = yield* forEachStep(dm, cmd, start, end, { srcPfns, dstPfns }, migrateToSystemStep);
  } finally {
    mmapReadUnlock(core, dm.mm, 'dmirror_migrate_to_system');
  }
  yield* dm.mmPut();
  return ret;
}

/**
 * Models dmirror_devmem_fault() (the migrate_to_ram op): migrate the faulting unit back to
 * system memory — the whole folio for a PMD fault, one page for a PTE fault (vmf->pte, the core
 * splits a PTE-mapped large folio) — with fault_page = vmf->page. Setup failure is SIGBUS,
 * allocation failure VM_FAULT_OOM.
 */
export function* dmirrorDevmemFault(
  core: Core,
  vmf: VmFault,
  lookup: (id: number) => Dmirror | undefined,
): KGen<number> {
  if (!(vmf.vma instanceof Vma)) throw new ModelBug('dmirror_devmem_fault: vmf.vma is not a VMA');
  const m = core.map;
  const head = m.head[vmf.page];
  const rpage = folioZoneDeviceData(core, head);
  const dm = lookup(m.priv[rpage]);
  if (!dm) {
    core.warn(`dmirror_devmem_fault: pfn 0x${vmf.page.toString(16)} has no dmirror`);
    return VM_FAULT_SIGBUS;
  }
  let order = m.folioOrder(head);
  // A PTE fault migrates one page (a PTE-mapped folio may be partly unmapped or not yet split),
  // except a whole device mTHP of a declared order that this VMA maps completely (mthp.ts).
  if (vmf.pte) {
    const size = PAGE_SIZE * 2 ** order;
    const start = Math.floor(vmf.address / size) * size;
    const whole =
      order < HPAGE_PMD_ORDER &&
      dm.mdevice.mthpOrders & (1 << order) &&
      m.largeMapcount[head] === 2 ** order &&
      // The VMA maps the folio's pages in order over the whole range (a page mremap() moved
      // away keeps the count whole but breaks the unit).
      mthpMappedAsUnit(core, vmf.vma, start, head);
    if (!whole) order = 0;
  }
  const unit = PAGE_SIZE * 2 ** order;
  const start = Math.floor(vmf.address / unit) * unit;
  const args = newMigrateVma({
    vma: vmf.vma,
    start,
    end: start + unit,
    pgmapOwner: dm.mdevice,
    flags: dmirrorSelectDevice(dm) | (order ? MIGRATE_VMA_SELECT_COMPOUND : 0),
    faultPage: vmf.page,
    mthpOrders: order ? dm.mdevice.mthpOrders : 0,
  });
  if (yield* migrateVmaSetup(core, args)) return VM_FAULT_SIGBUS;
  if (core.sched.preempt('dmirror_devmem_fault: after migrate_vma_setup')) yield RESCHED;
  const ret = dmirrorDevmemFaultAllocAndCopy(args, dm);
  if (ret) {
    yield* migrateVmaFinalize(core, args);
    return ret;
  }
  if (core.sched.preempt('dmirror_devmem_fault: after dmirror_devmem_fault_alloc_and_copy')) yield RESCHED;
  yield* migrateVmaPages(core, args);
  yield* migrateVmaFinalize(core, args);
  return 0;
}
