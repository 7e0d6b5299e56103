import { EVENT_NAMES, formatEvents, KernelEvents, PAGE_SIZE, type Process } from '@hmm-model/mm-core';
import {
  DMIRROR_NDEVICES,
  dmirrorPath,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_SNAPSHOT_ORDER,
  HMM_DMIRROR_WRITE,
  hmmDmirrorFlagFailAllocOrder,
  snapshotRuns,
} from '../dmirror-uapi.js';
import { fmtSize, hex } from '../format.js';
import { machineOf } from '../machine.js';
import { maskOrders, orderSize } from '../mthp.js';
import { parseAddr, parseNumber, parseSize, takeDeviceOption } from '../parse.js';
import { describePattern, PATTERN_WORDS, PatternDetector, PatternStream } from '../patterns.js';
import { type CommandResult, type Json, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { parseRangePattern, rangePatternArgs, summariseBytes, summaryLines } from './data.js';
import { dmirrorIoctl, type IoctlOutcome, isOutcome } from './dmirror-ioctl.js';
import { drive, IOCTL_STEP_BYTES, progress, stopped } from './steps.js';
import type { CommandSpec, CommandSteps, Progress } from './types.js';

/** Parses `<addr> <len>` of a device command: a page-aligned range as npages. */
function parseRange(s: Session, args: readonly string[]): { addr: number; npages: number } {
  const addr = parseAddr(args[0], s.lookup);
  const len = parseSize(args[1], s.lookup, 'length');
  return { addr, npages: Math.ceil(len / PAGE_SIZE) };
}

function counts(o: { cpages: number; faults: number }): string {
  return `cpages ${o.cpages} faults ${o.faults}`;
}

function outData(
  dev: number,
  addr: number,
  npages: number,
  o: { cpages: number; faults: number },
): { [k: string]: Json } {
  return { device: dev, addr, npages, cpages: o.cpages, faults: o.faults };
}

function devWord(dev: number): string {
  return `device ${dev}`;
}

const DEV_OPT = 'Device: the selected one (`dev N`), or -d N for this command.';
const IOCTL_STEPS = `A range over ${IOCTL_STEP_BYTES >> 20} MiB is done one ioctl per ${IOCTL_STEP_BYTES >> 20} MiB (progress, Ctrl-C between them).`;

/** One ioctl's share of a long range. */
interface IoctlStep {
  readonly addr: number;
  readonly npages: number;
  /** Pages of the range before this step. */
  readonly before: number;
  readonly first: boolean;
}

/** The range [addr, addr + npages pages) in steps of at most IOCTL_STEP_BYTES. */
function* ioctlSteps(addr: number, npages: number): Generator<IoctlStep> {
  const per = IOCTL_STEP_BYTES / PAGE_SIZE;
  for (let before = 0; before < npages; before += per)
    yield {
      addr: addr + before * PAGE_SIZE,
      npages: Math.min(per, npages - before),
      before,
      first: before === 0,
    };
}

/** cpages, faults and kernel events summed over the ioctls of one command. */
function sumOutcomes(): {
  cpages: number;
  faults: number;
  events: KernelEvents;
  lazyBuffer: boolean;
  add(o: IoctlOutcome): void;
} {
  const events = new KernelEvents();
  return {
    cpages: 0,
    faults: 0,
    events,
    lazyBuffer: false,
    add(o) {
      this.cpages += o.cpages;
      this.faults += o.faults;
      this.lazyBuffer ||= o.lazyBuffer;
      for (const k of EVENT_NAMES) events[k] += o.events[k];
    },
  };
}

/** Between two ioctls: a progress point (where Ctrl-C may land); a result when the process is gone. */
function* between(
  s: Session,
  proc: Process | undefined,
  cmd: string,
  step: IoctlStep,
  npages: number,
): Generator<Progress, CommandResult | null> {
  const done = step.before + step.npages;
  if (done >= npages) return null;
  yield progress(done * PAGE_SIZE, npages * PAGE_SIZE);
  return proc ? stopped(s, proc, cmd, done * PAGE_SIZE, npages * PAGE_SIZE) : null;
}

/** A failure after some ioctls succeeded: say how much was done first. */
function partial(r: CommandResult, cmd: string, step: IoctlStep, npages: number): CommandResult {
  return {
    ...r,
    lines: [
      `${cmd}: the first ${step.before} of ${npages} page(s) were done by earlier ioctls; the one at ${hex(step.addr)} failed:`,
      ...r.lines,
    ],
  };
}

const dread: CommandSpec = {
  name: 'dread',
  group: 'device',
  usage: 'dread <addr> <len> [-d N]',
  summary: 'device reads a range (HMM_DMIRROR_READ: faults pages into the mirror via hmm_range_fault)',
  details: [DEV_OPT, IOCTL_STEPS],
  examples: ['dread $ 2M'],
  mutates: true,
  maxArgs: 2,
  deviceOption: true,
  run(s, argv) {
    return drive(dreadSteps(s, argv));
  },
  steps: dreadSteps,
};

/** `dread` as one HMM_DMIRROR_READ per IOCTL_STEP_BYTES of the range. */
function* dreadSteps(s: Session, argv: readonly string[]): CommandSteps {
  // The process this command runs in (it may die: Ctrl-C).
  const proc = s.proc;
  const { rest, dev = s.device } = takeDeviceOption(argv);
  const { addr, npages } = parseRange(s, rest);
  const detector = new PatternDetector();
  let head = new Uint8Array(0);
  const sum = sumOutcomes();
  for (const step of ioctlSteps(addr, npages)) {
    const o = dmirrorIoctl(s, 'dread', dev, {
      cmd: HMM_DMIRROR_READ,
      addr: step.addr,
      npages: step.npages,
      bufLen: step.npages * PAGE_SIZE,
      readBack: (piece) => {
        if (head.length === 0) head = piece.slice(0, 256);
        detector.add(piece);
      },
    });
    if (!isOutcome(o)) return step.first ? o : partial(o, 'dread', step, npages);
    sum.add(o);
    const end = yield* between(s, proc, 'dread', step, npages);
    if (end) return end;
  }
  const pat = detector.result();
  const len = npages * PAGE_SIZE;
  return ok(
    [
      `dread: ${devWord(dev)} read ${npages} page(s) at ${hex(addr)}: ${counts(sum)}`,
      ...(len <= 64 ? summariseBytes(addr, head.subarray(0, len), 64) : summaryLines(addr, head, len, pat)),
    ],
    { ...outData(dev, addr, npages, sum), pattern: pat ?? null },
  );
}

const dwrite: CommandSpec = {
  name: 'dwrite',
  group: 'device',
  usage: 'dwrite <addr> [len] <pattern> [-d N]',
  summary: 'device writes a pattern into a range (HMM_DMIRROR_WRITE)',
  details: [
    DEV_OPT,
    'Patterns as for `write`: fill <byte> | zero | index [start] [step] | bytes <hex..> | random <seed>.',
    IOCTL_STEPS,
  ],
  examples: ['dwrite $ 2M index', 'dwrite $ 4K fill 0x5a -d 1'],
  mutates: true,
  maxArgs: rangePatternArgs,
  deviceOption: true,
  words: (i) => (i === 1 || i === 2 ? PATTERN_WORDS : []),
  run(s, argv) {
    return drive(dwriteSteps(s, argv));
  },
  steps: dwriteSteps,
};

/** `dwrite` as one HMM_DMIRROR_WRITE per IOCTL_STEP_BYTES, the pattern produced step by step. */
function* dwriteSteps(s: Session, argv: readonly string[]): CommandSteps {
  // The process this command runs in (it may die: Ctrl-C).
  const proc = s.proc;
  const { rest, dev = s.device } = takeDeviceOption(argv);
  const { addr, len, pattern } = parseRangePattern(s, rest);
  const npages = Math.ceil(len / PAGE_SIZE);
  const stream = new PatternStream(pattern);
  const sum = sumOutcomes();
  for (const step of ioctlSteps(addr, npages)) {
    // The pattern covers `len` bytes; the rest of the last page is what patternBytes() gives too.
    const o = dmirrorIoctl(s, 'dwrite', dev, {
      cmd: HMM_DMIRROR_WRITE,
      addr: step.addr,
      npages: step.npages,
      bufLen: step.npages * PAGE_SIZE,
      init: stream.next(step.npages * PAGE_SIZE),
    });
    if (!isOutcome(o)) return step.first ? o : partial(o, 'dwrite', step, npages);
    sum.add(o);
    const end = yield* between(s, proc, 'dwrite', step, npages);
    if (end) return end;
  }
  return ok(
    [
      `dwrite: ${devWord(dev)} wrote ${npages} page(s) at ${hex(addr)} (${describePattern(pattern)}): ${counts(sum)}`,
    ],
    { ...outData(dev, addr, npages, sum), pattern: describePattern(pattern) },
  );
}

const TO_DEV = ['dev', 'device', 'to-dev'];
const TO_SYS = ['sys', 'system', 'to-sys', 'ram'];

const migrate: CommandSpec = {
  name: 'migrate',
  group: 'device',
  usage: 'migrate <addr> <len> dev|sys [-d N]',
  summary: 'migrate a range to device memory or back (HMM_DMIRROR_MIGRATE_TO_DEV / _TO_SYS)',
  details: [
    DEV_OPT,
    'cpages: to the device, the pages the driver read back from its mirror (512 per THP); to system memory,',
    'the source slots still VALID+MIGRATE after migrate_vma_pages(), as lib/test_hmm.c counts them: one per',
    'THP moved whole, one per 4K page (512 for a THP that was split on the way).',
    'To device, the driver reads the range back through its mirror: the data it sees is shown.',
  ],
  examples: ['migrate $ 2M dev', 'migrate $ 4M sys', 'migrate $ 2M dev -d 1'],
  mutates: true,
  maxArgs: 3,
  deviceOption: true,
  words: (i) => (i === 2 ? ['dev', 'sys'] : []),
  run(s, argv) {
    return drive(migrateSteps(s, argv));
  },
  steps: migrateSteps,
};

/** `migrate` as one MIGRATE_TO_DEV / _TO_SYS per IOCTL_STEP_BYTES of the range. */
function* migrateSteps(s: Session, argv: readonly string[]): CommandSteps {
  // The process this command runs in (it may die: Ctrl-C).
  const proc = s.proc;
  const { rest, dev = s.device } = takeDeviceOption(argv);
  const { addr, npages } = parseRange(s, rest);
  const dir = rest[2];
  if (dir === undefined)
    throw new UsageError('missing direction: dev (to device memory) or sys (to system memory)');
  const toDev = TO_DEV.includes(dir);
  if (!toDev && !TO_SYS.includes(dir)) throw new UsageError(`bad direction "${dir}": dev or sys`);
  const detector = new PatternDetector();
  const sum = sumOutcomes();
  const cmd = toDev ? HMM_DMIRROR_MIGRATE_TO_DEV : HMM_DMIRROR_MIGRATE_TO_SYS;
  for (const step of ioctlSteps(addr, npages)) {
    const o = dmirrorIoctl(s, 'migrate', dev, {
      cmd,
      addr: step.addr,
      npages: step.npages,
      // MIGRATE_TO_DEV copies the range back out of the mirror; MIGRATE_TO_SYS copies nothing.
      bufLen: toDev ? step.npages * PAGE_SIZE : 0,
      readBack: toDev ? (piece) => detector.add(piece) : undefined,
    });
    if (!isOutcome(o)) return step.first ? o : partial(o, 'migrate', step, npages);
    sum.add(o);
    const end = yield* between(s, proc, 'migrate', step, npages);
    if (end) return end;
  }
  const lines = [
    `migrate: ${npages} page(s) at ${hex(addr)} to ${toDev ? devWord(dev) : `system memory (from ${devWord(dev)})`}: ${counts(sum)}`,
  ];
  const pat = toDev ? detector.result() : undefined;
  if (toDev)
    lines.push(`  the device sees ${pat ?? 'data with no simple pattern'} (${fmtSize(npages * PAGE_SIZE)})`);
  lines.push(`  kernel events: ${formatEvents(sum.events)}`);
  if (sum.lazyBuffer)
    lines.push(
      "  (memory was short, so the shell did not prepare its read-back buffer: the ioctl's copy_to_user() faulted it in, and those page faults are counted above)",
    );
  return ok(lines, {
    ...outData(dev, addr, npages, sum),
    direction: toDev ? 'device' : 'system',
    pattern: pat ?? null,
    events: { ...sum.events.snapshot() },
  });
}

const snapshot: CommandSpec = {
  name: 'snapshot',
  group: 'device',
  usage: 'snapshot <addr> <len> [orders] [-d N]',
  summary: 'what the device sees per page (HMM_DMIRROR_SNAPSHOT), decoded into words',
  details: [
    DEV_OPT,
    'Bytes: NONE 0, READ 1, WRITE 2, PMD 4, PUD 8, ZERO 0x10, DEV_PRIVATE_LOCAL 0x20, _REMOTE 0x30, DEV_COHERENT_LOCAL 0x40, _REMOTE 0x50, ERROR 0xff.',
    '`orders`: the folio order hmm_range_fault() found per page instead (model extension',
    'HMM_DMIRROR_SNAPSHOT_ORDER, for mTHP: see --dmirror-mthp); "none" where no page is mapped.',
  ],
  examples: ['snapshot $ 4M', 'snapshot $ 2M orders'],
  mutates: true,
  maxArgs: 3,
  deviceOption: true,
  words: (i) => (i === 2 ? ['orders'] : []),
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const orders = rest[2] === 'orders';
    if (rest[2] !== undefined && !orders) throw new UsageError(`unknown word "${rest[2]}" (only "orders")`);
    const { addr, npages } = parseRange(s, rest);
    const bytes = new Uint8Array(npages);
    let got = 0;
    const o = dmirrorIoctl(s, 'snapshot', dev, {
      cmd: orders ? HMM_DMIRROR_SNAPSHOT_ORDER : HMM_DMIRROR_SNAPSHOT,
      addr,
      npages,
      bufLen: npages,
      readBack: (piece) => {
        bytes.set(piece, got);
        got += piece.length;
      },
    });
    if (!isOutcome(o)) return o;
    const runs = snapshotRuns(bytes);
    const lines = [
      `snapshot${orders ? ' orders' : ''}: ${devWord(dev)}, ${npages} page(s) at ${hex(addr)}: ${counts(o)}`,
    ];
    for (const r of runs) {
      const from = addr + r.first * PAGE_SIZE;
      const what = orders ? orderWord(r.byte) : `${hex(r.byte, 2)} ${r.words.join('|')}`;
      lines.push(
        `  ${hex(from)}-${hex(from + r.count * PAGE_SIZE)} ${String(r.count).padStart(5)} page(s)  ${what}`,
      );
    }
    return ok(lines, {
      ...outData(dev, addr, npages, o),
      bytes: [...bytes],
      runs: runs.map(
        (r): Json =>
          orders
            ? { first: r.first, count: r.count, order: r.byte === 0xff ? null : r.byte }
            : { first: r.first, count: r.count, byte: r.byte, words: [...r.words] },
      ),
    });
  },
};

