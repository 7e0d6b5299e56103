/**
 * The low-level kselftest API, tools/testing/selftests/kselftest.h (v6.19): the counters, the
 * plan, `ksft_print_header()`, `ksft_test_result_*()`, `ksft_print_cnts()` and the exits, written
 * through the program's {@link Stdio}. Messages are the already-formatted printf() output of the
 * C call, newline included: a message without a trailing newline (as some tests have) leaves the
 * next output on the same line, as on a kernel.
 */

import {
  type Counts,
  countLines,
  ExitRequest,
  KSFT_FAIL,
  KSFT_PASS,
  KSFT_SKIP,
  KSFT_XFAIL,
  strerror,
} from '@hmm-model/selftests';
import type { Stdio } from './stdio.js';

/** Models the static state of kselftest.h in one program: struct ksft_count and ksft_plan. */
export class Ksft {
  readonly #stdio: Stdio;
  readonly #env: Readonly<Record<string, string | undefined>>;
  /** Models struct ksft_count ksft_cnt (`skip` is ksft_xskip). */
  readonly cnt: Counts = { pass: 0, fail: 0, xfail: 0, xpass: 0, skip: 0, error: 0 };
  /** Models ksft_plan. */
  plan = 0;

  constructor(stdio: Stdio, env: Readonly<Record<string, string | undefined>>) {
    this.#stdio = stdio;
    this.#env = env;
  }

  /** Models ksft_test_num(): every result reported so far. */
  test_num(): number {
    const c = this.cnt;
    return c.pass + c.fail + c.xfail + c.xpass + c.skip + c.error;
  }

  /** Models ksft_get_fail_cnt(). */
  get_fail_cnt(): number {
    return this.cnt.fail;
  }

  /** Models ksft_print_header(): stdout line buffered, `TAP version 13` unless KSFT_TAP_LEVEL is set. */
  print_header(): void {
    this.#stdio.setvbuf('line');
    if (this.#env.KSFT_TAP_LEVEL === undefined) this.#stdio.printf('TAP version 13\n');
  }

  /** Models ksft_set_plan(plan). */
  set_plan(plan: number): void {
    this.plan = plan;
    this.#stdio.printf(`1..${plan}\n`);
  }

  /** Models ksft_print_msg(msg): `# ` then the message. */
  print_msg(msg: string): void {
    this.#stdio.printf(`# ${msg}`);
  }

  /** Models ksft_perror(msg): `# <msg>: <strerror(errno)> (<errno>)`. */
  perror(msg: string, errno: number): void {
    this.print_msg(`${msg}: ${strerror(errno)} (${errno})\n`);
  }

  /**
   * Models the ksft_test_result_report(result, fmt, ...) macro: KSFT_PASS, KSFT_FAIL, KSFT_XFAIL
   * and KSFT_SKIP report as their ksft_test_result_*(); any other value prints nothing.
   */
  test_result_report(result: number, msg: string): void {
    if (result === KSFT_PASS) this.test_result_pass(msg);
    else if (result === KSFT_FAIL) this.test_result_fail(msg);
    else if (result === KSFT_XFAIL) this.test_result_xfail(msg);
    else if (result === KSFT_SKIP) this.test_result_skip(msg);
  }

  /** Models ksft_test_result_pass(msg). */
  test_result_pass(msg: string): void {
    this.cnt.pass++;
    this.#stdio.printf(`ok ${this.test_num()} ${msg}`);
  }

  /** Models ksft_test_result_fail(msg). */
  test_result_fail(msg: string): void {
    this.cnt.fail++;
    this.#stdio.printf(`not ok ${this.test_num()} ${msg}`);
  }

  /** Models the ksft_test_result(condition, msg) macro. */
  test_result(condition: boolean, msg: string): void {
    if (condition) this.test_result_pass(msg);
    else this.test_result_fail(msg);
  }

  /** Models ksft_test_result_xfail(msg). */
  test_result_xfail(msg: string): void {
    this.cnt.xfail++;
    this.#stdio.printf(`ok ${this.test_num()} # XFAIL ${msg}`);
  }

  /** Models ksft_test_result_skip(msg). */
  test_result_skip(msg: string): void {
    this.cnt.skip++;
    this.#stdio.printf(`ok ${this.test_num()} # SKIP ${msg}`);
  }

  /** Models ksft_test_result_error(msg). */
  test_result_error(msg: string): void {
    this.cnt.error++;
    this.#stdio.printf(`not ok ${this.test_num()} # error ${msg}`);
  }

  /** Models ksft_print_cnts(): skip hint, plan mismatch, Totals. */
  print_cnts(): void {
    for (const line of countLines(this.cnt, this.plan, this.test_num())) this.#stdio.printf(`${line}\n`);
  }

  /** Models ksft_exit_pass(): the counts, then exit(KSFT_PASS). */
  exit_pass(): never {
    this.print_cnts();
    throw new ExitRequest(KSFT_PASS);
  }

  /** Models ksft_exit_fail(): the counts, then exit(KSFT_FAIL). */
  exit_fail(): never {
    this.print_cnts();
    throw new ExitRequest(KSFT_FAIL);
  }

  /** Models the ksft_exit(condition) macro. */
  exit(condition: boolean): never {
    if (condition) this.exit_pass();
    this.exit_fail();
  }

  /**
   * Models the ksft_finished() macro of v6.19: pass when the plan equals pass + xfail + skip
   * (xpass joined the sum only in 2026, after v7.0).
   */
  finished(): never {
    const c = this.cnt;
    this.exit(this.plan === c.pass + c.xfail + c.skip);
  }

  /** Models ksft_exit_fail_msg(msg): `Bail out! <msg>`, the counts, exit(KSFT_FAIL). */
  exit_fail_msg(msg: string): never {
    this.#stdio.printf(`Bail out! ${msg}`);
    this.print_cnts();
    throw new ExitRequest(KSFT_FAIL);
  }

  /**
   * Models ksft_exit_skip(msg): after a plan or a result `ok N # SKIP <msg>` (counted as a skip),
   * else `1..0 # SKIP <msg>`; the counts when any result exists; exit(KSFT_SKIP).
   */
  exit_skip(msg: string): never {
    if (this.plan || this.test_num()) {
      this.cnt.skip++;
      this.#stdio.printf(`ok ${this.test_num()} # SKIP `);
    } else {
      this.#stdio.printf('1..0 # SKIP ');
    }
    this.#stdio.printf(msg);
    if (this.test_num()) this.print_cnts();
    throw new ExitRequest(KSFT_SKIP);
  }
}
