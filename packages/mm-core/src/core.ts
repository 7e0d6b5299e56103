import { checkBugIds } from './bugs.js';
import { HPAGE_PMD_ORDER } from './constants.js';
import { ModelBug, type Warning } from './errors.js';
import { KernelEvents } from './events.js';
import { checkFixIds } from './fixes.js';
import type { SwapInfo } from './mm/swapfile.js';
import type { AnonVma, Inode, MmStruct } from './mm/types.js';
import { BuddyZone } from './phys/buddy.js';
import { Frames } from './phys/frames.js';
import type { HostMemoryPool } from './phys/hostpool.js';
import { MAX_PHYS_PFN, MemMap, PAGES_PER_SECTION, PG_locked } from './phys/memmap.js';
import { FolioLockOwners } from './sched/folio-lock-owners.js';
import type { SpinLock } from './sched/locks.js';
import { Scheduler } from './sched/scheduler.js';
import type { KGen, Task } from './sched/task.js';
import { type MthpStats, newMthpStats, newVmstat, type Vmstat } from './vmstat.js';

/** Models enum memory_type (include/linux/memremap.h). */
export const MEMORY_DEVICE_PRIVATE = 1;
export const MEMORY_DEVICE_COHERENT = 2;
export const MEMORY_DEVICE_FS_DAX = 3;
export const MEMORY_DEVICE_GENERIC = 4;
export const MEMORY_DEVICE_PCI_P2PDMA = 5;
/** Models enum memory_type. */
export type MemoryType = 1 | 2 | 3 | 4 | 5;

/** Models VM_FAULT_* return bits (include/linux/mm_types.h). */
export const VM_FAULT_OOM = 0x000001;
export const VM_FAULT_SIGBUS = 0x000002;
export const VM_FAULT_MAJOR = 0x000004;
export const VM_FAULT_HWPOISON = 0x000010;
export const VM_FAULT_SIGSEGV = 0x000040;
export const VM_FAULT_NOPAGE = 0x000100;
export const VM_FAULT_LOCKED = 0x000200;
export const VM_FAULT_RETRY = 0x000400;
export const VM_FAULT_FALLBACK = 0x000800;
export const VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON;

/** Models FAULT_FLAG_* (include/linux/mm_types.h) used by this model. */
export const FAULT_FLAG_WRITE = 0x01;
export const FAULT_FLAG_REMOTE = 0x80;
export const FAULT_FLAG_USER = 0x40;
/**
 * Models FAULT_FLAG_UNSHARE: a read-only GUP pin (gup_must_unshare()) asks the fault handler to
 * make the page exclusive to this mapping (COW-copy it if shared) without making it writable.
 */
export const FAULT_FLAG_UNSHARE = 0x400;

/**
 * Models struct vm_fault as handed to dev_pagemap_ops.migrate_to_ram(): the faulting address,
 * the device page (head pfn for a PMD fault), and whether the fault came through a PTE
 * (`pte` true) or a PMD (`pte` false: vmf->pte == NULL).
 */
export interface VmFault {
  /** The mm_struct (opaque to drivers; passed back into migrate_vma_setup via `vma`). */
  readonly vma: unknown;
  /** vmf->address, page aligned. */
  readonly address: number;
  /** vmf->page: pfn of the faulting device page (head pfn for PMD faults). */
  readonly page: number;
  /** vmf->flags (FAULT_FLAG_*). */
  readonly flags: number;
  /** True when vmf->pte != NULL (PTE-level fault). */
  readonly pte: boolean;
}

/** Models struct dev_pagemap_ops (include/linux/memremap.h). */
export interface DevPagemapOps {
  /** Models folio_free(folio): the device folio's refcount reached zero. */
  folioFree(head: number, order: number): void;
  /**
   * Models migrate_to_ram(vmf): return 0 or VM_FAULT_* bits. A kernel path that may sleep
   * (a generator: see sched/task.ts); it runs with the fault folio locked and referenced.
   */
  migrateToRam?(vmf: VmFault): KGen<number>;
  /** Models folio_split(head, tail): tail is -1 for the final "split finished" call. */
  folioSplit?(head: number, tail: number): void;
}

