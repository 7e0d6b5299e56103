import {
  type DevPagemap,
  type DevPagemapOps,
  EINVAL,
  ENOMEM,
  ERANGE,
  entryNone,
  freeZoneDeviceFolio,
  Kernel,
  MAX_PHYS_PFN,
  MEMORY_DEVICE_COHERENT,
  MEMORY_DEVICE_PRIVATE,
  ModelBug,
  PG_head,
  PG_large_rmappable,
  PG_locked,
  PG_tail,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  splitFolioMeta,
  swpType,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import {
  folioSetZoneDeviceData,
  folioZoneDeviceData,
  getDevPagemap,
  isDeviceCoherentPage,
  isDevicePrivatePage,
  makeReadableDevicePrivateEntry,
  makeWritableDevicePrivateEntry,
  memremapPages,
  memunmapPages,
  PAGES_PER_SECTION,
  pageDevPagemap,
  softleafIsDevicePrivate,
  softleafIsDevicePrivateWrite,
  softleafToPfn,
  zoneDeviceFolioInit,
  zoneDevicePageInit,
  zoneDevicePrivateSplitCb,
} from './index.js';

function machine() {
  return new Kernel({ ramBytes: 512 << 20 });
}

function ops(freed: [number, number][] = []): DevPagemapOps {
  return {
    folioFree: (h, o) => void freed.push([h, o]),
    *migrateToRam() {
      return 0;
    },
  };
}

function privatePgmap(k: Kernel, n = 4096, o: DevPagemapOps = ops()): DevPagemap {
  const r = memremapPages(k.core, {
    type: MEMORY_DEVICE_PRIVATE,
    owner: 'dev',
    ops: o,
    nrPages: n,
    name: 't',
  });
  if (typeof r === 'number') throw new Error(`memremap failed ${r}`);
  return r;
}

describe('memremap_pages', () => {
  it('validates the ops and owner like the kernel', () => {
    const k = machine();
    const c = k.core;
    const base = { nrPages: 16, name: 'x' };
    expect(
      memremapPages(c, { ...base, type: MEMORY_DEVICE_PRIVATE, owner: 1, ops: { folioFree: () => {} } }),
    ).toBe(-EINVAL);
    expect(memremapPages(c, { ...base, type: MEMORY_DEVICE_PRIVATE, owner: null, ops: ops() })).toBe(-EINVAL);
    expect(
      memremapPages(c, {
        ...base,
        type: MEMORY_DEVICE_PRIVATE,
        owner: 1,
        ops: { migrateToRam: () => 0 } as unknown as DevPagemapOps,
      }),
    ).toBe(-EINVAL);
    expect(memremapPages(c, { ...base, type: MEMORY_DEVICE_COHERENT, owner: undefined, ops: ops() })).toBe(
      -EINVAL,
    );
    expect(c.warnings.length).toBe(4);
    const coherent = memremapPages(c, {
      ...base,
      type: MEMORY_DEVICE_COHERENT,
      owner: 1,
      ops: { folioFree: () => {} },
    });
    expect(typeof coherent).toBe('object');
  });

  it('a removed pgmap gives back its id and its free region, which the next ones reuse', () => {
    const k = machine();
    const c = k.core;
    const unmap = (pg: DevPagemap) => c.sched.runSync(memunmapPages(c, pg), 'memunmap_pages');
    const a = privatePgmap(k, 2 * PAGES_PER_SECTION);
    const b = privatePgmap(k, 100);
    const d = privatePgmap(k, PAGES_PER_SECTION);
    const top = c.nextDevicePfn;
    unmap(a);
    unmap(b);
    // a and b were neighbours: one free region of three sections.
    expect(c.freedDeviceRanges).toEqual([a.startPfn, b.startPfn + PAGES_PER_SECTION]);
    const e = privatePgmap(k, PAGES_PER_SECTION);
    expect([e.startPfn, e.id]).toEqual([a.startPfn, a.id]);
    const f = privatePgmap(k, 2 * PAGES_PER_SECTION);
    expect([f.startPfn, f.id]).toEqual([a.startPfn + PAGES_PER_SECTION, b.id]);
    expect(c.freedDeviceRanges).toEqual([]);
    expect(c.nextDevicePfn).toBe(top);
    // The memmap of a reused range is as new: every pfn points at its new pgmap.
    expect(c.map.pgmap[f.startPfn]).toBe(f.id);
    expect(c.map.refcount[f.startPfn]).toBe(0);
    expect(getDevPagemap(c, f.endPfn - 1)).toBe(f);
    // A region that does not fit stays free; the request takes fresh space above.
    unmap(d);
    const g = privatePgmap(k, 2 * PAGES_PER_SECTION);
    expect(g.startPfn).toBe(top);
    expect(c.freedDeviceRanges).toEqual([d.startPfn, d.startPfn + PAGES_PER_SECTION]);
  });

  it('a pgmap at a fixed start (special-purpose memory) does not free its range for others', () => {
    const k = machine();
    const c = k.core;
    const a = privatePgmap(k, PAGES_PER_SECTION);
    const start = c.nextDevicePfn;
    const coh = memremapPages(c, {
      type: MEMORY_DEVICE_COHERENT,
      owner: 1,
      ops: { folioFree: () => {} },
      nrPages: PAGES_PER_SECTION,
      name: 'spm',
      startPfn: start,
    });
    if (typeof coh === 'number') throw new Error(`memremap failed ${coh}`);
    c.sched.runSync(memunmapPages(c, coh), 'memunmap_pages');
    expect(c.freedDeviceRanges).toEqual([]);
    expect(privatePgmap(k, PAGES_PER_SECTION).startPfn).not.toBe(start);
    expect(a.id).toBe(1);
  });

  it('reserves section-aligned ranges above RAM and sets pgmap on every pfn', () => {
    const k = machine();
    const c = k.core;
    const blocks = c.frames.allocatedBlocks;
    const a = privatePgmap(k, 100);
    const b = privatePgmap(k, PAGES_PER_SECTION + 1);
    expect(a.startPfn % PAGES_PER_SECTION).toBe(0);
    expect(b.startPfn % PAGES_PER_SECTION).toBe(0);
    expect(b.startPfn).toBeGreaterThanOrEqual(a.endPfn);
    expect(c.nextDevicePfn).toBe(b.startPfn + 2 * PAGES_PER_SECTION);
    expect(a.refs).toBe(0);
    expect(c.pgmaps[a.id]).toBe(a);
    for (const p of [a.startPfn, a.endPfn - 1]) {
      expect(c.map.valid(p)).toBe(true);
      expect(c.map.pgmap[p]).toBe(a.id);
      expect(isDevicePrivatePage(c, p)).toBe(true);
      expect(pageDevPagemap(c, p)).toBe(a);
      expect(getDevPagemap(c, p)).toBe(a);
    }
    expect(isDevicePrivatePage(c, a.endPfn)).toBe(false);
    // Device-private memory has struct pages but no CPU-addressable bytes.
    expect(c.frames.allocatedBlocks).toBe(blocks);
  });

  it('rejects a fixed range that conflicts with a live pgmap', () => {
    const k = machine();
    const c = k.core;
    const a = memremapPages(c, {
      type: MEMORY_DEVICE_COHERENT,
      owner: 1,
      ops: ops(),
      nrPages: 1024,
      name: 'spm',
      startPfn: 0x200000,
    }) as DevPagemap;
    expect(a.startPfn).toBe(0x200000);
    expect(isDeviceCoherentPage(c, 0x200000)).toBe(true);
    expect(
      memremapPages(c, {
        type: MEMORY_DEVICE_COHERENT,
        owner: 1,
        ops: ops(),
        nrPages: 8,
        name: 's',
        startPfn: 0x200000,
      }),
    ).toBe(-ENOMEM);
    expect(c.warnings.at(-1)?.message).toMatch(/Conflicting mapping/);
    c.sched.runSync(memunmapPages(c, a), 'memunmap_pages');
    const again = memremapPages(c, {
      type: MEMORY_DEVICE_COHERENT,
      owner: 1,
      ops: ops(),
      nrPages: 8,
      name: 's',
      startPfn: 0x200000,
    });
    expect(typeof again).toBe('object');
  });
});

describe('zone_device_folio_init', () => {
  it('initialises a small page: refcount 1, locked, pgmap ref taken', () => {
    const k = machine();
    const c = k.core;
    const pg = privatePgmap(k);
    const p = pg.startPfn + 7;
    zoneDevicePageInit(c, p, pg);
    expect(c.map.refcount[p]).toBe(1);
    expect(c.map.flags[p] & PG_locked).toBeTruthy();
    expect(pg.refs).toBe(1);
    expect(c.warnings).toEqual([]);
  });

  it('initialises a large folio and scrubs stale compound state on reuse', () => {
    const k = machine();
    const c = k.core;
    const m = c.map;
    const freed: [number, number][] = [];
    const pg = privatePgmap(k, 4096, ops(freed));
    const h = pg.startPfn + 512;
    zoneDeviceFolioInit(c, h, pg, 9);
    expect(m.flags[h] & PG_head).toBeTruthy();
    expect(m.flags[h] & PG_large_rmappable).toBeTruthy();
    expect(m.folioOrder(h)).toBe(9);
    expect(m.head[h + 300]).toBe(h);
    expect(m.flags[h + 300] & PG_tail).toBeTruthy();
    expect(pg.refs).toBe(512);
    folioSetZoneDeviceData(c, h, 1234);
    expect(folioZoneDeviceData(c, h)).toBe(1234);
    // Free it (the core's free_zone_device_folio): order is kept, refs dropped.
    m.flags[h] &= ~PG_locked;
    m.refcount[h] = 0;
    freeZoneDeviceFolio(c, h);
    expect(freed).toEqual([[h, 9]]);
    expect(pg.refs).toBe(0);
    expect(m.folioOrder(h)).toBe(9);
    // Reuse one of its tail pages as a small page: the scrub removes the stale tail link.
    zoneDevicePageInit(c, h + 5, pg, 0);
    expect(m.head[h + 5]).toBe(h + 5);
    expect(m.flags[h + 5] & PG_tail).toBe(0);
    expect(m.refcount[h + 5]).toBe(1);
    expect(c.warnings).toEqual([]);
  });

  it('warns on a non-zero refcount and on allocation from a dying pgmap', () => {
    const k = machine();
    const c = k.core;
    const pg = privatePgmap(k);
    zoneDevicePageInit(c, pg.startPfn, pg);
    zoneDevicePageInit(c, pg.startPfn, pg);
    expect(c.warnings.some((w) => /refcount 1/.test(w.message))).toBe(true);
    pg.dying = true;
    zoneDevicePageInit(c, pg.startPfn + 1, pg);
    expect(c.warnings.some((w) => /dying/.test(w.message))).toBe(true);
  });

  it('warns when zone_device_data is used on a non-private folio', () => {
    const k = machine();
    const c = k.core;
    const pg = memremapPages(c, {
      type: MEMORY_DEVICE_COHERENT,
      owner: 1,
      ops: ops(),
      nrPages: 8,
      name: 'c',
    });
    if (typeof pg === 'number') throw new Error('memremap');
    zoneDevicePageInit(c, pg.startPfn, pg);
    folioSetZoneDeviceData(c, pg.startPfn, 5);
    expect(c.warnings.length).toBe(1);
  });
});

describe('memunmap_pages', () => {
  it('waits forever (a deadlock finding) while device pages are allocated, else retires the range', () => {
    const k = machine();
    const c = k.core;
    const pg = privatePgmap(k);
    zoneDevicePageInit(c, pg.startPfn, pg);
    const unmap = () => c.sched.runSync(memunmapPages(c, pg), 'memunmap_pages');
    expect(unmap).toThrow(/deadlock[\s\S]*memunmap_pages: 1 device page/);
    expect(pg.dying).toBe(true);
    pg.refs = 0;
    unmap();
    expect(c.pgmaps[pg.id]).toBeUndefined();
    expect(c.map.valid(pg.startPfn)).toBe(false);
    expect(getDevPagemap(c, pg.startPfn)).toBeUndefined();
    expect(unmap).toThrow(ModelBug);
  });
});

describe('device memmap (memmap_init_zone_device on a sparse memmap)', () => {
  it('initialises only the pgmap own sections and tears them down again', () => {
    const k = machine();
    const c = k.core;
    const before = c.map.touchedSections;
    const pg = privatePgmap(k, 2 * PAGES_PER_SECTION);
    expect(c.map.touchedSections).toBe(before + 2);
    expect(c.map.head[pg.endPfn - 1]).toBe(pg.endPfn - 1);
    expect(c.map.pgmap[pg.endPfn - 1]).toBe(pg.id);
    c.sched.runSync(memunmapPages(c, pg), 'memunmap_pages');
    expect(c.map.valid(pg.startPfn + 5)).toBe(false);
    expect(c.map.pgmap[pg.startPfn + 5]).toBe(0);
    // The range can be mapped again (a new pgmap id) with clean struct pages.
    const again = memremapPages(c, {
      type: MEMORY_DEVICE_PRIVATE,
      owner: 'd',
      ops: ops(),
      nrPages: 64,
      name: 'x',
      startPfn: pg.startPfn,
    });
    if (typeof again === 'number') throw new Error(`memremap failed ${again}`);
    expect(c.map.refcount[pg.startPfn]).toBe(0);
    expect(c.map.pgmap[pg.startPfn]).toBe(again.id);
  });

  it('is -ERANGE beyond the physical address space (request_free_mem_region has no room)', () => {
    const k = machine();
    const c = k.core;
    const o = { type: MEMORY_DEVICE_PRIVATE, owner: 'd', ops: ops(), name: 'x' } as const;
    expect(memremapPages(c, { ...o, nrPages: 64, startPfn: MAX_PHYS_PFN - 32 })).toBe(-ERANGE);
    const next = c.nextDevicePfn;
    c.nextDevicePfn = MAX_PHYS_PFN - PAGES_PER_SECTION;
    expect(memremapPages(c, { ...o, nrPages: PAGES_PER_SECTION + 1 })).toBe(-ERANGE);
    expect(c.nextDevicePfn).toBe(MAX_PHYS_PFN - PAGES_PER_SECTION);
    c.nextDevicePfn = next;
    expect(typeof memremapPages(c, { ...o, nrPages: 1 })).not.toBe('number');
  });
});

describe('device-private softleaf entries', () => {
  it('encodes readable and writable entries', () => {
    const pfn = 0x123456;
    const r = makeReadableDevicePrivateEntry(pfn);
    const w = makeWritableDevicePrivateEntry(pfn);
    expect(swpType(r.lo)).toBe(SWP_DEVICE_READ);
    expect(swpType(w.lo)).toBe(SWP_DEVICE_WRITE);
    expect(softleafIsDevicePrivate(r.lo, r.hi)).toBe(true);
    expect(softleafIsDevicePrivateWrite(r.lo, r.hi)).toBe(false);
    expect(softleafIsDevicePrivateWrite(w.lo, w.hi)).toBe(true);
    expect(softleafToPfn(w.lo, w.hi)).toBe(pfn);
    expect(softleafIsDevicePrivate(0, 0)).toBe(false);
    expect(entryNone(r.lo, r.hi)).toBe(false);
  });
});

describe('zone_device_private_split_cb', () => {
  it('copies pgmap and mapping without a folio_split op, calls the op otherwise', () => {
    const k = machine();
    const c = k.core;
    const pg = privatePgmap(k);
    const h = pg.startPfn;
    zoneDeviceFolioInit(c, h, pg, 9);
    c.map.mapping[h] = 42;
    const heads = splitFolioMeta(c, h, 0);
    expect(c.map.pgmap[h + 1]).toBe(0);
    for (const t of heads.slice(1)) zoneDevicePrivateSplitCb(c, h, t);
    zoneDevicePrivateSplitCb(c, h, -1);
    expect(c.map.pgmap[h + 1]).toBe(pg.id);
    expect(c.map.mapping[h + 511]).toBe(42);
    const calls: number[] = [];
    const pg2 = privatePgmap(k, 1024, { ...ops(), folioSplit: (_h, t) => void calls.push(t) });
    zoneDeviceFolioInit(c, pg2.startPfn, pg2, 9);
    const heads2 = splitFolioMeta(c, pg2.startPfn, 0);
    for (const t of heads2.slice(1)) zoneDevicePrivateSplitCb(c, pg2.startPfn, t);
    zoneDevicePrivateSplitCb(c, pg2.startPfn, -1);
    expect(calls.length).toBe(512);
    expect(calls.at(-1)).toBe(-1);
  });
});
