/**
 * The engine of the model-based random test (test-only): random CPU accesses, device accesses,
 * migrations to and from two test devices (compound and not, with injected large-allocation
 * failures, synchronous or as scheduler tasks interleaved at preemption points), fork, exit,
 * mprotect, partial munmap, mremap, MADV_FREE and MADV_DONTNEED on a few processes. Every read
 * is compared with a flat oracle and every invariant checker runs after every step (and at
 * random preemption points inside migrations).
 */
import {
  EFAULT,
  HPAGE_PMD_ORDER,
  installMmCoreChecker,
  Kernel,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  type MmStruct,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  type Process,
  RESCHED,
  Rng,
  type Scheduler,
  type Task,
  VM_READ,
  VM_WRITE,
  type Vma,
} from '@hmm-model/mm-core';
import { installMigrateChecker } from '../checker.js';
import { inflightMigrations } from '../inflight.js';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_VALID,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_SYSTEM,
  mpfnFlags,
} from '../types.js';
import { MiniDevice, runSteps } from './minidev.js';
import { FlatMemory, firstDiff } from './oracle.js';

interface Proc {
  p: Process;
  mem: FlatMemory;
}

/** Counts of what a run did. */
export type FuzzStats = Record<string, number>;

const RW = PROT_READ | PROT_WRITE;
/** Address space a process may have mapped before mmap makes room first. */
const MAX_MAPPED = 16 << 20;

/** Operations and their weights. */
const OPS: readonly [string, number][] = [
  ['mmap', 4],
  ['cpu-write', 10],
  ['thp-fill', 8],
  ['cpu-read', 12],
  ['to-dev', 8],
  ['to-dev-async', 6],
  ['to-sys', 4],
  ['to-sys-async', 3],
  ['dev-read', 5],
  ['dev-write', 4],
  ['fork', 2],
  ['exit', 1],
  ['mprotect', 4],
  ['munmap', 3],
  ['mremap', 3],
  ['madv-free', 3],
  ['madv-dontneed', 3],
  ['preempt', 9],
  ['fail-sys', 2],
  ['verify', 6],
];
const OP_TOTAL = OPS.reduce((a, [, w]) => a + w, 0);

/** One seeded run of the model-based test. */
export class Fuzz {
  readonly k: Kernel;
  readonly devs: MiniDevice[];
  readonly rng: Rng;
  /** A separate stream for sampling checks, so checking does not change what runs. */
  private readonly checkRng: Rng;
  readonly procs: Proc[] = [];
  private tasks: { t: Task; mm: MmStruct }[] = [];
  private readonly log: string[] = [];
  readonly stats: FuzzStats = {};
  private failSys = false;
  private step = 0;

  constructor(readonly seed: number) {
    this.rng = new Rng(seed);
    this.checkRng = new Rng(seed ^ 0x5bd1e995);
    this.k = new Kernel({ ramBytes: 128 << 20, seed, checkInvariants: false });
    installMmCoreChecker(this.k);
    this.devs = [new MiniDevice(this.k, 16384, 'fuzzdev0'), new MiniDevice(this.k, 16384, 'fuzzdev1')];
    installMigrateChecker(this.k, { freeLists: () => this.devs.map((d) => d.freeLists()) });
    this.k.core.zone.failHook = (order) =>
      this.failSys && order >= HPAGE_PMD_ORDER && this.rng.below(2) === 0;
    // Preemption points are frequent (two per page a CPU fault migrates back): audit a sample.
    this.k.sched.hooks.add((where) => {
      if (this.checkRng.below(64) === 0) this.checkNow(`preemption point ${where}`);
    });
    // Global init (pid 1) stays idle: the fuzzed processes may exit (init's exit panics).
    this.k.spawn();
    this.procs.push({ p: this.k.spawn(), mem: new FlatMemory() });
    for (let i = 0; i < 3; i++) this.opMmap(this.procs[0]);
  }

  private pick<T>(a: readonly T[]): T {
    return a[this.rng.below(a.length)];
  }

  private count(what: string): void {
    this.stats[what] = (this.stats[what] ?? 0) + 1;
  }