/** Models struct dev_pagemap (include/linux/memremap.h). */
export interface DevPagemap {
  /** Index in the machine's pgmap table (what memmap.pgmap holds); assigned on registration. */
  id: number;
  readonly type: MemoryType;
  readonly owner: unknown;
  readonly ops: DevPagemapOps;
  /** pfn range [startPfn, endPfn). */
  startPfn: number;
  endPfn: number;
  /** Models the percpu_ref: references held (one per allocated device page). */
  refs: number;
  /** Models percpu_ref_kill() having been called by memunmap_pages(). */
  dying: boolean;
  /** Name for inspection. */
  readonly name: string;
  /**
   * Model-only: the range came from request_free_mem_region() (no fixed start), so
   * memunmap_pages() releases it for reuse (release_mem_region()).
   */
  readonly freeRegion?: boolean;
}

/** Models the THP sysfs mode (/sys/kernel/mm/transparent_hugepage/enabled). */
export type ThpMode = 'always' | 'madvise' | 'never';

/**
 * Models huge_anon_orders_always / _madvise / _inherit (mm/huge_memory.c): bit `order` set in at
 * most one of them; in none means "never". Written through
 * /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled (anon_enabled_store()).
 */
export interface ThpAnonOrders {
  always: number;
  madvise: number;
  inherit: number;
}

/** Models the per-size setting of one anonymous THP order. */
export type ThpSizeMode = 'always' | 'inherit' | 'madvise' | 'never';

/** Options for a simulated machine. */
export interface CoreOptions {
  /**
   * System RAM in bytes (default 2 GiB), rounded down to 4 MiB (a MAX_PAGE_ORDER block); at
   * least one block and at most what fits below the model's physical address limit
   * (MAX_PHYS_PFN, see {@link checkRamBytes}). Lazily backed: struct pages and bytes are
   * materialised per section on first use, so boot costs O(sections).
   */
  ramBytes?: number;
  /**
   * Models vm.min_free_kbytes: the free memory the allocator keeps back for allocations that may
   * ignore the watermarks (BuddyZone.minFree). Default 0 (model default: no reserve); the kernel
   * computes it at boot, {@link minFreeKbytesFor}.
   */
  minFreeKbytes?: number;
  /** THP mode (default 'madvise', like most distributions' default of CONFIG_TRANSPARENT_HUGEPAGE_MADVISE). */
  thp?: ThpMode;
  /**
   * Models the thp_anon= boot parameter: the per-size setting of anonymous THP orders 2..9
   * (hugepages-<size>kB/enabled). Unset orders keep the kernel's defaults (PMD order "inherit",
   * the others "never"). An order outside 2..9 throws a RangeError.
   */
  thpAnon?: Readonly<Record<number, ThpSizeMode>>;
  /** hugetlb pool size in 2 MiB pages (default 4). */
  hugetlbPages?: number;
  /**
   * Model-only: host memory of discarded machines to boot from (`Kernel.dispose()` returns this
   * machine's to it). A campaign that boots many machines one after another shares one.
   */
  hostPool?: HostMemoryPool;
  /**
   * Historical kernel bugs to switch back on, by id (series-bugs.md: 'F5', 'R1', ...). The model
   * then behaves as the kernel did before the fix. Unknown ids throw a one-line error.
   */
  bugs?: readonly string[];
  /**
   * Fix switches for kernel findings of this model (fixes.ts: 'K1', ...): the model then behaves
   * as the finding's fix proposes instead of as v6.19. Unknown ids throw a one-line error.
   */
  fixes?: readonly string[];
}

/** First pfn of system RAM (1 GiB: pfns below are left as a hole, like the PCI hole, so pfn 0 never appears). */
export const RAM_START_PFN = 0x40000;

