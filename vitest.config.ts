import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'integration/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration files start real daemons, PHP and tools, and some kill nodes on purpose: on two
    // cores, files running side by side would starve each other's heartbeats. One file at a time.
    fileParallelism: false,
  },
});
