import {
  type Core,
  EACCES,
  EEXIST,
  EFAULT,
  EINVAL,
  ENOMEM,
  HPAGE_PMD_ORDER,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_KEEPONFORK,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  type MmStruct,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_RDONLY,
  O_WRONLY,
  OVERCOMMIT_GUESS,
  OVERCOMMIT_NEVER,
  overcommitSysctls,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  type ThpMode,
  thpSizeDir,
  totalramPages,
  totalSwapPages,
  vmCommitLimit,
  vmMemoryCommitted,
} from '@hmm-model/mm-core';
import { fmtSize, hex } from '../format.js';
import { orderSize, sizeOrder } from '../mthp.js';
import { parseAddr, parseSize } from '../parse.js';
import { type CommandResult, fail, failErrno, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { signalName } from '../signals.js';
import type { CommandSpec } from './types.js';
import { coverage, currentProc, hugeFlags, isResult, notAligned, permString } from './util.js';

const PROT_WORDS = ['rw', 'r', 'w', 'rwx', 'rx', 'none'];

/** Parses a protection word: `rw`, `r-x`, `rwx`, `none` (models the PROT_* bits). */
export function parseProt(tok: string): number | undefined {
  if (tok === 'none' || tok === '---') return PROT_NONE;
  if (!/^[rwx-]{1,3}$/.test(tok) || !/[rwx]/.test(tok)) return undefined;
  let p = 0;
  for (const c of tok) {
    if (c === 'r') p |= PROT_READ;
    else if (c === 'w') p |= PROT_WRITE;
    else if (c === 'x') p |= PROT_EXEC;
  }
  return p;
}

function protText(prot: number): string {
  if (prot === PROT_NONE) return '---';
  return (prot & PROT_READ ? 'r' : '-') + (prot & PROT_WRITE ? 'w' : '-') + (prot & PROT_EXEC ? 'x' : '-');
}

/**
 * madvise(2) advice names the shell accepts (models MADV_*): every advice mm-core implements,
 * in the order of their numbers. KSM (MERGEABLE), memory-failure (HWPOISON, SOFT_OFFLINE) and
 * guard-region advice are not in the model's kernel (-EINVAL).
 */
export const ADVICE: Readonly<Record<string, number>> = {
  normal: MADV_NORMAL,
  random: MADV_RANDOM,
  sequential: MADV_SEQUENTIAL,
  willneed: MADV_WILLNEED,
  dontneed: MADV_DONTNEED,
  free: MADV_FREE,
  remove: MADV_REMOVE,
  dontfork: MADV_DONTFORK,
  dofork: MADV_DOFORK,
  hugepage: MADV_HUGEPAGE,
  nohugepage: MADV_NOHUGEPAGE,
  dontdump: MADV_DONTDUMP,
  dodump: MADV_DODUMP,
  wipeonfork: MADV_WIPEONFORK,
  keeponfork: MADV_KEEPONFORK,
  cold: MADV_COLD,
  pageout: MADV_PAGEOUT,
  populate_read: MADV_POPULATE_READ,
  populate_write: MADV_POPULATE_WRITE,
  dontneed_locked: MADV_DONTNEED_LOCKED,
  collapse: MADV_COLLAPSE,
};

/** Why a memory syscall failed, from its errno and the address space it ran against. */
function whyMem(cmd: string, errno: number, mm: MmStruct, addr: number, len: number): string {
  const hole = coverage(mm, addr, addr + Math.max(len, 1)).hole;
  switch (errno) {
    case EINVAL:
      return (
        notAligned(addr, PAGE_SIZE, 'address') ??
        (len <= 0 ? 'length is zero' : `invalid arguments for ${cmd} (flags, advice or range)`)
      );
    case ENOMEM:
      if (cmd === 'mmap') return 'no room for the mapping (or the hugetlb pool is empty)';
      if (cmd === 'mremap') return 'cannot grow in place and maymove was not given';
      return hole >= 0 ? `${hex(hole)} in the range is not mapped` : 'out of memory';
    case EEXIST:
      return 'the range overlaps an existing mapping (noreplace)';
    case EFAULT:
      return 'the old range is not inside one VMA';
    case EACCES:
      return 'the protection is not allowed for this mapping';
    default:
      return `${cmd} failed`;
  }
}

/**
 * Why __vm_enough_memory() refused an mmap, if the overcommit policy is what refused it: the
 * heuristic's RAM + swap bound, or strict mode's CommitLimit. Undefined when it was not that.
 */
function overcommitWhy(core: Core, prot: number, flags: number, len: number): string | undefined {
  const mode = overcommitSysctls(core).overcommit_memory;
  const noreserve = (flags & MAP_NORESERVE) !== 0 && mode !== OVERCOMMIT_NEVER;
  const shared = (flags & MAP_SHARED) !== 0;
  const charged = !noreserve && !(flags & MAP_HUGETLB) && (shared ? true : (prot & PROT_WRITE) !== 0);
  if (!charged) return undefined;
  const pages = Math.ceil(len / PAGE_SIZE);
  const ram = fmtSize((totalramPages(core) + totalSwapPages(core)) * PAGE_SIZE);
  if (mode === OVERCOMMIT_GUESS && pages > totalramPages(core) + totalSwapPages(core))
    return `vm.overcommit_memory=0 (heuristic overcommit) refuses a single mapping larger than RAM + swap (${ram}) in __vm_enough_memory(); \`noreserve\`, a read-only mapping or \`sysctl vm.overcommit_memory=1\` would be granted`;
  if (mode === OVERCOMMIT_NEVER)
    return `vm.overcommit_memory=2 (strict overcommit): Committed_AS ${vmMemoryCommitted(core) * 4} kB + ${pages * 4} kB would not stay below CommitLimit ${vmCommitLimit(core) * 4} kB less the user reserve (see \`meminfo\`, \`sysctl vm.overcommit_ratio\`)`;
  return undefined;
}

const mmap: CommandSpec = {
  name: 'mmap',
  group: 'memory',
  usage:
    'mmap <len> [rw|r|w|rwx|rx|none] [private|shared] [anon] [hugepage|nohugepage] [hugetlb] [populate] [noreserve] [at <addr> [fixed|noreplace]]',
  summary: 'map anonymous memory (models mmap(2)); sets $ to the address',
  details: [
    'Defaults: rw, private, anonymous. `w` is PROT_WRITE alone, which x86 reads too (access_error()).',
    '`hugepage` applies MADV_HUGEPAGE after mapping (THP mode "madvise"); anonymous private mappings',
    'of a multiple of 2 MiB are 2 MiB aligned.',
    '`name = mmap ...` also stores the address in $name. `noreserve` is MAP_NORESERVE: no overcommit',
    'charge (except under vm.overcommit_memory=2); private writable mappings are charged (see `sysctl`).',
  ],
  examples: ['mmap 4M rw private anon hugepage', 'buf = mmap 2M', 'mmap 8K none at 0x10000000 fixed'],
  mutates: true,
  maxArgs: Number.POSITIVE_INFINITY,
  staleDollarOk: true,
  words: () => [
    ...PROT_WORDS,
    'private',
    'shared',
    'anon',
    'hugepage',
    'nohugepage',
    'hugetlb',
    'populate',
    'noreserve',
    'at',
    'fixed',
    'noreplace',
  ],
  run(s, args) {
    const len = parseSize(args[0], s.lookup, 'length');
    let prot = PROT_READ | PROT_WRITE;
    let type = 0;
    let flags = MAP_ANONYMOUS;
    let advice = -1;
    let addr = 0;
    for (let i = 1; i < args.length; i++) {
      const a = args[i];
      const p = parseProt(a);
      if (p !== undefined) prot = p;
      else if (a === 'private' || a === 'shared') {
        if (type) throw new UsageError('give only one of private / shared');
        type = a === 'private' ? MAP_PRIVATE : MAP_SHARED;
      } else if (a === 'anon' || a === 'anonymous') flags |= MAP_ANONYMOUS;
      else if (a === 'hugepage') advice = MADV_HUGEPAGE;
      else if (a === 'nohugepage') advice = MADV_NOHUGEPAGE;
      else if (a === 'hugetlb') flags |= MAP_HUGETLB;
      else if (a === 'populate') flags |= MAP_POPULATE;
      else if (a === 'noreserve') flags |= MAP_NORESERVE;
      else if (a === 'fixed') flags |= MAP_FIXED;
      else if (a === 'noreplace') flags |= MAP_FIXED_NOREPLACE;
      else if (a === 'at') addr = parseAddr(args[++i], s.lookup);
      else throw new UsageError(`unknown mmap word "${a}" (see \`help mmap\`)`);
    }
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) && addr === 0)
      throw new UsageError('fixed / noreplace need `at <addr>`');
    const proc = currentProc(s, 'mmap');
    if (isResult(proc)) return proc;
    const r = proc.mmap(addr, len, prot, (type || MAP_PRIVATE) | flags);
    if (proc.state !== 'running') {
      // Killed inside the syscall (MAP_POPULATE ran into the OOM killer): it never returns.
      s.reconcile();
      return fail(
        'mmap',
        signalName(proc.status & 0x7f),
        `process ${proc.pid} was killed by ${signalName(proc.status & 0x7f)} while populating (the OOM killer chose it: out_of_memory()); current process is ${s.currentPid ?? 'none'}`,
      );
    }
    if (r < 0)
      return failErrno(
        'mmap',
        r,
        (r === -ENOMEM
          ? overcommitWhy(s.kernel.core, prot, (type || MAP_PRIVATE) | flags, len)
          : undefined) ?? whyMem('mmap', -r, proc.mm, addr, len),
      );
    const lines: string[] = [];
    if (advice >= 0) {
      const m = proc.madvise(r, len, advice);
      if (m < 0)
        lines.push(
          `mmap: warning: madvise ${advice === MADV_HUGEPAGE ? 'hugepage' : 'nohugepage'} failed (${m})`,
        );
    }
    const vma = proc.mm.vmaLookup(r);
    const end = vma ? Math.min(vma.end, r + Math.ceil(len / PAGE_SIZE) * PAGE_SIZE) : r + len;
    s.setLastMapping({ addr: r, length: end - r, pid: proc.pid, by: 'mmap' });
    const what = [
      `${fmtSize(end - r)}`,
      vma ? permString(vma.flags) : protText(prot),
      'anon',
      ...(vma ? hugeFlags(vma.flags) : []),
      ...(r % PMD_SIZE === 0 && end - r >= PMD_SIZE ? ['2M-aligned'] : []),
    ];
    lines.unshift(`mmap: ${hex(r)}-${hex(end)} (${what.join(' ')}) -> $`);
    return ok(lines, { addr: r, end, length: end - r, prot }, r);
  },
};

