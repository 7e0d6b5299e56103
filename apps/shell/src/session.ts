import { appendFileSync, writeFileSync } from 'node:fs';
import type { Op } from '@hmm-model/explorer';
import {
  type Kernel,
  NotifierRecorder,
  newVmstat,
  O_RDWR,
  type Process,
  type RecordedInvalidation,
  SIGINT,
  sigTaskIgnored,
  VMSTAT_ITEMS,
  type Vmstat,
} from '@hmm-model/mm-core';
import { dmirrorPath } from './dmirror-uapi.js';

/**
 * Model-only: the explorer scenario the `explore` commands build (see commands/explore.ts). It
 * runs on the explorer's own machine, never on the session's kernel.
 */
export interface ExploreDraft {
  /** Process and thread slots. */
  readonly procs: number;
  readonly threads: number;
  /** Historical bugs switched back on (mm-core bug ids). */
  readonly bugs: readonly string[];
  /** Fix switches of the model's kernel findings (mm-core fix ids); absent: the explorer's default, every one. */
  readonly fixes?: readonly string[];
  /** An mTHP machine (the explorer's WorldOptions.mthp, model extension). */
  readonly mthp?: boolean;
  /** System RAM in MiB (the explorer's Scenario.ramMiB); absent: the explorer's 512. */
  readonly ramMiB?: number;
  /** Run one at a time before the threads start. */
  readonly prelude: Op[];
  /** Each runs on the thread slot it names, in list order per thread. */
  readonly ops: Op[];
  /** The pinned schedule string, or null for the default (`coop`). */
  schedule: string | null;
  /** Operations between full-check barriers (the explorer's default when absent). */
  readonly checkEvery?: number;
}

/** A copy of the vmstat counters (with nr_free_pages filled in from the zone). */
export type VmstatSnapshot = Vmstat;

/** Takes a vmstat snapshot (models reading /proc/vmstat). */
export function snapshotVmstat(kernel: Kernel): VmstatSnapshot {
  const v = newVmstat();
  for (const k of VMSTAT_ITEMS) v[k] = kernel.core.vmstat[k];
  v.nr_free_pages = kernel.core.zone.nrFree;
  return v;
}

/** Model-only: the page-table entries written so far by level and kind ('pte present': n, ...). */
export function snapshotEntries(kernel: Kernel): Record<string, number> {
  return kernel.core.events.entries.snapshot();
}

/** The entry counts that differ between two {@link snapshotEntries}, as [kind, after - before]. */
export function entriesDelta(
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
): [string, number][] {
  const out: [string, number][] = [];
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out.push([k, v - (before[k] ?? 0)]);
  return out;
}

/** The counters that differ between two snapshots, as [name, after - before]. */
export function vmstatDelta(before: VmstatSnapshot, after: VmstatSnapshot): [string, number][] {
  const out: [string, number][] = [];
  for (const k of VMSTAT_ITEMS) if (after[k] !== before[k]) out.push([k, after[k] - before[k]]);
  return out;
}

/** Where `record` writes (replaceable in tests). */
export interface ScriptFiles {
  /** Creates or truncates the file with `text`. */
  write(path: string, text: string): void;
  /** Appends `text` to the file. */
  append(path: string, text: string): void;
}

/** The real file system. */
export const NODE_FILES: ScriptFiles = {
  write: (path, text) => writeFileSync(path, text),
  append: (path, text) => appendFileSync(path, text),
};

/** A `record FILE` in progress: where, and how many command lines it holds. */
export interface Recording {
  readonly path: string;
  lines: number;
}

/** The mapping an mmap or mremap made, which `$` names. */
export interface LastMapping {
  readonly addr: number;
  /** Its length in bytes (page-rounded). */
  readonly length: number;
  /** The process it was made in. */
  readonly pid: number;
  /** The command that made it. */
  readonly by: 'mmap' | 'mremap';
}

