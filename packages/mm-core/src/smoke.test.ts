import { describe, expect, it } from 'vitest';
import { Kernel, MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from './index.js';

describe('smoke', () => {
  it('maps, writes, reads, forks, exits', () => {
    const k = new Kernel();
    const init = k.spawn(); // global init (pid 1) stays idle: its exit would panic (do_exit())
    const p = k.spawn();
    const a = p.mmap(0, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(a).toBeGreaterThan(0);
    expect(p.madvise(a, 4 << 20, MADV_HUGEPAGE)).toBe(0);
    const data = new Int32Array(1 << 20).map((_, i) => i);
    p.writeInts(a, data);
    const back = p.readInts(a, 1 << 20);
    expect(back.every((v, i) => v === data[i])).toBe(true);
    expect(k.core.vmstat.thp_fault_alloc).toBe(2);
    const pid = p.fork();
    const c = k.task(pid)!;
    expect(c.readI32(a + 400)).toBe(100);
    c.writeI32(a + 400, -1);
    expect(p.readI32(a + 400)).toBe(100);
    expect(c.readI32(a + 400)).toBe(-1);
    c.exit(0);
    const st = { value: -1 };
    expect(p.waitpid(pid, st)).toBe(pid);
    expect(st.value).toBe(0);
    expect(p.munmap(a + 4096, 8192)).toBe(0);
    expect(p.readI32(a)).toBe(0);
    p.exit(0);
    // Left in use: the zero page, init's page-table root and the hugetlb pool (4 x 512 pages).
    expect(init.mm.pgd).toBeGreaterThanOrEqual(0);
    expect(k.core.zone.nrFree + 1 + 1 + 4 * 512).toBe(k.core.ramPages);
  });
});