const munmap: CommandSpec = {
  name: 'munmap',
  group: 'memory',
  usage: 'munmap <addr> <len>',
  summary: 'unmap a range (models munmap(2)); splits THPs and device THPs it cuts',
  examples: ['munmap $ 4M', 'munmap $+1M 4K'],
  mutates: true,
  maxArgs: 2,
  run(s, args) {
    const addr = parseAddr(args[0], s.lookup);
    const len = parseSize(args[1], s.lookup, 'length');
    const proc = currentProc(s, 'munmap');
    if (isResult(proc)) return proc;
    const r = proc.munmap(addr, len);
    if (r < 0) return failErrno('munmap', r, whyMem('munmap', -r, proc.mm, addr, len));
    return ok([`munmap: ${hex(addr)}-${hex(addr + len)} (${fmtSize(len)}) unmapped`], { addr, length: len });
  },
};

const mprotect: CommandSpec = {
  name: 'mprotect',
  group: 'memory',
  usage: 'mprotect <addr> <len> <rw|r|w|rwx|rx|none>',
  summary: 'change protection (models mprotect(2))',
  examples: ['mprotect $ 2M r', 'mprotect $ 4K none'],
  mutates: true,
  maxArgs: 3,
  words: (i) => (i === 2 ? PROT_WORDS : []),
  run(s, args) {
    const addr = parseAddr(args[0], s.lookup);
    const len = parseSize(args[1], s.lookup, 'length');
    if (args[2] === undefined) throw new UsageError('missing protection (rw, r, w, rwx, rx, none)');
    const prot = parseProt(args[2]);
    if (prot === undefined)
      throw new UsageError(`bad protection "${args[2]}": use rw, r, w, rwx, r-x or none`);
    const proc = currentProc(s, 'mprotect');
    if (isResult(proc)) return proc;
    const r = proc.mprotect(addr, len, prot);
    if (r < 0) return failErrno('mprotect', r, whyMem('mprotect', -r, proc.mm, addr, len));
    return ok([`mprotect: ${hex(addr)}-${hex(addr + len)} now ${protText(prot)}`], {
      addr,
      length: len,
      prot,
    });
  },
};

