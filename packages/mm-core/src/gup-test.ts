import { EFAULT, EINVAL, FOLL_LONGTERM, FOLL_WRITE, PAGE_SIZE } from './constants.js';
import type { Core } from './core.js';
import { accessBytes } from './cpu.js';
import type { FileOperations } from './fs.js';
import { FOLL_PIN, getUserPages, putUserPages } from './mm/gup.js';
import { mmapReadLock, mmapReadUnlock } from './mm/locking.js';
import { BLOCK_PAGES } from './phys/frames.js';
import type { Process } from './process.js';
import type { KGen } from './sched/task.js';

/** Models sizeof(struct gup_test) (mm/gup_test.h): 4 x u64, 3 x u32, which_pages[8]. */
export const GUP_TEST_STRUCT_SIZE = 80;
const ioc = (nr: number) => (0xc0000000 | (GUP_TEST_STRUCT_SIZE << 16) | (0x67 << 8) | nr) >>> 0;
/** Models GUP_FAST_BENCHMARK = _IOWR('g', 1, struct gup_test). */
export const GUP_FAST_BENCHMARK = ioc(1);
/** Models PIN_FAST_BENCHMARK. */
export const PIN_FAST_BENCHMARK = ioc(2);
/** Models PIN_LONGTERM_BENCHMARK. */
export const PIN_LONGTERM_BENCHMARK = ioc(3);
/** Models GUP_BASIC_TEST. */
export const GUP_BASIC_TEST = ioc(4);
/** Models PIN_BASIC_TEST. */
export const PIN_BASIC_TEST = ioc(5);
/** Models sizeof(struct pin_longterm_test): u64 addr, u64 size, u32 flags (padded to 8). */
export const PIN_LONGTERM_TEST_STRUCT_SIZE = 24;
/** Models PIN_LONGTERM_TEST_START = _IOW('g', 7, struct pin_longterm_test). */
export const PIN_LONGTERM_TEST_START =
  (0x40000000 | (PIN_LONGTERM_TEST_STRUCT_SIZE << 16) | (0x67 << 8) | 7) >>> 0;
/** Models PIN_LONGTERM_TEST_STOP = _IO('g', 8). */
export const PIN_LONGTERM_TEST_STOP = (0x67 << 8) | 8;
/** Models PIN_LONGTERM_TEST_READ = _IOW('g', 9, __u64). */
export const PIN_LONGTERM_TEST_READ = (0x40000000 | (8 << 16) | (0x67 << 8) | 9) >>> 0;
/** Models PIN_LONGTERM_TEST_FLAG_USE_WRITE: pin with FOLL_WRITE. */
export const PIN_LONGTERM_TEST_FLAG_USE_WRITE = 1;
/** Models PIN_LONGTERM_TEST_FLAG_USE_FAST: pin_user_pages_fast(). */
export const PIN_LONGTERM_TEST_FLAG_USE_FAST = 2;

/**
 * Models gup_test.c's pin_longterm_test_pages / _nr_pages (static, one set per machine, under
 * pin_longterm_test_mutex): the pages a PIN_LONGTERM_TEST_START pinned, until STOP or release.
 */
interface LongtermPins {
  pfns: number[] | null;
}
const longtermPins = new WeakMap<Core, LongtermPins>();

function pinsOf(core: Core): LongtermPins {
  let p = longtermPins.get(core);
  if (!p) {
    p = { pfns: null };
    longtermPins.set(core, p);
  }
  return p;
}

/** Models pin_longterm_test_stop(): unpin what START pinned. */
function pinLongtermTestStop(core: Core): void {
  const p = pinsOf(core);
  if (p.pfns) putUserPages(core, p.pfns, FOLL_PIN | FOLL_LONGTERM);
  p.pfns = null;
}

/**
 * Models pin_longterm_test_start(): validate the request, then pin_user_pages(FOLL_LONGTERM
 * [| FOLL_WRITE]) the whole range (under the mmap_lock; the _fast variant takes the same slow
 * path in the model, which is where GUP-fast falls back for everything it cannot pin). On an
 * error every page pinned so far is unpinned and the error returned.
 */
function* pinLongtermTestStart(core: Core, proc: Process, arg: number): KGen<number> {
  const p = pinsOf(core);
  if (p.pfns) return -EINVAL;
  const buf = new Uint8Array(PIN_LONGTERM_TEST_STRUCT_SIZE);
  if ((yield* accessBytes(core, proc.mm, arg, buf, 'read')) < 0) return -EFAULT;
  const dv = new DataView(buf.buffer);
  const addr = dv.getBigUint64(0, true);
  const size = dv.getBigUint64(8, true);
  const flags = dv.getUint32(16, true);
  if (flags & ~(PIN_LONGTERM_TEST_FLAG_USE_WRITE | PIN_LONGTERM_TEST_FLAG_USE_FAST)) return -EINVAL;
  if ((addr | size) % BigInt(PAGE_SIZE) !== 0n) return -EINVAL;
  if (size > 0x7fffffffffffffffn) return -EINVAL;
  const nrPages = Number(size / BigInt(PAGE_SIZE));
  if (nrPages === 0) return -EINVAL;
  const gupFlags = FOLL_PIN | FOLL_LONGTERM | (flags & PIN_LONGTERM_TEST_FLAG_USE_WRITE ? FOLL_WRITE : 0);
  const pinned: number[] = [];
  p.pfns = pinned;
  let ret = 0;
  yield* mmapReadLock(core, proc.mm, 'pin_longterm_test_start');
  try {
    while (pinned.length < nrPages) {
      const a = Number(addr) + pinned.length * PAGE_SIZE;
      const r = yield* getUserPages(core, proc.mm, a, nrPages - pinned.length, gupFlags);
      if (typeof r === 'number') {
        pinLongtermTestStop(core);
        ret = r;
        break;
      }
      pinned.push(...r);
    }
  } finally {
    mmapReadUnlock(core, proc.mm, 'pin_longterm_test_start');
  }
  return ret;
}

