/**
 * The `--junit FILE` extension: a JUnit XML report of one harness run, for CI systems that read
 * it. Nothing here changes what the harness prints; the report is built from the same lines.
 */

import { KSFT_PASS, KSFT_SKIP, KSFT_XFAIL, KSFT_XPASS } from './constants.js';
import type { CapturedLine } from './output.js';

/**
 * Models one test's result line of __run_test() (kselftest_harness.h) as a JUnit test case: its
 * names, final exit code, SKIP() reason, run time and every line it printed (RUN line excluded).
 */
export interface TestReport {
  readonly fixture: string;
  /** The variant name ("" for a fixture without variants). */
  readonly variant: string;
  readonly test: string;
  /** The `fixture.variant.test` name the TAP lines use. */
  readonly fullName: string;
  /** The final exit code (after the XFAIL_ADD adjustment): KSFT_PASS, KSFT_FAIL, KSFT_SKIP, ... */
  readonly exitCode: number;
  /** The SKIP() reason ("" if none). */
  readonly reason: string;
  /** Wall time of setup + body + teardown, in seconds. */
  readonly seconds: number;
  /** Everything the test and the harness printed for it, between the RUN line and the result line. */
  readonly output: readonly CapturedLine[];
}

/** Escapes text for an XML attribute or text node; drops characters XML 1.0 cannot carry. */
export function xmlEscape(text: string): string {
  return text
    .replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** `# file:line:test:message` (TH_LOG / ASSERT / EXPECT) without the leading `# `. */
const LOG_LINE = /^# ([^\s:]+:\d+:[^:]+:.*)$/;

/**
 * Models the failure text a CI reader wants from a failed kselftest case: the first assertion
 * (or TH_LOG) line the test printed, `hmm-tests.c:2663:migrate_anon_huge_err:Expected ret (-12)
 * == 0 (0)`, else the harness's own diagnostic (`migrate_anon_huge_err: Test terminated by
 * timeout`), else "failed".
 */
export function failureMessage(report: TestReport): string {
  for (const l of report.output) {
    const m = LOG_LINE.exec(l.text);
    if (m) return m[1];
  }
  const diag = report.output.find((l) => l.stream === 'stderr' && l.text.startsWith(`# ${report.test}: `));
  return diag ? diag.text.slice(2) : 'failed';
}

function failureType(report: TestReport): string {
  if (report.output.some((l) => l.text === `# ${report.test}: Test terminated by timeout`)) return 'timeout';
  if (
    report.output.some((l) => l.text.startsWith(`# ${report.test}: Test terminated by unhandled exception`))
  )
    return 'exception';
  return 'assertion';
}

function seconds(s: number): string {
  return (Math.round(s * 1000) / 1000).toFixed(3);
}

function outputBlock(tag: 'system-out' | 'system-err', lines: readonly CapturedLine[]): string {
  const text = lines.map((l) => l.text).join('\n');
  return text ? `      <${tag}>${xmlEscape(text)}</${tag}>\n` : '';
}

function testCase(r: TestReport): string {
  const classname = r.variant ? `${r.fixture}.${r.variant}` : r.fixture;
  const head = `    <testcase classname="${xmlEscape(classname)}" name="${xmlEscape(r.test)}" time="${seconds(r.seconds)}"`;
  const body: string[] = [];
  if (r.exitCode === KSFT_SKIP) body.push(`      <skipped message="${xmlEscape(r.reason || 'unknown')}"/>\n`);
  else if (r.exitCode === KSFT_XFAIL)
    body.push(`      <skipped message="${xmlEscape(`XFAIL ${r.reason || 'unknown'}`)}"/>\n`);
  else if (r.exitCode !== KSFT_PASS && r.exitCode !== KSFT_XPASS) {
    const msg = failureMessage(r);
    const all = r.output.map((l) => l.text).join('\n');
    body.push(
      `      <failure message="${xmlEscape(msg)}" type="${failureType(r)}">${xmlEscape(all)}</failure>\n`,
    );
  }
  body.push(
    outputBlock(
      'system-out',
      r.output.filter((l) => l.stream === 'stdout'),
    ),
  );
  body.push(
    outputBlock(
      'system-err',
      r.output.filter((l) => l.stream === 'stderr'),
    ),
  );
  const inner = body.join('');
  return inner ? `${head}>\n${inner}    </testcase>\n` : `${head}/>\n`;
}

interface Tally {
  tests: number;
  failures: number;
  skipped: number;
  time: number;
}

function tally(reports: readonly TestReport[]): Tally {
  const t: Tally = { tests: 0, failures: 0, skipped: 0, time: 0 };
  for (const r of reports) {
    t.tests++;
    t.time += r.seconds;
    if (r.exitCode === KSFT_SKIP || r.exitCode === KSFT_XFAIL) t.skipped++;
    else if (r.exitCode !== KSFT_PASS && r.exitCode !== KSFT_XPASS) t.failures++;
  }
  return t;
}

function counts(t: Tally): string {
  return `tests="${t.tests}" failures="${t.failures}" errors="0" skipped="${t.skipped}" time="${seconds(t.time)}"`;
}

/**
 * Models a kselftest run (the TAP stream of test_harness_run(), kselftest_harness.h) as JUnit
 * XML: one `<testsuite>` per fixture/variant pair in run order, one `<testcase>` per case
 * (classname `fixture.variant`, name the test), `<failure message="<assertion line>">` with the
 * case's whole output for a FAIL, `<skipped message="<reason>">` for a SKIP (XFAIL counts as
 * skipped, XPASS as passed), and the case's stdout / stderr lines.
 */
export function junitXml(suiteName: string, reports: readonly TestReport[]): string {
  const groups = new Map<string, TestReport[]>();
  for (const r of reports) {
    const key = r.variant ? `${r.fixture}.${r.variant}` : r.fixture;
    let g = groups.get(key);
    if (!g) {
      g = [];
      groups.set(key, g);
    }
    g.push(r);
  }
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>\n',
    `<testsuites name="${xmlEscape(suiteName)}" ${counts(tally(reports))}>\n`,
  ];
  for (const [name, rs] of groups) {
    out.push(`  <testsuite name="${xmlEscape(name)}" ${counts(tally(rs))}>\n`);
    for (const r of rs) out.push(testCase(r));
    out.push('  </testsuite>\n');
  }
  out.push('</testsuites>\n');
  return out.join('');
}
