import { describe, expect, it } from 'vitest';
import {
  EBUSY,
  EFAULT,
  EINTR,
  EINVAL,
  ENOENT,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
} from '../constants.js';
import { folioUnlock } from '../folio.js';
import type { Kernel } from '../kernel.js';
import { oomSysctls } from '../oom.js';
import { entryPresent } from '../pgtable/entry.js';
import { PG_locked, PG_swapcache } from '../phys/memmap.js';
import { waitEvent } from '../sched/locks.js';
import type { KGen } from '../sched/task.js';
import { machine, ptePfn } from '../testing/helpers.js';
import { meminfoKb, pageout, pteAt } from '../testing/swap.js';
import { mmget, mmput } from './exit.js';
import { folioLockWait, mmapWriteLock, mmapWriteUnlock } from './locking.js';
import { SWAP_DEVICE_PATH, SWAP_FLAG_DISCARD, SWAP_FLAG_PREFER } from './swapoff.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const MiB = 1 << 20;

/** Another CPU: takes a lock (`take`), holds it until `until()` holds, then drops it (`drop`). */
function holder(k: Kernel, take: () => KGen, until: () => boolean, drop: () => void): void {
  k.sched.spawn(
    'holder',
    (function* (): KGen {
      yield* take();
      yield* waitEvent('test: holder waits', until);
      drop();
    })(),
  );
}

/**
 * A machine with two processes: p has 4 pages (holding base..base+3) swapped out at `a`; q is the
 * one that calls swapoff.
 */