const madvise: CommandSpec = {
  name: 'madvise',
  group: 'memory',
  usage: `madvise <addr> <len> <${Object.keys(ADVICE).join('|')}>`,
  summary: 'give advice (models madvise(2))',
  details: [
    'The advice names are the MADV_* constants without the prefix (MADV_PAGEOUT or pageout).',
    'pageout swaps anonymous pages out (see `meminfo`, `smaps`); free makes them lazy-free (reclaim',
    'drops them while clean) and frees swapped-out pages; cold ages them; populate_read/_write',
    'fault them in; dontfork, wipeonfork and their opposites decide what fork() copies (VmFlags dc, wf).',
  ],
  examples: [
    'madvise $ 4M hugepage',
    'madvise $ 2M dontneed',
    'madvise $ 2M collapse',
    'madvise $ 2M pageout',
    'madvise $ 4K populate_write',
  ],
  mutates: true,
  maxArgs: 3,
  words: (i) => (i === 2 ? Object.keys(ADVICE) : []),
  run(s, args) {
    const addr = parseAddr(args[0], s.lookup);
    const len = parseSize(args[1], s.lookup, 'length');
    const name = (args[2] ?? '')
      .toLowerCase()
      .replace(/^madv_/, '')
      .replace(/-/g, '_');
    const advice = ADVICE[name];
    if (advice === undefined)
      throw new UsageError(
        `${args[2] ? `unknown advice "${args[2]}"` : 'missing advice'}: ${Object.keys(ADVICE).join(', ')}`,
      );
    const proc = currentProc(s, 'madvise');
    if (isResult(proc)) return proc;
    const r = proc.madvise(addr, len, advice);
    if (r < 0) return failErrno('madvise', r, whyMem('madvise', -r, proc.mm, addr, len));
    return ok([`madvise: ${hex(addr)}-${hex(addr + len)} MADV_${name.toUpperCase()}`], {
      addr,
      length: len,
      advice,
    });
  },
};

