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
