/**
 * The C library as hmm-tests.c sees it, over one simulated process of @hmm-model/mm-core: the
 * libc syscall wrappers (-1 and errno instead of the raw -errno), MAP_FAILED, malloc/free in
 * simulated memory, a small "stack" for structs handed to ioctl(), and `int *ptr` loops done a
 * page at a time (same fault order as the C loops, without one model call per int).
 */

import {
  type Kernel,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Process,
} from '@hmm-model/mm-core';

/** Models MAP_FAILED ((void *) -1) as a number: what the libc mmap() wrapper returns on error. */
export const MAP_FAILED = -1;

/** Bytes stored per model call by the fill helpers (memset(), `ptr[i] = ...` loops). */
const FILL_CHUNK = 256 * 1024;

/** Models sizeof(int). */
export const SIZEOF_INT = 4;

/** Models strerror(3) (glibc messages) for the errno values a test can see. */
const STRERROR: Readonly<Record<number, string>> = {
  0: 'Success',
  1: 'Operation not permitted',
  2: 'No such file or directory',
  3: 'No such process',
  4: 'Interrupted system call',
  5: 'Input/output error',
  9: 'Bad file descriptor',
  10: 'No child processes',
  11: 'Resource temporarily unavailable',
  12: 'Cannot allocate memory',
  13: 'Permission denied',
  14: 'Bad address',
  16: 'Device or resource busy',
  17: 'File exists',
  19: 'No such device',
  22: 'Invalid argument',
  25: 'Inappropriate ioctl for device',
  28: 'No space left on device',
  38: 'Function not implemented',
  75: 'Value too large for defined data type',
};

/** Models strerror(3). */
export function strerror(errno: number): string {
  return STRERROR[errno] ?? `Unknown error ${errno}`;
}

/** Models glibc's M_MMAP_THRESHOLD default: requests at least this big are served by mmap(). */
export const MMAP_THRESHOLD = 128 * 1024;
/** Where the modelled brk heap starts (a typical x86-64 PIE heap address). */
export const HEAP_BASE = 0x5555_5555_9000;
/** Size of the modelled brk heap. */
export const HEAP_SIZE = 1 << 20;
/** Models the main thread's stack: 132 KiB just below TASK_SIZE, like `[stack]`. */
export const STACK_TOP = 2 ** 47 - PAGE_SIZE;
/** Size of the modelled stack mapping. */
export const STACK_SIZE = 33 * PAGE_SIZE;

/** Models the allocator state glibc keeps in the process (copied by fork()). */
interface HeapState {
  /** Next free byte of the brk heap (0: not set up). */
  brk: number;
  /** Models the blocks malloc() handed out: address -> size. */
  readonly blocks: Map<number, number>;
  /** Models the mmap()ed chunks memalign() handed out: pointer -> [chunk mapping, its length]. */
  readonly aligned: Map<number, readonly [number, number]>;
}

/**
 * Models the libc of one user process: syscall wrappers setting errno, malloc() (small blocks
 * from a brk-style heap, large ones from mmap(), as glibc does, so test buffers never land in
 * holes a test punches), and a stack for the structs the C code passes to ioctl().
 */
export class Libc {
  /** Models errno (thread-local; one thread per Libc here). */
  errno = 0;
  readonly proc: Process;
  readonly kernel: Kernel;
  readonly #heap: HeapState;

  /** Sets up the process's libc: maps the heap and the stack (as exec() + ld.so would). */
  constructor(proc: Process, kernel: Kernel, heap?: HeapState) {
    this.proc = proc;
    this.kernel = kernel;
    if (heap) {
      this.#heap = heap;
      return;
    }
    const fixed = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
    const h = proc.mmap(HEAP_BASE, HEAP_SIZE, PROT_READ | PROT_WRITE, fixed);
    const s = proc.mmap(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE, fixed);
    if (h < 0 || s < 0) throw new Error(`cannot set up the process's heap/stack: errno ${-Math.min(h, s)}`);
    this.#heap = { brk: HEAP_BASE, blocks: new Map(), aligned: new Map() };
  }

