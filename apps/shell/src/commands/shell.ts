import { fmtSize, hex, table } from '../format.js';
import { machineOf } from '../machine.js';
import { dmirrorMthpSpec } from '../mthp.js';
import { parseAddr } from '../parse.js';
import { type CommandResult, fail, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { swapText } from '../sizes.js';
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
  maxArgs: 2,
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
  examples: ['unset buf'],
  mutates: false,
  maxArgs: 1,
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
  examples: ['vars'],
  mutates: false,
  maxArgs: 0,
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
  examples: ['echo the THP is now on the device: $'],
  mutates: false,
  maxArgs: Number.POSITIVE_INFINITY,
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
  examples: ['clear'],
  mutates: false,
  maxArgs: 0,
  run: () => ({ ok: true, lines: [], clear: true }),
};

const quit: CommandSpec = {
  name: 'quit',
  aliases: ['q', 'bye'],
  group: 'shell',
  usage: 'quit',
  summary: 'leave the shell (Ctrl-D, or Ctrl-C twice, also do)',
  examples: ['quit'],
  mutates: false,
  maxArgs: 0,
  run: () => ({ ok: true, lines: [], quit: true }),
};

/** The header `record` writes: how to replay, and the machine the session ran on. */
function recordHeader(s: Session): string[] {
  const core = s.kernel.core;
  const ram = core.ramPages * 4096;
  const out = [
    '# hmm-shell session written by `record` (replay: pnpm shell < FILE, or hmm-shell --script FILE)',
  ];
  if (ram !== 2 * 2 ** 30)
    out.push(`# recorded on a machine with --ram ${fmtSize(ram).replace(' ', '').replace('iB', '')}`);
  const swap = swapText(s.kernel);
  if (swap !== '1G swap')
    out.push(`# recorded on a machine with --swap ${swap === 'no swap' ? '0' : swap.split(' ')[0]}`);
  const devices = machineOf(s.kernel)?.dmirror.devices ?? [];
  const mthp = devices
    .filter((d) => d.mthpOrders)
    .map((d) => `--dmirror-mthp ${dmirrorMthpSpec(d.minor, d.mthpOrders)}`);
  if (mthp.length) out.push(`# recorded on a machine with ${mthp.join(' ')}`);
  if (s.bootThp !== 'madvise') out.push(`thp ${s.bootThp}`);
  return out;
}

const record: CommandSpec = {
  name: 'record',
  group: 'shell',
  usage: 'record <file>',
  summary: 'write this session as a replayable script: the commands so far, then each one until `stop`',
  details: [
    'The file starts with every command run since the shell started (so replaying it rebuilds the',
    'same machine state), then grows by one line per command. help, clear, record, stop and quit',
    'are left out, and so are lines that were usage errors.',
  ],
  examples: ['record session.hmm', 'record /tmp/thp-demo.hmm'],
  mutates: false,
  maxArgs: 1,
  run(s, args): CommandResult {
    const path = args[0];
    if (path === undefined) throw new UsageError('missing file name');
    if (s.recording)
      return fail('record', 'EBUSY', `already recording to ${s.recording.path} (\`stop\` first)`, 16);
    try {
      s.files.write(path, [...recordHeader(s), ...s.history].map((l) => `${l}\n`).join(''));
    } catch (e) {
      return fail('record', 'EIO', `cannot write ${path}: ${(e as Error).message}`, 5);
    }
    s.recording = { path, lines: s.history.length };
    return ok(
      [
        `record: writing ${path}: ${s.history.length} command(s) so far; each command from now on is added until \`stop\``,
      ],
      { path, lines: s.history.length },
    );
  },
};

const stop: CommandSpec = {
  name: 'stop',
  group: 'shell',
  usage: 'stop',
  summary: 'stop `record`: the script file is complete',
  examples: ['stop'],
  mutates: false,
  maxArgs: 0,
  run(s): CommandResult {
    const r = s.recording;
    if (!r) return fail('stop', 'ENOENT', 'not recording (`record <file>` starts)', 2);
    s.recording = null;
    return ok([`stop: ${r.path} holds ${r.lines} command(s); replay it with \`pnpm shell < ${r.path}\``], {
      path: r.path,
      lines: r.lines,
    });
  },
};

const GROUP_TITLES: Readonly<Record<CommandGroup, string>> = {
  memory: 'Memory',
  data: 'Data and CPU access',
  device: 'Devices (dmirror ioctls)',
  gpu: 'GPU (nouveau SVM and VRAM)',
  process: 'Processes',
  inspect: 'Inspection',
  explore: 'Interleaving explorer (model-only; its own machine)',
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
    examples: ['help', 'help mmap', 'help gread'],
    mutates: false,
    maxArgs: 1,
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

/** The shell's own commands: set, unset, vars, echo, record, stop, clear, quit (help is built by makeHelp). */
export const SHELL_COMMANDS: readonly CommandSpec[] = [set, unset, vars, echo, record, stop, clear, quit];

/** Commands `record` leaves out of the script (they do not change or narrate the machine). */
export const NOT_RECORDED: ReadonlySet<string> = new Set(['help', 'clear', 'record', 'stop', 'quit']);
