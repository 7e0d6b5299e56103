/**
 * A model of tools/testing/selftests/mm/run_vmtests.sh (v6.19 text) on one simulated machine:
 * the options (`-a -h -n -t CATEGORIES`, bash getopts diagnostics), the hugetlb pool sizing, and
 * for every selected and ported test binary the script's framing (`# -----`, `# running ./x`,
 * the binary's stdout and stderr prefixed by `# `, `# [PASS]` / `# [SKIP]` / `# [FAIL]` and the
 * `ok N x` / `ok N x # SKIP` / `not ok N x # exit=R` TAP lines), then `# SUMMARY: ...`, `1..N`
 * and the script's exit code (1 after any failure, 4 after a skip: the last one wins, as in bash).
 *
 * Not modelled: the sysctl writes the script makes for tests not ported here, `drop_caches` /
 * `compact_memory` and their `sleep 2` before thp and hugetlb tests (no page cache to drop, no
 * compaction in the model), and restoring nr_hugepages at the end (the model's pool only grows).
 */

import { hugetlbGrowPool, type Kernel } from '@hmm-model/mm-core';
import { Libc, type TextStream } from '@hmm-model/selftests';
import { BINARIES, type VmTestBinary } from './binaries.js';
import { bootVmtestsMachine, type VmtestsMachineOptions } from './machine.js';
import { readWholeFile, runProgram } from './program.js';
import { entryBinary, RUN_VMTESTS_ENTRIES, type ScriptEntry, USAGE_BODY } from './script.js';

/** Models `ksft_skip=4` of the script. */
export const KSFT_SKIP_SH = 4;

/** Models `$(nproc)` on the simulated machine. */
export const MODEL_NPROC = 2;

/** The script's environment: its stdout and stderr, getenv(), the clocks handed to the binaries. */
export interface RunVmtestsIO {
  readonly stdout: TextStream;
  readonly stderr: TextStream;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly time?: () => number;
  readonly monotonicNs?: () => number;
}

/** Options of a run beside the command line. */
export interface RunVmtestsOptions {
  /** The machine to boot (default: {@link bootVmtestsMachine} with no options). */
  readonly machine?: VmtestsMachineOptions;
  /** The ported binaries (default: all of binaries.ts). */
  readonly binaries?: ReadonlyMap<string, VmTestBinary>;
  /** The script's test list (default: run_vmtests.sh's). */
  readonly entries?: readonly ScriptEntry[];
  /** Filled with the test name of every run (model-only). */
  readonly ran?: string[];
  /** Filled with the test name of every failed run. */
  readonly failed?: string[];
}

/** The parsed command line (bash `getopts "aht:n"`). */
interface Opts {
  runAll: boolean;
  tapPrefix: string;
  items: string;
}

/** Models one `| sed -e "s/^/${TAP_PREFIX}/"` stage: prefixes every line, keeps a last line without newline as is. */
class SedPrefix implements TextStream {
  readonly #out: TextStream;
  readonly #prefix: string;
  #atLineStart = true;
  constructor(out: TextStream, prefix: string) {
    this.#out = out;
    this.#prefix = prefix;
  }
  write(chunk: string): boolean {
    if (!chunk || !this.#prefix) {
      if (chunk) this.#out.write(chunk);
      return true;
    }
    let out = '';
    let from = 0;
    while (from < chunk.length) {
      if (this.#atLineStart) out += this.#prefix;
      const nl = chunk.indexOf('\n', from);
      if (nl < 0) {
        out += chunk.slice(from);
        this.#atLineStart = false;
        break;
      }
      out += chunk.slice(from, nl + 1);
      this.#atLineStart = true;
      from = nl + 1;
    }
    this.#out.write(out);
    return true;
  }
}

/** The running script: its output, options, counters and machine. */
class Script {
  readonly io: RunVmtestsIO;
  readonly opts: Opts;
  readonly kernel: Kernel;
  readonly binaries: ReadonlyMap<string, VmTestBinary>;
  countTotal = 0;
  countPass = 0;
  countFail = 0;
  countSkip = 0;
  exitcode = 0;
  haveHugepages = false;
  /** Model-only: where the run and failed test names go (RunVmtestsOptions.ran/failed). */
  ran: string[] | undefined;
  failed: string[] | undefined;

