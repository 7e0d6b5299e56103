import type { Core } from '../core.js';
import { ModelBug } from '../errors.js';
import { removeVma } from './mmap.js';
import { withInvalidation } from './notifier.js';
import { freeEmptyTables, freeTable } from './pgtable.js';
import { MMU_NOTIFY_RELEASE, type MmStruct } from './types.js';
import { zapRange } from './zap.js';

/**
 * Models exit_mmap() + check_mm(): zap every VMA, free every page table and the PGD. Throws a
 * model bug if rss counters or page-table bytes are not back to zero.
 */
export function exitMmap(core: Core, mm: MmStruct): void {
  const all = [...mm.vmas];
  withInvalidation(mm, 0, 2 ** 47, MMU_NOTIFY_RELEASE, null, () => {
    for (const v of all) zapRange(core, v, v.start, v.end);
  });
  for (const v of all) removeVma(core, v);
  freeEmptyTables(core, mm, 0, 2 ** 47);
  if (mm.pgd >= 0) freeTable(core, mm, mm.pgd, true);
  mm.pgd = -1;
  mm.hugeZeroRef = false;
  mm.notifiers.clear();
  const r = mm.rss;
  if (
    r.MM_ANONPAGES ||
    r.MM_FILEPAGES ||
    r.MM_SHMEMPAGES ||
    r.MM_SWAPENTS ||
    mm.pgtablesBytes ||
    mm.deposits.size
  ) {
    throw new ModelBug(
      `check_mm: mm ${mm.id} torn down with rss anon=${r.MM_ANONPAGES} file=${r.MM_FILEPAGES} ` +
        `shmem=${r.MM_SHMEMPAGES} pgtables_bytes=${mm.pgtablesBytes} deposits=${mm.deposits.size}`,
    );
  }
}
