import { EBUSY, EFAULT, EINVAL, ENOMEM, PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { folioAddRmapPtes, folioGet } from '../folio.js';
import { entryNone, mkHi, mkPteLo } from '../pgtable/entry.js';
import { addMmCounter } from './counters.js';
import { pteIndex, pteTableOf, ptHi, ptLo, ptSet } from './pgtable.js';
import { VM_MIXEDMAP, VM_PFNMAP, VM_SHARED, VM_WRITE, type Vma } from './types.js';

/**
 * Models vm_insert_page() (mm/memory.c): map a driver-allocated page into a user VMA at addr
 * (sets VM_MIXEDMAP, takes a reference, file rmap and MM_FILEPAGES). 0 or -errno.
 */
export function vmInsertPage(core: Core, vma: Vma, addr: number, pfn: number): number {
  if (addr < vma.start || addr >= vma.end || addr % PAGE_SIZE) return -EFAULT;
  if (vma.flags & VM_PFNMAP) return -EINVAL;
  vma.flags |= VM_MIXEDMAP;
  const pteT = pteTableOf(core, vma.mm, addr, true);
  if (pteT < 0) return -ENOMEM;
  const i = pteIndex(addr);
  if (!entryNone(ptLo(core, pteT, i), ptHi(core, pteT, i))) return -EBUSY;
  folioGet(core, pfn);
  folioAddRmapPtes(core, pfn, pfn, 1, false);
  addMmCounter(vma.mm, 'MM_FILEPAGES', 1);
  // vm_page_prot of a private mapping is read-only: writes COW.
  const w = (vma.flags & (VM_WRITE | VM_SHARED)) === (VM_WRITE | VM_SHARED);
  ptSet(core, pteT, i, mkPteLo(pfn, w, false, true), mkHi(pfn));
  return 0;
}
