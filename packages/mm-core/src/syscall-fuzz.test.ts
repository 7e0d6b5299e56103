/**
 * Property test of the user-space boundary: random sequences of syscalls whose arguments mix
 * sensible values (addresses inside the live VMAs, page multiples), boundary values (0, -1,
 * TASK_SIZE, 2^47, 2^63, 2^64 - 2^11, ...) and values no C caller can pass (NaN, ±Infinity,
 * fractions, undefined, strings, BigInt, objects). For every call: no JavaScript exception escapes
 * (a CPU access may deliver a signal, which is a typed SignalDelivered), the result is a
 * non-negative integer or a known -errno, the invariant checker stays clean after the call, and a
 * call with an argument no register can hold is -EINVAL and changes nothing.
 * HMM_FUZZ_RUNS / HMM_FUZZ_SEED give longer or other runs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ERRNO_NAMES,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_KEEPONFORK,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
} from './constants.js';
import { SignalDelivered } from './errors.js';
import { GUP_BASIC_TEST, PIN_BASIC_TEST } from './gup-test.js';
import type { Kernel } from './kernel.js';
import type { Process } from './process.js';
import { argULong } from './syscall-args.js';
import { machine } from './testing/helpers.js';
import { mergeableNeighbours } from './testing/layout.js';
import { machineState } from './testing/state.js';

const RUNS = Number(process.env.HMM_FUZZ_RUNS ?? 40);
const SEED = Number(process.env.HMM_FUZZ_SEED ?? 20251);

/** Values no 64-bit register holds: a syscall given one must refuse it with -EINVAL. */
const GARBAGE: readonly unknown[] = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  0.5,
  4096.5,
  -1.25,
  undefined,
  null,
  '4096',
  '',
  4096n,
  -1n,
  true,
  {},
  [],
  2 ** 64,
  2 ** 70,
  -(2 ** 64),
];

const BOUNDARY: readonly number[] = [
  0,
  1,
  -1,
  PAGE_SIZE,
  -PAGE_SIZE,
  PAGE_SIZE - 1,
  PMD_SIZE,
  -PMD_SIZE,
  0x10000,
  TASK_SIZE - PAGE_SIZE,
  TASK_SIZE,
  TASK_SIZE + PAGE_SIZE,
  2 ** 47,
  0x800000000000,
  2 ** 48,
  2 ** 53,
  2 ** 62,
  2 ** 63,
  -(2 ** 63),
  2 ** 64 - 2 ** 11,
  0x7fff_f000,
];

/** An argument: a literal, or a place in the live address space resolved when the call runs. */
type Arg = { lit: unknown } | { vma: number; at: 'start' | 'mid' | 'end' | 'past' };

const literal = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...BOUNDARY) },
  { weight: 2, arbitrary: fc.constantFrom(...GARBAGE) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 1024 }).map((n) => n * PAGE_SIZE) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 64n), max: 2n ** 65n }).map((b) => Number(b)) },
);
const arg: fc.Arbitrary<Arg> = fc.oneof(
  { weight: 3, arbitrary: literal.map((lit) => ({ lit })) },
  {
    weight: 2,
    arbitrary: fc.record({
      vma: fc.nat({ max: 7 }),
      at: fc.constantFrom('start' as const, 'mid' as const, 'end' as const, 'past' as const),
    }),
  },
);
const len: fc.Arbitrary<Arg> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 600 }).map((n) => ({ lit: n * PAGE_SIZE })) },
  { weight: 2, arbitrary: literal.map((lit) => ({ lit })) },
);
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const wrap = (a: fc.Arbitrary<unknown>): fc.Arbitrary<Arg> => a.map((lit) => ({ lit }));
const mapFlags = wrap(
  fc.oneof(
    fc.constantFrom(
      ANON,
      ANON | MAP_POPULATE,
      MAP_SHARED | MAP_ANONYMOUS,
      ANON | MAP_FIXED,
      ANON | MAP_FIXED_NOREPLACE,
      ANON | MAP_HUGETLB,
      MAP_SHARED,
      MAP_PRIVATE,
    ),
    literal,
  ),
);
const prot = wrap(fc.oneof(fc.constantFrom(PROT_READ | PROT_WRITE, PROT_READ, 0), literal));
const advice = wrap(
  fc.oneof(
    fc.constantFrom(
      MADV_NORMAL,
      MADV_RANDOM,
      MADV_SEQUENTIAL,
      MADV_WILLNEED,
      MADV_DONTNEED,
      MADV_DONTNEED_LOCKED,
      MADV_FREE,
      MADV_REMOVE,
      MADV_DONTFORK,
      MADV_DOFORK,
      MADV_DONTDUMP,
      MADV_DODUMP,
      MADV_WIPEONFORK,
      MADV_KEEPONFORK,
      MADV_COLD,
      MADV_PAGEOUT,
      MADV_POPULATE_READ,
      MADV_POPULATE_WRITE,
      MADV_HUGEPAGE,
      MADV_NOHUGEPAGE,
      MADV_COLLAPSE,
    ),
    literal,
  ),
);
const remapFlags = wrap(
  fc.oneof(
    fc.constantFrom(0, MREMAP_MAYMOVE, MREMAP_MAYMOVE | MREMAP_FIXED, MREMAP_MAYMOVE | MREMAP_DONTUNMAP),
    literal,
  ),
);
/** Descriptors: 0 tmpfs file (rw), 1 pagemap (ro), 2 meminfo (ro), 3 gup_test, 4 overcommit_ratio (rw). */
const fd = fc.oneof(
  { weight: 4, arbitrary: fc.nat({ max: 4 }).map((i) => ({ fd: i })) },
  literal.map((lit) => ({ lit })),
);
const buf = fc.oneof(fc.constant({ host: 64 }), arg);

