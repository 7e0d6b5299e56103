/**
 * The ASSERT_* / EXPECT_* family of kselftest_harness.h, as methods of the per-test context.
 *
 * Every numeric check takes the two operands, the source text of each operand (as the C macro
 * would stringify it) and an optional {@link Where} (C line number, or options with line, file and
 * an on-failure handler). On failure it prints, on stderr,
 * `# <file>:<line>:<test>:Expected <A_text> (<A_value>) <op> <B_text> (<B_value>)`
 * and marks the test FAIL. EXPECT_* then returns false and the test continues; ASSERT_* throws an
 * {@link AssertAbort} (never catch it), which the runner reports as `Test terminated by assertion`.
 */

import {
  type CompareOp,
  type CValue,
  compareC,
  formatCValue,
  ptr,
  stringify,
  truthOperand,
} from './cvalue.js';
import { type Location, resolveWhere, type StackBoundary, type Where } from './location.js';

/** Models the assertion half of struct __test_metadata (kselftest_harness.h): ASSERT_* and EXPECT_*. */
export abstract class Checks {
  /** Models `__FILE__` when no explicit file is given. */
  protected abstract readonly defaultFile: string;
  /** Throws when this test process is already dead (timed out or finished). */
  protected abstract guard(): void;
  /** Prints `# file:line:test:message` on stderr. */
  protected abstract emitLog(loc: Location, message: string): void;
  /** Sets FAIL, runs the optional handler and, for ASSERT, aborts. */
  protected abstract recordFailure(isAssert: boolean, onFail: (() => void) | undefined): void;

  /** Models __EXPECT() (kselftest_harness.h). */
  protected check(
    op: CompareOp,
    a: CValue,
    b: CValue,
    aText: string,
    bText: string,
    where: Where | undefined,
    isAssert: boolean,
    boundary: StackBoundary,
  ): boolean {
    this.guard();
    if (compareC(a, op, b)) return true;
    const loc = resolveWhere(where, this.defaultFile, boundary);
    this.emitLog(
      loc,
      `Expected ${stringify(aText)} (${formatCValue(a)}) ${op} ${stringify(bText)} (${formatCValue(b)})`,
    );
    this.recordFailure(isAssert, loc.onFail);
    return false;
  }

  /** Models __EXPECT_STR() (kselftest_harness.h). */
  protected checkStr(
    equal: boolean,
    a: string,
    b: string,
    where: Where | undefined,
    isAssert: boolean,
    boundary: StackBoundary,
  ): boolean {
    this.guard();
    if ((a === b) === equal) return true;
    const loc = resolveWhere(where, this.defaultFile, boundary);
    this.emitLog(loc, `Expected '${a}' ${equal ? '==' : '!='} '${b}'.`);
    this.recordFailure(isAssert, loc.onFail);
    return false;
  }