  private note(s: string): void {
    this.log.push(`#${this.step} ${s}`);
    if (this.log.length > 40) this.log.shift();
  }

  private fail(msg: string): never {
    throw new Error(
      `model-based test (seed ${this.seed}) step ${this.step}: ${msg}\nlast operations:\n${this.log.join('\n')}`,
    );
  }

  /**
   * True when every unfinished task is parked where the machine is consistent: not started, at
   * a phase boundary of a minidev migration, or between user accesses. Elsewhere a task is in
   * the middle of a kernel operation and the checkers would see its half-done state.
   */
  private quiescent(): boolean {
    for (const t of this.k.sched.tasks) {
      if (t.held.length) return false;
      const s = t.site;
      if (s === 'start' || s.startsWith('minidev: after') || s === 'fuzz: preempt') continue;
      if (s === 'user access: fault handled, access retried') continue;
      return false;
    }
    return true;
  }

  /** Runs both invariant checkers and fails on any violation or kernel WARN. */
  checkNow(where: string): void {
    if (!this.quiescent()) return;
    const v = this.k.check();
    const w = this.k.core.warnings;
    if (v.length || w.length)
      this.fail(`${where}: invariants violated\n${[...v, ...w.map((x) => `WARN: ${x.message}`)].join('\n')}`);
  }

  /** Models waiting for the mmap write lock: every migration holding mm's read lock finishes. */
  private quiesce(mm: MmStruct): void {
    for (const { t, mm: m } of this.tasks) if (m === mm && !t.done) this.k.sched.join(t);
    this.tasks = this.tasks.filter(({ t }) => !t.done);
  }

  private vmas(pr: Proc, need: number): Vma[] {
    return pr.p.mm.vmas.filter((v) => v.isAnonymous && (v.flags & need) === need);
  }

  /** A random page range inside v: often one aligned PMD, else up to maxPages pages. */
  private range(v: Vma, maxPages: number): [number, number] {
    const firstPmd = Math.ceil(v.start / PMD_SIZE) * PMD_SIZE;
    if (this.rng.below(4) < 3 && firstPmd + PMD_SIZE <= v.end) {
      const n = (Math.floor(v.end / PMD_SIZE) * PMD_SIZE - firstPmd) / PMD_SIZE;
      const a = firstPmd + this.rng.below(n) * PMD_SIZE;
      return [a, PMD_SIZE];
    }
    const pages = (v.end - v.start) / PAGE_SIZE;
    const first = this.rng.below(pages);
    const n = 1 + this.rng.below(Math.min(maxPages, pages - first));
    return [v.start + first * PAGE_SIZE, n * PAGE_SIZE];
  }

