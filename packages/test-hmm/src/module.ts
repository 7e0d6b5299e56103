import {
  accessBytes,
  allocFolio,
  type Core,
  type DevPagemapOps,
  EFAULT,
  EINVAL,
  ENOMEM,
  type FileOperations,
  folioPut,
  type Kernel,
  KernelBug,
  type KGen,
  type MmStruct,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  type OpenFile,
  PAGE_SIZE,
  PG_tail,
  Process,
  registerRefHolder,
  type VmFault,
  vmInsertPage,
} from '@hmm-model/mm-core';
import { PAGES_PER_SECTION } from '@hmm-model/zone-device';
import { DEVMEM_CHUNK_PAGES, DmirrorDevice } from './device.js';
import {
  Dmirror,
  type DmirrorCmd,
  dmirrorCheckAtomic,
  dmirrorExclusive,
  dmirrorRead,
  dmirrorWrite,
} from './dmirror.js';
import { dmirrorDeviceEvictChunk, dmirrorDeviceRemoveChunks, dmirrorEvictNamed } from './evict.js';
import { migrateDeviceInit } from './kapi.js';
import { dmirrorDevmemFault, dmirrorMigrateToDevice, dmirrorMigrateToSystem } from './migrate.js';
import { mthpOrdersConfigError } from './mthp.js';
import { dmirrorMkentryOrder, dmirrorSnapshot } from './snapshot.js';
import {
  type DmirrorMemoryType,
  decodeCmd,
  encodeCmd,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_CMD_SIZE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MEMORY_DEVICE_COHERENT,
  HMM_DMIRROR_MEMORY_DEVICE_PRIVATE,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_SNAPSHOT_ORDER,
  HMM_DMIRROR_WRITE,
} from './uapi.js';

/** Models the module parameters of lib/test_hmm.c (spm_addr_dev0/1) for {@link installDmirror}. */
export interface DmirrorOptions {
  /**
   * Models setting spm_addr_dev0 and spm_addr_dev1: create the two device-coherent devices
   * (/dev/hmm_dmirror2, 3). Default true.
   */
  coherent?: boolean;
  /**
   * Model-only switch for a fixed HMM_DMIRROR_RELEASE (see the README's Findings): chunk removal
   * evicts again, after waiting for the folio lock, while a concurrent migration holds pages of
   * the chunk, instead of leaving them allocated and waiting forever in memunmap_pages().
   * Default false (lib/test_hmm.c as it is).
   */
  evictUntilEmpty?: boolean;
  /**
   * Model extension (mthp.ts, issue 9): per device minor, the mTHP orders (a bit per order,
   * 2..8) its memory is allocated in and migrated whole. Default none (lib/test_hmm.c). Orders
   * outside 2..8 are a configuration error at load.
   */
  mthpOrders?: Readonly<Record<number, number>>;
}

/** Models the loaded test_hmm module (dmirror_devices[] and the open dmirrors), for inspection. */
export interface DmirrorModule {
  readonly kernel: Kernel;
  /** Models dmirror_devices[]: the devices that exist (2 or 4), by minor. */
  readonly devices: readonly DmirrorDevice[];
  /** Every open dmirror (one per open file description), by id. */
  readonly mirrors: ReadonlyMap<number, Dmirror>;
  /** Models the special-purpose memory start pfns spm_addr_dev0/1 (coherent devices only). */
  readonly spmPfns: readonly number[];
  /** O(1) driver invariants (counters vs pgmap references); registered as a kernel checker. */
  check(): string[];
  /** Full free-list hygiene of every device (walks the lists). */
  checkFreeLists(): string[];
  /** Models hmm_dmirror_exit(): unregister the devices and remove every chunk. */
  uninstall(): void;
}

/** Models `current->mm` of an ioctl (copy_{from,to}_user target): the calling process's mm. */
function callerMm(file: OpenFile, caller: unknown): MmStruct | undefined {
  if (caller instanceof Process) return caller.mm;
  return file.opener instanceof Process ? file.opener.mm : undefined;
}

/**
 * Models dmirror_fops_unlocked_ioctl(): copy struct hmm_dmirror_cmd from the caller, the entry
 * checks, the command, and the copy back on success. The mirrored mm is the opener's.
 */
