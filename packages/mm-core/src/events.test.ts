import { describe, expect, it } from 'vitest';
import {
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { EVENT_NAMES, eventsSince, formatEvents, KernelEvents } from './events.js';
import { MmStruct } from './mm/types.js';
import { machine } from './testing/helpers.js';

describe('kernel event accounting (model-only core.events)', () => {
  it('counts page-table writes, TLB flushes and mmu invalidations of faults and munmap', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(p.madvise(a, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
    let before = k.core.events.snapshot();
    for (let i = 0; i < 4; i++) p.writeU8(a + i * 4096, 1);
    let d = eventsSince(k.core.events, before);
    // Four PTEs, plus the PUD/PMD/PTE table entries of the first fault.
    expect(d.ptesWritten).toBeGreaterThanOrEqual(4);
    expect(d.mmuInvalidations).toBe(0);
    before = k.core.events.snapshot();
    expect(p.munmap(a, PMD_SIZE)).toBe(0);
    d = eventsSince(k.core.events, before);
    expect(d.mmuInvalidations).toBeGreaterThanOrEqual(1);
    expect(d.tlbFlushes).toBeGreaterThanOrEqual(1);
    expect(d.ptesWritten).toBeGreaterThanOrEqual(4);
  });

  it('a THP fault writes one PMD where 512 base-page faults write 512 PTEs', () => {
    const k = machine();
    const p = k.spawn();
    const count = (advice: number) => {
      const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
      expect(p.madvise(a, PMD_SIZE, advice)).toBe(0);
      const before = k.core.events.snapshot();
      for (let off = 0; off < PMD_SIZE; off += 4096) p.writeU8(a + off, 1);
      return eventsSince(k.core.events, before).ptesWritten;
    };
    const huge = count(MADV_HUGEPAGE);
    const small = count(MADV_NOHUGEPAGE);
    expect(huge).toBeLessThan(8);
    expect(small).toBeGreaterThanOrEqual(512);
  });

  it('formats counts in one line; a detached mm counts nothing', () => {
    const e = new KernelEvents();
    e.copy(512, 2 << 20);
    e.ptesWritten = 3;
    expect(formatEvents(e.snapshot())).toBe(
      'PTEs written 3, TLB flushes 0, mmu invalidations 0, folio locks 0, rmap walks 0, copy commands 512 (2 MiB)',
    );
    expect(EVENT_NAMES).toHaveLength(7);
    const mm = new MmStruct(99);
    mm.tlb.flushAll();
    expect(mm.events).toBeNull();
    expect(mm.tlb.flushes).toBe(1);
  });
});