/** A modelled kernel failure that hit this machine (see `KernelBug`): its taint flag and summary. */
export interface Taint {
  /** Models the taint letters set so far (D after an oops or BUG, W after a WARN). */
  readonly flags: string;
  /** The summary lines of every failure, oldest first. */
  readonly events: readonly string[];
}

/**
 * The shell's state over one machine: the kernel, the current process, named variables (`$`
 * is the last mmap), what the last state-changing command changed in vmstat, the device files
 * each process has opened, the selected dmirror device and the map zoom.
 */
export class Session {
  readonly kernel: Kernel;
  /** Pid of the current process, or null when every process has exited. */
  currentPid: number | null;
  /** Named variables; the empty name is `$`, the last mmap. */
  readonly vars = new Map<string, number>();
  /**
   * The counters the last state-changing command changed (its own work, without shell overhead):
   * vmstat items by name, and page-table entries written by kind ('pte present', 'pmd ...').
   */
  lastDelta: ReadonlyMap<string, number> = new Map();
  /** The last command line that changed counters. */
  lastMutation = '';
  /**
   * Counter changes caused by the shell's own scaffolding during the current command (the
   * ioctl buffers it mallocs, fills and frees), subtracted from the command's change.
   */
  readonly overhead = new Map<string, number>();
  /** The selected dmirror device number (commands take -d N to override). */
  device = 0;
  /** The address whose 2 MiB region the map shows page by page, or null for the 2 MiB view. */
  zoom: number | null = null;
  /** The address the last command touched: the live map keeps its row in view. */
  focus: number | null = null;
  /** Modelled kernel failures so far (null while the kernel is untainted). */
  taint: Taint | null = null;
  /** Every command line run so far that changes or narrates the machine (what `record` replays). */
  readonly history: string[] = [];
  /** The `record FILE` in progress, if any. */
  recording: Recording | null = null;
  /** Where `record` writes. */
  files: ScriptFiles = NODE_FILES;
  /** The explorer scenario being built (`explore machine` starts one), or null. */
  explore: ExploreDraft | null = null;
  /** The mmu-notifier invalidations the last state-changing command sent (`notifiers`). */
  lastNotifiers: readonly RecordedInvalidation[] = [];
  /** The command line that sent {@link lastNotifiers}. */
  lastNotifierLine = '';
  /** Observes every process's mm while a state-changing command runs. */
  private readonly recorder = new NotifierRecorder();
  /** fds of /dev/hmm_dmirror<n> opened by each process (per-open mirrors, as the selftests open them). */
  private readonly devFds = new Map<number, Map<number, number>>();

  /** The THP mode the machine booted with (what a recorded script must start from). */
  readonly bootThp: string;

  constructor(kernel: Kernel, first: Process) {
    this.kernel = kernel;
    this.currentPid = first.pid;
    this.bootThp = kernel.core.thpMode;
  }

  /** The current process if it is still running. */
  get proc(): Process | undefined {
    if (this.currentPid === null) return undefined;
    const p = this.kernel.task(this.currentPid);
    return p?.state === 'running' ? p : undefined;
  }

  /**
   * Runs shell scaffolding (not what the user asked for) and books its vmstat changes as
   * overhead, so a command's reported change is the model's work only.
   */
  untracked<T>(fn: () => T): T {
    const before = snapshotVmstat(this.kernel);
    const entries = snapshotEntries(this.kernel);
    const events = this.recorder.events.length;
    try {
      return fn();
    } finally {
      this.recorder.events.length = Math.min(this.recorder.events.length, events);
      for (const [k, d] of [
        ...vmstatDelta(before, snapshotVmstat(this.kernel)),
        ...entriesDelta(entries, snapshotEntries(this.kernel)),
      ])
        this.overhead.set(k, (this.overhead.get(k) ?? 0) + d);
    }
  }

  /** Before a state-changing command: observe every live process's mm, from an empty record. */
  startNotifierRecording(): void {
    for (const p of this.processes()) if (p.state === 'running') this.recorder.attach(p.mm);
    this.recorder.clear();
  }