/** A HMM_DMIRROR_SNAPSHOT_ORDER byte in words: "order 4 (64K folio)", or "none" (0xff). */
function orderWord(b: number): string {
  if (b === 0xff) return 'none';
  return b === 0 ? 'order 0 (base page)' : `order ${b} (${orderSize(b)} folio)`;
}

const exclusive: CommandSpec = {
  name: 'exclusive',
  group: 'device',
  usage: 'exclusive <addr> <len> [-d N]',
  summary: 'map a range exclusive to the device for atomics (HMM_DMIRROR_EXCLUSIVE)',
  details: [DEV_OPT],
  examples: ['exclusive $ 4K'],
  mutates: true,
  maxArgs: 2,
  deviceOption: true,
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const { addr, npages } = parseRange(s, rest);
    const o = dmirrorIoctl(s, 'exclusive', dev, {
      cmd: HMM_DMIRROR_EXCLUSIVE,
      addr,
      npages,
      bufLen: npages * PAGE_SIZE,
    });
    if (!isOutcome(o)) return o;
    return ok(
      [`exclusive: ${devWord(dev)} holds ${npages} page(s) at ${hex(addr)} exclusive: ${counts(o)}`],
      outData(dev, addr, npages, o),
    );
  },
};

const checkExclusive: CommandSpec = {
  name: 'check-exclusive',
  group: 'device',
  usage: 'check-exclusive <addr> <len> [-d N]',
  summary: 'is any page still exclusive to the device? (HMM_DMIRROR_CHECK_EXCLUSIVE; EPERM if so)',
  details: [DEV_OPT],
  examples: ['check-exclusive $ 4K'],
  mutates: true,
  maxArgs: 2,
  deviceOption: true,
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const { addr, npages } = parseRange(s, rest);
    const o = dmirrorIoctl(s, 'check-exclusive', dev, {
      cmd: HMM_DMIRROR_CHECK_EXCLUSIVE,
      addr,
      npages,
      bufLen: 0,
    });
    if (!isOutcome(o)) return o;
    return ok(
      [`check-exclusive: no page of ${hex(addr)} (+${npages}) is exclusive to ${devWord(dev)}`],
      outData(dev, addr, npages, o),
    );
  },
};

