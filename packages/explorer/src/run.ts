/**
 * One explorer run: a scenario (a sequential prelude, then operations per thread) on a fresh
 * machine under one schedule. Every thread slot is a task; the scheduler's strategy decides who
 * runs at each preemption point. After every operation the oracle checks what it read and the
 * machine's WARNs; at a barrier every `checkEvery` operations (all threads in user space) every
 * invariant checker runs; at the end a full check and a verification read of all memory.
 */
import {
  Finding,
  KernelBug,
  type KGen,
  ModelBug,
  PAGE_SIZE,
  parseSchedule,
  RESCHED,
  type Strategy,
  type Task,
  waitEvent,
  XLATE_OOM,
} from '@hmm-model/mm-core';
import { describeOp, newOutcome, type Op } from './op.js';
import { execOp } from './ops.js';
import { Oracle } from './oracle.js';
import { checkDriverCounters, checkRangeQuiescent } from './touched.js';
import { type ProcSlot, regionAddr, World, type WorldOptions } from './world.js';

/** Model-only: a generated scenario. */
export interface Scenario {
  /** Thread slots per process. */
  readonly threads: number;
  /** Process slots. */
  readonly procs: number;
  /** Run first, one at a time, before the threads start (not part of the schedule). */
  readonly prelude: readonly Op[];
  /** The operations; each runs on the thread slot (p, t) it names, in list order per thread. */
  readonly ops: readonly Op[];
  /**
   * Every this many operations the threads meet at a barrier for a full invariant check
   * (default 64). Part of the scenario: the barriers are synchronisation points, so a replay
   * needs the same ones.
   */
  readonly checkEvery?: number;
  /** The machine has mTHP (WorldOptions.mthp): part of the scenario, so a replay boots the same machine. */
  readonly mthp?: boolean;
  /**
   * System RAM of the machine in MiB (default 512, or RunOptions.ramBytes): part of the
   * scenario, so a replay boots the same machine (`pnpm fuzz --ram`).
   */
  readonly ramMiB?: number;
  /**
   * vm.oom_kill_allocating_task of the machine (WorldOptions.oomKillAllocatingTask; absent: the
   * model's 1): part of the scenario, so a replay boots the same machine.
   */
  readonly oomKillAllocatingTask?: number;
}

/** Options of one run. */
export interface RunOptions {
  readonly bugs?: readonly string[];
  /** Fix switches (default: every one, see WorldOptions.fixes). */
  readonly fixes?: readonly string[];
  /** A schedule string (coop, random:..., pct:..., trace:...) or a strategy object. */
  readonly schedule: string | Strategy;
  /** Barrier cadence when the scenario has none (default 64). */
  readonly checkEvery?: number;
  /** Count preemption sites reached (coverage). */
  readonly countSites?: boolean;
  /** System RAM of the machine when the scenario names none (Scenario.ramMiB). */
  readonly ramBytes?: number;
  /**
   * Called with the machine when the run ends (found or clean), to inspect its state. The machine
   * is disposed when runScenario returns: do not keep it.
   */
  readonly inspect?: (w: World) => void;
  /**
   * Called after every operation (debugging): `quiescent` is true when no other operation is in
   * the kernel, so the invariant checkers may run.
   */
  readonly afterOp?: (w: World, op: Op, quiescent: boolean) => void;
}

/** Model-only: what a run found and how to replay it. */
export interface RunResult {
  /** The first finding, or null for a clean run. */
  readonly finding: Finding | null;
  /** Operations that ran (an operation of a dead process or an inaccessible range is skipped). */
  readonly opsDone: number;
  readonly steps: number;
  /** `trace:...`: replays this run's interleaving on the same scenario. */
  readonly trace: string;
  readonly strategy: string;
  /** The last operations completed (for reports). */
  readonly log: readonly string[];
  /** Preemption sites reached (when counted). */
  readonly sites: ReadonlyMap<string, number>;
  /** Pages compared byte for byte. */
  readonly checkedPages: number;
  /** Full invariant checks run (every checker, whole machine). */
  readonly checks: number;
  /** Incremental checks run (the range an operation touched, driver counters). */
  readonly incrementalChecks: number;
  /** Operations per kind that ran (not skipped). */
  readonly kinds: Readonly<Record<string, number>>;
  /** Page-table entries the machine wrote, by level and kind (mm-core EntryStats.snapshot()). */
  readonly entries: Readonly<Record<string, number>>;
  /** Indices (in scenario.ops) of the operations that started. */
  readonly started: ReadonlySet<number>;
}

