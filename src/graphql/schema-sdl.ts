/**
 * The SDL of schema/*.graphql for the running server. Read from disk rather than bundled so the schema
 * files stay the single source for codegen, GraphiQL's docs and runtime alike.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Levels to climb from this module: src/graphql/ (tsx), dist/graphql/ (build), dist/src/graphql/ (tsc -p tsconfig.json). */
const MAX_LEVELS_UP = 4;

/** The schema/ directory: the nearest one above this module that holds schema.graphql. */
export function schemaDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < MAX_LEVELS_UP; level += 1) {
    dir = dirname(dir);
    const candidate = join(dir, 'schema');
    if (existsSync(join(candidate, 'schema.graphql'))) return candidate;
  }
  throw new Error(`schema/schema.graphql not found within ${MAX_LEVELS_UP} directories above ${fileURLToPath(import.meta.url)}`);
}

/** Every schema/*.graphql file in name order, joined into one SDL document. */
export function loadTypeDefs(): string {
  const dir = schemaDir();
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.graphql'))
    .sort();
  return files.map((name) => `# ${name}\n${readFileSync(join(dir, name), 'utf8')}`).join('\n');
}
