import { describe, expect, it } from 'vitest';
import { SoftTlb } from './types.js';

describe('SoftTlb: flushes by epoch', () => {
  it('a full flush invalidates every slot at once; a range flush only its pages', () => {
    const tlb = new SoftTlb();
    tlb.insert(5, 100, true);
    tlb.insert(6, 101, false);
    expect([tlb.vpnAt(5), tlb.vpnAt(6), tlb.vpnAt(7)]).toEqual([5, 6, -1]);
    tlb.flushRange(5 * 4096, 6 * 4096);
    expect([tlb.vpnAt(5), tlb.vpnAt(6)]).toEqual([-1, 6]);
    tlb.flushAll();
    expect(tlb.vpnAt(6)).toBe(-1);
    // A vpn filled again in the new epoch is valid; the same vpn's old tag never matches.
    tlb.insert(6 + 1024, 7, true);
    expect(tlb.vpnAt(6)).toBe(6 + 1024);
    expect(tlb.flushes).toBe(2);
  });

  it('when the epochs run out the tags are cleared for real and the epochs start over', () => {
    const tlb = new SoftTlb();
    tlb.epoch = 2 ** 52;
    tlb.insert(2 ** 35 - 1, 9, true);
    expect(tlb.vpnAt((2 ** 35 - 1) & 1023)).toBe(2 ** 35 - 1);
    tlb.flushAll();
    expect(tlb.epoch).toBe(0);
    for (let s = 0; s < 1024; s++) expect(tlb.vpnAt(s)).toBe(-1);
  });
});