  constructor(io: RunVmtestsIO, opts: Opts, kernel: Kernel, binaries: ReadonlyMap<string, VmTestBinary>) {
    this.io = io;
    this.opts = opts;
    this.kernel = kernel;
    this.binaries = binaries;
  }

  /** Models `echo "<line>" | tap_prefix`. */
  tapPrefix(line: string): void {
    this.io.stdout.write(`${this.opts.tapPrefix}${line}\n`);
  }

  /** Models `echo "<line>" | tap_output`: printed (word-split and re-joined by `echo $str`) unless -n. */
  tapOutput(line: string): void {
    if (this.opts.tapPrefix) this.io.stdout.write(`${line.trim().split(/\s+/).join(' ')}\n`);
  }

  /** Models test_selected CATEGORY: everything by default, else CATEGORY as a word of -t. */
  testSelected(category: string): boolean {
    if (this.opts.items === 'default') return true;
    return ` ${this.opts.items} `.includes(` ${category} `);
  }
}

/** Models the script's `getopts "aht:n" OPT` loop; returns the options, or an exit code (-h). */
function parseOptions(argv: readonly string[], io: RunVmtestsIO): Opts | number {
  const argv0 = argv[0] ?? './run_vmtests.sh';
  const opts: Opts = { runAll: false, tapPrefix: '# ', items: '' };
  let i = 1;
  while (i < argv.length) {
    const a = argv[i];
    if (a === '--') break;
    if (a.length < 2 || a[0] !== '-') break; // getopts stops at the first operand
    for (let j = 1; j < a.length; j++) {
      const c = a[j];
      if (c === 'a') opts.runAll = true;
      else if (c === 'n') opts.tapPrefix = '';
      else if (c === 'h') {
        usage(argv0, io);
        return 0;
      } else if (c === 't') {
        if (j + 1 < a.length) opts.items = a.slice(j + 1);
        else if (i + 1 < argv.length) opts.items = argv[++i];
        else io.stderr.write(`${argv0}: option requires an argument -- t\n`);
        break;
      } else io.stderr.write(`${argv0}: illegal option -- ${c}\n`);
    }
    i++;
  }
  // VM_SELFTEST_ITEMS=${VM_SELFTEST_ITEMS:-default}
  if (!opts.items) opts.items = 'default';
  return opts;
}

/** Models usage(): the heredoc on stdout (the script then exits 0). */
function usage(argv0: string, io: RunVmtestsIO): void {
  io.stdout.write(`usage: ${argv0} [ options ]\n${USAGE_BODY.map((l) => `${l}\n`).join('')}`);
}

/** Models `while read -r name size unit; do ...; done < /proc/meminfo` for one field. */
function meminfoField(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    const [n, size] = line.trim().split(/\s+/);
    if (n === name && size !== undefined) return Number(size);
  }
  return undefined;
}

/**
 * Models the hugetlb preamble: read HugePages_Free and Hugepagesize, grow nr_hugepages (up to two
 * tries) until max(2 * nproc huge pages, 256 MiB) are free, report a shortfall; sets
 * HAVE_HUGEPAGES. The model has no /proc/sys/vm/nr_hugepages: the pool is read from
 * /sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages and grown as a write would grow it.
 */
function hugetlbPreamble(s: Script, shell: Libc): void {
  const meminfo = () => readWholeFile(shell, '/proc/meminfo') ?? '';
  let freepgs = meminfoField(meminfo(), 'HugePages_Free:');
  const hpgsizeKB = meminfoField(meminfo(), 'Hugepagesize:');
  if (freepgs === undefined || hpgsizeKB === undefined) {
    s.io.stdout.write('no hugetlbfs support in kernel?\n');
    s.haveHugepages = false;
    return;
  }
  const nrPath = `/sys/kernel/mm/hugepages/hugepages-${hpgsizeKB}kB/nr_hugepages`;
  const nrHugepages = () => Number((readWholeFile(shell, nrPath) ?? '0').trim());
  const uffdMinKB = hpgsizeKB * MODEL_NPROC * 2;
  const hugetlbMinKB = 256 * 1024;
  const needmemKB = Math.max(uffdMinKB, hugetlbMinKB);
  const origNrHugepgs = nrHugepages();
  const needpgs = Math.floor(needmemKB / hpgsizeKB);
  for (let tries = 2; tries > 0 && freepgs < needpgs; tries--) {
    const lackpgs = needpgs - freepgs;
    // echo $((lackpgs + orig_nr_hugepgs)) > /proc/sys/vm/nr_hugepages
    const want = lackpgs + origNrHugepgs;
    const have = nrHugepages();
    if (want > have) hugetlbGrowPool(s.kernel.core, want - have);
    freepgs = meminfoField(meminfo(), 'HugePages_Free:') ?? 0;
  }
  if (freepgs < needpgs) s.io.stdout.write(`Not enough huge pages available (${freepgs} < ${needpgs})\n`);
  s.haveHugepages = true;
}