/** A model inconsistency or JavaScript error met during a run, as a finding. */
export class ModelFinding extends Finding {
  constructor(message: string, details: readonly string[] = []) {
    super('invariant', message, details);
    this.name = 'ModelFinding';
  }
}

function asFinding(e: unknown): Finding {
  if (e instanceof Finding) return e;
  if (e instanceof ModelBug) return new ModelFinding(`MODEL BUG: ${e.message}`);
  const err = e instanceof Error ? e : new Error(String(e));
  return new ModelFinding(
    `model error: ${err.name}: ${err.message}`,
    (err.stack ?? '').split('\n').slice(1, 6),
  );
}

/**
 * WARNs the kernel prints in normal operation (the model prints them too), with the reason they
 * are not findings. A coherent dmirror device has one chunk at its special-purpose memory range; a second
 * chunk conflicts in memremap_pages() (lib/test_hmm.c's own behaviour, see apps/selftests/README.md).
 */
/** Completed operations a run keeps for its report. */
export let LOG_KEEP = 60;
/** Sets how many completed operations a run keeps (debugging). */
export function setLogKeep(n: number): void {
  LOG_KEEP = n;
}

export const BENIGN_WARNINGS: readonly RegExp[] = [
  /memremap_pages: Conflicting mapping in same section/,
  // lib/test_hmm.c dmirror_do_fault(): WARN_ON(default_flags & HMM_PFN_WRITE) when hmm_range_fault()
  // reports the caller's own device-private entry read-only (after fork()): hmm_vma_handle_pte()
  // and hmm_vma_handle_absent_pmd() do not fault pages the caller owns, so a dmirror WRITE of a
  // page its own device holds read-only WARNs and fails with -EFAULT on Linux too.
  /dmirror_do_fault: write requested but page is read-only/,
];

/** The kinds of finding a run may end with (for summaries). */
export function findingKey(f: Finding): string {
  if (f instanceof KernelBug) return `kernel-bug:${f.fn}`;
  const shape = (t: string) =>
    t
      .replace(/0x[0-9a-f]+/gi, '#')
      .replace(/\d+/g, '#')
      .trim()
      .slice(0, 48);
  // Invariant findings share their first line; the first violation tells them apart.
  const what = f.category === 'invariant' && f.details.length ? f.details[0] : f.message.split('\n')[0];
  return `${f.category}:${shape(what)}`;
}

/** The verification read's word per page: one array per worker, reused. */
const verifyWordsBuf = new Float64Array(512);
function verifyWords(npages: number): Float64Array {
  return verifyWordsBuf.subarray(0, npages);
}

/** Runs one scenario under one schedule on a fresh machine. */
export function runScenario(sc: Scenario, opts: RunOptions): RunResult {
  return new ScenarioRun(sc, opts).run();
}

/**
 * One run's state and steps. A class rather than closures inside runScenario(): the thread
 * tasks call these steps on every operation, and closures made per run would have the
 * optimizing compiler throw its code away and compile it again for every run.
 */
