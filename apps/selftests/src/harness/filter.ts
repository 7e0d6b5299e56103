/** Test selection: the port of test_enabled() from kselftest_harness.h. */

/** Models one filter option (`-t/-T/-v/-V/-f/-F/-r name`) in command-line order. */
export interface Filter {
  readonly opt: 't' | 'T' | 'v' | 'V' | 'f' | 'F' | 'r';
  readonly name: string;
}

/** Models the option characters that test_enabled() examines (kselftest_harness.h). */
export function isFilterOpt(c: string): c is Filter['opt'] {
  return c.length === 1 && 'tTvVfFr'.includes(c);
}

function bytes(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/**
 * Models the `-r` comparison of test_enabled() (kselftest_harness.h): the length must be
 * flen + 1 + vlen + (vlen ? 1 : 0) + tlen and the three names must match at their offsets; the
 * separator characters themselves are not checked.
 */
export function matchesRunName(arg: string, fixture: string, variant: string, test: string): boolean {
  const a = bytes(arg);
  const f = bytes(fixture);
  const v = bytes(variant);
  const t = bytes(test);
  const vsep = v.length ? 1 : 0;
  if (a.length !== f.length + 1 + v.length + vsep + t.length) return false;
  const at = (off: number, part: Buffer): boolean => a.subarray(off, off + part.length).equals(part);
  return at(0, f) && at(f.length + 1, v) && at(f.length + 1 + v.length + vsep, t);
}

/**
 * Models test_enabled() (kselftest_harness.h): the first filter that matches decides (lowercase
 * and `-r` include, uppercase exclude); if none matches, the test runs only when no positive
 * (lowercase or `-r`) filter was given.
 */
export function testEnabled(
  filters: readonly Filter[],
  fixture: string,
  variant: string,
  test: string,
): boolean {
  let hasPositive = false;
  for (const { opt, name } of filters) {
    const include = opt === opt.toLowerCase();
    hasPositive ||= include;
    switch (opt.toLowerCase()) {
      case 't':
        if (name === test) return include;
        break;
      case 'f':
        if (name === fixture) return include;
        break;
      case 'v':
        if (name === variant) return include;
        break;
      case 'r':
        if (matchesRunName(name, fixture, variant, test)) return true;
        break;
    }
  }
  return !hasPositive;
}
