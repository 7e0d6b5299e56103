/**
 * mTHP in the shell: `thp <size>` (hugepages-<size>kB/enabled, thpsize_enabled_store()),
 * --dmirror-mthp (test-hmm's DmirrorOptions.mthpOrders), `snapshot ... orders`
 * (HMM_DMIRROR_SNAPSHOT_ORDER) and `fail-alloc order N` (the FAIL_ALLOC order extension).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseArgs } from './cli.js';
import {
  dmirrorMthpSpec,
  maskOrders,
  orderSize,
  parseDmirrorMthp,
  parseOrderList,
  sizeOrder,
} from './mthp.js';
import { newSession, run, script, text } from './testing/harness.js';

describe('--dmirror-mthp [DEV:]ORDERS', () => {
  it('parses order lists and ranges into a mask, per device or for all four', () => {
    expect(parseOrderList('x', '2-4,6', 2, 8)).toBe(0b1011100);
    const into: Record<number, number> = {};
    parseDmirrorMthp('4', into);
    expect(into).toEqual({ 0: 0x10, 1: 0x10, 2: 0x10, 3: 0x10 });
    parseDmirrorMthp('1:2-3', into);
    expect(into[1]).toBe(0b1100);
    expect(parseArgs(['--dmirror-mthp', '0:2-8', '--dmirror-mthp', '3:5']).dmirrorMthp).toEqual({
      0: 0x1fc,
      3: 0x20,
    });
  });

  it('refuses orders outside 2..8, bad devices and malformed lists with one line naming the problem', () => {
    expect(() => parseArgs(['--dmirror-mthp', '9'])).toThrow(/order 9 is outside 2\.\.8/);
    expect(() => parseArgs(['--dmirror-mthp', '1'])).toThrow(/order 1 is outside 2\.\.8/);
    expect(() => parseArgs(['--dmirror-mthp', '4:2'])).toThrow(/device "4" is not 0\.\.3/);
    expect(() => parseArgs(['--dmirror-mthp', '6-3'])).toThrow(/runs backwards/);
    expect(() => parseArgs(['--dmirror-mthp', 'big'])).toThrow(/"big" is not an order/);
    expect(() => parseArgs(['--dmirror-mthp', '0:'])).toThrow(/no orders/);
    expect(() => parseArgs(['--dmirror-mthp'])).toThrow(/needs a value/);
  });

  it('writes back the spec it parses (the record header)', () => {
    for (const spec of ['0:2-4', '1:2,4,6-8', '3:5']) {
      const into: Record<number, number> = {};
      parseDmirrorMthp(spec, into);
      const [dev, mask] = Object.entries(into)[0];
      expect(dmirrorMthpSpec(Number(dev), mask)).toBe(spec);
    }
  });
});

describe('sizes and orders', () => {
  it('names each mTHP size as the sysfs directory does, and reads sizes back to orders 2..9', () => {
    expect([2, 4, 8, 9].map(orderSize)).toEqual(['16K', '64K', '1M', '2M']);
    expect(sizeOrder('64K')).toBe(4);
    expect(sizeOrder('64kB')).toBe(4);
    expect(sizeOrder('2048kB')).toBe(9);
    expect(sizeOrder('2M')).toBe(9);
    for (const bad of ['4K', '8K', '3K', '4M', '48K', 'lots']) expect(sizeOrder(bad)).toBeUndefined();
    expect(maskOrders(0b1010100)).toEqual([2, 4, 6]);
  });
});

describe('thp <size>', () => {
  it('sets hugepages-<size>kB/enabled through sysfs, and a fault then allocates that order', () => {
    const s = newSession();
    expect(text(run(s, 'thp 64K always'))).toBe('thp 64K: [always] inherit madvise never');
    expect(text(run(s, 'cat /sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled'))).toBe(
      '[always] inherit madvise never',
    );
    const sizes = text(run(s, 'thp sizes'));
    expect(sizes).toMatch(/thp {2}64K: \[always\]/);
    expect(sizes).toMatch(/thp {3}2M: always \[inherit\]/);
    run(s, 'mmap 1M rw private anon', 'write $ 4K index');
    // alloc_anon_folio(): the highest enabled order that fits: 64K (order 4).
    expect(text(run(s, 'folio $'))).toMatch(/order 4 \(16 pages\)/);
  });

  it('bad sizes and modes are usage errors; the top-level modes work as before', () => {
    const s = newSession();
    expect(run(s, 'thp 3K always').result.ok).toBe(false);
    expect(text(run(s, 'thp 64K sometimes'))).toMatch(/bad mTHP mode "sometimes"/);
    expect(text(run(s, 'thp inherit'))).toMatch(/bad THP mode "inherit"/);
    expect(text(run(s, 'thp always'))).toBe('thp: [always] madvise never');
  });
});

describe('device mTHP migration in the shell', () => {
  it('dev lists the orders; migration keeps 64K folios whole; fail-alloc order 4 falls back to 32K', () => {
    const s = newSession({ dmirrorMthpOrders: { 0: 0b11100 } });
    expect(text(run(s, 'dev'))).toMatch(
      /mTHP orders \(model extension\): 2 \(16K\), 3 \(32K\), 4 \(64K\), and 9/,
    );
    run(s, 'thp 64K always', 'mmap 4M rw private anon', 'write $ 4M index');
    expect(text(run(s, 'migrate $ 256K dev'))).toMatch(/cpages 64/);
    expect(text(run(s, 'snapshot $ 256K orders'))).toMatch(/64 page\(s\) {2}order 4 \(64K folio\)/);
    expect(text(run(s, 'fail-alloc order 4'))).toMatch(/allocation of order 4 fails/);
    run(s, 'migrate $+256K 64K dev');
    expect(text(run(s, 'snapshot $+256K 64K orders'))).toMatch(/16 page\(s\) {2}order 3 \(32K folio\)/);
    expect(text(run(s, 'check $ 4M index'))).toMatch(/check: ok/);
    expect(text(run(s, 'fail-alloc order 10'))).toMatch(/bad order "10"/);
  });

  it('snapshot orders reports "none" where nothing is mapped; a device without orders migrates base pages', () => {
    const s = newSession();
    run(s, 'thp 64K always', 'mmap 1M rw private anon', 'write $ 64K index');
    expect(text(run(s, 'snapshot $+64K 64K orders'))).toMatch(/16 page\(s\) {2}none/);
    run(s, 'migrate $ 64K dev');
    // With no mTHP orders declared (v6.19), the 64K folio is split and moves as base pages.
    expect(text(run(s, 'snapshot $ 64K orders'))).toMatch(/16 page\(s\) {2}order 0 \(base page\)/);
  });

  it('record notes the device orders in its header', () => {
    const s = newSession({ dmirrorMthpOrders: { 1: 0b1100 } });
    const files = new Map<string, string>();
    s.files = {
      write: (p, t) => void files.set(p, t),
      append: (p, t) => void files.set(p, (files.get(p) ?? '') + t),
    };
    run(s, 'record x.hmm', 'stop');
    expect(files.get('x.hmm')).toMatch(/# recorded on a machine with --dmirror-mthp 1:2-3/);
  });
});

describe('examples/mthp-device.hmm', () => {
  it('runs with --strict on a machine booted with --dmirror-mthp 0:2-4', async () => {
    const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'mthp-device.hmm');
    const session = newSession({ dmirrorMthpOrders: { 0: 0b11100 } });
    const { out, code } = await script(readFileSync(file, 'utf8'), { strict: true, session });
    expect(code).toBe(0);
    expect(out).toMatch(/order 4 \(16 pages\)/);
    expect(out).toMatch(/0x7effffc40000-0x7effffc50000 +16 page\(s\) {2}order 3 \(32K folio\)/);
    expect(out).toContain('check: ok');
  });
});