function* unlockedIoctl(file: OpenFile, command: number, arg: number, caller: unknown): KGen<number> {
  const dm = file.privateData;
  if (!(dm instanceof Dmirror)) return -EINVAL;
  const core = dm.core;
  const userMm = callerMm(file, caller);
  if (!userMm) return -EFAULT;
  const raw = new Uint8Array(HMM_DMIRROR_CMD_SIZE);
  if ((yield* accessBytes(core, userMm, arg, raw, 'read')) < 0) return -EFAULT;
  const c = decodeCmd(raw);
  if (c.addr & BigInt(PAGE_SIZE - 1)) return -EINVAL;
  const size = BigInt.asUintN(64, c.npages << 12n);
  if (c.addr >= BigInt.asUintN(64, c.addr + size)) return -EINVAL;
  const cmd: DmirrorCmd = {
    addr: Number(c.addr),
    ptr: Number(c.ptr),
    size: Number(size),
    npages: c.npages,
    cpages: 0,
    faults: 0,
  };
  let ret: number;
  switch (command >>> 0) {
    case HMM_DMIRROR_READ:
      ret = yield* dmirrorRead(dm, cmd, userMm);
      break;
    case HMM_DMIRROR_WRITE:
      ret = yield* dmirrorWrite(dm, cmd, userMm);
      break;
    case HMM_DMIRROR_MIGRATE_TO_DEV:
      ret = yield* dmirrorMigrateToDevice(dm, cmd, userMm);
      break;
    case HMM_DMIRROR_MIGRATE_TO_SYS:
      ret = yield* dmirrorMigrateToSystem(dm, cmd);
      break;
    case HMM_DMIRROR_EXCLUSIVE:
      ret = yield* dmirrorExclusive(dm, cmd, userMm);
      break;
    case HMM_DMIRROR_CHECK_EXCLUSIVE:
      ret = dmirrorCheckAtomic(dm, cmd.addr, cmd.addr + cmd.size);
      break;
    case HMM_DMIRROR_SNAPSHOT_ORDER:
      ret = yield* dmirrorSnapshot(dm, cmd, userMm, dmirrorMkentryOrder);
      break;
    case HMM_DMIRROR_SNAPSHOT:
      ret = yield* dmirrorSnapshot(dm, cmd, userMm);
      break;
    case HMM_DMIRROR_RELEASE:
      yield* dmirrorDeviceRemoveChunks(dm.mdevice);
      ret = 0;
      break;
    case HMM_DMIRROR_FLAGS:
      dm.flags = cmd.npages;
      ret = 0;
      break;
    default:
      return -EINVAL;
  }
  if (ret) return ret;
  const out = encodeCmd({
    addr: c.addr,
    ptr: c.ptr,
    npages: c.npages,
    cpages: cmd.cpages,
    faults: cmd.faults,
  });
  if ((yield* accessBytes(core, userMm, arg, out, 'write')) < 0) return -EFAULT;
  return 0;
}

/** The devices' checks, or only their free-list checks (a loop: no closure per machine to compile again). */
function checkDevices(devices: readonly DmirrorDevice[], freeListsOnly: boolean): string[] {
  const out: string[] = [];
  for (const d of devices) out.push(...(freeListsOnly ? d.checkFreeLists() : d.check()));
  return out;
}

/**
 * Models dmirror_devmem_ops (one per device). A class rather than an object of arrow functions:
 * its methods are compiled once per thread, where a machine's own closures would be compiled
 * again for every machine a campaign boots (V8 drops a dead closure's optimized code at a full GC).
 */
class DmirrorDevmemOps implements DevPagemapOps {
  /** The device, set once it exists (its constructor takes these ops). */
  dev: DmirrorDevice | undefined = undefined;
  constructor(
    private readonly core: Core,
    private readonly lookup: (id: number) => Dmirror | undefined,
  ) {}
  /** Models dmirror_devmem_free(). */
  folioFree(head: number): void {
    this.dev!.devmemFree(head);
  }
  /** Models dmirror_devmem_fault(). */
  migrateToRam(vmf: VmFault): KGen<number> {
    return dmirrorDevmemFault(this.core, vmf, this.lookup);
  }
  /** Models dmirror_devmem_folio_split(). */
  folioSplit(head: number, tail: number): void {
    this.dev!.folioSplit(head, tail);
  }
}

/**
 * Models hmm_dmirror_init() (lib/test_hmm.c): create /dev/hmm_dmirror0 and 1 (device-private)
 * and, when `coherent` (spm_addr_dev0/1 set), /dev/hmm_dmirror2 and 3 (device-coherent), each
 * with one small-page chunk of device memory, and register their file operations with the
 * kernel. Returns the module for inspection.
 */