class ScenarioRun {
  private readonly w: World;
  private readonly k: World['kernel'];
  private readonly sched: World['kernel']['sched'];
  private readonly oracle: Oracle;
  /** The last LOG_KEEP operations and their results (formatted only for the result). */
  private readonly log: [Op, string][] = [];
  private readonly kinds: Record<string, number> = {};
  private finding: Finding | null = null;
  private readonly started = new Set<number>();
  private opsDone = 0;
  private inFlight = 0;
  private incremental = 0;
  private checks = 0;
  private warnings: number;
  private readonly alive: (s: number) => boolean;
  // The barrier: threads still running, arrived at the current barrier, barriers passed,
  // operations since the last full check, and the cadence.
  private live = 0;
  private arrived = 0;
  private phase = 0;
  private sinceCheck = 0;
  private readonly every: number;

  constructor(
    private readonly sc: Scenario,
    private readonly opts: RunOptions,
  ) {
    const wopts: WorldOptions = {
      bugs: opts.bugs ?? [],
      ...(opts.fixes ? { fixes: opts.fixes } : {}),
      procs: sc.procs,
      threads: sc.threads,
      ...(sc.ramMiB ? { ramBytes: sc.ramMiB * 2 ** 20 } : opts.ramBytes ? { ramBytes: opts.ramBytes } : {}),
      ...(sc.mthp ? { mthp: true } : {}),
      ...(sc.oomKillAllocatingTask !== undefined ? { oomKillAllocatingTask: sc.oomKillAllocatingTask } : {}),
    };
    this.w = new World(wopts);
    this.k = this.w.kernel;
    this.sched = this.k.sched;
    this.sched.maxStepsWithoutProgress = 500_000;
    this.sched.countSites = opts.countSites ?? false;
    const core = this.k.core;
    this.oracle = new Oracle(sc.procs, { dm: core.fixed('K11'), gpu: core.fixed('K12') });
    this.warnings = this.k.core.warnings.length;
    const w = this.w;
    this.alive = (s: number) => w.live(s) !== null;
    this.every = sc.checkEvery ?? opts.checkEvery ?? 64;
  }

  run(): RunResult {
    const { sc, sched, w, opts } = this;
    // The prelude runs sequentially (cooperative schedule, not recorded). Each of its operations
    // gets the incremental check; the first barrier or the end runs the full one.
    try {
      for (const op of sc.prelude) sched.runSync(this.runOp(op), 'prelude');
    } catch (e) {
      return this.result(asFinding(e));
    }

    // Threads and the barrier.
    const byThread = new Map<string, [Op, number][]>();
    for (let i = 0; i < sc.ops.length; i++) {
      const op = sc.ops[i];
      const key = `${op.p}.${op.t}`;
      let l = byThread.get(key);
      if (!l) byThread.set(key, (l = []));
      l.push([op, i]);
    }
    this.live = byThread.size;
    const strategy = typeof opts.schedule === 'string' ? parseSchedule(opts.schedule) : opts.schedule;
    sched.setStrategy(strategy);
    const tasks: Task[] = [];
    for (const [key, ops] of byThread) {
      const [p, t] = key.split('.').map(Number);
      const slot = w.live(p);
      const owner: ProcSlot['threads'][number] | null = slot ? (slot.threads[t] ?? null) : null;
      tasks.push(sched.spawn(`p${p}.t${t}`, this.thread(ops), { kind: 'user', owner }));
    }
    try {
      // Evaluated at every preemption point (Scheduler.preempt): a loop, no closure per call.
      sched.runUntil(() => {
        if (this.finding !== null) return true;
        // A kernel task that failed (a modelled panic in a victim's exit) stops the machine.
        for (const t of w.kernel.core.oomReapers) if (t.error !== undefined) return true;
        for (const t of w.kernel.core.oomExits) if (t.error !== undefined) return true;
        for (const t of tasks) if (!t.done) return false;
        for (const t of w.kernel.core.oomReapers) if (!t.done) return false;
        for (const t of w.kernel.core.oomExits) if (!t.done) return false;
        return true;
      });
    } catch (e) {
      this.finding ??= asFinding(e);
    }
    for (const t of tasks) if (t.error !== undefined) this.finding ??= asFinding(t.error);
    for (const t of w.kernel.core.oomReapers) if (t.error !== undefined) this.finding ??= asFinding(t.error);
    for (const t of w.kernel.core.oomExits) if (t.error !== undefined) this.finding ??= asFinding(t.error);
    if (this.finding) return this.result(this.finding);

    // Quiescent: the final full check and a verification read of everything the oracle knows.
    try {
      this.fullCheck('at the end');
      this.verify();
      this.fullCheck('after the verification reads');
    } catch (e) {
      return this.result(asFinding(e));
    }
    return this.result(null);
  }