const release: CommandSpec = {
  name: 'release',
  group: 'device',
  usage: 'release [-d N]',
  summary: "evict and free all of the device's memory (HMM_DMIRROR_RELEASE)",
  details: [
    DEV_OPT,
    'The ioctl wrapper still checks addr/npages, so the shell passes its scratch page and npages 1.',
  ],
  examples: ['release', 'release -d 1'],
  mutates: true,
  maxArgs: 0,
  deviceOption: true,
  run(s, argv) {
    const { dev = s.device } = takeDeviceOption(argv);
    const o = dmirrorIoctl(s, 'release', dev, {
      cmd: HMM_DMIRROR_RELEASE,
      npages: 1,
      bufLen: 0,
    });
    if (!isOutcome(o)) return o;
    return ok([`release: ${devWord(dev)}'s memory chunks evicted and released`], { device: dev });
  },
};

const failAlloc: CommandSpec = {
  name: 'fail-alloc',
  group: 'device',
  usage: 'fail-alloc [<flag word> | order <N>] [-d N]',
  summary: "make the device's next allocation fail (HMM_DMIRROR_FLAGS with HMM_DMIRROR_FLAG_FAIL_ALLOC)",
  details: [
    DEV_OPT,
    "One shot: the driver clears the flag when it fires. The flag belongs to this process's open device file.",
    '`order N` (model extension, mTHP): fail the next allocation of a folio of order N only (0..9),',
    'so the migration falls back to the next lower order the device has.',
  ],
  examples: ['fail-alloc', 'fail-alloc 1 -d 1', 'fail-alloc order 9'],
  mutates: true,
  maxArgs: 2,
  deviceOption: true,
  words: (i) => (i === 0 ? ['order'] : []),
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    let word: number | undefined;
    if (rest[0] === 'order') {
      const order = parseNumber(rest[1] ?? '');
      if (order === undefined || order > 9) throw new UsageError(`bad order "${rest[1] ?? ''}": 0..9`);
      word = hmmDmirrorFlagFailAllocOrder(order);
    } else {
      if (rest.length > 1) throw new UsageError(`too many arguments (a flag word, or order N)`);
      word = rest[0] === undefined ? HMM_DMIRROR_FLAG_FAIL_ALLOC : parseNumber(rest[0]);
    }
    if (word === undefined) throw new UsageError(`bad flag word "${rest[0]}"`);
    const o = dmirrorIoctl(s, 'fail-alloc', dev, {
      cmd: HMM_DMIRROR_FLAGS,
      npages: word,
      bufLen: 0,
    });
    if (!isOutcome(o)) return o;
    const order = rest[0] === 'order' ? Number(rest[1]) : -1;
    const note =
      order >= 0
        ? ` (FAIL_ALLOC: the next device allocation of order ${order} fails)`
        : word & HMM_DMIRROR_FLAG_FAIL_ALLOC
          ? ' (FAIL_ALLOC: the next device allocation fails)'
          : '';
    return ok([`fail-alloc: ${devWord(dev)} flags = ${hex(word)}${note}`], { device: dev, flags: word });
  },
};

