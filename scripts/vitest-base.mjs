/**
 * The vitest configuration every package shares (its vitest.config.ts calls testConfig()).
 *
 * Workspace dependencies are loaded from their built `dist/` by Node itself (turbo builds them
 * before any `test` task: `dependsOn: ["^build"]`). Loaded through vite's module runner instead,
 * every cross-module call of the model goes through a rewritten import binding that V8 cannot
 * inline: the selftests' coherent benchmark took 25 s that way against 8.7 s natively, and under
 * CI load it ran into its 120 s TEST_F_TIMEOUT. The package under test still runs from `src/`.
 *
 * `HMM_TEST_SOURCE=1` resolves the workspace dependencies to their TypeScript sources instead (no
 * build needed after editing one, about three times slower).
 */
import { defineConfig } from 'vitest/config';

/** True when workspace dependencies should resolve to `src/` (the `@hmm-model/source` condition). */
const fromSource = process.env.HMM_TEST_SOURCE === '1';

/** A built file of a workspace package (packages/NAME/dist or apps/NAME/dist). */
const WORKSPACE_DIST = /\/(?:packages|apps)\/[^/]+\/dist\//;

/** @returns {import('vitest/config').UserConfig} */
export function testConfig() {
  const conditions = fromSource ? ['@hmm-model/source'] : [];
  return defineConfig({
    resolve: { conditions },
    ssr: { resolve: { conditions } },
    test: {
      include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
      testTimeout: 60_000,
      server: { deps: { external: fromSource ? [] : [WORKSPACE_DIST] } },
    },
  });
}
