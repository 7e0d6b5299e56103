// Bundles the hmm-shell binary (dist/cli.js and its lazily loaded UI chunk) with esbuild.
// Why: loading Ink from node_modules costs most of a second at startup (its es-toolkit/compat
// import alone pulls in ~700 modules for one throttle function); one tree-shaken bundle
// starts in a fraction of that. tsc still emits dist/ for type declarations and type checking.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunk names carry content hashes: drop the previous build's chunks first.
for (const f of existsSync('dist') ? readdirSync('dist', { withFileTypes: true }) : [])
  if (f.isFile() && /^(chunk|run|devtools)-[A-Z0-9]+\.js(\.map)?$/.test(f.name)) rmSync(`dist/${f.name}`);

await build({
  entryPoints: ['src/cli.ts'],
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  jsx: 'automatic',
  sourcemap: true,
  minify: true,
  // Ink loads react-devtools-core only when DEV=true; it is not installed.
  external: ['react-devtools-core'],
  define: { 'process.env.NODE_ENV': '"production"' },
  // CommonJS dependencies (react) may call require() for Node built-ins.
  banner: {
    js: "import { createRequire as __hmmCreateRequire } from 'node:module'; const require = __hmmCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
