import {
  ECHILD,
  ESRCH,
  type Process,
  SIGBUS,
  SIGINT,
  SIGKILL,
  SIGSEGV,
  SIGTERM,
  WEXITSTATUS,
  WIFEXITED,
  WTERMSIG,
} from '@hmm-model/mm-core';
import { fmtSize, table } from '../format.js';
import { parseInt10 } from '../parse.js';
import { fail, failErrno, ok, UsageError } from '../result.js';
import type { Session } from '../session.js';
import { signalName, signalNumber } from '../signals.js';
import type { CommandSpec } from './types.js';
import { currentProc, isResult } from './util.js';

/** The signals `kill` completes (any name of the shared table, or a number, is accepted). */
const KILL_WORDS: readonly string[] = [SIGKILL, SIGTERM, SIGINT, SIGSEGV, SIGBUS].map((n) =>
  signalName(n).slice(3),
);

/** Models signal names for kill(1): KILL, SIGTERM, -9, 9 ... */
function parseSignal(tok: string | undefined): number {
  if (tok === undefined) return SIGKILL;
  const bare = tok.replace(/^-/, '');
  const named = signalNumber(bare);
  if (named !== undefined) return named;
  if (/^[a-z]/i.test(bare))
    throw new UsageError(`bad signal "${tok}": a name such as KILL, TERM, INT, or a number`);
  return parseInt10(bare, 'signal');
}

/** A wait status as `ps` and `wait` show it: `exited with 3`, `killed by SIGKILL`. */
function statusText(status: number): string {
  return WIFEXITED(status)
    ? `exited with ${WEXITSTATUS(status)}`
    : `killed by ${signalName(WTERMSIG(status))}`;
}

function pidWords(s: Session): string[] {
  return s.processes().map((p) => String(p.pid));
}

/** Resident bytes of a process (models the rss counters of /proc/pid/status). */
function rssBytes(p: Process): number {
  const r = p.mm.rss;
  return (r.MM_ANONPAGES + r.MM_FILEPAGES + r.MM_SHMEMPAGES) * 4096;
}

const fork: CommandSpec = {
  name: 'fork',
  group: 'process',
  usage: 'fork',
  summary: 'fork the current process (models fork(2)); the shell stays on the parent',
  examples: ['fork', 'child = fork'],
  mutates: true,
  maxArgs: 0,
  run(s) {
    const proc = currentProc(s, 'fork');
    if (isResult(proc)) return proc;
    const r = proc.fork();
    if (r < 0) return failErrno('fork', r, 'dup_mmap() could not copy the address space');
    return ok(
      [`fork: child pid ${r} (current is still ${proc.pid}; \`switch ${r}\` to use the child)`],
      { pid: r, parent: proc.pid },
      r,
    );
  },
};

const ps: CommandSpec = {
  name: 'ps',
  group: 'process',
  usage: 'ps',
  summary: 'list processes (pid, parent, state, VMAs, rss, open dmirror devices)',
  examples: ['ps'],
  mutates: false,
  maxArgs: 0,
  run(s) {
    const rows = [['', 'PID', 'PPID', 'STATE', 'VMAS', 'RSS', 'DEVICES']];
    const data = [];
    for (const p of s.processes()) {
      const devs = s.openDevices(p.pid).map(([d]) => `dmirror${d}`);
      const state = p.state === 'running' ? 'running' : `zombie (${statusText(p.status)})`;
      const running = p.state === 'running';
      rows.push([
        p.pid === s.currentPid ? '*' : '',
        String(p.pid),
        p.parent ? String(p.parent.pid) : '-',
        state,
        running ? String(p.mm.vmas.length) : '-',
        running ? fmtSize(rssBytes(p)) : '-',
        devs.join(',') || '-',
      ]);
      data.push({ pid: p.pid, ppid: p.parent?.pid ?? null, state: p.state, current: p.pid === s.currentPid });
    }
    if (rows.length === 1) return ok(['ps: no processes (`spawn` starts one)'], { processes: [] });
    return ok(table(rows), { processes: data });
  },
};

const switchCmd: CommandSpec = {
  name: 'switch',
  aliases: ['use'],
  group: 'process',
  usage: 'switch <pid>',
  summary: 'make another process current (the map and commands follow it)',
  examples: ['switch 2', 'use 1'],
  mutates: false,
  maxArgs: 1,
  words: (_i, _a, s) => pidWords(s),
  run(s, args) {
    const pid = parseInt10(args[0], 'pid');
    const p = s.kernel.task(pid);
    if (!p) return fail('switch', 'ESRCH', `no process ${pid} (\`ps\` lists them)`, ESRCH);
    if (p.state !== 'running')
      return fail('switch', 'ESRCH', `process ${pid} has exited (${statusText(p.status)})`, ESRCH);
    s.currentPid = pid;
    return ok([`switch: current process is ${pid}`], { pid });
  },
};

