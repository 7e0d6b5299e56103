import { describe, expect, it } from 'vitest';
import {
  HPAGE_PMD_NR,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { translate } from '../cpu.js';
import { machine, ptePfn } from '../testing/helpers.js';
import { pageVmaMappedCount, pageVmaMappedWalk } from './pvmw.js';
import { rmapLockOf, rmapVmas } from './rmap.js';
import { AnonVma, Inode, type Vma } from './types.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe('rmap owners (page->mapping: anon_vma or address_space)', () => {
  it("an anon_vma's VMA list follows insertion order through adds and deletes (anon_vma_chain)", () => {
    const av = new AnonVma();
    const v = (n: number) => ({ start: n }) as unknown as Vma;
    const [a, b, c] = [v(1), v(2), v(3)];
    av.vmas.add(a);
    av.vmas.add(b);
    expect(av.vmas.list()).toEqual([a, b]);
    av.vmas.add(a);
    av.vmas.add(c);
    expect(av.vmas.list()).toEqual([a, b, c]);
    av.vmas.delete(a);
    expect(av.vmas.list()).toEqual([b, c]);
    av.vmas.add(a);
    expect(av.vmas.list()).toEqual([b, c, a]);
    av.vmas.clear();
    expect(av.vmas.list()).toEqual([]);
    expect(new Inode('f', 1).mmaps.list()).toEqual([]);
  });

  it('a mapping id names nothing once its anon_vma is released, even right after a lookup (unlink_anon_vmas)', () => {
    const k = machine();
    const av = new AnonVma();
    av.id = k.core.registerMapping(av);
    const other = new Inode('f', 1);
    other.id = k.core.registerMapping(other);
    expect(k.core.mappingOf(av.id)).toBe(av);
    expect(k.core.mappingOf(other.id)).toBe(other);
    expect(k.core.mappingOf(av.id)).toBe(av);
    k.core.unregisterMapping(av.id);
    expect(k.core.mappingOf(av.id)).toBeUndefined();
    expect(k.core.mappingOf(other.id)).toBe(other);
    expect(k.core.mappingOf(0)).toBeUndefined();
    // Ids are not reused: a new anon_vma gets a new one.
    const next = new AnonVma();
    next.id = k.core.registerMapping(next);
    expect(next.id).not.toBe(av.id);
    expect(k.core.mappingOf(av.id)).toBeUndefined();
    k.core.unregisterMapping(other.id);
    k.core.unregisterMapping(next.id);
  });

  it('the rmap walk of an anonymous folio reaches the VMA through its anon_vma (rmap_walk_anon)', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeI32(a + PAGE_SIZE, 7);
    const pfn = ptePfn(k, p, a + PAGE_SIZE);
    const av = k.core.mappingOf(k.core.map.mapping[pfn]);
    expect(av).toBeInstanceOf(AnonVma);
    expect(rmapVmas(k.core, pfn).map((x) => x.addr)).toEqual([a + PAGE_SIZE]);
    expect(rmapLockOf(k.core, pfn)).toBe((av as AnonVma).root.rwsem);
    expect(k.check()).toEqual([]);
  });

  it("page_vma_mapped_walk()'s count stops at its limit and agrees with the walk, PTE- and PMD-mapped", () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    p.writeI32(a, 1);
    // PMD-mapped: no PTE table to read the pfn from; the MMU's walk finds it.
    const head = translate(k.core, p.mm, a, false);
    expect(k.core.map.order[head]).toBe(9);
    const [{ vma, addr }] = rmapVmas(k.core, head);
    // PMD-mapped: one mapping of the whole folio.
    expect(pageVmaMappedCount(k.core, vma, head, HPAGE_PMD_NR, addr, false)).toBe(1);
    expect(pageVmaMappedWalk(k.core, vma, head, HPAGE_PMD_NR, addr, false).map((h) => h.level)).toEqual([
      'pmd',
    ]);
    // PTE-mapped (an mprotect() round trip splits the PMD and the VMA, which merges back): one mapping per page.
    expect(p.mprotect(a, PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.mprotect(a, PAGE_SIZE, RW)).toBe(0);
    const [{ vma: v2, addr: a2 }] = rmapVmas(k.core, head);
    expect(pageVmaMappedCount(k.core, v2, head, HPAGE_PMD_NR, a2, false)).toBe(HPAGE_PMD_NR);
    expect(pageVmaMappedWalk(k.core, v2, head, HPAGE_PMD_NR, a2, false)).toHaveLength(HPAGE_PMD_NR);
    expect(pageVmaMappedCount(k.core, v2, head, HPAGE_PMD_NR, a2, false, 1)).toBe(1);
    expect(pageVmaMappedCount(k.core, v2, head, HPAGE_PMD_NR, a2, false, 5)).toBe(5);
    // Migration entries only (PVMW_MIGRATION): none here.
    expect(pageVmaMappedCount(k.core, v2, head, HPAGE_PMD_NR, a2, true)).toBe(0);
    // Unmapping half of the pages leaves the count of the rest.
    expect(p.munmap(a, PMD_SIZE / 2)).toBe(0);
    const left = rmapVmas(k.core, head);
    expect(
      left.reduce((n, h) => n + pageVmaMappedCount(k.core, h.vma, head, HPAGE_PMD_NR, h.addr, false), 0),
    ).toBe(HPAGE_PMD_NR / 2);
  });
});
