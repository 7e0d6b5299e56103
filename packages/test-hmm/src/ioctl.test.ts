import { EFAULT, EINVAL, ENOTTY, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { Dmirror } from './dmirror.js';
import { dmirrorOf, hmmBuffer, hmmDmirrorCmd, hmmOpen, machine } from './test-util.js';
import {
  CMD_ADDR,
  CMD_CPAGES,
  CMD_FAULTS,
  CMD_NPAGES,
  CMD_PTR,
  decodeCmd,
  encodeCmd,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_CMD_SIZE,
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from './uapi.js';

describe('uapi', () => {
  it('has the kernel ioctl numbers and struct layout', () => {
    const ioc = (nr: number) => ((3 << 30) | (40 << 16) | (0x48 << 8) | nr) >>> 0;
    expect(HMM_DMIRROR_READ).toBe(ioc(0));
    expect(HMM_DMIRROR_WRITE).toBe(ioc(1));
    expect(HMM_DMIRROR_MIGRATE_TO_DEV).toBe(0xc0284802);
    expect(HMM_DMIRROR_FLAGS).toBe(ioc(8));
    expect([CMD_ADDR, CMD_PTR, CMD_NPAGES, CMD_CPAGES, CMD_FAULTS, HMM_DMIRROR_CMD_SIZE]).toEqual([
      0, 8, 16, 24, 32, 40,
    ]);
    const c = decodeCmd(encodeCmd({ addr: 0x1000, ptr: 2n ** 63n, npages: -1, cpages: 7, faults: 1 }));
    expect(c).toEqual({ addr: 0x1000n, ptr: 2n ** 63n, npages: 2n ** 64n - 1n, cpages: 7n, faults: 1n });
  });
});

describe('module init', () => {
  it('creates two private and two coherent devices, each with one small chunk', () => {
    const { k, mod } = machine();
    expect(mod.devices.map((d) => d.path)).toEqual([0, 1, 2, 3].map((n) => `/dev/hmm_dmirror${n}`));
    expect(mod.devices.map((d) => d.isPrivate)).toEqual([true, true, false, false]);
    for (const d of mod.devices) {
      expect(d.chunks.length).toBe(1);
      expect(d.nrFreePages).toBe(65536);
      expect(d.nrFreeFolios).toBe(0);
      expect(d.calloc).toBe(0);
      // LIFO list built in ascending pfn order: the head is the chunk's last page.
      expect(d.freePages).toBe(d.chunks[0].pagemap.endPfn - 1);
    }
    // spm_addr_dev0/1 are used the other way round.
    expect(mod.devices[2].chunks[0].pagemap.startPfn).toBe(mod.spmPfns[1]);
    expect(mod.devices[3].chunks[0].pagemap.startPfn).toBe(mod.spmPfns[0]);
    expect(k.core.warnings).toEqual([]);
    expect(mod.checkFreeLists()).toEqual([]);
    expect(k.check()).toEqual([]);
  });

  it('without spm addresses only the private devices exist', () => {
    const { mod, p } = machine(false);
    expect(mod.devices.length).toBe(2);
    expect(hmmOpen(p, 2)).toBeLessThan(0);
    expect(hmmOpen(p, 0)).toBeGreaterThanOrEqual(0);
  });
});

describe('open / close', () => {
  it('gives each open its own mirror and notifier on the opener mm', () => {
    const { mod, p } = machine();
    const fd0 = hmmOpen(p, 0);
    const fd1 = hmmOpen(p, 0);
    expect(mod.mirrors.size).toBe(2);
    const dms = [...mod.mirrors.values()];
    expect(dms[0]).toBeInstanceOf(Dmirror);
    expect(dms[0].mm).toBe(p.mm);
    expect(p.mm.notifiers.has(dms[0].notifier)).toBe(true);
    expect(p.close(fd0)).toBe(0);
    expect(p.mm.notifiers.has(dms[0].notifier)).toBe(false);
    expect(p.close(fd1)).toBe(0);
    expect(mod.mirrors.size).toBe(0);
  });
});

describe('ioctl entry checks', () => {
  it('validates addr, npages, the command and the user pointer like dmirror_fops_unlocked_ioctl()', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 4 * PAGE_SIZE);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, { ...buf, ptr: buf.ptr + 1 }, 1)).toBe(-EINVAL);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 0)).toBe(-EINVAL);
    // addr + (npages << PAGE_SHIFT) wraps past 2^64.
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 2n ** 52n - 1n)).toBe(-EINVAL);
    expect(hmmDmirrorCmd(p, fd, 0xc0284809, buf, 1)).toBe(-EINVAL);
    expect(p.ioctl(fd, HMM_DMIRROR_READ, 0x10)).toBe(-EFAULT);
    // FLAGS with a zero flag word is rejected by the generic npages check (quirk).
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_FLAGS, buf, 0)).toBe(-EINVAL);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_FLAGS, buf, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
    expect(dmirrorOf(p, fd).flags).toBe(1n);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_CHECK_EXCLUSIVE, buf, 4)).toBe(0);
    expect(p.ioctl(99, HMM_DMIRROR_READ, buf.mirror)).toBeLessThan(0);
    const tmp = p.open('/tmp', 0o20200002);
    expect(p.ioctl(tmp, HMM_DMIRROR_READ, buf.mirror)).toBe(-ENOTTY);
  });

  it('does not copy the struct back on failure', () => {
    const { p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 4 * PAGE_SIZE, 0);
    buf.cpages = -1;
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_READ, buf, 4)).toBe(-EFAULT);
    expect(buf.cpages).toBe(-1);
  });
});