const op = fc.oneof(
  fc.record({ op: fc.constant('mmap' as const), a: fc.tuple(arg, len, prot, mapFlags, fd, len) }),
  fc.record({ op: fc.constant('munmap' as const), a: fc.tuple(arg, len) }),
  fc.record({ op: fc.constant('mprotect' as const), a: fc.tuple(arg, len, prot) }),
  fc.record({ op: fc.constant('madvise' as const), a: fc.tuple(arg, len, advice) }),
  fc.record({ op: fc.constant('mremap' as const), a: fc.tuple(arg, len, len, remapFlags, arg) }),
  fc.record({ op: fc.constant('pread' as const), a: fc.tuple(fd, buf, len, len) }),
  fc.record({ op: fc.constant('pwrite' as const), a: fc.tuple(fd, buf, len, len) }),
  fc.record({ op: fc.constant('ftruncate' as const), a: fc.tuple(fd, len) }),
  fc.record({
    op: fc.constant('ioctl' as const),
    a: fc.tuple(fd, wrap(fc.oneof(fc.constantFrom(GUP_BASIC_TEST, PIN_BASIC_TEST), literal)), arg),
  }),
  fc.record({
    op: fc.constant('open' as const),
    a: fc.tuple(wrap(fc.constantFrom('/tmp/f', '/tmp/new', '/nope', '')), wrap(literal)),
  }),
  fc.record({ op: fc.constant('touch' as const), a: fc.tuple(arg, fc.boolean()) }),
  fc.record({ op: fc.constant('khugepaged' as const), a: fc.constant([] as []) }),
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

/** The mTHP variant's per-size settings: several orders below PMD order enabled, in every mode. */
const MTHP_SIZES = { 2: 'always', 3: 'madvise', 4: 'always', 5: 'inherit', 6: 'never', 8: 'always' } as const;

class World {
  readonly k: Kernel;
  p: Process;
  fds: number[] = [];

  constructor(readonly mthp = false) {
    this.k = machine('always', mthp ? { thpAnon: MTHP_SIZES } : {});
    this.p = this.k.spawn();
    this.setup();
  }

  private setup(): void {
    const p = this.p;
    this.fds = [
      p.open('/tmp/f', O_CREAT | O_RDWR),
      p.open('/proc/self/pagemap', O_RDONLY),
      p.open('/proc/meminfo', O_RDONLY),
      p.open('/sys/kernel/debug/gup_test', O_RDWR),
      p.open('/proc/sys/vm/overcommit_ratio', O_RDWR),
    ];
    p.mmap(0, 4 * PMD_SIZE, PROT_READ | PROT_WRITE, ANON);
    p.mmap(0, 8 * PAGE_SIZE, PROT_READ, ANON);
    // The mTHP variant: a region too small for a PMD, populated by writes (mTHPs where they fit).
    if (this.mthp) p.mmap(0, 200 * PAGE_SIZE, PROT_READ | PROT_WRITE, ANON | MAP_POPULATE);
  }

  /** After a signal killed the process: a fresh one. */
  respawn(): void {
    this.p = this.k.spawn();
    this.setup();
  }

  value(a: Arg | { fd: number } | { host: number }): unknown {
    if ('lit' in a) return a.lit;
    if ('fd' in a) return this.fds[a.fd];
    if ('host' in a) return new Uint8Array(a.host);
    const vmas = this.p.vmas;
    if (vmas.length === 0) return 0;
    const v = vmas[a.vma % vmas.length];
    switch (a.at) {
      case 'start':
        return v.start;
      case 'mid':
        return v.start + Math.floor((v.end - v.start) / 2 / PAGE_SIZE) * PAGE_SIZE;
      case 'end':
        return v.end;
      case 'past':
        return v.end + PMD_SIZE;
    }
  }
}

/** True when a literal argument is one no register holds. */
function isGarbage(a: unknown): boolean {
  return (
    typeof a === 'object' && a !== null && 'lit' in a && argULong((a as { lit: unknown }).lit) === undefined
  );
}

function run(w: World, o: Op): void {
  const p = w.p;
  const v = (x: Arg | { fd: number } | { host: number }) => w.value(x);
  // biome-ignore lint/suspicious/noExplicitAny: the point is to call with arguments of any type.
  const call = (f: (...a: any[]) => number, ...args: unknown[]) => f.apply(p, args);
  // (open's path is a string by design; undefined for an optional argument is its default.)
  const optional = (i: number) => (o.op === 'mmap' && i >= 4) || (o.op === 'mremap' && i === 4);
  const garbage =
    o.op !== 'touch' &&
    o.op !== 'khugepaged' &&
    o.a.some(
      (x, i) =>
        isGarbage(x) &&
        !(o.op === 'open' && i === 0) &&
        !(optional(i) && (x as { lit: unknown }).lit === undefined),
    );
  const before = garbage ? machineState(w.k) : '';
  let r: number;
  switch (o.op) {
    case 'mmap':
      r = call(p.mmap, ...o.a.map(v));
      break;
    case 'munmap':
      r = call(p.munmap, ...o.a.map(v));
      break;
    case 'mprotect':
      r = call(p.mprotect, ...o.a.map(v));
      break;
    case 'madvise':
      r = call(p.madvise, ...o.a.map(v));
      break;
    case 'mremap':
      r = call(p.mremap, ...o.a.map(v));
      break;
    case 'pread':
      r = call(p.pread, ...o.a.map(v));
      break;
    case 'pwrite':
      r = call(p.pwrite, ...o.a.map(v));
      break;
    case 'ftruncate':
      r = call(p.ftruncate, ...o.a.map(v));
      break;
    case 'ioctl':
      r = call(p.ioctl, ...o.a.map(v));
      break;
    case 'open': {
      r = call(p.open, ...o.a.map(v));
      if (r >= 0) p.close(r);
      break;
    }
    case 'khugepaged':
      // One khugepaged_do_scan() pass over the registered mms.
      w.k.khugepagedScan();
      return;
    case 'touch': {
      const addr = v(o.a[0]);
      try {
        if (o.a[1]) p.writeI32(addr as number, 0x5a5a);
        else p.readI32(addr as number);
      } catch (e) {
        if (!(e instanceof SignalDelivered)) throw e;
        w.respawn();
      }
      return;
    }
  }
  const what = `${o.op}(${o.a.map((x) => String(JSON.stringify(x, (_, y) => (typeof y === 'bigint' ? `${y}n` : y)))).join(', ')})`;
  expect(Number.isInteger(r), `${what} returned ${String(r)}`).toBe(true);
  if (r < 0) {
    const fixedErr = o.op === 'mmap' && isFixedErrValue(v(o.a[0]), v(o.a[3]), r);
    expect(ERRNO_NAMES[-r] !== undefined || fixedErr, `${what} returned unknown errno ${r}`).toBe(true);
  }
  if (garbage) {
    expect(r, `${what} with an argument no register holds`).toBe(-22);
    expect(machineState(w.k), `${what} changed the machine`).toBe(before);
  }
  expect(p.alive, `${what} killed the process`).toBe(true);
}

/** mmap(MAP_FIXED) at an address in the top MAX_ERRNO values returns that address (IS_ERR_VALUE()). */
function isFixedErrValue(addr: unknown, flags: unknown, r: number): boolean {
  const a = argULong(addr);
  const f = argULong(flags);
  if (a === undefined || f === undefined || !(f & BigInt(MAP_FIXED | MAP_FIXED_NOREPLACE))) return false;
  return a >= 2n ** 64n - 4095n && r === Number(a - 2n ** 64n);
}

/** The mTHP variant's extra operations: split_huge_pages writes and per-size setting changes. */
const mthpOp = fc.oneof(
  { weight: 12, arbitrary: op },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('split' as const),
      a: fc.tuple(arg, len, fc.constantFrom(0, 1, 2, 3, 4, 5, 8, 9, 12)),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('thpsize' as const),
      a: fc.tuple(
        fc.integer({ min: 2, max: 9 }),
        fc.constantFrom('always', 'inherit', 'madvise', 'never', 'never\n', ' always', 'sometimes', ''),
      ),
    }),
  },
);
type MthpOp = typeof mthpOp extends fc.Arbitrary<infer T> ? T : never;

