#!/usr/bin/env node
/**
 * hmm-shell entry point: an interactive Ink REPL on a terminal, or script mode (plain text or
 * JSON lines, no ANSI codes) when stdin is not a TTY or with --script FILE.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ThpMode } from '@hmm-model/mm-core';
import { History, historyPath } from './history.js';
import { createMachine } from './machine.js';
import { parseDmirrorMthp } from './mthp.js';
import { parseNumber } from './parse.js';
import { runScript } from './script.js';
import { Session } from './session.js';
import { checkMachineSizes, fmtBytes, parseMachineSize, parseSwapSize, swapText } from './sizes.js';
import { colorEnabled } from './ui/theme.js';

/** Parsed command-line options of hmm-shell. */
export interface CliOptions {
  script?: string;
  strict: boolean;
  json: boolean;
  noColor: boolean;
  thp?: ThpMode;
  ramBytes?: number;
  vramBytes?: number;
  /** The swap area in bytes (0: none); default mm-core's DEFAULT_SWAP_BYTES. */
  swapBytes?: number;
  seed?: number;
  /** Model extension (test-hmm mthp.ts): per dmirror minor, the mTHP orders it migrates whole. */
  dmirrorMthp?: Record<number, number>;
  checkInvariants: boolean;
  help: boolean;
}

/** The usage text of hmm-shell. */
export const USAGE = `usage: hmm-shell [options] [< script.hmm]
  --script FILE        run commands from FILE (plain text output), then exit
  --strict             stop at the first failing command, exit status 1
  --json               print one JSON object per command
  --no-color           no colour in the interactive UI (also NO_COLOR=1)
  --thp MODE           THP mode: always | madvise (default) | never
  --ram SIZE           system RAM, whole 128M sections (default 2G; e.g. 1T)
  --vram SIZE          the nouveau GPU's VRAM, whole 128M sections (default 1G; e.g. 141G)
  --swap SIZE          the swap area (default 1G; 0 = no swap; whole pages, at most 64G)
  --seed N             scheduler seed (default 1)
  --dmirror-mthp [DEV:]ORDERS
                       model extension: dmirror device DEV (default all) allocates and migrates
                       folios of these mTHP orders too (2..8, e.g. 2-8 or 0:4,6); repeatable
  --check-invariants   run the invariant checker after every syscall
  -h, --help           this text
Interactive when stdin and stdout are terminals; otherwise commands are read from stdin.
History: $HMM_SHELL_HISTORY or ~/.hmm_history.`;

/** Parses argv (without node and the script path); throws an Error with a message on bad input. */
export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { strict: false, json: false, noColor: false, checkInvariants: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--script' || a === '-f') o.script = value();
    else if (a === '--strict') o.strict = true;
    else if (a === '--json') o.json = true;
    else if (a === '--no-color') o.noColor = true;
    else if (a === '--check-invariants') o.checkInvariants = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else if (a === '--thp') {
      const m = value();
      if (m !== 'always' && m !== 'madvise' && m !== 'never') throw new Error(`bad --thp ${m}`);
      o.thp = m;
    } else if (a === '--ram') o.ramBytes = parseMachineSize(a, value());
    else if (a === '--vram') o.vramBytes = parseMachineSize(a, value());
    else if (a === '--swap') o.swapBytes = parseSwapSize(a, value());
    else if (a === '--dmirror-mthp') parseDmirrorMthp(value(), (o.dmirrorMthp ??= {}));
    else if (a === '--seed') {
      const n = parseNumber(value());
      if (n === undefined) throw new Error('bad --seed');
      o.seed = n;
    } else throw new Error(`unknown option ${a}`);
  }
  const tooBig = checkMachineSizes({ ramBytes: o.ramBytes, vramBytes: o.vramBytes });
  if (tooBig) throw new Error(tooBig);
  return o;
}

