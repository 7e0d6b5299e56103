import {
  O_RDONLY,
  O_WRONLY,
  OVERCOMMIT_SYSCTLS,
  SWAP_DEVICE_PATH,
  SWAP_FLAG_DISCARD,
} from '@hmm-model/mm-core';
import { type CommandResult, fail, failErrno, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { swapText } from '../sizes.js';
import type { CommandSpec } from './types.js';
import { currentProc, isResult } from './util.js';

/** Largest pseudo file `cat` reads. */
const CAT_MAX = 64 * 1024;

/** Models `open(path, O_RDONLY)` + pread() loop in the current process: the file's text, or a failed result. */
function readText(s: Session, cmd: string, path: string): string | CommandResult {
  const proc = currentProc(s, cmd);
  if (isResult(proc)) return proc;
  const fd = proc.open(path, O_RDONLY);
  if (fd < 0) return failErrno(cmd, fd, `cannot open ${path}`);
  const buf = new Uint8Array(CAT_MAX);
  let n = 0;
  for (;;) {
    const r = proc.pread(fd, buf.subarray(n), CAT_MAX - n, n);
    if (r < 0) {
      proc.close(fd);
      return failErrno(cmd, r, `cannot read ${path}`);
    }
    if (r === 0 || n + r >= CAT_MAX) {
      n += r;
      break;
    }
    n += r;
  }
  proc.close(fd);
  return new TextDecoder().decode(buf.subarray(0, n));
}

/** `vm.overcommit_memory` or `vm/overcommit_memory` -> /proc/sys/vm/overcommit_memory. */
function sysctlPath(name: string): string {
  return `/proc/sys/${name.replace(/\./g, '/')}`;
}

/** Models sysctl(8) writing one value: open(O_WRONLY) + write at offset 0 of /proc/sys/<name>. */
function sysctlWrite(s: Session, name: string, value: string): CommandResult {
  const proc = currentProc(s, 'sysctl');
  if (isResult(proc)) return proc;
  const path = sysctlPath(name);
  const fd = proc.open(path, O_WRONLY);
  if (fd < 0) return failErrno('sysctl', fd, `cannot stat ${path}: no such sysctl`);
  const bytes = new TextEncoder().encode(`${value}\n`);
  const r = proc.pwrite(fd, bytes, bytes.length, 0);
  proc.close(fd);
  if (r < 0) return failErrno('sysctl', r, `setting key "${name}": invalid value "${value}"`);
  return ok([`${name} = ${value}`], { [name]: value });
}

/** A sysctl name (`vm.overcommit_memory`, `vm/overcommit_ratio`), optionally `=value`. */
const SYSCTL_WORD = /^[A-Za-z_][\w./-]*(=.*)?$/;

const sysctl: CommandSpec = {
  name: 'sysctl',
  group: 'inspect',
  usage: 'sysctl [-w] [name[=value] ...]',
  summary:
    'read or set kernel parameters under /proc/sys (models sysctl(8)); no name: the vm.overcommit_* ones',
  details: [
    'vm.overcommit_memory: 0 heuristic (default: refuse one mapping larger than RAM + swap), 1 always,',
    '2 never (Committed_AS must stay below CommitLimit = RAM * vm.overcommit_ratio / 100, see `meminfo`).',
    'vm.overcommit_ratio, vm.overcommit_kbytes, vm.user_reserve_kbytes, vm.admin_reserve_kbytes also exist.',
    'vm.min_free_kbytes: the free memory only an OOM victim (half of it) or a __GFP_NOFAIL allocation after',
    'an OOM kill may take (boot value from the RAM size); vm.oom_kill_allocating_task: 1 kills the allocating',
    'process instead of the biggest one.',
  ],
  examples: [
    'sysctl',
    'sysctl vm.overcommit_memory',
    'sysctl vm.overcommit_memory=2',
    'sysctl -w vm.overcommit_ratio=80',
    'sysctl vm.min_free_kbytes=65536',
  ],
  mutates: true,
  // `-w` and words shaped like sysctl names or assignments; from the first other word on, none.
  maxArgs: (args) => {
    const i = args.findIndex((a) => a !== '-w' && !SYSCTL_WORD.test(a));
    return i < 0 ? args.length : i;
  },
  words: () => [...OVERCOMMIT_SYSCTLS, 'min_free_kbytes', 'oom_kill_allocating_task'].map((n) => `vm.${n}`),
  run(s, args) {
    const names = args.filter((a) => a !== '-w');
    if (!names.length) names.push(...OVERCOMMIT_SYSCTLS.map((n) => `vm.${n}`));
    const lines: string[] = [];
    const data: { [k: string]: string } = {};
    for (const a of names) {
      const eq = a.indexOf('=');
      if (eq === 0) throw new UsageError(`bad sysctl "${a}"`);
      if (eq > 0) {
        const r = sysctlWrite(s, a.slice(0, eq), a.slice(eq + 1));
        if (!r.ok) return r;
        lines.push(...r.lines);
        data[a.slice(0, eq)] = a.slice(eq + 1);
        continue;
      }
      const text = readText(s, 'sysctl', sysctlPath(a));
      if (typeof text !== 'string')
        return fail('sysctl', 'ENOENT', `cannot stat ${sysctlPath(a)}: no such sysctl`, 2);
      lines.push(`${a} = ${text.trim()}`);
      data[a] = text.trim();
    }
    return ok(lines, data);
  },
};

/** Whether text holds control characters other than tab, newline, vertical tab, form feed, return. */
function isBinary(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 9 || (c > 13 && c < 32)) return true;
  }
  return false;
}