const devSelect: CommandSpec = {
  name: 'dev',
  group: 'device',
  usage: 'dev [N]',
  summary: 'show or select the dmirror device the device commands use (0, 1 private; 2, 3 coherent)',
  examples: ['dev', 'dev 1', 'dev 2'],
  mutates: false,
  maxArgs: 1,
  words: (i) => (i === 0 ? ['0', '1', '2', '3'] : []),
  run(s, args) {
    if (args[0] !== undefined) {
      const n = parseNumber(args[0]);
      if (n === undefined || n >= DMIRROR_NDEVICES) throw new UsageError(`bad device "${args[0]}": 0..3`);
      s.device = n;
    }
    const present = s.kernel.devices.has(dmirrorPath(s.device));
    const mthp = machineOf(s.kernel)?.dmirror.devices[s.device]?.mthpOrders ?? 0;
    const orders = maskOrders(mthp);
    const lines = [
      `dev: ${dmirrorPath(s.device)}${present ? '' : ' (not present: the dmirror driver is not installed)'}`,
    ];
    if (orders.length)
      lines.push(
        `  mTHP orders (model extension): ${orders.map((o) => `${o} (${orderSize(o)})`).join(', ')}, and 9 (2M)`,
      );
    return ok(lines, { device: s.device, present, mthpOrders: orders });
  },
};

