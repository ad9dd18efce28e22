/**
 * What operators see: Exotel refusing the gateway's own credentials (one error line, /readyz 503 with
 * the reason and gateway_dependency_up 0, ready again once a request succeeds), the Exotel host in the start log, a warning when Exotel
 * cannot reach PUBLIC_URL, and a port in use reported in one line with exit code 1.
 */
import { spawn } from 'node:child_process';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createUpstreamHealth } from '../../src/http/upstream-health.js';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { startGateway } from '../helpers/gateway.js';
import { REPO_ROOT } from '../helpers/processes.js';

const WRONG_TOKEN = 'wrong-token-0d2c4b1e9a';
const simulators: Simulator[] = [];
afterAll(async () => {
  for (const sim of simulators) await sim.stop();
});

async function readyz(url: string) {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
}

describe('Exotel refusing the gateway\'s credentials', () => {
  it('logs one error line without the secret, answers /readyz 503 with the reason, and is ready again once a request succeeds', async () => {
    const first = await createSimulator({ port: 0, timeScale: 0.01, log: () => {} });
    simulators.push(first);
    const port = Number(new URL(first.url).port);
    const gw = await startGateway({
      EXOTEL_ACCOUNT_SID: first.accountSid,
      EXOTEL_API_KEY: first.apiKey,
      EXOTEL_API_TOKEN: WRONG_TOKEN,
      EXOTEL_BASE_URL: first.url,
      WEBHOOK_SECRET: 'operators-webhook-secret-0123',
      GATEWAY_ALLOW_OPEN: '1',
      LIVE_POLL_INTERVAL_MS: '600000',
    });
    // The start log names the Exotel host this gateway talks to.
    expect(gw.logs.find((l) => l.msg === 'gateway listening')).toMatchObject({ mode: 'LIVE', exotelBaseUrl: first.url });

    for (let i = 0; i < 2; i++) {
      const { body } = await gw.gql('{ exophones { sid } }');
      expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'UPSTREAM_ERROR', upstreamStatus: 401 });
    }
    const errors = gw.logs.filter((l) => l.level === 'error' || l.level === 'fatal');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ upstreamStatus: 401, exotelBaseUrl: first.url, msg: expect.stringContaining('EXOTEL_API_TOKEN') });
    expect(gw.logText()).not.toContain(WRONG_TOKEN);
    const down = await readyz(gw.url);
    expect(down.status).toBe(503);
    expect(down.body.reason).toMatch(/credentials \(HTTP 401\)/);
    // The alerting gauge says so too: Exotel does not accept the gateway (docs/operations.md, metrics).
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toContain('gateway_dependency_up{dependency="exotel"} 0');

    // Exotel now accepts the token (here: the same host, restarted with it); the next request succeeds.
    await first.stop();
    simulators.splice(simulators.indexOf(first), 1);
    const second = await createSimulator({ port, timeScale: 0.01, log: () => {}, apiToken: WRONG_TOKEN });
    simulators.push(second);
    const { body } = await gw.gql('{ exophones { sid } }');
    expect(body.errors).toBeUndefined();
    expect((await readyz(gw.url)).status).toBe(200);
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toContain('gateway_dependency_up{dependency="exotel"} 1');
    expect(gw.logs.some((l) => l.msg === 'Exotel accepts the gateway\'s credentials again')).toBe(true);
  });

  it('counts a 403 to a read as the account refused, but not a 403 to a send (balance, KYC, DND)', () => {
    const health = createUpstreamHealth();
    health.observe({ status: 403, method: 'POST', endpoint: 'sms.send' });
    expect(health.problem()).toBeUndefined();
    health.observe({ status: 403, method: 'GET', endpoint: 'calls.list' });
    expect(health.problem()).toMatch(/HTTP 403 to a read/);
    health.observe({ status: 404, method: 'GET', endpoint: 'calls.get' });
    expect(health.problem()).toBeDefined();
    health.observe({ status: 200, method: 'GET', endpoint: 'calls.list' });
    expect(health.problem()).toBeUndefined();
  });
});

describe('a PUBLIC_URL Exotel cannot reach', () => {
  const liveEnv = {
    EXOTEL_ACCOUNT_SID: 'acme1',
    EXOTEL_API_KEY: 'key',
    EXOTEL_API_TOKEN: 'token',
    // A public Exotel host (reserved name, so nothing is ever sent); no request is made at start.
    EXOTEL_BASE_URL: 'https://exotel.invalid',
    WEBHOOK_SECRET: 'operators-webhook-secret-0123',
    GATEWAY_ALLOW_OPEN: '1',
  };

  it('is said once at start in live mode, naming the variable to set', async () => {
    const gw = await startGateway(liveEnv);
    const warnings = gw.logs.filter((l) => l.level === 'warn' && String(l.msg).startsWith('PUBLIC_URL'));
    expect(warnings.map((l) => l.msg)).toEqual([
      'PUBLIC_URL is http://localhost:0, which exotel.invalid cannot reach: Exotel\'s status callbacks and Passthru requests will not arrive ' +
        '(calls still end, late, from call details). Set PUBLIC_URL to the address Exotel reaches this gateway at, e.g. https://gw.example.com',
    ]);
  });

  it('is not said for a public PUBLIC_URL, nor when Exotel is on this machine (the simulator)', async () => {
    const publicGw = await startGateway({ ...liveEnv, PUBLIC_URL: 'https://gw.example.com' });
    const sim = await createSimulator({ port: 0, timeScale: 0.01, log: () => {} });
    simulators.push(sim);
    const localGw = await startGateway({ ...liveEnv, EXOTEL_BASE_URL: sim.url });
    for (const gw of [publicGw, localGw]) {
      expect(gw.logs.find((l) => l.msg === 'gateway listening')).toMatchObject({ mode: 'LIVE' });
      expect(gw.logs.filter((l) => String(l.msg).startsWith('PUBLIC_URL'))).toEqual([]);
    }
  });
});

describe('a port in use', () => {
  it('is one clear line on stderr and exit code 1, with no stack trace', async () => {
    const holder = createNetServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as AddressInfo;
    try {
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(EXOTEL_|GATEWAY_|REDIS_|NODE_ENV|INTROSPECTION)/.test(k)));
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: REPO_ROOT,
        env: { ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      expect(code).toBe(1);
      expect(stderr.trim().split('\n')).toEqual([`gateway failed to start: port ${port} on 127.0.0.1 is already in use; stop what listens there or set PORT`]);
      expect(stdout + stderr).not.toMatch(/Internal error emitted|^\s+at /m);
    } finally {
      holder.close();
    }
  });
});
