import { EFAULT, EINVAL, FOLL_LONGTERM, PAGE_SIZE } from './constants.js';
import type { Core } from './core.js';
import { accessBytes } from './cpu.js';
import type { FileOperations } from './fs.js';
import { FOLL_PIN, getUserPages, putUserPages } from './mm/gup.js';
import { mmapReadLock, mmapReadUnlock } from './mm/locking.js';
import type { Process } from './process.js';

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

/**
 * Models gup_test_ioctl() (mm/gup_test.c): get or pin the user pages of [addr, addr + size) in
 * batches of nr_pages_per_call, then put / unpin them; the struct is copied back with the
 * (simulated) timings. Unsupported commands -EINVAL.
 */
export function gupTestFops(core: Core): FileOperations {
  return {
    *ioctl(_file, cmd, arg, caller) {
      const proc = caller as Process;
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
