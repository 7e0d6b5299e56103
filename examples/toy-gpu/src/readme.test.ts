import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));

it('the README usage snippet runs', async () => {
  const readme = readFileSync(join(here, '..', 'README.md'), 'utf8');
  const snippet = /^```ts\n([\s\S]*?)^```/m.exec(readme)?.[1];
  expect(snippet).toBeTruthy();
  // Run it as a module of this package (its own name resolves to src/index.ts here).
  const dir = join(here, '..', 'node_modules', '.readme');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'snippet.ts');
  writeFileSync(
    file,
    (snippet as string).replace("from '@hmm-model/toy-gpu'", `from '${join(here, 'index.js')}'`),
  );
  try {
    await import(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