  private touchedCheck(op: Op): string[] {
    const w = this.w;
    const out = checkDriverCounters(w);
    const slot = w.live(op.p);
    if (!slot || op.n === undefined) return out;
    const mm = slot.proc.mm;
    out.push(
      ...checkRangeQuiescent(
        w,
        mm,
        regionAddr(op.r ?? 0, op.off ?? 0),
        regionAddr(op.r ?? 0, (op.off ?? 0) + op.n),
      ),
    );
    if (op.k === 'mremap')
      out.push(
        ...checkRangeQuiescent(
          w,
          mm,
          regionAddr(op.r2 ?? 0, op.off2 ?? 0),
          regionAddr(op.r2 ?? 0, (op.off2 ?? 0) + op.n),
        ),
      );
    return out;
  }

  private note(op: Op, ret: string): void {
    this.log.push([op, ret]);
    if (this.log.length > LOG_KEEP) this.log.shift();
  }

  private *runOp(op: Op): KGen {
    const { w, oracle, opts } = this;
    const out = newOutcome();
    // A thread of a process with a fatal signal pending runs no more user code: in the kernel it
    // dies on its way back to user space (the process's exit waits for its last thread in the
    // kernel), so it starts no new operation.
    if (w.live(op.p)?.proc.fatalSignal) out.skipped = true;
    // User space touches only memory it has mapped (an access the oracle knows would fault is
    // not made: it would kill the process and end the scenario early).
    else if ((op.k === 'read' || op.k === 'write') && w.live(op.p)) {
      const first = regionAddr(op.r ?? 0, op.off ?? 0) / PAGE_SIZE;
      if (!oracle.accessible(op.p, first, first + (op.n ?? 0), op.k === 'write')) out.skipped = true;
    }
    const rec = oracle.begin(op);
    this.inFlight++;
    try {
      if (!out.skipped) yield* execOp(w, op, out);
    } finally {
      this.inFlight--;
    }
    const quiet = this.quiescent();
    opts.afterOp?.(w, op, quiet);
    // Incremental check: with nothing else in the kernel, the range the operation touched.
    if (quiet && !out.skipped) {
      this.incremental++;
      const v = this.touchedCheck(op);
      if (v.length) throw new Finding('invariant', `invariants violated after ${describeOp(op)}`, v);
    }
    const bad = oracle.end(rec, out, this.alive);
    // An operation finished: progress for the livelock bound, which otherwise counts from the
    // last thread that ended (a run of many operations per thread is no livelock).
    this.sched.noteProgress();
    if (!out.skipped) {
      this.opsDone++;
      this.kinds[op.k] = (this.kinds[op.k] ?? 0) + 1;
    }
    this.note(
      op,
      out.skipped
        ? 'skipped'
        : out.signal
          ? `signal ${out.signal}${out.handled ? ' (handled)' : ''}`
          : String(out.ret),
    );
    if (bad) throw new Finding('divergence', bad);
    const warnings = this.k.core.warnings;
    while (warnings.length > this.warnings) {
      const msg = warnings[this.warnings++].message;
      if (!BENIGN_WARNINGS.some((re) => re.test(msg))) throw new Finding('warning', `WARN: ${msg}`);
    }
  }

  private fullCheck(where: string): void {
    this.checks++;
    const v = this.k.check();
    if (v.length) throw new Finding('invariant', `invariants violated ${where}`, v.slice(0, 40));
  }

