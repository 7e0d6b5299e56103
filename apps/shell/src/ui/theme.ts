import type { CellKind } from '../inspect/classify.js';

/** The terminal colour of each map cell kind (chalk colour names, as Ink's Text takes them). */
export const CELL_COLORS: Readonly<Record<CellKind, string>> = {
  unmapped: 'gray',
  empty: 'gray',
  sys: 'green',
  thp: 'greenBright',
  zero: 'white',
  hugezero: 'whiteBright',
  dev: 'magenta',
  devthp: 'magentaBright',
  vram: 'blue',
  vramthp: 'blueBright',
  coherent: 'cyan',
  coherentthp: 'cyanBright',
  migration: 'yellow',
  exclusive: 'red',
  other: 'red',
};

/** Whether to use colour: off when NO_COLOR is set (non-empty) or output is not a TTY. */
export function colorEnabled(env: NodeJS.ProcessEnv, isTTY: boolean): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return isTTY;
}
