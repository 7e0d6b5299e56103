import { describe, expect, it } from 'vitest';
import {
  EINTR,
  FOLL_WRITE,
  MAP_ANONYMOUS,
  MAP_POPULATE,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  SIGINT,
} from './constants.js';
import { getUserPages } from './mm/gup.js';
import type { Process } from './process.js';
import { fatalSignalPending } from './signal.js';
import { machine } from './testing/helpers.js';

/** Runs `body` as a task of p and delivers SIGINT at the `after`-th time it reaches `site`. */
function interruptAt(p: Process, site: string, after: number, body: Parameters<Process['run']>[1]): unknown {
  const sched = p.host.sched;
  let seen = 0;
  const hook = (s: string) => {
    if (s === site && ++seen === after) p.fatalSignal = SIGINT;
  };
  sched.hooks.add(hook);
  try {
    return sched.runSync(body, 'interrupted', p);
  } finally {
    sched.hooks.delete(hook);
  }
}

describe('fatal_signal_pending() check points', () => {
  it('MAP_POPULATE stops populating at the next page and the process exits on return', () => {
    const k = machine();
    const p = k.spawn();
    const len = 16 * PMD_SIZE;
    const faults = k.core.vmstat.pgfault;
    const r = interruptAt(
      p,
      '__mm_populate: next PMD',
      3,
      p.sys.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE),
    );
    expect(typeof r === 'number' && r > 0).toBe(true);
    // Three PMDs populated (read faults), not sixteen.
    expect(k.core.vmstat.pgfault - faults).toBeLessThanOrEqual(3 * (PMD_SIZE / PAGE_SIZE) + 1);
    expect(p.state).not.toBe('running');
    expect(p.status & 0x7f).toBe(SIGINT);
    expect(k.check()).toEqual([]);
  });

  it('a user store stops at the next interrupt after the signal arrives', () => {
    const k = machine();
    const p = k.spawn();
    const len = 8 * PMD_SIZE;
    const a = p.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const faults = k.core.vmstat.pgfault;
    const r = interruptAt(
      p,
      'user access: 2 MiB copied',
      2,
      p.sys.access(a, new Uint8Array(len).fill(7), 'write'),
    );
    expect(r).toBe(0);
    expect(k.core.vmstat.pgfault - faults).toBeLessThanOrEqual(2 * (PMD_SIZE / PAGE_SIZE));
    expect(p.state).not.toBe('running');
    expect(k.check()).toEqual([]);
  });

  it('__get_user_pages() returns -EINTR with a fatal signal pending and nothing pinned', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.fatalSignal = SIGINT;
    const got = k.sched.runSync(
      (function* () {
        expect(fatalSignalPending(k.core)).toBe(true);
        return yield* getUserPages(k.core, p.mm, a, 4, FOLL_WRITE);
      })(),
      'gup',
      p,
    );
    expect(got).toBe(-EINTR);
    p.fatalSignal = 0;
    expect(fatalSignalPending(k.core)).toBe(false);
  });
});
