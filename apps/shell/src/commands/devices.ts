import { PAGE_SIZE } from '@hmm-model/mm-core';
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
  HMM_DMIRROR_WRITE,
  snapshotRuns,
} from '../dmirror-uapi.js';
import { fmtSize, hex } from '../format.js';
import { parseAddr, parseNumber, parseSize, takeDeviceOption } from '../parse.js';
import { describePattern, detectPattern, PATTERN_WORDS, patternBytes } from '../patterns.js';
import { type Json, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { parseRangePattern, summariseBytes } from './data.js';
import { dmirrorIoctl, type IoctlOutcome, isOutcome } from './dmirror-ioctl.js';
import type { CommandSpec } from './types.js';

/** Parses `<addr> <len>` of a device command: a page-aligned range as npages. */
function parseRange(s: Session, args: readonly string[]): { addr: number; npages: number } {
  const addr = parseAddr(args[0], s.lookup);
  const len = parseSize(args[1], s.lookup, 'length');
  return { addr, npages: Math.ceil(len / PAGE_SIZE) };
}

function counts(o: IoctlOutcome): string {
  return `cpages ${o.cpages} faults ${o.faults}`;
}

function outData(dev: number, addr: number, npages: number, o: IoctlOutcome): { [k: string]: Json } {
  return { device: dev, addr, npages, cpages: o.cpages, faults: o.faults };
}

function devWord(dev: number): string {
  return `device ${dev}`;
}

const DEV_OPT = 'Device: the selected one (`dev N`), or -d N for this command.';

const dread: CommandSpec = {
  name: 'dread',
  group: 'device',
  usage: 'dread <addr> <len> [-d N]',
  summary: 'device reads a range (HMM_DMIRROR_READ: faults pages into the mirror via hmm_range_fault)',
  details: [DEV_OPT],
  examples: ['dread $ 2M'],
  mutates: true,
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const { addr, npages } = parseRange(s, rest);
    const o = dmirrorIoctl(s, 'dread', dev, {
      cmd: HMM_DMIRROR_READ,
      addr,
      npages,
      bufLen: npages * PAGE_SIZE,
      readBack: true,
    });
    if (!isOutcome(o)) return o;
    const buf = o.buf ?? new Uint8Array(0);
    return ok(
      [
        `dread: ${devWord(dev)} read ${npages} page(s) at ${hex(addr)}: ${counts(o)}`,
        ...summariseBytes(addr, buf, 64),
      ],
      { ...outData(dev, addr, npages, o), pattern: detectPattern(buf) ?? null },
    );
  },
};

const dwrite: CommandSpec = {
  name: 'dwrite',
  group: 'device',
  usage: 'dwrite <addr> [len] <pattern> [-d N]',
  summary: 'device writes a pattern into a range (HMM_DMIRROR_WRITE)',
  details: [
    DEV_OPT,
    'Patterns as for `write`: fill <byte> | zero | index [start] [step] | bytes <hex..> | random <seed>.',
  ],
  examples: ['dwrite $ 2M index', 'dwrite $ 4K fill 0x5a -d 1'],
  mutates: true,
  words: (i) => (i === 1 || i === 2 ? PATTERN_WORDS : []),
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const { addr, len, pattern } = parseRangePattern(s, rest);
    const npages = Math.ceil(len / PAGE_SIZE);
    const init = patternBytes(pattern, npages * PAGE_SIZE);
    const o = dmirrorIoctl(s, 'dwrite', dev, {
      cmd: HMM_DMIRROR_WRITE,
      addr,
      npages,
      bufLen: npages * PAGE_SIZE,
      init,
      readBack: false,
    });
    if (!isOutcome(o)) return o;
    return ok(
      [
        `dwrite: ${devWord(dev)} wrote ${npages} page(s) at ${hex(addr)} (${describePattern(pattern)}): ${counts(o)}`,
      ],
      { ...outData(dev, addr, npages, o), pattern: describePattern(pattern) },
    );
  },
};