const cat: CommandSpec = {
  name: 'cat',
  group: 'inspect',
  usage: 'cat <path>',
  summary: 'print a procfs / sysfs file through open + read in the current process',
  examples: [
    'cat /proc/meminfo',
    'cat /proc/sys/vm/overcommit_memory',
    'cat /sys/kernel/mm/transparent_hugepage/enabled',
  ],
  mutates: false,
  maxArgs: 1,
  run(s, args) {
    const path = args[0];
    if (path === undefined) throw new UsageError('missing path');
    const text = readText(s, 'cat', path);
    if (typeof text !== 'string') return text;
    if (isBinary(text))
      return fail('cat', 'binary', `${path} is binary (use \`pagemap\` for /proc/self/pagemap)`);
    return ok(text.replace(/\n$/, '').split('\n'), { path, text });
  },
};

/** The /proc and /sys commands: sysctl, cat. */
/** Why swapoff/swapon failed, from the errno the syscall returned. */
function whySwap(cmd: 'swapoff' | 'swapon', errno: number, path: string): string {
  switch (errno) {
    case 2:
      return `${path}: no such swap device (the machine's swap partition is ${SWAP_DEVICE_PATH}; none with --swap 0)`;
    case 22:
      return cmd === 'swapoff' ? `${path} is not an active swap area` : 'bad swap flags';
    case 16:
      return `${path} is already an active swap area`;
    case 12:
      return 'not enough memory to bring every swapped-out page back (try_to_unuse()); swap stays on';
    default:
      return `${cmd} ${path} failed`;
  }
}

const swapoff: CommandSpec = {
  name: 'swapoff',
  group: 'memory',
  usage: `swapoff [${SWAP_DEVICE_PATH}]`,
  summary:
    'turn the swap area off: every swapped-out page comes back into RAM (models swapoff(2), try_to_unuse())',
  examples: ['swapoff', `swapoff ${SWAP_DEVICE_PATH}`],
  mutates: true,
  maxArgs: 1,
  words: (i) => (i === 0 ? [SWAP_DEVICE_PATH] : []),
  run(s, args) {
    const proc = currentProc(s, 'swapoff');
    if (isResult(proc)) return proc;
    const path = args[0] ?? SWAP_DEVICE_PATH;
    const r = proc.swapoff(path);
    if (r < 0) return failErrno('swapoff', r, whySwap('swapoff', -r, path));
    return ok([`swapoff: ${path} off (${swapText(s.kernel)})`], { path });
  },
};

const swapon: CommandSpec = {
  name: 'swapon',
  group: 'memory',
  usage: `swapon [${SWAP_DEVICE_PATH}] [discard]`,
  summary:
    'turn the swap partition back on (models swapon(2); priority and discard are accepted and ignored)',
  examples: ['swapon', `swapon ${SWAP_DEVICE_PATH}`],
  mutates: true,
  maxArgs: 2,
  words: (i) => (i === 0 ? [SWAP_DEVICE_PATH] : i === 1 ? ['discard'] : []),
  run(s, args) {
    const proc = currentProc(s, 'swapon');
    if (isResult(proc)) return proc;
    const path = args[0] ?? SWAP_DEVICE_PATH;
    if (args[1] !== undefined && args[1] !== 'discard')
      throw new UsageError(`unknown swapon option "${args[1]}"`);
    const r = proc.swapon(path, args[1] === 'discard' ? SWAP_FLAG_DISCARD : 0);
    if (r < 0) return failErrno('swapon', r, whySwap('swapon', -r, path));
    return ok([`swapon: ${path} on (${swapText(s.kernel)})`], { path });
  },
};

export const SYS_COMMANDS: readonly CommandSpec[] = [sysctl, cat, swapoff, swapon];
