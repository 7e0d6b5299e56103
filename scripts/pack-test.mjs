#!/usr/bin/env node
/**
 * Proof that every package can be depended on alone: `pnpm pack` each package of packages/*,
 * then, for each one, create an empty npm project in a temporary directory outside the
 * workspace, `npm install` the package's tarball together with the tarballs of the
 * @hmm-model packages it depends on (what a registry would serve; nothing else), and run the
 * usage snippet of its README (the first ```ts block) there: type-checked with the workspace's
 * TypeScript against the installed .d.ts files, compiled, and run with node.
 *
 * Needs the packages built (`turbo run build --filter=./packages/*`). Works offline: npm is run
 * with --offline, since every dependency is a local tarball.
 *
 * Usage: node scripts/pack-test.mjs [--keep] [package-dir-name ...]
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';

$.verbose = false;
const root = resolve(fileURLToPath(import.meta.url), '..', '..');
const args = process.argv.slice(2);
const keep = args.includes('--keep');
const only = args.filter((a) => !a.startsWith('--'));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

/** Every workspace package under packages/: its directory, manifest and @hmm-model dependencies. */
function workspacePackages() {
  const dir = join(root, 'packages');
  return readdirSync(dir)
    .filter((d) => existsSync(join(dir, d, 'package.json')))
    .map((d) => {
      const manifest = JSON.parse(readFileSync(join(dir, d, 'package.json'), 'utf8'));
      const deps = Object.keys(manifest.dependencies ?? {}).filter((n) => n.startsWith('@hmm-model/'));
      return { dir: join(dir, d), short: d, name: manifest.name, deps, private: manifest.private === true };
    })
    .filter((p) => !p.private);
}

/** The first ```ts block of a README: the package's usage snippet. */
export function usageSnippet(readme) {
  const m = /^```ts\n([\s\S]*?)^```/m.exec(readme);
  return m ? m[1] : null;
}

/** The package and every @hmm-model package it depends on, transitively. */
function closure(pkg, byName) {
  const out = new Set();
  const visit = (name) => {
    if (out.has(name)) return;
    out.add(name);
    const p = byName.get(name);
    if (!p) throw new Error(`${pkg.name} depends on ${name}, which is not a package of this workspace`);
    for (const d of p.deps) visit(d);
  };
  visit(pkg.name);
  return [...out];
}

const work = mkdtempSync(join(tmpdir(), 'hmm-pack-test-'));
const tarballs = join(work, 'tarballs');
mkdirSync(tarballs);
const pkgs = workspacePackages();
const byName = new Map(pkgs.map((p) => [p.name, p]));
const tarballOf = new Map();
let failed = 0;
try {
  for (const p of pkgs) {
    if (!existsSync(join(p.dir, 'dist', 'index.js')))
      throw new Error(`${p.name} is not built (run: pnpm turbo run build --filter=./packages/*)`);
    const before = new Set(readdirSync(tarballs));
    await $({ cwd: p.dir })`pnpm pack --pack-destination ${tarballs}`;
    const made = readdirSync(tarballs).filter((f) => !before.has(f));
    if (made.length !== 1) throw new Error(`pnpm pack of ${p.name} made ${made.length} tarballs`);
    tarballOf.set(p.name, join(tarballs, made[0]));
  }
  for (const p of pkgs) {
    if (only.length && !only.includes(p.short)) continue;
    const label = `${p.name}`;
    const snippet = usageSnippet(readFileSync(join(p.dir, 'README.md'), 'utf8'));
    if (!snippet) {
      console.error(`FAIL ${label}: its README has no \`\`\`ts usage snippet`);
      failed++;
      continue;
    }
    const proj = join(work, p.short);
    mkdirSync(proj);
    writeFileSync(
      join(proj, 'package.json'),
      `${JSON.stringify({ name: `use-${p.short}`, private: true, type: 'module' }, null, 2)}\n`,
    );
    writeFileSync(join(proj, 'usage.ts'), snippet);
    writeFileSync(
      join(proj, 'tsconfig.json'),
      `${JSON.stringify(
        {
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            outDir: 'out',
            types: ['node'],
            typeRoots: [join(root, 'node_modules', '@types')],
          },
          files: ['usage.ts'],
        },
        null,
        2,
      )}\n`,
    );
    const deps = closure(p, byName).map((n) => tarballOf.get(n));
    try {
      await $({ cwd: proj })`npm install --offline --no-audit --no-fund --loglevel=error ${deps}`;
      const installed = readdirSync(join(proj, 'node_modules', '@hmm-model')).sort();
      const expected = closure(p, byName)
        .map((n) => n.slice('@hmm-model/'.length))
        .sort();
      if (installed.join() !== expected.join())
        throw new Error(`installed ${installed.join(', ')}; expected exactly ${expected.join(', ')}`);
      await $({ cwd: proj })`node ${tsc} -p tsconfig.json`;
      const run = await $({ cwd: proj })`node out/usage.js`;
      console.log(
        `ok   ${label}: installed alone (${deps.length} tarball(s)), README snippet type-checks and runs`,
      );
      if (run.stdout.trim()) for (const l of run.stdout.trim().split('\n')) console.log(`       ${l}`);
    } catch (e) {
      failed++;
      const out = [e.stdout, e.stderr, e.message].filter(Boolean).join('\n').trim();
      console.error(`FAIL ${label} (in ${proj}):\n${out.replace(/^/gm, '       ')}`);
    }
  }
} finally {
  if (keep || failed) console.error(`(work directory kept: ${work})`);
  else rmSync(work, { recursive: true, force: true });
}
if (failed) {
  console.error(`pack-test: ${failed} package(s) failed`);
  process.exit(1);
}
console.log('pack-test: every package installs alone from its tarball and its README snippet runs');
