/**
 * `npm run webhook-urls` (src/webhook-urls.ts) as a process: it prints the same URLs a gateway with the
 * same WEBHOOK_SECRET and PUBLIC_URL accepts, never the secret, and warns when the secret is per-process.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createCallbackUrls } from '../../src/live/callback-urls.js';
import { SIMULATOR_DEFAULTS } from '../../src/simulator/index.js';
import { REPO_ROOT } from '../helpers/processes.js';

function run(env: Record<string, string>) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/webhook-urls.ts'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: result.status, out: result.stdout, err: result.stderr };
}

describe('npm run webhook-urls', () => {
  it('prints the three callback URLs derived from WEBHOOK_SECRET, and not the secret', () => {
    const secret = 'webhook-secret-canary-7d2a91';
    const { status, out } = run({ WEBHOOK_SECRET: secret, PUBLIC_URL: 'https://gw.example.in' });
    expect(status).toBe(0);
    const want = createCallbackUrls({ publicUrl: 'https://gw.example.in', webhookSecret: secret, accountSid: SIMULATOR_DEFAULTS.accountSid });
    for (const url of Object.values(want)) expect(out).toContain(url);
    expect(out).not.toContain(secret);
    expect(out).not.toMatch(/WARNING/);
  }, 30_000);

  it('uses the configured account and warns when no WEBHOOK_SECRET is set', () => {
    const { status, out } = run({ EXOTEL_ACCOUNT_SID: 'acme1', EXOTEL_API_KEY: 'k', EXOTEL_API_TOKEN: 'token-canary-e93b', GATEWAY_API_KEYS: 'ops:client-secret-0123456789abcdef:read', WEBHOOK_SECRET: 'another-secret-that-is-long', PUBLIC_URL: 'https://gw.example.in' });
    expect(status).toBe(0);
    expect(out).toContain('account acme1');
    expect(out).toContain(createCallbackUrls({ publicUrl: 'https://gw.example.in', webhookSecret: 'another-secret-that-is-long', accountSid: 'acme1' }).callStatus);
    expect(out).not.toContain('token-canary-e93b');

    const unset = run({ PUBLIC_URL: 'https://gw.example.in' });
    expect(unset.status).toBe(0);
    expect(unset.out).toMatch(/WARNING: WEBHOOK_SECRET is not set/);
  }, 30_000);

  it('runs in live mode without GATEWAY_API_KEYS, which only the gateway needs, and still needs WEBHOOK_SECRET there', () => {
    const liveEnv = { EXOTEL_ACCOUNT_SID: 'acme1', EXOTEL_API_KEY: 'k', EXOTEL_API_TOKEN: 't', WEBHOOK_SECRET: 'another-secret-that-is-long', PUBLIC_URL: 'https://gw.example.in', PORT: '4100' };
    const { status, out, err } = run(liveEnv);
    expect(err).toBe('');
    expect(status).toBe(0);
    expect(out).toContain(createCallbackUrls({ publicUrl: 'https://gw.example.in', webhookSecret: 'another-secret-that-is-long', accountSid: 'acme1' }).incomingCall);

    const { WEBHOOK_SECRET: _secret, ...noSecret } = liveEnv;
    const refused = run(noSecret);
    expect(refused.status).toBe(1);
    expect(refused.err.trim().split('\n')).toEqual(['config error: WEBHOOK_SECRET: required in live mode (callback URLs must survive restarts)']);
  }, 30_000);

  it('warns, before the URLs are pasted into a flow, when real Exotel cannot reach PUBLIC_URL', () => {
    const liveEnv = { EXOTEL_ACCOUNT_SID: 'acme1', EXOTEL_API_KEY: 'k', EXOTEL_API_TOKEN: 't', GATEWAY_API_KEYS: 'ops:client-secret-0123456789abcdef:read', WEBHOOK_SECRET: 'another-secret-that-is-long' };
    const unset = run(liveEnv);
    expect(unset.status).toBe(0);
    expect(unset.out).toContain('WARNING: PUBLIC_URL is http://localhost:4000, which api.exotel.com cannot reach');
    expect(run({ ...liveEnv, PUBLIC_URL: 'http://192.168.1.20:4000', EXOTEL_REGION: 'mumbai' }).out).toContain(
      'WARNING: PUBLIC_URL is http://192.168.1.20:4000, which api.in.exotel.com cannot reach',
    );
    // A public address, or an Exotel on this machine (the simulator), reaches it.
    expect(run({ ...liveEnv, PUBLIC_URL: 'https://gw.example.in' }).out).not.toMatch(/WARNING/);
    expect(run({ ...liveEnv, EXOTEL_BASE_URL: 'http://127.0.0.1:4010' }).out).not.toMatch(/WARNING/);
  }, 60_000);
});
