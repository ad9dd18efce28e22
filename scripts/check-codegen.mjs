#!/usr/bin/env node
// `npm run codegen:check`: fails when src/generated/ is not what `npm run codegen` makes from
// schema/*.graphql and codegen.ts. Generates in memory and never rewrites the committed files; a stale
// file's fresh version is left in a temp directory so the difference can be inspected with diff.
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate, loadCodegenConfig } from '@graphql-codegen/cli';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const { config } = await loadCodegenConfig({ configFilePath: join(root, 'codegen.ts') });
const outputs = await generate({ ...config, cwd: root, silent: true }, false);

const stale = [];
let tmp;
for (const { filename, content } of outputs) {
  const committed = resolve(root, filename);
  const current = existsSync(committed) ? readFileSync(committed, 'utf8') : undefined;
  if (current === content) continue;
  tmp ??= mkdtempSync(join(tmpdir(), 'codegen-check-'));
  const fresh = join(tmp, basename(filename));
  writeFileSync(fresh, content);
  stale.push(`  ${filename} ${current === undefined ? 'is missing' : 'differs'} (fresh output: ${fresh}; diff ${filename} ${fresh})`);
}

if (stale.length > 0) {
  console.error(`codegen is stale: schema/*.graphql or codegen.ts changed without regenerating.\n${stale.join('\n')}\nRun: npm run codegen`);
  process.exit(1);
}
console.log(`codegen up to date (${outputs.map((o) => o.filename).join(', ')})`);
