/**
 * The README's backend snippet, as a newcomer would copy it: run with GATEWAY_URL and GATEWAY_KEY it
 * answers from the real gateway, and with GATEWAY_URL alone from a simulator-mode gateway without keys;
 * without GATEWAY_URL it stops with a message naming both.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { REPO_ROOT } from '../helpers/processes.js';

const SECRET = 'readme-secret-0123456789';
let gw: TestGateway;
let open: TestGateway;
let dir: string;
let script: string;

/** The first TypeScript block of the README: the backend snippet of its first screen. */
function backendSnippet(): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error('README.md has no ```ts block');
  return block;
}

function run(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEWAY_')));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO_ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  gw = await startGateway({ GATEWAY_API_KEYS: `backend:${SECRET}:read+write` });
  // As `npm start` runs with no settings: the simulator, no client keys.
  open = await startGateway({});
  dir = mkdtempSync(join(tmpdir(), 'readme-snippet-'));
  script = join(dir, 'backend.mts');
  writeFileSync(script, `${backendSnippet()}\nconsole.log(JSON.stringify(calls));\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the README backend snippet', () => {
  it('answers from the gateway with GATEWAY_URL and the secret part of the key as GATEWAY_KEY', async () => {
    const { code, stdout, stderr } = await run({ GATEWAY_URL: gw.url, GATEWAY_KEY: SECRET });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const calls = JSON.parse(stdout) as { nodes: Array<{ sid: string; status: string }> };
    expect(calls.nodes).toHaveLength(5);
    expect(calls.nodes[0]!.sid).toEqual(expect.any(String));
  });

  it('answers from a simulator-mode gateway without keys with GATEWAY_URL alone, sending no Authorization header', async () => {
    expect(open.config.apiKeys).toEqual([]);
    const { code, stdout, stderr } = await run({ GATEWAY_URL: open.url });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const calls = JSON.parse(stdout) as { nodes: Array<{ sid: string; status: string }> };
    expect(calls.nodes).toHaveLength(5);
    expect(calls.nodes[0]!.sid).toEqual(expect.any(String));
  });

  it('throws the gateway\'s UNAUTHENTICATED error when the gateway has keys and GATEWAY_KEY is unset', async () => {
    const { code, stderr } = await run({ GATEWAY_URL: gw.url });
    expect(code).not.toBe(0);
    expect(stderr).toContain('UNAUTHENTICATED');
    expect(stderr).toContain('Missing or malformed Authorization header');
  });

  it('stops with a message naming GATEWAY_URL and GATEWAY_KEY when GATEWAY_URL is unset', async () => {
    const { code, stderr } = await run({ GATEWAY_KEY: SECRET });
    expect(code).not.toBe(0);
    expect(stderr).toContain('Set GATEWAY_URL (e.g. http://localhost:4000), and GATEWAY_KEY');
    expect(stderr).not.toContain('Failed to parse URL');
  });

  it('throws the gateway\'s error, with its code, for a whole name:secret:scopes entry sent as the key', async () => {
    const { code, stderr } = await run({ GATEWAY_URL: gw.url, GATEWAY_KEY: `backend:${SECRET}:read+write` });
    expect(code).not.toBe(0);
    expect(stderr).toContain('UNAUTHENTICATED');
    expect(stderr).toContain('send only the secret part of name:secret:scopes');
  });
});
