import { describe, expect, it } from 'vitest';
import { machine } from '../testing/helpers.js';
import { CooperativeStrategy, RandomStrategy } from './strategy.js';
import type { KGen } from './task.js';

describe('Scheduler.needResched() and watchdogs', () => {
  it('is false for a lone task under the cooperative strategy, true when another task, a hook or another strategy could use the point', () => {
    const k = machine();
    const s = k.sched;
    const seen: boolean[] = [];
    function* probe(): KGen {
      seen.push(s.needResched());
      yield 'probe';
    }
    s.runSync(probe(), 'probe');
    const other = s.spawn(
      'other',
      (function* (): KGen {
        yield 'other';
      })(),
    );
    s.runSync(probe(), 'probe');
    s.join(other);
    const hook = () => {};
    s.hooks.add(hook);
    s.runSync(probe(), 'probe');
    s.hooks.delete(hook);
    let watched = 0;
    const dog = () => {
      watched++;
    };
    s.watchdogs.add(dog);
    s.runSync(probe(), 'probe');
    s.watchdogs.delete(dog);
    s.setStrategy(new RandomStrategy(1, 0.5));
    s.runSync(probe(), 'probe');
    s.setStrategy(new CooperativeStrategy());
    s.runSync(probe(), 'probe');
    expect(seen).toEqual([false, true, true, false, true, false]);
    // A watchdog runs at the points that are taken.
    expect(watched).toBe(1);
  });
});
