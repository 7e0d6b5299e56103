import { ENODEV, type Kernel, PAGE_SIZE, PMD_SIZE, type Process } from '@hmm-model/mm-core';
import {
  emptyMigrateResult,
  type GpuPte,
  gpuAccess,
  gpuFault,
  gpuPtEntries,
  gpuPte,
  type NouveauDrm,
  type NouveauSvmm,
  nouveauDmemEvictChunk,
  nouveauDmemInspect,
  nouveauSvmmInit,
  svmmMigrateToVram,
} from '@hmm-model/nouveau-dmem';
import { fmtSize, hex, table } from '../format.js';
import { machineOf } from '../machine.js';
import { parseAddr, parseSize } from '../parse.js';
import { describePattern, PATTERN_WORDS, patternBytes } from '../patterns.js';
import { type CommandResult, fail, failErrno, type Json, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { MAX_DATA_BYTES, parseRangePattern, rangePatternArgs, summariseBytes } from './data.js';
import { drive, IOCTL_STEP_BYTES, progress, stopped } from './steps.js';
import type { CommandSpec, CommandSteps } from './types.js';
import { currentProc, isResult } from './util.js';

/** The nouveau GPU of the machine with device memory, or a failed result saying why not. */
function gpuOf(kernel: Kernel, cmd: string): NouveauDrm | CommandResult {
  const drm = machineOf(kernel)?.nouveau;
  if (!drm)
    return fail(cmd, 'ENODEV', 'no nouveau GPU in this machine (the shell boots one by default)', ENODEV);
  if (!drm.dmem)
    return fail(
      cmd,
      'ENODEV',
      `the ${drm.chipset} GPU has no device memory (nouveau_dmem_init: pre-Pascal)`,
      ENODEV,
    );
  return drm;
}

function isDrm(x: NouveauDrm | CommandResult): x is NouveauDrm {
  return 'dev' in x && 'vram' in x;
}

/** One SVM client per process and GPU (models DRM_NOUVEAU_SVM_INIT by the process on first use). */
const svmms = new WeakMap<Process, Map<NouveauDrm, NouveauSvmm>>();

/** The current process and its GPU address space (created on first use), or a failed result. */
function client(
  s: Session,
  cmd: string,
): { drm: NouveauDrm; proc: Process; svmm: NouveauSvmm } | CommandResult {
  const drm = gpuOf(s.kernel, cmd);
  if (!isDrm(drm)) return drm;
  const proc = currentProc(s, cmd);
  if (isResult(proc)) return proc;
  let per = svmms.get(proc);
  if (!per) {
    per = new Map();
    svmms.set(proc, per);
  }
  let svmm = per.get(drm);
  if (!svmm || svmm.mm !== proc.mm) {
    svmm = nouveauSvmmInit(drm, proc.mm);
    per.set(drm, svmm);
  }
  return { drm, proc, svmm };
}

function isClient(x: ReturnType<typeof client>): x is { drm: NouveauDrm; proc: Process; svmm: NouveauSvmm } {
  return 'svmm' in x;
}

/** `4K host` / `2M VRAM`: a GPU page-table entry's page size and aperture. */
function pteWords(e: GpuPte): string {
  return `${e.pageShift === 21 ? '2M' : '4K'} ${e.aperture === 'vram' ? 'VRAM' : 'host'}`;
}

/**
 * Models a GPU engine access with fault replay (gpuAccess()), one page at a time so the GPU
 * faults it raises (nouveau_svm_fault -> hmm_range_fault) can be counted, and the GPU pages it
 * went through can be listed.
 */
function gpuRun(
  svmm: NouveauSvmm,
  addr: number,
  buf: Uint8Array,
  dir: 'read' | 'write',
): { ret: number; faults: number; via: Map<string, number> } {
  let faults = 0;
  const via = new Map<string, number>();
  const seen = new Set<string>();
  for (let done = 0; done < buf.length; ) {
    const a = addr + done;
    const n = Math.min(PAGE_SIZE - (a % PAGE_SIZE), buf.length - done);
    const pte = gpuPte(svmm, a);
    if (!pte || (dir === 'write' && !pte.writable)) {
      faults++;
      const r = gpuFault(svmm, a, dir === 'write');
      if (r) return { ret: r, faults, via };
    }
    const r = gpuAccess(svmm, a, buf.subarray(done, done + n), dir);
    if (r) return { ret: r, faults, via };
    const e = gpuPte(svmm, a);
    if (e && !seen.has(`${e.va}:${e.pageShift}`)) {
      seen.add(`${e.va}:${e.pageShift}`);
      via.set(pteWords(e), (via.get(pteWords(e)) ?? 0) + 1);
    }
    done += n;
  }
  return { ret: 0, faults, via };
}

function viaText(via: Map<string, number>): string {
  return [...via].map(([k, n]) => `${n} × ${k}`).join(', ') || 'no GPU page';
}

const GPU_FAULT_WHY =
  'the GPU fault could not be resolved (nouveau_svm_fault: hmm_range_fault failed; no VMA, or no permission)';

const gread: CommandSpec = {
  name: 'gread',
  group: 'gpu',
  usage: 'gread <addr> <len>',
  summary: 'the GPU reads a range through its page tables, faulting missing pages in (nouveau SVM)',
  details: [
    'A page the GPU page table lacks raises a GPU fault: nouveau_svm_fault -> hmm_range_fault() with',
    'dev_private_owner = the GPU, then PFNMAP of a 4K or 2M entry (system RAM, or this GPU’s VRAM).',
    'Device-private pages of another owner (the dmirror devices) migrate back to RAM on the way.',
  ],
  examples: ['gread $ 4K', 'gread $ 2M'],
  mutates: true,
  maxArgs: 2,
  run(s, args) {
    const addr = parseAddr(args[0], s.lookup);
    const len = parseSize(args[1], s.lookup, 'length');
    if (len > MAX_DATA_BYTES)
      throw new UsageError(`length ${fmtSize(len)} is above ${fmtSize(MAX_DATA_BYTES)}`);
    const c = client(s, 'gread');
    if (!isClient(c)) return c;
    const buf = new Uint8Array(len);
    const r = gpuRun(c.svmm, addr, buf, 'read');
    if (r.ret) return failErrno('gread', r.ret, `${GPU_FAULT_WHY}; ${r.faults} GPU fault(s) raised`);
    return ok(
      [
        `gread: GPU read ${fmtSize(len)} at ${hex(addr)}: ${r.faults} GPU fault(s), through ${viaText(r.via)}`,
        ...summariseBytes(addr, buf, 64),
      ],
      { addr, length: len, faults: r.faults, via: Object.fromEntries(r.via) },
    );
  },
};

const gwrite: CommandSpec = {
  name: 'gwrite',
  group: 'gpu',
  usage: 'gwrite <addr> [len] <pattern>',
  summary: 'the GPU writes a pattern into a range (a write fault asks hmm_range_fault for write access)',
  details: [
    'Patterns as for `write`: fill <byte> | zero | index [start] [step] | bytes <hex..> | random <seed>.',
  ],
  examples: ['gwrite $ 2M index', 'gwrite $+4K 4K fill 0x5a'],
  mutates: true,
  maxArgs: rangePatternArgs,
  words: (i) => (i === 1 || i === 2 ? PATTERN_WORDS : []),
  run(s, args) {
    const { addr, len, pattern } = parseRangePattern(s, args);
    const c = client(s, 'gwrite');
    if (!isClient(c)) return c;
    const r = gpuRun(c.svmm, addr, patternBytes(pattern, len), 'write');
    if (r.ret) return failErrno('gwrite', r.ret, `${GPU_FAULT_WHY}; ${r.faults} GPU fault(s) raised`);
    return ok(
      [
        `gwrite: GPU wrote ${fmtSize(len)} at ${hex(addr)} (${describePattern(pattern)}): ${r.faults} GPU fault(s), through ${viaText(r.via)}`,
      ],
      { addr, length: len, faults: r.faults, via: Object.fromEntries(r.via) },
    );
  },
};

const gmigrate: CommandSpec = {
  name: 'gmigrate',
  group: 'gpu',
  usage: 'gmigrate <addr> <len>',
  summary: 'migrate a range to the GPU’s VRAM (DRM_NOUVEAU_SVM_BIND -> nouveau_dmem_migrate_vma)',
  details: [
    'THPs move whole into a 2 MiB VRAM folio (a large chunk); small pages and holes move page by page.',
    'There is no small-page fallback when a large VRAM allocation fails (nouveau_dmem_page_alloc_locked).',
    'Afterwards the CPU page table holds device-private entries (v / V in the map) and the GPU maps VRAM.',
  ],
  examples: ['gmigrate $ 2M', 'gmigrate $ 4M'],
  mutates: true,
  maxArgs: 2,
  run(s, args) {
    return drive(gmigrateSteps(s, args));
  },
  steps: gmigrateSteps,
};

/** `gmigrate` as one DRM_NOUVEAU_SVM_BIND per IOCTL_STEP_BYTES of the range, counts summed. */
function* gmigrateSteps(s: Session, args: readonly string[]): CommandSteps {
  const addr = parseAddr(args[0], s.lookup);
  const len = parseSize(args[1], s.lookup, 'length');
  const c = client(s, 'gmigrate');
  if (!isClient(c)) return c;
  const end = addr + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const r = emptyMigrateResult();
  for (let a = addr; a < end; ) {
    const next = Math.min(end, a + IOCTL_STEP_BYTES);
    const one = svmmMigrateToVram(c.svmm, a, next);
    r.batches += one.batches;
    r.cpages += one.cpages;
    r.allocFailed += one.allocFailed;
    r.migratedPages += one.migratedPages;
    r.thps += one.thps;
    r.holes += one.holes;
    if (one.ret && !r.ret) r.ret = one.ret;
    a = next;
    if (a < end) {
      yield progress(a - addr, end - addr);
      const stop = stopped(s, c.proc, 'gmigrate', a - addr, end - addr);
      if (stop) return stop;
    }
  }
  const summary = `${r.migratedPages} page(s) now in VRAM: ${r.thps} THP(s) whole, ${r.holes} hole(s) populated; cpages ${r.cpages}, batches ${r.batches}, allocation failures ${r.allocFailed}`;
  if (r.ret) return failErrno('gmigrate', r.ret, `nouveau_dmem_migrate_vma failed after ${summary}`);
  return ok([`gmigrate: ${fmtSize(end - addr)} at ${hex(addr)} to VRAM: ${summary}`], {
    addr,
    length: end - addr,
    ...r,
  });
}

const vram: CommandSpec = {
  name: 'vram',
  group: 'gpu',
  usage: 'vram',
  summary: 'the GPU’s VRAM chunks (nouveau_dmem_chunk) and the dmem free lists',
  details: [
    'Each chunk is one dev_pagemap of 256 MiB backed by a pinned VRAM buffer object; a large chunk',
    'lists 2 MiB folios on free_folios, a small one 4 KiB pages on free_pages. callocated counts',
    'allocations (a THP counts 1) minus folio_free calls (it can wrap: see the nouveau README).',
  ],
  examples: ['vram'],
  mutates: false,
  maxArgs: 0,
  run(s) {
    const drm = gpuOf(s.kernel, 'vram');
    if (!isDrm(drm)) return drm;
    const info = nouveauDmemInspect(drm, 4);
    if (!info) return fail('vram', 'ENODEV', 'no device memory', ENODEV);
    const lines = [
      `vram: nouveau (${info.chipset}), VRAM ${fmtSize(info.vramBytes)}, ${fmtSize(info.vramBoBytes)} in chunk buffer objects; copy engine: ${info.copyLaunches} launch(es), ${info.linesCopied} page(s) copied, ${info.clears} clear(s)`,
    ];
    if (!info.chunks.length) lines.push('  no chunk yet (the first migration to VRAM allocates one)');
    else
      lines.push(
        ...table([
          ['  chunk', 'bo offset', 'size', 'pfns', 'kind', 'callocated', 'free 4K', 'free 2M'],
          ...info.chunks.map((c) => [
            `  ${c.index}`,
            hex(c.boOffset),
            fmtSize(c.boSize),
            `${hex(c.startPfn)}-${hex(c.endPfn)}`,
            c.isLarge ? 'large' : 'small',
            String(c.callocated),
            String(c.freePages),
            String(c.freeFolios),
          ]),
        ]),
      );
    const head = (pfns: readonly number[], n: number) =>
      n ? `${pfns.map((p) => hex(p)).join(' -> ')}${n > pfns.length ? ' -> ...' : ''}` : 'empty';
    lines.push(`free_pages:  ${info.freePages} page(s): ${head(info.freePagesHead, info.freePages)}`);
    lines.push(`free_folios: ${info.freeFolios} folio(s): ${head(info.freeFoliosHead, info.freeFolios)}`);
    const data: { [k: string]: Json } = {
      chipset: info.chipset,
      vramBytes: info.vramBytes,
      chunks: info.chunks.map((c) => ({ ...c })),
      freePages: info.freePages,
      freeFolios: info.freeFolios,
    };
    return ok(lines, data);
  },
};

const gpt: CommandSpec = {
  name: 'gpt',
  group: 'gpu',
  usage: 'gpt <addr> [len]',
  summary: 'the GPU page table of the current process over a range: page size, aperture, address',
  details: [
    'Entries are what nvkm PFNMAP wrote: 4K or 2M pages, aperture VRAM or host (system RAM), W if writable.',
  ],
  examples: ['gpt $', 'gpt $ 4M'],
  mutates: false,
  maxArgs: 2,
  run(s, args) {
    const addr = parseAddr(args[0], s.lookup);
    const len = args[1] === undefined ? PMD_SIZE : parseSize(args[1], s.lookup, 'length');
    const c = client(s, 'gpt');
    if (!isClient(c)) return c;
    const entries = gpuPtEntries(c.svmm, addr, addr + len);
    const lines = [
      `gpt: GPU page table of pid ${c.proc.pid} over ${hex(addr)}-${hex(addr + len)}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}`,
    ];
    if (entries.length)
      lines.push(
        ...table([
          ['  va', 'size', 'aperture', 'address', 'W'],
          ...entries.map((e) => [
            `  ${hex(e.va)}`,
            e.pageShift === 21 ? '2M' : '4K',
            e.aperture === 'vram' ? 'VRAM' : 'host',
            hex(e.addr),
            e.writable ? 'w' : '-',
          ]),
        ]),
      );
    else lines.push('  (nothing mapped: the GPU faults on first access; try `gread`)');
    return ok(lines, {
      entries: entries.map((e) => ({
        va: e.va,
        pageShift: e.pageShift,
        aperture: e.aperture,
        addr: e.addr,
        writable: e.writable,
      })),
    });
  },
};

const gevict: CommandSpec = {
  name: 'gevict',
  group: 'gpu',
  usage: 'gevict',
  summary: 'evict every VRAM chunk to system memory (nouveau_dmem_evict_chunk, as suspend/unload does)',
  details: [
    'Small pages move back to RAM. A device THP is refused, as in v6.19: the eviction destination',
    'lacks MIGRATE_PFN_COMPOUND, so migrate_device_pages() keeps it in VRAM (nouveau README, finding 1).',
  ],
  examples: ['gevict'],
  mutates: true,
  maxArgs: 0,
  run(s) {
    const drm = gpuOf(s.kernel, 'gevict');
    if (!isDrm(drm)) return drm;
    const chunks = [...(drm.dmem?.chunks ?? [])];
    const t = { collected: 0, evicted: 0, refused: 0 };
    for (const c of chunks) {
      const r = nouveauDmemEvictChunk(c);
      t.collected += r.collected;
      t.evicted += r.evicted;
      t.refused += r.refused;
    }
    const lines = [
      `gevict: ${chunks.length} chunk(s): ${t.collected} unit(s) collected, ${t.evicted} evicted to system memory, ${t.refused} refused`,
    ];
    if (t.refused)
      lines.push(
        '  refused units stay in VRAM: device THPs (the destination slot has no MIGRATE_PFN_COMPOUND)',
      );
    return ok(lines, { chunks: chunks.length, ...t });
  },
};

const GPU_OPS: Readonly<Record<string, CommandSpec>> = {
  read: gread,
  write: gwrite,
  migrate: gmigrate,
  chunks: vram,
  vram,
  pt: gpt,
  evict: gevict,
};

/** Shell command `gpu <op> ...`: the GPU commands by their short names (`gpu read $ 4K` is `gread $ 4K`). */
export const gpuCommand: CommandSpec = {
  name: 'gpu',
  group: 'gpu',
  usage: `gpu <${Object.keys(GPU_OPS).join('|')}> ...`,
  summary: 'the GPU commands by name: `gpu read $ 4K` is `gread $ 4K`, `gpu chunks` is `vram`',
  examples: ['gpu migrate $ 2M', 'gpu pt $', 'gpu chunks'],
  mutates: true,
  maxArgs: Number.POSITIVE_INFINITY,
  subcommands: GPU_OPS,
  words: (i, args, s) =>
    i === 0 ? Object.keys(GPU_OPS) : (GPU_OPS[args[0]]?.words?.(i - 1, args.slice(1), s) ?? []),
  run(s, args) {
    const op = GPU_OPS[args[0] ?? ''];
    if (!op)
      throw new UsageError(
        `${args[0] ? `unknown gpu op "${args[0]}"` : 'missing op'}: ${Object.keys(GPU_OPS).join(', ')}`,
      );
    return op.run(s, args.slice(1));
  },
};

/** The nouveau GPU commands: GPU access, migration to VRAM, VRAM chunks, GPU page table, eviction. */
export const GPU_COMMANDS: readonly CommandSpec[] = [gread, gwrite, gmigrate, vram, gpt, gevict, gpuCommand];