function swappedOut(base: number) {
  const k = machine();
  const p = k.spawn();
  const q = k.spawn();
  const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
  for (let i = 0; i < 4; i++) p.writeI32(a + i * PAGE_SIZE, base + i);
  expect(pageout(k, p, a, 4 * PAGE_SIZE)).toBe(4);
  return { k, p, q, a };
}

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

  it("swapoff that cannot bring everything back into RAM fails with -ENOMEM and leaves the area on (reinsert_swap_info()); its swap-in's OOM kill chooses swapoff's caller (oom_task_origin()); every page still reads back", () => {
    const k = machine('never', { ramBytes: 16 * MiB, swapBytes: 64 * MiB, hugetlbPages: 0 });
    const p = k.spawn();
    const q = k.spawn();
    const n = (24 * MiB) / PAGE_SIZE;
    const a = p.mmap(0, n * PAGE_SIZE, RW, ANON | MAP_NORESERVE);
    for (let i = 0; i < n; i++) p.writeI32(a + i * PAGE_SIZE, i);
    expect(p.mm.rss.MM_SWAPENTS).toBeGreaterThan(0);
    const total = meminfoKb(p, 'SwapTotal');
    oomSysctls(k.core).oom_kill_allocating_task = 0;
    expect(q.swapoff(SWAP_DEVICE_PATH)).toBe(-ENOMEM);
    expect(meminfoKb(p, 'SwapTotal')).toBe(total);
    expect(k.core.vmstat.oom_kill).toBe(1);
    expect(q.oomVictim).toBe(true);
    expect(p.oomVictim).toBe(false);
    for (let i = 0; i < n; i++) if (p.readI32(a + i * PAGE_SIZE) !== i) throw new Error(`page ${i} lost`);
    expect(k.check()).toEqual([]);
  });

  it("walks init_mm.mmlist: an exited process's address space that a driver still holds (mmget()) is swapped in too, and torn down by the last mmput()", () => {
    const { k, p, q } = swappedOut(70);
    const mm = p.mm;
    mmget(mm);
    p.exit(0);
    expect(k.core.mmlist.has(mm)).toBe(true);
    expect(mm.rss.MM_SWAPENTS).toBe(4);
    expect(meminfoKb(q, 'SwapFree')).toBeLessThan(meminfoKb(q, 'SwapTotal'));
    // try_to_unuse() retries until every slot is free: it must reach this mm.
    expect(q.swapoff(SWAP_DEVICE_PATH)).toBe(0);
    expect(mm.rss.MM_SWAPENTS).toBe(0);
    expect(mm.rss.MM_ANONPAGES).toBe(4);
    k.sched.runSync(mmput(k.core, mm), 'driver mmput');
    expect(k.core.mmlist.has(mm)).toBe(false);
    expect(mm.pgd).toBe(-1);
    expect(k.check()).toEqual([]);
  });

  it('try_to_unuse() starts over while an exiting mm (mm_users 0, exit_mmap() not done) still holds swap entries, and succeeds once they are gone (goto retry)', () => {
    const { k, p, q } = swappedOut(90);
    const mm = p.mm;
    let release = false;
    // Another CPU holds p's mmap_lock for write: p's exit_mmap() waits for it with mm_users 0.
    holder(
      k,
      () => mmapWriteLock(k.core, mm, 'test: holder'),
      () => release,
      () => mmapWriteUnlock(k.core, mm, 'test: holder'),
    );
    k.sched.runUntil(() => mm.mmapLock.locked);
    const exiting = k.sched.spawn('exit', p.exitGen(0), { owner: p });
    k.sched.runUntil(() => exiting.state === 'blocked');
    expect(mm.users).toBe(0);
    const off = q.clone().spawn('swapoff', q.sys.swapoff(SWAP_DEVICE_PATH));
    // mmget_not_zero() skips the mm; its 4 slots stay in use, so the walk starts over and over.
    k.sched.runUntil(() => off.steps > 20);
    expect(off.done).toBe(false);
    expect(mm.rss.MM_SWAPENTS).toBe(4);
    release = true;
    k.sched.runAll();
    expect(off.result).toBe(0);
    expect(meminfoKb(q, 'SwapTotal')).toBe(0);
    expect(k.core.mmlist.has(mm)).toBe(false);
    expect(k.check()).toEqual([]);
  });

  it('try_to_unuse() stops with -EINTR when the caller gets a fatal signal; the area stays on', () => {
    const { k, p, q, a } = swappedOut(50);
    const total = meminfoKb(q, 'SwapTotal');
    // p's address space cannot be walked (its mmap_lock is held for write meanwhile).
    holder(
      k,
      () => mmapWriteLock(k.core, p.mm, 'test: holder'),
      () => q.fatalSignal !== 0,
      () => mmapWriteUnlock(k.core, p.mm, 'test: holder'),
    );
    k.sched.runUntil(() => p.mm.mmapLock.locked);
    const off = q.clone().spawn('swapoff', q.sys.swapoff(SWAP_DEVICE_PATH));
    k.sched.runUntil(() => off.state === 'blocked');
    expect(p.kill(q.pid, SIGKILL)).toBe(0);
    k.sched.runAll();
    expect(off.result).toBe(-EINTR);
    expect(meminfoKb(p, 'SwapTotal')).toBe(total);
    for (let i = 0; i < 4; i++) expect(p.readI32(a + i * PAGE_SIZE)).toBe(50 + i);
    expect(k.check()).toEqual([]);
  });

  it('try_to_unuse() takes a reference on a cache-only swap-cache folio before freeing its swap (swap_cache_get_folio(), folio_lock(), folio_free_swap(), folio_put())', () => {
    const k = machine();
    const p = k.spawn();
    const q = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeI32(a, 77);
    expect(pageout(k, p, a, PAGE_SIZE)).toBe(1);
    // A read fault swaps it in: the folio stays in the swap cache, its slot has no swap count.
    expect(p.readI32(a)).toBe(77);
    const head = k.core.map.head[ptePfn(k, p, a)];
    expect(k.core.map.flags[head] & PG_swapcache).toBeTruthy();
    // Another task holds the folio lock while munmap() zaps the PTE: free_swap_cache()'s trylock
    // fails, so the folio is left in the swap cache holding only the cache's reference.
    let release = false;
    holder(
      k,
      () => folioLockWait(k.core, head, 'test: holder'),
      () => release,
      () => folioUnlock(k.core, head),
    );
    k.sched.runUntil(() => (k.core.map.flags[head] & PG_locked) !== 0);
    expect(p.munmap(a, PAGE_SIZE)).toBe(0);
    release = true;
    k.sched.runAll();
    expect(k.core.map.flags[head] & PG_swapcache).toBeTruthy();
    expect(k.core.map.refcount[head]).toBe(1);
    expect(q.swapoff(SWAP_DEVICE_PATH)).toBe(0);
    expect(k.core.map.refcount[head]).toBe(0);
    expect(k.check()).toEqual([]);
  });
});
