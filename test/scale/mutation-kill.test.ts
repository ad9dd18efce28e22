/**
 * A replica SIGKILLed while its mutation's Exotel request is in flight, and the client retrying the same
 * idempotencyKey on another replica: the call must never be placed twice, each retry is answered within
 * seconds, and once the call's callback has reached the fleet the retry gets the call. Real gateway
 * processes on the machine's Redis (a key prefix of their own); callbacks go to the surviving replica, as
 * they would through the load balancer PUBLIC_URL names.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import { deleteKeys, redisOrSkip, TEST_REDIS_URL, testPrefix } from '../helpers/redis.js';
import { freePort, spawnGateway, stopAllProcesses, waitUntil, type GatewayProcess } from '../helpers/processes.js';
import { gql, replicaEnv } from './harness.js';

const CONNECT = 'mutation($input: ConnectCallInput!) { connectCall(input: $input) { replayed call { sid } } }';

describe.skipIf(!(await redisOrSkip()))('a replica killed mid-mutation', () => {
  let sim: Simulator;
  let a: GatewayProcess;
  let b: GatewayProcess;
  const prefix = testPrefix('mutation-kill');

  beforeAll(async () => {
    sim = await createSimulator({ port: 0, ratePerMinute: 100_000, timeScale: 0.01, log: () => {} });
    const port = await freePort();
    const env = replicaEnv(sim, TEST_REDIS_URL, prefix, { LIVE_POLL_INTERVAL_MS: '3600000', PUBLIC_URL: `http://127.0.0.1:${port}` });
    [a, b] = await Promise.all([spawnGateway('kill-A', env), spawnGateway('kill-B', { ...env, PORT: String(port) })]);
  }, 60_000);
  afterAll(async () => {
    await stopAllProcesses();
    await sim?.stop();
    await deleteKeys(prefix);
  });

  it('a retry on another replica never places the call a second time, and gets the call once its callback arrived', async () => {
    const input = { from: '09876543210', to: '+919812345672', callerId: '08039591111', idempotencyKey: `kill-${prefix}` };
    const connects = () => sim.countRequests({ endpoint: 'calls.connect' });
    // Exotel places the call at once but answers late: A dies with the call placed and no answer read.
    sim.faults.inject({ kind: 'slow-answer', delayMs: 3_000, count: 1, endpoint: 'calls.connect' });
    const first = gql(a.url, CONNECT, { input }).catch((err: unknown) => err);
    await waitUntil(() => connects() === 1, 'the connect to reach Exotel', 10_000);
    await a.stop('SIGKILL');
    await first;

    const placed = sim.calls.list().find((c) => c.To.endsWith('9812345672'))!;
    expect(placed).toBeDefined();

    // Retries on B: "in progress" while nothing shows what A's request did, each answered within seconds;
    // then, once the call's callback (carrying the request's reference) reached B, the call itself.
    const deadline = Date.now() + 15_000;
    let answer: Awaited<ReturnType<typeof gql<{ connectCall: { replayed: boolean; call: { sid: string } } }>>>;
    for (;;) {
      const started = Date.now();
      answer = await gql(b.url, CONNECT, { input });
      expect(Date.now() - started).toBeLessThan(5_000);
      if (!answer.errors) break;
      expect(answer.errors).toEqual([expect.objectContaining({ extensions: { code: 'IDEMPOTENCY_CONFLICT', field: 'input.idempotencyKey' } })]);
      if (Date.now() > deadline) throw new Error('the retry never found the call A placed');
    }
    expect(answer.data?.connectCall).toEqual({ replayed: true, call: { sid: placed.Sid } });
    expect(connects()).toBe(1);
    expect(b.logs().filter((l) => l.msg === 'unhandled rejection' || (l.level as number) >= 50)).toEqual([]);
  }, 30_000);
});
