import {
  EEXIST,
  EINVAL,
  EISDIR,
  ENOENT,
  O_CREAT,
  O_EXCL,
  O_TMPFILE,
  PAGE_SIZE,
  PMD_SIZE,
  TASK_SIZE,
} from './constants.js';
import { Core, type CoreOptions } from './core.js';
import { allocFolio } from './folio.js';
import type { FileOperations, OpenFile } from './fs.js';
import { gupTestFops } from './gup-test.js';
import type { Host, PathTarget, TaskLike } from './host.js';
import { kpageflagsFops } from './kpageflags.js';
import { hugetlbGrowPool } from './mm/hugetlb.js';
import {
  type KhugepagedPass,
  khugepagedRunFor,
  khugepagedScanOnce,
  registerKhugepagedSysfs,
} from './mm/khugepaged.js';
import { minFreeKbytesRead, minFreeKbytesWrite } from './mm/min-free.js';
import { registerOvercommitSysctls } from './mm/overcommit.js';
import { shmemNewInode } from './mm/shmem.js';
import { DEFAULT_SWAP_BYTES, swapon } from './mm/swapfile.js';
import { registerSwapDevice, SWAP_DEVICE_PATH } from './mm/swapoff.js';
import { registerThpSysfs } from './mm/thp-sysfs.js';
import type { Inode } from './mm/types.js';
import { oomKillAllocatingTaskWrite, oomSysctls, registerOomHost } from './oom.js';
import { PG_reserved } from './phys/memmap.js';
import { mapsText, pagemapRead, statusText } from './proc.js';
import { Process } from './process.js';
import { meminfoText, vmstatText } from './report.js';
import type { Scheduler } from './sched/scheduler.js';
import { splitHugePagesFops } from './split-huge-pages.js';
import { TmpfsNamespace } from './vfs.js';

/** Options for {@link Kernel}. */
export interface KernelOptions extends CoreOptions {
  /** Seed of randomness handed to programs (default 1). */
  seed?: number;
  /** Run the invariant checker after every syscall (default false; tests turn it on). */
  checkInvariants?: boolean;
  /** Models CONFIG_GUP_TEST: /sys/kernel/debug/gup_test exists (default true). */
  gupTest?: boolean;
  /**
   * Size of the machine's swap area in bytes, swapon'ed at boot (default 1 GiB,
   * DEFAULT_SWAP_BYTES: a swap partition on an SSD); 0 boots without swap. A whole number of
   * pages, at least two (the header and one slot), at most MAX_SWAP_BYTES.
   */
  swapBytes?: number;
}

/** A checker run after syscalls when enabled: returns a list of violations. */
export type InvariantChecker = (kernel: Kernel) => string[];

/** Models a text pseudo file (procfs/sysfs show()) generated at read time. */
function textFile(gen: (file: OpenFile) => string): FileOperations {
  return {
    *pread(file, buf, pos) {
      const bytes = new TextEncoder().encode(gen(file));
      if (pos >= bytes.length) return 0;
      const n = Math.min(buf.length, bytes.length - pos);
      buf.set(bytes.subarray(pos, pos + n));
      return n;
    },
  };
}

/**
 * Models the running kernel of one simulated machine: physical memory and the core mm
 * (Core), the task table, the VFS (device files, tmpfs, procfs/sysfs files this model has)
 * and the scheduler. Create as many side by side as needed.
 */
export class Kernel implements Host {
  readonly core: Core;
  readonly tasks = new Map<number, TaskLike>();
  private nextPid = 1;
  /** Models the character-device namespace under /dev and debugfs. */
  readonly devices = new Map<string, FileOperations>();
  /** Models tmpfs at /tmp (and /dev/shm): name -> inode. */
  readonly tmpfs = new Map<string, Inode>();
  /** Models the tmpfs directories and mounts (mkdir/rmdir/unlink/mount/umount). */
  readonly ns: TmpfsNamespace;
  checkInvariants: boolean;
  /**
   * Model-only: with checkInvariants, run the checker after every checkInterval-th syscall
   * (default 1: after each). A long program on a big machine can sample; a final `check()`
   * still sees every leak and inconsistency that is left.
   */
  checkInterval = 1;
  private syscallsSinceCheck = 0;
  readonly checkers: InvariantChecker[] = [];
  /** Violations found by the checker (when it does not throw). */
  readonly violations: string[] = [];
  /** Models /sys/kernel/mm/transparent_hugepage/hpage_pmd_size. */
  readonly hpagePmdSize = PMD_SIZE;
  /** The seed handed to programs (selftests' randomness) and the default for random schedules. */
  readonly seed: number;

