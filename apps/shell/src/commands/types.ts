import type { CommandResult } from '../result.js';
import type { Session } from '../session.js';

/** The help groups commands are listed under. */
export type CommandGroup = 'memory' | 'data' | 'device' | 'gpu' | 'process' | 'inspect' | 'shell';

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
}
