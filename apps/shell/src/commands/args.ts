/**
 * The checks the dispatcher makes on a command's words before it runs the command, so that a
 * refused command changes nothing: words after a complete command (`maps | grep x`, `walk $ >
 * file`), and a `$` whose mapping is gone.
 */
import { PAGE_SIZE } from '@hmm-model/mm-core';
import { fmtSize, hex } from '../format.js';
import { takeDeviceOption } from '../parse.js';
import type { Session } from '../session.js';
import type { CommandSpec } from './types.js';

/**
 * The command whose argument declarations apply: for `dmirror <op>` / `gpu <op>` the one the op
 * names, with the words after it; otherwise the command itself. Undefined for an unknown op
 * (the command's own parser refuses it).
 */
export function argTarget(
  spec: CommandSpec,
  args: readonly string[],
): { spec: CommandSpec; args: readonly string[] } | undefined {
  if (!spec.subcommands) return { spec, args };
  const sub = spec.subcommands[args[0] ?? ''];
  return sub ? argTarget(sub, args.slice(1)) : undefined;
}

/**
 * The words after a complete command that it does not take (none: []), from its `maxArgs`; a
 * device option (`-d N`) is not counted for the commands that take one. Throws UsageError for a
 * malformed device option.
 */
export function unexpectedWords(spec: CommandSpec, args: readonly string[]): readonly string[] {
  const t = argTarget(spec, args);
  if (!t) return [];
  const words = t.spec.deviceOption ? takeDeviceOption(t.args).rest : t.args;
  const max = typeof t.spec.maxArgs === 'function' ? t.spec.maxArgs(words) : t.spec.maxArgs;
  return words.slice(max);
}

/** Words a POSIX shell would read as a pipe, a redirection or a command list. */
const SHELL_SYNTAX = /^(\||&|;|<|>|\d>)/;

/** The usage message for words after a complete command. */
export function unexpectedWordsMessage(extra: readonly string[]): string {
  const what = extra.length === 1 ? `word "${extra[0]}"` : `words "${extra.join(' ')}"`;
  const hint = extra.some((w) => SHELL_SYNTAX.test(w))
    ? ' (the shell has no pipes, redirections or command lists)'
    : '';
  return `unexpected ${what} after the command${hint}`;
}

/** A `$` term in an expression word: `$`, `$+2M`, `4K-$`; not `$name`. */
const DOLLAR = /(^|[+-])\$(?=$|[+-])/;

/**
 * Why `$` must not be used by this command now, or null: the mapping the last mmap / mremap
 * made (which `$` names) has no VMA left anywhere in its range in the current process (it was
 * munmap'd since, or the current process is another one that never had it). A partly unmapped
 * mapping is still `$`: the commands check the range they touch themselves. The shell's own
 * commands and `explore` never act on memory, and commands with `staleDollarOk` (mmap: mapping
 * at an unmapped `$` is the point) take any `$`.
 */
export function staleDollar(s: Session, spec: CommandSpec, args: readonly string[]): string | null {
  const t = argTarget(spec, args) ?? { spec, args };
  if (t.spec.group === 'shell' || t.spec.group === 'explore' || t.spec.staleDollarOk) return null;
  const m = s.lastMapping;
  const proc = s.proc;
  if (!m || !proc || s.lookup('') !== m.addr || !t.args.some((a) => DOLLAR.test(a))) return null;
  const end = m.addr + Math.max(PAGE_SIZE, m.length);
  if (proc.mm.vmas.some((v) => v.end > m.addr && v.start < end)) return null;
  const what = `$ is ${hex(m.addr)}, the ${fmtSize(m.length)} mapping the last ${m.by} made${
    m.pid === proc.pid ? '' : ` in pid ${m.pid}`
  }`;
  const gone =
    m.pid === proc.pid
      ? `nothing in ${hex(m.addr)}-${hex(end)} is mapped any more (munmap'd since)`
      : `pid ${proc.pid} has nothing mapped in ${hex(m.addr)}-${hex(end)}`;
  return `${what}, but ${gone}; the command was not run. \`mmap\` sets $ again; give the address itself (${hex(m.addr)}) to use it anyway`;
}
