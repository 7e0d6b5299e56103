import { describe, expect, it } from 'vitest';
import {
  ECHILD,
  EINVAL,
  ESRCH,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CREAT,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  SIGKILL,
  SIGSEGV,
  SIGTERM,
} from './constants.js';
import { SignalDelivered } from './errors.js';
import { WEXITSTATUS, WIFEXITED, WIFSIGNALED, WTERMSIG } from './process.js';
import { machine } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

describe('exit, waitpid, kill', () => {
  it('exit(code) is reported by waitpid as WIFEXITED/WEXITSTATUS', () => {
    const k = machine();
    const p = k.spawn();
    const c = k.task(p.fork())!;
    expect(p.waitpid(c.pid)).toBe(0); // still running
    c.exit(42);
    expect(c.state).toBe('zombie');
    const st = { value: -1 };
    expect(p.waitpid(c.pid, st)).toBe(c.pid);
    expect(WIFEXITED(st.value)).toBe(true);
    expect(WEXITSTATUS(st.value)).toBe(42);
    expect(c.state).toBe('reaped');
    expect(k.task(c.pid)).toBeUndefined();
    expect(p.waitpid(c.pid, st)).toBe(-ECHILD);
    expect(k.check()).toEqual([]);
  });

  it('kill delivers a fatal signal: WIFSIGNALED/WTERMSIG; -ESRCH and -EINVAL otherwise', () => {
    const k = machine();
    const p = k.spawn();
    const c = k.task(p.fork())!;
    const d = k.task(p.fork())!;
    expect(p.kill(c.pid, 0)).toBe(0);
    expect(p.kill(c.pid, 99)).toBe(-EINVAL);
    expect(p.kill(c.pid, SIGKILL)).toBe(0);
    expect(p.kill(c.pid, SIGKILL)).toBe(-ESRCH);
    expect(p.kill(12345, SIGTERM)).toBe(-ESRCH);
    expect(p.kill(d.pid, SIGTERM)).toBe(0);
    const st = { value: 0 };
    expect(p.waitpid(-1, st)).toBeGreaterThan(0);
    expect(WIFSIGNALED(st.value)).toBe(true);
    const st2 = { value: 0 };
    expect(p.waitpid(-1, st2)).toBeGreaterThan(0);
    expect([WTERMSIG(st.value), WTERMSIG(st2.value)].sort()).toEqual([SIGKILL, SIGTERM].sort());
    expect(p.waitpid(-1)).toBe(-ECHILD);
    expect(k.check()).toEqual([]);
  });

  it('kill() of global init (pid 1) returns 0 and the signal is ignored (sig_task_ignored())', () => {
    const k = machine();
    const init = k.task(1)!;
    expect(init.pid).toBe(1);
    const a = init.mmap(0, PAGE_SIZE, RW, ANON);
    init.writeI32(a, 7);
    const c = k.task(init.fork())!;
    expect(c.kill(1, SIGKILL)).toBe(0);
    expect(c.kill(1, SIGTERM)).toBe(0);
    expect(c.kill(1, SIGSEGV)).toBe(0);
    expect(init.kill(1, SIGKILL)).toBe(0); // init signalling itself: ignored too
    expect(c.kill(1, 99)).toBe(-EINVAL);
    expect(init.state).toBe('running');
    expect(init.fatalSignal).toBe(0);
    expect(init.readI32(a)).toBe(7);
    // Any other process still dies of it.
    expect(init.kill(c.pid, SIGKILL)).toBe(0);
    expect(c.state).not.toBe('running');
    expect(k.check()).toEqual([]);
  });

  it('waitpid(-1) reaps an exited child even when an earlier child still runs', () => {
    const k = machine();
    const p = k.spawn();
    const running = k.task(p.fork())!;
    const done = k.task(p.fork())!;
    done.exit(3);
    const st = { value: 0 };
    expect(p.waitpid(-1, st)).toBe(done.pid);
    expect(WEXITSTATUS(st.value)).toBe(3);
    expect(p.waitpid(-1, st)).toBe(0);
    running.exit(0);
    expect(p.waitpid(-1, st)).toBe(running.pid);
    expect(k.check()).toEqual([]);
  });

  it('a SIGSEGV kills the process and waitpid reports it', () => {
    const k = machine();
    const p = k.spawn();
    const c = k.task(p.fork())!;
    expect(() => c.readI32(0x1000)).toThrow(SignalDelivered);
    const st = { value: 0 };
    expect(p.waitpid(c.pid, st)).toBe(c.pid);
    expect(WTERMSIG(st.value)).toBe(SIGSEGV);
    expect(c.mmap(0, PAGE_SIZE, RW, ANON)).toBe(-ESRCH);
  });

  it('children of an exiting parent are reaped on their own exit', () => {
    const k = machine();
    const p = k.spawn();
    const c = k.task(p.fork())!;
    p.exit(0);
    expect(c.parent).toBeNull();
    c.exit(0);
    expect(c.state).toBe('reaped');
    expect(k.check()).toEqual([]);
  });

  it('process exit leaves rss, page tables and every page back in the buddy allocator', () => {
    const k = machine();
    const core = k.core;
    const free0 = core.zone.nrFree;
    const p = k.spawn();
    // A bit of everything: 4 KiB anon, THP, huge zero page, shared anon, tmpfs, hugetlb, fork.
    const a = p.mmap(0, 64 * PAGE_SIZE, RW, ANON);
    for (let i = 0; i < 64; i += 2) p.writeI32(a + i * PAGE_SIZE, i);
    for (let i = 1; i < 64; i += 4) p.readI32(a + i * PAGE_SIZE);
    const t = p.mmap(0, 4 * PMD_SIZE, RW, ANON);
    p.madvise(t, 4 * PMD_SIZE, MADV_HUGEPAGE);
    p.writeI32(t, 1);
    p.readI32(t + PMD_SIZE);
    p.writeI32(t + 2 * PMD_SIZE + 5 * PAGE_SIZE, 1);
    p.munmap(t + 2 * PMD_SIZE + PAGE_SIZE, PAGE_SIZE);
    const s = p.mmap(0, 8 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.writeI32(s, 1);
    const fd = p.open('/tmp/x', O_RDWR | O_CREAT);
    p.ftruncate(fd, 4 * PAGE_SIZE);
    const f = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, fd);
    p.writeI32(f, 1);
    const fp = p.mmap(0, 4 * PAGE_SIZE, RW, MAP_PRIVATE, fd);
    p.writeI32(fp + PAGE_SIZE, 1);
    p.readI32(fp);
    const h = p.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    p.writeI32(h, 1);
    const c = k.task(p.fork())!;
    c.writeI32(a, 5);
    c.writeI32(t + 8, 5);
    expect(k.check()).toEqual([]);
    c.exit(0);
    expect(c.mm.rss.MM_ANONPAGES + c.mm.rss.MM_SHMEMPAGES + c.mm.rss.MM_FILEPAGES).toBe(0);
    expect(c.mm.pgtablesBytes).toBe(0);
    p.exit(0);
    expect(p.mm.rss.MM_ANONPAGES + p.mm.rss.MM_SHMEMPAGES + p.mm.rss.MM_FILEPAGES).toBe(0);
    expect(p.mm.pgtablesBytes).toBe(0);
    expect(p.mm.pgd).toBe(-1);
    expect(k.check()).toEqual([]);
    // /tmp/x keeps its page cache (it is not unlinked): page 0 written through the shared
    // map, page 1 read in by the private write fault before COW; the huge zero folio stays.
    const cached = k.tmpfs.get('/tmp/x')!.pages.size;
    expect(cached).toBe(2);
    const hugeZero = core.hugeZeroPfn >= 0 ? 512 : 0;
    expect(core.zone.nrFree).toBe(free0 - cached - hugeZero);
    expect(core.vmstat.nr_anon_pages).toBe(0);
    expect(core.vmstat.nr_anon_transparent_hugepages).toBe(0);
  });
});
