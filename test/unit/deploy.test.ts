/**
 * docker-compose.yml and deploy/nginx.conf cannot be run here (no Docker engine on these machines), so they
 * are checked as files: the compose file parses, has the topology the README promises, and every gateway
 * replica's environment is one the gateway's own config loader accepts; nginx passes WebSocket upgrades to
 * both replicas on the port they listen on.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';
import { shutdownTimeoutMs } from '../../src/server.js';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: unknown;
  stop_grace_period?: string;
}

const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as { services: Record<string, Service> };
const nginx = readFileSync('deploy/nginx.conf', 'utf8');

/** What docker compose makes of `${NAME:-default}` with no .env file. */
const withDefaults = (env: Record<string, string>) =>
  Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]));

describe('docker-compose.yml', () => {
  it('runs Redis, the simulator, two gateway replicas and a proxy', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['gateway-a', 'gateway-b', 'proxy', 'redis', 'simulator']);
    expect(compose.services.proxy!.depends_on).toEqual(['gateway-a', 'gateway-b']);
  });

  it('gives both replicas an environment the gateway accepts, sharing Redis and the webhook secret', () => {
    const [a, b] = (['gateway-a', 'gateway-b'] as const).map((name) => withDefaults(compose.services[name]!.environment!));
    expect(a).toEqual(b);
    const config = loadConfig(a);
    expect(config.redisUrl).toBe('redis://redis:6379');
    expect(config.replicas).toBe(2);
    expect(config.exotelBaseUrl).toBe('http://simulator:4010');
    expect(config.apiKeys.length).toBeGreaterThan(0);
  });

  it('gives each replica longer to stop than the gateway gives its own shutdown, so a drain is not killed', () => {
    for (const name of ['gateway-a', 'gateway-b'] as const) {
      const grace = /^(\d+)s$/.exec(compose.services[name]!.stop_grace_period ?? '')?.[1];
      expect(grace, `${name} stop_grace_period`).toBeDefined();
      expect(Number(grace) * 1000).toBeGreaterThan(shutdownTimeoutMs(loadConfig(withDefaults(compose.services[name]!.environment!))));
    }
  });

  it('starts the simulator from a file the build produces', () => {
    const command = compose.services.simulator!.command!;
    expect(command[0]).toBe('node');
    expect(command[1]).toBe('dist/simulator/main.js');
    expect(existsSync('src/simulator/main.ts')).toBe(true);
  });
});

describe('deploy/nginx.conf', () => {
  it('balances over both replicas on their port, passing WebSocket upgrades, without replaying POSTs', () => {
    const port = withDefaults(compose.services['gateway-a']!.environment!).PORT;
    expect(nginx).toContain(`server gateway-a:${port}`);
    expect(nginx).toContain(`server gateway-b:${port}`);
    expect(nginx).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(nginx).toMatch(/proxy_set_header Connection \$connection_upgrade;/);
    expect(nginx).toMatch(/proxy_http_version 1\.1;/);
    expect(nginx).not.toMatch(/proxy_next_upstream[^;]*non_idempotent/);
  });
});
