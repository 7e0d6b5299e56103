import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE } from '../constants.js';
import { faultIn, walkPfn } from '../cpu.js';
import type { Process } from '../process.js';
import type { KGen } from '../sched/task.js';
import { machine } from '../testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** Runs faultIn() as a task of p; returns what faultIn() handed back first and the access's pfn. */
function fault(p: Process, addr: number, write: boolean): { first: string; pfn: number } {
  let first = '';
  const pfn = p.run(
    'fault',
    (function* (): KGen<number> {
      const r = faultIn(p.host.core, p.mm, addr, write);
      first = typeof r;
      return typeof r === 'number' ? r : yield* r;
    })(),
  ) as number;
  return { first, pfn };
}

describe('KMaybe page faults: no generator unless the fault schedules', () => {
  it('a write fault and a COW fault of a lone task return the pfn itself', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const w = fault(p, a, true);
    expect(w.first).toBe('number');
    expect(w.pfn).toBe(walkPfn(k.core, p.mm, a, true));
    const c = k.task(p.fork());
    expect(c).toBeDefined();
    const cow = fault(p, a, true);
    expect(cow.first).toBe('number');
    expect(cow.pfn).not.toBe(w.pfn);
    expect(k.core.vmstat.cow_faults).toBeGreaterThan(0);
    expect(k.check()).toEqual([]);
  });

  it('a fault whose preemption point switches returns the generator, which goes on from that point', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    const sites: string[] = [];
    // A hook makes every preemption point go through the scheduler loop (a switch point).
    const hook = (site: string) => {
      sites.push(site);
    };
    k.sched.hooks.add(hook);
    try {
      const w = fault(p, a, true);
      expect(w.first).toBe('object');
      expect(w.pfn).toBe(walkPfn(k.core, p.mm, a, true));
    } finally {
      k.sched.hooks.delete(hook);
    }
    expect(sites).toContain('do_anonymous_page: page allocated, PTE lock not taken');
    // The mmap_lock was held across the switch and released at the end of the fault.
    expect([...p.mm.mmapLock.readers.values()].filter((n) => n > 0)).toEqual([]);
    expect(p.mm.mmapLock.writer).toBeNull();
    expect(k.check()).toEqual([]);
  });
});
