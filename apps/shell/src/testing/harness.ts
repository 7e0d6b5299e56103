/** Test helpers: a fresh machine + session, and script-mode runs captured as text. */
import { type Executed, execute } from '../commands/index.js';
import { createMachine, type MachineOptions } from '../machine.js';
import { runScript, type ScriptOptions } from '../script.js';
import { Session } from '../session.js';

/** A fresh session on a small machine (256 MiB keeps tests fast; same model otherwise). */
export function newSession(opts: MachineOptions = {}): Session {
  const { kernel, init } = createMachine({ ramBytes: 256 * 2 ** 20, ...opts });
  return new Session(kernel, init);
}

/** Runs lines in script mode and returns the transcript and exit status. */
export async function script(
  text: string,
  opts: ScriptOptions & { session?: Session } = {},
): Promise<{ out: string; code: number; session: Session }> {
  const session = opts.session ?? newSession();
  let out = '';
  const code = await runScript(session, text.split('\n'), (t) => (out += t), opts);
  return { out, code, session };
}

/** Runs lines one by one on a session; returns the last one's result (throws if any earlier failed). */
export function run(s: Session, ...lines: string[]): Executed {
  let e: Executed | undefined;
  for (const [i, l] of lines.entries()) {
    e = execute(s, l);
    if (i < lines.length - 1 && !e.result.ok)
      throw new Error(`setup line failed: ${l}\n${e.result.lines.join('\n')}`);
  }
  if (!e) throw new Error('no lines');
  return e;
}

/** The text output of an executed command. */
export function text(e: Executed): string {
  return e.result.lines.join('\n');
}
