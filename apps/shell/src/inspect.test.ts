/**
 * Map colouring and page-table walks over every kind of entry. Device-private, migration,
 * device-exclusive and coherent entries are written straight into the page tables here (a
 * white-box fixture: the drivers that create them for real are not installed yet), so only the
 * shell's reading of the encodings is tested, not a migration.
 */
import {
  entryNone,
  MEMORY_DEVICE_COHERENT,
  MEMORY_DEVICE_PRIVATE,
  mkHi,
  mkPmdLo,
  mkPteLo,
  mkSwpLo,
  PG_zone_device,
  pmdIndex,
  pmdTableOf,
  pteIndex,
  pteTableOf,
  ptHi,
  ptLo,
  ptSet,
  SWP_DEVICE_EXCLUSIVE,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  SWP_MIGRATION_WRITE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { buildAddressMap, classifyRegion, mapLineText } from './inspect/addrmap.js';
import { walkAddress } from './inspect/walk.js';
import type { Session } from './session.js';
import { newSession, run, text } from './testing/harness.js';

/** Registers a fake device memory range (pgmap) of `type` and returns its first pfn. */
function fakePgmap(s: Session, type: 1 | 2, pages: number): number {
  const core = s.kernel.core;
  const start = core.nextDevicePfn;
  core.nextDevicePfn += pages;
  core.map.initRange(start, pages, PG_zone_device);
  const id = core.pgmaps.length;
  core.pgmaps.push({
    id,
    type,
    owner: null,
    ops: { folioFree: () => {} },
    startPfn: start,
    endPfn: start + pages,
    refs: 0,
    dying: false,
    name: type === MEMORY_DEVICE_COHERENT ? 'fake coherent' : 'fake private',
  });
  for (let p = start; p < start + pages; p++) core.map.pgmap[p] = id;
  return start;
}

function setup() {
  const s = newSession();
  run(s, 'mmap 8M nohugepage', 'write $ 4K zero', 'write $+2M 4K zero', 'write $+4M 4K zero');
  const base = s.vars.get('') ?? 0;
  const core = s.kernel.core;
  const mm = s.proc!.mm;
  return { s, base, core, mm };
}

describe('address-space map and walk over every entry kind', () => {
  it('device-private PTEs and a device-private PMD', () => {
    const { s, base, core, mm } = setup();
    const dev = fakePgmap(s, MEMORY_DEVICE_PRIVATE, 1024);
    const t = pteTableOf(core, mm, base, false);
    ptSet(core, t, pteIndex(base + 4096), mkSwpLo(SWP_DEVICE_WRITE, dev), mkHi(dev));
    ptSet(core, t, pteIndex(base + 8192), mkSwpLo(SWP_DEVICE_READ, dev + 1), mkHi(dev + 1));
    // The third 2 MiB region (base+4M) becomes a non-present device-private PMD.
    const pmdT = pmdTableOf(core, mm, base + (4 << 20), false);
    const mi = pmdIndex(base + (4 << 20));
    expect(entryNone(ptLo(core, pmdT, mi), ptHi(core, pmdT, mi))).toBe(false);
    ptSet(core, pmdT, mi, mkSwpLo(SWP_DEVICE_WRITE, dev + 512), mkHi(dev + 512));
    expect(classifyRegion(core, mm, base)).toBe('dev');
    expect(classifyRegion(core, mm, base + (4 << 20))).toBe('devthp');
    const w = walkAddress(core, mm, base + 4096);
    expect(w.leaf?.kind).toBe('device-private-write');
    expect(w.backing).toBe('dev');
    expect(w.pagePfn).toBe(dev);
    const wp = walkAddress(core, mm, base + (4 << 20) + 3 * 4096);
    expect(wp.leaf?.level).toBe('pmd');
    expect(wp.leaf?.kind).toBe('device-private-write');
    expect(wp.pagePfn).toBe(dev + 512 + 3);
    expect(wp.leaf?.bits).toEqual(['SWP_DEVICE_WRITE']);
    const map = buildAddressMap(core, mm);
    expect(map.lines.map(mapLineText)).toEqual([`${`0x${base.toString(16)}`.padStart(16)} |dsD.|`]);
    const out = text(run(s, 'walk $+4M'));
    expect(out).toContain('device-private-write');
    expect(out).toContain('=> a device-private THP');
    const zoom = buildAddressMap(core, mm, { zoom: base, cellsPerRow: 8 });
    expect(mapLineText(zoom.lines[0])).toContain('|sdd.....|');
    expect(text(run(s, `folio pfn 0x${dev.toString(16)}`))).toMatch(
      /pgmap #\d+ "fake private" MEMORY_DEVICE_PRIVATE/,
    );
  });

  it('migration and device-exclusive entries', () => {
    const { base, core, mm } = setup();
    const t = pteTableOf(core, mm, base, false);
    const pfn = 0x40123;
    ptSet(core, t, pteIndex(base + 4096), mkSwpLo(SWP_DEVICE_EXCLUSIVE, pfn), mkHi(pfn));
    expect(classifyRegion(core, mm, base)).toBe('exclusive');
    ptSet(core, t, pteIndex(base + 8192), mkSwpLo(SWP_MIGRATION_WRITE, pfn), mkHi(pfn));
    expect(classifyRegion(core, mm, base)).toBe('migration');
    const w = walkAddress(core, mm, base + 8192);
    expect(w.leaf?.kind).toBe('migration-write');
    expect(w.leaf?.bits[0]).toBe('SWP_MIGRATION_WRITE');
    const pmdT = pmdTableOf(core, mm, base + (2 << 20), false);
    ptSet(core, pmdT, pmdIndex(base + (2 << 20)), mkSwpLo(SWP_MIGRATION_WRITE, pfn), mkHi(pfn));
    expect(classifyRegion(core, mm, base + (2 << 20))).toBe('migration');
  });

  it('coherent device pages (ZONE_DEVICE with a MEMORY_DEVICE_COHERENT pgmap), 4K and THP', () => {
    const { s, base, core, mm } = setup();
    const coh = fakePgmap(s, MEMORY_DEVICE_COHERENT, 1024);
    const t = pteTableOf(core, mm, base, false);
    ptSet(core, t, pteIndex(base + 4096), mkPteLo(coh, true, true, true), mkHi(coh));
    expect(classifyRegion(core, mm, base)).toBe('coherent');
    const pmdT = pmdTableOf(core, mm, base + (2 << 20), false);
    ptSet(core, pmdT, pmdIndex(base + (2 << 20)), mkPmdLo(coh + 512, true, true, true), mkHi(coh + 512));
    expect(classifyRegion(core, mm, base + (2 << 20))).toBe('coherentthp');
    expect(walkAddress(core, mm, base + (2 << 20)).backing).toBe('coherentthp');
  });

  it('zero page, huge zero page, THP, empty and unmapped cells', () => {
    const s = newSession();
    run(s, 'mmap 6M hugepage', 'fault $ read', 'write $+2M 4K fill 1', 'munmap $+5M 1M');
    const base = s.vars.get('') ?? 0;
    const core = s.kernel.core;
    const mm = s.proc!.mm;
    expect(classifyRegion(core, mm, base)).toBe('hugezero');
    expect(classifyRegion(core, mm, base + (2 << 20))).toBe('thp');
    expect(classifyRegion(core, mm, base + (4 << 20))).toBe('empty');
    expect(classifyRegion(core, mm, base + (6 << 20))).toBe('unmapped');
    run(s, 'mmap 4K nohugepage', 'fault $ read');
    expect(walkAddress(core, mm, s.vars.get('') ?? 0).backing).toBe('zero');
    const m = buildAddressMap(core, mm, { cellsPerRow: 2, maxRows: 1 });
    expect(m.lines.some((l) => l.type === 'more')).toBe(true);
  });
});
