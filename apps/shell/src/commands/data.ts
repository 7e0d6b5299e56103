import {
  PAGE_SIZE,
  SIGBUS,
  SIGKILL,
  SIGSEGV,
  translate,
  XLATE_BUS,
  XLATE_OOM,
  XLATE_SEGV,
} from '@hmm-model/mm-core';
import { fmtSize, hex, hexdump } from '../format.js';
import { parseAddr, parseSize } from '../parse.js';
import {
  CompareStream,
  describePattern,
  detectPattern,
  isPatternWord,
  PATTERN_WORDS,
  type Pattern,
  PatternDetector,
  PatternStream,
  parsePattern,
  patternBytes,
  patternWordCount,
} from '../patterns.js';
import { type CommandResult, fail, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { signalName } from '../signals.js';
import { ACCESS_STEP_BYTES, drive, FAULT_STEP_PAGES, progress, stopped } from './steps.js';
import type { CommandSpec, CommandSteps } from './types.js';
import { accessError, currentProc, isResult, userAccess } from './util.js';

/** Largest range `read ... all` dumps (and `gread` reads into one host buffer). */
export const MAX_DATA_BYTES = 256 << 20;

/** Parses `<addr> [len] <pattern...>`: the length may be left out for explicit bytes. */
export function parseRangePattern(
  s: Session,
  args: readonly string[],
): { addr: number; len: number; pattern: Pattern } {
  const addr = parseAddr(args[0], s.lookup);
  if (isPatternWord(args[1])) {
    const pattern = parsePattern(args.slice(1));
    if (pattern.kind !== 'bytes')
      throw new UsageError('missing length (only `bytes` implies its own length)');
    return { addr, len: pattern.bytes.length, pattern };
  }
  const len = parseSize(args[1], s.lookup, 'length');
  return { addr, len, pattern: parsePattern(args.slice(2)) };
}

/**
 * How many words `<addr> [len] <pattern...>` takes (the `maxArgs` of write, check, dwrite and
 * gwrite): the pattern starts at the second word when the length is left out, else the third.
 */
export function rangePatternArgs(args: readonly string[]): number {
  const at = isPatternWord(args[1]) ? 1 : 2;
  return at + patternWordCount(args.slice(at));
}

/** The summary of a long range read in steps: its first 64 bytes and the pattern of all of it. */
export function summaryLines(addr: number, head: Uint8Array, len: number, pat: string | undefined): string[] {
  return [
    ...hexdump(addr, head.subarray(0, 64)),
    `... ${fmtSize(len)} in all${pat ? `; the whole range is ${pat}` : '; no simple pattern'}`,
  ];
}

/** Summarises a buffer read back from memory: a short hexdump, and the pattern if it is one. */
export function summariseBytes(addr: number, bytes: Uint8Array, maxDump: number): string[] {
  const lines: string[] = [];
  const pat = detectPattern(bytes);
  if (bytes.length > maxDump) {
    lines.push(...hexdump(addr, bytes.subarray(0, Math.min(64, maxDump))));
    lines.push(
      `... ${fmtSize(bytes.length)} in all${pat ? `; the whole range is ${pat}` : '; no simple pattern'}`,
    );
  } else {
    lines.push(...hexdump(addr, bytes));
    if (pat && bytes.length > 16) lines.push(`(the whole range is ${pat})`);
  }
  return lines;
}

const write: CommandSpec = {
  name: 'write',
  group: 'data',
  usage: 'write <addr> [len] fill <byte> | zero | index [start] [step] | bytes <hex..> | random <seed>',
  summary: 'CPU stores a pattern into memory (faults pages in as needed)',
  details: [
    '`index` is the hmm-tests int pattern: ptr[i] = start + i * step for 32-bit ints, from the start of the range.',
  ],
  examples: [
    'write $ 2M index',
    'write $ 4K fill 0xab',
    'write $+0x10 bytes de ad be ef',
    'write $ 1M index 0 -1',
  ],
  mutates: true,
  maxArgs: rangePatternArgs,
  words: (i) => (i === 1 || i === 2 ? PATTERN_WORDS : []),
  run(s, args) {
    return drive(writeSteps(s, args));
  },
  steps: writeSteps,
};

/** `write` in user-access steps: the pattern is produced and stored one step at a time. */
function* writeSteps(s: Session, args: readonly string[]): CommandSteps {
  const { addr, len, pattern } = parseRangePattern(s, args);
  const proc = currentProc(s, 'write');
  if (isResult(proc)) return proc;
  const err = accessError(proc.mm, addr, len, true);
  if (err) return fail('write', err.name, err.why);
  const stream = new PatternStream(pattern);
  for (let done = 0; done < len; ) {
    const n = Math.min(ACCESS_STEP_BYTES, len - done);
    const data = stream.next(n);
    const r = userAccess('write', () => {
      proc.writeBytes(addr + done, data);
      return null;
    });
    if (r) return r;
    done += n;
    if (done < len) {
      yield progress(done, len);
      const end = stopped(s, proc, 'write', done, len);
      if (end) return end;
    }
  }
  return ok([`write: ${fmtSize(len)} at ${hex(addr)} (${describePattern(pattern)})`], {
    addr,
    length: len,
    pattern: describePattern(pattern),
  });
}

const read: CommandSpec = {
  name: 'read',
  group: 'data',
  usage: 'read <addr> [len] [all]',
  summary: 'CPU loads and hexdumps memory (faults pages in, device pages migrate back)',
  details: [
    'Dumps up to 256 bytes; longer ranges show the first 64 and the pattern they hold (`all` dumps everything).',
  ],
  examples: ['read $ 64', 'read $ 2M'],
  mutates: true,
  maxArgs: 3,
  words: (i) => (i === 2 ? ['all'] : []),
  run(s, args) {
    return drive(readSteps(s, args));
  },
  steps: readSteps,
};

/** `read` in user-access steps: a summary (first bytes, pattern) of any length; `all` dumps up to MAX_DATA_BYTES. */
function* readSteps(s: Session, args: readonly string[]): CommandSteps {
  const addr = parseAddr(args[0], s.lookup);
  const len = args[1] === undefined ? 64 : parseSize(args[1], s.lookup, 'length');
  if (args[2] !== undefined && args[2] !== 'all') throw new UsageError(`unknown read word "${args[2]}"`);
  const all = args[2] === 'all';
  if (all && len > MAX_DATA_BYTES)
    throw new UsageError(
      `length ${fmtSize(len)} is above the shell's limit for \`all\` (${fmtSize(MAX_DATA_BYTES)})`,
    );
  const proc = currentProc(s, 'read');
  if (isResult(proc)) return proc;
  const err = accessError(proc.mm, addr, len, false);
  if (err) return fail('read', err.name, err.why);
  if (all || len <= ACCESS_STEP_BYTES) {
    return userAccess('read', () => {
      const bytes = proc.readBytes(addr, len);
      const lines = summariseBytes(addr, bytes, all ? Number.POSITIVE_INFINITY : 256);
      return ok(lines, {
        addr,
        length: len,
        pattern: detectPattern(bytes) ?? null,
        hex: Buffer.from(bytes.subarray(0, 256)).toString('hex'),
      });
    });
  }
  const detector = new PatternDetector();
  let head = new Uint8Array(0);
  for (let done = 0; done < len; ) {
    const n = Math.min(ACCESS_STEP_BYTES, len - done);
    const r = userAccess('read', () => {
      const bytes = proc.readBytes(addr + done, n);
      if (done === 0) head = bytes.slice(0, 256);
      detector.add(bytes);
      return null;
    });
    if (r) return r;
    done += n;
    if (done < len) {
      yield progress(done, len);
      const end = stopped(s, proc, 'read', done, len);
      if (end) return end;
    }
  }
  const pat = detector.result();
  return ok(summaryLines(addr, head, len, pat), {
    addr,
    length: len,
    pattern: pat ?? null,
    hex: Buffer.from(head).toString('hex'),
  });
}

/** Compares memory against a pattern; a mismatch is an error (so `--strict` scripts stop). */
export function checkRange(cmd: string, got: Uint8Array, addr: number, pattern: Pattern): CommandResult {
  const cmp = new CompareStream(checkUnit(pattern, got.length));
  cmp.add(got, patternBytes(pattern, got.length));
  return checkResult(cmd, cmp, addr, got.length, pattern);
}

/** Ints for the index pattern over a whole number of ints, else bytes. */
function checkUnit(pattern: Pattern, len: number): 1 | 4 {
  return pattern.kind === 'index' && len % 4 === 0 ? 4 : 1;
}

/** The result of a comparison of `len` bytes at addr with a pattern. */
function checkResult(
  cmd: string,
  cmp: CompareStream,
  addr: number,
  len: number,
  pattern: Pattern,
): CommandResult {
  const unit = cmp.unit;
  const what = unit === 4 ? 'ints' : 'bytes';
  const total = len / unit;
  if (cmp.mismatches === 0)
    return ok([`${cmd}: ok — ${fmtSize(len)} at ${hex(addr)} match ${describePattern(pattern)}`], {
      addr,
      length: len,
      mismatches: 0,
    });
  const first = cmp.first;
  const show = (b: Uint8Array) =>
    unit === 4 ? String(new DataView(b.buffer, b.byteOffset).getInt32(0, true)) : hex(b[0]);
  return {
    ...fail(
      cmd,
      'mismatch',
      `${cmp.mismatches} of ${total} ${what} differ from ${describePattern(pattern)}; first at ${hex(addr + first)}: got ${show(cmp.firstGot)}, expected ${show(cmp.firstWant)}`,
    ),
    data: { addr, length: len, mismatches: cmp.mismatches, firstMismatch: addr + first },
  };
}

const check: CommandSpec = {
  name: 'check',
  group: 'data',
  usage: 'check <addr> [len] <pattern>',
  summary: 'CPU reads a range and compares it with a pattern (error on mismatch)',
  examples: ['check $ 2M index', 'check $ 4K fill 0xab', 'check $ 2M zero'],
  mutates: true,
  maxArgs: rangePatternArgs,
  words: (i) => (i === 1 || i === 2 ? PATTERN_WORDS : []),
  run(s, args) {
    return drive(checkSteps(s, args));
  },
  steps: checkSteps,
};

/** `check` in user-access steps: read a step, compare it with the pattern's bytes for it. */
function* checkSteps(s: Session, args: readonly string[]): CommandSteps {
  const { addr, len, pattern } = parseRangePattern(s, args);
  const proc = currentProc(s, 'check');
  if (isResult(proc)) return proc;
  const err = accessError(proc.mm, addr, len, false);
  if (err) return fail('check', err.name, err.why);
  const cmp = new CompareStream(checkUnit(pattern, len));
  const stream = new PatternStream(pattern);
  for (let done = 0; done < len; ) {
    const n = Math.min(ACCESS_STEP_BYTES, len - done);
    const r = userAccess('check', () => {
      cmp.add(proc.readBytes(addr + done, n), stream.next(n));
      return null;
    });
    if (r) return r;
    done += n;
    if (done < len) {
      yield progress(done, len);
      const end = stopped(s, proc, 'check', done, len);
      if (end) return end;
    }
  }
  return checkResult('check', cmp, addr, len, pattern);
}

const fault: CommandSpec = {
  name: 'fault',
  group: 'data',
  usage: 'fault <addr> [len] [read|write]',
  summary: 'CPU touches each page (models a user access through the TLB and handle_mm_fault())',
  details: [
    'Data is not changed. A fault the handler cannot resolve is reported with the signal a',
    'program would get; the shell does not kill the process for it.',
  ],
  examples: ['fault $ read', 'fault $ 2M write'],
  mutates: true,
  maxArgs: 3,
  words: () => ['read', 'write'],
  run(s, args) {
    return drive(faultSteps(s, args));
  },
  steps: faultSteps,
};

/** `fault` page by page, with a progress point every FAULT_STEP_PAGES pages. */
function* faultSteps(s: Session, args: readonly string[]): CommandSteps {
  const addr = parseAddr(args[0], s.lookup);
  let len = PAGE_SIZE;
  let write = false;
  for (const a of args.slice(1)) {
    if (a === 'read' || a === 'r') write = false;
    else if (a === 'write' || a === 'w') write = true;
    else len = parseSize(a, s.lookup, 'length');
  }
  const proc = currentProc(s, 'fault');
  if (isResult(proc)) return proc;
  const before = s.kernel.core.vmstat.pgfault;
  const first = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  const total = Math.ceil((addr + len - first) / PAGE_SIZE);
  let pages = 0;
  for (let a = first; a < addr + len; a += PAGE_SIZE) {
    const r = translate(s.kernel.core, proc.mm, a, write);
    if (r < 0) {
      const sig = signalName(r === XLATE_BUS ? SIGBUS : r === XLATE_OOM ? SIGKILL : SIGSEGV);
      const why =
        r === XLATE_SEGV
          ? proc.mm.vmaLookup(a)
            ? `${write ? 'write' : 'read'} not allowed by the VMA at ${hex(a)}`
            : `${hex(a)} is not mapped`
          : r === XLATE_OOM
            ? `out of memory faulting ${hex(a)}`
            : `the fault handler could not resolve ${hex(a)} (VM_FAULT_SIGBUS)`;
      return fail(
        'fault',
        sig,
        `${why}; a program would get ${sig} (the shell did not deliver it)`,
        undefined,
        [`fault: ${pages} page(s) touched before the failure`],
      );
    }
    pages++;
    if (pages % FAULT_STEP_PAGES === 0 && pages < total) {
      yield progress(pages, total, 'pages');
      const end = stopped(s, proc, 'fault', pages, total, 'pages');
      if (end) return end;
    }
  }
  const faults = s.kernel.core.vmstat.pgfault - before;
  return ok(
    [
      `fault: ${write ? 'write' : 'read'} ${pages} page(s) from ${hex(first)}: ${faults} page fault(s) handled`,
    ],
    {
      addr: first,
      pages,
      faults,
      write,
    },
  );
}

/** The data commands: write, read, check, fault. */
export const DATA_COMMANDS: readonly CommandSpec[] = [write, read, check, fault];
