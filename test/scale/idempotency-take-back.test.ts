/**
 * A begin of an idempotency key whose answer was lost, and whose take-back (the compare-and-delete sent
 * right after it) could not reach Redis either: the replica keeps owing the take-back and delivers it once
 * Redis answers again, so the key is free, as the STORAGE_UNAVAILABLE answer told the client; and a
 * take-back that arrives after another request took the key and called Exotel leaves that record alone.
 * Two replicas on a private redis-server: A through a proxy that cuts its connection at the begin, B direct;
 * and a take-back still owed when storage closes, delivered by close() itself.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createSimulator, type Simulator } from '../../src/simulator/index.js';
import type { StorageLogger } from '../../src/storage/options.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startPrivateRedis, waitUntil, type RedisProcess } from '../helpers/processes.js';
import { redisAvailable, testPrefix } from '../helpers/redis.js';
import { startStallProxy, type StallProxy } from '../helpers/stall-proxy.js';
import { WEBHOOK_SECRET } from './harness.js';

const privateRedis = (await redisAvailable()) || process.env.REQUIRE_REDIS === '1';
const CONNECT = 'mutation($input: ConnectCallInput!) { connectCall(input: $input) { replayed idempotencyKey call { sid } } }';
type Connected = { connectCall: { replayed: boolean; idempotencyKey: string; call: { sid: string } } };

describe.skipIf(!privateRedis)('an idempotency take-back that could not reach Redis at once', () => {
  let redis: RedisProcess;
  let proxy: StallProxy;
  let sim: Simulator;
  let a: TestGateway;
  let b: TestGateway;
  const connects = () => sim.countRequests({ endpoint: 'calls.connect' });
  const inputFor = (name: string, to: string) => ({ from: '09876543210', to, callerId: '08039591111', idempotencyKey: `${name}-${randomBytes(6).toString('hex')}` });
  const takeBacks = () => a.logs.filter((l) => l.msg === 'idempotency take-back done');

  beforeAll(async () => {
    redis = await startPrivateRedis({ durable: false });
    proxy = await startStallProxy(redis.url);
    sim = await createSimulator({ port: 0, host: '127.0.0.1', ratePerMinute: 100_000, timeScale: 0.01, log: () => {} });
    const env = {
      EXOTEL_ACCOUNT_SID: sim.accountSid,
      EXOTEL_API_KEY: sim.apiKey,
      EXOTEL_API_TOKEN: sim.apiToken,
      EXOTEL_BASE_URL: sim.url,
      WEBHOOK_SECRET,
      REDIS_KEY_PREFIX: testPrefix('take-back'),
      GATEWAY_ALLOW_OPEN: '1',
      GATEWAY_REPLICAS: '2',
      REDIS_COMMAND_TIMEOUT_MS: '300',
    };
    a = await startGateway({ ...env, REDIS_URL: proxy.url }, {}, {}, { autoStop: false });
    b = await startGateway({ ...env, REDIS_URL: redis.url }, {}, {}, { autoStop: false });
    // Redis learns the begin script now: a begin that is cut later is the script itself, not a lookup of it.
    const warm = await a.gql<Connected>(CONNECT, { input: inputFor('warm', '+919812345660') });
    expect(warm.body.errors).toBeUndefined();
  });
  afterAll(async () => {
    redis?.resume();
    await a?.stop();
    await b?.stop();
    await proxy?.close();
    await redis?.dispose();
    await sim?.stop();
  });

  /** Retries as a client told "retry in a few seconds" does, while the key reads as in progress. */
  async function retryWhileInProgress(gw: TestGateway, input: Record<string, unknown>) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const answer = await gw.gql<Connected>(CONNECT, { input });
      const code = answer.body.errors?.[0]?.extensions?.code;
      if (code !== 'IDEMPOTENCY_CONFLICT' || Date.now() > deadline) return answer;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  it('a begin Redis ran after its connection was lost leaves the key free once Redis answers: the retry is placed once', async () => {
    const input = inputFor('lost-begin', '+919812345661');
    const before = connects();
    // Redis stops answering with A's begin on its way: the begin waits in Redis's socket, while the
    // take-back sent right after it never gets there (the proxy holds it), and the connection is then lost.
    redis.stall();
    try {
      proxy.stallAfter((sent) => sent.includes(input.idempotencyKey));
      const refused = await a.gql(CONNECT, { input });
      expect(refused.body.data).toBeNull();
      expect(refused.body.errors).toEqual([expect.objectContaining({ extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 } })]);
      expect(proxy.stalled()).toBe(true);
      proxy.release();
    } finally {
      redis.resume();
    }
    // Redis now runs the begin: a pending record that no request will ever finish, nothing sent to Exotel.
    expect(connects()).toBe(before);

    const retried = await retryWhileInProgress(b, input);
    expect(retried.body.errors).toBeUndefined();
    expect(retried.body.data!.connectCall).toMatchObject({ replayed: false, idempotencyKey: input.idempotencyKey });
    expect(connects()).toBe(before + 1);
    // It was A's owed take-back that freed the key: the record was there, and it removed it.
    expect(takeBacks()).toContainEqual(expect.objectContaining({ level: 'info', removed: true }));

    const again = await a.gql<Connected>(CONNECT, { input });
    expect(again.body.errors).toBeUndefined();
    expect(again.body.data!.connectCall).toEqual({ ...retried.body.data!.connectCall, replayed: true });
    expect(connects()).toBe(before + 1);
  });

  it('a take-back that arrives after another request took the key and called Exotel leaves that record alone', async () => {
    const input = inputFor('moved-on', '+919812345662');
    const before = connects();
    const settledBefore = takeBacks().length;
    // A's begin never reaches Redis, and neither can its take-back while A's connection hangs.
    proxy.stallBefore((sent) => sent.includes(input.idempotencyKey));
    const refused = await a.gql(CONNECT, { input });
    expect(refused.body.errors).toEqual([expect.objectContaining({ extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 } })]);
    expect(proxy.stalled()).toBe(true);

    // The client's retry on B finds the key free, and the call is placed.
    const placed = await b.gql<Connected>(CONNECT, { input });
    expect(placed.body.errors).toBeUndefined();
    expect(placed.body.data!.connectCall).toMatchObject({ replayed: false });
    expect(connects()).toBe(before + 1);

    // A's connection comes back and its owed take-back is delivered: the key holds B's record, not A's.
    proxy.release();
    await waitUntil(() => takeBacks().length > settledBefore, 'A\'s owed take-back to reach Redis', 15_000);
    for (const gw of [a, b]) {
      const again = await gw.gql<Connected>(CONNECT, { input });
      expect(again.body.errors).toBeUndefined();
      expect(again.body.data!.connectCall).toEqual({ ...placed.body.data!.connectCall, replayed: true });
    }
    expect(connects()).toBe(before + 1);
    expect(takeBacks().slice(settledBefore)).toEqual([expect.objectContaining({ removed: false })]);
  });
  it('a take-back still owed when storage closes is tried once more then, and removes the record', async () => {
    const logged: Array<{ msg: string; fields: Record<string, unknown> }> = [];
    const at = (fields: Record<string, unknown>, msg: string) => void logged.push({ msg, fields });
    const prefix = testPrefix('take-back-close');
    // Retries a minute apart: only close() can deliver this take-back.
    const storage = await createRedisStorage({
      redisUrl: proxy.url,
      keyPrefix: prefix,
      commandTimeoutMs: 300,
      logger: { debug: at, info: at, warn: at, error: at } as StorageLogger,
      takeBackTimings: { firstDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    const direct = new Redis(redis.url);
    let closed = false;
    try {
      expect(await storage.idempotency.begin('warm', 'fp', 60_000)).toEqual({ created: true });
      // As in the first case: the begin waits in a stopped Redis's socket, its take-back never gets there.
      redis.stall();
      try {
        proxy.stallAfter((sent) => sent.includes(`${prefix}idem:closing`));
        await expect(storage.idempotency.begin('closing', 'fp', 600_000)).rejects.toThrow();
        proxy.release();
      } finally {
        redis.resume();
      }
      await waitUntil(() => storage.ping(), 'storage answering again', 10_000, 20);
      // The begin ran once Redis resumed: its record stays, owed a take-back that is not due for a minute.
      expect(JSON.parse((await direct.get(`${prefix}idem:closing`))!)).toMatchObject({ state: 'pending', fingerprint: 'fp' });
      closed = true;
      await storage.close();
      expect(await direct.get(`${prefix}idem:closing`)).toBeNull();
      expect(logged.filter((l) => l.msg.startsWith('idempotency take-back')).map((l) => [l.msg, l.fields])).toEqual([
        ['idempotency take-back done', { key: `${prefix}idem:closing`, removed: true }],
      ]);
    } finally {
      if (!closed) await storage.close();
      direct.disconnect();
    }
  });

  // Last: it stops A.
  it('a take-back still owed when the gateway stops with Redis out of reach is counted as lost', async () => {
    const input = inputFor('lost-at-stop', '+919812345663');
    const lost = async () => (await a.metrics.takeBacksLost.get()).values.map((v) => [v.labels.reason, v.value]);
    expect(await lost()).toEqual([]);
    // A's begin never reaches Redis, and neither can its take-back, nor the last try at stop.
    proxy.stallBefore((sent) => sent.includes(input.idempotencyKey));
    try {
      const refused = await a.gql(CONNECT, { input });
      expect(refused.body.errors).toEqual([expect.objectContaining({ extensions: { code: 'STORAGE_UNAVAILABLE', retryAfterSeconds: 5 } })]);
      await a.stop();
    } finally {
      proxy.release();
    }
    expect(await lost()).toEqual([['shutdown', 1]]);
    // Owed before the stop, or only once its take-back timed out during it: lost either way, with one warn line.
    expect(a.logs.filter((l) => l.level === 'warn' && String(l.msg).startsWith('idempotency take-back'))).toHaveLength(1);
  });
});
