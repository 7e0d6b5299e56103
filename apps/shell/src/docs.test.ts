/**
 * Every document the project ships (the READMEs, docs/, changesets and changelogs, the example
 * scripts) and the shell's help text link only to files inside the repository: a user who clones
 * it has every file a document names.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from './commands/index.js';
import type { CommandSpec } from './commands/types.js';
import { newSession, run, text } from './testing/harness.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Directories that hold no shipped document (dependencies, build output, caches, VCS). */
const SKIP = new Set(['node_modules', 'dist', '.turbo', '.git', 'coverage', 'bench-results']);

/** Every file of the repository outside SKIP, as paths relative to its root. */
function repoFiles(dir = repo): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...repoFiles(p));
    else out.push(relative(repo, p));
  }
  return out;
}

/**
 * Names of files that live outside the repository (the model's private reference notes, the
 * machine it was written on): no shipped text may point at them.
 */
const OUTSIDE =
  /\.\.\/shared\b|\bshared\/reference\b|\/work\/|\bkernel-mechanics\b|\bseries-bugs\b|\bDESIGN\.md\b/;

/** What in `text` points outside the repository; `from` is the document's path (for relative links). */
function outsideLinks(text: string, from: string, names: ReadonlySet<string>): string[] {
  const bad: string[] = [];
  const m = OUTSIDE.exec(text);
  if (m) bad.push(`names "${m[0]}"`);
  // Markdown links: a relative target must resolve to an existing file inside the repository.
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^(https?:|mailto:|#)/.test(target)) continue;
    const p = resolve(repo, dirname(from), target.split('#')[0]);
    if (relative(repo, p).startsWith('..') || !existsSync(p)) bad.push(`links to ${target}`);
  }
  // Any Markdown file it names must be one of the repository's. Found from each `.md` backwards:
  // /[\w./-]*\.md\b/ is quadratic in a long run of such characters (a reproducer's trace line).
  for (const m of text.matchAll(/\.md\b/g)) {
    let s = m.index;
    while (s > 0 && /[\w./-]/.test(text[s - 1])) s--;
    const name = text.slice(s, m.index + 3);
    if (!names.has(basename(name))) bad.push(`names ${name}, which the repository does not have`);
  }
  return bad;
}

/** Every text of a command's help: usage, summary, details, examples, and its subcommands'. */
function helpTexts(spec: CommandSpec): string[] {
  return [
    spec.usage,
    spec.summary,
    ...(spec.details ?? []),
    ...(spec.examples ?? []),
    ...Object.values(spec.subcommands ?? {}).flatMap(helpTexts),
  ];
}

describe('shipped documents link only inside the repository', () => {
  const files = repoFiles();
  const names = new Set(files.map((f) => basename(f)));

  it('the Markdown documents and example scripts', () => {
    const docs = files.filter((f) => /\.(md|hmm)$/.test(f));
    // The root README, a package README, docs/ and the shell's examples are among them.
    expect(docs).toEqual(
      expect.arrayContaining([
        'README.md',
        join('packages', 'mm-core', 'README.md'),
        join('docs', 'writing-a-driver.md'),
        join('apps', 'shell', 'examples', 'thp-basics.hmm'),
      ]),
    );
    const bad = docs.flatMap((f) =>
      outsideLinks(readFileSync(join(repo, f), 'utf8'), f, names).map((b) => `${f}: ${b}`),
    );
    expect(bad).toEqual([]);
  });

  it("the shell's help: the command table, `help <command>` and --help", () => {
    const s = newSession();
    // --help of the built binary (the shell's `test` script builds it first, as for e2e.test.ts).
    const usage = spawnSync(process.execPath, [join(repo, 'apps', 'shell', 'dist', 'cli.js'), '--help'], {
      encoding: 'utf8',
    });
    expect(usage.stdout).toMatch(/^usage: hmm-shell/);
    const texts = [
      usage.stdout,
      text(run(s, 'help')),
      ...COMMANDS.flatMap((c) => [...helpTexts(c), text(run(s, `help ${c.name}`))]),
    ];
    const bad = texts.flatMap((t) => outsideLinks(t, join('apps', 'shell', 'README.md'), names));
    expect(bad).toEqual([]);
  });

  it('the root README keeps its quick start and says how to run every `pnpm X` with only npm', () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    expect(readme).toContain('npx -y pnpm@10 install && npx -y pnpm@10 shell\n');
    expect(readme).toContain('npx -y pnpm@10 install && npx -y pnpm@10 test\n');
    expect(readme).toMatch(
      /Every `pnpm X` command in this README runs the same way with only npm: write it as\s+`npx -y pnpm@10 X`/,
    );
    // Every `pnpm X` it mentions runs from the root: a root script, the shell package's
    // `shell` bin (pnpm runs an unknown command's bin), or pnpm's own install.
    const root = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const shellBins = Object.keys(
      (JSON.parse(readFileSync(join(repo, 'apps', 'shell', 'package.json'), 'utf8')) as { bin: object }).bin,
    );
    const runnable = new Set([...Object.keys(root.scripts), ...shellBins, 'install']);
    const mentioned = new Set(
      [...readme.matchAll(/\bpnpm(?:@10)? (?:run )?([a-z][\w:-]*)/g)].map((m) => m[1]),
    );
    expect([...mentioned].filter((c) => !runnable.has(c))).toEqual([]);
    // A script named like one of pnpm's npm pass-through commands only runs as `pnpm run X`.
    expect(readme).not.toMatch(/\bpnpm(?:@10)? (?:bugs|docs|repo|view|info|search)\b/);
    expect(mentioned).toContain('shell');
  });

  it('the check itself catches what it is for', () => {
    const from = 'README.md';
    expect(outsideLinks('see ../shared/reference/kernel-mechanics.md §2.6', from, names)).toHaveLength(2);
    expect(outsideLinks('see kernel-mechanics 2.6', from, names)).toEqual(['names "kernel-mechanics"']);
    expect(outsideLinks('[design](../DESIGN.md)', from, names).length).toBeGreaterThan(0);
    expect(outsideLinks('[guide](docs/writing-a-driver.md)', from, names)).toEqual([]);
    expect(outsideLinks('[gone](docs/nothing-here.md)', from, names)).toEqual([
      'links to docs/nothing-here.md',
      'names docs/nothing-here.md, which the repository does not have',
    ]);
    expect(outsideLinks('[kernel](https://docs.kernel.org/mm/hmm.html)', from, names)).toEqual([]);
  });
});
