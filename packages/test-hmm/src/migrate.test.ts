import {
  EINVAL,
  ENOENT,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_SHARED,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import {
  dmirrorOf,
  fillInts,
  type HmmBuffer,
  hmmBuffer,
  hmmDmirrorCmd,
  hmmOpen,
  intsEqual,
  machine,
} from './test-util.js';
import {
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_NONE,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
} from './uapi.js';

const SIZE = 4 << 20;
const NPAGES = SIZE / PAGE_SIZE;
const NINTS = SIZE / 4;

/** The THP idiom: 2 x PMD mapping, window aligned up, MADV_HUGEPAGE. */
function thpBuffer(
  p: Parameters<typeof hmmBuffer>[0],
  prot = PROT_READ | PROT_WRITE,
  mirror = PMD_SIZE,
): HmmBuffer {
  const buf = hmmBuffer(p, 2 * PMD_SIZE, prot, mirror);
  buf.ptr = Math.ceil(buf.ptr / PMD_SIZE) * PMD_SIZE;
  expect(p.madvise(buf.ptr, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
  return buf;
}

for (const dev of [0, 2]) {
  const coherent = dev >= 2;
  describe(`migration (${coherent ? 'coherent' : 'private'} device ${dev})`, () => {
    it('migrate / migrate_fault: data on the device, then back through CPU faults', () => {
      const { k, mod, p } = machine();
      const fd = hmmOpen(p, dev);
      const buf = hmmBuffer(p, SIZE);
      fillInts(p, buf.ptr, NINTS, (i) => i);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
      expect(buf.cpages).toBe(NPAGES);
      expect(intsEqual(p, buf.mirror, NINTS, (i) => i)).toBe(true);
      expect(mod.devices[dev].calloc).toBe(NPAGES);
      expect(k.core.pgmaps[mod.devices[dev].chunks[0].pagemap.id]?.refs).toBe(NPAGES);
      // The CPU reads the first half (private: faults those pages back).
      expect(intsEqual(p, buf.ptr, NINTS / 2, (i) => i)).toBe(true);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
      expect(buf.cpages).toBe(NPAGES);
      expect(intsEqual(p, buf.mirror, NINTS, (i) => i)).toBe(true);
      if (coherent) {
        expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, NPAGES)).toBe(0);
        expect(buf.cpages).toBe(NPAGES);
      }
      expect(intsEqual(p, buf.ptr, NINTS, (i) => i)).toBe(true);
      expect(mod.check()).toEqual([]);
      expect(mod.checkFreeLists()).toEqual([]);
      expect(p.close(fd)).toBe(0);
      expect(k.core.warnings).toEqual([]);
    });

    it('migrate_release: RELEASE evicts every chunk back to system memory', () => {
      const { k, mod, p } = machine();
      const fd = hmmOpen(p, dev);
      const buf = hmmBuffer(p, SIZE);
      fillInts(p, buf.ptr, NINTS, (i) => i);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(0);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_RELEASE, buf, NPAGES)).toBe(0);
      expect(mod.devices[dev].chunks.length).toBe(0);
      // Eviction invalidated the mirror (MMU_NOTIFY_CLEAR from try_to_migrate): READ refaults.
      fillInts(p, buf.mirror, NINTS, () => -1);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, NPAGES)).toBe(0);
      expect([buf.cpages, buf.faults]).toEqual([NPAGES, 1]);
      expect(intsEqual(p, buf.mirror, NINTS, (i) => i)).toBe(true);
      expect(intsEqual(p, buf.ptr, NINTS / 2, (i) => i)).toBe(true);
      expect(mod.check()).toEqual([]);
      expect(k.core.warnings).toEqual([]);
    });

    it('close evicts the device memory of every process', () => {
      const { mod, p } = machine();
      const fd = hmmOpen(p, dev);
      const buf = hmmBuffer(p, 64 * PAGE_SIZE);
      fillInts(p, buf.ptr, 64 * 1024, (i) => i * 3);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 64)).toBe(0);
      const d = mod.devices[dev];
      expect(d.calloc - d.cfree).toBe(64);
      expect(p.close(fd)).toBe(0);
      expect(d.calloc - d.cfree).toBe(0);
      expect(d.nrFreePages).toBe(65536);
      const fd2 = hmmOpen(p, dev);
      const snap = { ...buf, mirror: p.malloc(64) };
      expect(hmmDmirrorCmd(p, fd2, HMM_DMIRROR_SNAPSHOT, snap, 64)).toBe(0);
      expect(p.readBytes(snap.mirror, 64).every((b) => b === HMM_DMIRROR_PROT_WRITE)).toBe(true);
      expect(intsEqual(p, buf.ptr, 64 * 1024, (i) => i * 3)).toBe(true);
    });

    it('migrate_shared: shared anonymous memory is not migrated (-ENOENT)', () => {
      const { p } = machine();
      const fd = hmmOpen(p, dev);
      const ptr = p.mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
      const buf = { ptr, mirror: p.malloc(SIZE), size: SIZE, cpages: 0, faults: 0 };
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, NPAGES)).toBe(-ENOENT);
    });

    it('migrate_anon_huge_empty: a compound hole becomes a device folio of zeros', () => {
      const { p } = machine();
      const fd = hmmOpen(p, dev);
      const buf = thpBuffer(p, PROT_READ);
      p.writeBytes(buf.mirror, new Uint8Array(PMD_SIZE).fill(0xff));
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 512)).toBe(0);
      expect(buf.cpages).toBe(512);
      expect(intsEqual(p, buf.mirror, PMD_SIZE / 4, () => 0)).toBe(true);
    });

    it('migrate_anon_huge_fault: a THP migrates as a unit (SNAPSHOT 0x26 for private)', () => {
      const { k, mod, p } = machine();
      const fd = hmmOpen(p, dev);
      const buf = thpBuffer(p);
      fillInts(p, buf.ptr, PMD_SIZE / 4, (i) => i);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 512)).toBe(0);
      expect(buf.cpages).toBe(512);
      expect(intsEqual(p, buf.mirror, PMD_SIZE / 4, (i) => i)).toBe(true);
      const d = mod.devices[dev];
      if (!coherent) {
        // A large chunk was created for the first large request.
        expect(d.chunks.length).toBe(2);
        expect(d.nrFreeFolios).toBe(127);
        const snap = { ...buf, mirror: p.malloc(512) };
        expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT, snap, 512)).toBe(0);
        const want = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD;
        expect(p.readBytes(snap.mirror, 512).every((b) => b === want)).toBe(true);
      } else {
        // The coherent device's second chunk conflicts with its SPM range: small-page fallback.
        expect(d.chunks.length).toBe(1);
        expect(k.core.warnings.some((w) => /Conflicting mapping/.test(w.message))).toBe(true);
      }
      expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, (i) => i)).toBe(true);
      if (coherent) {
        expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, 512)).toBe(0);
      }
      expect(d.calloc - d.cfree).toBe(0);
      expect(mod.check()).toEqual([]);
    });

    it('migrate_anon_huge_err: FAIL_ALLOC falls back to small pages both ways', () => {
      const { mod, p } = machine();
      const fd = hmmOpen(p, dev);
      const buf = thpBuffer(p, PROT_READ | PROT_WRITE, 2 * PMD_SIZE);
      fillInts(p, buf.ptr, PMD_SIZE / 4, (i) => i);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_FLAGS, buf, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 512)).toBe(0);
      expect(buf.cpages).toBe(512);
      expect(intsEqual(p, buf.mirror, PMD_SIZE / 4, (i) => i)).toBe(true);
      const dm = dmirrorOf(p, fd);
      expect(dm.flags).toBe(0n);
      expect(p.readI32(buf.ptr + 2048 * 4)).toBe(2048);
      if (coherent) expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, 512)).toBe(0);
      // Second leg: a whole THP on the device, split on the way back.
      const buf2 = thpBuffer(p, PROT_READ | PROT_WRITE, PMD_SIZE);
      fillInts(p, buf2.ptr, PMD_SIZE / 4, (i) => i);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf2, 512)).toBe(0);
      expect(buf2.cpages).toBe(512);
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_FLAGS, buf2, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
      if (coherent) {
        // The coherent device never gets a large chunk (its SPM range is taken), so the THP
        // went to small device pages; FAIL_ALLOC on an order-0 slot is VM_FAULT_OOM -> -ENOMEM.
        expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf2, 512)).toBe(-12);
        expect(dm.flags).toBe(0n);
      }
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf2, 512)).toBe(0);
      expect(buf2.cpages).toBe(512);
      expect(p.readI32(buf2.ptr + 2048 * 4)).toBe(2048);
      expect(intsEqual(p, buf2.ptr, PMD_SIZE / 4, (i) => i)).toBe(true);
      expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, (i) => i)).toBe(true);
      expect(mod.check()).toEqual([]);
      expect(mod.checkFreeLists()).toEqual([]);
    });
  });
}