  /** Models ASSERT_EQ(expected, seen) (kselftest_harness.h). */
  ASSERT_EQ(a: CValue, b: CValue, aText: string, bText: string, where?: Where): void {
    this.check('==', a, b, aText, bText, where, true, this.ASSERT_EQ);
  }
  /** Models ASSERT_NE(expected, seen) (kselftest_harness.h). */
  ASSERT_NE(a: CValue, b: CValue, aText: string, bText: string, where?: Where): void {
    this.check('!=', a, b, aText, bText, where, true, this.ASSERT_NE);
  }
  /** Models ASSERT_LT(expected, seen) (kselftest_harness.h). */
  ASSERT_LT(a: CValue, b: CValue, aText: string, bText: string, where?: Where): void {
    this.check('<', a, b, aText, bText, where, true, this.ASSERT_LT);
  }
  /** Models ASSERT_LE(expected, seen) (kselftest_harness.h). */
  ASSERT_LE(a: CValue, b: CValue, aText: string, bText: string, where?: Where): void {
    this.check('<=', a, b, aText, bText, where, true, this.ASSERT_LE);
  }
  /** Models ASSERT_GT(expected, seen) (kselftest_harness.h). */
  ASSERT_GT(a: CValue, b: CValue, aText: string, bText: string, where?: Where): void {
    this.check('>', a, b, aText, bText, where, true, this.ASSERT_GT);
  }
  /** Models ASSERT_GE(expected, seen) (kselftest_harness.h). */
  ASSERT_GE(a: CValue, b: CValue, aText: string, bText: string, where?: Where): void {
    this.check('>=', a, b, aText, bText, where, true, this.ASSERT_GE);
  }
  /** Models ASSERT_NULL(seen) (kselftest_harness.h): prints `Expected NULL (0) == x (v)`. */
  ASSERT_NULL(x: unknown, xText: string, where?: Where): void {
    this.check('==', ptr(null), truthOperand(x), 'NULL', xText, where, true, this.ASSERT_NULL);
  }
  /** Models ASSERT_TRUE(seen) (kselftest_harness.h): prints `Expected 0 (0) != x (v)`. */
  ASSERT_TRUE(x: unknown, xText: string, where?: Where): void {
    this.check('!=', 0, truthOperand(x), '0', xText, where, true, this.ASSERT_TRUE);
  }
  /** Models ASSERT_FALSE(seen) (kselftest_harness.h): prints `Expected 0 (0) == x (v)`. */
  ASSERT_FALSE(x: unknown, xText: string, where?: Where): void {
    this.check('==', 0, truthOperand(x), '0', xText, where, true, this.ASSERT_FALSE);
  }
  /** Models ASSERT_STREQ(expected, seen) (kselftest_harness.h): prints `Expected 'a' == 'b'.`. */
  ASSERT_STREQ(a: string, b: string, where?: Where): void {
    this.checkStr(true, a, b, where, true, this.ASSERT_STREQ);
  }
  /** Models ASSERT_STRNE(expected, seen) (kselftest_harness.h): prints `Expected 'a' != 'b'.`. */
  ASSERT_STRNE(a: string, b: string, where?: Where): void {
    this.checkStr(false, a, b, where, true, this.ASSERT_STRNE);
  }

  /** Models EXPECT_EQ(expected, seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_EQ(a: CValue, b: CValue, aText: string, bText: string, where?: Where): boolean {
    return this.check('==', a, b, aText, bText, where, false, this.EXPECT_EQ);
  }
  /** Models EXPECT_NE(expected, seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_NE(a: CValue, b: CValue, aText: string, bText: string, where?: Where): boolean {
    return this.check('!=', a, b, aText, bText, where, false, this.EXPECT_NE);
  }
  /** Models EXPECT_LT(expected, seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_LT(a: CValue, b: CValue, aText: string, bText: string, where?: Where): boolean {
    return this.check('<', a, b, aText, bText, where, false, this.EXPECT_LT);
  }
  /** Models EXPECT_LE(expected, seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_LE(a: CValue, b: CValue, aText: string, bText: string, where?: Where): boolean {
    return this.check('<=', a, b, aText, bText, where, false, this.EXPECT_LE);
  }
  /** Models EXPECT_GT(expected, seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_GT(a: CValue, b: CValue, aText: string, bText: string, where?: Where): boolean {
    return this.check('>', a, b, aText, bText, where, false, this.EXPECT_GT);
  }
  /** Models EXPECT_GE(expected, seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_GE(a: CValue, b: CValue, aText: string, bText: string, where?: Where): boolean {
    return this.check('>=', a, b, aText, bText, where, false, this.EXPECT_GE);
  }
  /** Models EXPECT_NULL(seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_NULL(x: unknown, xText: string, where?: Where): boolean {
    return this.check('==', ptr(null), truthOperand(x), 'NULL', xText, where, false, this.EXPECT_NULL);
  }
  /** Models EXPECT_TRUE(seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_TRUE(x: unknown, xText: string, where?: Where): boolean {
    return this.check('!=', 0, truthOperand(x), '0', xText, where, false, this.EXPECT_TRUE);
  }
  /** Models EXPECT_FALSE(seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_FALSE(x: unknown, xText: string, where?: Where): boolean {
    return this.check('==', 0, truthOperand(x), '0', xText, where, false, this.EXPECT_FALSE);
  }
  /** Models EXPECT_STREQ(expected, seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_STREQ(a: string, b: string, where?: Where): boolean {
    return this.checkStr(true, a, b, where, false, this.EXPECT_STREQ);
  }
  /** Models EXPECT_STRNE(expected, seen) (kselftest_harness.h); returns whether it held. */
  EXPECT_STRNE(a: string, b: string, where?: Where): boolean {
    return this.checkStr(false, a, b, where, false, this.EXPECT_STRNE);
  }
}
