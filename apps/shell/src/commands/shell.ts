import { hex, table } from '../format.js';
import { parseAddr } from '../parse.js';
import { type CommandResult, fail, ok, UsageError } from '../result.js';
import type { CommandGroup, CommandSpec } from './types.js';

/** Valid variable names: a letter or underscore, then letters, digits, underscores. */
export const VAR_NAME = /^[A-Za-z_]\w*$/;

const set: CommandSpec = {
  name: 'set',
  group: 'shell',
  usage: 'set <name> <expr>',
  summary: 'name an address: `set buf $+2M`, then use $buf (`name = <command>` also works)',
  examples: ['set buf $', 'set half $buf+1M'],
  mutates: false,
  run(s, args) {
    const [name, expr] = args;
    if (name === undefined || !VAR_NAME.test(name.replace(/^\$/, '')))
      throw new UsageError(`bad variable name "${name ?? ''}" (letters, digits, _)`);
    const v = parseAddr(expr, s.lookup, 'value');
    s.vars.set(name.replace(/^\$/, ''), v);
    return ok([`$${name.replace(/^\$/, '')} = ${hex(v)}`], { name, value: v }, v);
  },
};

const unset: CommandSpec = {
  name: 'unset',
  group: 'shell',
  usage: 'unset <name>',
  summary: 'forget a variable',
  mutates: false,
  words: (_i, _a, s) => [...s.vars.keys()].filter(Boolean),
  run(s, args) {
    const name = (args[0] ?? '').replace(/^\$/, '');
    if (!s.vars.delete(name)) return fail('unset', 'ENOENT', `no variable $${name}`, 2);
    return ok([`unset $${name}`]);
  },
};

const vars: CommandSpec = {
  name: 'vars',
  group: 'shell',
  usage: 'vars',
  summary: 'list variables ($ is the last mmap / mremap)',
  mutates: false,
  run(s) {
    const entries = [...s.vars.entries()].sort(([a], [b]) => a.localeCompare(b));
    if (!entries.length) return ok(['(no variables yet: mmap sets $)'], { vars: {} });
    return ok(
      entries.map(([k, v]) => `$${k.padEnd(12)} ${hex(v)}`),
      { vars: Object.fromEntries(entries.map(([k, v]) => [k || '$', v])) },
    );
  },
};

const echo: CommandSpec = {
  name: 'echo',
  group: 'shell',
  usage: 'echo <text...>',
  summary: 'print text (narration in scripts); $name words print the variable',
  mutates: false,
  run(s, args) {
    const words = args.map((a) =>
      /^\$\w*$/.test(a) && s.vars.has(a.slice(1)) ? hex(s.vars.get(a.slice(1)) ?? 0) : a,
    );
    return ok([words.join(' ')]);
  },
};

const clear: CommandSpec = {
  name: 'clear',
  group: 'shell',
  usage: 'clear',
  summary: 'clear the transcript',
  mutates: false,
  run: () => ({ ok: true, lines: [], clear: true }),
};

const quit: CommandSpec = {
  name: 'quit',
  aliases: ['q', 'bye'],
  group: 'shell',
  usage: 'quit',
  summary: 'leave the shell (Ctrl-D, or Ctrl-C twice, also do)',
  mutates: false,
  run: () => ({ ok: true, lines: [], quit: true }),
};

const GROUP_TITLES: Readonly<Record<CommandGroup, string>> = {
  memory: 'Memory',
  data: 'Data and CPU access',
  device: 'Devices (dmirror ioctls)',
  process: 'Processes',
  inspect: 'Inspection',
  shell: 'Shell',
};

/** Builds `help` over the full command list (passed in to keep the modules acyclic). */
export function makeHelp(all: () => readonly CommandSpec[]): CommandSpec {
  const help: CommandSpec = {
    name: 'help',
    aliases: ['?'],
    group: 'shell',
    usage: 'help [command]',
    summary: 'list commands, or explain one',
    mutates: false,
    words: (i) => (i === 0 ? all().map((c) => c.name) : []),
    run(_s, args): CommandResult {
      const cmds = all();
      if (args[0] !== undefined) {
        const c = cmds.find((x) => x.name === args[0] || x.aliases?.includes(args[0]));
        if (!c) return fail('help', 'unknown-command', `no command "${args[0]}" (\`help\` lists them)`);
        return ok(
          [
            `usage: ${c.usage}`,
            `  ${c.summary}`,
            ...(c.details ?? []).map((d) => `  ${d}`),
            ...(c.aliases?.length ? [`  aliases: ${c.aliases.join(', ')}`] : []),
            ...(c.examples?.length ? ['  examples:', ...c.examples.map((e) => `    ${e}`)] : []),
          ],
          { name: c.name, usage: c.usage, summary: c.summary },
        );
      }
      const lines: string[] = [];
      for (const g of Object.keys(GROUP_TITLES) as CommandGroup[]) {
        lines.push(`${GROUP_TITLES[g]}:`);
        lines.push(...table(cmds.filter((c) => c.group === g).map((c) => [`  ${c.name}`, c.summary])));
      }
      lines.push(
        'Addresses and sizes: 0x7f0000000000, 4096, 4K, 2M, 1G, $ (last mmap), $name, $+2M. `help <command>` for details.',
        'Keys: up/down history, Tab completes, Ctrl-C cancels the line, Ctrl-C twice or Ctrl-D quits.',
      );
      return ok(lines, { commands: cmds.map((c) => c.name) });
    },
  };
  return help;
}

/** The shell's own commands: set, unset, vars, echo, clear, quit (help is built by makeHelp). */
export const SHELL_COMMANDS: readonly CommandSpec[] = [set, unset, vars, echo, clear, quit];
