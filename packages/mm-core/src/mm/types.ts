import { MMAP_BASE } from '../constants.js';
import type { KernelEvents } from '../events.js';
import { RwSem } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';

/** Models vm_flags_t bits (include/linux/mm.h). */
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYREAD = 0x10;
export const VM_MAYWRITE = 0x20;
export const VM_MAYEXEC = 0x40;
export const VM_MAYSHARE = 0x80;
export const VM_PFNMAP = 0x400;
export const VM_LOCKED = 0x2000;
export const VM_IO = 0x4000;
export const VM_SEQ_READ = 0x8000;
export const VM_RAND_READ = 0x10000;
export const VM_DONTCOPY = 0x20000;
export const VM_DONTEXPAND = 0x40000;
export const VM_ACCOUNT = 0x100000;
export const VM_NORESERVE = 0x200000;
export const VM_HUGETLB = 0x400000;
export const VM_WIPEONFORK = 0x2000000;
export const VM_DONTDUMP = 0x4000000;
export const VM_SOFTDIRTY = 0x08000000;
export const VM_MIXEDMAP = 0x10000000;
export const VM_HUGEPAGE = 0x20000000;
export const VM_NOHUGEPAGE = 0x40000000;
/** Models is_cow_mapping() (include/linux/mm.h): private and may become writable. */
export function isCowMapping(flags: number): boolean {
  return (flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}

/** Models VM_SPECIAL. */
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;
/** Models VM_IGNORE_MERGE: flags is_mergeable_vma() does not compare. */
export const VM_IGNORE_MERGE = VM_SOFTDIRTY;
/** Models VM_ACCESS_FLAGS. */
export const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;

/**
 * Models the anon_vma's interval tree of VMAs (anon_vma->rb_root) and the file's i_mmap tree: a
 * Set of VMAs in insertion order, with the same order as an array for the rmap walks, which run
 * once per folio (per 4 KiB page on migration paths) and iterate a plain array faster than a Set.
 */
export class VmaSet extends Set<Vma> {
  /** The members in insertion order; null after a change until {@link VmaSet.list} rebuilds it. */
  private snapshot: Vma[] | null = null;

  override add(vma: Vma): this {
    if (!this.has(vma)) this.snapshot = null;
    return super.add(vma);
  }

  override delete(vma: Vma): boolean {
    const r = super.delete(vma);
    if (r) this.snapshot = null;
    return r;
  }

  override clear(): void {
    this.snapshot = null;
    super.clear();
  }

  /** The members as an array in insertion order (the caller must not change it). */
  list(): readonly Vma[] {
    let l = this.snapshot;
    if (l === null) {
      l = Array.from(this);
      this.snapshot = l;
    }
    return l;
  }
}

/**
 * Models struct anon_vma (mm/rmap.c): the set of VMAs that may map anonymous folios whose
 * folio->mapping points here. fork() adds child VMAs to the parent's anon_vmas (the chain).
 */
export class AnonVma {
  /** Model-only: tells an anon_vma from an address_space behind a mapping id (PAGE_MAPPING_ANON). */
  readonly anon = true;
  /** Mapping id (what memmap.mapping holds for folios of this anon_vma). */
  id = 0;
  readonly vmas = new VmaSet();
  /** Models anon_vma->root: the anon_vma of the process that started the fork tree. */
  root: AnonVma = this;
  /** Models anon_vma->rwsem (only the root's is used: anon_vma_lock_read/write take root's). */
  readonly rwsem = new RwSem('anon_vma lock');
}

/**
 * Models a tmpfs/shmem inode with its address_space (page cache and i_mmap).
 */
export class Inode {
  /** Model-only: tells an address_space from an anon_vma behind a mapping id (PAGE_MAPPING_ANON clear). */
  readonly anon = false;
  /** Mapping id (what memmap.mapping holds for page-cache folios). */
  id = 0;
  size = 0;
  /** Models the page cache (i_pages): page index -> pfn. */
  readonly pages = new Map<number, number>();
  /** Models i_mmap: VMAs mapping this file. */
  readonly mmaps = new VmaSet();
  /** Open file descriptions and mappings referencing the inode. */
  refs = 0;
  /** Models i_nlink == 0 (O_TMPFILE, shared anonymous memory, or unlinked). */
  unlinked = true;
  /**
   * Models is_file_hugepages(): a hugetlbfs inode (a memfd_create(MFD_HUGETLB) file, or the file
   * of a MAP_SHARED|MAP_HUGETLB mapping). Its page cache is keyed by 2 MiB page index and holds
   * hugetlb folios.
   */
  hugetlbfs = false;
  /** Models mapping->i_mmap_rwsem. */
  readonly immapRwsem = new RwSem('i_mmap_rwsem');
  /**
   * Models SHMEM_SB(inode->i_sb)->huge: 'shm_mnt' for an inode of the internal mount (memfd,
   * shared anonymous memory: its huge= follows shmem_enabled), else the huge= option of the
   * tmpfs instance holding the file ('never' for the model's /tmp and /dev/shm roots).
   */
  sbHuge: 'shm_mnt' | 'never' | 'always' | 'within_size' | 'advise' = 'never';
  constructor(
    readonly name: string,
    readonly ino: number,
  ) {}
}

/** Models struct vm_operations_struct, for device files' own mappings. */
export interface VmOperations {
  readonly name: string;
  /** Models vm_ops->close(). */
  close?(vma: Vma): void;
}

/**
 * Models struct vm_area_struct: [start, end), flags, pgoff, file, anon_vma and its chain.
 */
export class Vma {
  anonVma: AnonVma | null = null;
  /** Models the anon_vma_chain: every anon_vma this VMA is linked into. */
  anonVmaChain: AnonVma[] = [];
  vmOps: VmOperations | null = null;
  /**
   * Models the identity of vma->vm_file (the struct file, which VMA merging compares): the open
   * file description mmap() was given, the shmem file of a shared anonymous mapping, the
   * hugetlbfs file of a MAP_HUGETLB one; null for private anonymous memory. `file` holds the
   * inode the model uses for the page cache.
   */
  vmFile: object | null = null;
  /**
   * Model-only, for the layout check (testing/layout.ts): the kernel left this VMA where the merge
   * rules would allow a merge, without trying one (dontunmap_complete() unlinks the anon_vmas of
   * the old VMA after MREMAP_DONTUNMAP; dup_mmap() leaves a VM_WIPEONFORK child VMA without its
   * parent's anon_vma; neither merges); copied by split and fork.
   */
  mayStayApart = false;
  constructor(
    public mm: MmStruct,
    public start: number,
    public end: number,
    public flags: number,
    public pgoff: number,
    public file: Inode | null,
  ) {}

  /** Models vma_is_anonymous(): no vm_ops and no file. */
  get isAnonymous(): boolean {
    return this.file === null && this.vmOps === null;
  }

  /** Models vma_pages(). */
  get pages(): number {
    return (this.end - this.start) / 4096;
  }
}

/** Models enum mmu_notifier_event (include/linux/mmu_notifier.h). */
export const MMU_NOTIFY_UNMAP = 0;
export const MMU_NOTIFY_CLEAR = 1;
export const MMU_NOTIFY_PROTECTION_VMA = 2;
export const MMU_NOTIFY_PROTECTION_PAGE = 3;
export const MMU_NOTIFY_SOFT_DIRTY = 4;
export const MMU_NOTIFY_RELEASE = 5;
export const MMU_NOTIFY_MIGRATE = 6;
export const MMU_NOTIFY_EXCLUSIVE = 7;

/** Models struct mmu_notifier_range. */
export interface MmuNotifierRange {
  readonly mm: MmStruct;
  readonly start: number;
  readonly end: number;
  readonly event: number;
  /** Models range->owner (MIGRATE / EXCLUSIVE events). */
  readonly owner: unknown;
  /**
   * Models MMU_NOTIFIER_RANGE_BLOCKABLE cleared in range->flags: set only by
   * mmu_notifier_invalidate_range_start_nonblock() (the OOM reaper). Absent: blockable.
   */
  readonly nonblock?: boolean;
}

/** Models mmu_notifier_range_blockable() (include/linux/mmu_notifier.h). */
export function mmuNotifierRangeBlockable(range: MmuNotifierRange): boolean {
  return range.nonblock !== true;
}

/** Models struct mmu_interval_notifier_ops. */
export interface MmuIntervalNotifierOps {
  /**
   * Models ->invalidate(): may sleep (a generator); returns false only for a non-blockable
   * range that cannot be handled. Drivers call mmu_interval_set_seq(sub, curSeq) under their lock.
   * A callback that finishes without sleeping (its lock was free) may return its result directly
   * instead of a generator: the same thing, without a generator per invalidation.
   */
  invalidate(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): KGen<boolean> | boolean;
}

/** Models struct mmu_interval_notifier. */
export class MmuIntervalNotifier {
  /**
   * Models interval_sub->invalidate_seq: set by the driver (mmu_interval_set_seq()) to the odd
   * sequence of the invalidation that hit it; read_begin()/read_retry() compare against it.
   */
  seq = 0;
  constructor(
    readonly mm: MmStruct,
    readonly start: number,
    readonly end: number,
    readonly ops: MmuIntervalNotifierOps,
  ) {}
}

/**
 * Models struct mmu_notifier_ops for a struct mmu_notifier on the mm's hlist (the classic,
 * non-interval subscription): ->invalidate_range_start/end see every invalidation of the mm
 * with its range, ->release sees the mm's teardown (mmu_notifier_release()).
 */
export interface MmuNotifierOps {
  /**
   * Models ->invalidate_range_start(): 0 (or nothing), or -EAGAIN refusing a non-blockable range
   * (the only failure the kernel allows). On a blockable range it may sleep (on its driver's
   * lock): it then returns a generator whose result is the return value; on a non-blockable one
   * that is a ModelBug.
   */
  invalidateRangeStart?(sub: MmuNotifier, range: MmuNotifierRange): number | undefined | KGen<number>;
  /** Models ->invalidate_range_end(). */
  invalidateRangeEnd?(sub: MmuNotifier, range: MmuNotifierRange): void;
  /** Models ->release(): the mm's last user is gone, before its pages are unmapped. */
  release?(sub: MmuNotifier, mm: MmStruct): void;
}

/** Models struct mmu_notifier (an hlist subscription, see mmu_notifier_register()). */
export class MmuNotifier {
  /** Models subscription->mm: set by mmu_notifier_register(). */
  mm: MmStruct | null = null;
  constructor(readonly ops: MmuNotifierOps) {}
}

/**
 * Model-only: an observer of every invalidation the core mm sends on an mm (start and end of
 * each range, including mmu_notifier_release()'s MMU_NOTIFY_RELEASE), whoever subscribes.
 * What {@link MmStruct.notifierObservers} holds; see NotifierRecorder.
 */
export interface MmuNotifierObserver {
  start(range: MmuNotifierRange): void;
  end(range: MmuNotifierRange): void;
}

/**
 * Model-only: what the mmu-notifier code needs from the machine an mm lives on (Core provides both): where
 * WARN_ON()s go, and `current` (lockdep tracks __mmu_notifier_invalidate_range_start_map per task).
 */
export interface MmuNotifierHost {
  /** Models WARN_ON(): record a warning. */
  warn(message: string): void;
  /** Models `current`: the task, with its count of ->invalidate callbacks it is inside (lockdep's map). */
  readonly current: { mmuNotifierDepth: number };
  /** Model-only: whether fix switch `id` is on (Core.fixed()). */
  fixed?(id: string): boolean;
}

/** Models MM rss counters (enum NR_MM_COUNTERS). */
export interface RssCounters {
  MM_FILEPAGES: number;
  MM_ANONPAGES: number;
  MM_SWAPENTS: number;
  MM_SHMEMPAGES: number;
}

const TLB_SIZE = 1024;
/** Models tlb_single_page_flush_ceiling (arch/x86/mm/tlb.c). */
const TLB_SINGLE_PAGE_FLUSH_CEILING = 33;

/** Model-only: how far apart {@link SoftTlb} epochs are (above every vpn: user vpns are below 2^35). */
const TLB_EPOCH_STEP = 2 ** 36;
/** Model-only: the last epoch before the tags are cleared for real and the epochs start over (tags stay exact doubles). */
const TLB_EPOCH_LAST = 2 ** 52;

/**
 * Models the per-CPU TLB as a direct-mapped software TLB (QEMU softmmu style): vpn -> pfn with
 * read/write permission. Any change to a page-table entry that was present flushes it.
 * Model-only: a slot holds vpn + epoch; a full flush starts a new epoch, which invalidates every
 * slot at once (an entry of an older epoch can never equal vpn + the current epoch).
 */
export class SoftTlb {
  readonly tag = new Float64Array(TLB_SIZE).fill(-1);
  readonly pfn = new Float64Array(TLB_SIZE);
  readonly writable = new Uint8Array(TLB_SIZE);
  /** Model-only: added to the vpn in every tag of the current epoch. */
  epoch = 0;
  flushes = 0;
  /** Model-only: the machine's event counters (core.events), when the mm belongs to one. */
  events: KernelEvents | null = null;

  /** Models the MMU filling a TLB entry after a successful walk. */
  insert(vpn: number, pfn: number, writable: boolean): void {
    const s = vpn & (TLB_SIZE - 1);
    this.tag[s] = vpn + this.epoch;
    this.pfn[s] = pfn;
    this.writable[s] = writable ? 1 : 0;
  }

  /** The vpn that slot s translates, or -1 when the slot is invalid. */
  vpnAt(s: number): number {
    const t = this.tag[s];
    return t >= this.epoch ? t - this.epoch : -1;
  }

  /** Models flush_tlb_mm(). */
  flushAll(): void {
    if (this.epoch >= TLB_EPOCH_LAST) {
      this.tag.fill(-1);
      this.epoch = 0;
    } else this.epoch += TLB_EPOCH_STEP;
    this.flushes++;
    if (this.events) this.events.tlbFlushes++;
  }

  /**
   * Models flush_tlb_range(): x86's flush_tlb_mm_range() flushes page by page up to
   * tlb_single_page_flush_ceiling (33) pages, and the whole TLB for a larger range.
   */
  flushRange(start: number, end: number): void {
    const first = Math.floor(start / 4096);
    const last = Math.ceil(end / 4096);
    if (last - first > TLB_SINGLE_PAGE_FLUSH_CEILING) {
      this.flushAll();
      return;
    }
    const e = this.epoch;
    for (let v = first; v < last; v++) {
      const s = v & (TLB_SIZE - 1);
      if (this.tag[s] === v + e) this.tag[s] = -1;
    }
    this.flushes++;
    if (this.events) this.events.tlbFlushes++;
  }
}

/**
 * Models struct mm_struct: the page-table root, the VMA tree (a sorted array), rss counters,
 * page-table bytes, the mmu-notifier subscriptions and the TLB.
 */
export class MmStruct {
  /** pfn of the PGD table. */
  pgd = -1;
  readonly vmas: Vma[] = [];
  readonly rss: RssCounters = { MM_FILEPAGES: 0, MM_ANONPAGES: 0, MM_SWAPENTS: 0, MM_SHMEMPAGES: 0 };
  /** Models mm->pgtables_bytes (PTE/PMD/PUD tables, including deposited ones). */
  pgtablesBytes = 0;
  readonly tlb = new SoftTlb();
  /** Models the interval tree of mm->notifier_subscriptions (itree). */
  readonly notifiers = new Set<MmuIntervalNotifier>();
  /** Models notifier_subscriptions->deferred_list: inserts made while invalidating. */
  readonly notifiersDeferred = new Set<MmuIntervalNotifier>();
  /** Models notifier_subscriptions->list: the hlist of struct mmu_notifier subscriptions. */
  readonly notifierList = new Set<MmuNotifier>();
  /** Model-only: observers of the invalidations sent on this mm (see MmuNotifierObserver). */
  readonly notifierObservers = new Set<MmuNotifierObserver>();
  /** The machine this mm lives on (set when the mm is created by a process or fork). */
  host: MmuNotifierHost | null = null;
  /** Models mm->mmap_base for the top-down allocator. */
  mmapBase = MMAP_BASE;
  /** Models mm_users: the mm is torn down when it reaches zero. */
  users = 1;
  /** Models MMF_HUGE_ZERO_FOLIO: this mm holds a reference on the huge zero folio. */
  hugeZeroRef = false;
  /**
   * Models pgtable_trans_huge_deposit(): the page table deposited with each huge or
   * non-present-huge PMD, keyed by the PMD's 2 MiB-aligned address.
   */
  readonly deposits = new Map<number, number>();
  /** Models mm->mmap_lock (see mm/locking.ts for who takes it how). */
  readonly mmapLock: RwSem;
  /**
   * Models mm->notifier_subscriptions->invalidate_seq: odd while any invalidation of this mm is
   * running (active_invalidate_ranges > 0), even otherwise.
   */
  notifierSeq = 2;
  /** Models active_invalidate_ranges. */
  activeInvalidations = 0;
  /** Models notifier_subscriptions->has_itree: an interval notifier was ever inserted. */
  hasItree = false;
  /** Models MMF_UNSTABLE (set by the OOM reaper): faults and migrations must not map into it. */
  unstable = false;
  /** Models MMF_OOM_SKIP: reaped, or torn down by exit_mmap(); the OOM killer and reaper skip it. */
  oomSkip = false;
  /** Models MMF_OOM_REAP_QUEUED: queue_oom_reaper() queued this mm once already. */
  oomReapQueued = false;
  /** Model-only: the machine's event counters (core.events), or null for a detached mm. */
  readonly events: KernelEvents | null;
  constructor(
    readonly id: number,
    events: KernelEvents | null = null,
  ) {
    this.mmapLock = new RwSem(`mmap_lock of mm ${id}`);
    this.events = events;
    this.tlb.events = events;
  }

  /** Models find_vma(): the first VMA with end > addr, or undefined. */
  findVma(addr: number): Vma | undefined {
    const v = this.vmas;
    let lo = 0;
    let hi = v.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v[mid].end <= addr) lo = mid + 1;
      else hi = mid;
    }
    return v[lo];
  }

  /** Models vma_lookup(): the VMA containing addr, or undefined. */
  vmaLookup(addr: number): Vma | undefined {
    const vma = this.findVma(addr);
    return vma && vma.start <= addr ? vma : undefined;
  }

  /** Inserts a VMA keeping the array sorted (models vma_link()). */
  insertVma(vma: Vma): void {
    const v = this.vmas;
    let i = 0;
    while (i < v.length && v[i].start < vma.start) i++;
    v.splice(i, 0, vma);
  }

  /** Removes a VMA from the tree (models vma_iter_clear()). */
  removeVma(vma: Vma): void {
    const i = this.vmas.indexOf(vma);
    if (i >= 0) this.vmas.splice(i, 1);
  }
}
