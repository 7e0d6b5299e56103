import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['@hmm-model/source'] },
  ssr: { resolve: { conditions: ['@hmm-model/source'] } },
  test: { include: ['src/**/*.test.ts', 'src/**/*.test.tsx'], testTimeout: 60_000 },
});
