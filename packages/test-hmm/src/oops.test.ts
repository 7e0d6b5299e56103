import { KernelBug, MADV_HUGEPAGE, ModelBug, PAGE_SIZE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { hmmBuffer, hmmDmirrorCmd, hmmOpen, machine } from './test-util.js';
import { HMM_DMIRROR_MIGRATE_TO_DEV } from './uapi.js';

describe('dmirror_migrate_alloc_and_copy() small-page fallback', () => {
  it('oopses (a modelled kernel failure, not a ModelBug) when system memory runs out', () => {
    const { k, p } = machine(false);
    // The ioctl does not return normally, so the post-syscall checker must not run on the way out.
    k.checkInvariants = false;
    const fd = hmmOpen(p, 0);
    // As much unpopulated THP-advised memory as the machine has RAM: each collected hole gets an
    // order-9 backing folio until the buddy allocator runs dry, then the order-0 fallback fails.
    const size = 512 << 20;
    const b = hmmBuffer(p, size, undefined, PAGE_SIZE);
    expect(p.madvise(b.ptr, size, MADV_HUGEPAGE)).toBe(0);
    let caught: unknown;
    try {
      hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, size / PAGE_SIZE);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KernelBug);
    expect(caught).not.toBeInstanceOf(ModelBug);
    const bug = caught as KernelBug;
    expect(bug.message).toBe(
      'kernel oops (modelled): NULL pointer dereference in dmirror_migrate_alloc_and_copy ' +
        '(lib/test_hmm.c: the small-page fallback does not check the allocation)',
    );
    expect(bug.consoleLines()).toEqual([
      'BUG: kernel NULL pointer dereference, address: 0000000000000000',
      'Oops: 0000 [#1] SMP',
      'RIP: 0010:dmirror_migrate_alloc_and_copy [test_hmm]',
    ]);
    // The machine is left as the oops left it: mid-migration, for inspection.
    expect(k.core.migrationsInFlight).toBe(1);
    expect(k.core.zone.nrFree).toBeLessThan(512);
  });
});
