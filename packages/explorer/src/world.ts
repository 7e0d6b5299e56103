/**
 * The explorer's machine and its user space: a small machine with the four dmirror devices and
 * a nouveau GPU, every invariant checker installed, and process slots whose threads run the
 * generated operations. Addresses are fixed windows so that operations can name memory by
 * (region, page) and stay meaningful when other operations are removed (shrinking).
 */
import { installMigrateChecker } from '@hmm-model/migrate-vma';
import {
  HostMemoryPool,
  installMmCoreChecker,
  Kernel,
  type KGen,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MODEL_FIXES,
  minFreeKbytesFor,
  O_RDWR,
  O_WRONLY,
  oomSysctls,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  type Thread,
  thpSizeDir,
} from '@hmm-model/mm-core';
import {
  createNouveauDmem,
  installNouveauChecker,
  type NouveauDrm,
  type NouveauSvmm,
  nouveauSvmmFini,
  nouveauSvmmInitLocked,
} from '@hmm-model/nouveau-dmem';
import { type DmirrorModule, installDmirror } from '@hmm-model/test-hmm';

/** Fuzzed memory: region r of every process is the window [REGION_BASE + r * REGION_STRIDE, + REGION_MAX). */
export const REGION_BASE = 0x7e0000000000;
/** Distance between two regions' windows (room for mremap to move within a window). */
export const REGION_STRIDE = 16 * PMD_SIZE;
/** Largest region (pages). */
export const REGION_MAX_PAGES = 2 * (PMD_SIZE / PAGE_SIZE);
/** Regions per process. */
export const NREGIONS = 3;
/** Per-thread scratch memory (command structs and device read buffers), never fuzzed. */
export const SCRATCH_BASE = 0x7d0000000000;
/** Scratch bytes per thread slot. */
export const SCRATCH_PER_THREAD = 2 * REGION_MAX_PAGES * PAGE_SIZE;
/** Number of dmirror devices (/dev/hmm_dmirror0..3). */
export const NDEVICES = 4;

/** The address of page `page` of region r. */
export function regionAddr(r: number, page: number): number {
  return REGION_BASE + r * REGION_STRIDE + page * PAGE_SIZE;
}

/** Model-only: the default system RAM of an explorer machine (MiB). */
export const RAM_DEFAULT_MIB = 512;
/** Model-only: the smallest system RAM an explorer machine may have (MiB): boot, four devices, nouveau. */
export const RAM_MIN_MIB = 16;
/** Model-only: the largest system RAM an explorer machine may have (MiB). */
export const RAM_MAX_MIB = 4096;

/**
 * Model-only: a machine's RAM size as written on the command line and in reproducers (`24M`,
 * `1G`, or MiB without a unit) in MiB, or a one-line error: whole 4 MiB blocks (the machine's
 * RAM is made of MAX_PAGE_ORDER blocks) from {@link RAM_MIN_MIB} to {@link RAM_MAX_MIB}.
 */
export function parseRamMiB(text: string): number | string {
  const m = /^(\d+)([MmGg]?)$/.exec(text);
  const mib = m ? Number(m[1]) * (m[2] === 'G' || m[2] === 'g' ? 1024 : 1) : Number.NaN;
  if (!(mib >= RAM_MIN_MIB && mib <= RAM_MAX_MIB && mib % 4 === 0))
    return `RAM must be a multiple of 4 MiB from ${RAM_MIN_MIB}M to ${RAM_MAX_MIB / 1024}G (e.g. 32M), got '${text}'`;
  return mib;
}

/** Word-per-page arrays of the thread slots' accesses ({@link World.words}), shared by consecutive runs. */
const hostWords: Float64Array[] = [];

/** Host memory handed from each run's machine to the next one's (one pool per worker thread). */
const hostPool = new HostMemoryPool();

/** Model-only: the explorer's default fix switches (every kernel finding of the model's). */
export const ALL_FIXES: readonly string[] = MODEL_FIXES.map((f) => f.id);

