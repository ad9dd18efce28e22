import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const live = {
  EXOTEL_ACCOUNT_SID: 'acme1',
  EXOTEL_API_KEY: 'key-canary-1234567890',
  EXOTEL_API_TOKEN: 'token-canary-1234567890',
  WEBHOOK_SECRET: 'webhook-secret-canary-123',
  GATEWAY_API_KEYS: 'backend:client-secret-canary-1:read+write,dash:client-secret-canary-2:read',
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('starts in simulator mode with the documented defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config.exotel).toBeUndefined();
    expect(config.port).toBe(4000);
    expect(config.host).toBe('0.0.0.0');
    expect(config.publicUrl).toBe('http://localhost:4000');
    expect(config.exotelRegion).toBe('singapore');
    expect(config.ratePerMinute).toBe(200);
    expect(config.bulkBatchSize).toBe(100);
    expect(config.livePollIntervalMs).toBe(5000);
    expect(config.reconcileGraceSeconds).toBe(120);
    expect(config.eventRetentionHours).toBe(24);
    expect(config.webhookSecretGenerated).toBe(true);
    expect(config.apiKeys).toEqual([]);
  });

  it('reads live credentials, keys and scopes', () => {
    const config = loadConfig({ ...live, EXOTEL_REGION: 'mumbai', PORT: '8080', PUBLIC_URL: 'https://gw.example.com/' });
    expect(config.exotel).toEqual({ accountSid: 'acme1', apiKey: live.EXOTEL_API_KEY, apiToken: live.EXOTEL_API_TOKEN });
    expect(config.exotelRegion).toBe('mumbai');
    expect(config.publicUrl).toBe('https://gw.example.com');
    expect(config.apiKeys).toEqual([
      { name: 'backend', secret: 'client-secret-canary-1', scopes: 'read+write', weight: 1 },
      { name: 'dash', secret: 'client-secret-canary-2', scopes: 'read', weight: 1 },
    ]);
  });

  it('reads a key\'s weight in the fair share of the budget as an optional fourth field, and refuses a bad one without echoing the secret', () => {
    const config = loadConfig({ ...live, GATEWAY_API_KEYS: 'backend:client-secret-canary-1:read+write:3,dash:client-secret-canary-2:read:0.5' });
    expect(config.apiKeys.map((k) => [k.name, k.weight])).toEqual([['backend', 3], ['dash', 0.5]]);
    expect(config.reserveShare).toBe(0.25);
    for (const weight of ['0', '-1', 'heavy', '1001']) {
      const problems = problemsOf({ ...live, GATEWAY_API_KEYS: `backend:client-secret-canary-1:read:${weight}` });
      expect(problems.join('\n')).toMatch(/GATEWAY_API_KEYS.*"backend" has a weight/);
      expect(problems.join('\n')).not.toContain('client-secret-canary-1');
    }
    expect(problemsOf({ EXOTEL_RESERVE_SHARE: '1' })[0]).toMatch(/^EXOTEL_RESERVE_SHARE/);
  });

  it('reports every bad variable at once, each by name', () => {
    const problems = problemsOf({ PORT: 'eighty', EXOTEL_BULK_BATCH_SIZE: '101', EXOTEL_REGION: 'tokyo', LOG_LEVEL: 'loud' });
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(['EXOTEL_BULK_BATCH_SIZE', 'EXOTEL_REGION', 'LOG_LEVEL', 'PORT']);
  });

  it('requires all three credentials together', () => {
    expect(problemsOf({ EXOTEL_ACCOUNT_SID: 'acme1' })[0]).toMatch(/EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY, EXOTEL_API_TOKEN/);
  });

  it('refuses live mode without a webhook secret or client keys unless open mode is allowed', () => {
    const { WEBHOOK_SECRET: _w, GATEWAY_API_KEYS: _k, ...bare } = live;
    const problems = problemsOf(bare);
    expect(problems.some((p) => p.startsWith('WEBHOOK_SECRET'))).toBe(true);
    expect(problems.some((p) => p.startsWith('GATEWAY_API_KEYS'))).toBe(true);
    expect(loadConfig({ ...bare, WEBHOOK_SECRET: live.WEBHOOK_SECRET, GATEWAY_ALLOW_OPEN: '1' }).apiKeys).toEqual([]);
  });

  it('never echoes a secret in its messages', () => {
    const problems = problemsOf({
      ...live,
      GATEWAY_API_KEYS: 'backend:client-secret-canary-1:admin',
      WEBHOOK_SECRET: 'short-canary',
      REDIS_URL: 'http://user:redis-canary@host',
    });
    const text = problems.join('\n');
    expect(text).toMatch(/GATEWAY_API_KEYS/);
    expect(text).toMatch(/WEBHOOK_SECRET/);
    expect(text).toMatch(/REDIS_URL/);
    for (const canary of ['client-secret-canary-1', 'short-canary', 'redis-canary', live.EXOTEL_API_TOKEN]) expect(text).not.toContain(canary);
  });

  it('never echoes a secret written where the name goes (name and secret swapped), whatever else is wrong with the entry', () => {
    for (const entry of ['client-secret-canary-3:crm:read', 'client-secret-canary-3:crm:read:heavy']) {
      const text = problemsOf({ ...live, GATEWAY_API_KEYS: entry }).join('\n');
      expect(text).toMatch(/^GATEWAY_API_KEYS: entry 1 has a secret shorter than 16 characters/);
      expect(text).not.toContain('client-secret-canary-3');
    }
  });

  it('says what each bad value should be: a number range, an absolute URL, the secret rules', () => {
    const problems = problemsOf({
      ...live,
      PORT: 'abc',
      EXOTEL_RATE_LIMIT_PER_MIN: '200/min',
      EXOTEL_BULK_BATCH_SIZE: '500',
      PUBLIC_URL: 'gw.example.com',
      WEBHOOK_SECRET: 'short-canary',
      REDIS_URL: 'localhost:6379',
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'PORT: must be a whole number from 0 to 65535',
        'EXOTEL_RATE_LIMIT_PER_MIN: must be a whole number from 1 to 100000',
        'EXOTEL_BULK_BATCH_SIZE: must be a whole number from 1 to 100',
        'PUBLIC_URL: must be an absolute URL with its scheme, e.g. https://gw.example.com',
        'WEBHOOK_SECRET: must be at least 16 characters',
        'REDIS_URL: must start with redis:// or rediss://',
      ]),
    );
    expect(problems.join('\n')).not.toMatch(/short-canary|localhost:6379/);
  });

  it('says which part of a client key entry is wrong, without echoing the entry', () => {
    const entryProblem = (entry: string) => problemsOf({ ...live, GATEWAY_API_KEYS: entry }).join('\n');
    // The name left out: the secret stands where the name goes, so nothing of the entry is shown.
    expect(entryProblem('client-secret-canary-1:read+write')).toBe(
      'GATEWAY_API_KEYS: entry 1 has an empty name or secret, or fewer than 3 fields; expected name:secret:scopes[:weight], e.g. backend:<secret>:read+write',
    );
    expect(entryProblem('backend:client-secret-canary-1:rw')).toMatch(/entry 1 has scopes other than read or read\+write/);
    expect(entryProblem('dash:client-secret-canary-2:read,backend:client:secret:canary-1:read+write')).toMatch(/entry 2 has more than 4 fields/);
  });

  it('refuses METRICS_PORT equal to PORT, which would fail at start as "port in use"', () => {
    expect(problemsOf({ PORT: '4000', METRICS_PORT: '4000' })).toEqual([
      'METRICS_PORT: is PORT (4000); give /metrics a port of its own, or leave METRICS_PORT unset to serve it on PORT',
    ]);
    expect(loadConfig({ PORT: '0', METRICS_PORT: '0' }).metricsPort).toBe(0);
    expect(loadConfig({ PORT: '4000', METRICS_PORT: '9464' }).metricsPort).toBe(9464);
  });

  it('reads WS_ALLOWED_ORIGINS as browser origins, and refuses a wildcard or a URL with a path', () => {
    expect(loadConfig({ WS_ALLOWED_ORIGINS: 'https://app.example.com/, http://localhost:3000' }).limits.wsAllowedOrigins).toEqual([
      'https://app.example.com',
      'http://localhost:3000',
    ]);
    expect(problemsOf({ WS_ALLOWED_ORIGINS: '*' })).toEqual(['WS_ALLOWED_ORIGINS: "*" is not an origin; leave WS_ALLOWED_ORIGINS unset to allow every origin']);
    expect(problemsOf({ WS_ALLOWED_ORIGINS: 'https://app.example.com/dashboard' })[0]).toMatch(/^WS_ALLOWED_ORIGINS: "https:\/\/app.example.com\/dashboard" is not an origin/);
    expect(problemsOf({ WS_ALLOWED_ORIGINS: 'app.example.com' })[0]).toMatch(/^WS_ALLOWED_ORIGINS: "app.example.com" is not an origin/);
  });

  it('reads CORS_ALLOWED_ORIGINS as browser origins (none by default), and refuses a wildcard', () => {
    expect(loadConfig({}).limits.corsAllowedOrigins).toEqual([]);
    expect(loadConfig({ CORS_ALLOWED_ORIGINS: 'https://dash.example.in/,http://localhost:5173' }).limits.corsAllowedOrigins).toEqual(['https://dash.example.in', 'http://localhost:5173']);
    expect(problemsOf({ CORS_ALLOWED_ORIGINS: '*' })).toEqual(['CORS_ALLOWED_ORIGINS: "*" is not an origin; list the origins of the browser apps that call the gateway']);
    expect(problemsOf({ CORS_ALLOWED_ORIGINS: 'https://dash.example.in/app' })[0]).toMatch(/^CORS_ALLOWED_ORIGINS: "https:\/\/dash.example.in\/app" is not an origin/);
  });

  it('refuses two client keys with the same name, without echoing either secret', () => {
    const problems = problemsOf({ ...live, GATEWAY_API_KEYS: 'backend:client-secret-canary-1:read,backend:client-secret-canary-2:read+write' });
    expect(problems.join('\n')).toMatch(/GATEWAY_API_KEYS.*"backend" is used twice/);
    expect(problems.join('\n')).not.toMatch(/client-secret-canary/);
  });

  it('stops the process with one clear line per bad variable', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { PATH: process.env.PATH, PORT: '-1', EXOTEL_API_TOKEN: 'token-canary-xyz-123' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toContain('config error: PORT: must be a whole number from 0 to 65535');
    expect(lines.some((l) => l.startsWith('config error: EXOTEL_ACCOUNT_SID, EXOTEL_API_KEY, EXOTEL_API_TOKEN'))).toBe(true);
    expect(result.stderr + result.stdout).not.toContain('token-canary-xyz-123');
  });
});