  private bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    const x = this.rng.next();
    for (let i = 0; i < n; i++) b[i] = (x >>> ((i & 3) * 8)) + i;
    return b;
  }

  private compare(pr: Proc, a: number, got: Uint8Array, what: string): void {
    const want = pr.mem.read(a, got.length);
    const d = firstDiff(got, want);
    if (d >= 0)
      this.fail(
        `${what} of pid ${pr.p.pid} at 0x${(a + d).toString(16)}: read ${got[d]}, oracle says ${want[d]}`,
      );
  }

  opMmap(pr: Proc): void {
    this.quiesce(pr.p.mm);
    // Keep every process under MAX_MAPPED so a long run never runs the machine out of memory.
    while (pr.p.mm.vmas.reduce((n, v) => n + v.end - v.start, 0) > MAX_MAPPED) {
      const v = this.pick(pr.p.mm.vmas);
      this.note(`munmap pid ${pr.p.pid} whole vma 0x${v.start.toString(16)}`);
      pr.p.munmap(v.start, v.end - v.start);
      pr.mem.zero(v.start, v.end - v.start);
    }
    const len = (1 + this.rng.below(3)) * PMD_SIZE + this.rng.below(3) * 64 * PAGE_SIZE;
    const prot = this.rng.below(10) === 0 ? PROT_READ : RW;
    const raw = pr.p.mmap(0, len + PMD_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS);
    if (raw < 0) this.fail(`mmap failed ${raw}`);
    // Mostly THP-aligned regions (the head and tail of an oversized mapping unmapped).
    const a = this.rng.below(4) ? Math.ceil(raw / PMD_SIZE) * PMD_SIZE : raw;
    if (a > raw) pr.p.munmap(raw, a - raw);
    if (a + len < raw + len + PMD_SIZE) pr.p.munmap(a + len, raw + PMD_SIZE - a);
    pr.mem.zero(a, len);
    const r = this.rng.below(10);
    if (r < 7) pr.p.madvise(a, len, MADV_HUGEPAGE);
    else if (r < 9) pr.p.madvise(a, len, MADV_NOHUGEPAGE);
    this.note(`mmap pid ${pr.p.pid} 0x${a.toString(16)}+0x${len.toString(16)} prot ${prot}`);
  }

  private opCpuWrite(pr: Proc): void {
    const v = this.pick(this.vmas(pr, VM_READ | VM_WRITE));
    if (!v) return;
    const [a, len] = this.range(v, 3);
    const whole = this.rng.below(3) === 0;
    const off = whole ? 0 : this.rng.below(PAGE_SIZE);
    const n = whole ? len : Math.min(len - off, 1 + this.rng.below(2 * PAGE_SIZE));
    if (n <= 0) return;
    const data = this.bytes(n);
    this.note(`cpu write pid ${pr.p.pid} 0x${(a + off).toString(16)}+${n}`);
    pr.p.writeBytes(a + off, data);
    pr.mem.write(a + off, data);
  }

  private opCpuRead(pr: Proc, max = 8): void {
    const v = this.pick(this.vmas(pr, VM_READ));
    if (!v) return;
    const [a, len] = this.range(v, max);
    this.note(`cpu read pid ${pr.p.pid} 0x${a.toString(16)}+0x${len.toString(16)}`);
    this.compare(pr, a, pr.p.readBytes(a, len), 'CPU read');
  }

  private opDevAccess(pr: Proc, write: boolean): void {
    const v = this.pick(this.vmas(pr, VM_READ | (write ? VM_WRITE : 0)));
    if (!v) return;
    const dev = this.pick(this.devs);
    const [a, len] = this.range(v, 48);
    const n = Math.min(len, 48 * PAGE_SIZE);
    this.note(
      `${dev.name} ${write ? 'write' : 'read'} pid ${pr.p.pid} 0x${a.toString(16)}+0x${n.toString(16)}`,
    );
    const buf = write ? this.bytes(n) : new Uint8Array(n);
    const r = dev.access(pr.p.mm, a, buf, write);
    if (r === -EFAULT && write) {
      // The device's own shared (read-only) private pages are reported without a write fault.
      this.count('dev-write-refused');
      return;
    }
    if (r) this.fail(`device access returned ${r}`);
    if (write) pr.mem.write(a, buf);
    else this.compare(pr, a, buf, `${dev.name} read`);
  }

  private opMigrate(pr: Proc, toDevice: boolean, async: boolean): void {
    const v = this.pick(this.vmas(pr, VM_READ));
    if (!v) return;
    const dev = this.pick(this.devs);
    const [a, len] = this.range(v, 600);
    const flags = MIGRATE_VMA_SELECT_SYSTEM | (this.rng.below(4) ? MIGRATE_VMA_SELECT_COMPOUND : 0);
    if (this.rng.below(4) === 0) {
      if (toDevice) dev.failLarge = 1;
      else dev.failLargeRam = 1;
    }
    const what = `${toDevice ? 'to' : 'from'} ${dev.name}${async ? ' (async)' : ''} flags ${flags}`;
    this.note(`migrate ${what} pid ${pr.p.pid} 0x${a.toString(16)}+0x${len.toString(16)}`);
    const g = toDevice ? dev.toDeviceSteps(v, a, a + len, flags) : dev.toSystemSteps(v, a, a + len);
    if (async) {
      this.tasks.push({
        t: this.k.sched.spawn(`migrate ${what}`, g, { delay: this.rng.below(4) }),
        mm: pr.p.mm,
      });
      return;
    }
    const { r, migs } = runSteps(g, this.k.core);
    if (r && r !== -12) this.fail(`migration returned ${r}`);
    for (const m of migs)
      for (let i = 0; i < m.npages; i++) {
        const f = mpfnFlags(m.src[i]);
        if (f & MIGRATE_PFN_COMPOUND) this.count(f & MIGRATE_PFN_VALID ? 'thp-unit' : 'compound-hole');
      }
  }

  private opFork(pr: Proc): void {
    if (this.procs.length >= 4) return;
    this.quiesce(pr.p.mm);
    const pid = pr.p.fork();
    const child = this.k.task(pid);
    if (!child) this.fail(`fork failed ${pid}`);
    this.note(`fork pid ${pr.p.pid} -> ${pid}`);
    this.procs.push({ p: child, mem: pr.mem.clone() });
  }

  private opExit(): void {
    if (this.procs.length < 2) return;
    const i = 1 + this.rng.below(this.procs.length - 1);
    const { p } = this.procs[i];
    this.quiesce(p.mm);
    this.note(`exit pid ${p.pid}`);
    p.exit(0);
    p.parent?.waitpid(p.pid);
    this.procs.splice(i, 1);
  }

  private opMprotect(pr: Proc): void {
    const v = this.pick(this.vmas(pr, 0));
    if (!v) return;
    this.quiesce(pr.p.mm);
    const [a, len] = this.range(v, 700);
    const prot = this.rng.below(10) === 0 ? PROT_NONE : this.rng.below(2) ? PROT_READ : RW;
    this.note(`mprotect pid ${pr.p.pid} 0x${a.toString(16)}+0x${len.toString(16)} ${prot}`);
    const r = pr.p.mprotect(a, len, prot);
    if (r) this.fail(`mprotect returned ${r}`);
  }

  private opMunmap(pr: Proc): void {
    const v = this.pick(this.vmas(pr, 0));
    if (!v || pr.p.mm.vmas.length < 2) return;
    this.quiesce(pr.p.mm);
    // Now and then a whole VMA goes (and a fresh THP-friendly one comes).
    const [a, len] = this.rng.below(3) ? this.range(v, 700) : [v.start, v.end - v.start];
    this.note(`munmap pid ${pr.p.pid} 0x${a.toString(16)}+0x${len.toString(16)}`);
    if (pr.p.munmap(a, len)) this.fail('munmap failed');
    pr.mem.zero(a, len);
    if (len === v.end - v.start && a === v.start) this.opMmap(pr);
  }

  private opMremap(pr: Proc): void {
    const v = this.pick(this.vmas(pr, 0));
    if (!v) return;
    this.quiesce(pr.p.mm);
    const [a, len] = this.range(v, 700);
    let dest: number;
    if (this.rng.below(3) === 0) {
      this.note(`mremap DONTUNMAP pid ${pr.p.pid} 0x${a.toString(16)}+0x${len.toString(16)}`);
      dest = pr.p.mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    } else {
      const area = pr.p.mmap(0, len + 2 * PMD_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
      pr.mem.zero(area, len + 2 * PMD_SIZE);
      const to =
        Math.ceil(area / PMD_SIZE) * PMD_SIZE + (this.rng.below(2) ? 0 : this.rng.below(512) * PAGE_SIZE);
      this.note(`mremap pid ${pr.p.pid} 0x${a.toString(16)}+0x${len.toString(16)} -> 0x${to.toString(16)}`);
      dest = pr.p.mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
      // Give back what the move did not cover of the scratch area.
      if (to > area) pr.p.munmap(area, to - area);
      pr.p.munmap(to + len, area + len + 2 * PMD_SIZE - (to + len));
    }
    if (dest < 0) this.fail(`mremap returned ${dest}`);
    pr.mem.move(a, dest, len);
  }

  private opMadvise(pr: Proc, advice: number): void {
    const v = this.pick(this.vmas(pr, 0));
    if (!v) return;
    const [a, len] = this.range(v, 700);
    this.note(`madvise ${advice} pid ${pr.p.pid} 0x${a.toString(16)}+0x${len.toString(16)}`);
    if (pr.p.madvise(a, len, advice)) this.fail('madvise failed');
    if (advice === MADV_DONTNEED) pr.mem.zero(a, len);
  }

  private pickOp(): string {
    let r = this.rng.below(OP_TOTAL);
    for (const [op, w] of OPS) {
      if (r < w) return op;
      r -= w;
    }
    return 'verify';
  }

  /** Writes a whole aligned PMD of a VMA (a THP fault when the PMD is empty). */
  private opThpFill(pr: Proc): void {
    const v = this.pick(this.vmas(pr, VM_READ | VM_WRITE));
    if (!v) return;
    const first = Math.ceil(v.start / PMD_SIZE) * PMD_SIZE;
    const n = (Math.floor(v.end / PMD_SIZE) * PMD_SIZE - first) / PMD_SIZE;
    if (n <= 0) return;
    const a = first + this.rng.below(n) * PMD_SIZE;
    this.note(`thp fill pid ${pr.p.pid} 0x${a.toString(16)}`);
    const data = this.bytes(PMD_SIZE);
    pr.p.writeBytes(a, data);
    pr.mem.write(a, data);
  }

  /** One random operation, then every checker. */
  runStep(): void {
    this.step++;
    const pr = this.pick(this.procs);
    const op = this.pickOp();
    this.count(op);
    const actions: Record<string, () => void> = {
      mmap: () => this.opMmap(pr),
      'cpu-write': () => this.opCpuWrite(pr),
      'thp-fill': () => this.opThpFill(pr),
      'cpu-read': () => this.opCpuRead(pr),
      'to-dev': () => this.opMigrate(pr, true, false),
      'to-dev-async': () => this.opMigrate(pr, true, true),
      'to-sys': () => this.opMigrate(pr, false, false),
      'to-sys-async': () => this.opMigrate(pr, false, true),
      'dev-read': () => this.opDevAccess(pr, false),
      'dev-write': () => this.opDevAccess(pr, true),
      fork: () => this.opFork(pr),
      exit: () => this.opExit(),
      mprotect: () => this.opMprotect(pr),
      munmap: () => this.opMunmap(pr),
      mremap: () => this.opMremap(pr),
      'madv-free': () => this.opMadvise(pr, MADV_FREE),
      'madv-dontneed': () => this.opMadvise(pr, MADV_DONTNEED),
      preempt: () =>
        this.k.sched.runSync(
          (function* (sched: Scheduler) {
            if (sched.preempt('fuzz: preempt')) yield RESCHED;
          })(this.k.sched),
          'preempt',
        ),
      'fail-sys': () => {
        this.failSys = !this.failSys;
      },
      verify: () => this.opCpuRead(pr, 3 * 512),
    };
    this.after(op, actions[op]);
  }

  private after(op: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof Error && e.message.startsWith('model-based test')) throw e;
      this.fail(`${op} threw ${e instanceof Error ? e.stack : String(e)}`);
    }
    this.checkNow(`after ${op}`);
  }

  /** Finishes every task, verifies all memory, tears everything down and checks nothing leaked. */
  finish(): void {
    for (const pr of this.procs) this.quiesce(pr.p.mm);
    this.checkNow('quiescent');
    if (inflightMigrations(this.k.core).length || this.k.core.migrationsInFlight)
      this.fail('a migration is still recorded in flight after every task finished');
    for (const pr of this.procs)
      for (const v of this.vmas(pr, VM_READ))
        this.compare(pr, v.start, pr.p.readBytes(v.start, v.end - v.start), 'final read');
    this.checkNow('final reads');
    for (const pr of [...this.procs].reverse()) pr.p.exit(0);
    this.checkNow('teardown');
    for (const d of this.devs)
      if (d.pgmap.refs) this.fail(`${d.name} still holds ${d.pgmap.refs} pages after exit`);
  }
}

/** Runs `steps` steps of the model-based test with `seed`; throws on the first failure. */
export function runFuzz(seed: number, steps: number): FuzzStats {
  const f = new Fuzz(seed);
  for (let i = 0; i < steps; i++) f.runStep();
  f.finish();
  return f.stats;
}