/** The dmirror device commands (one per ioctl) and the device selector. */
export const DEVICE_COMMANDS: readonly CommandSpec[] = [
  devSelect,
  dread,
  dwrite,
  migrate,
  snapshot,
  exclusive,
  checkExclusive,
  release,
  failAlloc,
];

const DMIRROR_OPS: Readonly<Record<string, CommandSpec>> = {
  read: dread,
  write: dwrite,
  migrate,
  'migrate-to-dev': {
    ...migrate,
    name: 'migrate-to-dev',
    usage: 'dmirror migrate-to-dev <addr> <len> [-d N]',
    maxArgs: 2,
    words: () => [],
    run: (s, args) => migrate.run(s, [...args, 'dev']),
    steps: undefined,
  },
  snapshot,
  exclusive,
  'check-exclusive': checkExclusive,
  release,
  flags: failAlloc,
  'fail-alloc': failAlloc,
};

/** Shell command `dmirror <op> ...`: every dmirror ioctl by its name, dispatching to the commands above. */
export const dmirrorCommand: CommandSpec = {
  name: 'dmirror',
  group: 'device',
  usage: `dmirror <${Object.keys(DMIRROR_OPS).join('|')}> ...`,
  summary: 'any dmirror ioctl by name: `dmirror read $ 2M` is `dread $ 2M`',
  examples: ['dmirror snapshot $ 2M', 'dmirror migrate $ 2M dev'],
  mutates: true,
  maxArgs: Number.POSITIVE_INFINITY,
  subcommands: DMIRROR_OPS,
  words: (i, args, s) =>
    i === 0 ? Object.keys(DMIRROR_OPS) : (DMIRROR_OPS[args[0]]?.words?.(i - 1, args.slice(1), s) ?? []),
  run(s, args) {
    const op = DMIRROR_OPS[args[0] ?? ''];
    if (!op)
      throw new UsageError(
        `${args[0] ? `unknown dmirror op "${args[0]}"` : 'missing op'}: ${Object.keys(DMIRROR_OPS).join(', ')}`,
      );
    return op.run(s, args.slice(1));
  },
};