/** Models pin_longterm_test_read(): copy every pinned page, in order, to the user buffer. */
function* pinLongtermTestRead(core: Core, proc: Process, arg: number): KGen<number> {
  const pfns = pinsOf(core).pfns;
  if (!pfns) return -EINVAL;
  const ab = new Uint8Array(8);
  if ((yield* accessBytes(core, proc.mm, arg, ab, 'read')) < 0) return -EFAULT;
  let user = Number(new DataView(ab.buffer).getBigUint64(0, true));
  for (const pfn of pfns) {
    // kmap_local_page() + copy_to_user(): the pinned page's bytes, whatever maps it now.
    const off = (pfn & (BLOCK_PAGES - 1)) * PAGE_SIZE;
    const bytes = core.frames.readBlock(pfn, 1).slice(off, off + PAGE_SIZE);
    if ((yield* accessBytes(core, proc.mm, user, bytes, 'write')) < 0) return -EFAULT;
    user += PAGE_SIZE;
  }
  return 0;
}

/**
 * Models gup_test_ioctl() (mm/gup_test.c): PIN_LONGTERM_TEST_START/STOP/READ, or get or pin the user pages of [addr, addr + size) in
 * batches of nr_pages_per_call, then put / unpin them; the struct is copied back with the
 * (simulated) timings. Unsupported commands -EINVAL.
 */
export function gupTestFops(core: Core): FileOperations {
  return {
    *release() {
      // gup_test_release(): pin_longterm_test_stop().
      pinLongtermTestStop(core);
    },
    *ioctl(_file, cmd, arg, caller) {
      const proc = caller as Process;
      // gup_test_ioctl() -> pin_longterm_test_ioctl() (its mutex is uncontended in the model:
      // the ioctl runs without a preemption point between the test's steps).
      if (cmd === PIN_LONGTERM_TEST_START) return yield* pinLongtermTestStart(core, proc, arg);
      if (cmd === PIN_LONGTERM_TEST_STOP) {
        pinLongtermTestStop(core);
        return 0;
      }
      if (cmd === PIN_LONGTERM_TEST_READ) return yield* pinLongtermTestRead(core, proc, arg);
      const kinds: Record<number, number> = {
        [GUP_FAST_BENCHMARK]: 0,
        [GUP_BASIC_TEST]: 0,
        [PIN_FAST_BENCHMARK]: FOLL_PIN,
        [PIN_BASIC_TEST]: FOLL_PIN,
        [PIN_LONGTERM_BENCHMARK]: FOLL_PIN | FOLL_LONGTERM,
      };
      const kind = kinds[cmd];
      if (kind === undefined) return -EINVAL;
      const buf = new Uint8Array(GUP_TEST_STRUCT_SIZE);
      if ((yield* accessBytes(core, proc.mm, arg, buf, 'read')) < 0) return -EFAULT;
      const dv = new DataView(buf.buffer);
      const addr = Number(dv.getBigUint64(16, true));
      const size = Number(dv.getBigUint64(24, true));
      let perCall = dv.getUint32(32, true);
      const gupFlags = dv.getUint32(36, true) | kind;
      const nrPages = Math.floor(size / PAGE_SIZE);
      if (perCall === 0 || perCall > nrPages) perCall = Math.max(1, nrPages);
      const t0 = performance.now();
      const got: number[] = [];
      for (let a = addr; a < addr + nrPages * PAGE_SIZE; a += perCall * PAGE_SIZE) {
        const n = Math.min(perCall, (addr + nrPages * PAGE_SIZE - a) / PAGE_SIZE);
        // get_user_pages_fast()'s slow path: the mmap_lock for read around each batch.
        yield* mmapReadLock(core, proc.mm, 'gup_test_ioctl');
        const r = yield* getUserPages(core, proc.mm, a, n, gupFlags);
        mmapReadUnlock(core, proc.mm, 'gup_test_ioctl');
        if (typeof r === 'number') {
          putUserPages(core, got, gupFlags);
          return r;
        }
        got.push(...r);
        if (r.length < n) break;
      }
      const t1 = performance.now();
      putUserPages(core, got, gupFlags);
      const t2 = performance.now();
      dv.setBigUint64(0, BigInt(Math.round((t1 - t0) * 1000)), true);
      dv.setBigUint64(8, BigInt(Math.round((t2 - t1) * 1000)), true);
      dv.setBigUint64(24, BigInt(got.length * PAGE_SIZE), true);
      if ((yield* accessBytes(core, proc.mm, arg, buf, 'write')) < 0) return -EFAULT;
      return 0;
    },
  };
}