describe('device file mmap and RELEASE without device pages', () => {
  it('maps zeroed pages (mixedmap) that SNAPSHOT reports READ', () => {
    const { k, p } = machine();
    const fd = hmmOpen(p, 0);
    const ptr = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    expect(ptr).toBeGreaterThan(0);
    expect(p.readI32(ptr)).toBe(0);
    const buf = { ptr, mirror: p.malloc(1), size: PAGE_SIZE, cpages: 0, faults: 0 };
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT, buf, 1)).toBe(0);
    expect(buf.cpages).toBe(1);
    expect(p.readU8(buf.mirror)).toBe(HMM_DMIRROR_PROT_READ);
    expect(p.munmap(ptr, PAGE_SIZE)).toBe(0);
    expect(k.core.warnings).toEqual([]);
  });

  it('RELEASE drops every chunk; the next allocation creates a new one', () => {
    const { k, mod, p } = machine();
    const fd = hmmOpen(p, 0);
    const dev = mod.devices[0];
    const old = dev.chunks[0].pagemap;
    const buf = hmmBuffer(p, PAGE_SIZE);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_RELEASE, buf, 1)).toBe(0);
    expect(dev.chunks.length).toBe(0);
    expect(dev.nrFreePages).toBe(0);
    expect(k.core.pgmaps[old.id]).toBeUndefined();
    expect(k.core.map.valid(old.startPfn)).toBe(false);
    const page = dev.allocPage(false);
    expect(page).toBeGreaterThan(0);
    expect(dev.chunks.length).toBe(1);
    expect(dev.calloc).toBe(1);
    expect(mod.check()).toEqual([]);
  });
});

describe('copy_{from,to}_user uses the calling process', () => {
  it('a forked child using the inherited fd reads the struct from its own memory', () => {
    const { k, p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, PAGE_SIZE);
    p.writeI32(buf.ptr, 7);
    const c = k.task(p.fork())!;
    // The parent's buffer changes after fork; the child's COW copy keeps 7. The device mirrors
    // the opener's (parent's) mm, but the cmd and data buffers are the child's.
    p.writeI32(buf.ptr, 9);
    expect(hmmDmirrorCmd(c, fd, HMM_DMIRROR_READ, buf, 1)).toBe(0);
    expect(buf.cpages).toBe(1);
    expect(c.readI32(buf.mirror)).toBe(9);
    expect(p.readI32(buf.mirror)).not.toBe(9);
  });
});
