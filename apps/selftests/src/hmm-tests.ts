/**
 * The port of tools/testing/selftests/mm/hmm-tests.c (Linux v6.19 + later fixes) onto the
 * kselftest harness port and the @hmm-model machine: fixtures `hmm` and `hmm2` with their
 * variants, all 38 tests (registered by the tests-*.ts files in file order), and the program's
 * main(): the HUGETLB_SETUP_DEFAULT_PAGES(1) constructor, then TEST_HARNESS_MAIN.
 *
 * Process model: one Kernel for the whole run (test_hmm's device state persists across tests as
 * on a real machine); each test runs in a fresh process (the harness's grandchild) that the
 * fixture setup spawns and that exits after the teardown (or, when setup SKIPs or the test
 * dies, when the next test starts).
 */

import { type Kernel, type KernelOptions, type Process, Rng, SIGKILL } from '@hmm-model/mm-core';
import { registerBenchmark } from './benchmark.js';
import {
  type BenchmarkRun,
  type Fixtures,
  ffs,
  HMM_COHERENCE_DEVICE_ONE,
  HMM_COHERENCE_DEVICE_TWO,
  HMM_PRIVATE_DEVICE_ONE,
  HMM_PRIVATE_DEVICE_TWO,
  Hmm2Self,
  type Hmm2Variant,
  HmmSelf,
  type HmmVariant,
  hmm_is_coherent_type,
  hmm_open,
  type SuiteState,
  type TestEnv,
} from './common.js';
import { Console, describeError, Harness, type HarnessIO, type TestContext } from './harness/index.js';
import { Libc } from './libc.js';
import { createMachine, type Machine } from './machine.js';
import { registerAnon } from './tests-anon.js';
import { registerChild } from './tests-child.js';
import { registerExclusive } from './tests-exclusive.js';
import { registerMigrate } from './tests-migrate.js';
import { registerMthp } from './tests-mthp.js';
import { registerSnapshot } from './tests-snapshot.js';
import { registerThp } from './tests-thp.js';
import { registerThpErr } from './tests-thp-err.js';
import { HugetlbSettings, hugetlb_setup_default } from './vmutil.js';

/** Options of one hmm-tests run. */
export interface HmmTestsOptions {
  /**
   * Load test_hmm with spm_addr_dev0/1, i.e. with the coherent pair /dev/hmm_dmirror2, 3
   * (default false: the module as test_hmm.sh's plain smoke run loads it).
   */
  readonly coherent?: boolean;
  /** Whether test_hmm is loaded at all (default true; false models a failed modprobe). */
  readonly module?: boolean;
  /** Seed of the kernel's scheduler and of hmm_random() (default 1). */
  readonly seed?: number;
  /** Extra options for the simulated kernel. */
  readonly kernel?: KernelOptions;
  /**
   * Model extension (`--mthp`): load test_hmm with every mTHP order declared and add the model's
   * own `migrate_anon_mthp_*` cases (tests-mthp.ts) after the ported ones.
   */
  readonly mthp?: boolean;
}

const DEFAULT_SEED = 1;

/** Models a 32-bit FNV-1a hash, to derive a per-test seed from the test's full name. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

interface LiveEnv extends TestEnv {
  readonly hook: (where: string) => void;
}

/**
 * One hmm-tests program on one simulated machine: the registered harness, the kernel and the
 * process of the test that runs now.
 */
export class HmmTests implements SuiteState {
  readonly harness: Harness;
  readonly kernel: Kernel;
  /** The booted machine (kernel + test_hmm module), for inspection. */
  readonly machine: Machine;
  readonly hugetlb = new HugetlbSettings();
  readonly benchmarks: BenchmarkRun[] = [];
  readonly seed: number;
  readonly coherent: boolean;
  readonly mthp: boolean;
  #current: LiveEnv | null = null;

  constructor(opts: HmmTestsOptions = {}) {
    this.seed = opts.seed ?? DEFAULT_SEED;
    this.coherent = opts.coherent ?? false;
    this.mthp = opts.mthp ?? false;
    this.machine = createMachine({
      coherent: this.coherent,
      mthp: this.mthp,
      module: opts.module,
      seed: this.seed,
      kernel: opts.kernel,
    });
    this.kernel = this.machine.kernel;
    this.harness = new Harness({ file: 'hmm-tests.c' });
    registerFixtures(this);
  }

  /**
   * Models the constructors that run before main(): HUGETLB_SETUP_DEFAULT_PAGES(1) in the
   * program's initial process (its `[INFO]` lines go to stdout before the TAP header).
   */
  runConstructors(io: HarnessIO = {}): void {
    const console = new Console(io);
    const proc = this.kernel.spawn();
    const libc = new Libc(proc, this.kernel);
    hugetlb_setup_default(libc, this.hugetlb, 1, (msg) => console.out(`# ${msg}`));
    proc.exit(0);
  }

