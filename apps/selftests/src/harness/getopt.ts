/**
 * Command-line scanning with glibc getopt(3) semantics (GNU argument permutation, clustered
 * short options, `-targ` and `-t arg` forms, `--` terminator, glibc error messages), plus the
 * long-option extensions `--seed N`, `--json FILE` and `--junit FILE` (also `--seed=N`, ...).
 */

/** Models one result of getopt(3): an option character with its optarg. */
export interface OptEvent {
  readonly kind: 'opt';
  readonly opt: string;
  readonly arg?: string;
}

/** Models a getopt_long(3)-style option: the `--seed` / `--json` / `--junit` extensions (not in kselftest_harness.h). */
export interface LongEvent {
  readonly kind: 'long';
  readonly name: LongName;
  readonly arg: string;
}

/** Models getopt(3) returning '?' after printing its diagnostic to stderr. */
export interface ErrorEvent {
  readonly kind: 'error';
  readonly message: string;
}

/** Models the values getopt(3) returns, in order. */
export type ArgEvent = OptEvent | LongEvent | ErrorEvent;

/** Models a getopt_long(3) option table: the extensions accepted beside the kselftest_harness.h optstring. */
export const LONG_OPTIONS = ['seed', 'json', 'junit'] as const;
/** Models the `name` of a getopt_long(3) option entry, for the extensions. */
export type LongName = (typeof LONG_OPTIONS)[number];

function isLongName(s: string): s is LongName {
  return (LONG_OPTIONS as readonly string[]).includes(s);
}

/**
 * Models repeated getopt(argc, argv, optstring) calls (glibc): returns every option in scan order.
 * Non-option arguments are skipped (GNU permutation) unless `posixlyCorrect`, in which case
 * scanning stops at the first one, as glibc does when POSIXLY_CORRECT is set. `--` ends scanning.
 * An error event carries glibc's exact message (`<argv0>: invalid option -- 'x'`).
 */
export function getopt(argv: readonly string[], optstring: string, posixlyCorrect = false): ArgEvent[] {
  const argv0 = argv[0] ?? '';
  const events: ArgEvent[] = [];
  let i = 1;
  while (i < argv.length) {
    const a = argv[i];
    if (a === '--') break;
    if (a.length < 2 || a[0] !== '-') {
      if (posixlyCorrect) break;
      i++;
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (isLongName(name)) {
        if (eq >= 0) {
          events.push({ kind: 'long', name, arg: a.slice(eq + 1) });
        } else if (i + 1 < argv.length) {
          events.push({ kind: 'long', name, arg: argv[++i] });
        } else {
          events.push({ kind: 'error', message: `${argv0}: option '--${name}' requires an argument` });
        }
        i++;
        continue;
      }
      // Otherwise plain getopt(3) sees the option character '-', which is invalid.
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j];
      const at = c === ':' ? -1 : optstring.indexOf(c);
      if (at < 0) {
        events.push({ kind: 'error', message: `${argv0}: invalid option -- '${c}'` });
        continue;
      }
      if (optstring[at + 1] !== ':') {
        events.push({ kind: 'opt', opt: c });
        continue;
      }
      if (j + 1 < a.length) {
        events.push({ kind: 'opt', opt: c, arg: a.slice(j + 1) });
      } else if (i + 1 < argv.length) {
        events.push({ kind: 'opt', opt: c, arg: argv[++i] });
      } else {
        events.push({ kind: 'error', message: `${argv0}: option requires an argument -- '${c}'` });
      }
      break;
    }
    i++;
  }
  return events;
}
