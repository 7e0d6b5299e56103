import { type KGen, oomReapTask, oomReapTaskMm, PAGE_SIZE, PMD_SIZE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import type { Dmirror } from './dmirror.js';
import { hmmDmirrorCmd, thpMachine } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV } from './uapi.js';

const NPAGES = PMD_SIZE / PAGE_SIZE;
const fill = (i: number) => i ^ 0x5a5a;

describe('the OOM reaper against a process with a dmirror file (dmirror_interval_invalidate(), non-blockable)', () => {
  it("reaps the victim's device THP: the PMD is zapped and the device pages go back to the driver", () => {
    const { k, mod, p, fd, buf } = thpMachine([], 0, false, fill);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
    expect(buf.cpages).toBe(NPAGES);
    const mdevice = mod.devices[0];
    const freed = mdevice.cfree;
    const r = k.core.sched.runSync(oomReapTask(k.core, p.mm), 'oom_reaper');
    expect(r).toEqual({ attempts: 1, reaped: true });
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    expect(mdevice.cfree - freed).toBe(NPAGES);
    expect(k.check()).toEqual([]);
  });

  it('while the mirror holds its mutex the reaper is refused (mutex_trylock() fails) and nothing is zapped', () => {
    const { k, p, fd, buf } = thpMachine([], 0, false, fill);
    const dm = p.fds.get(fd)?.privateData as Dmirror;
    const sched = k.core.sched;
    const attempt = sched.runSync(
      (function* (): KGen<boolean> {
        yield* dm.mutex.lock(sched, 'test: a dmirror ioctl');
        try {
          return yield* oomReapTaskMm(k.core, p.mm);
        } finally {
          dm.mutex.unlock(sched, 'test: a dmirror ioctl');
        }
      })(),
      'oom_reaper',
    );
    expect(attempt).toBe(false);
    expect(p.mm.activeInvalidations).toBe(0);
    expect(p.mm.rss.MM_ANONPAGES).toBe(NPAGES);
    expect(p.readI32(buf.ptr + 4)).toBe(fill(1));
    // The next attempt, with the mutex free, goes through.
    expect(sched.runSync(oomReapTaskMm(k.core, p.mm), 'oom_reaper')).toBe(true);
    expect(p.mm.rss.MM_ANONPAGES).toBe(0);
    expect(k.check()).toEqual([]);
  });
});