  /** The scheduler (tasks, strategy, recorded schedule). */
  get sched(): Scheduler {
    return this.core.sched;
  }

  constructor(opts: KernelOptions = {}) {
    this.core = new Core(opts);
    this.ns = new TmpfsNamespace(this.core, this.tmpfs);
    this.seed = opts.seed ?? 1;
    this.checkInvariants = opts.checkInvariants ?? false;
    // Models ZERO_PAGE(0): a reserved frame shared by every zero-page mapping.
    const z = allocFolio(this.core, 0, true);
    this.core.map.flags[z] |= PG_reserved;
    this.core.zeroPfn = z;
    hugetlbGrowPool(this.core, opts.hugetlbPages ?? 4);
    const swapBytes = opts.swapBytes ?? DEFAULT_SWAP_BYTES;
    const area = swapon(this.core, swapBytes, opts.hostPool);
    if (area) registerSwapDevice(this.core, SWAP_DEVICE_PATH, swapBytes, area);
    this.registerPseudoFiles();
    if (opts.gupTest ?? true) this.devices.set('/sys/kernel/debug/gup_test', gupTestFops(this.core));
    this.devices.set('/sys/kernel/debug/split_huge_pages', splitHugePagesFops(this));
  }

  private registerPseudoFiles(): void {
    registerOvercommitSysctls(this);
    registerOomHost(this);
    const core = this.core;
    // Models vm_oom_kill_table (mm/oom_kill.c): /proc/sys/vm/oom_kill_allocating_task.
    this.devices.set('/proc/sys/vm/oom_kill_allocating_task', {
      ...textFile(() => `${oomSysctls(core).oom_kill_allocating_task}\n`),
      *pwrite(_file, buf, pos) {
        if (pos > 0) return buf.length;
        const r = oomKillAllocatingTaskWrite(core, new TextDecoder().decode(buf));
        return r < 0 ? r : buf.length;
      },
    });
    // Models page_alloc_sysctl_table (mm/page_alloc.c): /proc/sys/vm/min_free_kbytes.
    this.devices.set('/proc/sys/vm/min_free_kbytes', {
      ...textFile(() => minFreeKbytesRead(core)),
      *pwrite(_file, buf, pos) {
        if (pos > 0) return buf.length;
        const r = minFreeKbytesWrite(core, new TextDecoder().decode(buf));
        return r < 0 ? r : buf.length;
      },
    });
    registerKhugepagedSysfs(this);
    registerThpSysfs(this);
    this.devices.set('/proc/self/pagemap', {
      *pread(file, buf, pos) {
        const proc = file.opener as Process;
        if (pos % 8 !== 0 || buf.length % 8 !== 0) return -EINVAL;
        // Models pagemap_read(): entries only for [start, TASK_SIZE); none from beyond it.
        const start = (pos / 8) * PAGE_SIZE;
        if (start >= TASK_SIZE) return 0;
        const n = Math.min(buf.length / 8, (TASK_SIZE - start) / PAGE_SIZE);
        const out = new BigUint64Array(n);
        if (proc.state === 'running') yield* pagemapRead(core, proc.mm, start, n, out);
        const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
        for (let k = 0; k < n; k++) dv.setBigUint64(k * 8, out[k], true);
        return n * 8;
      },
    });
    this.devices.set(
      '/proc/self/maps',
      textFile((file) => {
        const proc = file.opener as Process;
        return proc.state === 'running' ? mapsText(proc.mm) : '';
      }),
    );
    this.devices.set('/proc/kpageflags', kpageflagsFops(core));
    this.devices.set('/proc/sys/vm/drop_caches', {
      // Models drop_caches_sysctl_handler() (fs/drop_caches.c): proc_dointvec_minmax() takes
      // 1..4. Bit 1 drops clean unmapped page cache and bit 2 slab; the model's page cache is
      // all tmpfs (never clean, never dropped) and it has no slab, so nothing is freed.
      *pwrite(_file, buf, pos) {
        if (pos > 0) return buf.length;
        const m = /^\s*([+-]?\d+)\s*$/.exec(new TextDecoder().decode(buf));
        if (!m) return -EINVAL;
        const v = Number(m[1]);
        if (v < 1 || v > 4) return -EINVAL;
        return buf.length;
      },
    });
    this.devices.set(
      '/proc/self/status',
      textFile((file) => {
        const proc = file.opener as Process;
        return proc.state === 'running' ? statusText(proc.pid, proc.mm) : '';
      }),
    );
    this.devices.set(
      '/proc/meminfo',
      textFile(() => meminfoText(this.core)),
    );
    this.devices.set(
      '/proc/vmstat',
      textFile(() => vmstatText(this.core)),
    );
    this.devices.set(
      '/sys/kernel/mm/transparent_hugepage/hpage_pmd_size',
      textFile(() => `${PMD_SIZE}\n`),
    );
    this.devices.set(
      '/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages',
      textFile(() => `${this.core.hugetlb.free.length}\n`),
    );
    this.devices.set(
      '/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages',
      textFile(() => `${this.core.hugetlb.total}\n`),
    );
  }