/** Options of an explorer machine. */
export interface WorldOptions {
  /** Historical bugs switched back on. */
  readonly bugs?: readonly string[];
  /**
   * Fix switches for the model's kernel findings (mm-core MODEL_FIXES). Default: every one, so
   * that campaigns look for new findings; [] is v6.19 exactly (`pnpm fuzz --faithful`).
   */
  readonly fixes?: readonly string[];
  /** System RAM (default 512 MiB: room for several processes, their forks and device backing pages). */
  readonly ramBytes?: number;
  /** Process slots (default 3). */
  readonly procs?: number;
  /** Thread slots per process (default 2). */
  readonly threads?: number;
  /**
   * mTHP (issue 9, model extension): anonymous mTHP sizes enabled at boot ({@link MTHP_ANON_SIZES})
   * and dmirror devices that allocate and migrate folios of mTHP orders ({@link MTHP_DEVICE_ORDERS}).
   * Default false: v6.19's machine, so existing seeds and reproducers replay unchanged.
   */
  readonly mthp?: boolean;
  /**
   * vm.oom_kill_allocating_task at boot (mm-core oomSysctls()): 1, the model's default, kills the
   * process whose allocation failed; 0, the kernel's default, lets select_bad_process() choose.
   */
  readonly oomKillAllocatingTask?: number;
}

/**
 * Model-only: the mTHP orders of the explorer's dmirror devices with `mthp` (a bit per order):
 * device 0 every order 2..8, device 1 only 64 KiB, the coherent devices 16..64 KiB and 256 KiB,
 * so that destination negotiation, fallback and the orders a device lacks all happen.
 */
export const MTHP_DEVICE_ORDERS: Readonly<Record<number, number>> = {
  0: 0b111111100,
  1: 1 << 4,
  2: (1 << 2) | (1 << 3) | (1 << 4),
  3: 1 << 6,
};

/**
 * Model-only: the anonymous mTHP settings the explorer's machine boots with under `mthp`
 * (hugepages-<size>kB/enabled by order): some always, some only with MADV_HUGEPAGE, one
 * inheriting the top-level setting, so the fault path's order choice varies by VMA.
 */
export const MTHP_ANON_SIZES: readonly (readonly [order: number, mode: string])[] = [
  [2, 'always'],
  [4, 'always'],
  [3, 'inherit'],
  [6, 'madvise'],
];

/** Models `echo MODE > hugepages-<size>kB/enabled` by `proc` at boot (thpsize_enabled_store()). */
function writeThpSize(proc: Process, order: number, mode: string): void {
  const fd = proc.open(`${thpSizeDir(order)}/enabled`, O_WRONLY);
  const bytes = new TextEncoder().encode(`${mode}\n`);
  const r = fd < 0 ? fd : proc.pwrite(fd, bytes, bytes.length, 0);
  if (fd >= 0) proc.close(fd);
  if (r < 0)
    throw new Error(`explorer: cannot set hugepages-${(PAGE_SIZE << order) / 1024}kB to ${mode} (${r})`);
}

/** One live process of the world and its per-process kernel objects. */
export interface ProcSlot {
  readonly slot: number;
  readonly proc: Process;
  /** Thread slot t (t = 0 is the process itself). */
  readonly threads: readonly (Thread | Process)[];
  /** Open dmirror fds by device minor (opened on first use). */
  readonly dmFds: (number | undefined)[];
  /** The nouveau SVM address space (created on first GPU use). */
  svmm: NouveauSvmm | null;
  /** The open /sys/kernel/debug/gup_test fd of 'pin' ops (opened on first use). */
  gupFd: number | undefined;
}

/** Model-only: the explorer's machine and the process slots. */
export class World {
  readonly kernel: Kernel;
  readonly dmirror: DmirrorModule;
  readonly drm: NouveauDrm;
  readonly slots: (ProcSlot | null)[];
  readonly threadsPerProc: number;
  /** Global init (pid 1): idle, never a slot. */
  readonly init: Process;