const kill: CommandSpec = {
  name: 'kill',
  group: 'process',
  usage: 'kill <pid> [KILL|TERM|INT|<name>|<n>]',
  summary: 'send a fatal signal from the current process (models kill(2))',
  examples: ['kill 2', 'kill 2 TERM', 'kill 3 9', 'kill 2 SIGHUP'],
  mutates: true,
  maxArgs: 2,
  words: (i, _a, s) => (i === 0 ? pidWords(s) : KILL_WORDS),
  run(s, args) {
    const pid = parseInt10(args[0], 'pid');
    const sig = parseSignal(args[1]);
    const proc = currentProc(s, 'kill');
    if (isResult(proc)) return proc;
    const r = proc.kill(pid, sig);
    if (r < 0) return failErrno('kill', r, `no running process ${pid}`);
    s.reconcile();
    const t = s.kernel.task(pid);
    const after = !t
      ? 'reaped'
      : t.state === 'running'
        ? sig === 0
          ? 'it exists (signal 0 only checks)'
          : 'still running (the signal was ignored)'
        : `now a zombie until its parent waits (\`switch ${t.parent?.pid}\`, \`wait ${pid}\`)`;
    return ok(
      [
        `kill: ${sig === 0 ? 'signal 0' : `${signalName(sig)} (signal ${sig})`} sent to ${pid}: ${after}`,
        ...(s.currentPid !== proc.pid ? [`current process is now ${s.currentPid ?? 'none'}`] : []),
      ],
      {
        pid,
        signal: sig,
        signalName: signalName(sig),
      },
    );
  },
};

const exit: CommandSpec = {
  name: 'exit',
  group: 'process',
  usage: 'exit [code]',
  summary: 'the current process exits (models exit_group(2)); the shell switches to its parent',
  details: [
    'To leave the shell itself use `quit` or Ctrl-D. Global init (pid 1) cannot exit: the kernel',
    'panics "Attempted to kill init!" (do_exit()); the machine is left as it was, for inspection.',
  ],
  examples: ['exit', 'exit 3'],
  mutates: true,
  maxArgs: 1,
  run(s, args) {
    const code = args[0] === undefined ? 0 : parseInt10(args[0], 'exit code');
    const proc = currentProc(s, 'exit');
    if (isResult(proc)) return proc;
    proc.exit(code);
    s.reconcile();
    const zombie = proc.state === 'zombie' ? ' (a zombie until its parent waits)' : '';
    return ok(
      [
        `exit: process ${proc.pid} exited with ${code}${zombie}; current process is ${s.currentPid ?? 'none (`spawn` starts one)'}`,
      ],
      { pid: proc.pid, code, current: s.currentPid },
    );
  },
};

const wait: CommandSpec = {
  name: 'wait',
  group: 'process',
  usage: 'wait [pid]',
  summary: 'reap an exited child of the current process (models waitpid(2))',
  examples: ['wait', 'wait 2'],
  mutates: true,
  maxArgs: 1,
  words: (_i, _a, s) => pidWords(s),
  run(s, args) {
    const pid = args[0] === undefined ? -1 : parseInt10(args[0], 'pid');
    const proc = currentProc(s, 'wait');
    if (isResult(proc)) return proc;
    const st = { value: 0 };
    const r = proc.waitpid(pid, st);
    if (r === -ECHILD)
      return failErrno(
        'wait',
        r,
        pid < 0 ? 'the current process has no children' : `${pid} is not a child of ${proc.pid}`,
      );
    if (r === 0)
      return fail(
        'wait',
        'EAGAIN',
        `child ${pid < 0 ? '' : `${pid} `}is still running (a blocking wait would never return here)`,
        11,
      );
    return ok([`wait: child ${r} ${statusText(st.value)}`], { pid: r, status: st.value });
  },
};

const spawn: CommandSpec = {
  name: 'spawn',
  group: 'process',
  usage: 'spawn',
  summary: 'start a new process with an empty address space and make it current',
  examples: ['spawn'],
  mutates: true,
  maxArgs: 0,
  run(s) {
    const p = s.kernel.spawn();
    s.currentPid = p.pid;
    return ok([`spawn: process ${p.pid} started; it is current`], { pid: p.pid }, p.pid);
  },
};

/** The process commands: fork, ps, switch, kill, exit, wait, spawn. */
export const PROCESS_COMMANDS: readonly CommandSpec[] = [fork, ps, switchCmd, kill, exit, wait, spawn];