const TO_DEV = ['dev', 'device', 'to-dev'];
const TO_SYS = ['sys', 'system', 'to-sys', 'ram'];

const migrate: CommandSpec = {
  name: 'migrate',
  group: 'device',
  usage: 'migrate <addr> <len> dev|sys [-d N]',
  summary: 'migrate a range to device memory or back (HMM_DMIRROR_MIGRATE_TO_DEV / _TO_SYS)',
  details: [
    DEV_OPT,
    'cpages counts collected units: one per THP, one per 4K page or hole (see kernel-mechanics 2.6).',
    'To device, the driver reads the range back through its mirror: the data it sees is shown.',
  ],
  examples: ['migrate $ 2M dev', 'migrate $ 4M sys', 'migrate $ 2M dev -d 1'],
  mutates: true,
  words: (i) => (i === 2 ? ['dev', 'sys'] : []),
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const { addr, npages } = parseRange(s, rest);
    const dir = rest[2];
    if (dir === undefined)
      throw new UsageError('missing direction: dev (to device memory) or sys (to system memory)');
    const toDev = TO_DEV.includes(dir);
    if (!toDev && !TO_SYS.includes(dir)) throw new UsageError(`bad direction "${dir}": dev or sys`);
    const o = dmirrorIoctl(s, 'migrate', dev, {
      cmd: toDev ? HMM_DMIRROR_MIGRATE_TO_DEV : HMM_DMIRROR_MIGRATE_TO_SYS,
      addr,
      npages,
      bufLen: npages * PAGE_SIZE,
      readBack: toDev,
    });
    if (!isOutcome(o)) return o;
    const lines = [
      `migrate: ${npages} page(s) at ${hex(addr)} to ${toDev ? devWord(dev) : `system memory (from ${devWord(dev)})`}: ${counts(o)}`,
    ];
    const pat = o.buf ? detectPattern(o.buf) : undefined;
    if (o.buf)
      lines.push(`  the device sees ${pat ?? 'data with no simple pattern'} (${fmtSize(o.buf.length)})`);
    return ok(lines, {
      ...outData(dev, addr, npages, o),
      direction: toDev ? 'device' : 'system',
      pattern: pat ?? null,
    });
  },
};

const snapshot: CommandSpec = {
  name: 'snapshot',
  group: 'device',
  usage: 'snapshot <addr> <len> [-d N]',
  summary: 'what the device sees per page (HMM_DMIRROR_SNAPSHOT), decoded into words',
  details: [
    DEV_OPT,
    'Bytes: NONE 0, READ 1, WRITE 2, PMD 4, PUD 8, ZERO 0x10, DEV_PRIVATE_LOCAL 0x20, _REMOTE 0x30, DEV_COHERENT_LOCAL 0x40, _REMOTE 0x50, ERROR 0xff.',
  ],
  examples: ['snapshot $ 4M'],
  mutates: true,
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const { addr, npages } = parseRange(s, rest);
    const o = dmirrorIoctl(s, 'snapshot', dev, {
      cmd: HMM_DMIRROR_SNAPSHOT,
      addr,
      npages,
      bufLen: npages,
      readBack: true,
    });
    if (!isOutcome(o)) return o;
    const bytes = o.buf ?? new Uint8Array(0);
    const runs = snapshotRuns(bytes);
    const lines = [`snapshot: ${devWord(dev)}, ${npages} page(s) at ${hex(addr)}: ${counts(o)}`];
    for (const r of runs) {
      const from = addr + r.first * PAGE_SIZE;
      lines.push(
        `  ${hex(from)}-${hex(from + r.count * PAGE_SIZE)} ${String(r.count).padStart(5)} page(s)  ${hex(r.byte, 2)} ${r.words.join('|')}`,
      );
    }
    return ok(lines, {
      ...outData(dev, addr, npages, o),
      bytes: [...bytes],
      runs: runs.map((r) => ({ first: r.first, count: r.count, byte: r.byte, words: [...r.words] })),
    });
  },
};

