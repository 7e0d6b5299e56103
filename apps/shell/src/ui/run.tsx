import { render } from 'ink';
import type { History } from '../history.js';
import { App, type Booted } from './App.js';

/** Options for {@link runInteractive}. */
export interface InteractiveOptions {
  /** Builds the machine; run right after the first frame so the prompt shows at once. */
  readonly boot: () => Booted;
  readonly history: History;
  readonly color: boolean;
  /** Called once, after the first frame is on the terminal. */
  readonly onFirstFrame?: () => void;
}

/**
 * Starts the Ink UI on the process's terminal (Ctrl-C is handled by the prompt, not Ink) and
 * resolves when the user quits.
 */
export async function runInteractive(opts: InteractiveOptions): Promise<void> {
  let first = opts.onFirstFrame;
  const instance = render(<App boot={opts.boot} history={opts.history} color={opts.color} />, {
    exitOnCtrlC: false,
    patchConsole: false,
    onRender: () => {
      first?.();
      first = undefined;
    },
  });
  await instance.waitUntilExit();
}
