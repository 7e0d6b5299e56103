import { PAGE_SIZE, PMD_SIZE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { svmmMigrateToVram } from './migrate.js';
import { firstMismatch, pmdKind, pteKind, rig, thpWindow } from './testing.js';
import { toRamStats } from './toram.js';

/** A device THP whose CPU fault finds no order-9 system folio for the first `fails` tries. */
function thpInVram(fixes: string[], fails: number) {
  const r = rig({ fixes });
  const w = thpWindow(r.p);
  svmmMigrateToVram(r.svmm, w, w + PMD_SIZE);
  expect(pmdKind(r.k, r.p, w)).toBe('device-private-write');
  let left = fails;
  r.k.core.zone.failHook = (order) => order === 9 && left-- > 0;
  return { ...r, w };
}

/** How many of the window's 512 pages have a PTE of each kind. */
function pteKinds(r: ReturnType<typeof thpInVram>): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < 512; i++) {
    const kind = pteKind(r.k, r.p, r.w + i * PAGE_SIZE);
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}

describe('finding K17: nouveau_dmem_migrate_to_ram() without an order-9 system folio', () => {
  it('v6.19: VM_FAULT_OOM and the #PF handler retries the access, as long as no order-9 folio comes', () => {
    const { k, drm, p, w } = thpInVram([], 300);
    // The access comes back only when the 301st try gets a folio.
    expect(p.readI32(w + 4 * 1000)).toBe(1000);
    expect(toRamStats.get(drm)).toMatchObject({ calls: 301, oom: 300, thp: 1, fallback: 0 });
    expect(pmdKind(k, p, w)).toBe('huge');
    expect(firstMismatch(p, w, 0, PMD_SIZE / 4)).toBe(-1);
  });

  it('K17: the fault falls back to small pages; the split fails (K18), so the PMD is split and the page comes back alone', () => {
    const r = thpInVram(['K17'], 300);
    const { k, drm, p, w } = r;
    expect(p.readI32(w + 4 * 1000)).toBe(1000);
    // The first fault copied into 512 small pages, but migrate_vma_pages() could not split the
    // fault folio (the fault handler's reference): the unit stayed, its PMD split into PTEs.
    // The retried fault came through a PTE and moved one page.
    expect(toRamStats.get(drm)).toMatchObject({ calls: 2, oom: 0, thp: 0, fallback: 1, small: 1 });
    expect(pmdKind(k, p, w)).toBe('table');
    expect(pteKinds(r)).toEqual({ present: 1, 'device-private-write': 511 });
    expect(firstMismatch(p, w, 0, PMD_SIZE / 4)).toBe(-1);
    expect(k.check()).toEqual([]);
  });

  it('K17 with K18: one fault moves the whole THP into 512 small pages', () => {
    const r = thpInVram(['K17', 'K18'], 300);
    const { k, drm, p, w } = r;
    expect(p.readI32(w + 4 * 1000)).toBe(1000);
    expect(toRamStats.get(drm)).toMatchObject({ calls: 1, oom: 0, thp: 0, fallback: 1, small: 0 });
    expect(pteKinds(r)).toEqual({ present: 512 });
    expect(firstMismatch(p, w, 0, PMD_SIZE / 4)).toBe(-1);
    expect(k.check()).toEqual([]);
  });
});