const mremap: CommandSpec = {
  name: 'mremap',
  group: 'memory',
  usage: 'mremap <old> <oldlen> <newlen> [maymove] [fixed <newaddr>] [dontunmap]',
  summary: 'resize or move a mapping (models mremap(2)); sets $ to the new address',
  examples: ['mremap $ 2M 4M maymove', 'mremap $ 2M 2M maymove fixed 0x7e0000000000'],
  mutates: true,
  maxArgs: Number.POSITIVE_INFINITY,
  words: () => ['maymove', 'fixed', 'dontunmap'],
  run(s, args) {
    const old = parseAddr(args[0], s.lookup, 'old address');
    const oldLen = parseSize(args[1], s.lookup, 'old length');
    const newLen = parseSize(args[2], s.lookup, 'new length');
    let flags = 0;
    let newAddr = 0;
    for (let i = 3; i < args.length; i++) {
      if (args[i] === 'maymove') flags |= MREMAP_MAYMOVE;
      else if (args[i] === 'dontunmap') flags |= MREMAP_DONTUNMAP;
      else if (args[i] === 'fixed') {
        flags |= MREMAP_FIXED;
        newAddr = parseAddr(args[++i], s.lookup, 'new address');
      } else throw new UsageError(`unknown mremap word "${args[i]}"`);
    }
    const proc = currentProc(s, 'mremap');
    if (isResult(proc)) return proc;
    const r = proc.mremap(old, oldLen, newLen, flags, newAddr);
    if (r < 0) return failErrno('mremap', r, whyMem('mremap', -r, proc.mm, old, oldLen));
    s.setLastMapping({
      addr: r,
      length: Math.ceil(newLen / PAGE_SIZE) * PAGE_SIZE,
      pid: proc.pid,
      by: 'mremap',
    });
    const moved = r !== old ? ` moved to ${hex(r)}` : ' in place';
    return ok(
      [`mremap: ${hex(old)} ${fmtSize(oldLen)} -> ${fmtSize(newLen)}${moved} -> $`],
      { addr: r, length: newLen },
      r,
    );
  },
};

const THP_MODES = ['always', 'madvise', 'never'] as const;
const THP_SIZE_MODES = ['always', 'inherit', 'madvise', 'never'] as const;

/** Models `cat` of hugepages-<size>kB/enabled in the current process: the line, or a failed result. */
function thpSizeRead(s: Session, order: number): string | CommandResult {
  const proc = currentProc(s, 'thp');
  if (isResult(proc)) return proc;
  const path = `${thpSizeDir(order)}/enabled`;
  const fd = proc.open(path, O_RDONLY);
  if (fd < 0) return failErrno('thp', fd, `cannot open ${path}`);
  const buf = new Uint8Array(128);
  const n = proc.pread(fd, buf, buf.length, 0);
  proc.close(fd);
  if (n < 0) return failErrno('thp', n, `cannot read ${path}`);
  return new TextDecoder().decode(buf.subarray(0, n)).trim();
}