export function installDmirror(kernel: Kernel, opts: DmirrorOptions = {}): DmirrorModule {
  const core = kernel.core;
  for (const [minor, orders] of Object.entries(opts.mthpOrders ?? {})) {
    const bad = mthpOrdersConfigError(orders);
    if (bad) throw new Error(`hmm_dmirror${minor}: ${bad}`);
  }
  migrateDeviceInit(core);
  const mirrors = new Map<number, Dmirror>();
  // Ids of dmirrors freed by release(): zone_device_data still naming one is a use-after-free.
  const freedMirrors = new Set<number>();
  let nextId = 1;
  const lookup = (id: number) => {
    const dm = mirrors.get(id);
    if (!dm && freedMirrors.has(id))
      throw new KernelBug(
        'dmirror_devmem_fault',
        "use-after-free: the device page's zone_device_data names a dmirror freed by dmirror_fops_release()",
        ['  (CVE-2026-46280: close() did not evict the device pages)'],
      );
    return dm;
  };
  const devices: DmirrorDevice[] = [];
  const spmPfns: number[] = [];
  if (opts.coherent ?? true) {
    // Models the two special-purpose memory ranges the module parameters point at.
    for (let i = 0; i < 2; i++) {
      const start = Math.ceil(core.nextDevicePfn / PAGES_PER_SECTION) * PAGES_PER_SECTION;
      core.nextDevicePfn = start + DEVMEM_CHUNK_PAGES;
      spmPfns.push(start);
    }
  }
  const types: DmirrorMemoryType[] =
    spmPfns.length === 2
      ? [
          HMM_DMIRROR_MEMORY_DEVICE_PRIVATE,
          HMM_DMIRROR_MEMORY_DEVICE_PRIVATE,
          HMM_DMIRROR_MEMORY_DEVICE_COHERENT,
          HMM_DMIRROR_MEMORY_DEVICE_COHERENT,
        ]
      : [HMM_DMIRROR_MEMORY_DEVICE_PRIVATE, HMM_DMIRROR_MEMORY_DEVICE_PRIVATE];
  for (let minor = 0; minor < types.length; minor++) {
    const ops = new DmirrorDevmemOps(core, lookup);
    // The coherent chunk address choice is inverted: minor 2 uses spm_addr_dev1, minor 3 spm_addr_dev0.
    const spm =
      types[minor] === HMM_DMIRROR_MEMORY_DEVICE_COHERENT ? spmPfns[minor === 2 ? 1 : 0] : undefined;
    const dev = new DmirrorDevice(core, minor, types[minor], ops, spm);
    dev.evictUntilEmpty = opts.evictUntilEmpty ?? false;
    dev.mthpOrders = opts.mthpOrders?.[minor] ?? 0;
    ops.dev = dev;
    const r = dev.init();
    if (r < 0) throw new Error(`hmm_dmirror${minor}: dmirror_device_init failed (${r})`);
    devices.push(dev);
  }
  for (const dev of devices) {
    const fops: FileOperations = {
      // Models dmirror_fops_open(): a dmirror mirroring the opener's address space.
      open(file) {
        if (!(file.opener instanceof Process)) return -EINVAL;
        const dm = new Dmirror(core, dev, file.opener.mm, nextId++);
        mmuIntervalNotifierInsert(dm.notifier);
        mirrors.set(dm.id, dm);
        file.privateData = dm;
        return 0;
      },
      // Models dmirror_fops_release(): remove the notifier, evict every chunk of the device
      // (the CVE-2026-46280 fix; with bug F23 the device pages stay behind, pointing at the
      // freed dmirror), free the mirror.
      *release(file) {
        const dm = file.privateData;
        if (!(dm instanceof Dmirror)) return;
        mmuIntervalNotifierRemove(dm.notifier);
        if (!core.bug('F23')) {
          for (const chunk of [...dev.chunks]) yield* dmirrorDeviceEvictChunk(dev, chunk);
          if (core.fixed('K5')) yield* dmirrorEvictNamed(dev, dm.id);
        }
        dm.pt.clear();
        mirrors.delete(dm.id);
        freedMirrors.add(dm.id);
        file.privateData = undefined;
      },
      ioctl: unlockedIoctl,
      // Models dmirror_fops_mmap(): vm_insert_page() of freshly zeroed pages.
      mmap(_file, vma) {
        for (let addr = vma.start; addr < vma.end; addr += PAGE_SIZE) {
          const page = allocFolio(core, 0, true);
          if (page < 0) return -ENOMEM;
          const ret = vmInsertPage(core, vma, addr, page);
          if (ret) {
            folioPut(core, page);
            return ret;
          }
          folioPut(core, page);
        }
        return 0;
      },
    };
    kernel.registerDevice(dev.path, fops);
  }
  const refHolder: { unregister?: () => void } = {};
  const module: DmirrorModule = {
    kernel,
    devices,
    mirrors,
    spmPfns,
    check: () => checkDevices(devices, false),
    checkFreeLists: () => checkDevices(devices, true),
    uninstall() {
      for (const dev of devices) {
        kernel.unregisterDevice(dev.path);
        core.sched.runSync(dmirrorDeviceRemoveChunks(dev), 'hmm_dmirror_exit');
      }
      const i = kernel.checkers.indexOf(checker);
      if (i >= 0) kernel.checkers.splice(i, 1);
      refHolder.unregister?.();
    },
  };
  const checker = () => module.check();
  kernel.checkers.push(checker);
  // The backing folio of every allocated device-private page is a driver reference the
  // mm-core checker cannot see (it is neither mapped nor in a page cache).
  const unregisterHolder = registerRefHolder(core, (c, add) => {
    const m = c.map;
    for (const dev of devices) {
      if (!dev.isPrivate) continue;
      for (const chunk of dev.chunks) {
        for (let pfn = chunk.pagemap.startPfn; pfn < chunk.pagemap.endPfn; pfn++) {
          if (m.refcount[pfn] > 0 && !(m.flags[pfn] & PG_tail) && m.priv[pfn]) add(m.priv[pfn], 1);
        }
      }
    }
  });
  refHolder.unregister = unregisterHolder;
  return module;
}