  constructor(opts: WorldOptions = {}) {
    const ramBytes = opts.ramBytes ?? RAM_DEFAULT_MIB * 2 ** 20;
    this.kernel = new Kernel({
      ramBytes,
      // The kernel's boot default: reserves that only a __GFP_NOFAIL allocation after an OOM kill takes.
      minFreeKbytes: minFreeKbytesFor(ramBytes),
      hugetlbPages: 0,
      bugs: opts.bugs ?? [],
      fixes: opts.fixes ?? ALL_FIXES,
      hostPool,
    });
    installMmCoreChecker(this.kernel);
    this.dmirror = installDmirror(this.kernel, {
      coherent: true,
      evictUntilEmpty: true,
      ...(opts.mthp ? { mthpOrders: MTHP_DEVICE_ORDERS } : {}),
    });
    installMigrateChecker(this.kernel, {});
    this.drm = createNouveauDmem(this.kernel, { vramBytes: 256 << 20 });
    installNouveauChecker(this.drm);
    this.threadsPerProc = opts.threads ?? 2;
    this.slots = new Array(opts.procs ?? 3).fill(null);
    // Global init (pid 1) is a process of its own: the kernel never lets it be killed (kill()
    // ignores it, the OOM killer skips it), so the fuzzed processes are its children.
    this.init = this.kernel.spawn();
    if (opts.mthp) for (const [order, mode] of MTHP_ANON_SIZES) writeThpSize(this.init, order, mode);
    // `sysctl vm.oom_kill_allocating_task=N` at boot.
    if (opts.oomKillAllocatingTask !== undefined)
      oomSysctls(this.kernel.core).oom_kill_allocating_task = opts.oomKillAllocatingTask;
    this.slots[0] = this.adopt(0, this.kernel.spawn());
  }

  /** Makes `proc` the process of slot s: its threads and its scratch memory. */
  adopt(s: number, proc: Process, inherit?: ProcSlot): ProcSlot {
    const threads: (Thread | Process)[] = [proc];
    for (let t = 1; t < this.threadsPerProc; t++) threads.push(proc.clone());
    const slot: ProcSlot = {
      slot: s,
      proc,
      threads,
      // A child inherits the parent's dmirror fds, but those mirror the parent's mm (the
      // opener's, as dmirror_fops_open() binds it): the child's operations open their own.
      dmFds: new Array(NDEVICES).fill(undefined),
      svmm: null,
      // The child's inherited copy refers to the parent's file: its 'pin' ops open their own.
      gupFd: undefined,
    };
    if (!inherit) {
      const len = SCRATCH_PER_THREAD * this.threadsPerProc;
      const r = proc.mmap(
        SCRATCH_BASE,
        len,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
      );
      if (r !== SCRATCH_BASE) throw new Error(`explorer: scratch mmap failed (${r})`);
    }
    this.slots[s] = slot;
    return slot;
  }

  /** The live process of slot s, or null. */
  live(s: number): ProcSlot | null {
    const slot = this.slots[s];
    if (!slot) return null;
    if (slot.proc.state !== 'running') {
      this.slots[s] = null;
      return null;
    }
    return slot;
  }

  /** A free process slot, or -1. */
  freeSlot(): number {
    for (let s = 0; s < this.slots.length; s++) if (!this.live(s)) return s;
    return -1;
  }

  /**
   * The words a CPU, device or GPU load or store of thread slot (p, t) moves, one per page: one
   * array per slot, reused by its next operation and by the next run's (a slot's operations run
   * one after another, one run at a time per thread, and the oracle is done with an operation's
   * words when it ends), so that a campaign does not allocate per access.
   */
  words(p: number, t: number, npages: number): Float64Array {
    const key = p * this.threadsPerProc + t;
    let b = hostWords[key];
    if (!b || b.length < npages) hostWords[key] = b = new Float64Array(Math.max(npages, 1024));
    return b.subarray(0, npages);
  }

  /** Scratch memory of a thread slot. */
  scratch(t: number): number {
    return SCRATCH_BASE + t * SCRATCH_PER_THREAD;
  }

  /**
   * The svmm of a process for the GPU: nouveau_svmm_init() on first use, under the mmap lock for
   * write as the ioctl takes it (a registration racing a zap waits for it).
   */
  *svmm(slot: ProcSlot): KGen<NouveauSvmm> {
    if (!slot.svmm || slot.svmm.mm !== slot.proc.mm) {
      const svmm = yield* nouveauSvmmInitLocked(this.drm, slot.proc.mm);
      // Another thread of the process may have registered one meanwhile: keep the first.
      if (slot.svmm && slot.svmm.mm === slot.proc.mm) nouveauSvmmFini(svmm);
      else slot.svmm = svmm;
    }
    return slot.svmm;
  }

  /** Model-only: the run is over; the machine's host memory goes to the next World ({@link Kernel.dispose}). */
  dispose(): void {
    this.kernel.dispose();
  }

  /** Device path of dmirror minor d. */
  static devPath(d: number): string {
    return `/dev/hmm_dmirror${d}`;
  }

  /** Flags for open(2) of a dmirror device. */
  static readonly DM_OPEN_FLAGS = O_RDWR;
}
