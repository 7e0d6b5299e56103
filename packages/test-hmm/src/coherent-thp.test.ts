import { MEMORY_DEVICE_COHERENT, PAGE_SIZE, PM_PRESENT, PMD_SIZE, pagemapEntry } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { hmmDmirrorCmd, intsEqual, thpMachine } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_RELEASE } from './uapi.js';

/** A coherent dmirror (minor 2) machine, with the model's fix switches `fixes`. */
function coherentThp(fixes: string[]) {
  const { k, mod, p, fd, buf } = thpMachine(fixes, 2, true, (i) => i * 3);
  // The module's initial coherent chunk has small pages only, and a second chunk cannot be added
  // over the same special-purpose range: RELEASE removes it, so the next allocation for a THP
  // creates a chunk of large folios there.
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_RELEASE, buf, 1)).toBe(0);
  // First migration: the THP moves to device-coherent memory, mapped by a present PMD.
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, PMD_SIZE / PAGE_SIZE)).toBe(0);
  const pfn = Number(pagemapEntry(k.core, p.mm, buf.ptr) & 0x7fffffffffffffn);
  expect(pagemapEntry(k.core, p.mm, buf.ptr) & PM_PRESENT).toBeTruthy();
  expect(k.core.map.folioOrder(pfn)).toBe(9);
  expect(k.core.pgmapOf(pfn)?.type).toBe(MEMORY_DEVICE_COHERENT);
  // Second migration of the same range: the source is already device memory.
  const w0 = k.core.warnings.length;
  const r = hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, PMD_SIZE / PAGE_SIZE);
  const warned = k.core.warnings.slice(w0).map((w) => w.message);
  return { k, mod, p, buf, r, pfn, warned };
}

describe('finding K1: a PMD-mapped device-coherent THP and MIGRATE_VMA_SELECT_SYSTEM', () => {
  it('v6.19: migrate_vma_collect_huge_pmd() collects it, and test_hmm warns that the page is already on the device', () => {
    const { mod, p, buf, r, pfn, warned } = coherentThp([]);
    expect(r).toBe(0);
    expect(warned).toEqual([`page already in device spage pfn: 0x${pfn.toString(16)}`]);
    expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, (i) => i * 3)).toBe(true);
    expect(mod.check()).toEqual([]);
  });

  it('fix K1: skipped as the PTE path skips a coherent page (no warning, the folio stays where it is)', () => {
    const { k, mod, p, buf, r, pfn, warned } = coherentThp(['K1']);
    expect(r).toBe(0);
    expect(warned).toEqual([]);
    expect(Number(pagemapEntry(k.core, p.mm, buf.ptr) & 0x7fffffffffffffn)).toBe(pfn);
    expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, (i) => i * 3)).toBe(true);
    expect(mod.check()).toEqual([]);
  });
});
