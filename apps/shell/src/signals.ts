/**
 * Signal names by number, as Linux x86-64 numbers them (arch/x86/include/uapi/asm/signal.h):
 * the one table every shell message that names a signal uses (delivered signals, `kill`, exit
 * statuses in `ps` and `wait`, Ctrl-C).
 */
export const SIGNAL_NAMES: Readonly<Record<number, string>> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  3: 'SIGQUIT',
  4: 'SIGILL',
  5: 'SIGTRAP',
  6: 'SIGABRT',
  7: 'SIGBUS',
  8: 'SIGFPE',
  9: 'SIGKILL',
  10: 'SIGUSR1',
  11: 'SIGSEGV',
  12: 'SIGUSR2',
  13: 'SIGPIPE',
  14: 'SIGALRM',
  15: 'SIGTERM',
  16: 'SIGSTKFLT',
  17: 'SIGCHLD',
  18: 'SIGCONT',
  19: 'SIGSTOP',
  20: 'SIGTSTP',
  21: 'SIGTTIN',
  22: 'SIGTTOU',
  23: 'SIGURG',
  24: 'SIGXCPU',
  25: 'SIGXFSZ',
  26: 'SIGVTALRM',
  27: 'SIGPROF',
  28: 'SIGWINCH',
  29: 'SIGIO',
  30: 'SIGPWR',
  31: 'SIGSYS',
};

/** Models sigabbrev_np() with the SIG prefix: SIGKILL for 9, `SIG<n>` for a number without a name. */
export function signalName(signo: number): string {
  return SIGNAL_NAMES[signo] ?? `SIG${signo}`;
}

const BY_NAME: ReadonlyMap<string, number> = new Map(
  Object.entries(SIGNAL_NAMES).map(([n, name]) => [name.slice(3), Number(n)]),
);

const ALIASES: Readonly<Record<string, number>> = { IOT: 6, POLL: 29, CLD: 17 };

/**
 * The number of a signal name as kill(1) takes it, with or without `SIG`, any case (KILL,
 * SIGTERM, segv; SIGIOT, SIGPOLL and SIGCLD as the aliases Linux keeps), or undefined.
 */
export function signalNumber(name: string): number | undefined {
  const bare = name.toUpperCase().replace(/^SIG/, '');
  return BY_NAME.get(bare) ?? ALIASES[bare];
}
