/**
 * The PMD half of a shmem fault (mm/memory.c finish_fault(), do_set_pmd()): a fault on a none
 * PMD whose page-cache folio is PMD-sized maps it with one huge PMD when the VMA allows it,
 * else the PTE path maps it (mm/fault.ts). set_huge_pmd() (mm/khugepaged.c) installs the same
 * mapping after a collapse.
 */
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SIZE, PMD_SIZE } from '../constants.js';
import { type Core, FAULT_FLAG_WRITE, VM_FAULT_FALLBACK, VM_FAULT_OOM } from '../core.js';
import { folioAddRmapPmd, folioGet } from '../folio.js';
import { entryNone, mkHi, mkPmdLo } from '../pgtable/entry.js';
import { PG_dirty } from '../phys/memmap.js';
import { linearPageIndex } from './anon.js';
import { addMmCounter, mmCounter } from './counters.js';
import { allocDeposit, depositTable } from './huge.js';
import { pmdLock, ptlUnlock } from './locking.js';
import { freeTable, pmdIndex, ptHi, ptLo, ptSet } from './pgtable.js';
import { shmemGetFolio } from './shmem.js';
import { thpFileVmaSuitablePmd, vmaThpDisabled } from './shmem-huge.js';
import { VM_EXEC, VM_READ, VM_SHARED, VM_WRITE, type Vma } from './types.js';

/**
 * Models do_set_pmd() (mm/memory.c): map the PMD-sized page-cache folio `head` at haddr with a
 * huge PMD. VM_FAULT_FALLBACK when THPs are disabled for the VMA ("as we already have a THP,
 * behave as if we are forcing a collapse": only MADV_NOHUGEPAGE refuses), when the PMD extent
 * does not fit the VMA or vm_pgoff is not aligned, when the folio is not PMD-sized, or when the
 * PMD is no longer none under its lock. The entry takes vm_page_prot (writable in a shared
 * writable VMA; read-only in a private one, so a write copies at the PTE level), dirty for a
 * write fault; rss, the PMD rmap (NR_SHMEM_PMDMAPPED) and THP_FILE_MAPPED are counted and the
 * mapping holds a reference. The model deposits a page table with it, as with every huge PMD.
 */
export function doSetPmd(
  core: Core,
  vma: Vma,
  pmdT: number,
  haddr: number,
  head: number,
  write: boolean,
): number {
  const m = core.map;
  if (vmaThpDisabled(vma.flags, true)) return VM_FAULT_FALLBACK;
  if (!thpFileVmaSuitablePmd(vma, haddr)) return VM_FAULT_FALLBACK;
  if (m.folioOrder(head) !== HPAGE_PMD_ORDER) return VM_FAULT_FALLBACK;
  const mm = vma.mm;
  const table = allocDeposit(core, mm);
  if (table < 0) return VM_FAULT_OOM;
  const mi = pmdIndex(haddr);
  const ptl = pmdLock(core, pmdT, 'do_set_pmd');
  try {
    if (!entryNone(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))) {
      freeTable(core, mm, table);
      return VM_FAULT_FALLBACK;
    }
    const shared = (vma.flags & VM_SHARED) !== 0;
    const w = shared && (vma.flags & VM_WRITE) !== 0;
    const protnone = !(vma.flags & (VM_READ | VM_WRITE | VM_EXEC));
    if (write) m.flags[head] |= PG_dirty;
    folioGet(core, head);
    addMmCounter(mm, mmCounter(core, head), HPAGE_PMD_NR);
    folioAddRmapPmd(core, head, false);
    depositTable(mm, haddr, table);
    ptSet(core, pmdT, mi, mkPmdLo(head, w && !protnone, write, true, protnone), mkHi(head));
    core.vmstat.thp_file_mapped++;
    return 0;
  } finally {
    ptlUnlock(core, ptl, 'do_set_pmd');
  }
}

/**
 * Models the start of finish_fault() for a shmem VMA whose PMD is none: __do_fault() gets the
 * page-cache folio (shmem_fault() -> shmem_get_folio_gfp(), which may allocate a huge one), and a
 * PMD-mappable folio goes to do_set_pmd(). Returns the fault result, or null to go on at the PTE
 * level (a private write fault copies; beyond EOF; a small folio; do_set_pmd() fell back).
 */
export function shmemFaultPmd(
  core: Core,
  vma: Vma,
  pmdT: number,
  addr: number,
  flags: number,
): number | null {
  const inode = vma.file;
  if (!inode || vma.vmOps) return null;
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  if (write && !(vma.flags & VM_SHARED)) return null;
  const index = linearPageIndex(vma, addr);
  if (index * PAGE_SIZE >= inode.size) return null;
  const page = shmemGetFolio(core, inode, index, true, { vma, addr, writeEnd: 0 });
  if (page < 0) return VM_FAULT_OOM;
  const head = core.map.head[page];
  if (core.map.folioOrder(head) !== HPAGE_PMD_ORDER) return null;
  const r = doSetPmd(core, vma, pmdT, Math.floor(addr / PMD_SIZE) * PMD_SIZE, head, write);
  return r === VM_FAULT_FALLBACK ? null : r;
}
