import {
  ENOENT,
  KernelBug,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PAGE_SIZE,
  PM_PRESENT,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  pagemapEntry,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import {
  dmirrorOf,
  fillInts,
  hmmBuffer,
  hmmDmirrorCmd,
  hmmOpen,
  intsEqual,
  machine,
  thpMachine,
} from './test-util.js';
import {
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_RELEASE,
} from './uapi.js';

const NPAGES = PMD_SIZE / PAGE_SIZE;

/**
 * A coherent dmirror (minor 2) whose only chunk holds large folios and no small page: RELEASE
 * removes the module's initial chunk, the next THP migration creates one of large folios over the
 * same special-purpose range (a second chunk cannot be added there), and a MAP_FIXED mmap over
 * the range frees the device THP. Then FAIL_ALLOC makes the next large allocation fail, and a
 * migration of the now empty PMD-sized hole falls back to small pages.
 */
function noSmallPages(fixes: string[]) {
  const m = thpMachine(fixes, 2, true, (i) => i ^ 0x5a5a);
  const { p, fd, buf } = m;
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_RELEASE, buf, 1)).toBe(0);
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
  expect(buf.cpages).toBe(NPAGES);
  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
  expect(p.mmap(buf.ptr, PMD_SIZE, PROT_READ | PROT_WRITE, flags)).toBe(buf.ptr);
  expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_FLAGS, buf, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
  return m;
}

describe('finding K8: the small-page fallback of dmirror_migrate_alloc_and_copy()', () => {
  it('v6.19: with no free small device page and no room for a chunk, BACKING_PAGE(NULL) oopses', () => {
    const { p, fd, buf } = noSmallPages([]);
    let err: unknown;
    try {
      hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelBug);
    expect((err as KernelBug).fn).toBe('dmirror_migrate_alloc_and_copy');
    expect((err as Error).message).toMatch(/NULL pointer dereference/);
  });

  it('fix K8: the unit is not migrated (the hole stays a hole) and nothing stays allocated on the device', () => {
    const { k, mod, p, fd, buf } = noSmallPages(['K8']);
    const dev = mod.devices[2];
    const free = dev.nrFreeFolios;
    // dmirror_migrate_to_device() reads the range back from the mirror: -ENOENT at the first
    // page that did not migrate.
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(-ENOENT);
    expect(pagemapEntry(k.core, p.mm, buf.ptr) & PM_PRESENT).toBeFalsy();
    expect(dev.nrFreeFolios).toBe(free);
    expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, () => 0)).toBe(true);
    expect(mod.check()).toEqual([]);
    expect(k.check()).toEqual([]);
  });
});

describe('HMM_DMIRROR_FLAG_FAIL_ALLOC and a CPU fault on a small device page', () => {
  it('dmirror_devmem_fault() returns VM_FAULT_OOM once; pagefault_out_of_memory() kills nothing and the retried fault migrates the page back', () => {
    const { k, mod, p } = machine(false);
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 4 * PAGE_SIZE);
    fillInts(p, buf.ptr, PAGE_SIZE, (i) => i + 7);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 4)).toBe(0);
    expect(buf.cpages).toBe(4);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_FLAGS, buf, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
    const kills = k.core.vmstat.oom_kill;
    // The first fault's small-page allocation fails (the flag, which clears itself); the CPU
    // retries the access and the second fault succeeds (the user access itself, no reclaim).
    const got = new Uint8Array(4 * PAGE_SIZE);
    expect(k.sched.runSync(p.sys.access(buf.ptr, got, 'read'), 'load')).toBe(0);
    const ints = new Int32Array(got.buffer);
    expect(ints.every((v, i) => v === i + 7)).toBe(true);
    expect(p.state).toBe('running');
    expect(k.core.vmstat.oom_kill).toBe(kills);
    expect(dmirrorOf(p, fd).flags).toBe(0n);
    expect(mod.check()).toEqual([]);
    expect(k.check()).toEqual([]);
  });
});