/** Models `echo MODE > hugepages-<size>kB/enabled` in the current process (thpsize_enabled_store()). */
function thpSizeWrite(s: Session, order: number, mode: string): CommandResult | null {
  const proc = currentProc(s, 'thp');
  if (isResult(proc)) return proc;
  const path = `${thpSizeDir(order)}/enabled`;
  const fd = proc.open(path, O_WRONLY);
  if (fd < 0) return failErrno('thp', fd, `cannot open ${path}`);
  const bytes = new TextEncoder().encode(`${mode}\n`);
  const r = proc.pwrite(fd, bytes, bytes.length, 0);
  proc.close(fd);
  return r < 0 ? failErrno('thp', r, `${path}: "${mode}" refused`) : null;
}

const thp: CommandSpec = {
  name: 'thp',
  group: 'memory',
  usage: 'thp [always|madvise|never] | thp <size> [always|inherit|madvise|never] | thp sizes',
  summary: "show or set /sys/kernel/mm/transparent_hugepage/enabled, or one mTHP size's enabled",
  details: [
    'With a size (16K .. 1M, or 2M), the per-size setting of multi-size THP for anonymous memory:',
    'hugepages-<size>kB/enabled. "inherit" follows the top-level setting. A fault allocates the',
    'highest enabled order that fits the VMA and the aligned range, falling back to lower orders.',
    '`thp sizes` lists every size. Device mTHP migration: see the shell option --dmirror-mthp.',
  ],
  examples: ['thp', 'thp always', 'thp never', 'thp 64K always', 'thp 2M inherit', 'thp sizes'],
  mutates: true,
  maxArgs: 2,
  words: (i) =>
    i === 0
      ? [...THP_MODES, 'sizes', ...Array.from({ length: HPAGE_PMD_ORDER - 1 }, (_, k) => orderSize(k + 2))]
      : [...THP_SIZE_MODES],
  run(s, args): CommandResult {
    const core = s.kernel.core;
    if (args[0] === 'sizes') {
      if (args.length > 1) throw new UsageError('`thp sizes` takes no more words');
      const lines: string[] = [];
      const data: { [k: string]: string } = {};
      for (let order = 2; order <= HPAGE_PMD_ORDER; order++) {
        const text = thpSizeRead(s, order);
        if (typeof text !== 'string') return text;
        lines.push(`thp ${orderSize(order).padStart(4)}: ${text}`);
        data[orderSize(order)] = /\[(\w+)\]/.exec(text)?.[1] ?? text;
      }
      return ok(lines, data);
    }
    const order = args[0] === undefined ? undefined : sizeOrder(args[0]);
    if (order !== undefined) {
      const mode = args[1];
      if (mode !== undefined) {
        if (!(THP_SIZE_MODES as readonly string[]).includes(mode))
          throw new UsageError(`bad mTHP mode "${mode}": always, inherit, madvise or never`);
        const bad = thpSizeWrite(s, order, mode);
        if (bad) return bad;
      }
      const text = thpSizeRead(s, order);
      if (typeof text !== 'string') return text;
      return ok([`thp ${orderSize(order)}: ${text}`], {
        size: orderSize(order),
        order,
        mode: /\[(\w+)\]/.exec(text)?.[1] ?? text,
      });
    }
    if (args.length > 1) throw new UsageError(`bad mTHP size "${args[0]}": 16K, 32K, 64K .. 1M, or 2M`);
    if (args[0] !== undefined) {
      if (!(THP_MODES as readonly string[]).includes(args[0]))
        throw new UsageError(
          `bad THP mode "${args[0]}": always, madvise or never (or a size such as 64K: \`thp sizes\`)`,
        );
      core.thpMode = args[0] as ThpMode;
    }
    const line = THP_MODES.map((m) => (m === core.thpMode ? `[${m}]` : m)).join(' ');
    return ok([`thp: ${line}`], { mode: core.thpMode });
  },
};

/** The memory-management commands: mmap, munmap, mprotect, madvise, mremap, thp. */
export const MEMORY_COMMANDS: readonly CommandSpec[] = [mmap, munmap, mprotect, madvise, mremap, thp];
