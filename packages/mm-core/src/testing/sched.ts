/**
 * Test-only helpers for the scheduler and lock tests (excluded from the build).
 */
import type { Scheduler } from '../sched/scheduler.js';
import type { KGen, Task } from '../sched/task.js';

/** Runs every task; returns the finding that stopped the run (or undefined). */
export function runCatching(s: Scheduler): unknown {
  try {
    s.runAll();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Spawns a task running `body` and steps the scheduler until `until` holds. */
export function spawnUntil(
  s: Scheduler,
  name: string,
  body: KGen<unknown>,
  until: (t: Task) => boolean,
): Task {
  const t = s.spawn(name, body);
  s.runUntil(() => until(t));
  return t;
}

/** True when the task sleeps or spins (blocked on a WaitCond). */
export const blocked = (t: Task) => t.state === 'blocked';