  /** After it: keep what it sent for `notifiers`. */
  stopNotifierRecording(line: string): void {
    this.lastNotifiers = [...this.recorder.events];
    this.lastNotifierLine = line.trim();
    this.recorder.clear();
    this.recorder.detachAll();
  }

  /** The mapping `$` names (where the last mmap / mremap put it, its length, in which process), or null. */
  lastMapping: LastMapping | null = null;

  /** After a successful mmap / mremap: `$` is now this mapping. */
  setLastMapping(m: LastMapping): void {
    this.vars.set('', m.addr);
    this.lastMapping = m;
  }

  /** Looks up a variable for expressions (`$` = name ''). */
  lookup = (name: string): number | undefined => this.vars.get(name);

  /** Every process the kernel has not reaped, by pid. */
  processes(): Process[] {
    const out: Process[] = [];
    for (const pid of [...this.kernel.tasks.keys()].sort((a, b) => a - b)) {
      const p = this.kernel.task(pid);
      if (p) out.push(p);
    }
    return out;
  }

  /**
   * Models a program's `open("/dev/hmm_dmirror<n>", O_RDWR)`, once per process and device:
   * returns the fd or -errno. Each process gets its own open file (its own mirror).
   */
  deviceFd(proc: Process, dev: number): number {
    let fds = this.devFds.get(proc.pid);
    if (!fds) {
      fds = new Map();
      this.devFds.set(proc.pid, fds);
    }
    const have = fds.get(dev);
    if (have !== undefined && proc.fds.has(have)) return have;
    const fd = proc.open(dmirrorPath(dev), O_RDWR);
    if (fd >= 0) fds.set(dev, fd);
    return fd;
  }

  /** The dmirror devices a process has open, as [device, fd]. */
  openDevices(pid: number): [number, number][] {
    return [...(this.devFds.get(pid) ?? new Map<number, number>()).entries()];
  }

  /** Records a modelled kernel failure: adds its taint letter and summary. */
  addTaint(letter: string, summary: string): void {
    const flags = this.taint?.flags ?? '';
    this.taint = {
      flags: flags.includes(letter) ? flags : [...flags, letter].sort().join(''),
      events: [...(this.taint?.events ?? []), summary],
    };
  }

  /** Pid of the process the last Ctrl-C was sent to (while a long command ran), or null. */
  interruptedPid: number | null = null;

  /**
   * Models Ctrl-C on the terminal while a long command runs: SIGINT to the current process.
   * Its programs install no handler, so the default action applies: the signal is fatal
   * (fatal_signal_pending() is true for it). A process inside a syscall exits when the syscall
   * returns (kernel loops that check for fatal signals stop early); otherwise it exits now.
   * Global init ignores it (prepare_signal() -> sig_task_ignored()): init lives, and the shell
   * stops the command at its next step (see `stopped` in commands/steps.ts).
   */
  interrupt(): void {
    const p = this.proc;
    if (!p) return;
    this.interruptedPid = p.pid;
    if (sigTaskIgnored(p, SIGINT)) return;
    if (p.inKernel > 0) p.fatalSignal = p.fatalSignal || SIGINT;
    else p.doExit(0, SIGINT);
  }

  /** After a process change: drop fds of processes that are gone, pick a running current process. */
  reconcile(): void {
    for (const pid of [...this.devFds.keys()])
      if (this.kernel.task(pid)?.state !== 'running') this.devFds.delete(pid);
    if (this.proc) return;
    const cur = this.currentPid === null ? undefined : this.kernel.task(this.currentPid);
    let parent = cur?.parent;
    while (parent && parent.state !== 'running') parent = parent.parent;
    if (parent) {
      this.currentPid = parent.pid;
      return;
    }
    const alive = this.processes().find((p) => p.state === 'running');
    this.currentPid = alive ? alive.pid : null;
  }
}
