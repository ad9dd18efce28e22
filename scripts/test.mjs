#!/usr/bin/env node
// The one test command (README, .ci/run): prepares what the tests need, runs every vitest suite and
// ends with the line "N passed, N failed". Exits non-zero on any failure.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';

const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { stdio: 'inherit', ...opts });
const fail = (why) => {
  console.error(why);
  console.log('0 passed, 1 failed');
  process.exit(1);
};

// Generated code and the GraphiQL bundle are build outputs: make them, and fail if codegen is stale.
if (run('npm', ['run', '--silent', 'codegen:check']).status !== 0) fail('codegen: src/generated is stale; run npm run codegen');
if (run('npm', ['run', '--silent', 'build:graphiql']).status !== 0) fail('GraphiQL bundle failed to build');
if (run('npx', ['tsc', '--noEmit']).status !== 0) fail('typecheck failed');

// Browser tests need Debian's chromium; in CI install it, elsewhere the browser test skips with a message.
if (!existsSync('/usr/bin/chromium') && process.env.CI) {
  console.log('chromium missing: installing Debian package chromium');
  run('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null']);
}

const report = '.vitest-results.json';
rmSync(report, { force: true });
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)];
const vitest = run('npx', args);
let passed = 0;
let failed = 0;
if (existsSync(report)) {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
  // A suite that failed to load has no tests counted as failed: count it.
  for (const f of r.testResults ?? []) if (f.status === 'failed' && (f.assertionResults ?? []).length === 0) failed += 1;
} else {
  failed = 1;
}
if (vitest.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || vitest.status !== 0 ? 1 : 0);
