import type { CommandResult } from '../result.js';
import type { Session } from '../session.js';

/** Progress of a long command between two of its steps, for the UI's progress line. */
export interface Progress {
  /** How much is done (bytes or pages), and of how much. */
  readonly done: number;
  readonly total: number;
  /** What is counted: 'bytes' or 'pages'. */
  readonly unit: 'bytes' | 'pages';
}

/**
 * A long command's work as bounded steps (a user access of at most a few MiB, one ioctl over a
 * bounded range): it yields its progress between steps, where the interactive shell may render
 * it and deliver a Ctrl-C, and returns the command's result.
 */
export type CommandSteps = Generator<Progress, CommandResult, void>;

/** The help groups commands are listed under. */
export type CommandGroup = 'memory' | 'data' | 'device' | 'gpu' | 'process' | 'inspect' | 'explore' | 'shell';

/**
 * One shell command: its syntax and help, whether it changes machine state (the vmstat
 * change is recorded only for those), its argument completions, and the pure function that parses
 * the words and runs against the session.
 */
export interface CommandSpec {
  readonly name: string;
  readonly aliases?: readonly string[];
  readonly group: CommandGroup;
  /** Syntax, e.g. `munmap <addr> <len>`. */
  readonly usage: string;
  /** One line for `help`. */
  readonly summary: string;
  /** More lines for `help <command>`. */
  readonly details?: readonly string[];
  readonly examples?: readonly string[];
  /** True when the command can change machine state (its vmstat change is recorded). */
  readonly mutates: boolean;
  /**
   * How many words the command takes after its name: a number, or a function of the words when
   * the count depends on them (`folio pfn <pfn>`, a pattern's values); Infinity when the
   * command's own parser checks every word. The dispatcher refuses more words than this, before
   * the command runs (see `unexpectedWords` in commands/args.ts).
   */
  readonly maxArgs: number | ((args: readonly string[]) => number);
  /** The command also takes `-d N` / `--dev N` / `dev=N` anywhere; those words are not counted in maxArgs. */
  readonly deviceOption?: boolean;
  /** For `dmirror <op>` / `gpu <op>`: the command the first word names, whose maxArgs applies to the rest. */
  readonly subcommands?: Readonly<Record<string, CommandSpec>>;
  /**
   * The command may be given a `$` whose mapping is gone, because an unmapped range is its point
   * (`mmap ... at $`). The shell's own commands (set, echo, ...) and `explore` never act on the
   * session's memory and take any `$` too; every other command refuses a stale `$` (see
   * `staleDollar` in commands/args.ts).
   */
  readonly staleDollarOk?: boolean;
  /** Candidate words for the argument being typed (index counts from 0 after the command). */
  words?(argIndex: number, args: readonly string[], session: Session): readonly string[];
  /** Parses the words and runs the command; may throw UsageError. */
  run(session: Session, args: readonly string[]): CommandResult;
  /**
   * For long commands: the same work as bounded steps (see {@link CommandSteps}). `run` drives
   * them to the end in one go; the interactive shell drives them between key presses.
   */
  steps?(session: Session, args: readonly string[]): CommandSteps;
}
