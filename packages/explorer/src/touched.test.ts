import {
  entryPfn,
  PAGE_SIZE,
  PG_locked,
  pmdIndex,
  pmdTableOf,
  pteIndex,
  pteTableAt,
  ptHi,
  ptLo,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { checkDriverCounters, checkRangeQuiescent } from './touched.js';
import { World } from './world.js';

describe('incremental check of a touched range', () => {
  it('is clean on a quiescent range and reports a folio left locked with no migration in flight', () => {
    const w = new World();
    const p = w.slots[0]?.proc;
    if (!p) throw new Error('no process');
    const addr = w.scratch(0);
    p.writeBytes(addr, new Uint8Array(4 * PAGE_SIZE).fill(7));
    expect(checkRangeQuiescent(w, p.mm, addr, addr + 4 * PAGE_SIZE)).toEqual([]);
    expect(checkDriverCounters(w)).toEqual([]);
    // Plant the symptom of a lost folio_unlock on the second page.
    const core = w.kernel.core;
    const pmdT = pmdTableOf(core, p.mm, addr, false);
    const pteT = pteTableAt(core, p.mm, pmdT, addr, false);
    const a = addr + PAGE_SIZE;
    const pfn = entryPfn(ptLo(core, pteT, pteIndex(a)), ptHi(core, pteT, pteIndex(a)));
    expect(pmdIndex(a)).toBe(pmdIndex(addr));
    core.map.flags[core.map.head[pfn]] |= PG_locked;
    const v = checkRangeQuiescent(w, p.mm, addr, addr + 4 * PAGE_SIZE);
    expect(v).toHaveLength(1);
    expect(v[0]).toMatch(
      /^0x[0-9a-f]+: PTE maps folio 0x[0-9a-f]+, still locked with no migration in flight$/,
    );
    // Outside the touched range the check does not look.
    expect(checkRangeQuiescent(w, p.mm, addr + 2 * PAGE_SIZE, addr + 4 * PAGE_SIZE)).toEqual([]);
  });
});
