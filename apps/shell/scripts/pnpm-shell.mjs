#!/usr/bin/env node
// `pnpm shell [options]` from the repository root: builds the shell and what it depends on
// (turbo; its output goes to stderr, its stdin is not touched) and runs hmm-shell with the
// options. It is the @hmm-model/shell package's `shell` bin, linked into the root's
// node_modules/.bin, and not a package.json script: pnpm runs an unknown command's bin without
// printing its "> hmm-model@ shell" banner on stdout, so `pnpm shell --json` writes only JSON
// there, and the exit status is hmm-shell's.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const app = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = join(app, '..', '..');
const turbo = join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'turbo.cmd' : 'turbo');
// HMM_SHELL_NO_BUILD=1 skips the build (the shell's own tests, which run after it).
const build = process.env.HMM_SHELL_NO_BUILD === '1' ? { status: 0 } : runBuild();
if (build.status !== 0) {
  console.error(
    `pnpm shell: the build failed (${build.error?.message ?? `exit status ${build.status ?? build.signal}`})`,
  );
  process.exit(build.status || 1);
}
// hmm-shell reads its options from process.argv.slice(2): the ones given to `pnpm shell`.
await import(pathToFileURL(join(app, 'dist', 'cli.js')).href);

/** turbo run build for the shell and its dependencies: stdout to stderr, stdin untouched. */
function runBuild() {
  if (!existsSync(turbo)) {
    console.error(`pnpm shell: ${turbo} is missing: run \`npx -y pnpm@10 install\` first`);
    process.exit(1);
  }
  return spawnSync(turbo, ['run', 'build', '--filter=@hmm-model/shell...', '--output-logs=errors-only'], {
    cwd: root,
    stdio: ['ignore', 2, 2],
    shell: process.platform === 'win32',
  });
}
