import { describe, expect, it } from 'vitest';
import {
  EBUSY,
  EFAULT,
  EINVAL,
  ENOENT,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import { entryPresent } from '../pgtable/entry.js';
import { machine } from '../testing/helpers.js';
import { meminfoKb, pageout, pteAt } from '../testing/swap.js';
import { SWAP_DEVICE_PATH, SWAP_FLAG_DISCARD, SWAP_FLAG_PREFER } from './swapoff.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const MiB = 1 << 20;

describe('swapoff(2) / swapon(2) (sys_swapoff(), try_to_unuse(), sys_swapon())', () => {
  it('swapoff brings every swapped-out page of every process back (try_to_unuse()), frees the area; swapon enables it again', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 8; i++) p.writeI32(a + i * PAGE_SIZE, 1000 + i);
    expect(pageout(k, p, a, 8 * PAGE_SIZE)).toBe(8);
    const c = k.task(p.fork());
    if (!c) throw new Error('fork failed');
    expect(c.mm.rss.MM_SWAPENTS).toBe(8);
    const total = meminfoKb(p, 'SwapTotal');
    expect(total).toBeGreaterThan(0);
    expect(p.swapoff(SWAP_DEVICE_PATH)).toBe(0);
    expect(meminfoKb(p, 'SwapTotal')).toBe(0);
    expect(meminfoKb(p, 'SwapCached')).toBe(0);
    for (const q of [p, c]) {
      expect(q.mm.rss.MM_SWAPENTS).toBe(0);
      expect(q.mm.rss.MM_ANONPAGES).toBeGreaterThanOrEqual(8);
      for (let i = 0; i < 8; i++) expect(entryPresent(pteAt(k, q, a + i * PAGE_SIZE)[0])).toBe(true);
    }
    const pswpin = k.core.vmstat.pswpin;
    for (let i = 0; i < 8; i++) {
      expect(p.readI32(a + i * PAGE_SIZE)).toBe(1000 + i);
      expect(c.readI32(a + i * PAGE_SIZE)).toBe(1000 + i);
    }
    // Nothing is read from swap any more: the pages were brought in by swapoff.
    expect(k.core.vmstat.pswpin).toBe(pswpin);
    expect(k.check()).toEqual([]);
    // Without swap, PAGEOUT keeps the pages; swapon makes them reclaimable again.
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(0);
    expect(p.swapon(SWAP_DEVICE_PATH, SWAP_FLAG_PREFER | 5)).toBe(0);
    expect(meminfoKb(p, 'SwapTotal')).toBe(total);
    expect(meminfoKb(p, 'SwapFree')).toBe(total);
    p.writeI32(a, 5);
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(1);
    expect(p.readI32(a)).toBe(5);
    expect(k.check()).toEqual([]);
  });

  it('errors: -ENOENT for no such device (or a machine without swap), -EINVAL when not active or for bad flags, -EBUSY when already on, -EFAULT for no path', () => {
    const k = machine();
    const p = k.spawn();
    expect(p.swapoff('/dev/nope')).toBe(-ENOENT);
    expect(p.swapon(SWAP_DEVICE_PATH)).toBe(-EBUSY);
    expect(p.swapon(SWAP_DEVICE_PATH, 0x80000)).toBe(-EINVAL);
    expect(p.swapoff(123 as unknown as string)).toBe(-EFAULT);
    expect(p.swapoff(SWAP_DEVICE_PATH)).toBe(0);
    expect(p.swapoff(SWAP_DEVICE_PATH)).toBe(-EINVAL);
    expect(p.swapon(SWAP_DEVICE_PATH, SWAP_FLAG_DISCARD)).toBe(0);
    expect(k.core.swapInfo.length).toBe(1);
    const none = machine('madvise', { swapBytes: 0 });
    expect(none.spawn().swapoff(SWAP_DEVICE_PATH)).toBe(-ENOENT);
    expect(k.check()).toEqual([]);
  });

  it('swapoff that cannot bring everything back into RAM fails with -ENOMEM and leaves the area on (reinsert_swap_info()); every page still reads back', () => {
    const k = machine('never', { ramBytes: 16 * MiB, swapBytes: 64 * MiB, hugetlbPages: 0 });
    const p = k.spawn();
    const n = (24 * MiB) / PAGE_SIZE;
    const a = p.mmap(0, n * PAGE_SIZE, RW, ANON | MAP_NORESERVE);
    for (let i = 0; i < n; i++) p.writeI32(a + i * PAGE_SIZE, i);
    expect(p.mm.rss.MM_SWAPENTS).toBeGreaterThan(0);
    const total = meminfoKb(p, 'SwapTotal');
    expect(p.swapoff(SWAP_DEVICE_PATH)).toBe(-ENOMEM);
    expect(meminfoKb(p, 'SwapTotal')).toBe(total);
    expect(k.core.vmstat.oom_kill).toBe(0);
    for (let i = 0; i < n; i++) if (p.readI32(a + i * PAGE_SIZE) !== i) throw new Error(`page ${i} lost`);
    expect(k.check()).toEqual([]);
  });
});
