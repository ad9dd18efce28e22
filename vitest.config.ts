import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql 16 ships CJS (main) and ESM (module) builds. Node — and so Apollo, graphql-tools and graphql-ws,
    // which vitest leaves to Node — loads the CJS one, while vite would give our sources the ESM one: two
    // copies, and `instanceof GraphQLError` fails across them. One copy, as in production.
    alias: [{ find: /^graphql$/, replacement: fileURLToPath(new URL('./node_modules/graphql/index.js', import.meta.url)) }],
  },
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
