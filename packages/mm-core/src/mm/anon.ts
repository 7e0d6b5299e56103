import { PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { AnonVma, type Vma } from './types.js';

/** Models anon_vma_prepare(): give a VMA its own anon_vma on first anonymous fault. */
export function anonVmaPrepare(core: Core, vma: Vma): AnonVma {
  if (vma.anonVma) return vma.anonVma;
  const av = new AnonVma();
  av.id = core.registerMapping(av);
  av.vmas.add(vma);
  vma.anonVma = av;
  vma.anonVmaChain.push(av);
  return av;
}

/** Models anon_vma_clone(): link `dst` into every anon_vma of `src`'s chain. */
export function anonVmaClone(src: Vma, dst: Vma): void {
  dst.anonVma = src.anonVma;
  dst.anonVmaChain = [...src.anonVmaChain];
  for (const av of dst.anonVmaChain) av.vmas.add(dst);
}

/** Models unlink_anon_vmas(): drop a VMA from all its anon_vmas; free empty ones. */
export function unlinkAnonVmas(core: Core, vma: Vma): void {
  for (const av of vma.anonVmaChain) {
    av.vmas.delete(vma);
    if (av.vmas.size === 0) core.unregisterMapping(av.id);
  }
  vma.anonVmaChain = [];
  vma.anonVma = null;
}

/** Models linear_page_index(): the page index of addr in the VMA's mapping space. */
export function linearPageIndex(vma: Vma, addr: number): number {
  return vma.pgoff + Math.floor((addr - vma.start) / PAGE_SIZE);
}

/** Models vma_address(): where page index `index` would be mapped in vma, or -1 if outside it. */
export function vmaAddress(vma: Vma, index: number): number {
  const addr = vma.start + (index - vma.pgoff) * PAGE_SIZE;
  return addr >= vma.start && addr < vma.end ? addr : -1;
}