  /** Models the libc of the child after fork(): same layout, a copy of the allocator state. */
  forChild(child: Process): Libc {
    return new Libc(child, this.kernel, {
      brk: this.#heap.brk,
      blocks: new Map(this.#heap.blocks),
      aligned: new Map(this.#heap.aligned),
    });
  }

  /** Models a second thread of this process (pthread_create()): shared memory, its own errno. */
  forThread(): Libc {
    return new Libc(this.proc, this.kernel, this.#heap);
  }

  #sys(r: number): number {
    if (r < 0) {
      this.errno = -r;
      return -1;
    }
    return r;
  }

  /** Models getpid(2). */
  getpid(): number {
    return this.proc.pid;
  }

  /** Models mmap(2) through libc: the address, or MAP_FAILED with errno set. */
  mmap(addr: number, length: number, prot: number, flags: number, fd: number, offset: number): number {
    const r = this.proc.mmap(addr, length, prot, flags, fd, offset);
    if (r < 0) {
      this.errno = -r;
      return MAP_FAILED;
    }
    return r;
  }

  /** Models munmap(2) through libc. */
  munmap(addr: number, length: number): number {
    return this.#sys(this.proc.munmap(addr, length));
  }

  /** Models mprotect(2) through libc. */
  mprotect(addr: number, length: number, prot: number): number {
    return this.#sys(this.proc.mprotect(addr, length, prot));
  }

  /** Models madvise(2) through libc. */
  madvise(addr: number, length: number, advice: number): number {
    return this.#sys(this.proc.madvise(addr, length, advice));
  }

  /** Models mremap(2) through libc: the new address, or MAP_FAILED with errno set. */
  mremap(oldAddr: number, oldLen: number, newLen: number, flags: number, newAddr: number): number {
    const r = this.proc.mremap(oldAddr, oldLen, newLen, flags, newAddr);
    if (r < 0) {
      this.errno = -r;
      return MAP_FAILED;
    }
    return r;
  }

  /** Models open(2) through libc. */
  open(path: string, flags: number, mode = 0): number {
    return this.#sys(this.proc.open(path, flags, mode));
  }

  /** Models memfd_create(2) through glibc: the descriptor, or -1 with errno set. */
  memfd_create(name: string, flags: number): number {
    return this.#sys(this.proc.memfdCreate(name, flags));
  }

  /** Models close(2) through libc. */
  close(fd: number): number {
    return this.#sys(this.proc.close(fd));
  }

  /** Models ioctl(2) through libc: `arg` is a pointer in this process. */
  ioctl(fd: number, request: number, arg: number): number {
    return this.#sys(this.proc.ioctl(fd, request, arg));
  }

  /** Models pread(2) through libc (`buf` a user pointer, or a host buffer for library internals). */
  pread(fd: number, buf: number | Uint8Array, count: number, offset: number): number {
    return this.#sys(this.proc.pread(fd, buf, count, offset));
  }

  /** Models pwrite(2) through libc. */
  pwrite(fd: number, buf: number, count: number, offset: number): number {
    return this.#sys(this.proc.pwrite(fd, buf, count, offset));
  }

  /** Models write(2) through libc (`buf` a user pointer, or a host buffer for library internals). */
  write(fd: number, buf: number | Uint8Array, count: number): number {
    return this.#sys(this.proc.write(fd, buf, count));
  }

  /** Models read(2) through libc. */
  read(fd: number, buf: number | Uint8Array, count: number): number {
    return this.#sys(this.proc.read(fd, buf, count));
  }

  /** Models lseek(2) through libc. */
  lseek(fd: number, offset: number, whence: number): number {
    return this.#sys(this.proc.lseek(fd, offset, whence));
  }

  /** Models mkdir(2) through libc. */
  mkdir(path: string, mode = 0o777): number {
    return this.#sys(this.proc.mkdir(path, mode));
  }

  /** Models rmdir(2) through libc. */
  rmdir(path: string): number {
    return this.#sys(this.proc.rmdir(path));
  }

  /** Models unlink(2) through libc. */
  unlink(path: string): number {
    return this.#sys(this.proc.unlink(path));
  }

  /** Models mount(2) through libc. */
  mount(source: string, target: string, fstype: string, flags: number, data: string): number {
    return this.#sys(this.proc.mount(source, target, fstype, flags, data));
  }

  /** Models umount(2) through libc. */
  umount(target: string): number {
    return this.#sys(this.proc.umount(target));
  }

  /** Models sync(2). */
  sync(): void {
    this.proc.sync();
  }

  /** Models geteuid(2): every process of the model runs as root. */
  geteuid(): number {
    return 0;
  }

  /** Models ftruncate(2) through libc. */
  ftruncate(fd: number, length: number): number {
    return this.#sys(this.proc.ftruncate(fd, length));
  }

  /** Models fork(2) through libc: the child's pid in the parent, or -1. */
  fork(): number {
    return this.#sys(this.proc.fork());
  }

  /** Models waitpid(2) through libc, the status written to `status.value`. */
  waitpid(pid: number, status: { value: number }, options = 0): number {
    return this.#sys(this.proc.waitpid(pid, status, options));
  }

  /** Models kill(2) through libc. */
  kill(pid: number, sig: number): number {
    return this.#sys(this.proc.kill(pid, sig));
  }

  /** Models sysconf(_SC_PAGESIZE). */
  sysconfPageSize(): number {
    return PAGE_SIZE;
  }

  /**
   * Models malloc(3): blocks below MMAP_THRESHOLD come from the brk heap (16-byte aligned,
   * never reused here), bigger ones from their own mmap(). Returns 0 (NULL) on failure.
   */
  malloc(size: number): number {
    const n = Math.max(size, 1);
    const heap = this.#heap;
    if (n < MMAP_THRESHOLD && heap.brk + n <= HEAP_BASE + HEAP_SIZE) {
      const p = heap.brk;
      heap.brk = p + Math.ceil(n / 16) * 16;
      heap.blocks.set(p, 0);
      return p;
    }
    const r = this.proc.mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (r < 0) {
      this.errno = -r;
      return 0;
    }
    heap.blocks.set(r, n);
    return r;
  }

  /**
   * Models memalign(3) (glibc _int_memalign()): a block of at least MMAP_THRESHOLD (or a larger
   * alignment) is carved from its own mmap()ed chunk of size + alignment + MINSIZE bytes, at the
   * first aligned address after the chunk header; the chunk's head stays mapped in front of it.
   * Smaller blocks come from the brk heap, aligned. Returns 0 (NULL) on failure.
   */
  memalign(alignment: number, size: number): number {
    const heap = this.#heap;
    const n = Math.max(size, 1);
    if (n < MMAP_THRESHOLD && alignment < PAGE_SIZE) {
      const p = Math.ceil(heap.brk / alignment) * alignment;
      if (p + n <= HEAP_BASE + HEAP_SIZE) {
        heap.brk = p + Math.ceil(n / 16) * 16;
        heap.blocks.set(p, 0);
        return p;
      }
    }
    // request2size(n) + alignment + MINSIZE, plus the mmapped chunk's SIZE_SZ, page rounded.
    const len = Math.ceil((Math.ceil((n + 8) / 16) * 16 + alignment + 32 + 8) / PAGE_SIZE) * PAGE_SIZE;
    const base = this.proc.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (base < 0) {
      this.errno = -base;
      return 0;
    }
    const p = Math.ceil((base + 16) / alignment) * alignment;
    heap.aligned.set(p, [base, len]);
    return p;
  }

  /** Models free(3); free(NULL) does nothing; an mmap()ed block is unmapped. */
  free(ptr: number): void {
    if (!ptr) return;
    const chunk = this.#heap.aligned.get(ptr);
    if (chunk) {
      // munmap_chunk(): the whole mapping, the chunk's head in front of the block included.
      this.#heap.aligned.delete(ptr);
      this.proc.munmap(chunk[0], chunk[1]);
      return;
    }
    const n = this.#heap.blocks.get(ptr);
    if (n === undefined) throw new Error(`free(0x${ptr.toString(16)}): not a malloc()ed block`);
    this.#heap.blocks.delete(ptr);
    if (n > 0) this.proc.munmap(ptr, n);
  }

  /** Models memset(3) on user memory (stored in ascending order, up to 256 KiB per store). */
  memset(ptr: number, byte: number, n: number): void {
    const chunk = new Uint8Array(Math.min(n, FILL_CHUNK)).fill(byte & 0xff);
    for (let off = 0; off < n; off += chunk.length) {
      this.proc.writeBytes(ptr + off, off + chunk.length <= n ? chunk : chunk.subarray(0, n - off));
    }
  }

  /**
   * Models automatic storage for a struct the C code keeps on its stack (struct hmm_dmirror_cmd,
   * struct gup_test): `size` zeroed bytes near the top of the stack mapping.
   */
  stackAlloc(size: number): number {
    if (size > PAGE_SIZE) throw new RangeError(`stackAlloc(${size}): larger than the modelled frame`);
    const p = STACK_TOP - PAGE_SIZE;
    this.proc.writeBytes(p, new Uint8Array(size));
    return p;
  }

  /** Models `((int *)base)[i]` (a load). */
  intAt(base: number, i: number): number {
    return this.proc.readI32(base + i * SIZEOF_INT);
  }

  /** Models `((int *)base)[i] = v` (a store). */
  setIntAt(base: number, i: number, v: number): void {
    this.proc.writeI32(base + i * SIZEOF_INT, v);
  }

  /** Models `((unsigned char *)base)[i]`. */
  byteAt(base: number, i: number): number {
    return this.proc.readU8(base + i);
  }

  /**
   * Models `for (i = from; i < to; ++i) ptr[i] = value(i);` on `int *ptr = base`: stored in
   * ascending order (the model translates page by page, so faults happen in the C order).
   */
  fillInts(base: number, from: number, to: number, value: (i: number) => number): void {
    const step = FILL_CHUNK / SIZEOF_INT;
    const chunk = new Int32Array(Math.min(step, Math.max(0, to - from)));
    for (let start = from; start < to; start += step) {
      const end = Math.min(to, start + step);
      const out = end - start === chunk.length ? chunk : chunk.subarray(0, end - start);
      for (let i = start; i < end; i++) out[i - start] = value(i);
      this.proc.writeInts(base + start * SIZEOF_INT, out);
    }
  }

  /** Models loading `ptr[from..to)` of `int *ptr = base` a page at a time, handing each page's ints to `fn`. */
  scanInts(
    base: number,
    from: number,
    to: number,
    fn: (start: number, ints: Int32Array) => boolean | undefined,
  ): void {
    forEachPageChunk(base, from, to, (start, end) =>
      fn(start, this.proc.readInts(base + start * SIZEOF_INT, end - start)),
    );
  }
}

/**
 * Calls `fn(start, end)` for each run of int indices [from, to) of `int *ptr = base` lying in
 * one page, in ascending order; stops when `fn` returns true.
 */
export function forEachPageChunk(
  base: number,
  from: number,
  to: number,
  fn: (start: number, end: number) => boolean | undefined,
): void {
  let i = from;
  while (i < to) {
    const addr = base + i * SIZEOF_INT;
    const room = Math.max(1, Math.floor((PAGE_SIZE - (addr % PAGE_SIZE)) / SIZEOF_INT));
    const end = Math.min(to, i + room);
    if (fn(i, end) === true) return;
    i = end;
  }
}