  /** Models register_chrdev()/misc_register()/debugfs_create_file(): a device file at path. */
  registerDevice(path: string, fops: FileOperations): void {
    this.devices.set(path, fops);
  }

  /** Models unregistering a device file. */
  unregisterDevice(path: string): void {
    this.devices.delete(path);
  }

  /** Models alloc_pid(). */
  allocPid(): number {
    return this.nextPid++;
  }

  /** Models find_task_by_vpid(). */
  task(pid: number): Process | undefined {
    const t = this.tasks.get(pid);
    return t instanceof Process ? t : undefined;
  }

  /** Creates a new process (models a fresh exec'd program with an empty address space). */
  spawn(): Process {
    return new Process(this, null);
  }

  /** Models path lookup for open(2). */
  lookupPath(path: string, flags: number): PathTarget | number {
    const dev = this.devices.get(path);
    if (dev) return { fops: dev };
    if ((flags & O_TMPFILE) === O_TMPFILE) {
      if (path !== '/tmp' && path !== '/dev/shm' && path !== '/tmp/') return -ENOENT;
      const inode = shmemNewInode(this.core, `${path.replace(/\/$/, '')}/#tmpfile (deleted)`);
      inode.sbHuge = this.ns.hugeFor(`${path.replace(/\/$/, '')}/#tmpfile`);
      return { inode };
    }
    if (path.startsWith('/tmp/') || path.startsWith('/dev/shm/')) {
      const have = this.tmpfs.get(path);
      if (have) {
        if (flags & O_CREAT && flags & O_EXCL) return -EEXIST;
        return { inode: have };
      }
      // A directory: -EISDIR (the model has no directory file descriptions, even read-only).
      if (!(flags & O_CREAT)) return this.ns.dirs.has(path.replace(/\/+$/, '')) ? -EISDIR : -ENOENT;
      const parent = this.ns.parentDirOk(path);
      if (parent < 0) return parent;
      const inode = shmemNewInode(this.core, path);
      inode.unlinked = false;
      inode.sbHuge = this.ns.hugeFor(path);
      this.tmpfs.set(path, inode);
      return { inode };
    }
    return -ENOENT;
  }

  /** Runs the registered invariant checkers now; returns the violations found. */
  check(): string[] {
    const out: string[] = [];
    for (const c of this.checkers) out.push(...c(this));
    return out;
  }

  /**
   * Model-only: the machine is discarded. Its host memory (the memmap arrays and the frames'
   * 2 MiB buffers) goes back to a per-thread pool that the next Kernel's boot reuses, which is
   * most of a small machine's boot time. Nothing of this Kernel may be used afterwards: its
   * memmap is empty, so a stray use fails instead of reading another machine's memory.
   */
  dispose(): void {
    this.core.map.release();
    this.core.frames.release();
    for (const si of this.core.swapInfo) si.release();
    this.core.folioLockOwners.release();
    this.core.events.entries.release();
  }

  /**
   * Model-only: wake khugepaged for one khugepaged_do_scan() pass and wait for it (the model has
   * no clock to do it every scan_sleep_millisecs). Other tasks run at its preemption points.
   */
  khugepagedScan(): KhugepagedPass {
    const r = khugepagedScanOnce(this.core);
    this.afterSyscall('khugepaged');
    return r;
  }

  /**
   * Models a task sleeping for `ns` nanoseconds (hrtimer_nanosleep(), behind nanosleep(2),
   * usleep(3) and sleep(3)): simulated time advances and the kernel threads due meanwhile run,
   * i.e. khugepaged's passes every scan_sleep_millisecs (khugepagedRunFor()). Simulated time
   * moves only here, so runs are deterministic. Returns the khugepaged passes that ran.
   */
  nanosleep(ns: number): KhugepagedPass[] {
    const passes = khugepagedRunFor(this.core, ns);
    if (passes.length) this.afterSyscall('nanosleep');
    return passes;
  }

  /** Models the post-syscall hook: the invariant checker when enabled. */
  afterSyscall(what: string): void {
    if (!this.checkInvariants) return;
    if (++this.syscallsSinceCheck < this.checkInterval) return;
    this.syscallsSinceCheck = 0;
    const v = this.check();
    if (v.length) throw new Error(`invariant violated after ${what}:\n${v.join('\n')}`);
  }
}
