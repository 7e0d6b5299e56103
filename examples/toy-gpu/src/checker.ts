/**
 * The toy GPU's own debug checks: what neither mm core's checker nor migrate-vma's can see,
 * because it lives in the driver. Pushed onto `kernel.checkers` like theirs.
 */
import {
  _PAGE_PRESENT,
  type Core,
  dumpFolio,
  entryHuge,
  entryNone,
  entryPfn,
  entryWrite,
  isDevicePrivateType,
  type Kernel,
  type MmStruct,
  PAGE_SIZE,
  pteIndex,
  pteTableOf,
  ptHi,
  ptLo,
  readPmd,
  swpType,
  swpWritable,
} from '@hmm-model/mm-core';
import { folioZoneDeviceData } from '@hmm-model/zone-device';
import type { ToyGpu } from './gpu.js';
import { gpuMirrors } from './mirror.js';

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * What the CPU's page tables map at va for a device to use: a present page (with its write
 * permission) or a device-private entry (our VRAM); null for none, PROT_NONE or a migration entry.
 * Models follow_page() without side effects.
 */
function cpuTranslation(core: Core, mm: MmStruct, va: number): { pfn: number; write: boolean } | null {
  const [t, lo, hi] = readPmd(core, mm, va);
  if (t < 0 || entryNone(lo, hi)) return null;
  const leaf = (l: number, h: number, sub: number) => {
    if (l & _PAGE_PRESENT) return { pfn: entryPfn(l, h) + sub, write: entryWrite(l) };
    if (!entryNone(l, h) && isDevicePrivateType(swpType(l)))
      return { pfn: entryPfn(l, h) + sub, write: swpWritable(l) };
    return null;
  };
  if (!(lo & _PAGE_PRESENT) || entryHuge(lo)) return leaf(lo, hi, pteIndex(va));
  const pt = pteTableOf(core, mm, va, false);
  if (pt < 0) return null;
  const i = pteIndex(va);
  return leaf(ptLo(core, pt, i), ptHi(core, pt, i), 0);
}

/**
 * Models the driver's CONFIG_DEBUG_VM-style audit (no kernel counterpart: dmirror has none; it is
 * what a careful driver checks in its debug build). One string per violation:
 *  - every GPU page-table entry maps what the CPU maps at that address now, with no more write
 *    permission: an entry that does not is stale, the classic result of committing
 *    hmm_range_fault() output without checking mmu_interval_read_retry() under the driver lock;
 *  - every allocated device folio carries this GPU's zone_device_data (folio_split must copy it
 *    to the new folios of a split THP);
 *  - VRAM accounting: allocated pages + free-list pages = VRAM pages.
 */
export function checkToyGpu(gpu: ToyGpu): string[] {
  const out: string[] = [];
  const core = gpu.core;
  const m = core.map;
  for (const mirror of gpuMirrors(gpu)) {
    if (mirror.mm.pgd < 0) continue;
    for (const [vpn, pte] of mirror.pt) {
      const va = vpn * PAGE_SIZE;
      const cpu = cpuTranslation(core, mirror.mm, va);
      const tag = `toy_gpu mirror of mm ${mirror.mm.id}: GPU PTE ${hex(va)} -> pfn ${hex(pte.pfn)}`;
      if (!cpu || cpu.pfn !== pte.pfn)
        out.push(
          `${tag} is stale: the CPU maps ${cpu ? `pfn ${hex(cpu.pfn)}` : 'nothing'} there (an invalidation was missed: was mmu_interval_read_retry() checked under the driver lock?)`,
        );
      else if (pte.write && !cpu.write) out.push(`${tag} is writable but the CPU mapping is read-only`);
      if (out.length > 32) return out;
    }
  }
  let allocated = 0;
  for (let p = gpu.pgmap.startPfn; p < gpu.pgmap.endPfn; ) {
    const isHead = m.head[p] === p;
    const n = isHead ? m.folioNrPages(p) : 1;
    if (isHead && m.refcount[p] > 0) {
      allocated += n;
      if (folioZoneDeviceData(core, p) !== gpu.id)
        out.push(
          `toy_gpu: device folio ${hex(p)} has zone_device_data ${folioZoneDeviceData(core, p)}, expected ${gpu.id} (lost in a folio_split?)\n  ${dumpFolio(core, p)}`,
        );
    }
    p += n;
  }
  const free = gpu.freeSmall.length + gpu.freeLarge.length * 512;
  const total = gpu.pgmap.endPfn - gpu.pgmap.startPfn;
  if (allocated + free !== total)
    out.push(`toy_gpu: ${allocated} allocated + ${free} free device pages, but VRAM has ${total}`);
  return out;
}

/**
 * Model-only (no kernel symbol): adds {@link checkToyGpu} to `kernel.checkers`, so
 * `kernel.check()` and the post-syscall hook run it next to installMmCoreChecker() and
 * installMigrateChecker(). Returns the function that removes it.
 */
export function installToyGpuChecker(kernel: Kernel, gpu: ToyGpu): () => void {
  const checker = () => checkToyGpu(gpu);
  kernel.checkers.push(checker);
  return () => {
    const i = kernel.checkers.indexOf(checker);
    if (i >= 0) kernel.checkers.splice(i, 1);
  };
}