/** Models the MAX_PHYSMEM_BITS limit on e820 RAM: the largest RAM in bytes (RAM starts at 1 GiB). */
export const MAX_RAM_BYTES = (MAX_PHYS_PFN - RAM_START_PFN) * 4096;

/** Model-only: the RAM of a machine booted without KernelOptions.ramBytes (2 GiB). */
export const DEFAULT_RAM_BYTES = 2 * 1024 * 1024 * 1024;

/**
 * Models calculate_min_free_kbytes() (mm/page_alloc.c, init_per_zone_wmark_min()): the boot
 * default of vm.min_free_kbytes for `ramBytes` of low memory, int_sqrt(kbytes * 16) clamped to
 * [128, 262144].
 */
export function minFreeKbytesFor(ramBytes: number): number {
  const kb = Math.floor(Math.sqrt(Math.floor(ramBytes / 1024) * 16));
  return Math.min(262144, Math.max(128, kb));
}

/**
 * Models the memblock sanity checks of e820 RAM at boot (what would make a kernel refuse a
 * memory map): returns an error message for a RAM size the model cannot boot with, or undefined.
 * Accepts positive sizes that are whole 4 MiB blocks and end below the physical address limit.
 */
export function checkRamBytes(ramBytes: number): string | undefined {
  if (!Number.isFinite(ramBytes) || !Number.isInteger(ramBytes))
    return `RAM size ${ramBytes} is not a whole number of bytes`;
  if (ramBytes <= 0) return `RAM size ${ramBytes} is not positive`;
  if (ramBytes % (4 << 20) !== 0)
    return `RAM size ${ramBytes} is not a multiple of 4 MiB (a MAX_PAGE_ORDER block)`;
  if (ramBytes > MAX_RAM_BYTES)
    return `RAM size ${ramBytes} exceeds the model's physical address space (at most ${MAX_RAM_BYTES} bytes above the 1 GiB hole)`;
  return undefined;
}

/**
 * Models the global kernel state below the process layer: memmap, physical memory, the
 * buddy zone, the dev_pagemap table, vmstat, the zero pages and warnings. Pure state with
 * small helpers; behaviour lives in the modules that take a Core.
 */