/** A machine that could not be created (its size is refused or the host cannot hold it). */
class BootError extends Error {}

/** createMachine() with boot-time RangeErrors (machine size, host address space) as BootError. */
function bootMachine(opts: Parameters<typeof createMachine>[0]): ReturnType<typeof createMachine> {
  try {
    return createMachine(opts);
  } catch (e) {
    if (e instanceof RangeError) throw new BootError(e.message);
    throw e;
  }
}

/** Startup phases (ms since process start, and CPU ms used), written to $HMM_SHELL_TIMING when it names a file. */
const phases: Record<string, number> = {};
function mark(phase: string): void {
  phases[phase] = Math.round(process.uptime() * 1000);
  const cpu = process.cpuUsage();
  phases[`${phase}-cpu`] = Math.round((cpu.user + cpu.system) / 1000);
}

async function main(): Promise<number> {
  mark('main');
  let opts: CliOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`hmm-shell: ${(e as Error).message} (see --help)\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const interactive =
    !opts.script && !opts.json && process.stdin.isTTY === true && process.stdout.isTTY === true;
  const boot = () => {
    const { kernel, init } = bootMachine({
      thp: opts.thp,
      ramBytes: opts.ramBytes,
      swapBytes: opts.swapBytes,
      nouveauVramBytes: opts.vramBytes,
      dmirrorMthpOrders: opts.dmirrorMthp,
      seed: opts.seed,
      checkInvariants: opts.checkInvariants,
    });
    mark('machine');
    return { kernel, session: new Session(kernel, init) };
  };
  if (!interactive) {
    // `hmm-shell < demo.hmm | head`: a closed pipe ends the run quietly, as for any filter.
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
    const { session } = boot();
    const write = (t: string) => process.stdout.write(t);
    if (opts.script) {
      let text: string;
      try {
        text = readFileSync(opts.script, 'utf8');
      } catch (e) {
        process.stderr.write(`hmm-shell: cannot read ${opts.script}: ${(e as Error).message}\n`);
        return 2;
      }
      return runScript(session, text.split('\n').slice(0, text.endsWith('\n') ? -1 : undefined), write, opts);
    }
    const rl = createInterface({
      input: process.stdin,
      crlfDelay: Number.POSITIVE_INFINITY,
      terminal: false,
    });
    return runScript(session, rl, write, opts);
  }
  // Ink renders only the final frame when it believes it runs under CI; a person at a terminal
  // wants the live UI, so the CI variables are dropped before Ink is loaded.
  delete process.env.CI;
  delete process.env.CONTINUOUS_INTEGRATION;
  const { runInteractive } = await import('./ui/run.js');
  mark('ui-loaded');
  const timing = process.env.HMM_SHELL_TIMING;
  await runInteractive({
    history: new History(historyPath()),
    color: colorEnabled(process.env, true) && !opts.noColor,
    boot: () => {
      const { kernel, session } = boot();
      const dm = kernel.devices.has('/dev/hmm_dmirror0') ? 'dmirror devices 0-3' : 'no dmirror driver yet';
      if (timing) writeFileSync(timing, `${JSON.stringify(phases)}\n`);
      return {
        session,
        banner: [
          `hmm-model shell — ${fmtBytes(kernel.core.ramPages * 4096)} RAM, ${swapText(kernel)}, THP ${kernel.core.thpMode}, ${dm}, pid ${session.currentPid}`,
          '`help` lists commands, Tab completes, Ctrl-D quits. Try: mmap 4M rw private anon hugepage',
        ],
      };
    },
    onFirstFrame: () => mark('first-frame'),
  });
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    if (process.stdin.isTTY) process.stdin.unref();
  },
  (e: unknown) => {
    if (e instanceof BootError) {
      // A machine the host cannot hold (e.g. no address space for its memmap): one line, no stack.
      process.stderr.write(`hmm-shell: cannot boot: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(`hmm-shell: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 70;
  },
);
