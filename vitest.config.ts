import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: real servers per file, so keep files from starving each other.
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
  },
});