describe('hmm2 (two devices)', () => {
  it('migrate_mixed: -EINVAL for PROT_NONE and holes, cpages = 4, -ENOENT for the other device', () => {
    const { p } = machine();
    const fd0 = hmmOpen(p, 0);
    const fd1 = hmmOpen(p, 1);
    const buf = hmmBuffer(p, 6 * PAGE_SIZE, PROT_NONE);
    const pg = (i: number) => buf.ptr + i * PAGE_SIZE;
    expect(hmmDmirrorCmd(p, fd1, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 6)).toBe(-EINVAL);
    expect(p.munmap(pg(1), PAGE_SIZE)).toBe(0);
    expect(hmmDmirrorCmd(p, fd1, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 3)).toBe(-EINVAL);
    expect(p.mprotect(pg(2), PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.readI32(pg(2))).toBe(0);
    expect(p.mprotect(pg(3), PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    p.writeI32(pg(3), 3);
    expect(p.mprotect(pg(3), PAGE_SIZE, PROT_READ)).toBe(0);
    expect(p.mprotect(pg(4), 2 * PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
    p.writeI32(pg(4), 3);
    p.writeI32(pg(5), 3);
    const b2 = { ...buf, ptr: pg(2) };
    expect(hmmDmirrorCmd(p, fd1, HMM_DMIRROR_MIGRATE_TO_DEV, b2, 4)).toBe(0);
    expect(b2.cpages).toBe(4);
    const b5 = { ...buf, ptr: pg(5) };
    expect(hmmDmirrorCmd(p, fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b5, 1)).toBe(-ENOENT);
  });

  for (const [d0, d1] of [
    [0, 1],
    [2, 3],
  ]) {
    it(`snapshot with pages on both devices (${d0}, ${d1})`, () => {
      const { p } = machine();
      const fd0 = hmmOpen(p, d0);
      const fd1 = hmmOpen(p, d1);
      const buf = hmmBuffer(p, 7 * PAGE_SIZE, PROT_NONE, 7);
      const pg = (i: number) => buf.ptr + i * PAGE_SIZE;
      expect(p.munmap(pg(1), PAGE_SIZE)).toBe(0);
      expect(p.mprotect(pg(2), PAGE_SIZE, PROT_READ)).toBe(0);
      expect(p.readI32(pg(2))).toBe(0);
      expect(p.mprotect(pg(3), PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
      p.writeI32(pg(3), 3);
      expect(p.mprotect(pg(3), PAGE_SIZE, PROT_READ)).toBe(0);
      expect(p.mprotect(pg(4), 3 * PAGE_SIZE, PROT_READ | PROT_WRITE)).toBe(0);
      p.writeI32(pg(4), 3);
      const b5 = { ...buf, ptr: pg(5) };
      expect(hmmDmirrorCmd(p, fd0, HMM_DMIRROR_MIGRATE_TO_DEV, b5, 1)).toBe(0);
      expect(b5.cpages).toBe(1);
      const b6 = { ...buf, ptr: pg(6) };
      expect(hmmDmirrorCmd(p, fd1, HMM_DMIRROR_MIGRATE_TO_DEV, b6, 1)).toBe(0);
      expect(b6.cpages).toBe(1);
      expect(hmmDmirrorCmd(p, fd0, HMM_DMIRROR_SNAPSHOT, buf, 7)).toBe(0);
      expect(buf.cpages).toBe(7);
      const W = HMM_DMIRROR_PROT_WRITE;
      expect([...p.readBytes(buf.mirror, 7)]).toEqual([
        HMM_DMIRROR_PROT_ERROR,
        HMM_DMIRROR_PROT_ERROR,
        HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ,
        HMM_DMIRROR_PROT_READ,
        W,
        d0 < 2 ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | W : HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | W,
        d0 < 2 ? HMM_DMIRROR_PROT_NONE : HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | W,
      ]);
    });
  }

  it('double_map: device 0 faults the pages back from device 1 with one fault pass', () => {
    const { p } = machine();
    const fd0 = hmmOpen(p, 0);
    const fd1 = hmmOpen(p, 1);
    const buf = hmmBuffer(p, 6 * PAGE_SIZE);
    fillInts(p, buf.ptr, 6 * 1024, (i) => i);
    expect(p.mprotect(buf.ptr, 6 * PAGE_SIZE, PROT_READ)).toBe(0);
    for (const fd of [fd0, fd1]) {
      expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 6)).toBe(0);
      expect([buf.cpages, buf.faults]).toEqual([6, 1]);
    }
    expect(hmmDmirrorCmd(p, fd1, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 6)).toBe(0);
    expect(buf.cpages).toBe(6);
    expect(hmmDmirrorCmd(p, fd0, HMM_DMIRROR_READ, buf, 6)).toBe(0);
    expect([buf.cpages, buf.faults]).toEqual([6, 1]);
    expect(intsEqual(p, buf.mirror, 6 * 1024, (i) => i)).toBe(true);
  });
});
