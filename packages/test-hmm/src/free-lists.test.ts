import { folioPut, folioUnlock } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import type { DmirrorDevice } from './device.js';
import { usedSlots } from './evict.js';
import { machine } from './test-util.js';

/** free_pages from its head, following page->zone_device_data (implied links included). */
function walk(d: DmirrorDevice): number[] {
  const out: number[] = [];
  for (let p = d.freePages; p; p = d.nextFree(p)) out.push(p);
  return out;
}

/** Allocates a small device page (dmirror_devmem_alloc_page()), unlocked. */
function alloc(d: DmirrorDevice): number {
  const k = d.core;
  const p = d.allocPage(false);
  folioUnlock(k, p);
  return p;
}

/** Frees a device page allocated by alloc(): its last reference goes (dmirror_devmem_free()). */
function free(d: DmirrorDevice, p: number): void {
  folioPut(d.core, p);
}

const descending = (hi: number, lo: number) => Array.from({ length: hi - lo }, (_, i) => hi - 1 - i);

/**
 * A chunk's 65536 pages go on free_pages without a link written per page: the list must still
 * read as the kernel's (the last pfn first, down to the first, then the old head), through pops,
 * frees, a second chunk and the removal of either chunk's free pages.
 */
describe('dmirror free_pages of a new chunk', () => {
  function twoChunks() {
    const { k, mod } = machine();
    const d = mod.devices[0];
    const c1 = d.chunks[0];
    const [s1, e1] = [c1.pagemap.startPfn, c1.pagemap.endPfn];
    const a = [alloc(d), alloc(d), alloc(d)];
    expect(a).toEqual([e1 - 1, e1 - 2, e1 - 3]);
    free(d, a[1]);
    expect(d.allocateChunk(false, false)).toBe(0);
    const c2 = d.chunks[1];
    const [s2, e2] = [c2.pagemap.startPfn, c2.pagemap.endPfn];
    return { k, mod, d, c1, c2, s1, e1, s2, e2, a };
  }

  it('pops from the last pfn down; a freed page goes on top', () => {
    const { k, mod } = machine();
    const d = mod.devices[1];
    const c = d.chunks[0];
    const e = c.pagemap.endPfn;
    expect([alloc(d), alloc(d)]).toEqual([e - 1, e - 2]);
    free(d, e - 1);
    expect(d.freePages).toBe(e - 1);
    expect(d.nextFree(e - 1)).toBe(e - 3);
    expect(alloc(d)).toBe(e - 1);
    expect(alloc(d)).toBe(e - 3);
    expect(d.nrFreePages).toBe(65536 - 3);
    expect(walk(d)).toEqual(descending(e - 3, c.pagemap.startPfn));
    expect(mod.checkFreeLists()).toEqual([]);
    expect(k.check()).toEqual([]);
  });

  it('a second chunk goes on top of the first, whose freed page and untouched pages follow', () => {
    const { mod, d, s1, e1, s2, e2 } = twoChunks();
    expect(d.nrFreePages).toBe(2 * 65536 - 2);
    expect(walk(d)).toEqual([...descending(e2, s2), e1 - 2, ...descending(e1 - 3, s1)]);
    expect(mod.checkFreeLists()).toEqual([]);
  });

  it('dropping the top chunk keeps the rest, without visiting its pages', () => {
    const { d, c2, s1, e1 } = twoChunks();
    d.removeFreePages(c2);
    expect(d.nrFreePages).toBe(65536 - 2);
    expect(walk(d)).toEqual([e1 - 2, ...descending(e1 - 3, s1)]);
    // The first chunk's untouched range still pops as before.
    expect(alloc(d)).toBe(e1 - 2);
    expect(alloc(d)).toBe(e1 - 4);
  });

  it('dropping the bottom chunk ends the list at the top chunk', () => {
    const { d, c1, s2, e2 } = twoChunks();
    d.removeFreePages(c1);
    expect(d.nrFreePages).toBe(65536);
    expect(walk(d)).toEqual(descending(e2, s2));
    // Popping the whole chunk ends with an empty list.
    for (let i = 0; i < 65536; i++) alloc(d);
    expect(d.freePages).toBe(0);
    expect(d.nrFreePages).toBe(0);
  });

  it('an eviction of a chunk skips its untouched pages but finds every allocated one', () => {
    const { k, mod } = machine();
    const d = mod.devices[0];
    const c = d.chunks[0];
    const e = c.pagemap.endPfn;
    const a = [alloc(d), alloc(d), alloc(d)];
    expect(c.untouchedEnd).toBe(e - 3);
    // usedSlots(): the first slot that may hold an allocated page is the untouched end.
    expect(usedSlots(d, c.pagemap.startPfn, 65536)).toEqual([65533, 65536]);
    free(d, a[0]);
    expect(usedSlots(d, c.pagemap.startPfn, 65536)).toEqual([65533, 65535]);
    for (const x of a.slice(1)) free(d, x);
    expect(c.untouchedEnd).toBe(e - 3);
    expect(k.check()).toEqual([]);
  });
});
