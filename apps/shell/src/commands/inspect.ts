import {
  O_RDONLY,
  PAGE_SIZE,
  PM_FILE,
  PM_MMAP_EXCLUSIVE,
  PM_PRESENT,
  PM_SOFT_DIRTY,
  PM_SWAP,
  smaps as smapsOf,
  VM_ACCOUNT,
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_EXEC,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_NOHUGEPAGE,
  VM_NORESERVE,
  VM_PFNMAP,
  VM_RAND_READ,
  VM_READ,
  VM_SEQ_READ,
  VM_SHARED,
  VM_SOFTDIRTY,
  VM_WIPEONFORK,
  VM_WRITE,
} from '@hmm-model/mm-core';
import { fmtKb, hex } from '../format.js';
import { buildAddressMap, mapLineText } from '../inspect/addrmap.js';
import { CELL_KINDS } from '../inspect/classify.js';
import { describeFolio } from '../inspect/folio.js';
import { walkAddress } from '../inspect/walk.js';
import { parseAddr, parseInt10, parseNumber } from '../parse.js';
import { fail, type Json, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import type { CommandSpec } from './types.js';
import { currentProc, isResult, permString } from './util.js';

const BACKING_WORDS: Readonly<Record<string, string>> = {
  empty: 'nothing mapped',
  sys: 'a system 4 KiB page',
  thp: 'a system THP',
  zero: 'the zero page',
  hugezero: 'the huge zero page',
  dev: 'a device-private 4 KiB page',
  devthp: 'a device-private THP',
  coherent: 'a coherent device page',
  coherentthp: 'a coherent device THP',
  migration: 'a migration entry (migration in flight)',
  exclusive: 'a device-exclusive entry',
  other: 'another software entry',
};

const walk: CommandSpec = {
  name: 'walk',
  aliases: ['pt'],
  group: 'inspect',
  usage: 'walk <addr>',
  summary: 'page-table walk: every level, its entry, kind and bits',
  examples: ['walk $', 'walk $+0x1000'],
  mutates: false,
  maxArgs: 1,
  run(s, args) {
    const addr = parseAddr(args[0], s.lookup);
    const proc = currentProc(s, 'walk');
    if (isResult(proc)) return proc;
    const w = walkAddress(s.kernel.core, proc.mm, addr);
    const vma = proc.mm.vmaLookup(addr);
    const lines = [
      `walk ${hex(addr)} in pid ${proc.pid}: ${vma ? `VMA ${hex(vma.start)}-${hex(vma.end)} ${permString(vma.flags)}` : 'no VMA'}`,
    ];
    for (const l of w.levels) {
      const word = `${hex(l.hi, 8)}${l.lo.toString(16).padStart(8, '0')}`;
      const target =
        l.kind === 'table' ? `-> table pfn ${hex(l.pfn)}` : l.kind === 'none' ? '' : `pfn ${hex(l.pfn)}`;
      lines.push(
        `  ${l.level.toUpperCase().padEnd(3)}[${String(l.index).padStart(3)}] @${hex(l.table)}  ${word}  ${l.kind.padEnd(20)} ${target}${
          l.bits.length && l.kind !== 'table' ? `  ${l.bits.join(' ')}` : ''
        }`,
      );
    }
    const leafLevel = w.leaf?.level;
    lines.push(
      `  => ${BACKING_WORDS[w.backing] ?? w.backing}${w.pagePfn >= 0 ? `, page pfn ${hex(w.pagePfn)}` : ''}${
        leafLevel === 'pmd' ? ` (PMD leaf, subpage ${((addr % (512 * PAGE_SIZE)) / PAGE_SIZE) | 0})` : ''
      }`,
    );
    return ok(lines, {
      addr,
      backing: w.backing,
      pfn: w.pagePfn,
      levels: w.levels.map((l) => ({
        level: l.level,
        index: l.index,
        table: l.table,
        lo: l.lo,
        hi: l.hi,
        kind: l.kind,
        pfn: l.pfn,
        bits: [...l.bits],
      })),
    });
  },
};

const folio: CommandSpec = {
  name: 'folio',
  aliases: ['page'],
  group: 'inspect',
  usage: 'folio <addr> | folio pfn <pfn>',
  summary: 'folio details: order, refcount, mapcounts, flags, zone, pgmap',
  examples: ['folio $', 'folio pfn 0x40200'],
  mutates: false,
  maxArgs: (args) => (args[0] === 'pfn' ? 2 : 1),
  words: (i) => (i === 0 ? ['pfn'] : []),
  run(s, args) {
    const core = s.kernel.core;
    let pfn: number;
    if (args[0] === 'pfn') {
      const v = parseNumber(args[1] ?? '');
      if (v === undefined) throw new UsageError(`bad pfn "${args[1] ?? ''}"`);
      pfn = v;
    } else {
      const addr = parseAddr(args[0], s.lookup);
      const proc = currentProc(s, 'folio');
      if (isResult(proc)) return proc;
      const w = walkAddress(core, proc.mm, addr);
      if (w.pagePfn < 0)
        return fail(
          'folio',
          'ENOENT',
          `nothing is mapped at ${hex(addr)} (${proc.mm.vmaLookup(addr) ? 'not faulted in yet' : 'no VMA'})`,
          2,
        );
      pfn = w.pagePfn;
    }
    const d = describeFolio(core, pfn);
    return ok(d.lines, d.data);
  },
};

/** Decodes a /proc/pid/pagemap entry into words (models the PM_* bits of fs/proc/task_mmu.c). */
export function decodePagemap(e: bigint): { words: string[]; data: { [k: string]: Json } } {
  const words: string[] = [];
  const data: { [k: string]: Json } = { raw: `0x${e.toString(16)}` };
  if (e & PM_PRESENT) {
    const pfn = Number(e & ((1n << 55n) - 1n));
    words.push('present', `pfn ${hex(pfn)}`);
    data.present = true;
    data.pfn = pfn;
  } else if (e & PM_SWAP) {
    const off = e & ((1n << 55n) - 1n);
    const type = Number(off & 31n);
    const offset = Number(off >> 5n);
    words.push('swap', `type ${type}`, `offset ${hex(offset)}`);
    data.swap = true;
    data.swapType = type;
    data.swapOffset = offset;
  } else words.push('not present');
  if (e & PM_FILE) words.push('file/shared-anon');
  if (e & PM_MMAP_EXCLUSIVE) words.push('exclusive');
  if (e & PM_SOFT_DIRTY) words.push('soft-dirty');
  return { words, data };
}

const pagemap: CommandSpec = {
  name: 'pagemap',
  group: 'inspect',
  usage: 'pagemap <addr> [npages]',
  summary: 'read /proc/self/pagemap entries (pread on the pseudo file)',
  examples: ['pagemap $ 4', 'pagemap $+2M'],
  mutates: false,
  maxArgs: 2,
  run(s, args) {
    const addr = Math.floor(parseAddr(args[0], s.lookup) / PAGE_SIZE) * PAGE_SIZE;
    const n = args[1] === undefined ? 1 : parseInt10(args[1], 'page count');
    if (n < 1 || n > 4096) throw new UsageError('page count must be 1..4096');
    const proc = currentProc(s, 'pagemap');
    if (isResult(proc)) return proc;
    const fd = proc.open('/proc/self/pagemap', O_RDONLY);
    if (fd < 0) return fail('pagemap', 'ENOENT', 'no /proc/self/pagemap in this machine', -fd);
    const buf = new Uint8Array(n * 8);
    const r = proc.pread(fd, buf, buf.length, (addr / PAGE_SIZE) * 8);
    proc.close(fd);
    if (r < 0) return fail('pagemap', 'EIO', `pread failed (${r})`, -r);
    const dv = new DataView(buf.buffer);
    const lines: string[] = [];
    const entries: Json[] = [];
    for (let i = 0; i < n; i++) {
      const e = dv.getBigUint64(i * 8, true);
      const d = decodePagemap(e);
      lines.push(
        `${hex(addr + i * PAGE_SIZE)}  ${`0x${e.toString(16).padStart(16, '0')}`}  ${d.words.join(', ')}`,
      );
      entries.push({ addr: addr + i * PAGE_SIZE, ...d.data });
    }
    return ok(lines, { entries });
  },
};

function vmaName(s: Session, name: string, start: number): string {
  if (name) return name;
  const vars = [...s.vars.entries()].filter(([, v]) => v === start).map(([k]) => `$${k}`);
  return vars.length ? `[anon] ${vars.join(' ')}` : '[anon]';
}

const maps: CommandSpec = {
  name: 'maps',
  group: 'inspect',
  usage: 'maps',
  summary: 'the VMAs of the current process (models /proc/self/maps)',
  examples: ['maps'],
  mutates: false,
  maxArgs: 0,
  run(s) {
    const proc = currentProc(s, 'maps');
    if (isResult(proc)) return proc;
    const core = s.kernel.core;
    const lines: string[] = [];
    const data: Json[] = [];
    const sm = smapsOf(core, proc.mm);
    for (const [i, v] of proc.mm.vmas.entries()) {
      const off = v.file ? v.pgoff * PAGE_SIZE : 0;
      const extra = [
        v.flags & VM_HUGEPAGE ? 'hugepage' : '',
        v.flags & VM_NOHUGEPAGE ? 'nohugepage' : '',
      ].filter(Boolean);
      lines.push(
        `${v.start.toString(16)}-${v.end.toString(16)} ${permString(v.flags)} ${off.toString(16).padStart(8, '0')} 00:00 0  ${vmaName(s, sm[i]?.name ?? '', v.start)}${extra.length ? `  (${extra.join(' ')})` : ''}`,
      );
      data.push({ start: v.start, end: v.end, perms: permString(v.flags), name: sm[i]?.name ?? '' });
    }
    if (!lines.length) lines.push('(no mappings)');
    return ok(lines, { vmas: data });
  },
};

/** Models the VmFlags line of smaps (show_smap_vma_flags()). */
/**
 * Models show_smap_vma_flags() (fs/proc/task_mmu.c): the two-letter mnemonic of every VMA flag
 * the model has, in bit order.
 */
const VM_FLAG_MNEMONICS: readonly (readonly [number, string])[] = [
  [VM_READ, 'rd'],
  [VM_WRITE, 'wr'],
  [VM_EXEC, 'ex'],
  [VM_SHARED, 'sh'],
  [VM_MAYREAD, 'mr'],
  [VM_MAYWRITE, 'mw'],
  [VM_MAYEXEC, 'me'],
  [VM_MAYSHARE, 'ms'],
  [VM_PFNMAP, 'pf'],
  [VM_LOCKED, 'lo'],
  [VM_IO, 'io'],
  [VM_SEQ_READ, 'sr'],
  [VM_RAND_READ, 'rr'],
  [VM_DONTCOPY, 'dc'],
  [VM_DONTEXPAND, 'de'],
  [VM_ACCOUNT, 'ac'],
  [VM_NORESERVE, 'nr'],
  [VM_HUGETLB, 'ht'],
  [VM_WIPEONFORK, 'wf'],
  [VM_DONTDUMP, 'dd'],
  [VM_SOFTDIRTY, 'sd'],
  [VM_MIXEDMAP, 'mm'],
  [VM_HUGEPAGE, 'hg'],
  [VM_NOHUGEPAGE, 'nh'],
];

/** The VmFlags line of smaps for a VMA's flags (show_smap_vma_flags()). */
export function vmFlagWords(f: number): string {
  return VM_FLAG_MNEMONICS.filter(([b]) => f & b)
    .map(([, n]) => n)
    .join(' ');
}

const smaps: CommandSpec = {
  name: 'smaps',
  group: 'inspect',
  usage: 'smaps [addr]',
  summary:
    'per-VMA Rss, Anonymous, AnonHugePages, Swap, SwapPss, device/migration entries, VmFlags (models /proc/self/smaps)',
  examples: ['smaps', 'smaps $'],
  mutates: false,
  maxArgs: 1,
  run(s, args) {
    const proc = currentProc(s, 'smaps');
    if (isResult(proc)) return proc;
    const addr = args[0] === undefined ? undefined : parseAddr(args[0], s.lookup);
    const all = smapsOf(s.kernel.core, proc.mm);
    const list = addr === undefined ? all : all.filter((e) => e.start <= addr && addr < e.end);
    if (addr !== undefined && list.length === 0)
      return fail('smaps', 'ENOENT', `no VMA contains ${hex(addr)}`, 2);
    const lines: string[] = [];
    for (const e of list) {
      lines.push(
        `${e.start.toString(16)}-${e.end.toString(16)} ${permString(e.flags)} ${vmaName(s, e.name, e.start)}`,
      );
      lines.push(
        `  Size:${fmtKb(e.end - e.start)}  Rss:${fmtKb(e.rss)}  Anonymous:${fmtKb(e.anonymous)}  AnonHugePages:${fmtKb(e.anonHugePages)}`,
      );
      // smaps_hugetlb_range(): hugetlb pages are counted here, never in Rss.
      if (e.flags & VM_HUGETLB)
        lines.push(`  Shared_Hugetlb:${fmtKb(e.sharedHugetlb)}  Private_Hugetlb:${fmtKb(e.privateHugetlb)}`);
      // smaps_pte_entry(): swap PTEs count in Swap, and in SwapPss shared by their swap count.
      lines.push(`  Swap:${fmtKb(e.swap)}  SwapPss:${fmtKb(Math.floor(e.swapPss / 1024) * 1024)}`);
      if (e.swapLike) lines.push(`  device-private/migration entries:${fmtKb(e.swapLike)}`);
      lines.push(`  VmFlags: ${vmFlagWords(e.flags)}`);
    }
    if (!lines.length) lines.push('(no mappings)');
    return ok(lines, {
      vmas: list.map((e) => ({
        start: e.start,
        end: e.end,
        rss: e.rss,
        anonymous: e.anonymous,
        anonHugePages: e.anonHugePages,
        swapLike: e.swapLike,
        swap: e.swap,
        swapPss: Math.floor(e.swapPss / 1024) * 1024,
        sharedHugetlb: e.sharedHugetlb,
        privateHugetlb: e.privateHugetlb,
      })),
    });
  },
};

/** Renders the legend of the address-space map as plain text. */
export function legendText(): string {
  return CELL_KINDS.filter((c) => c.kind !== 'unmapped')
    .map((c) => `${c.symbol} ${c.label}`)
    .join('  ');
}

/** The address-space map of the current process as plain-text lines (header, rows, legend). */
export function mapText(s: Session, cellsPerRow = 64, maxRows = 32): string[] {
  const proc = s.proc;
  if (!proc) return ['(no current process)'];
  const m = buildAddressMap(s.kernel.core, proc.mm, { cellsPerRow, maxRows, zoom: s.zoom, focus: s.focus });
  const head =
    m.granule === PAGE_SIZE
      ? `pid ${proc.pid}: 2 MiB region at ${hex(Math.floor((s.zoom ?? 0) / (512 * PAGE_SIZE)) * 512 * PAGE_SIZE)}, one cell per 4 KiB page`
      : `pid ${proc.pid}: ${m.vmas} VMA(s), one cell per 2 MiB`;
  const rows = m.lines.map(mapLineText);
  return [head, ...(rows.length ? rows : ['(no mappings)']), `legend: ${legendText()}`];
}

const map: CommandSpec = {
  name: 'map',
  group: 'inspect',
  usage: 'map [zoom <addr>|unzoom]',
  summary: 'print the address-space map (the live view), per 2 MiB or per page when zoomed',
  examples: ['map', 'map zoom $', 'map unzoom'],
  mutates: false,
  maxArgs: (args) => (args[0] === 'zoom' ? 2 : 1),
  words: (i) => (i === 0 ? ['zoom', 'unzoom'] : []),
  run(s, args) {
    if (args[0] === 'zoom') s.zoom = parseAddr(args[1], s.lookup);
    else if (args[0] === 'unzoom' || args[0] === 'off') s.zoom = null;
    else if (args[0] !== undefined)
      throw new UsageError(`unknown map word "${args[0]}": zoom <addr> or unzoom`);
    return ok(mapText(s), { zoom: s.zoom });
  },
};

const zoom: CommandSpec = {
  name: 'zoom',
  group: 'inspect',
  usage: 'zoom <addr>|off',
  summary: 'show the 2 MiB region at addr page by page in the live map (`zoom off` returns)',
  examples: ['zoom $', 'zoom off'],
  mutates: false,
  maxArgs: 1,
  words: (i) => (i === 0 ? ['off'] : []),
  run(s, args) {
    if (args[0] === undefined) throw new UsageError('missing address (or `off`)');
    if (args[0] === 'off') {
      s.zoom = null;
      return ok(['zoom: off (one cell per 2 MiB)'], { zoom: null });
    }
    s.zoom = parseAddr(args[0], s.lookup);
    return ok(
      [`zoom: the map shows ${hex(Math.floor(s.zoom / (512 * PAGE_SIZE)) * 512 * PAGE_SIZE)} per page`],
      { zoom: s.zoom },
    );
  },
};

/** The inspection commands: walk, folio, pagemap, maps, smaps, map, zoom. */
export const INSPECT_COMMANDS: readonly CommandSpec[] = [walk, folio, pagemap, maps, smaps, map, zoom];