export class Core {
  readonly map: MemMap;
  readonly frames: Frames;
  /** Model-only: counts of kernel events (page-table writes, TLB flushes, ...); see events.ts. */
  readonly events = new KernelEvents();
  readonly zone: BuddyZone;
  /** Models min_free_kbytes (vm.min_free_kbytes; BuddyZone.setupWmarks() turns it into WMARK_MIN). */
  minFreeKbytes: number;
  readonly vmstat: Vmstat = newVmstat();
  /** Models the dev_pagemap table: index 0 unused. */
  readonly pgmaps: (DevPagemap | undefined)[] = [undefined];
  /**
   * Models page->mapping targets (anon_vma / address_space objects). Ids are never reused, so a
   * folio whose anon_vma is gone sees no mapping rather than somebody else's.
   */
  readonly mappings = new Map<number, AnonVma | Inode>();
  private nextMappingId = 1;
  /** The last id {@link Core.mappingOf} looked up and its object (rmap walks run per page). */
  private lastMappingId = 0;
  private lastMapping: AnonVma | Inode | undefined = undefined;
  readonly warnings: Warning[] = [];
  /** Models oom_reaper_list: the OOM reaper's work queued by queueOomReaper() (oom-reaper.ts). */
  readonly oomReapers: Task[] = [];
  /**
   * Model-only: the exits of OOM victims that run in a task of their own (oom.ts oomKillProcess()),
   * so that whoever runs the machine can wait for them as for the reapers.
   */
  readonly oomExits: Task[] = [];
  /** Models the default hstate's pool (2 MiB pages): free heads and the pool size. */
  readonly hugetlb = { free: [] as number[], total: 0 };
  /** Models the shared zero page (ZERO_PAGE(0)). */
  zeroPfn = -1;
  /** Models the huge zero folio (huge_zero_folio), allocated on first use. */
  hugeZeroPfn = -1;
  thpMode: ThpMode;
  /** Models huge_anon_orders_{always,madvise,inherit}: the per-size anonymous THP settings. */
  readonly thpAnonOrders: ThpAnonOrders = { always: 0, madvise: 0, inherit: 1 << HPAGE_PMD_ORDER };
  /** Models mthp_stats: per-order THP counters (hugepages-<size>kB/stats). */
  readonly mthpStats: MthpStats = newMthpStats();
  /** Models the scheduler: tasks, `current`, the strategy and the recorded schedule. */
  readonly sched: Scheduler;
  /** Historical bugs switched back on (KernelOptions.bugs). */
  readonly bugs: ReadonlySet<string>;
  /** Fix switches turned on (CoreOptions.fixes). */
  readonly fixes: ReadonlySet<string>;
  /** Models folio lock ownership (lockdep's view of PG_locked): head pfn -> task. */
  readonly folioLockOwners: FolioLockOwners;
  /** Models split page-table locks: page-table page pfn -> its ptl. */
  readonly ptlocks = new Map<number, SpinLock>();
  /** The table of the last {@link ptlocks} lookup (-1: none) and its lock (mm/locking.ts ptlockOf()). */
  lastPtlTable = -1;
  lastPtl: SpinLock | null = null;
  /**
   * Migrations between unmap and remove_migration_ptes() (migrate_vma_setup() ..
   * migrate_vma_finalize(), migrate_pages()). Migration code increments it on entry and
   * decrements it when done; while non-zero the invariant checker accepts migration entries
   * and locked folios at syscall boundaries.
   */
  migrationsInFlight = 0;
  /** Models /sys/kernel/mm/transparent_hugepage/use_zero_page. */
  thpUseZeroPage = true;
  /**
   * Models swap_info[]: the swap areas, indexed by swap type (mm/swapfile.ts). Kernel's
   * constructor swapons the machine's swap area (KernelOptions.swapBytes).
   */
  readonly swapInfo: SwapInfo[] = [];
  /**
   * Models init_mm.mmlist: the address spaces try_to_unuse() walks. The kernel links an mm on its
   * first swap entry (try_to_unmap_one(), copy_nonpresent_pte()); the model links every mm when
   * it is created (Process, dup_mmap()) and unlinks it in __mmput(), so the walk sees the same
   * mms with swap entries, in creation order (the kernel puts a child right after its parent).
   */
  readonly mmlist = new Set<MmStruct>();
  /** Next pfn free for device ranges (models the iomem free-region search). */
  nextDevicePfn: number;
  /**
   * Models the free iomem regions below nextDevicePfn: [start, end) pfn pairs, sorted, that
   * memunmap_pages() gave back (release_mem_region() of a region from request_free_mem_region());
   * the next request reuses them, as the kernel's free-region search finds them free again.
   */
  readonly freedDeviceRanges: number[] = [];
  readonly ramPages: number;

  /** Model-only: host memory from and to released machines (CoreOptions.hostPool). */
  readonly hostPool: HostMemoryPool | undefined;