  /**
   * Models TEST_HARNESS_MAIN of the program: constructors, then option parsing and the run.
   * Resolves to the exit code (0, 1, or 4 for -h / -l).
   */
  async main(argv: readonly string[], io: HarnessIO = {}): Promise<number> {
    this.runConstructors(io);
    try {
      return await this.harness.runMain(argv, io);
    } finally {
      const console = new Console(io);
      this.#finishCurrentReporting((line) => console.err(line));
    }
  }

  /**
   * Models the harness forking the test's grandchild: ends whatever is left of the previous
   * test's process, then spawns this test's process and makes the scheduler's preemption
   * points check this test's timeout.
   */
  beginTest(ctx: TestContext): TestEnv {
    this.#finishCurrentReporting((line) => ctx.printErr(line));
    const proc = this.kernel.spawn();
    const hook = (): void => {
      if (this.#current === env) ctx.onPreempt();
    };
    const env: LiveEnv = {
      suite: this,
      kernel: this.kernel,
      proc,
      libc: new Libc(proc, this.kernel),
      rng: new Rng(((ctx.seed ?? this.seed) ^ fnv1a(ctx.fullName)) >>> 0),
      tasks: [],
      hook,
    };
    this.kernel.sched.watchdogs.add(hook);
    this.#current = env;
    return env;
  }

  /** Models the test's grandchild exiting after its teardown. */
  endTest(env: TestEnv): void {
    if (this.#current === env) this.#finishCurrent();
  }

  /**
   * Ends the previous test's process when the harness did not (setup SKIP, the test died). A
   * model error while tearing it down is reported as a diagnostic instead of being blamed on
   * the test that runs next.
   */
  #finishCurrentReporting(printErr: (line: string) => void): void {
    try {
      this.#finishCurrent();
    } catch (error) {
      const [first, ...rest] = describeError(error).split('\n');
      printErr(`# exit of the previous test's process failed: ${first}`);
      for (const line of rest) printErr(`# ${line}`);
    }
  }

  #finishCurrent(): void {
    const env = this.#current;
    if (!env) return;
    this.#current = null;
    this.kernel.sched.watchdogs.delete(env.hook);
    // Threads still pending run to their end (the process's exit would kill them in C, but a
    // half-finished model operation must not be left behind).
    for (const task of env.tasks.splice(0)) if (!task.done) this.kernel.sched.join(task);
    killDescendants(env.proc);
    if (env.proc.state === 'running') env.proc.exit(0);
  }
}

/** Models the harness's SIGKILL of the test's process group for processes the test left running. */
function killDescendants(proc: Process): void {
  for (const child of [...proc.children]) {
    killDescendants(child);
    if (child.state === 'running') child.doExit(0, SIGKILL);
  }
}

/** Registers FIXTURE(hmm), FIXTURE(hmm2), their variants, setups, teardowns and every test. */
function registerFixtures(suite: HmmTests): void {
  const { harness } = suite;

  const hmm = harness.FIXTURE<HmmSelf, HmmVariant>('hmm', () => new HmmSelf());
  hmm.FIXTURE_VARIANT_ADD('hmm_device_private', { device_number: HMM_PRIVATE_DEVICE_ONE });
  hmm.FIXTURE_VARIANT_ADD('hmm_device_coherent', { device_number: HMM_COHERENCE_DEVICE_ONE });

  const hmm2 = harness.FIXTURE<Hmm2Self, Hmm2Variant>('hmm2', () => new Hmm2Self());
  hmm2.FIXTURE_VARIANT_ADD('hmm2_device_private', {
    device_number0: HMM_PRIVATE_DEVICE_ONE,
    device_number1: HMM_PRIVATE_DEVICE_TWO,
  });
  hmm2.FIXTURE_VARIANT_ADD('hmm2_device_coherent', {
    device_number0: HMM_COHERENCE_DEVICE_ONE,
    device_number1: HMM_COHERENCE_DEVICE_TWO,
  });

  hmm.FIXTURE_SETUP((ctx, self, variant) => {
    self.t = suite.beginTest(ctx);
    const { libc } = self.t;
    self.page_size = libc.sysconfPageSize();
    self.page_shift = ffs(self.page_size) - 1;

    self.fd = hmm_open(ctx, libc, variant.device_number);
    if (self.fd < 0 && hmm_is_coherent_type(variant.device_number))
      return ctx.SKIP('DEVICE_COHERENT not available');
    ctx.ASSERT_GE(self.fd, 0, 'self->fd', '0', 150);
  });

  hmm2.FIXTURE_SETUP((ctx, self, variant) => {
    self.t = suite.beginTest(ctx);
    const { libc } = self.t;
    self.page_size = libc.sysconfPageSize();
    self.page_shift = ffs(self.page_size) - 1;

    self.fd0 = hmm_open(ctx, libc, variant.device_number0);
    if (self.fd0 < 0 && hmm_is_coherent_type(variant.device_number0))
      return ctx.SKIP('DEVICE_COHERENT not available');
    ctx.ASSERT_GE(self.fd0, 0, 'self->fd0', '0', 161);
    self.fd1 = hmm_open(ctx, libc, variant.device_number1);
    ctx.ASSERT_GE(self.fd1, 0, 'self->fd1', '0', 163);
  });

  hmm.FIXTURE_TEARDOWN((ctx, self) => {
    const ret = self.t.libc.close(self.fd);

    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 170);
    self.fd = -1;
    suite.endTest(self.t);
  });

  hmm2.FIXTURE_TEARDOWN((ctx, self) => {
    let ret = self.t.libc.close(self.fd0);

    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 178);
    self.fd0 = -1;

    ret = self.t.libc.close(self.fd1);
    ctx.ASSERT_EQ(ret, 0, 'ret', '0', 182);
    self.fd1 = -1;
    suite.endTest(self.t);
  });

  // TEST_F()s in hmm-tests.c order (the harness runs them grouped by fixture and variant).
  const fixtures: Fixtures = { hmm, hmm2 };
  registerAnon(fixtures);
  registerChild(fixtures);
  registerMigrate(fixtures);
  registerSnapshot(fixtures);
  registerExclusive(fixtures);
  registerThp(fixtures);
  registerThpErr(fixtures);
  registerBenchmark(fixtures);
  if (suite.mthp) registerMthp(fixtures);
}

