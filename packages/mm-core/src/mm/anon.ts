import { PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { AnonVma, VM_ACCESS_FLAGS, VM_IGNORE_MERGE, type Vma } from './types.js';

/**
 * Models anon_vma_compatible() (mm/vma.c): a and b (a below b) are adjacent, map the same file
 * at linear offsets and differ at most in what mprotect() changes.
 */
export function anonVmaCompatible(a: Vma, b: Vma): boolean {
  return (
    a.end === b.start &&
    a.vmFile === b.vmFile &&
    !((a.flags ^ b.flags) & ~(VM_ACCESS_FLAGS | VM_IGNORE_MERGE)) &&
    b.pgoff === a.pgoff + (b.start - a.start) / PAGE_SIZE
  );
}

/**
 * Models reusable_anon_vma() (mm/vma.c): old's anon_vma, when a and b are compatible and old
 * was never forked (its anon_vma_chain is a single link).
 */
function reusableAnonVma(old: Vma, a: Vma, b: Vma): AnonVma | null {
  if (anonVmaCompatible(a, b)) {
    const av = old.anonVma;
    if (av && old.anonVmaChain.length === 1) return av;
  }
  return null;
}

/**
 * Models find_mergeable_anon_vma() (mm/vma.c): the anon_vma of the next VMA, else of the
 * previous one, when it can be shared (so a later mprotect() can merge the two again).
 */
export function findMergeableAnonVma(vma: Vma): AnonVma | null {
  const vmas = vma.mm.vmas;
  const i = vmas.indexOf(vma);
  if (i < 0) return null;
  const next = vmas[i + 1];
  if (next && next.start === vma.end) {
    const av = reusableAnonVma(next, vma, next);
    if (av) return av;
  }
  const prev = i > 0 ? vmas[i - 1] : undefined;
  return prev ? reusableAnonVma(prev, prev, vma) : null;
}

/**
 * Models anon_vma_prepare(): on first anonymous fault give a VMA an anon_vma, a neighbour's
 * when find_mergeable_anon_vma() finds one, else a new one.
 */
export function anonVmaPrepare(core: Core, vma: Vma): AnonVma {
  if (vma.anonVma) return vma.anonVma;
  const reuse = findMergeableAnonVma(vma);
  if (reuse) {
    reuse.vmas.add(vma);
    vma.anonVma = reuse;
    vma.anonVmaChain.push(reuse);
    return reuse;
  }
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
