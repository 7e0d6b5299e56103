import {
  type Core,
  EINVAL,
  folioIsDevicePrivate,
  folioTestLocked,
  type KGen,
  PAGE_SIZE,
  VM_HUGETLB,
  VM_SPECIAL,
} from '@hmm-model/mm-core';
import { migrateVmaCollect } from './collect.js';
import { migrateDeviceFinalizeCore } from './finalize.js';
import { migrationBeginVma, migrationCollected, migrationEnd, migrationPagesDone } from './inflight.js';
import { mthpOrdersCheck } from './mthp.js';
import { migrateDevicePagesCore } from './pages.js';
import type { MigrateVma } from './types.js';
import { migrateDeviceUnmap } from './unmap.js';

/**
 * Models migrate_vma_setup() (mm/migrate_device.c): validate (-EINVAL exactly as the kernel),
 * collect the range into src[] and unmap the collected pages. Returns 0 even when nothing
 * could be collected.
 */
export function* migrateVmaSetup(core: Core, args: MigrateVma): KGen<number> {
  const nrPages = Math.floor((args.end - args.start) / PAGE_SIZE);
  args.start -= args.start % PAGE_SIZE;
  args.end -= args.end % PAGE_SIZE;
  const vma = args.vma;
  if (!vma || vma.flags & VM_HUGETLB || vma.flags & VM_SPECIAL) return -EINVAL;
  if (nrPages <= 0) return -EINVAL;
  if (args.start < vma.start || args.start >= vma.end) return -EINVAL;
  if (args.end <= vma.start || args.end > vma.end) return -EINVAL;
  if (!args.src || !args.dst || args.src.length < nrPages || args.dst.length < nrPages) return -EINVAL;
  if (mthpOrdersCheck(args)) return -EINVAL;
  if (args.faultPage >= 0) {
    const head = core.map.head[args.faultPage];
    if (!folioIsDevicePrivate(core, head)) return -EINVAL;
    if (!folioTestLocked(core, head)) return -EINVAL;
  }
  args.src.fill(0, 0, nrPages);
  args.cpages = 0;
  args.npages = 0;
  migrationBeginVma(core, args);
  yield* migrateVmaCollect(core, args);
  if (args.cpages) args.cpages = yield* migrateDeviceUnmap(core, args.src, args.npages, args.faultPage);
  // Nothing is left locked when no unit is still migrating; callers may skip finalize then.
  if (args.cpages) migrationCollected(core, args);
  else migrationEnd(core, args);
  return 0;
}

/** Models migrate_vma_pages(). */
export function* migrateVmaPages(core: Core, args: MigrateVma): KGen {
  yield* migrateDevicePagesCore(core, args.src, args.dst, args.npages, args);
  migrationPagesDone(core, args);
}

/** Models migrate_vma_finalize(). */
export function* migrateVmaFinalize(core: Core, args: MigrateVma): KGen {
  yield* migrateDeviceFinalizeCore(core, args.src, args.dst, args.npages, args.faultPage);
  migrationEnd(core, args);
}