  /**
   * Nothing else is in the kernel: no operation in flight, and no OOM victim exiting in a task of
   * its own (mm-core oomKillProcess(): its exit migrates, zaps and frees like a syscall does).
   */
  private quiescent(): boolean {
    if (this.inFlight !== 0) return false;
    for (const t of this.k.core.oomExits) if (!t.done) return false;
    return true;
  }

  private *barrier(): KGen {
    this.arrived++;
    if (this.arrived === this.live) {
      this.arrived = 0;
      this.sinceCheck = 0;
      // An OOM victim still exiting is kernel work in flight: the next barrier or the end checks.
      if (this.quiescent()) this.fullCheck(`at barrier ${this.phase + 1}`);
      this.phase++;
      return;
    }
    const mine = this.phase;
    yield* waitEvent('explorer barrier', () => this.phase !== mine);
  }

  private *thread(ops: readonly [Op, number][]): KGen {
    try {
      for (const [op, index] of ops) {
        if (this.finding) return;
        if (this.sched.preempt('user: between operations')) yield RESCHED;
        if (this.sinceCheck >= this.every) yield* this.barrier();
        if (this.finding) return;
        this.sinceCheck++;
        this.started.add(index);
        yield* this.runOp(op);
      }
    } catch (e) {
      this.finding ??= asFinding(e);
    } finally {
      this.live--;
      if (!this.finding && this.live > 0 && this.arrived === this.live) {
        this.arrived = 0;
        this.sinceCheck = 0;
        try {
          if (this.quiescent()) this.fullCheck(`at barrier ${this.phase + 1}`);
        } catch (e) {
          this.finding ??= asFinding(e);
        }
        this.phase++;
      }
    }
  }

  /** The verification read of every page the oracle knows, in every live process. */
  private verify(): void {
    for (let s = 0; s < this.sc.procs; s++) this.verifyProc(s);
  }

  private verifyProc(s: number): void {
    const { w, sched, oracle } = this;
    const slot = w.live(s);
    if (!slot) return;
    const pages = oracle.knownPages(s);
    for (let i = 0; i < pages.length; ) {
      let j = i + 1;
      while (j < pages.length && pages[j] === pages[j - 1] + 1 && j - i < 512) j++;
      const first = pages[i];
      const got = verifyWords(j - i);
      const r = sched.runSync(slot.proc.sys.accessWords(first * PAGE_SIZE, got, 'read'), 'verify');
      // Out of memory faulting pages back from a device: the machine's limit, not a divergence.
      if (r === XLATE_OOM) return;
      if (r < 0)
        throw new Finding(
          'divergence',
          `verification read of p${s} at 0x${(first * PAGE_SIZE).toString(16)}: fault ${r}`,
        );
      for (let k = i; k < j; k++) {
        const g = got[k - i];
        const want = oracle.expected(s, pages[k]);
        if (g !== want)
          throw new Finding(
            'divergence',
            `verification read of p${s} at 0x${(pages[k] * PAGE_SIZE).toString(16)}: read ${g < 0 ? 'a page whose words differ' : `0x${g.toString(16)}`}, the oracle says 0x${want.toString(16)}`,
          );
      }
      i = j;
    }
  }

  private result(f: Finding | null): RunResult {
    const { w, sched, opts } = this;
    const entries = w.kernel.core.events.entries.snapshot();
    try {
      opts.inspect?.(w);
    } finally {
      w.dispose();
    }
    const checkedPages = this.oracle.checkedPages;
    this.oracle.dispose();
    return {
      finding: f,
      opsDone: this.opsDone,
      steps: sched.steps,
      trace: sched.schedule().trace,
      strategy: sched.strategy.describe(),
      log: this.log.map(([op, ret]) => `${describeOp(op)} -> ${ret}`),
      sites: sched.sites,
      checkedPages,
      checks: this.checks,
      incrementalChecks: this.incremental,
      kinds: this.kinds,
      entries,
      started: this.started,
    };
  }
}
