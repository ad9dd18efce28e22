/**
 * `npm run simulator` as its own process (src/simulator/main.ts): it says it is a simulator, serves the
 * Exotel wire format with seeded history on the port it prints, keeps env credentials out of its output,
 * refuses a bad setting or a port in use with one line, prints what points a gateway at it, and stops
 * cleanly on SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway } from '../helpers/gateway.js';
import { REPO_ROOT } from '../helpers/processes.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts the simulator process on a free port and resolves once it prints its base URL. */
function startSimulatorProcess(env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/simulator/main.ts'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', SIMULATOR_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let text = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      text += d.toString('utf8');
      const match = /base URL:\s+(http:\/\/\S+)/.exec(text);
      if (match) resolve({ child, url: match[1]!, output: () => text, exited });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (text += d.toString('utf8')));
    void exited.then((code) => reject(new Error(`simulator exited (${code}) before it was ready:\n${text}`)));
  });
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('npm run simulator', () => {
  it('says it is a simulator, serves seeded history on the printed URL, and stops on SIGTERM', async () => {
    const sim = await startSimulatorProcess({ SIMULATOR_TIME_SCALE: '0.01' });
    expect(sim.output()).toMatch(/SIMULATOR of Exotel/);
    const res = await fetch(`${sim.url}/v1/Accounts/sim-account/Calls.json?PageSize=5`, { headers: { authorization: basic('sim-key', 'sim-token') } });
    const body = (await res.json()) as { Calls: Array<{ Sid: string }>; Metadata: { Total: number } };
    expect(res.status).toBe(200);
    expect(body.Calls).toHaveLength(5);
    expect(body.Metadata.Total).toBeGreaterThan(5);
    const denied = await fetch(`${sim.url}/v1/Accounts/sim-account/Calls.json`, { headers: { authorization: basic('sim-key', 'wrong') } });
    expect(denied.status).toBe(401);
    expect(await denied.json()).toMatchObject({ RestException: { Status: 401 } });
    sim.child.kill('SIGTERM');
    expect(await sim.exited).toBe(0);
  }, 30_000);

  it('accepts credentials from the environment without printing them', async () => {
    const token = 'sim-token-canary-4c1f9e';
    const sim = await startSimulatorProcess({ EXOTEL_ACCOUNT_SID: 'acme1', EXOTEL_API_KEY: 'acme-key', EXOTEL_API_TOKEN: token });
    const res = await fetch(`${sim.url}/v1/Accounts/acme1/Calls.json?PageSize=1`, { headers: { authorization: basic('acme-key', token) } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { Calls: unknown[] }).Calls).toHaveLength(1);
    sim.child.kill('SIGTERM');
    expect(await sim.exited).toBe(0);
    expect(sim.output()).not.toContain(token);
  }, 30_000);

  it('refuses a bad setting with one line naming it', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/simulator/main.ts'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', SIMULATOR_TIME_SCALE: 'fast' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toBe('Exotel SIMULATOR: SIMULATOR_TIME_SCALE="fast" is not valid: a number above 0 (0.01 = 100× faster)');
  }, 30_000);

  it('reports a port in use in one line, with no stack trace', async () => {
    const first = await startSimulatorProcess({});
    const port = new URL(first.url).port;
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/simulator/main.ts'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', SIMULATOR_PORT: port },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toBe(`Exotel SIMULATOR: port ${port} on 127.0.0.1 is already in use; stop what listens there or set SIMULATOR_PORT`);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
  }, 30_000);

  it('prints the environment that points a gateway at it, and that gateway answers from it', async () => {
    const sim = await startSimulatorProcess({ SIMULATOR_TIME_SCALE: '0.01' });
    // Printed just after the base URL the start waits for.
    await expect.poll(() => /gateway:\s+(.*) npm start/.test(sim.output())).toBe(true);
    const line = /gateway:\s+(.*) npm start/.exec(sim.output())?.[1];
    const env = Object.fromEntries(line!.split(' ').map((pair) => pair.split('=') as [string, string]));
    expect(env).toMatchObject({ EXOTEL_BASE_URL: sim.url, EXOTEL_ACCOUNT_SID: 'sim-account' });
    // Several gateways need more: where callbacks go, and how many share the budget.
    expect(sim.output()).toMatch(/replicas:.*PUBLIC_URL.*GATEWAY_REPLICAS/);
    const gw = await startGateway(env);
    expect(gw.mode).toBe('LIVE');
    const { body } = await gw.gql('{ calls(first: 2) { nodes { sid } } }');
    expect(body.errors).toBeUndefined();
    expect(body.data.calls.nodes).toHaveLength(2);
    await gw.stop();
    sim.child.kill('SIGTERM');
    expect(await sim.exited).toBe(0);
  }, 30_000);
});
