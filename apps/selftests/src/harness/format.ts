/** Literal output templates of kselftest_harness.h and kselftest.h. */

import { KSFT_FAIL, KSFT_PASS, KSFT_SKIP, KSFT_XFAIL, KSFT_XPASS } from './constants.js';

/** Models the names test_harness_list_tests() (kselftest_harness.h) reads from one fixture. */
export interface ListedFixture {
  readonly name: string;
  readonly variants: readonly { readonly name: string }[];
  readonly tests: readonly { readonly name: string }[];
}

/**
 * Models the usage text of test_harness_argv_check() (kselftest_harness.h), as lines for stderr.
 * `debugOption` selects the v6.19+ form with `-d`.
 */
export function usageLines(argv0: string, debugOption = true): string[] {
  return [
    `Usage: ${argv0} [-h|-l${debugOption ? '|-d' : ''}] [-t|-T|-v|-V|-f|-F|-r name]`,
    '\t-h       print help',
    '\t-l       list all tests',
    ...(debugOption ? ['\t-d       enable debug prints'] : []),
    '',
    '\t-t name  include test',
    '\t-T name  exclude test',
    '\t-v name  include variant',
    '\t-V name  exclude variant',
    '\t-f name  include fixture',
    '\t-F name  exclude fixture',
    '\t-r name  run specified test',
    '',
    'Test filter options can be specified multiple times. The filtering stops',
    "at the first match. For example to include all tests from variant 'bla'",
    "but not test 'foo' specify '-T foo -v bla'.",
  ];
}

function listRow(fixture: string, variant: string, test: string): string {
  return `${fixture.padEnd(20)} ${variant.padEnd(25)} ${test}`;
}

/**
 * Models test_harness_list_tests() (kselftest_harness.h), as lines for stderr: a header row, then
 * per fixture variants and tests zipped row by row, fixtures separated by 80 dashes.
 */
export function listLines(fixtures: readonly ListedFixture[]): string[] {
  const out: string[] = [];
  fixtures.forEach((f, i) => {
    out.push(i === 0 ? listRow('# FIXTURE', 'VARIANT', 'TEST') : '-'.repeat(80));
    const rows = Math.max(f.variants.length, f.tests.length, 1);
    for (let r = 0; r < rows; r++) {
      const showName = r === 0 || f.tests.length === 0;
      out.push(listRow(showName ? f.name : '', f.variants[r]?.name ?? '', f.tests[r]?.name ?? ''));
    }
  });
  return out;
}

/** Models the `#  RUN           <name> ...` line of __run_test() (kselftest_harness.h). */
export function runLine(fullName: string): string {
  return `#  RUN           ${fullName} ...`;
}

/** Models the `#            OK  <name>` / `#          FAIL  <name>` line of __run_test(). */
export function statusLine(passed: boolean, fullName: string): string {
  return `#          ${(passed ? 'OK' : 'FAIL').padStart(4)}  ${fullName}`;
}

/** Models __test_passed() (kselftest_harness.h): not FAIL and not above KSFT_SKIP. */
export function testPassed(exitCode: number): boolean {
  return exitCode !== KSFT_FAIL && exitCode <= KSFT_SKIP;
}

/**
 * Models ksft_test_result_code() (kselftest.h): `ok N name`, `not ok N name`,
 * `ok N name # SKIP reason`, `# XFAIL`, `# XPASS`, or `#  reason` (two spaces) when a PASS/FAIL
 * carries a diagnostic.
 */
export function resultLine(n: number, exitCode: number, fullName: string, diagnostic: string | null): string {
  let tap = 'ok';
  let directive = '';
  switch (exitCode) {
    case KSFT_PASS:
      break;
    case KSFT_XFAIL:
      directive = ' # XFAIL ';
      break;
    case KSFT_XPASS:
      directive = ' # XPASS ';
      break;
    case KSFT_SKIP:
      directive = ' # SKIP ';
      break;
    default:
      tap = 'not ok';
  }
  if (!directive && diagnostic !== null) directive = ' #  ';
  return `${tap} ${n} ${fullName}${directive}${diagnostic ?? ''}`;
}

/** Models struct ksft_count (kselftest.h). */
export interface Counts {
  pass: number;
  fail: number;
  xfail: number;
  xpass: number;
  skip: number;
  error: number;
}

/** Models the counter update of ksft_test_result_code() (kselftest.h). */
export function countResult(counts: Counts, exitCode: number): void {
  switch (exitCode) {
    case KSFT_PASS:
      counts.pass++;
      break;
    case KSFT_XFAIL:
      counts.xfail++;
      break;
    case KSFT_XPASS:
      counts.xpass++;
      break;
    case KSFT_SKIP:
      counts.skip++;
      break;
    default:
      counts.fail++;
  }
}

/**
 * Models ksft_print_cnts() (kselftest.h): the skip hint (when `skipHint` and any test skipped),
 * the optional plan mismatch line and the Totals line, in that order.
 */
export function countLines(counts: Counts, plan: number, ran: number, skipHint = true): string[] {
  const out: string[] = [];
  if (skipHint && counts.skip > 0) {
    out.push(
      `# ${counts.skip} skipped test(s) detected. Consider enabling relevant config options to improve coverage.`,
    );
  }
  if (plan !== ran) out.push(`# Planned tests != run tests (${plan} != ${ran})`);
  out.push(
    `# Totals: pass:${counts.pass} fail:${counts.fail} xfail:${counts.xfail} xpass:${counts.xpass} ` +
      `skip:${counts.skip} error:${counts.error}`,
  );
  return out;
}
