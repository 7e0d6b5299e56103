/**
 * What the parts of the cow.c port share: the program's static variables, fork()ed children,
 * the comm pipes, and libc's memcpy()/memcmp()/pipe()/read()/write() on simulated memory.
 *
 * A fork()ed child runs the C child's code as a coroutine on its own process: it runs when the
 * parent would block (a read() of an empty pipe, wait()), until it blocks in turn (a read() of an
 * empty pipe) or exits. The pipes are the kernel's (mm-core's pipe(2)); since the model's tasks
 * do not sleep on a pipe, a read() of an empty pipe returns EAGAIN and the reader lets the other
 * process run before it reads again, which is the order the C code's blocking reads force.
 */

import { type Process, SignalDelivered, WEXITSTATUS, WIFEXITED } from '@hmm-model/mm-core';
import type { Libc } from '@hmm-model/selftests';
import type { ProgramEnv } from '../program.js';
import type { ThpEnv } from '../thp-settings.js';

/** Models the static variables of cow.c. */
export interface CowGlobals {
  readonly env: ProgramEnv;
  /** thp_settings.c's static state in this program. */
  readonly thp: ThpEnv;
  pagesize: number;
  pagemap_fd: number;
  pmdsize: number;
  thpsizes: number[];
  hugetlbsizes: number[];
  gup_fd: number;
  has_huge_zeropage: boolean;
  /** The live fork()ed children, run as coroutines. */
  readonly children: Child[];
}

/** A process's side of the C code: its libc (errno, malloc) and its process. */
export interface Side {
  readonly libc: Libc;
  readonly proc: Process;
}

/** The code a child runs: it yields where it would block, and returns exit()'s status. */
export type ChildBody = Generator<void, number, void>;

/** A fork()ed child: its process and the coroutine of its code. */
export interface Child extends Side {
  readonly pid: number;
  readonly body: ChildBody;
}

/** Models struct comm_pipes. */
export interface CommPipes {
  child_ready: [number, number];
  parent_ready: [number, number];
}

/** Models `errno = -r; return -1` of a libc syscall wrapper. */
export function sys(s: Side, r: number): number {
  if (r < 0) {
    s.libc.errno = -r;
    return -1;
  }
  return r;
}

/** Models pipe(fds): 0, or -1 with errno. */
export function pipe(s: Side, fds: [number, number]): number {
  const r = s.proc.pipe();
  if (typeof r === 'number') return sys(s, r);
  fds[0] = r[0];
  fds[1] = r[1];
  return 0;
}

/** Models write(fd, "0", 1). */
export function write1(s: Side): (fd: number) => number {
  return (fd) => sys(s, s.proc.write(fd, new Uint8Array([0x30]), 1));
}

/** Models read(fd, &buf, 1) (buf on the stack: a host byte here). */
export function read1(s: Side, fd: number): number {
  return sys(s, s.proc.read(fd, new Uint8Array(1), 1));
}

/** Models close(fd). */
export function close(s: Side, fd: number): number {
  return s.libc.close(fd);
}

/** Models setup_comm_pipes(): the two pipes, or -errno (closing the first when the second fails). */
export function setup_comm_pipes(s: Side, comm: CommPipes): number {
  if (pipe(s, comm.child_ready) < 0) return -s.libc.errno;
  if (pipe(s, comm.parent_ready) < 0) {
    close(s, comm.child_ready[0]);
    close(s, comm.child_ready[1]);
    return -s.libc.errno;
  }
  return 0;
}

/** Models close_comm_pipes(). */
export function close_comm_pipes(s: Side, comm: CommPipes): void {
  close(s, comm.child_ready[0]);
  close(s, comm.child_ready[1]);
  close(s, comm.parent_ready[0]);
  close(s, comm.parent_ready[1]);
}

/** A fresh struct comm_pipes. */
export function commPipes(): CommPipes {
  return { child_ready: [-1, -1], parent_ready: [-1, -1] };
}

/** Models memcpy(dst, src, n) in one process's memory. */
export function memcpy(s: Side, dst: number, src: number, n: number): void {
  s.proc.writeBytes(dst, s.proc.readBytes(src, n));
}

/** Models memcmp(a, b, n): the difference of the first differing bytes, or 0. */
export function memcmp(s: Side, a: number, b: number, n: number): number {
  const x = s.proc.readBytes(a, n);
  const y = s.proc.readBytes(b, n);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}

/** Bound on scheduling rounds before two processes waiting for each other are reported. */
const DEADLOCK_ROUNDS = 100_000;

/** Ends a child as exit(status) or as its death by a signal the model delivered. */
function endChild(g: CowGlobals, c: Child, status: number | null, signo = 0): void {
  g.children.splice(g.children.indexOf(c), 1);
  if (c.proc.state !== 'running') return;
  if (status === null) c.proc.doExit(0, signo);
  else c.proc.exit(status & 0xff);
}

/** Runs every live child until it blocks or exits (one step of each). */
export function runChildren(g: CowGlobals): void {
  for (const c of [...g.children]) {
    try {
      const r = c.body.next();
      if (r.done) endChild(g, c, r.value);
    } catch (e) {
      if (e instanceof SignalDelivered && e.pid === c.pid) endChild(g, c, null, e.signo);
      else throw e;
    }
  }
}

/**
 * Models `while (read(fd, &buf, 1) != 1);` in the parent: the children run while the pipe is
 * empty. A pipe no child will ever write is the C program hanging: reported as a model error.
 */
export function parent_wait_byte(g: CowGlobals, s: Side, fd: number): void {
  for (let round = 0; read1(s, fd) !== 1; round++) {
    if (round > DEADLOCK_ROUNDS || !g.children.length)
      throw new Error(`cow: read(${fd}) would block forever (no child left to write the pipe)`);
    runChildren(g);
  }
}

/** Models `while (read(fd, &buf, 1) != 1);` in a child: it yields to the parent while the pipe is empty. */
export function* child_wait_byte(s: Side, fd: number): Generator<void, void, void> {
  while (read1(s, fd) !== 1) yield;
}

/**
 * Models fork() with the child's code: -1 with errno, or the child's pid in the parent (the
 * child has not run yet; it runs when the parent waits).
 */
export function fork(g: CowGlobals, s: Side, body: (child: Side) => ChildBody): number {
  const pid = s.libc.fork();
  if (pid < 0) return -1;
  const proc = g.env.kernel.task(pid);
  if (!proc) throw new Error(`fork() returned pid ${pid} but no such task exists`);
  const libc = s.libc.forChild(proc);
  const side: Side = { libc, proc };
  g.children.push({ pid, libc, proc, body: body(side) });
  return pid;
}

/** A child that exits at once: `else if (!ret) exit(status);`. */
export function* exitAtOnce(status: number): ChildBody {
  return status;
}

/** Models wait(&status): the children run until one has exited; its pid, or -1 (ECHILD). */
export function wait(g: CowGlobals, s: Side, status: { value: number }): number {
  for (let round = 0; ; round++) {
    const r = s.proc.waitpid(-1, status);
    if (r !== 0) return sys(s, r);
    if (round > DEADLOCK_ROUNDS || !g.children.length)
      throw new Error('cow: wait() would block forever (the child never exits)');
    runChildren(g);
  }
}

/** Models WIFEXITED(ret) ? WEXITSTATUS(ret) : -EINVAL after wait(&ret). */
export function exitStatusOr(status: number, otherwise: number): number {
  return WIFEXITED(status) ? WEXITSTATUS(status) : otherwise;
}

export { WIFEXITED };
