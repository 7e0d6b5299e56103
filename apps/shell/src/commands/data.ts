import { PAGE_SIZE, translate, XLATE_BUS, XLATE_OOM, XLATE_SEGV } from '@hmm-model/mm-core';
import { fmtSize, hex, hexdump } from '../format.js';
import { parseAddr, parseSize } from '../parse.js';
import {
  compare,
  describePattern,
  detectPattern,
  isPatternWord,
  PATTERN_WORDS,
  type Pattern,
  parsePattern,
  patternBytes,
} from '../patterns.js';
import { type CommandResult, fail, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import type { CommandSpec } from './types.js';
import { accessError, currentProc, isResult, userAccess } from './util.js';

/** Largest range the data commands handle in one go (keeps one command interactive). */
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
  if (len > MAX_DATA_BYTES)
    throw new UsageError(`length ${fmtSize(len)} is above the shell's ${fmtSize(MAX_DATA_BYTES)} limit`);
  return { addr, len, pattern: parsePattern(args.slice(2)) };
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
  words: (i) => (i === 1 || i === 2 ? PATTERN_WORDS : []),
  run(s, args) {
    const { addr, len, pattern } = parseRangePattern(s, args);
    const proc = currentProc(s, 'write');
    if (isResult(proc)) return proc;
    const err = accessError(proc.mm, addr, len, true);
    if (err) return fail('write', err.name, err.why);
    const data = patternBytes(pattern, len);
    return userAccess('write', () => {
      proc.writeBytes(addr, data);
      return ok([`write: ${fmtSize(len)} at ${hex(addr)} (${describePattern(pattern)})`], {
        addr,
        length: len,
        pattern: describePattern(pattern),
      });
    });
  },
};

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
  words: (i) => (i === 2 ? ['all'] : []),
  run(s, args) {
    const addr = parseAddr(args[0], s.lookup);
    const len = args[1] === undefined ? 64 : parseSize(args[1], s.lookup, 'length');
    if (len > MAX_DATA_BYTES) throw new UsageError(`length ${fmtSize(len)} is above the shell's limit`);
    if (args[2] !== undefined && args[2] !== 'all') throw new UsageError(`unknown read word "${args[2]}"`);
    const proc = currentProc(s, 'read');
    if (isResult(proc)) return proc;
    const err = accessError(proc.mm, addr, len, false);
    if (err) return fail('read', err.name, err.why);
    return userAccess('read', () => {
      const bytes = proc.readBytes(addr, len);
      const lines = summariseBytes(addr, bytes, args[2] === 'all' ? Number.POSITIVE_INFINITY : 256);
      return ok(lines, {
        addr,
        length: len,
        pattern: detectPattern(bytes) ?? null,
        hex: Buffer.from(bytes.subarray(0, 256)).toString('hex'),
      });
    });
  },
};

/** Compares memory against a pattern; a mismatch is an error (so `--strict` scripts stop). */
export function checkRange(cmd: string, got: Uint8Array, addr: number, pattern: Pattern): CommandResult {
  const want = patternBytes(pattern, got.length);
  const unit = pattern.kind === 'index' && got.length % 4 === 0 ? 4 : 1;
  const { mismatches, first } = compare(got, want, unit);
  const what = unit === 4 ? 'ints' : 'bytes';
  const total = got.length / unit;
  if (mismatches === 0)
    return ok([`${cmd}: ok — ${fmtSize(got.length)} at ${hex(addr)} match ${describePattern(pattern)}`], {
      addr,
      length: got.length,
      mismatches: 0,
    });
  const show = (b: Uint8Array) =>
    unit === 4 ? String(new DataView(b.buffer, b.byteOffset).getInt32(first, true)) : hex(b[first]);
  return {
    ...fail(
      cmd,
      'mismatch',
      `${mismatches} of ${total} ${what} differ from ${describePattern(pattern)}; first at ${hex(addr + first)}: got ${show(got)}, expected ${show(want)}`,
    ),
    data: { addr, length: got.length, mismatches, firstMismatch: addr + first },
  };
}

const check: CommandSpec = {
  name: 'check',
  group: 'data',
  usage: 'check <addr> [len] <pattern>',
  summary: 'CPU reads a range and compares it with a pattern (error on mismatch)',
  examples: ['check $ 2M index', 'check $ 4K fill 0xab', 'check $ 2M zero'],
  mutates: true,
  words: (i) => (i === 1 || i === 2 ? PATTERN_WORDS : []),
  run(s, args) {
    const { addr, len, pattern } = parseRangePattern(s, args);
    const proc = currentProc(s, 'check');
    if (isResult(proc)) return proc;
    const err = accessError(proc.mm, addr, len, false);
    if (err) return fail('check', err.name, err.why);
    return userAccess('check', () => checkRange('check', proc.readBytes(addr, len), addr, pattern));
  },
};

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
  words: () => ['read', 'write'],
  run(s, args) {
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
    let pages = 0;
    for (let a = first; a < addr + len; a += PAGE_SIZE) {
      const r = translate(s.kernel.core, proc.mm, a, write);
      if (r < 0) {
        const sig = r === XLATE_BUS ? 'SIGBUS' : r === XLATE_OOM ? 'SIGKILL' : 'SIGSEGV';
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
  },
};

/** The data commands: write, read, check, fault. */
export const DATA_COMMANDS: readonly CommandSpec[] = [write, read, check, fault];