/**
 * Options the hmm-tests program reads besides the harness's: how the simulated test_hmm module
 * is loaded (`--coherent`, `--no-coherent`, HMM_COHERENT, HMM_NO_COHERENT) and `--seed`.
 */
export interface ProgramArgs {
  /** argv with `--coherent` / `--no-coherent` removed (what the harness parses). */
  readonly argv: readonly string[];
  /** test_hmm loaded with spm_addr_dev0/1 (the coherent devices exist). */
  readonly coherent: boolean;
  /** The `--seed` value if it parses (the harness reports a bad one). */
  readonly seed: number | undefined;
  /** `--mthp`: the model's own mTHP cases (see HmmTestsOptions.mthp). */
  readonly mthp: boolean;
}

function envFlag(v: string | undefined): boolean | undefined {
  if (v === undefined || v === '') return undefined;
  return v !== '0';
}

/**
 * Parses the program-level options (before `--`): `--coherent` loads test_hmm with the
 * special-purpose memory ranges (spm_addr_dev0/1), as `test_hmm.sh smoke <spm0> <spm1>` does;
 * `--no-coherent` (the default) loads it without them, as plain `test_hmm.sh smoke` does. The
 * last one given wins; without either, HMM_COHERENT=1 or HMM_NO_COHERENT=1 decides.
 */
export function parseProgramArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ProgramArgs {
  const out: string[] = [];
  let coherent: boolean | undefined;
  let seed: number | undefined;
  let mthp = false;
  let ended = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (i > 0 && !ended) {
      if (a === '--') ended = true;
      else if (a === '--coherent' || a === '--no-coherent') {
        coherent = a === '--coherent';
        continue;
      } else if (a === '--mthp') {
        mthp = true;
        continue;
      } else if (a === '--seed' || a.startsWith('--seed=')) {
        const v = a === '--seed' ? argv[i + 1] : a.slice('--seed='.length);
        if (v !== undefined && /^(0x[0-9a-f]+|\d+)$/i.test(v)) seed = Number(v);
      }
    }
    out.push(a);
  }
  coherent ??= envFlag(env.HMM_NO_COHERENT) ? false : (envFlag(env.HMM_COHERENT) ?? false);
  return { argv: out, coherent, seed, mthp };
}

/**
 * Runs the hmm-tests program as `argv` (argv[0] the program name) on a fresh machine, with the
 * harness options plus `--coherent` / `--no-coherent`, `--seed N`, `--json FILE` and
 * `--junit FILE`. `module: false` runs it on a machine where test_hmm failed to load. Resolves
 * to the exit code.
 */
export async function runHmmTests(
  argv: readonly string[],
  io: HarnessIO = {},
  kernel?: KernelOptions,
  module = true,
): Promise<number> {
  const args = parseProgramArgs(argv, io.env ?? process.env);
  const tests = new HmmTests({ coherent: args.coherent, seed: args.seed, kernel, module, mthp: args.mthp });
  return tests.main(args.argv, io);
}