/** Models `pretty_name "$*"`: the command without a leading `bash ` and `./`. */
function prettyName(argv: readonly string[]): string {
  return argv.join(' ').replace(/^(bash )?\.\//, '');
}

/** Models run_test <argv...> for CATEGORY. */
function runTest(s: Script, category: string, argv: readonly string[], binary: VmTestBinary): void {
  if (!s.testSelected(category)) return;
  let skip = false;

  // On memory constrainted systems some tests can fail to allocate hugepages.
  if (category === 'thp' || category === 'hugetlb') {
    if (!s.haveHugepages) {
      s.tapPrefix('hugepages not supported');
      skip = true;
    }
    // HAVE_HUGEPAGES=1: drop_caches, sleep 2, compact_memory, sleep 2 (not modelled).
  }

  const test = prettyName(argv);
  s.ran?.push(test);
  const title = `running ${argv.join(' ')}`;
  const sep = '-'.repeat(title.length);
  s.tapPrefix(sep);
  s.tapPrefix(title);
  s.tapPrefix(sep);

  let ret: number;
  if (!skip) {
    // ("$@" 2>&1) | tap_prefix; ret=${PIPESTATUS[0]}
    const pipe = new SedPrefix(s.io.stdout, s.opts.tapPrefix);
    const prog = argv.slice(argv.findIndex((a) => a.startsWith('./')));
    ret = runProgram(s.kernel, binary.main, prog, {
      stdout: pipe,
      stderr: pipe,
      env: s.io.env,
      time: s.io.time,
      monotonicNs: s.io.monotonicNs,
    }).status;
  } else {
    ret = KSFT_SKIP_SH;
  }
  s.countTotal++;
  if (ret === 0) {
    s.countPass++;
    s.tapPrefix('[PASS]');
    s.tapOutput(`ok ${s.countTotal} ${test}`);
  } else if (ret === KSFT_SKIP_SH) {
    s.countSkip++;
    s.tapPrefix('[SKIP]');
    s.tapOutput(`ok ${s.countTotal} ${test} # SKIP`);
    s.exitcode = KSFT_SKIP_SH;
  } else {
    s.countFail++;
    s.failed?.push(test);
    s.tapPrefix('[FAIL]');
    s.tapOutput(`not ok ${s.countTotal} ${test} # exit=${ret}`);
    s.exitcode = 1;
  }
}

/**
 * Models `./run_vmtests.sh [-a] [-h] [-n] [-t "CATEGORIES"]` (argv[0] is the script name) on a
 * freshly booted machine. Returns the script's exit code.
 */
export function runVmtests(
  argv: readonly string[],
  io: RunVmtestsIO,
  options: RunVmtestsOptions = {},
): number {
  const parsed = parseOptions(argv, io);
  if (typeof parsed === 'number') return parsed;

  const kernel = bootVmtestsMachine(options.machine);
  const s = new Script(io, parsed, kernel, options.binaries ?? BINARIES);
  s.ran = options.ran;
  s.failed = options.failed;
  const shell = kernel.spawn();
  try {
    hugetlbPreamble(s, new Libc(shell, kernel));

    s.tapOutput('TAP version 13');

    for (const e of options.entries ?? RUN_VMTESTS_ENTRIES) {
      const binary = s.binaries.get(entryBinary(e));
      if (binary) runTest(s, e.category, e.argv, binary);
    }

    s.tapPrefix(`SUMMARY: PASS=${s.countPass} SKIP=${s.countSkip} FAIL=${s.countFail}`);
    s.tapOutput(`1..${s.countTotal}`);
    return s.exitcode;
  } finally {
    if (shell.state === 'running') shell.exit(s.exitcode);
  }
}
