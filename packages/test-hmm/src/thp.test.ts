import {
  HPAGE_PMD_ORDER,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
  splitFolioMeta,
  WIFSIGNALED,
  WTERMSIG,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import {
  fillInts,
  type HmmBuffer,
  hmmBuffer,
  hmmDmirrorCmd,
  hmmOpen,
  intsEqual,
  machine,
} from './test-util.js';
import {
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from './uapi.js';

function thpWindow(p: Parameters<typeof hmmBuffer>[0], huge: boolean): HmmBuffer {
  const buf = hmmBuffer(p, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, PMD_SIZE);
  buf.ptr = Math.ceil(buf.ptr / PMD_SIZE) * PMD_SIZE;
  expect(p.madvise(buf.ptr, PMD_SIZE, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)).toBe(0);
  return buf;
}

describe('device-private THP paths', () => {
  it('MIGRATE_TO_SYS of a whole device THP counts one unit (cpages 1)', () => {
    const { mod, p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = thpWindow(p, true);
    fillInts(p, buf.ptr, PMD_SIZE / 4, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 512)).toBe(0);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, 512)).toBe(0);
    expect(buf.cpages).toBe(1);
    expect(intsEqual(p, buf.ptr, PMD_SIZE / 4, (i) => i)).toBe(true);
    const d = mod.devices[0];
    expect(d.nrFreeFolios).toBe(128);
    expect(mod.check()).toEqual([]);
    expect(mod.checkFreeLists()).toEqual([]);
  });

  for (const huge of [false, true]) {
    for (const off of [0, PMD_SIZE / 4, PMD_SIZE / 2]) {
      it(`migrate_partial_unmap_fault (thp ${huge}, offset ${off})`, () => {
        const { k, mod, p } = machine();
        const fd = hmmOpen(p, 0);
        const buf = thpWindow(p, huge);
        const n = PMD_SIZE / 4;
        fillInts(p, buf.ptr, n, (i) => i);
        expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 512)).toBe(0);
        expect(buf.cpages).toBe(512);
        expect(p.munmap(buf.ptr + off, PMD_SIZE / 2)).toBe(0);
        const lo = off / 4;
        const hi = (off + PMD_SIZE / 2) / 4;
        expect(intsEqual(p, buf.ptr, lo, (i) => i)).toBe(true);
        expect(intsEqual(p, buf.ptr + hi * 4, n - hi, (i) => i + hi)).toBe(true);
        expect(mod.check()).toEqual([]);
        expect(k.core.warnings).toEqual([]);
        // Every device page came back or was freed with its mapping.
        expect(p.close(fd)).toBe(0);
        expect(mod.devices[0].calloc - mod.devices[0].cfree).toBe(0);
      });
    }
  }

  it('anon_write_child (migrate, thp): the child faults read-only device pages back', () => {
    const { k, p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = thpWindow(p, true);
    const n = PMD_SIZE / 4;
    fillInts(p, buf.ptr, n, (i) => i);
    fillInts(p, buf.mirror, n, (i) => -i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 512)).toBe(0);
    const c = k.task(p.fork())!;
    expect(intsEqual(c, buf.ptr, n, (i) => i)).toBe(true);
    const cfd = hmmOpen(c, 0);
    fillInts(c, buf.mirror, n, (i) => -i);
    expect(hmmDmirrorCmd(c, cfd, HMM_DMIRROR_WRITE, buf, 512)).toBe(0);
    expect([buf.cpages, buf.faults]).toEqual([512, 1]);
    expect(intsEqual(c, buf.ptr, n, (i) => -i)).toBe(true);
    expect(c.close(cfd)).toBe(0);
    c.exit(0);
    expect(intsEqual(p, buf.ptr, n, (i) => i)).toBe(true);
    expect(k.core.warnings).toEqual([]);
  });

  it('hmm_cow_in_device: parent writes after fork, then SNAPSHOT is all WRITE', () => {
    const { k, p } = machine();
    const fd = hmmOpen(p, 0);
    const buf = hmmBuffer(p, 4 * PAGE_SIZE);
    fillInts(p, buf.ptr, 4096, (i) => i);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, 4)).toBe(0);
    const pid = p.fork();
    fillInts(p, buf.ptr, 4096, (i) => i);
    expect(p.kill(pid, SIGKILL)).toBe(0);
    const st = { value: 0 };
    expect(p.waitpid(pid, st)).toBe(pid);
    expect(WIFSIGNALED(st.value)).toBe(true);
    expect(WTERMSIG(st.value)).toBe(SIGKILL);
    expect(hmmDmirrorCmd(p, fd, HMM_DMIRROR_SNAPSHOT, buf, 4)).toBe(0);
    expect(buf.cpages).toBe(4);
    expect([...p.readBytes(buf.mirror, 4)]).toEqual([2, 2, 2, 2].map(() => HMM_DMIRROR_PROT_WRITE));
    expect(k.core.warnings).toEqual([]);
  });
});

describe('dmirror_devmem_folio_split', () => {
  it('gives each split piece its backing subpage and resets the backing folio', () => {
    const { k, mod } = machine();
    const c = k.core;
    const m = c.map;
    const dev = mod.devices[0];
    const h = dev.allocPage(true);
    expect(h).toBeGreaterThan(0);
    const rhead = m.priv[h];
    expect(m.folioOrder(rhead)).toBe(HPAGE_PMD_ORDER);
    m.priv[rhead] = 77;
    m.mapping[h] = 5;
    const heads = splitFolioMeta(c, h, 0);
    for (const t of heads.slice(1)) {
      m.refcount[t] = 0;
      dev.folioSplit(h, t);
    }
    dev.folioSplit(h, -1);
    expect(m.folioOrder(rhead)).toBe(0);
    expect(m.refcount[rhead]).toBe(1);
    for (const t of [h + 1, h + 300, h + 511]) {
      const r = rhead + (t - h);
      expect(m.priv[t]).toBe(r);
      expect(m.priv[r]).toBe(77);
      expect(m.head[r]).toBe(r);
      expect(m.refcount[r]).toBe(1);
      expect(m.pgmap[t]).toBe(m.pgmap[h]);
      expect(m.mapping[t]).toBe(5);
    }
  });
});