  constructor(opts: CoreOptions = {}) {
    this.hostPool = opts.hostPool;
    this.map = new MemMap(opts.hostPool);
    this.frames = new Frames(opts.hostPool);
    this.events.entries.pool = opts.hostPool;
    this.folioLockOwners = new FolioLockOwners((h) => (this.map.flags[h] & PG_locked) !== 0, opts.hostPool);
    const ram = opts.ramBytes ?? DEFAULT_RAM_BYTES;
    const bad = checkRamBytes(Math.floor(ram / (4 << 20)) * (4 << 20));
    if (bad !== undefined) throw new RangeError(bad);
    this.ramPages = Math.floor(ram / 4096 / 1024) * 1024;
    this.thpMode = opts.thp ?? 'madvise';
    for (const [k, mode] of Object.entries(opts.thpAnon ?? {})) {
      const order = Number(k);
      if (!Number.isInteger(order) || order < 2 || order > HPAGE_PMD_ORDER)
        throw new RangeError(`thpAnon: order ${k} is not an anonymous THP order (2..${HPAGE_PMD_ORDER})`);
      const bit = 1 << order;
      const o = this.thpAnonOrders;
      o.always &= ~bit;
      o.madvise &= ~bit;
      o.inherit &= ~bit;
      if (mode === 'always') o.always |= bit;
      else if (mode === 'madvise') o.madvise |= bit;
      else if (mode === 'inherit') o.inherit |= bit;
      else if (mode !== 'never') throw new RangeError(`thpAnon: unknown mode ${String(mode)} for order ${k}`);
    }
    this.bugs = new Set(checkBugIds(opts.bugs ?? []));
    this.fixes = new Set(checkFixIds(opts.fixes ?? []));
    this.sched = new Scheduler();
    this.sched.leakedSpinlocksPossible = this.bugs.size > 0;
    // Reserve memmap address space for RAM and for device memory above it (a quarter of RAM plus
    // 8 GiB), so that drivers' memremap_pages() rarely has to grow (and copy) the memmap. Only
    // host address space: nothing is committed until sections are initialised.
    const ramEnd = RAM_START_PFN + this.ramPages;
    this.map.ensure(Math.min(MAX_PHYS_PFN, ramEnd + Math.floor(ramEnd / 4) + (8 << 18)));
    this.zone = new BuddyZone(this.map, RAM_START_PFN, this.ramPages);
    this.zone.freeAll();
    this.minFreeKbytes = opts.minFreeKbytes ?? 0;
    this.zone.setupWmarks(this.minFreeKbytes);
    // Device ranges start on a 128 MiB (section) boundary well above RAM.
    const sect = PAGES_PER_SECTION;
    this.nextDevicePfn = Math.ceil((RAM_START_PFN + this.ramPages + sect) / sect) * sect;
  }

  /** True when the historical bug `id` is switched back on. */
  bug(id: string): boolean {
    return this.bugs.size !== 0 && this.bugs.has(id);
  }

  /** True when the fix switch `id` (fixes.ts) is on. */
  fixed(id: string): boolean {
    return this.fixes.size !== 0 && this.fixes.has(id);
  }

  /** Models `current`: the task whose kernel code is running. */
  get current(): Task {
    return this.sched.current;
  }

  /** Models WARN_ON_ONCE(): record a warning. */
  warn(message: string): void {
    this.warnings.push({ message });
  }

  /** Registers an object as a page->mapping target; returns its id. */
  registerMapping(obj: AnonVma | Inode): number {
    const id = this.nextMappingId++;
    this.mappings.set(id, obj);
    return id;
  }

  /** Releases a mapping id (the object is gone). */
  unregisterMapping(id: number): void {
    if (!this.mappings.delete(id)) throw new ModelBug(`mapping id ${id} not registered`);
    if (id === this.lastMappingId) {
      this.lastMappingId = 0;
      this.lastMapping = undefined;
    }
  }

  /**
   * Models following page->mapping (folio_anon_vma() / folio->mapping): the anon_vma or
   * address_space registered under `id`, or undefined (0, or an id whose object is gone).
   */
  mappingOf(id: number): AnonVma | Inode | undefined {
    if (id === this.lastMappingId && id !== 0) return this.lastMapping;
    const obj = this.mappings.get(id);
    if (obj !== undefined) {
      this.lastMappingId = id;
      this.lastMapping = obj;
    }
    return obj;
  }

  /** Models page_pgmap(): the dev_pagemap of a ZONE_DEVICE pfn. */
  pgmapOf(pfn: number): DevPagemap | undefined {
    const id = this.map.pgmap[pfn];
    return id === 0 ? undefined : this.pgmaps[id];
  }
}
