import { describe, expect, it } from 'vitest';
import {
  EAGAIN,
  EBADF,
  EINVAL,
  ENODEV,
  EPIPE,
  ESPIPE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDWR,
  O_TMPFILE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from './constants.js';
import { PIPE_DEF_BUFFERS, SPLICE_F_ALL } from './pipe.js';
import type { Process } from './process.js';
import { machine, ptePfn } from './testing/helpers.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function pipeOf(p: Process): [number, number] {
  const r = p.pipe();
  if (typeof r === 'number') throw new Error(`pipe() = ${r}`);
  return r;
}

/** A struct iovec { base, len } in the process's memory. */
function iov(p: Process, base: number, len: number): number {
  const a = p.malloc(16);
  p.writeBytes(a, new Uint8Array(new BigUint64Array([BigInt(base), BigInt(len)]).buffer));
  return a;
}

describe('pipe(2), read(2)/write(2) on a pipe (pipe_read(), pipe_write())', () => {
  it('bytes written come out in order; an empty pipe is -EAGAIN with a writer, EOF without', () => {
    const k = machine();
    const p = k.spawn();
    const [r, w] = pipeOf(p);
    expect(p.write(w, new Uint8Array([1, 2, 3]), 3)).toBe(3);
    expect(p.write(w, new Uint8Array([4]), 1)).toBe(1);
    const out = new Uint8Array(8);
    expect(p.read(r, out, 8)).toBe(4);
    expect([...out.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    expect(p.read(r, out, 1)).toBe(-EAGAIN);
    expect(p.read(w, out, 1)).toBe(-EBADF);
    expect(p.write(r, out, 1)).toBe(-EBADF);
    expect(p.close(w)).toBe(0);
    expect(p.read(r, out, 1)).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('a write without readers is -EPIPE; a fork()ed child shares both ends', () => {
    const k = machine();
    const p = k.spawn();
    const [r, w] = pipeOf(p);
    const c = k.task(p.fork())!;
    expect(c.write(w, new Uint8Array([7]), 1)).toBe(1);
    const b = new Uint8Array(1);
    expect(p.read(r, b, 1)).toBe(1);
    expect(b[0]).toBe(7);
    c.exit(0);
    expect(p.close(r)).toBe(0);
    expect(p.write(w, b, 1)).toBe(-EPIPE);
  });
});

describe('vmsplice(2) (vmsplice_to_pipe(), iter_to_pipe())', () => {
  it('references the user pages (get_user_pages_fast(), FOLL_GET): a read later sees what they hold then', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    p.writeBytes(a, new Uint8Array(2 * PAGE_SIZE).fill(5));
    const [r, w] = pipeOf(p);
    const pfn = ptePfn(k, p, a);
    const ref = k.core.map.refcount[pfn];
    expect(p.vmsplice(w, iov(p, a + 100, 2 * PAGE_SIZE - 200), 1, 0)).toBe(2 * PAGE_SIZE - 200);
    // One reference per page buffer, no pin.
    expect(k.core.map.refcount[pfn]).toBe(ref + 1);
    expect(k.core.map.pincount[pfn]).toBe(0);
    expect(k.check()).toEqual([]);
    // The page itself is in the pipe: a write after vmsplice() shows (no copy was made).
    p.writeBytes(a + 100, new Uint8Array([9]));
    const out = new Uint8Array(2 * PAGE_SIZE);
    expect(p.read(r, out, out.length)).toBe(2 * PAGE_SIZE - 200);
    expect(out[0]).toBe(9);
    expect(out[1]).toBe(5);
    // pipe_buf_release() of the consumed buffers put the references again.
    expect(k.core.map.refcount[pfn]).toBe(ref);
    expect(k.check()).toEqual([]);
  });

  it('a COW-shared page is not copied by vmsplice(): the reference makes the writer copy (wp_can_reuse_anon_folio())', () => {
    const k = machine();
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    p.writeBytes(a, new Uint8Array([1]));
    const c = k.task(p.fork())!;
    const [r, w] = pipeOf(c);
    expect(c.vmsplice(w, iov(c, a, PAGE_SIZE), 1, 0)).toBe(PAGE_SIZE);
    expect(c.munmap(a, PAGE_SIZE)).toBe(0);
    // The parent's page is mapped once but referenced by the pipe too: the write copies.
    p.writeBytes(a, new Uint8Array([2]));
    const out = new Uint8Array(1);
    expect(c.read(r, out, 1)).toBe(1);
    expect(out[0]).toBe(1);
    c.exit(0);
    expect(k.check()).toEqual([]);
  });

  it('fills at most the pipe (PIPE_DEF_BUFFERS pages), then a full pipe is -EAGAIN; closing both ends puts the pages', () => {
    const k = machine();
    const p = k.spawn();
    const n = PIPE_DEF_BUFFERS + 4;
    const a = p.mmap(0, n * PAGE_SIZE, RW, ANON);
    p.madvise(a, n * PAGE_SIZE, MADV_NOHUGEPAGE);
    p.writeBytes(a, new Uint8Array(PIPE_DEF_BUFFERS * PAGE_SIZE).fill(3));
    const [r, w] = pipeOf(p);
    const v = iov(p, a, n * PAGE_SIZE);
    expect(p.vmsplice(w, v, 1, 0)).toBe(PIPE_DEF_BUFFERS * PAGE_SIZE);
    // iter_to_pipe() loops while bytes remain: the next batch was taken (read-faulted: the zero
    // page) before add_to_pipe() found the pipe full, and put again.
    expect(ptePfn(k, p, a + (n - 1) * PAGE_SIZE)).toBe(k.core.zeroPfn);
    expect(p.vmsplice(w, v, 1, 0)).toBe(-EAGAIN);
    const last = ptePfn(k, p, a + (PIPE_DEF_BUFFERS - 1) * PAGE_SIZE);
    expect(k.core.map.refcount[last]).toBe(2);
    expect(p.close(r)).toBe(0);
    expect(p.close(w)).toBe(0);
    expect(k.core.map.refcount[ptePfn(k, p, a)]).toBe(1);
    expect(k.check()).toEqual([]);
  });

  it('checks like the kernel: unknown flags -EINVAL, not a pipe -EBADF, an unmapped range -EFAULT', () => {
    const k = machine();
    const p = k.spawn();
    const [, w] = pipeOf(p);
    const a = p.mmap(0, PAGE_SIZE, RW, ANON);
    expect(p.vmsplice(w, iov(p, a, PAGE_SIZE), 1, SPLICE_F_ALL + 1)).toBe(-EINVAL);
    const fd = p.open('/tmp', O_TMPFILE | O_RDWR);
    expect(p.vmsplice(fd, iov(p, a, PAGE_SIZE), 1, 0)).toBe(-EBADF);
    expect(p.vmsplice(99, iov(p, a, PAGE_SIZE), 1, 0)).toBe(-EBADF);
    const gone = iov(p, a, PAGE_SIZE);
    expect(p.munmap(a, PAGE_SIZE)).toBe(0);
    expect(p.vmsplice(w, gone, 1, 0)).toBe(-14 /* EFAULT */);
  });
});

describe('fallocate(2) mode 0 on tmpfs (shmem_fallocate())', () => {
  it('allocates zeroed page-cache pages and grows the size; both mappings see the same page', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp', O_TMPFILE | O_RDWR);
    expect(p.fallocate(fd, 0, 0, PAGE_SIZE)).toBe(0);
    const s = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    const priv = p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE, fd, 0);
    expect(p.readBytes(s, 1)[0]).toBe(0);
    expect(p.readBytes(priv, 1)[0]).toBe(0);
    expect(ptePfn(k, p, s)).toBe(ptePfn(k, p, priv));
    p.writeBytes(priv, new Uint8Array([1]));
    expect(p.readBytes(s, 1)[0]).toBe(0);
    expect(k.check()).toEqual([]);
  });

  it('refuses bad arguments: len <= 0 -EINVAL, a pipe -ESPIPE, a device file -ENODEV, a read-only fd -EBADF', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp', O_TMPFILE | O_RDWR);
    expect(p.fallocate(fd, 0, 0, 0)).toBe(-EINVAL);
    expect(p.fallocate(fd, 0, -1, 1)).toBe(-EINVAL);
    const [r, w] = pipeOf(p);
    expect(p.fallocate(w, 0, 0, 1)).toBe(-ESPIPE);
    expect(p.fallocate(r, 0, 0, 1)).toBe(-EBADF);
    const g = p.open('/sys/kernel/debug/gup_test', O_RDWR);
    expect(p.fallocate(g, 0, 0, 1)).toBe(-ENODEV);
  });
});