const exclusive: CommandSpec = {
  name: 'exclusive',
  group: 'device',
  usage: 'exclusive <addr> <len> [-d N]',
  summary: 'map a range exclusive to the device for atomics (HMM_DMIRROR_EXCLUSIVE)',
  details: [DEV_OPT],
  examples: ['exclusive $ 4K'],
  mutates: true,
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const { addr, npages } = parseRange(s, rest);
    const o = dmirrorIoctl(s, 'exclusive', dev, {
      cmd: HMM_DMIRROR_EXCLUSIVE,
      addr,
      npages,
      bufLen: npages * PAGE_SIZE,
      readBack: true,
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
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const { addr, npages } = parseRange(s, rest);
    const o = dmirrorIoctl(s, 'check-exclusive', dev, {
      cmd: HMM_DMIRROR_CHECK_EXCLUSIVE,
      addr,
      npages,
      bufLen: 0,
      readBack: false,
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
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    if (rest.length) throw new UsageError('release takes only -d N');
    const o = dmirrorIoctl(s, 'release', dev, {
      cmd: HMM_DMIRROR_RELEASE,
      npages: 1,
      bufLen: 0,
      readBack: false,
    });
    if (!isOutcome(o)) return o;
    return ok([`release: ${devWord(dev)}'s memory chunks evicted and released`], { device: dev });
  },
};

const failAlloc: CommandSpec = {
  name: 'fail-alloc',
  group: 'device',
  usage: 'fail-alloc [<flag word>] [-d N]',
  summary: "make the device's next allocation fail (HMM_DMIRROR_FLAGS with HMM_DMIRROR_FLAG_FAIL_ALLOC)",
  details: [
    DEV_OPT,
    "One shot: the driver clears the flag when it fires. The flag belongs to this process's open device file.",
  ],
  examples: ['fail-alloc', 'fail-alloc 1 -d 1'],
  mutates: true,
  run(s, argv) {
    const { rest, dev = s.device } = takeDeviceOption(argv);
    const word = rest[0] === undefined ? HMM_DMIRROR_FLAG_FAIL_ALLOC : parseNumber(rest[0]);
    if (word === undefined) throw new UsageError(`bad flag word "${rest[0]}"`);
    const o = dmirrorIoctl(s, 'fail-alloc', dev, {
      cmd: HMM_DMIRROR_FLAGS,
      npages: word,
      bufLen: 0,
      readBack: false,
    });
    if (!isOutcome(o)) return o;
    const note = word & HMM_DMIRROR_FLAG_FAIL_ALLOC ? ' (FAIL_ALLOC: the next device allocation fails)' : '';
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
  words: (i) => (i === 0 ? ['0', '1', '2', '3'] : []),
  run(s, args) {
    if (args[0] !== undefined) {
      const n = parseNumber(args[0]);
      if (n === undefined || n >= DMIRROR_NDEVICES) throw new UsageError(`bad device "${args[0]}": 0..3`);
      s.device = n;
    }
    const present = s.kernel.devices.has(dmirrorPath(s.device));
    return ok(
      [
        `dev: ${dmirrorPath(s.device)}${present ? '' : ' (not present: the dmirror driver is not installed)'}`,
      ],
      {
        device: s.device,
        present,
      },
    );
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
  'migrate-to-dev': migrate,
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
  words: (i, args, s) =>
    i === 0 ? Object.keys(DMIRROR_OPS) : (DMIRROR_OPS[args[0]]?.words?.(i - 1, args.slice(1), s) ?? []),
  run(s, args) {
    const op = DMIRROR_OPS[args[0] ?? ''];
    if (!op)
      throw new UsageError(
        `${args[0] ? `unknown dmirror op "${args[0]}"` : 'missing op'}: ${Object.keys(DMIRROR_OPS).join(', ')}`,
      );
    if (args[0] === 'migrate-to-dev') return op.run(s, [...args.slice(1), 'dev']);
    return op.run(s, args.slice(1));
  },
};