/** Writes `text` to a sysfs/debugfs file of the world's process; the write's result. */
function writeFile(w: World, path: string, text: string): number {
  const fd = w.p.open(path, O_RDWR);
  expect(fd, path).toBeGreaterThanOrEqual(0);
  const b = new TextEncoder().encode(text);
  const r = w.p.pwrite(fd, b, b.length, 0);
  w.p.close(fd);
  return r;
}

/**
 * Runs one operation of the mTHP variant: split_huge_pages_write() over a range of the live
 * address space (any order: 1 and orders not below the folio's split nothing) returns the
 * input's length; a per-size store returns the length, or -EINVAL for a word it does not take
 * (an empty write stores nothing and returns 0).
 */
function runMthp(w: World, o: MthpOp): void {
  if (o.op === 'split') {
    const start = w.value(o.a[0]);
    const length = w.value(o.a[1]);
    const hex = (x: unknown) =>
      typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x.toString(16) : String(x);
    const end = typeof start === 'number' && typeof length === 'number' ? start + length : Number.NaN;
    const line = `${w.p.pid},0x${hex(start)},0x${hex(end)},${o.a[2]}`;
    const r = writeFile(w, '/sys/kernel/debug/split_huge_pages', line);
    // sscanf("%d,0x%lx,0x%lx,%d") needs the first three conversions; it stops at the first
    // character that does not fit (a fractional end address leaves ".5" unread).
    const wellFormed = /^\d+,0x[0-9a-f]+,0x[0-9a-f]+/.test(line);
    expect(r, line).toBe(wellFormed ? line.length : -22);
    return;
  }
  if (o.op === 'thpsize') {
    const [order, text] = o.a;
    const r = writeFile(w, `/sys/kernel/mm/transparent_hugepage/hugepages-${4 << order}kB/enabled`, text);
    const ok = ['always', 'inherit', 'madvise', 'never', 'never\n'].includes(text);
    expect(r, `${order} ${JSON.stringify(text)}`).toBe(text === '' ? 0 : ok ? text.length : -22);
    return;
  }
  run(w, o);
}

describe('syscalls under random and malformed arguments', () => {
  it('never throw, return a result or a known -errno, keep the invariants, and refuse garbage unchanged', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 24 }), (ops) => {
        const w = new World();
        for (const o of ops) {
          run(w, o);
          // The VMA layout follows Linux's merge rules (mm/vma.c) after every call.
          if (w.p.alive) expect(mergeableNeighbours(w.p.mm)).toEqual([]);
        }
        expect(w.k.check()).toEqual([]);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
  });
});

describe('syscalls under random and malformed arguments, with mTHP orders enabled', () => {
  it('large PTE-mapped folios of every enabled order keep the same guarantees; splits to any order', () => {
    fc.assert(
      fc.property(fc.array(mthpOp, { minLength: 1, maxLength: 24 }), (ops) => {
        const w = new World(true);
        for (const o of ops) {
          runMthp(w, o);
          if (w.p.alive) expect(mergeableNeighbours(w.p.mm)).toEqual([]);
        }
        expect(w.k.check()).toEqual([]);
      }),
      { numRuns: RUNS, seed: SEED + 1, endOnFailure: true },
    );
  });
});
